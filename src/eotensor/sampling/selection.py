"""PatchesSelection's sampling: grid candidates, the validity pass, the split scheduler and the balanced strategy.

Everything reproduces OTBTF's ``app/otbPatchesSelection.cxx`` (behaviour reference §5), including its C++
integer arithmetic: ``%`` and ``/`` truncate toward zero, so negative offsets and the grid position -1 of
the step-1 corner come out as OTBTF gives them. The pure functions (:func:`grid_axis`,
:func:`split_schedule`, :func:`split_groups`, :func:`chessboard_groups`, :func:`balanced_selection`) are
tested directly; :func:`select_patches` and :func:`label_histograms` are the streamed passes over rasters
(full-width strips through :func:`~eotensor.engine.execute.run_tiles`, so memory stays bounded).

Validity (§5.2), one of three paths:

* with ``nodata``: a pixel is valid where at least one band differs from it (a NaN no-data value matches
  NaN pixels), and where the mask, if any, is not 0. A candidate is accepted when its whole
  ``(2r + 1)²`` window, ``r = psize // 2``, is valid and inside the image (OTBTF's 1-pixel zero padding
  and box erosion, evaluated at the candidates only, with summed-area tables);
* without ``nodata`` but with a mask: the mask value at the candidate must be exactly 1 (no erosion);
* without either: every candidate is accepted.

Masks and label values are read as OTB reads a uint8 image: clamped to 0..255 and truncated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from eotensor.engine.execute import run_tiles
from eotensor.engine.tiling import strip_plan
from eotensor.errors import ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.boxes import BoxCounts
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.io.raster import RasterSource

GROUPS = ("train", "valid", "test")
"""Group k of a point goes to output ``out<GROUPS[k]>``; any other group (-1) goes to no file."""


def cpp_rem(a: Any, b: int) -> Any:
    """C++ ``a % b`` for integers: the remainder takes the sign of ``a`` (``-1 % 5 == -1``)."""
    return np.fmod(a, b)


def cpp_div(a: Any, b: int) -> Any:
    """C++ ``a / b`` for integers: the quotient is truncated toward zero (``-1 / 5 == 0``)."""
    return (np.asarray(a) - np.fmod(a, b)) // b


def grid_axis(size: int, psize: int, step: int, offset: int, nodata: bool) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pixel indices along one axis of ``size`` pixels, and their grid positions, increasing.

    OTBTF scans the image shrunk by ``r = psize // 2`` and keeps index ``p`` when
    ``(p - r - 1) % step == offset % step`` (C++ remainders), with grid position ``(p - r - 1) / step``.
    With ``nodata`` the scan runs on the 1-pixel-padded mask and the offset gains 1, so the candidates are
    ``c = r + ((offset + 1) % step) + k * step``; without, ``c = r + 1 + offset % step + k * step``, plus
    ``c = r`` at grid position -1 when ``step`` is 1 (or at 0 when ``offset % step`` is -1). Indices
    outside ``[0, size)`` (the padding) may appear on the no-data path; they are never valid.
    """
    r = psize // 2
    pad = 1 if nodata else 0
    p = np.arange(r, size + 2 * pad - r, dtype=np.int64)
    idx = p - (r + 1)
    keep = cpp_rem(idx, step) == cpp_rem(offset + pad, step)
    return p[keep] - pad, cpp_div(idx[keep], step)


def chessboard_groups(position_x: np.ndarray, position_y: np.ndarray) -> np.ndarray:
    """OTBTF's chessboard colour ``(kx + ky) % 2`` (C++): 0 train, 1 valid, -1 (grid position -1) no file."""
    return cpp_rem(np.asarray(position_x) + np.asarray(position_y), 2).astype(np.int8)


