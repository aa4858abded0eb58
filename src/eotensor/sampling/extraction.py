"""Patches around points, from several sources: OTBTF's PatchesExtraction as pure functions and streamed passes.

Three steps, none of which loads a whole image:

1. :func:`select_samples` decides, for every feature of a vector layer in stored order, whether it yields a
   sample: its field must be set ("missing field": skipped), it must be a point ("not a point"), its patch must
   lie wholly inside every source ("outside", vectorised with :func:`patch_starts`) and, for the sources with a
   no-data value, hold no pixel where any band equals it ("no-data", a strip pass: :func:`nodata_patches`).
2. The number of samples N is then known, so each source's patches image (OTBTF's format, :func:`patches_grid`)
   is created at its final size.
3. :func:`extract_patches` streams each source once more in full-width strips, in raster order (sequential
   reads), and writes every accepted point's patch to rows ``[k * psy, (k + 1) * psy)`` of the output, where k
   is the point's rank in input order: directly, a run of consecutive ranks per call, when the points come
   roughly in raster order; through a scratch file gathered in rank order when they come in random order.

Strip passes go through :func:`~eotensor.engine.tiling.strip_plan` and
:func:`~eotensor.engine.execute.run_tiles`: strips are read in worker threads while the calling thread
writes, and memory stays bounded by the budget whatever the image size or the number of points.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from eotensor.engine.execute import default_workers, run_tiles
from eotensor.engine.progress import Progress
from eotensor.engine.tiling import ram_budget_mb, strip_plan
from eotensor.errors import InputFileError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.boxes import BoxCounts
from eotensor.geometry.grid import Axis
from eotensor.io.atomic import error_text
from eotensor.io.extended import OutputTarget
from eotensor.io.geotiff import GeoTiffWriter
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.io.raster import RasterSource
from eotensor.io.vector import VectorLayer, integer_values, point_coordinates, reproject_xy, target_crs

__all__ = [
    "Counts",
    "PatchExtraction",
    "PatchSource",
    "Selection",
    "extract_patches",
    "nodata_mask",
    "nodata_patches",
    "patch_starts",
    "patches_grid",
    "select_samples",
    "strip_layout",
    "warn_file_nodata",
]


@dataclass(frozen=True)
class PatchSource:
    """One ``sourceN`` group: the stacked raster, the patch size ``(x, y)`` in its own pixels, its no-data value."""

    raster: RasterSource
    patch: tuple[int, int]
    """(patchsizex, patchsizey)."""
    nodata: float | None = None
    """A patch holding a pixel where any band equals this value is rejected (NaN: any NaN band)."""
    name: str = "source1"
    """The parameter prefix, for messages."""

    def check_size(self) -> None:
        """A patch larger than the image is a one-line :class:`ParameterError` naming the source and sizes."""
        psx, psy = self.patch
        grid = self.raster.grid
        if psx > grid.width or psy > grid.height:
            key = "patchsizex" if psx > grid.width else "patchsizey"
            raise ParameterError(
                f'{self.name}.{key}: a patch of {psx}x{psy} pixels is larger than {self.name} '
                f'"{self.raster.paths[0]}" ({grid.width}x{grid.height} pixels); expected at most the image size'
            )


@dataclass(frozen=True)
class Counts:
    """What happened to the features: accepted, rejected (and why), skipped."""

    accepted: int
    outside: int
    nodata: int
    not_point: int
    missing_field: int

    @property
    def rejected(self) -> int:
        """Features rejected, whatever the reason (skipped features are not counted)."""
        return self.outside + self.nodata + self.not_point

    def reasons(self) -> str:
        """``"3 outside, 1 no-data, 0 not a point"``."""
        return f"{self.outside} outside, {self.nodata} no-data, {self.not_point} not a point"

    def summary(self) -> str:
        """One line for stderr."""
        return (f"{self.accepted} accepted; {self.rejected} rejected ({self.reasons()}); "
                f"{self.missing_field} skipped (missing field)")


@dataclass(frozen=True)
class Selection:
    """The accepted features, in input order, and where their patches start in each source."""

    features: np.ndarray
    """Positions (0-based, stored order) of the accepted features in the layer."""
    labels: np.ndarray
    """Their field values (int64)."""
    starts: tuple[tuple[np.ndarray, np.ndarray], ...]
    """Per source: (first row, first col) of each accepted feature's patch, in that source's pixels."""
    counts: Counts

    def __len__(self) -> int:
        return len(self.features)


def patch_starts(grid: Grid, x: np.ndarray, y: np.ndarray, patch: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first row, first col, inside) of the ``patch``-sized patch centred on each point ``(x[i], y[i])``.

    The point's pixel comes from :meth:`Axis.index` (half up); the patch starts ``floor(ps / 2)`` pixels
    before it on each axis, so for an even size the point's pixel is at offset ``ps / 2`` (OTBTF). ``inside``
    says whether the whole patch lies in the grid; non-finite coordinates are outside.
    """
    psx, psy = patch
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    rows = np.zeros(len(x), np.int64)
    cols = np.zeros(len(x), np.int64)
    rows[finite] = grid.y.index(y[finite]) - psy // 2
    cols[finite] = grid.x.index(x[finite]) - psx // 2
    inside = finite & _fits(rows, psy, grid.y) & _fits(cols, psx, grid.x)
    return rows, cols, inside


