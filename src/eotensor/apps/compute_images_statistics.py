"""ComputeImagesStatistics: OTB's per-band mean, min, max and standard deviation of an image list, as its XML.

The table below is the app; :func:`build` opens the images (the statistics are computed on first use, by
:func:`eotensor.classify.statistics.image_statistics`) and :func:`write` writes OTB's ``FeatureStatistics`` XML
(:mod:`eotensor.io.otbxml`), the ``imstat`` file that TrainImagesClassifier and ImageClassifier read (eotensor's
and OTB's alike).
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

from eotensor.apps import options
from eotensor.apps.params import App, Group, Kind, Param, Values, run_python

NOTES = """\
OTB's formulas (checked against otbcli_ComputeImagesStatistics 8.1): the mean is over every pixel of every
image; the standard deviation pools each image's squared deviations from its own mean over N - k (N pixels,
k images); with -bv, a pixel whose bands all equal it is left out. Each image is read once in strips sized
from -ram; the images may differ in size, not in band count. Images may be results from Python."""

PARAMS = (
    Param("il", Kind.FILE_LIST, "Input images (each on its own; same number of bands).", mandatory=True),
    Param("bv", Kind.FLOAT, "Background value: pixels whose bands all equal it are left out.", finite=False),
    Group("out", "Optional outputs.", (
        Param("xml", Kind.OUTPUT_FILE, "Output XML file (mean, min, max, stddev per band).", suffix=".xml"),
    )),
    options.ram(),
)


class ImagesStatistics:
    """The statistics of one run, computed on first use (:attr:`statistics`)."""

    def __init__(self, values: Values) -> None:
        from eotensor.lazy import LazyRaster, open

        self.images = list(values["il"])
        self.background = values["bv"]
        self.rasters = [image if isinstance(image, LazyRaster) else open(image, ram_mb=values["ram"])
                        for image in self.images]
        if values.get("out.xml") is not None:
            from eotensor.io.atomic import check_outputs

            check_outputs([("out.xml", values["out.xml"])], {f for r in self.rasters for f in r.files})

    @cached_property
    def statistics(self) -> Any:
        """The :class:`~eotensor.classify.statistics.BandStatistics`."""
        from eotensor.classify.statistics import image_statistics

        return image_statistics(self.rasters, self.background, "il")


def build(values: Values) -> ImagesStatistics:
    """Open the images (and refuse bad ones); the statistics wait for the first use."""
    return ImagesStatistics(values)


def write(result: ImagesStatistics, values: Values, progress: bool = False) -> str | None:
    """Write the XML to ``out.xml`` if given; on the command line, print the vectors as OTB does."""
    from eotensor.io.otbxml import format_number

    stats = result.statistics
    path = stats.write(values["out.xml"], "out.xml") if values.get("out.xml") is not None else None
    if progress:
        for name, key in (("mean", "mean"), ("min", "min"), ("max", "max"), ("std", "stddev")):
            print(f"out.{name}: [{', '.join(format_number(v) for v in stats.vectors()[key])}]")
        if path:
            print(f"ComputeImagesStatistics: wrote {path} ({stats.count} pixels)", file=sys.stderr)
    return path


APP = App(
    name="ComputeImagesStatistics",
    description="Per-band mean, min, max and standard deviation of images (OTB's XML, the imstat of classifiers).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def ComputeImagesStatistics(options: dict[str, Any] | None = None,  # noqa: N802
                            **kwargs: Any) -> ImagesStatistics:
    """Run ComputeImagesStatistics from Python with OTB keys: ``il=[...]``, ``bv=``, ``out_xml=``.

    With ``out_xml`` the XML is written. The result's ``statistics`` holds ``mean``, ``min``, ``max``, ``stddev``.
    """
    return run_python(APP, options, **kwargs)
