"""Vector files through pyogrio: read features (points, polygons) with one field, write point layers atomically.

Anything GDAL reads is an input (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, ...); the first layer is read.
Outputs take their format from the extension (:data:`VECTOR_FORMATS`; no extension: GeoPackage) and are composed
under a temporary name (:class:`~eotensor.io.atomic.AtomicOutput`), renamed when complete. Geometries are
shapely 2 arrays; coordinates move between CRSs with ``rasterio.warp.transform`` (decision 22).

Every failure is one line naming the parameter, the file and what was expected.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.errors import InputFileError, OutputFileError, ParameterError
from eotensor.io.atomic import AtomicOutput, error_text, is_virtual_path

VECTOR_FORMATS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".sqlite": "SQLite",
    ".gml": "GML",
}
"""Output extension -> OGR driver. A name without extension is written as GeoPackage."""

_SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")


def _pyogrio() -> Any:
    import pyogrio

    return pyogrio


def _crs(value: Any) -> Any:
    """A ``rasterio.crs.CRS`` from what pyogrio or a grid holds (None stays None)."""
    if value is None or value == "":
        return None
    from rasterio.crs import CRS

    return value if isinstance(value, CRS) else CRS.from_user_input(value)


def vector_info(path: str | os.PathLike, param: str) -> dict[str, Any]:
    """pyogrio's description of the first layer of ``path`` (fields, CRS, feature count), or a one-line error."""
    path = os.fspath(path)
    if not is_virtual_path(path) and not os.path.exists(path):
        raise InputFileError(f'{param}: vector file "{path}" does not exist')
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "File .* non conformant file extension")
            return _pyogrio().read_info(path)
    except Exception as error:  # noqa: BLE001 - pyogrio raises its own DataSourceError, DataLayerError, ...
        raise InputFileError(f'{param}: cannot read "{path}" as a vector file ({error_text(error)})') from None


@dataclass(frozen=True)
class VectorLayer:
    """The features of a vector file's first layer, as read: geometries, FIDs, one field, the CRS."""

    path: str
    param: str
    geometries: np.ndarray
    """shapely geometries, None where a feature has no geometry."""
    fids: np.ndarray
    """OGR feature ids (int64), as OGR numbers them (GeoPackage from 1, Shapefile from 0)."""
    values: np.ndarray | None
    """The field's values (None when no field was asked for); missing values are None or NaN."""
    field: str | None
    crs: Any
    """``rasterio.crs.CRS`` of the layer, or None when it has none."""

    def __len__(self) -> int:
        return len(self.fids)


def read_vector(path: str | os.PathLike, param: str, field: str | None = None,
                field_param: str = "field") -> VectorLayer:
    """Read the first layer of ``path`` with the field ``field``.

    Errors: the file is missing or unreadable, has no feature, or has no field ``field`` (the message lists
    the fields that exist; a field differing only in case is taken, as OGR does).
    """
    path = os.fspath(path)
    info = vector_info(path, param)
    columns: list[str] = []
    if field is not None:
        names = [str(name) for name in info["fields"]]
        if field not in names:
            folded = [name for name in names if name.lower() == field.lower()]
            if len(folded) != 1:
                listed = ", ".join(names) if names else "none"
                raise ParameterError(f'{field_param}: "{path}" has no field "{field}"; its fields: {listed}')
            field = folded[0]
        columns = [field]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "File .* non conformant file extension")
            meta, fids, wkb, data = _pyogrio().raw.read(path, columns=columns, return_fids=True, force_2d=True)
    except Exception as error:  # noqa: BLE001
        raise InputFileError(f'{param}: cannot read "{path}" ({error_text(error)})') from None
    if len(fids) == 0:
        raise InputFileError(f'{param}: "{path}" holds no feature; expected at least one')
    import shapely

    geometries = shapely.from_wkb(wkb) if wkb is not None else np.full(len(fids), None, dtype=object)
    return VectorLayer(path, param, geometries, np.asarray(fids, dtype=np.int64), data[0] if columns else None,
                       field, _crs(meta.get("crs")))


def integer_values(layer: VectorLayer, field_param: str = "field") -> tuple[np.ndarray, np.ndarray]:
    """The field's values as int64 and a mask of the features that have one (OTB's ``GetFieldAsInt``).

    Integers, integral floats and strings holding integers are accepted; a missing value (null) leaves the
    feature out of the mask. Any other value is an error naming the first offending feature.
    """
    values = layer.values
    if values is None:
        raise ValueError("integer_values needs a layer read with a field")
    present = np.array([v is not None for v in values], dtype=bool) if values.dtype == object else \
        np.ones(len(values), dtype=bool)
    if values.dtype.kind == "f":
        present &= ~np.isnan(values)
    result = np.zeros(len(values), dtype=np.int64)
    if values.dtype.kind in "iub":
        return values.astype(np.int64), present
    for k in np.flatnonzero(present):
        value = values[k]
        try:
            number = float(value)
            ok = number.is_integer() and abs(number) < 2**63
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(
                f'{field_param}: field "{layer.field}" of "{layer.path}" holds {value!r} at feature {layer.fids[k]}; '
                "expected integer values"
            )
        result[k] = int(number)
    return result, present