def _fits(start: np.ndarray, size: int, axis: Axis) -> np.ndarray:
    return (start >= 0) & (start + size <= axis.size)


def patches_grid(grid: Grid, patch: tuple[int, int], n: int) -> Grid:
    """The grid of a patches image (OTBTF's format): ``psx`` wide, ``n * psy`` high, the source's signed
    spacing, pixel (0, 0)'s centre at (0, 0), no CRS."""
    psx, psy = patch
    return Grid(Axis(0.0, grid.x.spacing, psx), Axis(0.0, grid.y.spacing, n * psy))


def nodata_mask(pixels: np.ndarray, nodata: float) -> np.ndarray:
    """Where any band of ``pixels`` (rows, cols, bands) equals ``nodata`` (float32 comparison; NaN: isnan)."""
    if np.isnan(nodata):
        return np.isnan(pixels).any(axis=2)
    return (pixels == np.float32(nodata)).any(axis=2)


_GEOMETRY_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
                   5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


class _Points:
    """Points sorted by patch start row, to find those whose patch starts in a strip in one search."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, patch: tuple[int, int]) -> None:
        self.rows, self.cols, self.patch = rows, cols, patch
        self.order = np.argsort(rows, kind="stable")
        self.sorted_rows = rows[self.order]

    def in_strip(self, strip: Window) -> tuple[np.ndarray, Window] | None:
        """The points whose patch starts in ``strip``'s rows, and the window their patches cover (None: none)."""
        lo, hi = np.searchsorted(self.sorted_rows, [strip.row, strip.row_stop])
        if lo == hi:
            return None
        points = self.order[lo:hi]
        psx, psy = self.patch
        cols = self.cols[points]
        c0, c1 = int(cols.min()), int(cols.max()) + psx
        return points, Window(strip.row, c0, int(self.sorted_rows[hi - 1]) + psy - strip.row, c1 - c0)


def _strip_budget(ram_mb: float | None, workers: int | None, param: str) -> float:
    """The budget of one strip: the whole budget shared by the strips in flight (``workers`` + 1)."""
    workers = default_workers() if workers is None else workers
    return ram_budget_mb(ram_mb, param=param) / (max(0, workers) + 1)


