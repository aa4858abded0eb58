"""DensePolygonClassStatistics: OTBTF's per-class and per-feature pixel counts of training polygons.

The table below is the app; :class:`StatisticsConfig` reads the parsed values, :func:`build` reads the image
grid and the vector layer (counting waits for the first use, :class:`PolygonStatistics`) and :func:`write`
writes OTB's statistics XML (:mod:`eotensor.io.otbxml`), which OTB's ``SampleSelection -instats`` reads.
Counting (:mod:`eotensor.sampling.polygons`) follows OTB's PolygonClassStatistics, which this app replaces
(decision 9a), pixel for pixel.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from eotensor.apps import options
from eotensor.apps.params import App, Group, Kind, Param, Values, run_python

NOTES = """\
Counts, as OTB's PolygonClassStatistics: a pixel counts for a polygon when its centre is inside (a centre
on a left or bottom edge is in, on a right or top edge out), for a point when it holds the point, for a line
when its square touches the line. The parts of multi-geometries count separately, and a pixel under two
overlapping features counts once for each (and once per feature in its class). The image's no-data is
ignored (OTB counts those pixels too). Features with a null class count under the class "" (as OTB).
samplesPerVector is keyed by the features' FIDs in the file (GeoPackage from 1, Shapefile from 0) and,
as OTB, lists with 0 the features that meet the image without covering a pixel centre.