def split_schedule(proportions: Sequence[float], total: int, count: int, chunk: int = 1 << 16) -> np.ndarray:
    """The first ``count`` groups of OTBTF's deterministic split scheduler sized for ``total`` samples.

    Each proportion ``p > 0`` gets the increment ``sum / p`` and a counter from 0; a zero proportion gets no
    increment and the counter ``total``. Each next sample goes to the group with the smallest counter
    (the first on ties), whose counter then grows by its increment; all in float32, as OTBTF. Since every
    counter only grows, the sequence is the stable merge of the groups' counter sequences: computed here
    ``chunk`` samples at a time with NumPy, in memory bounded by ``chunk``.
    """
    props = np.asarray(proportions, dtype=np.float32)
    tot = np.float32(0)
    for prop in props:
        tot = np.float32(tot + prop)
    if not tot > 0:
        raise ValueError("split proportions are all zero")
    incs = [np.float32(tot / p) if p > 0 else np.float32(0) for p in props]
    heads = [np.float32(0) if p > 0 else np.float32(total) for p in props]
    out = np.empty(count, dtype=np.int8)
    done = 0
    while done < count:
        k = min(chunk, count - done)
        values, groups, runs = [], [], []
        for g, (head, inc) in enumerate(zip(heads, incs)):
            steps = np.full(k + 1, inc, dtype=np.float32)
            steps[0] = head
            run = np.cumsum(steps, dtype=np.float32)  # sequential float32 accumulation, as the C++ loop
            runs.append(run)
            values.append(run[:k])
            groups.append(np.full(k, g, dtype=np.int8))
        merged_values, merged_groups = np.concatenate(values), np.concatenate(groups)
        order = np.lexsort((merged_groups, merged_values))[:k]  # stable: a group's own samples keep their order
        taken = merged_groups[order]
        out[done:done + k] = taken
        for g in range(len(heads)):
            heads[g] = runs[g][np.count_nonzero(taken == g)]
        done += k
    return out


def split_groups(proportions: Sequence[float], total: int, count: int, shuffle: bool = False,
                 seed: int = 0) -> np.ndarray:
    """Groups of the first ``count`` accepted candidates under ``strategy split`` (§5.4).

    The sequence is drawn for ``total``, the maximum candidate count; with ``shuffle`` the whole sequence
    is shuffled by NumPy's generator seeded with ``seed`` (OTBTF's default-seeded ``std::shuffle`` is
    platform-dependent, so it cannot be reproduced), then its first ``count`` entries are used.
    """
    if count > total:
        raise ValueError(f"{count} accepted candidates but at most {total} grid positions")
    if not shuffle:
        return split_schedule(proportions, total, count)
    groups = split_schedule(proportions, total, total)
    np.random.default_rng(seed).shuffle(groups)
    return groups[:count]


def max_candidates(width: int, height: int, step: int) -> int:
    """OTBTF's bound on the number of candidates, for which the split sequence is drawn."""
    return (width // step + 1) * (height // step + 1)


@dataclass(frozen=True)
class Candidates:
    """The accepted grid candidates of an image, in raster order, with the numbers for the summary."""

    rows: np.ndarray
    """Pixel row of each accepted candidate (int64)."""
    cols: np.ndarray
    """Pixel column of each accepted candidate."""
    position_y: np.ndarray
    """Grid position (OTBTF's ``pos[1]``) of each accepted candidate."""
    position_x: np.ndarray
    """Grid position (OTBTF's ``pos[0]``)."""
    tested: int
    """How many grid positions inside the image were tested."""

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: np.ndarray) -> Candidates:
        """The candidates selected by ``keep`` (a boolean mask or indices), in that order."""
        return Candidates(self.rows[keep], self.cols[keep], self.position_y[keep], self.position_x[keep],
                          self.tested)


def uint8_mask(values: np.ndarray) -> np.ndarray:
    """Band 1 of a mask window as OTB reads a uint8 image (clamped to 0..255, truncated, NaN -> 0)."""
    return to_pixel_type(values[..., 0], np.uint8)