def nodata_patches(source: PatchSource, rows: np.ndarray, cols: np.ndarray, ram_mb: float | None = None,
                   scheduler: str = "threads", workers: int | None = None, param: str = "ram") -> np.ndarray:
    """Whether the patch starting at each ``(rows[i], cols[i])`` holds a pixel where any band is no-data.

    One strip pass over the source (patches must lie inside it): each point belongs to the strip holding its
    patch's first row, the strip is read with ``psy - 1`` more rows and only the columns its points' patches
    cover, and :class:`~eotensor.geometry.boxes.BoxCounts` counts the no-data pixels of all its patches at once.
    """
    hits = np.zeros(len(rows), dtype=bool)
    if source.nodata is None or not len(rows):
        return hits
    psx, psy = source.patch
    raster = source.raster
    points = _Points(rows, cols, source.patch)
    # float32 pixels, the comparison, the mask and BoxCounts' two int64 tables, per pixel
    pixel_bytes = 5 * raster.count + 17
    plan = strip_plan(raster.grid, pixel_bytes, _strip_budget(ram_mb, workers, param), halo_rows=psy - 1,
                      param=param)

    def compute(strip: Window) -> tuple[np.ndarray, np.ndarray] | None:
        found = points.in_strip(strip)
        if found is None:
            return None
        chosen, window = found
        counts = BoxCounts(nodata_mask(raster.read(window), source.nodata))
        r0, c0 = rows[chosen] - window.row, cols[chosen] - window.col
        return chosen, counts.count(r0, r0 + psy, c0, c0 + psx) > 0

    def sink(result: tuple[np.ndarray, np.ndarray] | None, strip: Window) -> None:
        if result is not None:
            hits[result[0]] = result[1]

    run_tiles(compute, plan, sink, scheduler, workers)
    return hits


def select_samples(layer: VectorLayer, sources: Sequence[PatchSource], ram_mb: float | None = None,
                   scheduler: str = "threads", workers: int | None = None, param: str = "ram") -> Selection:
    """Which features of ``layer`` yield a sample in every source, in stored order, and where their patches start.

    Features whose field is null are skipped ("missing field"); the others are rejected when not a point,
    when their patch leaves any source (each point is reprojected into each source's CRS, decision 9c) or,
    for a source with a no-data value, when their patch holds a no-data pixel. Non-integer field values are an
    error (:func:`~eotensor.io.vector.integer_values`).
    """
    values, present = integer_values(layer)
    x, y, is_point = point_coordinates(layer.geometries)
    if not is_point.any():
        import shapely

        geometries = layer.geometries[~shapely.is_empty(layer.geometries)]
        kinds = sorted({int(kind) for kind in shapely.get_type_id(geometries) if kind >= 0})
        found = ", ".join(_GEOMETRY_NAMES.get(k, str(k)) for k in kinds) or "no geometry"
        raise InputFileError(f'{layer.param}: "{layer.path}" holds no point features (found: {found}); '
                             "expected points")
    candidates = present & is_point
    inside = candidates.copy()
    starts: list[tuple[np.ndarray, np.ndarray]] = []
    for source in sources:
        grid = source.raster.grid
        points_crs = target_crs(layer, grid.crs, source.raster.paths[0])
        try:
            xs, ys = reproject_xy(x[candidates], y[candidates], points_crs, grid.crs)
        except Exception as error:  # noqa: BLE001 - PROJ/GDAL errors of any kind
            raise InputFileError(
                f'{layer.param}: cannot move the points of "{layer.path}" ({points_crs.to_string()}) into the CRS '
                f'of {source.name} "{source.raster.paths[0]}" ({error_text(error)}); expected points in a CRS '
                "that covers the image"
            ) from None
        rows, cols = np.zeros(len(x), np.int64), np.zeros(len(x), np.int64)
        rows[candidates], cols[candidates], fits = patch_starts(grid, xs, ys, source.patch)
        inside[candidates] &= fits
        starts.append((rows, cols))
    clean = inside.copy()
    for source, (rows, cols) in zip(sources, starts):
        if source.nodata is not None:
            kept = np.flatnonzero(clean)
            clean[kept[nodata_patches(source, rows[kept], cols[kept], ram_mb, scheduler, workers, param)]] = False
    features = np.flatnonzero(clean)
    counts = Counts(
        accepted=len(features),
        outside=int((candidates & ~inside).sum()),
        nodata=int((inside & ~clean).sum()),
        not_point=int((present & ~is_point).sum()),
        missing_field=int((~present).sum()),
    )
    return Selection(features, values[features], tuple((r[features], c[features]) for r, c in starts), counts)