def point_coordinates(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, is_point): coordinates of the point features (NaN elsewhere) and which features are points."""
    import shapely

    is_point = shapely.get_type_id(geometries) == 0
    is_point &= ~shapely.is_empty(geometries)
    x = np.full(len(geometries), np.nan)
    y = np.full(len(geometries), np.nan)
    x[is_point] = shapely.get_x(geometries[is_point])
    y[is_point] = shapely.get_y(geometries[is_point])
    return x, y, is_point


def target_crs(layer: VectorLayer, image_crs: Any, image: str) -> Any:
    """The CRS the layer's coordinates are in, given the image's: the layer's own, or the image's when the layer
    has none (a warning says it was assumed). None means no transformation is possible or needed."""
    image_crs = _crs(image_crs)
    if layer.crs is None and image_crs is not None:
        warnings.warn(f'{layer.param}: "{layer.path}" has no CRS; its coordinates are taken as in the CRS of '
                      f'"{image}" ({image_crs.to_string()})', stacklevel=3)
        return image_crs
    if layer.crs is not None and image_crs is None:
        warnings.warn(f'{layer.param}: "{image}" has no CRS; the coordinates of "{layer.path}" '
                      f"({layer.crs.to_string()}) are used as they are", stacklevel=3)
        return None
    return layer.crs


def reproject_xy(x: np.ndarray, y: np.ndarray, source_crs: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(x, y)`` moved from ``source_crs`` to ``target`` (unchanged when either is None or equal)."""
    source_crs, target = _crs(source_crs), _crs(target)
    if source_crs is None or target is None or source_crs == target:
        return x, y
    from rasterio.warp import transform

    xs, ys = transform(source_crs, target, x, y)
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def reproject_geometries(geometries: np.ndarray, source_crs: Any, target: Any) -> np.ndarray:
    """shapely geometries moved from ``source_crs`` to ``target`` (unchanged when either is None or equal)."""
    source_crs, target = _crs(source_crs), _crs(target)
    if source_crs is None or target is None or source_crs == target:
        return geometries
    import shapely

    def move(xy: np.ndarray) -> np.ndarray:
        xs, ys = reproject_xy(xy[:, 0], xy[:, 1], source_crs, target)
        return np.column_stack([xs, ys])

    return shapely.transform(geometries, move)


def output_driver(path: str | os.PathLike, param: str) -> str:
    """The OGR driver for an output name, from its extension (none: GeoPackage), or a one-line error."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if not extension:
        return "GPKG"
    if extension not in VECTOR_FORMATS:
        raise ParameterError(f'{param}: cannot write "{os.fspath(path)}": unknown vector format "{extension}"; '
                             f"expected one of {', '.join(VECTOR_FORMATS)}")
    return VECTOR_FORMATS[extension]


def write_points(path: str | os.PathLike, x: np.ndarray, y: np.ndarray, fields: Mapping[str, np.ndarray],
                 crs: Any, param: str) -> str:
    """Write one point per ``(x[i], y[i])`` with ``fields`` (name -> integer array) to ``path``; return ``path``.

    The file appears only when complete (written under a temporary name, then renamed); a Shapefile's parts
    (``.shx``, ``.dbf``, ``.prj``, ``.cpg``) are renamed with it.
    """
    import shapely

    path = os.fspath(path)
    driver = output_driver(path, param)
    extension = os.path.splitext(path)[1] or ".gpkg"
    shapefile = driver == "ESRI Shapefile"
    geometry = shapely.to_wkb(shapely.points(np.asarray(x, np.float64), np.asarray(y, np.float64)))
    crs = _crs(crs)
    with AtomicOutput(path, param) as output:
        scratch = output.scratch(extension)
        os.remove(scratch)  # OGR creates the file itself; an existing empty file is not a valid dataset
        parts = [os.path.splitext(scratch)[0] + part for part in _SHAPEFILE_PARTS] if shapefile else []
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "'crs' was not provided")  # an image without CRS: points without
                _pyogrio().raw.write(
                    scratch, geometry, [np.asarray(v) for v in fields.values()], list(fields), driver=driver,
                    layer=os.path.splitext(os.path.basename(path))[0] or "points", geometry_type="Point",
                    crs=crs.to_wkt() if crs is not None else None,
                )
            os.replace(scratch, output.temp_path)
            for part in parts:
                if os.path.exists(part):
                    os.replace(part, os.path.splitext(output.final)[0] + os.path.splitext(part)[1])
        except Exception as error:  # noqa: BLE001 - pyogrio/GDAL errors of any kind
            for part in parts:
                if os.path.exists(part):
                    os.remove(part)
            raise OutputFileError(f'{param}: cannot write "{path}" ({output.explain(error)})') from None
    return path