Polygons in another CRS than the image are reprojected (2-D; a layer without CRS is taken as in the
image's, with a warning). The elev.* parameters are accepted for OTB command lines and not used.
Counting streams over full-width strips of rows sized from -ram (default: OTB_MAX_RAM_HINT or 256)."""

PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Support image: its grid (origin, spacing, size) and CRS.", mandatory=True),
    Param("vec", Kind.INPUT_VECTOR, "Training polygons (any vector format GDAL reads; first layer).", mandatory=True),
    Param("field", Kind.FIELD, "Class field of -vec, string or integer: its name in any case, or OTBTF's key "
          "(its lower-cased letters and digits: classname for Class_Name).", mandatory=True, of="vec"),
    Param("out", Kind.OUTPUT_FILE, "Output statistics (OTB's XML: samplesPerClass, samplesPerVector).",
          mandatory=True, suffix=".xml"),
    Group("elev", "Elevation management (OTB's; reprojection here is 2-D, so these are not used).", (
        Param("dem", Kind.STRING, "DEM directory (not used)."),
        Param("geoid", Kind.STRING, "Geoid file (not used)."),
        Param("default", Kind.FLOAT, "Default elevation (not used).", 0.0),
    )),
    options.ram(),
)

_FIELD_TYPES = ("OFTString", "OFTInteger", "OFTInteger64")
"""The field types OTB offers as classes."""


@dataclass(frozen=True)
class StatisticsConfig:
    """DensePolygonClassStatistics' parameters as typed fields, read once from the parsed values."""

    image: str
    vector: str
    field: str
    out: str | None
    ram_mb: float | None
    elevation: tuple[str, ...]
    """The ``elev.*`` keys given (they are not used)."""

    @classmethod
    def from_values(cls, v: Values) -> StatisticsConfig:
        """Read ``v`` (from :func:`~eotensor.apps.params.parse_cli` or ``parse_python``)."""
        return cls(image=str(v["in"]), vector=str(v["vec"]), field=str(v["field"]), out=v.get("out"),
                   ram_mb=v["ram"], elevation=tuple(k for k in ("elev.dem", "elev.geoid", "elev.default")
                                                    if v.is_set(k)))


def field_name(field: str, names: Sequence[Any]) -> str:
    """The field ``field`` stands for: itself, or (as OTBTF keys its field list) the field whose lower-cased
    letters and digits spell it (``-field classname`` for ``Class_Name``). Case alone is left to
    :func:`~eotensor.io.vector.read_vector`, which also reports a field that does not exist."""
    names = [str(name) for name in names]
    if any(name.lower() == field.lower() for name in names):
        return field
    keyed = [name for name in names if "".join(c for c in name.lower() if c.isalnum()) == field.lower()]
    return keyed[0] if len(keyed) == 1 else field


def class_names(values: np.ndarray, ogr_type: str) -> list[str]:
    """Each feature's class as OTB spells it (``GetFieldAsString``): integers in decimal, null as ""."""
    if values.dtype.kind in "iu":  # an integer field without nulls, as pyogrio reads it
        return values.astype(str).tolist()
    names = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            names.append("")
        elif ogr_type != "OFTString":
            names.append(str(int(value)))
        else:
            names.append(str(value))
    return names


class PolygonStatistics:
    """The counts of one run, computed on first use: ``per_vector`` (FID -> pixels) and ``per_class``."""

    def __init__(self, config: StatisticsConfig) -> None:
        from eotensor.io import vector
        from eotensor.io.atomic import check_outputs
        from eotensor.io.raster import RasterSource

        self.config = config
        source = RasterSource([config.image], "in")
        self.grid = source.grid
        if config.out is not None:
            check_outputs([("out", config.out)], [*source.paths, config.vector])
        info = vector.vector_info(config.vector, "vec")
        layer = vector.read_vector(config.vector, "vec", field_name(config.field, info["fields"]), "field")
        ogr_type = dict(zip([str(f) for f in info["fields"]], info["ogr_types"]))[layer.field]
        if ogr_type not in _FIELD_TYPES:
            raise _field_error(config, layer.field, ogr_type, info)
        self.fids = layer.fids
        self.classes = class_names(layer.values, ogr_type)
        self.geometries = vector.reproject_geometries(
            layer.geometries, vector.target_crs(layer, self.grid.crs, config.image), self.grid.crs)

    @cached_property
    def counts(self) -> np.ndarray:
        """Pixels of each feature (int64, in file order)."""
        from eotensor.sampling.polygons import feature_counts

        return feature_counts(self.geometries, self.grid, self.config.ram_mb)

    @cached_property
    def listed(self) -> np.ndarray:
        """Which features OTB lists even without a pixel (:func:`~eotensor.sampling.polygons.considered`)."""
        from eotensor.sampling.polygons import considered

        return considered(self.geometries, self.grid) | (self.counts > 0)

    @property
    def per_vector(self) -> dict[int, int]:
        """FID -> pixels, for the features that meet the image (OTB's ``samplesPerVector``)."""
        return {fid: n for fid, n, kept in zip(self.fids.tolist(), self.counts.tolist(), self.listed.tolist()) if kept}

    @property
    def per_class(self) -> dict[str, int]:
        """Class -> pixels, for the classes of the features that meet the image (OTB's ``samplesPerClass``)."""
        from eotensor.sampling.polygons import class_counts

        return class_counts(self.counts, self.classes, self.listed)


def _field_error(config: StatisticsConfig, field: str, ogr_type: str, info: dict[str, Any]) -> Exception:
    from eotensor.errors import ParameterError

    usable = [str(f) for f, t in zip(info["fields"], info["ogr_types"]) if t in _FIELD_TYPES]
    return ParameterError(f'field: field "{field}" of "{config.vector}" is of type {ogr_type[3:]}; expected a string '
                          f"or integer field: {', '.join(usable) or 'there is none'}")


def build(values: Values) -> PolygonStatistics:
    """Read the grid and the features (and refuse bad inputs); the counts wait for the first use."""
    config = StatisticsConfig.from_values(values)
    if config.elevation:
        warnings.warn(f"{', '.join(config.elevation)}: not used; polygons are reprojected in 2-D", stacklevel=2)
    return PolygonStatistics(config)


def write(result: PolygonStatistics, values: Values, progress: bool = False) -> str:
    """Write the XML to ``out``; with ``progress``, a one-line summary on stderr."""
    from eotensor.io.otbxml import write_maps

    per_class, per_vector = result.per_class, result.per_vector
    if not sum(per_vector.values()):
        warnings.warn(f'vec: no feature of "{result.config.vector}" covers a pixel centre of "{result.config.image}"; '
                      "the statistics are empty (as OTB writes them)", stacklevel=2)
    path = write_maps(values["out"], {"samplesPerClass": per_class, "samplesPerVector": per_vector}, "out")
    if progress:
        print(f"DensePolygonClassStatistics: wrote {path} ({sum(per_class.values())} pixels, {len(per_class)} "
              f"class(es), {len(per_vector)} feature(s))", file=sys.stderr)
    return path


APP = App(
    name="DensePolygonClassStatistics",
    description="Count the image pixels of each training polygon and class; write OTB's statistics XML.",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def DensePolygonClassStatistics(options: dict[str, Any] | None = None,  # noqa: N802
                                **kwargs: Any) -> PolygonStatistics:
    """Run DensePolygonClassStatistics from Python with OTB keys: ``in_=``, ``vec=``, ``field=``, ``out=``.

    Keywords are the OTB keys (``in`` spelled ``in_``); ``options`` may hold them as a dict (``{"in": ...}``).
    With ``out`` the XML is written; without it nothing is. Either way the :class:`PolygonStatistics` is
    returned (``per_class``, ``per_vector``, ``counts``).
    """
    return run_python(APP, options, **kwargs)