class PatchWriter(Protocol):
    """Where :func:`extract_patches` puts patches: a :class:`~eotensor.io.geotiff.GeoTiffWriter` or any object
    with ``write(array (bands, rows, cols), window)``; an optional ``target.dtype`` is converted to early."""

    def write(self, array: np.ndarray, window: Any) -> None: ...


def extract_patches(source: PatchSource, rows: np.ndarray, cols: np.ndarray, writer: PatchWriter,
                    ram_mb: float | None = None, scheduler: str = "threads", workers: int | None = None,
                    progress: str | None = None, param: str = "ram") -> None:
    """Write the patch starting at ``(rows[k], cols[k])`` to rows ``[k * psy, (k + 1) * psy)`` of ``writer``.

    One strip pass in raster order: worker threads read each strip (with ``psy - 1`` more rows, only the
    columns its points' patches cover; strips without points are not read) and convert it to the output's
    pixel type (once per pixel, not once per patch pixel); the calling thread copies the patches out in chunks.
    Where the ranks found in one strip are mostly consecutive (points in raster order, or one strip), each run
    of consecutive ranks is written in one call. Otherwise (points in random order: one GDAL call per patch
    would cost ~0.1 ms each) the patches go first, in strip order, to an anonymous scratch file next to the
    output (sequential writes), then are gathered in rank order, one ``preadv`` per patch, and written in
    large consecutive windows. Memory: the strips in flight plus one chunk of patches, within the budget.
    ``progress``: a label to show a progress bar with on stderr (long runs only).
    """
    if not len(rows):
        return
    psx, psy = source.patch
    raster = source.raster
    bands = raster.count
    points = _Points(rows, cols, source.patch)
    target = getattr(writer, "target", None)
    dtype, nodata = (target.dtype, target.nodata) if target is not None else (np.dtype(np.float32), None)
    budget = _strip_budget(ram_mb, workers, param)
    plan = strip_plan(raster.grid, bands * (4 + dtype.itemsize), budget, halo_rows=psy - 1, param=param)
    patch_bytes = psx * psy * bands * dtype.itemsize
    # A chunk of patches takes at most an eighth of a strip's budget.
    chunk = max(1, int(budget * 2**20 / 8 // patch_bytes))
    strip_of = rows // plan.tile.rows
    runs = 1 + int(np.count_nonzero(np.diff(strip_of)))  # within a strip, sorted ranks are consecutive
    scratch = _Scratch(writer, len(rows), patch_bytes) if runs > len(rows) // 4 else None
    bar = Progress(len(plan) + (scratch is not None), progress) if progress is not None else None

    def compute(strip: Window) -> tuple[np.ndarray, Window, np.ndarray] | None:
        found = points.in_strip(strip)
        if found is None:
            return None
        chosen, window = found
        return np.sort(chosen), window, _band_first(raster.read(window), dtype, nodata)

    def sink(result: tuple[np.ndarray, Window, np.ndarray] | None, strip: Window) -> None:
        if result is not None:
            chosen, window, pixels = result
            for start in range(0, len(chosen), chunk):
                ranks = chosen[start:start + chunk]
                patches = np.empty((len(ranks), bands, psy, psx), dtype)
                starts = zip((rows[ranks] - window.row).tolist(), (cols[ranks] - window.col).tolist())
                for i, (r, c) in enumerate(starts):
                    patches[i] = pixels[:, r:r + psy, c:c + psx]
                if scratch is not None:
                    scratch.append(ranks, patches)
                else:
                    _write_runs(writer, ranks, patches)
        if bar:
            bar.advance()

    try:
        run_tiles(compute, plan, sink, scheduler, workers)
        if scratch is not None:
            scratch.copy_to(writer, chunk, (bands, psy, psx), dtype)
            if bar:
                bar.advance()
    finally:
        if scratch is not None:
            scratch.close()


class _Scratch:
    """An anonymous file (deleted on close, or by the system if the process dies) holding patches in the order
    they were cut, and where each rank's patch lies in it."""

    def __init__(self, writer: PatchWriter, n: int, patch_bytes: int) -> None:
        path = getattr(writer, "path", None)
        try:  # next to the output (its file system has room for it), else in the system's temporary folder
            self.file = tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path)) if path else None)
        except OSError:
            self.file = tempfile.TemporaryFile()
        self.slot = np.full(n, -1, np.int64)
        self.count = 0
        self.patch_bytes = patch_bytes

    def append(self, ranks: np.ndarray, patches: np.ndarray) -> None:
        """Add ``patches[i]`` (a C-contiguous (m, bands, psy, psx) array) for rank ``ranks[i]``."""
        self.file.write(memoryview(np.ascontiguousarray(patches)).cast("B"))
        self.slot[ranks] = np.arange(self.count, self.count + len(ranks))
        self.count += len(ranks)

    def copy_to(self, writer: PatchWriter, chunk: int, shape: tuple[int, int, int], dtype: np.dtype) -> None:
        """Write every patch to ``writer`` in rank order, ``chunk`` patches (one window) at a time."""
        self.file.flush()
        fd = self.file.fileno()
        bands, psy, psx = shape
        n = len(self.slot)
        for k0 in range(0, n, chunk):
            m = min(chunk, n - k0)
            out = np.empty((bands, m * psy, psx), dtype)
            planes = [[out[b, i * psy:(i + 1) * psy] for b in range(bands)] for i in range(m)]
            for i, slot in enumerate(self.slot[k0:k0 + m].tolist()):
                got = os.preadv(fd, planes[i], slot * self.patch_bytes)
                if got != self.patch_bytes:
                    raise OSError(f"scratch file: read {got} of {self.patch_bytes} bytes of a patch")
            writer.write(out, Window(k0 * psy, 0, m * psy, psx))

    def close(self) -> None:
        self.file.close()


