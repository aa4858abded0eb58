"""Pixels per feature of a vector layer on an image grid, counted as OTB's PolygonClassStatistics counts them.

OTB decides pixel by pixel (``PersistentSamplingFilterBase``) and eotensor reproduces its rules exactly:

* **polygons**: a pixel counts when its centre is inside, by OGR's crossing test
  (``OGRLinearRing::isPointInRing``: an edge counts when it spans the centre's y half-open, ``min <= y < max``,
  and crosses strictly to the right of it), inside the exterior ring and in no interior ring. A centre on a
  left or bottom edge is in, on a right or top edge out;
* **points**: the pixel containing the point (half-up rounding, :meth:`~eotensor.geometry.Axis.index`);
* **lines**: the pixels whose closed square the line touches, within the feature's "considered region" (the
  pixels holding its envelope's corners, :func:`bounding_regions`);
* **multi-geometries and collections**: each part on its own, so pixels under two overlapping parts of one
  feature count twice, as do pixels under two overlapping features (once per feature);
* null and empty geometries count nothing; the image's no-data is ignored (OTB counts those pixels too).

Polygons are not burnt into a raster: every image row is a scan line, the rings' crossings of each row's
centre line are computed, each reduced to the number of column centres strictly left of it (:func:`below`:
the exact comparisons OTB makes, centre by centre, on the same float coordinates ``origin + spacing * index``),
sorted and swept. The work is proportional to the crossings, not to the pixels, and
overlaps need nothing special. Rows are streamed in full-width strips (:func:`~eotensor.engine.tiling.strip_plan`,
sized from the most crossings any row has) through :func:`~eotensor.engine.execute.run_tiles`; each strip only
sees the edges that span its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from eotensor.engine.execute import run_tiles
from eotensor.engine.tiling import strip_plan
from eotensor.geometry import Grid, Window

BYTES_PER_CROSSING = 128
"""Working memory per crossing of a row (edge, row, x, S, line, sort key, temporaries), for strip sizes."""

_POINT, _LINE, _RING, _POLYGON = 0, 1, 2, 3
_MULTI = (4, 5, 6, 7)  # MultiPoint, MultiLineString, MultiPolygon, GeometryCollection


def explode(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(parts, owner): the single points, lines and polygons of ``geometries``, nested collections opened,
    null and empty geometries dropped; ``owner[k]`` is the index of the feature part ``k`` comes from."""
    import shapely

    geometries = np.asarray(geometries, dtype=object)
    owner = np.arange(len(geometries))
    while True:
        keep = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
        geometries, owner = geometries[keep], owner[keep]
        multi = np.isin(shapely.get_type_id(geometries), _MULTI)
        if not multi.any():
            return geometries, owner
        parts, index = shapely.get_parts(geometries[multi], return_index=True)
        geometries = np.concatenate([geometries[~multi], parts])
        owner = np.concatenate([owner[~multi], owner[multi][index]])


def _centres(axis: Any) -> np.ndarray:
    """The pixel centres of an axis, ascending, as OTB computes them (``origin + spacing * index``)."""
    return np.sort(axis.point(np.arange(axis.size, dtype=np.float64)))


