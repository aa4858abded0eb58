"""LabelImageSampleSelection: OTBTF's points-from-a-label-image app, parameter for parameter (reference §6).

The table below is the app; :class:`LabelConfig` reads the parsed values, :func:`build` opens the label image
and checks the parameters (:class:`~eotensor.sampling.labels.LabelSampling`, nothing read yet), and
:func:`write` runs the two streamed passes and writes the points.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Kind, Param, Values, run_python

if TYPE_CHECKING:
    from eotensor.sampling.labels import LabelSampling

NOTES = """\
Two passes over full-width strips of the label image, shrunk by pad pixels on every side (memory from ram):
  1. count the pixels of each label other than nodata; the classes are every label from the smallest to the
     largest (class = label - smallest, 0-based); a label in that range without pixels is an error naming it;
  2. number the pixels of each class k = 1, 2, ... in raster order and emit pixel k when k is a multiple of
     the class's step, up to its target.
Steps and targets per class (integer division, as OTBTF):
  constant  target = strategy.constant.nb, lowered to the smallest class if that is smaller; step = pixels // target
  total     step = all pixels // strategy.total.v (at least 1); target = pixels // step
  smallest  target = the smallest class's pixels; step = pixels // target
  all       step 1, every pixel
Each point is the centre of its pixel, in the image's CRS, with the integer field "class".
Labels are read as integers: every pixel other than nodata must hold an integer from 0 to 32766.
The label image has one band (select one of several with "labels.tif?&bands=2").
Output format from the extension: .gpkg (also without extension), .geojson/.json, .shp, .sqlite, .gml."""

PARAMS = (
    Param("inref", Kind.INPUT_IMAGE, "Label image (one band of integer labels, 0 to 32766).", mandatory=True),
    Param("strategy", Kind.CHOICE, "How many points per class.", "constant", choices=(
        Choice("constant", "the same number of points in every class", (
            Param("nb", Kind.INT, "Points per class (lowered to the smallest class's pixels if larger).", 1000,
                  minimum=1),
        )),
        Choice("total", "a total number of points, shared in proportion to the class sizes", (
            Param("v", Kind.INT, "Total number of points.", 1000, minimum=1),
        )),
        Choice("smallest", "as many points per class as the smallest class has pixels"),
        Choice("all", "every labelled pixel"),
    )),
    Param("nodata", Kind.INT, "Label value of pixels that are not sampled.", -1),
    Param("pad", Kind.INT, "Pixels left out on every side of the image (keeps points away from the borders).", 0,
          minimum=0),
    Param("outvec", Kind.OUTPUT_VECTOR, "Output points with the integer field class (label - smallest label).",
          mandatory=True),
    options.ram(),
)


@dataclass(frozen=True)
class LabelConfig:
    """LabelImageSampleSelection's parameters as typed fields, read once from the parsed values."""

    inref: str
    strategy: str
    number: int
    """strategy.constant.nb or strategy.total.v, as the strategy needs (else unused)."""
    nodata: int
    pad: int
    outvec: str | None
    ram_mb: float | None

    @classmethod
    def from_values(cls, v: Values) -> LabelConfig:
        """Read ``v`` (from :func:`~eotensor.apps.params.parse_cli` or ``parse_python``)."""
        strategy = v["strategy"]
        number = v["strategy.total.v"] if strategy == "total" else v["strategy.constant.nb"]
        return cls(inref=v["inref"], strategy=strategy, number=number, nodata=v["nodata"], pad=v["pad"],
                   outvec=v.get("outvec"), ram_mb=v["ram"])


def build(values: Values) -> LabelSampling:
    """Open the label image and check every parameter (the output format too): nothing is read or written yet."""
    from eotensor.io.atomic import check_outputs
    from eotensor.io.raster import RasterSource
    from eotensor.io.vector import output_driver
    from eotensor.sampling.labels import LabelSampling

    cfg = LabelConfig.from_values(values)
    source = RasterSource([cfg.inref], "inref")
    if cfg.outvec is not None:
        output_driver(cfg.outvec, "outvec")
        check_outputs([("outvec", cfg.outvec)], source.paths)
    return LabelSampling(source, cfg.strategy, cfg.number, cfg.nodata, cfg.pad, cfg.ram_mb, param="inref")


def write(result: LabelSampling, values: Values, progress: bool = False) -> str:
    """Run both passes and write the points to ``outvec``; with ``progress``, progress bars and the per-class
    summary on stderr."""
    from eotensor.io.vector import write_point_chunks

    path = values["outvec"]
    result.progress = progress
    points = result.points
    write_point_chunks(path, points.chunks(), result.source.grid.crs, "outvec")
    if progress:
        plan = result.plan
        print(f"LabelImageSampleSelection: {len(plan.counts)} classes (labels {plan.first} to "
              f"{plan.first + len(plan.counts) - 1}, nodata {result.nodata}), strategy {result.strategy}: "
              f"wrote {len(points)} points to {path}\n{result.summary()}", file=sys.stderr)
    return path


APP = App(
    name="LabelImageSampleSelection",
    description="Select points from a label image, class by class (OTBTF's LabelImageSampleSelection).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def LabelImageSampleSelection(options: dict[str, Any] | None = None, **kwargs: Any) -> LabelSampling:  # noqa: N802
    """Run LabelImageSampleSelection from Python with OTB keys: ``inref=...``, ``strategy="all"``, ``outvec=...``.

    Keywords are the OTB keys with every dot replaced by an underscore (``strategy_constant_nb=500``); ``options``
    may hold the same parameters as an OTB-key dict. With ``outvec``, the points are written; without it,
    nothing is. Either way the :class:`~eotensor.sampling.labels.LabelSampling` is returned: its ``counts``,
    ``plan`` and ``points`` run the passes when first read.
    """
    return run_python(APP, options, **kwargs)