def select_patches(image: RasterSource, psize: int, step: int, offset: tuple[int, int] = (0, 0),
                   nodata: float | None = None, mask: RasterSource | None = None, ram_mb: float | None = None,
                   workers: int | None = None) -> Candidates:
    """The accepted grid candidates of ``image`` (``offset``: x, y), streamed over full-width strips.

    ``mask`` must have the image's size (the caller checks it). Strips are sized from ``ram_mb`` (the
    parameter ``ram``) with a halo of ``r`` rows on each side on the no-data path.
    """
    grid = image.grid
    r = psize // 2
    erode = nodata is not None
    cols, pos_x = grid_axis(grid.width, psize, step, offset[0], erode)
    rows, pos_y = grid_axis(grid.height, psize, step, offset[1], erode)
    inside_c = (cols >= 0) & (cols < grid.width)  # padding: always invalid
    inside_r = (rows >= 0) & (rows < grid.height)
    cols, pos_x, rows, pos_y = cols[inside_c], pos_x[inside_c], rows[inside_r], pos_y[inside_r]
    if erode:  # float32 pixels, their comparison, the valid mask, the summed-area table and its cumsum
        pixel_bytes = 5.0 * image.count + 17 + (6 if mask is not None else 0)
        halo = 2 * r
    else:
        pixel_bytes, halo = (5.0 if mask is not None else 1.0), 0
    plan = strip_plan(grid, pixel_bytes, ram_mb, halo_rows=halo, token=image.token, param="ram")
    full = (2 * r + 1) ** 2

    def accepted(window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(row indices into ``rows``, col indices into ``cols``) of the accepted candidates of one strip."""
        mine = np.flatnonzero((rows >= window.row) & (rows < window.row_stop))
        if not len(mine) or not len(cols):
            return mine[:0], mine[:0]
        strip_rows = rows[mine]
        if erode:
            top, bottom = max(0, strip_rows[0] - r), min(grid.height, strip_rows[-1] + r + 1)
            read = Window(top, 0, bottom - top, grid.width)
            pixels = image.read(read)
            same = np.isnan(pixels) if math.isnan(nodata) else pixels == np.float32(nodata)
            valid = ~same.all(axis=-1)
            if mask is not None:
                valid &= uint8_mask(mask.read(read)) != 0
            counts = BoxCounts(valid).count((strip_rows - r - top)[:, None], (strip_rows + r + 1 - top)[:, None],
                                            (cols - r)[None, :], (cols + r + 1)[None, :])
            ok = counts == full
        elif mask is not None:
            top, bottom = int(strip_rows[0]), int(strip_rows[-1]) + 1
            values = uint8_mask(mask.read(Window(top, 0, bottom - top, grid.width)))
            ok = values[(strip_rows - top)[:, None], cols[None, :]] == 1
        else:
            ok = np.ones((len(mine), len(cols)), dtype=bool)
        i, j = np.nonzero(ok)  # raster order
        return mine[i], j

    found: list[tuple[np.ndarray, np.ndarray]] = []
    run_tiles(accepted, plan, lambda result, window: found.append(result), workers=workers)
    i = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    j = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int64)
    return Candidates(rows[i], cols[j], pos_y[i], pos_x[j], len(rows) * len(cols))


def patch_points(grid: Grid, rows: np.ndarray, cols: np.ndarray, psize: int) -> tuple[np.ndarray, np.ndarray]:
    """The output point of each candidate pixel: its centre for an odd ``psize``; for an even one the centre
    moved by -|sx|/2 in x and -|sy|/2 in physical y (the lower-left corner of a north-up pixel), so that
    PatchesExtraction's half-up rounding gives a patch symmetric around the point."""
    x, y = grid.x.point(cols.astype(np.float64)), grid.y.point(rows.astype(np.float64))
    if psize % 2 == 0:
        x, y = x - 0.5 * abs(grid.x.spacing), y - 0.5 * abs(grid.y.spacing)
    return x, y


def label_histograms(labels: RasterSource, x: np.ndarray, y: np.ndarray, psize: int, nclasses: int,
                     ram_mb: float | None = None, workers: int | None = None,
                     param: str = "strategy.balanced.labelimage") -> tuple[np.ndarray, np.ndarray]:
    """(histograms, inside): the class counts of ``labels`` over the ``psize`` x ``psize`` patch around each
    point (OTBTF's ``UpdateDistributionFromPatch``: point -> index by half-up rounding, start = index -
    psize // 2), and which patches lie inside the label image (the others have no histogram).

    Points must come in raster order of their patch rows (as candidates do). The label image is read once,
    in full-width strips with a halo of ``psize - 1`` rows. A label outside ``0..nclasses-1`` in a patch is
    an error naming ``param``.
    """
    grid = labels.grid
    c0 = np.asarray(grid.x.index(x), dtype=np.int64).reshape(-1) - psize // 2
    r0 = np.asarray(grid.y.index(y), dtype=np.int64).reshape(-1) - psize // 2
    inside = (c0 >= 0) & (r0 >= 0) & (c0 + psize <= grid.width) & (r0 + psize <= grid.height)
    histograms = np.zeros((len(x), nclasses), dtype=np.int64)
    plan = strip_plan(grid, 4.0 + 2 + 16, ram_mb, halo_rows=psize - 1, token=labels.token, param="ram")

    def count(window: Window) -> tuple[np.ndarray, np.ndarray]:
        mine = np.flatnonzero(inside & (r0 >= window.row) & (r0 < window.row_stop))
        if not len(mine):
            return mine, histograms[:0]
        top = int(r0[mine].min())
        values = labels.read(Window(top, 0, int(r0[mine].max()) + psize - top, grid.width))[..., 0]
        boxes = (r0[mine] - top, r0[mine] - top + psize, c0[mine], c0[mine] + psize)
        bad = (values < 0) | (values >= nclasses) | (values != np.floor(values))  # NaN included
        hits = np.flatnonzero(BoxCounts(bad).count(*boxes)) if bad.any() else ()
        if len(hits):
            k = mine[hits[0]]
            patch = values[r0[k] - top:r0[k] - top + psize, c0[k]:c0[k] + psize]
            value = patch[bad[r0[k] - top:r0[k] - top + psize, c0[k]:c0[k] + psize]][0]
            raise ParameterError(
                f'{param}: "{labels.paths[0]}" holds the label {value:g} in the patch at rows '
                f"{r0[k]}..{r0[k] + psize - 1}, cols {c0[k]}..{c0[k] + psize - 1}; expected integers "
                f"0..{nclasses - 1} (strategy.balanced.nclasses)")
        return mine, np.stack([BoxCounts(values == k).count(*boxes) for k in range(nclasses)], axis=1)

    def sink(result: tuple[np.ndarray, np.ndarray], window: Window) -> None:
        histograms[result[0]] = result[1]

    run_tiles(count, plan, sink, workers=workers)
    return histograms, inside


def spatial_step(sp: float) -> int:
    """OTBTF's seed grid step ``q = int(1 / sqrt(sp))`` (sqrt in float32, as ``std::sqrt`` of a float)."""
    return int(1.0 / float(np.sqrt(np.float32(sp))))


def thin_seed(seed_count: int, sp: float, count: int) -> np.ndarray:
    """Which seed samples survive OTBTF's thinning (a boolean mask over the seed, in its order).

    ``seed_count - sp * count`` samples (float32, truncated) are removed at the regular rate
    ``seed_count / removed``. OTBTF computes the number removed as unsigned, so a seed smaller than
    ``sp * count`` wraps around and removes all but the first sample; eotensor removes none then.
    """
    removed = math.trunc(float(np.float32(seed_count) - np.float32(sp) * np.float32(count)))
    keep = np.ones(seed_count, dtype=bool)
    if removed <= 0 or seed_count == 0:
        return keep
    rate = np.float32(np.float32(seed_count) / np.float32(removed))
    step = np.float32(0)
    one = np.float32(1)
    for k in range(seed_count):
        if step >= rate:
            keep[k] = False
            step = np.float32(np.fmod(step, rate))
        step = np.float32(step + one)
    return keep


def _by_similarity(histograms: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Indices sorting ``histograms`` by decreasing cosine similarity to ``total``, stable: equal cosines keep
    their order. Cosines compare as ``(h.t)^2 / (h.h)`` (``|t|`` is common); float64 orders them, and runs of
    near-equal values are re-sorted exactly (Python integers), so that ties do not depend on float rounding
    (symmetric histograms such as [5, 1] and [1, 5] against a uniform total are exact ties)."""
    h = histograms.astype(np.int64)
    dots, squares = h @ total.astype(np.int64), (h * h).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        key = np.where(squares > 0, dots.astype(np.float64) ** 2 / squares, 0.0)
    order = np.argsort(-key, kind="stable")
    sorted_key = key[order]
    near = np.abs(np.diff(sorted_key)) <= 1e-9 * np.maximum(np.abs(sorted_key[1:]), 1e-300)
    start = 0
    for stop in [*(np.flatnonzero(~near) + 1).tolist(), len(order)]:
        if stop - start > 1:
            run = order[start:stop]
            exact = [Fraction(-int(dots[k]) ** 2, int(squares[k])) if squares[k] else Fraction(0) for k in run]
            order[start:stop] = run[sorted(range(len(run)), key=lambda i: (exact[i], run[i]))]
        start = stop
    return order


def balanced_selection(histograms: np.ndarray, position_x: np.ndarray, position_y: np.ndarray,
                       sp: float, chunk: int = 1 << 16) -> np.ndarray:
    """Indices of the candidates kept by OTBTF's ``balanced`` strategy, in output order (§5.4).

    1. The seed: candidates whose grid position has ``kx % q + ky % q == 0`` (C++), ``q = int(1/sqrt(sp))``,
       thinned by :func:`thin_seed`. 2. The others, sorted by decreasing cosine similarity of their class
       histogram to the seed's total (stable: ties keep raster order; OTBTF's sort is not stable). 3. From the
       least similar on, each histogram is added to the total and the candidate kept while the cosine between
       the total and the uniform histogram increases; the first decrease (or tie) stops it. The kept list is
       the seed, then the added candidates in the order added. OTBTF compares float32 cosines; here both the
       similarity order and the increase test are exact (integers), so equal cosines are exact ties.
    """
    q = spatial_step(sp)
    in_seed = (cpp_rem(position_x, q) + cpp_rem(position_y, q)) == 0
    seed = np.flatnonzero(in_seed)
    seed = seed[thin_seed(len(seed), sp, len(histograms))]
    others = np.flatnonzero(~in_seed)
    total = histograms[seed].sum(axis=0, dtype=np.int64)
    order = others[_by_similarity(histograms[others], total)][::-1]  # least similar first
    return np.concatenate([seed, order[:_rising_prefix(total, histograms, order, chunk)]])


def _rising_prefix(total: np.ndarray, histograms: np.ndarray, order: np.ndarray, chunk: int) -> int:
    """How many of ``histograms[order]``, added one by one to ``total``, raise its cosine to the uniform
    histogram each time (the first from 0). cos² = S² / (n Q) with S the sum and Q the sum of squares, so
    a rise is ``S_k² Q_(k-1) > S_(k-1)² Q_k``, compared exactly in Python integers (Q outgrows int64)."""
    total = total.astype(np.int64)
    big_s, big_q = int(total.sum()), int((total * total).sum())
    first = True
    added = 0
    for start in range(0, len(order), chunk):
        block = histograms[order[start:start + chunk]].astype(np.int64)
        before = total + np.cumsum(block, axis=0) - block  # the total each histogram is added to
        d_s = block.sum(axis=1)
        d_q = 2 * (before * block).sum(axis=1) + (block * block).sum(axis=1)
        for ds, dq in zip(d_s.tolist(), d_q.tolist()):
            s, q = big_s + ds, big_q + dq
            if not (s > 0 if first else s * s * big_q > big_s * big_s * q):
                return added
            big_s, big_q, first = s, q, False
            added += 1
        total = total + block.sum(axis=0)
    return added


@dataclass(frozen=True)
class Selection:
    """PatchesSelection's result: the kept points in output order, their groups, and where they go.

    Point ``i`` has the ``id`` ``i``; it goes to ``outputs[GROUPS[group[i]]]`` when that output is given
    (group -1, the step-1 corner of the chessboard, goes nowhere but keeps its id).
    """

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    """0 train, 1 valid, 2 test, -1 none (int8)."""
    crs: Any
    tested: int
    """How many grid positions inside the image were tested."""
    outputs: dict[str, str]
    """Group name (``train``, ``valid``, ``test``) -> output filename, for the outputs to write."""

    def __len__(self) -> int:
        return len(self.x)

    @property
    def ids(self) -> np.ndarray:
        """The ``id`` field: sequential over all kept points (int32, OGR's Integer)."""
        return np.arange(len(self.x), dtype=np.int32)

    def count(self, name: str) -> int:
        """How many points fall in the group ``name`` (train, valid, test)."""
        return int(np.count_nonzero(self.group == GROUPS.index(name)))

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, id) of the points of the group ``name``."""
        keep = self.group == GROUPS.index(name)
        return self.x[keep], self.y[keep], self.ids[keep]

    def write(self) -> dict[str, str]:
        """Write each output's points with the field ``id`` (format from the extension); return name -> path."""
        from eotensor.io.vector import write_points

        written = {}
        for name, path in self.outputs.items():
            x, y, ids = self.points(name)
            written[name] = write_points(path, x, y, {"id": ids}, self.crs, f"out{name}")
        return written
