"""Vector files through pyogrio: read features (points, polygons) with one field, write point layers atomically.

Anything GDAL reads is an input (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, ...); the first layer is read.
Outputs take their format from the extension (:data:`VECTOR_FORMATS`; no extension: GeoPackage) and are composed
under a temporary name (:class:`~eotensor.io.atomic.AtomicOutput`), renamed when complete. Geometries are
shapely 2 arrays; coordinates move between CRSs with ``rasterio.warp.transform`` (decision 22).

Every failure is one line naming the parameter, the file and what was expected.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
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
    if info.get("features") == 0:  # before the field check: an empty layer lists no field either
        raise InputFileError(f'{param}: "{path}" holds no feature; expected at least one')
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
    if values.dtype.kind == "f":  # nullable integer fields come as floats: checked at once, not point by point
        with np.errstate(invalid="ignore"):
            bad = present & ~((values == np.floor(values)) & (np.abs(values) < 2.0**63))
        check = np.flatnonzero(bad)[:1]  # the first offending feature, for the message below
    else:
        check = np.flatnonzero(present)
    for k in check:
        value = values[k]
        try:
            number = float(value)
            ok = number.is_integer() and abs(number) < 2**63
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(
                f'{field_param}: field "{layer.field}" of "{layer.path}" holds {_plain(value)!r} at feature '
                f"{layer.fids[k]}; expected integer values"
            )
        result[k] = int(number)
    if values.dtype.kind == "f":
        result[present] = values[present].astype(np.int64)  # all integral and in range: checked above
    return result, present


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (so messages read 1.5, not np.float64(1.5))."""
    return value.item() if isinstance(value, np.generic) else value


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
    (``.shx``, ``.dbf``, ``.prj``, ``.cpg``) are renamed with it. Many points: :func:`write_point_chunks`.
    """
    return write_point_chunks(path, [(x, y, fields)], crs, param)


_SIDECARS = {"ESRI Shapefile": _SHAPEFILE_PARTS, "GML": (".xsd",)}
"""Files a driver writes beside the named one, renamed (or removed) with it."""

APPENDABLE_FORMATS = ("GPKG", "GeoJSON", "ESRI Shapefile", "SQLite")
"""Drivers that :func:`write_point_chunks` appends to chunk by chunk (GML cannot: its chunks are joined)."""

POINT_CHUNK = 1 << 20
"""Points per chunk when a caller cuts a large set (:func:`point_chunks`): bounds the shapely points and WKB alive
at once (about 200 bytes a point)."""

PointChunk = tuple[np.ndarray, np.ndarray, Mapping[str, np.ndarray]]
"""``(x, y, {field: integer array})`` of some points."""


def write_point_chunks(path: str | os.PathLike, chunks: Iterable[PointChunk], crs: Any, param: str) -> str:
    """Write the points of every chunk, in order, to ``path`` (as :func:`write_points`); return ``path``.

    Each chunk is written by its own OGR call, appending to the layer the first one creates, so only one chunk's
    geometries are alive at a time; a GML file cannot be appended to, so its chunks are joined and written at once.
    A GeoPackage written in more than one chunk has no spatial index (R-tree): appending to an indexed layer
    costs about 7 times as much (add one later with ``ogrinfo f.gpkg -sql "SELECT CreateSpatialIndex(...)"``).
    ``chunks`` may be a generator (computed while writing) and must yield at least one chunk, empty or not; every
    chunk has the same fields. The file appears only when complete.
    """
    import shapely

    path = os.fspath(path)
    driver = output_driver(path, param)
    extension = os.path.splitext(path)[1] or ".gpkg"
    shapefile = driver == "ESRI Shapefile"
    crs = _crs(crs)
    if driver not in APPENDABLE_FORMATS:
        chunks = [_joined(chunks)]
    chunks = iter(chunks)
    ahead = list(itertools.islice(chunks, 2))
    chunks = itertools.chain(ahead, chunks)
    # Appending to a GeoPackage layer with an R-tree updates it row by row (7x slower than without one).
    options = {"SPATIAL_INDEX": "NO"} if driver == "GPKG" and len(ahead) > 1 else None
    with AtomicOutput(path, param) as output:
        scratch = output.scratch(extension)
        os.remove(scratch)  # OGR creates the file itself; an existing empty file is not a valid dataset
        parts = [os.path.splitext(scratch)[0] + part for part in _SIDECARS.get(driver, ())]
        # A Shapefile's layer is its file: appending must name the scratch file's layer.
        layer = os.path.splitext(os.path.basename(scratch if shapefile else path))[0] or "points"
        try:
            written = False
            for x, y, fields in chunks:
                if written and not len(x):
                    continue
                geometry = shapely.to_wkb(shapely.points(np.asarray(x, np.float64), np.asarray(y, np.float64)))
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "'crs' was not provided")  # an image without CRS: no CRS
                    _pyogrio().raw.write(
                        scratch, geometry, [np.asarray(v) for v in fields.values()], list(fields), driver=driver,
                        layer=layer, geometry_type="Point", crs=crs.to_wkt() if crs is not None else None,
                        append=written, layer_options=None if written else options,
                    )
                written = True
            if not written:
                raise ValueError("no chunk of points to write")
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


def point_chunks(x: np.ndarray, y: np.ndarray, fields: Mapping[str, np.ndarray],
                 size: int = POINT_CHUNK) -> Iterator[PointChunk]:
    """``(x, y, fields)`` cut in slices of ``size`` points (at least one slice, empty if there is no point)."""
    for start in range(0, max(len(x), 1), size):
        stop = start + size
        yield x[start:stop], y[start:stop], {name: values[start:stop] for name, values in fields.items()}


def _joined(chunks: Iterable[PointChunk]) -> PointChunk:
    """One chunk holding every point of ``chunks``."""
    parts = list(chunks)
    if not parts:
        raise ValueError("no chunk of points to write")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            {name: np.concatenate([p[2][name] for p in parts]) for name in parts[0][2]})