def _band_first(pixels: np.ndarray, dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """``pixels`` (rows, cols, bands) float32 as a C-contiguous (bands, rows, cols) array of the output type,
    converted as :func:`~eotensor.io.pixeltypes.to_pixel_type` does. When every value is finite and within the
    type's range (an int16 image written as int16) the clamp changes nothing and is skipped: a plain cast."""
    planes = pixels.transpose(2, 0, 1)
    if dtype.kind in "iu" and dtype.itemsize <= 4 and pixels.size:  # the bounds are exact in float64
        info = np.iinfo(dtype)
        low, high = pixels.min(), pixels.max()  # NaN-propagating: a NaN fails the test below
        if info.min <= low and high <= info.max:
            return np.ascontiguousarray(planes, dtype=dtype)
    return np.ascontiguousarray(to_pixel_type(planes, dtype, nodata))


def _write_runs(writer: PatchWriter, ranks: np.ndarray, patches: np.ndarray) -> None:
    """Write ``patches[i]`` ((m, bands, psy, psx)) at rank ``ranks[i]`` (sorted), one call per run of
    consecutive ranks."""
    _, bands, psy, psx = patches.shape
    breaks = np.flatnonzero(np.diff(ranks) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(ranks)].tolist()):
        run = patches[lo:hi].transpose(1, 0, 2, 3).reshape(bands, (hi - lo) * psy, psx)
        writer.write(run, Window(int(ranks[lo]) * psy, 0, (hi - lo) * psy, psx))


def warn_file_nodata(source: PatchSource) -> None:
    """Warn when ``source`` has no ``nodata`` set but its files carry a no-data value (OTBTF ignores it too)."""
    if source.nodata is None:
        found = source.raster.nodata_files()
        if found:
            path, value = found[0]
            warnings.warn(f'{source.name}.il: "{path}" declares no-data {value:g}; eotensor (like OTBTF) ignores it '
                          f"unless {source.name}.nodata is set", stacklevel=2)


