"""PatchesExtraction: OTBTF's patch sampler, parameter for parameter.

The table below is the app; :class:`ExtractionConfig` reads the parsed values, :func:`build` opens the sources
and the vector layer (:class:`~eotensor.sampling.extraction.PatchExtraction`, nothing computed yet) and
:func:`write` selects the samples and streams the patches images. The work lives in
:mod:`eotensor.sampling.extraction`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eotensor.apps import options
from eotensor.apps.params import App, Kind, OutputImage, Param, Values, run_python

if TYPE_CHECKING:
    from eotensor.sampling.extraction import PatchExtraction

NOTES = f"""\
For every feature of vec, in stored order, each source gives the patch of patchsizex x patchsizey of its
own pixels around the point: the point's pixel (half-up rounding) sits at offset floor(size/2) in the
patch, so sources at different resolutions give patches centred on the same point. A sample is kept only
if every source accepts it: the whole patch inside the image, and (with sourceN.nodata) no pixel where any
band equals the no-data value. Features whose field is empty are skipped; other geometries than points
are rejected. Points in another CRS than a source are reprojected to its CRS; a layer without CRS is taken
as in the image's (a warning says so).

Outputs (OTBTF's patches-image format): sourceN.out is patchsizex wide and N x patchsizey high, patch k
(the k-th accepted feature) in rows [k*patchsizey, (k+1)*patchsizey), with the source's signed spacing,
pixel (0,0)'s centre at (0,0), no CRS; default pixel type float (e.g. "-source1.out p.tif int16",
extended filename ?&gdal:co:COMPRESS=DEFLATE). outlabels is 1 x N, uint8 by default, the field values
clamped to the pixel type. A summary on stderr counts accepted, rejected and skipped features.

Streaming: the images are read in full-width strips, in raster order, sized from ram (default
OTB_MAX_RAM_HINT or 256 MB); patches are written one GeoTIFF strip per patch, so the outputs are complete
whatever the order of the points.
{options.NSOURCES_NOTE}"""

PARAMS = (
    options.sources(
        Param("out", Kind.OUTPUT_IMAGE,
              "Patches image of source N (.tif; extended filename allowed), then an optional pixel type.",
              mandatory=True),
        Param("patchsizex", Kind.INT, "Patch width, in source N's pixels.", mandatory=True,
              aliases=("patchsize_x",), minimum=1),
        Param("patchsizey", Kind.INT, "Patch height, in source N's pixels.", mandatory=True,
              aliases=("patchsize_y",), minimum=1),
        options.nodata("No-data value of source N: a patch where any band of any pixel equals it is rejected."),
        help="Source N: an image list stacked on bands, the patch size and the patches image written.",
    ),
    Param("vec", Kind.INPUT_VECTOR, "Points to sample (any vector format GDAL reads; the first layer).",
          mandatory=True),
    Param("field", Kind.FIELD, "Integer field of vec, written to outlabels.", mandatory=True, of="vec"),
    Param("outlabels", Kind.OUTPUT_IMAGE, "Labels image: 1 x N, the field value of each sample.",
          pixel_type="uint8"),
    options.ram(),
    options.threads(),
)


@dataclass(frozen=True)
class SourceConfig:
    """One ``sourceN`` group."""

    images: list[str]
    out: OutputImage | None
    patch: tuple[int, int]
    nodata: float | None


@dataclass(frozen=True)
class ExtractionConfig:
    """PatchesExtraction's parameters as typed fields, read once from the parsed values."""

    sources: tuple[SourceConfig, ...]
    vec: str
    field: str
    outlabels: OutputImage | None
    ram_mb: float | None
    workers: int | None

    @classmethod
    def from_values(cls, v: Values) -> ExtractionConfig:
        """Read ``v`` (from :func:`~eotensor.apps.params.parse_cli` or ``parse_python``)."""
        sources = tuple(
            SourceConfig(v[f"source{n}.il"], v.get(f"source{n}.out"),
                         (v[f"source{n}.patchsizex"], v[f"source{n}.patchsizey"]), v[f"source{n}.nodata"])
            for n in range(1, v.count("source") + 1)
        )
        return cls(sources=sources, vec=v["vec"], field=v["field"], outlabels=v.get("outlabels"),
                   ram_mb=v["ram"], workers=v["threads"])


