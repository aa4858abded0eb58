"""PatchesSelection: OTBTF's grid sampling of patch centres, parameter for parameter (behaviour reference §5).

The table below is the app; :class:`SelectionConfig` reads the parsed values, :func:`build` checks every
input and output, then selects the points (:mod:`eotensor.sampling.selection`), and :func:`write` writes one
point layer per group with the integer field ``id``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Group, Kind, Param, Values, run_python
from eotensor.errors import ParameterError

if TYPE_CHECKING:
    from eotensor.sampling.selection import Selection

NOTES = """\
Grid (per axis, r = grid.psize // 2, C++ remainders): candidates c = r + 1 + (offset % step) + k*step up
to c <= size - 1 - r; with nodata, c = r + ((offset + 1) % step) + k*step (OTBTF scans a 1-pixel-padded
mask). Points: pixel centres for an odd grid.psize; for an even one the centre moved by -|sx|/2 in x and
-|sy|/2 in y, so that PatchesExtraction's half-up rounding gives a patch symmetric around the point.

Validity: with nodata, a pixel is valid where at least one band differs from it (nan matches NaN
pixels) and the mask, if any, is not 0; a candidate is kept when its whole (2r+1)x(2r+1) window is
valid and inside the image. Without nodata but with a mask: the mask value at the candidate must be 1.
Without either: every candidate is kept. Masks are read as uint8 (band 1, clamped and truncated).

Groups: 0 -> outtrain, 1 -> outvalid, 2 -> outtest. chessboard: (kx + ky) % 2 of the grid position.
split: OTBTF's deterministic scheduler (50/25/25 gives train, valid, test, train, ...), drawn for
(W // step + 1) * (H // step + 1) samples; the i-th kept point gets the i-th group. strategy.split.random
shuffles that sequence with NumPy's generator seeded by strategy.split.seed (OTBTF's shuffle is
platform-dependent). all: everything to outtrain. balanced (experimental): a spatial seed grid, then the
points that bring the class histogram closest to uniform, split by chessboard colour.
Output: points with one integer field id (sequential over all kept points), in the CRS of in; the
format follows the extension (.gpkg .geojson .json .shp .sqlite .gml; none: GeoPackage)."""

PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Input image: its grid and CRS place the points; with nodata, its pixels decide "
          "validity.", mandatory=True),
    Param("mask", Kind.INPUT_IMAGE, "Mask of the same size as in (band 1, read as uint8): 0 is invalid; without "
          "nodata, a candidate needs the value 1."),
    options.nodata("No-data value of in: a pixel is invalid where every band equals it; a patch window must be "
                   "entirely valid."),
    Group("grid", "The sampling grid, in pixels of in.", (
        Param("step", Kind.INT, "Step between patch centres, in pixels.", mandatory=True, minimum=1),
        Param("psize", Kind.INT, "Patch size in pixels (the window checked is 2*(psize//2)+1 wide).",
              mandatory=True, minimum=1),
        Param("offsetx", Kind.INT, "Offset of the grid along x, in pixels (taken modulo the step).", 0),
        Param("offsety", Kind.INT, "Offset of the grid along y, in pixels (taken modulo the step).", 0),
    )),
    Param("strategy", Kind.CHOICE, "How the points are shared between the outputs.", "chessboard", choices=(
        Choice("chessboard", "train and valid alternate like a chessboard (outtest unused)"),
        Choice("split", "train/valid/test in proportions, in a fixed (or shuffled) sequence", (
            Param("trainprop", Kind.FLOAT, "Proportion of training points (relative).", 50.0, minimum=0),
            Param("validprop", Kind.FLOAT, "Proportion of validation points (0 when outvalid is not given).",
                  25.0, minimum=0),
            Param("testprop", Kind.FLOAT, "Proportion of test points (0 when outtest is not given).", 25.0,
                  minimum=0),
            Param("random", Kind.BOOL, "Shuffle the group sequence (seeded by strategy.split.seed).", False),
            Param("seed", Kind.INT, "Seed of the shuffle (eotensor; OTBTF's shuffle is platform-dependent).", 0),
        )),
        Choice("all", "every point to outtrain (outvalid and outtest unused)"),
        Choice("balanced", "experimental: a spatial seed plus points that balance the classes", (
            Param("sp", Kind.FLOAT, "Spatial proportion, in (0, 1]: the share of points sampled on a regular "
                  "grid.", 0.25, minimum=0, maximum=1),
            Param("nclasses", Kind.INT, "Number of classes of the label image.", mandatory=True, minimum=2),
            Param("labelimage", Kind.INPUT_IMAGE, "Label image of in's size, classes 0..nclasses-1.",
                  mandatory=True),
        )),
    )),
    Param("outtrain", Kind.OUTPUT_VECTOR, "Training points (group 0).", mandatory=True),
    Param("outvalid", Kind.OUTPUT_VECTOR, "Validation points (group 1)."),
    Param("outtest", Kind.OUTPUT_VECTOR, "Test points (group 2; strategy split only)."),
    options.ram(),
)

_UNUSED = {"chessboard": ("outtest",), "all": ("outvalid", "outtest"), "balanced": ("outtest",), "split": ()}


@dataclass(frozen=True)
class SelectionConfig:
    """PatchesSelection's parameters as typed fields, read once from the parsed values."""

    image: str
    mask: str | None
    nodata: float | None
    step: int
    psize: int
    offset: tuple[int, int]
    strategy: str
    proportions: tuple[float, float, float]
    """Train, valid, test, with a proportion forced to 0 where its output is not given (as OTBTF)."""
    shuffle: bool
    seed: int
    sp: float
    nclasses: int | None
    labelimage: str | None
    outputs: dict[str, str]
    """Group name (train, valid, test) -> filename, for the outputs this strategy writes."""
    ram_mb: float | None

    @classmethod
    def from_values(cls, v: Values) -> SelectionConfig:
        """Read ``v``; warn about outputs the strategy does not use."""
        strategy = v["strategy"]
        outputs = {name: v[f"out{name}"] for name in ("train", "valid", "test") if v.get(f"out{name}")}
        for key in _UNUSED[strategy]:
            if key.removeprefix("out") in outputs:
                warnings.warn(f"{key}: unused with strategy {strategy}; not written", stacklevel=3)
                del outputs[key.removeprefix("out")]
        split = strategy == "split"
        proportions = (v["strategy.split.trainprop"] if split else 1.0,
                       v["strategy.split.validprop"] if split and v.get("outvalid") else 0.0,
                       v["strategy.split.testprop"] if split and v.get("outtest") else 0.0)
        balanced = strategy == "balanced"
        return cls(
            image=v["in"], mask=v["mask"], nodata=v["nodata"], step=v["grid.step"], psize=v["grid.psize"],
            offset=(v["grid.offsetx"], v["grid.offsety"]), strategy=strategy, proportions=proportions,
            shuffle=split and v["strategy.split.random"], seed=v["strategy.split.seed"],
            sp=v["strategy.balanced.sp"], nclasses=v["strategy.balanced.nclasses"] if balanced else None,
            labelimage=v["strategy.balanced.labelimage"] if balanced else None, outputs=outputs,
            ram_mb=v["ram"],
        )


def build(values: Values) -> Selection:
    """Check every input and output, then select the points (nothing written yet)."""
    from eotensor.engine.tiling import ram_budget_mb
    from eotensor.io.atomic import check_outputs
    from eotensor.io.raster import RasterSource
    from eotensor.io.vector import output_driver
    from eotensor.sampling import selection as sel

    cfg = SelectionConfig.from_values(values)
    if not any(cfg.proportions):
        raise ParameterError("strategy.split.trainprop: the proportions of the outputs given are all 0 "
                             f"(train {cfg.proportions[0]:g}, valid {cfg.proportions[1]:g}, test "
                             f"{cfg.proportions[2]:g}); give at least one > 0")
    if cfg.strategy == "balanced" and cfg.sp == 0:
        raise ParameterError("strategy.balanced.sp: 0 leaves no spatial seed; expected a proportion in (0, 1]")
    # GDAL sizes its block cache on first use (default: 5 % of RAM). A strip's blocks must all fit, for every
    # strip in flight, or a multi-band read decodes each block once per band: 42 s instead of 6 s measured on
    # a 6000² 4-band tile with a quarter of the budget, so the cache gets the whole budget.
    os.environ.setdefault("GDAL_CACHEMAX", str(max(32, int(ram_budget_mb(cfg.ram_mb, param="ram")))))
    image = RasterSource(cfg.image, "in")
    inputs = list(image.paths)
    width, height = image.grid.width, image.grid.height
    if cfg.psize > min(width, height):
        raise ParameterError(f'grid.psize: a {cfg.psize}x{cfg.psize} patch does not fit in "{image.paths[0]}" '
                             f"({width}x{height} pixels)")
    mask = _same_size(cfg.mask, "mask", image) if cfg.mask else None
    labels = _same_size(cfg.labelimage, "strategy.balanced.labelimage", image) if cfg.labelimage else None
    inputs += [*(mask.paths if mask else ()), *(labels.paths if labels else ())]
    for name, path in cfg.outputs.items():
        output_driver(path, f"out{name}")
    check_outputs([(f"out{name}", path) for name, path in cfg.outputs.items()], inputs)

    found = sel.select_patches(image, cfg.psize, cfg.step, cfg.offset, cfg.nodata, mask, cfg.ram_mb)
    if not len(found):
        raise ParameterError(_nothing_accepted(cfg, image, found.tested))
    x, y = sel.patch_points(image.grid, found.rows, found.cols, cfg.psize)
    if cfg.strategy == "chessboard":
        groups = sel.chessboard_groups(found.position_x, found.position_y)
    elif cfg.strategy == "balanced":
        histograms, inside = sel.label_histograms(labels, x, y, cfg.psize, cfg.nclasses, cfg.ram_mb)
        if not inside.any():
            raise ParameterError(f'strategy.balanced.labelimage: no patch of the {len(found)} kept points lies '
                                 f'inside "{labels.paths[0]}"')
        found, x, y, histograms = found.subset(inside), x[inside], y[inside], histograms[inside]
        kept = sel.balanced_selection(histograms, found.position_x, found.position_y, cfg.sp)
        found, x, y = found.subset(kept), x[kept], y[kept]
        groups = sel.chessboard_groups(found.position_x, found.position_y)
    else:
        total = sel.max_candidates(width, height, cfg.step)
        groups = sel.split_groups(cfg.proportions, total, len(found), cfg.shuffle, cfg.seed)
    return sel.Selection(x, y, groups, image.grid.crs, found.tested, cfg.outputs)


def _same_size(path: str, param: str, image: Any) -> Any:
    """``path`` opened as a raster of ``image``'s size, or a one-line error giving both sizes."""
    from eotensor.io.raster import RasterSource

    other = RasterSource(path, param)
    if other.grid.shape != image.grid.shape:
        raise ParameterError(f'{param}: "{other.paths[0]}" is {other.grid.width}x{other.grid.height} pixels but in '
                             f'"{image.paths[0]}" is {image.grid.width}x{image.grid.height}; expected the same size')
    return other


def _nothing_accepted(cfg: SelectionConfig, image: Any, tested: int) -> str:
    """The one-line error for a selection that kept no point: how many grid positions, rejected why."""
    where = f'"{image.paths[0]}" ({image.grid.width}x{image.grid.height} pixels)'
    if tested == 0:
        return (f"grid.step: no grid position fits in {where} with grid.psize {cfg.psize}, grid.step {cfg.step} "
                f"and offsets {cfg.offset[0]},{cfg.offset[1]} (a negative offset off the step skips the axis)")
    side = 2 * (cfg.psize // 2) + 1
    why = (f"each {side}x{side} window holds no-data{' or masked' if cfg.mask else ''} pixels or leaves the image"
           if cfg.nodata is not None else "the mask is not 1 at any of them")
    return f"in: no patch kept in {where}: all {tested} grid positions rejected ({why})"


def write(result: Selection, values: Values, progress: bool = False) -> dict[str, str]:
    """Write one point layer per output the strategy uses; with ``progress``, a summary line on stderr."""
    written = result.write()
    if progress:
        parts = ", ".join(f"{result.count(name)} {name} -> {path}" for name, path in written.items())
        print(f"PatchesSelection: {len(result)} of {result.tested} grid positions kept; {parts}", file=sys.stderr)
    return written


APP = App(
    name="PatchesSelection",
    description="Points on a regular grid where whole patches are valid, split into train/valid/test sets.",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def PatchesSelection(options: dict[str, Any] | None = None, **kwargs: Any) -> Selection:  # noqa: N802
    """Run PatchesSelection from Python with OTB keys: ``in_="image.tif"``, ``grid_step=64``, ``outtrain=...``.

    Keywords are the OTB keys with every dot replaced by an underscore (``in_`` for ``-in``); ``options`` may
    hold the same parameters as an OTB-key dict. With ``outtrain``, the layers are written; either way the
    :class:`~eotensor.sampling.selection.Selection` (points, groups, ids) is returned.
    """
    return run_python(APP, options, **kwargs)
