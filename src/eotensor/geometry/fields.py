"""OTBTF's serving geometry, as pure functions: receptive field, expression field and spacing scale.

Picture one axis of a fully-convolutional model with receptive field RF = 8, expression field EF = 4,
spacing scale S = 1::

    input  pixels  |0 1 2 3 4 5 6 7|      one block reads RF = 8 input pixels (as OTBTF) ...
    output pixels      |2 3 4 5|          ... and writes EF = 4 output pixels, centred on them;
                                          a tile of T outputs reads (T - EF) x S x s1/sN + RF pixels.

* **RF** (``sourceN.rfieldx/y``): input pixels the model sees around one output block, in that source's own pixels.
* **EF** (``output.efieldx/y``): output pixels the model produces per block; every request is enlarged to the
  EF grid (anchored at output index 0) and the surplus discarded, so tiles never change a result.
* **S** (``output.spcscale``): output spacing = |source1 spacing| x S (2 for a stride-2 net, 0.25 for 4x
  super-resolution).

The output grid is where every source's full RF fits inside that source (§2.3 of the behaviour reference);
an output block maps back to each source through the physical footprint of its pixels (§2.4). The
arithmetic below follows OTBTF step by step, in float64 like the C++ code, so output grids are
bit-compatible with OTBTF's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from eotensor.errors import GeometryError
from eotensor.geometry.grid import Axis, Grid, Window, align_window, crs_name

_SNAP_TOLERANCE = 1e-9  # in pixels: extents this close to a grid line are already on it

MAX_OUTPUT_SIZE = 2**31 - 1
"""Largest output size along one axis (GDAL's raster dimensions are C ints)."""


@dataclass(frozen=True, slots=True)
class Fields:
    """The receptive/expression fields and spacing scale of one model application."""

    rfields: tuple[tuple[int, int], ...]
    """Receptive field (x, y) of each source, in that source's pixels."""
    efield: tuple[int, int] = (1, 1)
    """Expression field (x, y), in output pixels; the same for every output."""
    scale: float = 1.0
    """Output spacing scale. Stored as OTB stores it: a float32 value (``SetParameterFloat``)."""
    fully_conv: bool = False
    """Fully-convolutional mode (one window per source) instead of patch-based (a batch of patches)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(np.float32(self.scale)))
        for i, (rx, ry) in enumerate(self.rfields):
            if rx < 1 or ry < 1:
                raise GeometryError(f"source{i + 1}.rfieldx/rfieldy must be >= 1, got {rx}x{ry}")
        if self.efield[0] < 1 or self.efield[1] < 1:
            raise GeometryError(f"output.efieldx/efieldy must be >= 1, got {self.efield[0]}x{self.efield[1]}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise GeometryError(f"output.spcscale must be a finite number > 0 (float32), got {self.scale}")
        if not self.fully_conv and self.efield != (1, 1):
            raise GeometryError(
                f"output.efieldx/efieldy is {self.efield[0]}x{self.efield[1]} in patch-based mode; "
                "patch-based models produce one pixel per patch: use EF 1, or set model.fullyconv on"
            )


@dataclass(frozen=True, slots=True)
class InputRegion:
    """The window of one source that feeds one aligned output block, and what the image border cut off."""

    window: Window
    """The window to read, cropped to the source."""
    crop: tuple[int, int, int, int]
    """Pixels cut by the image border: (top, left, bottom, right); non-zero only where the window leaves the image."""


def _axes(grid: Grid) -> tuple[Axis, Axis]:
    return grid.x, grid.y


def _valid_extent(axis: Axis, rf: int, source: int, name: str) -> tuple[float, float]:
    """Corner-coordinate extent of the pixels that can be a patch centre (OTBTF ImageToExtent)."""
    start, size = rf // 2, axis.size - rf + 1
    if size <= 0:
        raise GeometryError(
            f"source{source}.rfield{name} = {rf} is larger than source{source} "
            f"({axis.size} pixels along {name}); use a receptive field of at most {axis.size}"
        )
    first, last = axis.point(start), axis.point(start + size - 1)
    half = 0.5 * abs(axis.spacing)
    return min(first, last) - half, max(first, last) + half


def _snap(value: float, axis: Axis, up: bool) -> float:
    """Move ``value`` onto the next grid line of ``axis`` (up: towards +inf), unless it is already on one."""
    step = abs(axis.spacing)
    line0 = axis.origin - 0.5 * step
    k = (value - line0) / step
    if abs(k - round(k)) <= _SNAP_TOLERANCE:
        return value
    return line0 + (math.ceil(k) if up else math.floor(k)) * step


def _output_axis(inf: float, sup: float, ref_step: float, out_spacing: float, ef: int, name: str) -> Axis:
    """Origin and size of one output axis from the corner extent (OTBTF §2.3 steps 5-7)."""
    origin = inf + 0.5 * ref_step if out_spacing > 0 else sup - 0.5 * ref_step
    valid = math.floor((sup - inf) / abs(out_spacing))
    origin -= out_spacing * math.floor(0.5 * ef)
    size = valid + ef - 1
    if size > MAX_OUTPUT_SIZE:
        raise GeometryError(
            f"output.spcscale gives an output of {size} pixels along {name}, more than GDAL's limit of "
            f"{MAX_OUTPUT_SIZE}; check output.spcscale (output spacing = |source1 spacing| x scale)"
        )
    if ef > size:
        raise GeometryError(
            f"output.efield{name} = {ef} is larger than the output grid: {valid} output pixel(s) fit along {name} "
            "where every receptive field lies inside its source; use smaller receptive fields or output.spcscale"
        )
    return Axis(origin, out_spacing, size - size % ef)


def check_fully_conv_scales(sources: Sequence[Grid], fields: Fields) -> None:
    """Fully-convolutional blocks need EF·S·s0/s_i whole for every source (decision 5e), else raise."""
    if not fields.fully_conv:
        return
    ref = sources[0]
    for i, src in enumerate(sources):
        for name, ef, s0, si in (
            ("x", fields.efield[0], abs(ref.x.spacing), abs(src.x.spacing)),
            ("y", fields.efield[1], abs(ref.y.spacing), abs(src.y.spacing)),
        ):
            ratio = Fraction(fields.scale * s0 / si).limit_denominator(1000)
            pixels = ef * ratio
            if pixels.denominator != 1:
                nearest = max(1, round(ef / ratio.denominator)) * ratio.denominator
                raise GeometryError(
                    f"output.efield{name} = {ef} with output.spcscale = {fields.scale:g} covers {float(pixels):g} "
                    f"pixels of source{i + 1} per block; it must be a whole number in fully-convolutional mode: "
                    f"use output.efield{name} {nearest}"
                )


def output_grid(sources: Sequence[Grid], fields: Fields) -> Grid:
    """The output grid OTBTF's TensorflowModelServe would produce (origin, signed spacing, size, CRS).

    Source 1 is the reference: it sets the spacing (x positive, y forced negative) and the CRS. In
    patch-based mode with S < 1 the last row/column whose patch would leave a source is dropped
    (decision 5g; OTBTF reads outside its buffer there).
    """
    if len(fields.rfields) != len(sources):
        raise GeometryError(f"{len(sources)} sources but {len(fields.rfields)} receptive fields")
    for i, src in enumerate(sources):
        if src.x.spacing <= 0 or src.y.spacing >= 0:
            raise GeometryError(
                f"source{i + 1}.il: spacing ({src.x.spacing:g}, {src.y.spacing:g}) is not north-up (x > 0, y < 0); "
                "a raster without a geotransform or flipped must be georeferenced (e.g. gdal_translate -a_ullr)"
            )
    for i, src in enumerate(sources[1:], start=2):
        if src.crs and sources[0].crs and src.crs != sources[0].crs:
            raise GeometryError(
                f"source{i}.il is in {crs_name(src.crs)} but source1.il is in {crs_name(sources[0].crs)}; "
                "every source must be in the same CRS: reproject one (gdalwarp -t_srs)"
            )
    check_fully_conv_scales(sources, fields)
    ref = sources[0]
    ref_steps = (abs(ref.x.spacing), abs(ref.y.spacing))
    out_spacing = (ref_steps[0] * fields.scale, -ref_steps[1] * fields.scale)

    axes = []
    for dim, name in enumerate("xy"):
        inf, sup = -math.inf, math.inf
        for i, src in enumerate(sources):
            lo, hi = _valid_extent(_axes(src)[dim], fields.rfields[i][dim], i + 1, name)
            inf, sup = max(inf, lo), min(sup, hi)
        if fields.fully_conv:
            inf, sup = (
                max(_snap(inf, _axes(src)[dim], up=True) for src in sources),
                min(_snap(sup, _axes(src)[dim], up=False) for src in sources),
            )
        if sup <= inf:
            raise GeometryError(
                f"the output grid is empty along {name}: the sources' valid extents (where each full receptive "
                "field fits) do not overlap; check the sources' footprints and receptive fields"
            )
        axes.append(_output_axis(inf, sup, ref_steps[dim], out_spacing[dim], fields.efield[dim], name))
    grid = Grid(axes[0], axes[1], ref.crs)
    if not fields.fully_conv:
        grid = _trim_patch_grid(grid, sources, fields)
    return grid


def patch_starts(out_axis: Axis, indices: np.ndarray, src_axis: Axis, rf: int) -> np.ndarray:
    """First source pixel of the patch centred on each output pixel (round half up, then back by RF//2)."""
    return src_axis.index(out_axis.point(indices)) - rf // 2


def _trim_patch_grid(grid: Grid, sources: Sequence[Grid], fields: Fields) -> Grid:
    """Drop trailing output rows/columns whose patch would leave a source (patch-based mode)."""
    axes = list(_axes(grid))
    for dim, name in enumerate("xy"):
        size = axes[dim].size
        for i, src in enumerate(sources):
            src_axis, rf, out_axis = _axes(src)[dim], fields.rfields[i][dim], axes[dim]
            lo, hi = 0, size
            while lo < hi:  # patch starts grow with the index: bisect for the first patch leaving the end
                mid = (lo + hi) // 2
                if int(patch_starts(out_axis, np.int64(mid), src_axis, rf)) + rf > src_axis.size:
                    hi = mid
                else:
                    lo = mid + 1
            size = lo
            if size == 0 or int(patch_starts(out_axis, np.int64(0), src_axis, rf)) < 0:
                raise GeometryError(
                    f"no output pixel along {name} has its source{i + 1} patch inside the image; "
                    f"check source{i + 1}.rfield{name} and the sources' extents"
                )
        axes[dim] = Axis(axes[dim].origin, axes[dim].spacing, size)
    return Grid(axes[0], axes[1], grid.crs)


def _input_spans(
    out_axis: Axis, lo: np.ndarray, hi: np.ndarray, src_axis: Axis, rf: int, ef: int, fields: Fields,
    ref_step: float, source: int, name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Unclipped ``[start, stop)`` source pixels of each aligned output span ``[lo, hi)`` (§2.4), vectorised.

    OTBTF crops the region to the source here and again after padding; cropping once at the end (the
    caller's job) gives the same window and lets the border cut be reported.
    """
    p_start, p_end = out_axis.point(lo), out_axis.point(hi - 1)
    border = 0.5 * (abs(src_axis.spacing) - abs(out_axis.spacing))
    increasing = p_start < p_end  # one-pixel spans take OTBTF's "else" branch (decision 5d)
    p_start, p_end = (np.where(increasing, p_start + border, p_start - border),
                      np.where(increasing, p_end - border, p_end + border))
    a, b = np.asarray(src_axis.index(p_start)), np.asarray(src_axis.index(p_end))
    start, stop = np.minimum(a, b), np.maximum(a, b) + 1
    # no overlap with the source: OTBTF restarts from an empty region at index 0
    empty = np.minimum(stop, src_axis.size) <= np.maximum(start, 0)
    start, stop = np.where(empty, 0, start), np.where(empty, 0, stop)
    need = int(1 + float(np.float32(ef - 1) * np.float32(fields.scale)) * ref_step / abs(src_axis.spacing))
    if need > rf:
        raise GeometryError(
            f"source{source}.rfield{name} = {rf} is inconsistent with output.efield{name} = {ef} and "
            f"output.spcscale = {fields.scale:g}: one output block needs {need} pixels of source{source} "
            f"(spacing {abs(src_axis.spacing):g}, reference spacing {ref_step:g}); "
            f"use source{source}.rfield{name} >= {need}"
        )
    pad = rf - need
    start, stop = start - (pad - pad // 2), stop + pad // 2
    if not fields.fully_conv:
        start, stop = start - 1, stop + 1
    return start, stop


def input_region(out: Grid, aligned: Window, src: Grid, source: int, fields: Fields, ref: Grid) -> InputRegion:
    """The window of source number ``source`` (1-based) needed to compute the EF-aligned output ``aligned``."""
    i = source - 1
    spans = {}
    for out_axis, lo, hi, src_axis, dim, name in ((out.x, aligned.col, aligned.col_stop, src.x, 0, "x"),
                                                  (out.y, aligned.row, aligned.row_stop, src.y, 1, "y")):
        start, stop = _input_spans(out_axis, np.int64(lo), np.int64(hi), src_axis, fields.rfields[i][dim],
                                   fields.efield[dim], fields, abs(_axes(ref)[dim].spacing), source, name)
        spans[name] = (int(start), int(stop), src_axis.size)
    (r0, r1, rows), (c0, c1, cols) = spans["y"], spans["x"]
    window = Window(max(r0, 0), max(c0, 0), min(r1, rows) - max(r0, 0), min(c1, cols) - max(c0, 0))
    return InputRegion(window, (max(0, -r0), max(0, -c0), max(0, r1 - rows), max(0, c1 - cols)))


def block_spans(out: Grid, aligned: Window, src: Grid, source: int, fields: Fields, ref: Grid
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Source pixels read by each expression-field block of ``aligned``: ((row starts, stops), (col starts, stops)).

    Cropped to the source, like :func:`input_region` for a single block, so a block's span does not depend
    on the tile it falls in; the no-data skip decides per block from these spans.
    """
    i = source - 1
    spans = []
    for out_axis, lo, hi, src_axis, dim, name in ((out.y, aligned.row, aligned.row_stop, src.y, 1, "y"),
                                                  (out.x, aligned.col, aligned.col_stop, src.x, 0, "x")):
        ef = fields.efield[dim]
        starts = np.arange(lo, hi, ef, dtype=np.int64)
        start, stop = _input_spans(out_axis, starts, starts + ef, src_axis, fields.rfields[i][dim], ef, fields,
                                   abs(_axes(ref)[dim].spacing), source, name)
        spans.append((np.clip(start, 0, src_axis.size), np.clip(stop, 0, src_axis.size)))
    return spans[0], spans[1]


def aligned_window(window: Window, fields: Fields) -> Window:
    """``window`` enlarged to the expression-field grid anchored at output index 0."""
    return align_window(window, fields.efield[1], fields.efield[0])


@dataclass(frozen=True, slots=True)
class AxisFields:
    """RF, EF and spacing scale of one axis of a fully-convolutional model, as solved from its sizes."""

    rfield: int
    efield: int
    scale: Fraction


def solve_axis_fields(sizes: Sequence[tuple[int, int]], max_term: int = 8) -> AxisFields | None:
    """RF, EF and S of one axis from ``(input size, output size)`` pairs of a fully-convolutional model.

    OTBTF's blocks say an input of ``n`` pixels gives ``T = EF * (floor((n - RF) / (EF * S)) + 1)`` outputs.
    Candidate scales are the fractions ``p/q`` (``p, q <= max_term``) tried from the nearest to the slope
    between the extreme pairs; for each, EF runs over the multiples of ``q`` and RF is the smallest
    ``n - (T - EF) * S`` over the pairs (give consecutive sizes, so that one is block-aligned, and one far
    away). The first (S, EF, RF) that predicts every pair is returned; None when none does.
    """
    pairs = sorted(set(sizes))
    if len(pairs) < 2 or pairs[0][0] == pairs[-1][0] or pairs[-1][1] <= pairs[0][1]:
        return None
    slope = Fraction(pairs[-1][0] - pairs[0][0], pairs[-1][1] - pairs[0][1])
    scales = sorted({Fraction(p, q) for p in range(1, max_term + 1) for q in range(1, max_term + 1)},
                    key=lambda candidate: abs(candidate - slope))
    for scale in scales:
        for efield in range(scale.denominator, scale.denominator * max_term + 1, scale.denominator):
            rfield = min(n - (t - efield) * scale for n, t in pairs)
            if rfield.denominator == 1 and rfield >= 1 and all(
                    n >= rfield and t == efield * (math.floor((n - rfield) / (efield * scale)) + 1) for n, t in pairs):
                return AxisFields(int(rfield), efield, scale)
    return None