def build(values: Values) -> PatchExtraction:
    """Open the sources and the vector layer, check the outputs: the extraction, nothing computed or written."""
    from eotensor.errors import OutputFileError
    from eotensor.io.atomic import check_outputs
    from eotensor.io.extended import parse_output
    from eotensor.io.raster import RasterSource
    from eotensor.io.vector import read_vector
    from eotensor.sampling.extraction import PatchExtraction, PatchSource, warn_file_nodata

    cfg = ExtractionConfig.from_values(values)
    outputs = [(parse_output(*s.out, param=f"source{n}.out"), f"source{n}.out")
               for n, s in enumerate(cfg.sources, start=1) if s.out is not None]
    if cfg.outlabels is not None:
        outputs.append((parse_output(*cfg.outlabels, param="outlabels"), "outlabels"))
    for target, param in outputs:
        if target.format.directory is not None:
            raise OutputFileError(f'{param}: "{target.path}": patches images are GeoTIFF strips, not a '
                                  f"{target.format.directory.label} store; expected a .tif name")
    sources = []
    for n, s in enumerate(cfg.sources, start=1):
        source = PatchSource(RasterSource(s.images, f"source{n}.il"), s.patch, s.nodata, f"source{n}")
        warn_file_nodata(source)
        sources.append(source)
    inputs = [cfg.vec] + [path for source in sources for path in source.raster.paths]
    check_outputs([(param, target.path) for target, param in outputs], inputs)
    layer = read_vector(cfg.vec, "vec", cfg.field)
    return PatchExtraction(layer, sources, cfg.ram_mb, workers=cfg.workers)


def write(result: PatchExtraction, values: Values, progress: bool = False) -> list[str]:
    """Select the samples and write every patches image and the labels; with ``progress``, progress bars and
    the summary on stderr."""
    from eotensor.errors import ParameterError
    from eotensor.io.extended import parse_output

    cfg = ExtractionConfig.from_values(values)
    for n, s in enumerate(cfg.sources, start=1):
        if s.out is None:
            raise ParameterError(f"source{n}.out: missing; expected a patches image for every source")
    outs = [parse_output(*s.out, param=f"source{n}.out") for n, s in enumerate(cfg.sources, start=1)]
    labels = parse_output(*cfg.outlabels, param="outlabels") if cfg.outlabels is not None else None
    if progress:
        print(f"PatchesExtraction: {result.counts.summary()}", file=sys.stderr)
    paths = result.write(outs, labels, progress=progress)
    if progress:
        print(f"PatchesExtraction: wrote {len(result.selection)} patch(es) to {', '.join(paths)}", file=sys.stderr)
    return paths


APP = App(
    name="PatchesExtraction",
    description="Extract patches around points from one or many sources, streamed (OTBTF's sampler).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def PatchesExtraction(options: dict[str, Any] | None = None, **kwargs: Any) -> PatchExtraction:  # noqa: N802
    """Run PatchesExtraction from Python with OTB keys: ``source1_il=[...]``, ``source1_out=...``, ``vec=...``.

    Keywords are the OTB keys with every dot replaced by an underscore; ``options`` may hold the same
    parameters as an OTB-key dict (``{"source1.patchsizex": 16}``). ``sourceN_out`` and ``outlabels`` take a
    filename, a path or (filename, pixel type). With outputs they are written; without, nothing is. Either way
    the :class:`~eotensor.sampling.extraction.PatchExtraction` is returned (``.selection``, ``.counts``).
    """
    return run_python(APP, options, **kwargs)