def below(centres: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many of ``centres`` (ascending, evenly spaced) are strictly below each value: NumPy's
    ``searchsorted(centres, values, "left")``, by arithmetic, the estimate corrected against the centres
    themselves so that every comparison is the exact one."""
    n = len(centres)
    step = (centres[-1] - centres[0]) / (n - 1) if n > 1 else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.clip(np.ceil((values - centres[0]) / step), 0, n).astype(np.int64)
    # the estimate is off by one at most (float rounding near a centre): one step each way settles it
    k -= (k > 0) & (centres[np.maximum(k - 1, 0)] >= values)
    k += (k < n) & (centres[np.minimum(k, n - 1)] < values)
    return k


class _Edges:
    """The non-horizontal edges of every polygon's rings, with the image rows each one spans."""

    def __init__(self, polygons: np.ndarray, grid: Grid) -> None:
        import shapely

        rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
        first = np.ones(len(rings), dtype=bool)
        first[1:] = ring_polygon[1:] != ring_polygon[:-1]
        holed = np.zeros(len(polygons), dtype=bool)
        holed[ring_polygon[~first]] = True
        xy, coord_ring = shapely.get_coordinates(rings, return_index=True)
        start = np.flatnonzero(coord_ring[1:] == coord_ring[:-1])
        x1, y1, x2, y2 = xy[start, 0], xy[start, 1], xy[start + 1, 0], xy[start + 1, 1]
        slanted = y1 != y2  # a horizontal edge never counts (nothing is strictly above one end and not the other)
        start, x1, y1, x2, y2 = start[slanted], x1[slanted], y1[slanted], x2[slanted], y2[slanted]
        self.ring = coord_ring[start]
        self.exterior = first[self.ring]
        self.polygon = ring_polygon[self.ring]
        self.holed = holed[self.polygon]
        self.x1, self.y1, self.x2, self.y2 = x1, y1, x2, y2
        self.slope = (x2 - x1) / (y2 - y1)
        # rows whose centre y satisfies min(y1, y2) <= y < max(y1, y2)
        ys = _centres(grid.y)
        lo, hi = below(ys, np.minimum(y1, y2)), below(ys, np.maximum(y1, y2))
        if grid.y.spacing < 0:  # row r has the (height - 1 - r)-th smallest centre
            lo, hi = grid.height - hi, grid.height - lo
        self.row_start, self.row_stop = lo, hi
        self.row_y = grid.y.point(np.arange(grid.height, dtype=np.float64))
        self.xs = _centres(grid.x)

    def _settle_ties(self, edge: np.ndarray, y: np.ndarray, x: np.ndarray, left: np.ndarray) -> None:
        """Recount, in exact rational arithmetic, the crossings that float rounding puts within a hair of a
        column centre: a centre exactly on an edge is then in on a left edge and out on a right one, whatever
        the rounding of the slope (a centre on a slanted edge is common with lattice coordinates)."""
        xs, n = self.xs, len(self.xs)
        tol = 1e-9 * np.maximum(1.0, np.abs(x))
        after = np.where(left < n, xs[np.minimum(left, n - 1)] - x, np.inf)
        before = np.where(left > 0, x - xs[np.maximum(left - 1, 0)], np.inf)
        for k in np.flatnonzero((after < tol) | (before < tol)):
            e = edge[k]
            x1, y1, x2, y2 = (Fraction(float(v)) for v in (self.x1[e], self.y1[e], self.x2[e], self.y2[e]))
            exact = x1 + (Fraction(float(y[k])) - y1) * (x2 - x1) / (y2 - y1)
            j = int(left[k])  # within one of the exact count: settle against the neighbouring centres
            while j > 0 and Fraction(float(xs[j - 1])) >= exact:
                j -= 1
            while j < n and Fraction(float(xs[j])) < exact:
                j += 1
            left[k] = j

    def max_crossings_per_row(self, height: int) -> int:
        """The most edges any one row crosses (what a strip's memory depends on)."""
        if not len(self.row_start):
            return 0
        active = np.zeros(height + 1, dtype=np.int64)
        np.add.at(active, self.row_start, 1)
        np.add.at(active, self.row_stop, -1)
        return int(np.cumsum(active).max())

    def spans(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(polygon, row, start, stop)``: the runs of pixels of rows ``window.row .. row_stop`` whose centre lies
        in each polygon, ``start .. stop`` counted in column centres ascending (the S of the crossings), one run
        per pair of crossings that encloses centres.

        Each crossing is reduced to S, the number of column centres strictly left of it: a centre is inside
        when the crossings at or left of it leave it inside, so a line's inside centres are the S differences
        between consecutive crossings where the state is "inside". Crossings with equal S enclose no centre,
        so sorting by S (integers) instead of x changes nothing.
        """
        r0, r1 = window.row, window.row_stop
        pick = np.flatnonzero((self.row_start < r1) & (self.row_stop > r0))
        first = np.maximum(self.row_start[pick], r0)
        rows = np.minimum(self.row_stop[pick], r1) - first
        pick, first, rows = pick[rows > 0], first[rows > 0], rows[rows > 0]
        empty = np.zeros(0, dtype=np.int64)
        if not len(pick):
            return empty, empty, empty, empty
        edge = np.repeat(pick, rows)
        row = np.repeat(first - np.cumsum(rows) + rows, rows) + np.arange(len(edge))
        y = self.row_y[row]
        x = self.x1[edge] + (y - self.y1[edge]) * self.slope[edge]
        left = below(self.xs, x)
        self._settle_ties(edge, y, x, left)
        line = self.polygon[edge] * (r1 - r0) + (row - r0)  # one scan line of one polygon
        holed = self.holed[edge]
        simple = ~holed
        parts = [_even_odd(line[simple], left[simple], len(self.xs) + 1)]
        if holed.any():
            parts.append(_outside_holes(line[holed], left[holed], self.ring[edge[holed]], self.exterior[edge[holed]]))
        line, start, stop = (np.concatenate(arrays) for arrays in zip(*parts))
        keep = stop > start
        line, start, stop = line[keep], start[keep], stop[keep]
        return line // (r1 - r0), line % (r1 - r0) + r0, start, stop

    def count(self, window: Window, n_polygons: int) -> np.ndarray:
        """Pixels of rows ``window.row .. row_stop`` whose centre lies in each polygon (int64, one per polygon)."""
        polygon, _, start, stop = self.spans(window)
        return np.bincount(polygon, weights=stop - start, minlength=n_polygons).astype(np.int64)


def _even_odd(line: np.ndarray, left: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inside runs ``(line, start, stop)`` of polygons with one ring: between the 1st and 2nd crossing of a line,
    the 3rd and 4th...

    A closed ring crosses every line an even number of times, so once sorted by (line, S) the crossings pair
    up (0, 1), (2, 3), ... globally, each pair within one line.
    """
    key = line * base + left
    key.sort()  # by polygon, line, then S
    return key[::2] // base, key[::2] % base, key[1::2] % base


def _outside_holes(line: np.ndarray, left: np.ndarray, ring: np.ndarray,
                   exterior: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inside runs ``(line, start, stop)`` of polygons with holes, by OTB's rule: inside the exterior ring and in
    no hole (which differs from even-odd when holes overlap or leave the shell)."""
    order = np.lexsort((left, line))
    line, left, ring, exterior = line[order], left[order], ring[order], exterior[order]
    # each ring's state flips at each of its crossings: +1 entering, -1 leaving, in x order
    by_ring = np.lexsort((ring, line))  # stable: x order kept within a ring
    starts = np.flatnonzero(np.r_[True, (line[by_ring][1:] != line[by_ring][:-1])
                                  | (ring[by_ring][1:] != ring[by_ring][:-1])])
    rank = np.arange(len(by_ring)) - np.repeat(starts, np.diff(np.r_[starts, len(by_ring)]))
    flip = np.empty(len(line), dtype=np.int64)
    flip[by_ring] = np.where(rank % 2 == 0, 1, -1)
    # the state after each crossing, counted from its line's start
    starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    head = np.repeat(starts, np.diff(np.r_[starts, len(line)]))
    outer_flip, hole_flip = np.where(exterior, flip, 0), np.where(exterior, 0, flip)
    outer, holes = np.cumsum(outer_flip), np.cumsum(hole_flip)
    outer -= outer[head] - outer_flip[head]
    holes -= holes[head] - hole_flip[head]
    inside = np.flatnonzero((outer[:-1] > 0) & (holes[:-1] == 0) & (line[1:] == line[:-1]))
    return line[inside], left[inside], left[inside + 1]


def _point_counts(points: np.ndarray, grid: Grid) -> np.ndarray:
    """1 where the point's pixel (half-up rounding) is in the image, else 0."""
    import shapely

    col, row = grid.x.index(shapely.get_x(points)), grid.y.index(shapely.get_y(points))
    return ((col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)).astype(np.int64)


def bounding_regions(geometries: np.ndarray, grid: Grid) -> np.ndarray:
    """OTB's "considered region" of each geometry: ``(first col, last col, first row, last row)`` of the pixels
    holding its envelope's corners (half-up rounding), not clipped to the image; -1 rows for null or empty."""
    import shapely

    geometries = np.asarray(geometries, dtype=object)
    regions = np.full((len(geometries), 4), -1, dtype=np.int64)
    valid = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    if valid.any():
        xmin, ymin, xmax, ymax = shapely.bounds(geometries[valid]).T
        cols = np.sort(np.stack([grid.x.index(xmin), grid.x.index(xmax)]), axis=0)
        rows = np.sort(np.stack([grid.y.index(ymin), grid.y.index(ymax)]), axis=0)
        regions[valid] = np.column_stack([cols[0], cols[1], rows[0], rows[1]])
    return regions


def considered(geometries: Sequence[Any] | np.ndarray, grid: Grid) -> np.ndarray:
    """Which features OTB lists, even with no pixel: those that meet the image's extent (pixel corners, GEOS
    ``intersects``) and whose considered region (:func:`bounding_regions`) meets the image."""
    import shapely

    geometries = np.asarray(geometries, dtype=object)
    regions = bounding_regions(geometries, grid)
    meets = ((regions[:, 1] >= 0) & (regions[:, 0] < grid.width) & (regions[:, 3] >= 0) & (regions[:, 2] < grid.height)
             & ~(shapely.is_missing(geometries) | shapely.is_empty(geometries)))
    left, bottom, right, top = extent(grid)
    meets[meets] = shapely.intersects(geometries[meets], shapely.box(left, bottom, right, top))
    return meets


def extent(grid: Grid) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the pixels' corners."""
    xs = (grid.x.point(-0.5), grid.x.point(grid.width - 0.5))
    ys = (grid.y.point(-0.5), grid.y.point(grid.height - 0.5))
    return min(xs), min(ys), max(xs), max(ys)


def _line_pixels(lines: np.ndarray, regions: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(line, row, col)``: the pixels of each feature's considered region (``regions``, one row per line) whose
    closed square the line touches (GEOS ``intersects``), as OTB's ``IsSampleOnLine``; ``line`` indexes ``lines``.

    Candidates are the 3x3 neighbourhoods of the pixels holding the vertices of the line densified to a quarter
    pixel: a pixel whose square the line touches has its centre within 3/4 pixel of such a vertex.
    """
    import shapely

    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    step = min(abs(grid.x.spacing), abs(grid.y.spacing)) / 4
    hx, hy = abs(grid.x.spacing) / 2, abs(grid.y.spacing) / 2
    near = np.arange(-1, 2)
    for k, (line, (c0, c1, r0, r1)) in enumerate(zip(lines, regions)):
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, grid.width - 1), min(r1, grid.height - 1)
        if c0 > c1 or r0 > r1:
            continue
        xy = shapely.get_coordinates(shapely.segmentize(line, step))
        cols = (grid.x.index(xy[:, 0])[:, None, None] + near[None, :, None]).repeat(3, axis=2).ravel()
        rows = (grid.y.index(xy[:, 1])[:, None, None] + near[None, None, :]).repeat(3, axis=1).ravel()
        rows, cols = np.unique(np.stack([rows, cols]), axis=1)
        keep = (cols >= c0) & (cols <= c1) & (rows >= r0) & (rows <= r1)
        rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
        x, y = grid.x.point(cols), grid.y.point(rows)
        shapely.prepare(line)
        touched = shapely.intersects(line, shapely.box(x - hx, y - hy, x + hx, y + hy))
        found.append((np.full(int(touched.sum()), k, np.int64), rows[touched], cols[touched]))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    line_index, row, col = (np.concatenate(arrays) for arrays in zip(*found))
    return line_index, row, col


def _line_counts(lines: np.ndarray, regions: np.ndarray, grid: Grid) -> np.ndarray:
    """Pixels each line touches (:func:`_line_pixels`), one count per line."""
    return np.bincount(_line_pixels(lines, regions, grid)[0], minlength=len(lines)).astype(np.int64)


def feature_counts(geometries: Sequence[Any] | np.ndarray, grid: Grid, ram_mb: float | None = None,
                   scheduler: str = "threads", workers: int | None = None, param: str = "ram") -> np.ndarray:
    """Pixels of ``grid`` each feature covers (int64, one per geometry), by OTB's rules (see the module).

    ``geometries`` are shapely geometries in the grid's CRS (None allowed). Polygons are counted in full-width
    strips sized from the memory budget ``ram_mb`` (the parameter ``param``; default ``OTB_MAX_RAM_HINT`` or 256)
    by the executor ``scheduler`` with ``workers`` threads.
    """
    import shapely

    geometries = np.asarray(geometries, dtype=object)
    parts, owner = explode(geometries)
    kind = shapely.get_type_id(parts)
    per_part = np.zeros(len(parts), dtype=np.int64)
    points = kind == _POINT
    per_part[points] = _point_counts(parts[points], grid)
    lines = (kind == _LINE) | (kind == _RING)
    per_part[lines] = _line_counts(parts[lines], bounding_regions(geometries, grid)[owner[lines]], grid)
    polygons = np.flatnonzero(kind == _POLYGON)
    if len(polygons):
        edges = _Edges(parts[polygons], grid)
        pixel_bytes = BYTES_PER_CROSSING * edges.max_crossings_per_row(grid.height) / max(1, grid.width)
        plan = strip_plan(grid, pixel_bytes, ram_mb, param=param)
        total = np.zeros(len(polygons), dtype=np.int64)

        def sink(counts: np.ndarray, window: Window) -> None:
            total[:] += counts

        run_tiles(lambda window: edges.count(window, len(polygons)), plan, sink, scheduler, workers)
        per_part[polygons] = total
    return np.bincount(owner, weights=per_part, minlength=len(geometries)).astype(np.int64)


def class_counts(counts: np.ndarray, classes: Sequence[str], listed: np.ndarray | None = None) -> dict[str, int]:
    """Pixels per class: the counts of the features of each class summed, for the classes of the features
    that cover a pixel or are ``listed`` (:func:`considered`, which OTB lists with 0)."""
    counts = np.asarray(counts)
    keep = (counts > 0) if listed is None else (counts > 0) | np.asarray(listed, dtype=bool)
    totals: dict[str, int] = {}
    for count, name, kept in zip(counts.tolist(), classes, keep.tolist()):
        if kept:
            totals[name] = totals.get(name, 0) + count
    return totals


Spans = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(feature, row, col_start, col_stop)`` (int64 each): runs of pixels of one image row covered by one feature."""


def feature_spans(geometries: Sequence[Any] | np.ndarray, grid: Grid, ram_mb: float | None = None,
                  scheduler: str = "threads", workers: int | None = None, param: str = "ram") -> Spans:
    """The pixels of ``grid`` each feature covers, as runs along rows, by the rules :func:`feature_counts` counts
    with (the same sweep): a polygon's pixels whose centre is inside, a point's pixel (half-up rounding), the
    pixels a line's path touches within its considered region (one-pixel runs), as OTB's sampling takes them.
    Overlapping features, and the overlapping parts of one multi-geometry, each give their own runs; runs come
    sorted by row.

    Polygons are swept in full-width strips sized from ``ram_mb`` by ``scheduler``, as :func:`feature_counts`.
    """
    import shapely

    geometries = np.asarray(geometries, dtype=object)
    parts, owner = explode(geometries)
    kind = shapely.get_type_id(parts)
    found: list[Spans] = []
    points = np.flatnonzero(kind == _POINT)
    if len(points):
        col = grid.x.index(shapely.get_x(parts[points])).astype(np.int64)
        row = grid.y.index(shapely.get_y(parts[points])).astype(np.int64)
        inside = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)
        found.append((owner[points][inside], row[inside], col[inside], col[inside] + 1))
    lines = np.flatnonzero((kind == _LINE) | (kind == _RING))
    if len(lines):
        line, row, col = _line_pixels(parts[lines], bounding_regions(geometries, grid)[owner[lines]], grid)
        found.append((owner[lines][line], row, col, col + 1))
    polygons = np.flatnonzero(kind == _POLYGON)
    if len(polygons):
        edges = _Edges(parts[polygons], grid)
        pixel_bytes = BYTES_PER_CROSSING * edges.max_crossings_per_row(grid.height) / max(1, grid.width)
        plan = strip_plan(grid, pixel_bytes, ram_mb, param=param)

        def sink(spans: Spans, window: Window) -> None:
            polygon, row, start, stop = spans
            if grid.x.spacing < 0:  # column c has the (width - 1 - c)-th smallest centre
                start, stop = grid.width - stop, grid.width - start
            found.append((owner[polygons][polygon], row, start, stop))

        run_tiles(edges.spans, plan, sink, scheduler, workers)
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    feature, row, start, stop = (np.concatenate(arrays).astype(np.int64) for arrays in zip(*found))
    order = np.argsort(row, kind="stable")
    return feature[order], row[order], start[order], stop[order]