def strip_layout(target: OutputTarget, psy: int) -> OutputTarget:
    """``target`` laid out as one GeoTIFF strip per patch (``TILED=NO``, ``BLOCKYSIZE=psy``), so writing a patch
    fills whole blocks in any order; the user's own ``gdal:co`` layout (TILED, BLOCKXSIZE, BLOCKYSIZE) wins."""
    options = target.creation_options
    if not target.format.streamed or {"TILED", "BLOCKXSIZE", "BLOCKYSIZE"} & set(options):
        return target
    return replace(target, creation_options={"TILED": "NO", "BLOCKYSIZE": str(psy), **options})


class PatchExtraction:
    """PatchesExtraction as a value: the sources and the layer; the selection is computed on first use
    (:attr:`selection`), the patches images written by :meth:`write`."""

    def __init__(self, layer: VectorLayer, sources: Sequence[PatchSource], ram_mb: float | None = None,
                 scheduler: str = "threads", workers: int | None = None, param: str = "ram") -> None:
        self.layer, self.sources = layer, tuple(sources)
        self.ram_mb, self.scheduler, self.workers, self.param = ram_mb, scheduler, workers, param
        for source in self.sources:
            source.check_size()
        # GDAL sizes its block cache when it first reads (default: 5 % of RAM, 1.2 GB here, which the no-data pass
        # filled): strips are read once, so a quarter of the budget is plenty.
        os.environ.setdefault("GDAL_CACHEMAX", str(max(32, int(ram_budget_mb(ram_mb, param=param) / 4))))

    @cached_property
    def selection(self) -> Selection:
        """The accepted features and their patch starts (:func:`select_samples`)."""
        return select_samples(self.layer, self.sources, self.ram_mb, self.scheduler, self.workers, self.param)

    @property
    def counts(self) -> Counts:
        """How many features were accepted, rejected and skipped."""
        return self.selection.counts

    def write(self, outs: Sequence[OutputTarget], labels: OutputTarget | None = None,
              progress: bool = False) -> list[str]:
        """Write the patches image of every source (``outs[i]`` for source i+1) and the labels image; return
        the paths written. Every file appears under its name only once all are complete.

        No accepted sample is a one-line :class:`ParameterError` saying how many features were rejected and why.
        """
        selection = self.selection
        n = len(selection)
        if n == 0:
            counts = selection.counts
            raise ParameterError(
                f'vec: no patch extracted from "{self.layer.path}": {counts.rejected} feature(s) rejected '
                f"({counts.reasons()}), {counts.missing_field} skipped (missing field); expected points whose "
                "patches fall wholly inside every image, away from no-data pixels"
            )
        paths = []
        with ExitStack() as stack:  # on any failure every temporary file is deleted; commits happen together
            writers = []
            for source, target in zip(self.sources, outs):
                grid = patches_grid(source.raster.grid, source.patch, n)
                writer = GeoTiffWriter(strip_layout(target, source.patch[1]), width=grid.width,
                                       height=grid.height, count=source.raster.count, transform=grid.transform)
                writers.append(stack.enter_context(writer))
                paths.append(target.path)
            if labels is not None:
                grid = patches_grid(self.sources[0].raster.grid, (1, 1), n)
                writer = stack.enter_context(GeoTiffWriter(labels, width=1, height=n, count=1,
                                                           transform=grid.transform))
                writer.write(selection.labels.reshape(1, n, 1), Window(0, 0, n, 1))
                paths.append(labels.path)
            for source, (rows, cols), writer in zip(self.sources, selection.starts, writers):
                label = os.path.basename(writer.path) if progress else None
                extract_patches(source, rows, cols, writer, self.ram_mb, self.scheduler, self.workers, label,
                                self.param)
        return paths
