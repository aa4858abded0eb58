"""xarray in and out: a lazy result as a Dask-backed ``DataArray``, and a ``DataArray`` as a lazy result.

:func:`to_xarray` wraps any :class:`~eotensor.lazy.LazyRaster` in a ``DataArray`` of dims ``(band, y, x)``,
computed chunk by chunk on demand, chunks aligned to the result's tiles, with pixel-centre ``x``/``y``
coordinates and the CRS and transform written as rioxarray reads them (``da.rio.crs``,
``da.rio.transform()``). :func:`from_xarray` goes the other way: a ``DataArray`` on a regular grid with a CRS
(rioxarray's conventions) becomes a lazy result, so it can be a model's source (``eot.source(da)``), be
written, or chained. xarray, rioxarray and Dask are the ``xarray`` extra; importing eotensor never imports
them.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from typing import Any

import numpy as np

from eotensor.errors import GeometryError, MissingDependencyError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.cf import GRID_MAPPING, grid_mapping_attrs, pixel_centres
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.lazy import LazyRaster

__all__ = ["XarrayRaster", "from_xarray", "is_data_array", "to_xarray"]


def _import(what: str) -> tuple[Any, Any]:
    """xarray and rioxarray (whose import registers the ``.rio`` accessor), or a one-line error naming the extra."""
    try:
        import rioxarray
        import xarray
    except ImportError as error:
        raise MissingDependencyError(f"{what} needs xarray and rioxarray ({error}); pip install 'eotensor[xarray]'") \
            from None
    return xarray, rioxarray


def is_data_array(value: Any) -> bool:
    """True for an ``xarray.DataArray`` (without importing xarray when the caller never did)."""
    xarray = sys.modules.get("xarray")
    return xarray is not None and isinstance(value, xarray.DataArray)


class _Windows:
    """The array-like Dask reads chunks from: slices of (band, y, x) computed by the lazy result."""

    def __init__(self, raster: LazyRaster) -> None:
        self.raster = raster
        self.shape = raster.shape
        self.dtype = np.dtype(np.float32)
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = (k.indices(n) for k, n in zip(key, self.shape))
        window = Window(rows[0], cols[0], rows[1] - rows[0], cols[1] - cols[0])
        pixels = to_pixel_type(self.raster.compute(window), np.float32) if window.size else \
            np.empty((self.shape[0], window.height, window.width), np.float32)
        return pixels[slice(*bands)]


def to_xarray(raster: LazyRaster, name: str | None = None) -> Any:
    """``raster`` as a lazily computed, Dask-backed ``DataArray`` (band, y, x) of float32, chunked like its tiles."""
    xarray, _ = _import("to_xarray")
    try:
        import dask.array
    except ImportError as error:
        raise MissingDependencyError(f"to_xarray needs Dask ({error}); pip install 'eotensor[xarray]'") from None
    grid = raster.grid
    tile = raster.tile_shape()
    windows = _Windows(raster)
    # Unique per call: two results with equal tokens (a closure's data is not in a function's token) must never
    # share Dask keys, or one would be computed for both.
    label = f"eotensor-{hashlib.sha256(raster.token.encode()).hexdigest()[:12]}-{uuid.uuid4().hex[:12]}"
    data = dask.array.from_array(windows, chunks=(raster.count, tile.rows, tile.cols), name=label, lock=False,
                                 asarray=False, fancy=False, meta=np.empty((0, 0, 0), np.float32))
    y, x = pixel_centres(grid)
    coords = {"band": np.arange(1, raster.count + 1), "y": y, "x": x,
              GRID_MAPPING: xarray.Variable((), 0, grid_mapping_attrs(grid))}
    array = xarray.DataArray(data, dims=("band", "y", "x"), coords=coords, name=name)
    array.encoding["grid_mapping"] = GRID_MAPPING  # where rioxarray's write_crs puts it
    return array


class XarrayRaster(LazyRaster):
    """A ``DataArray`` (2-D, or 3-D with one band dimension) on a regular grid, as a lazy result."""

    def __init__(self, data: Any, param: str = "source1.il") -> None:
        super().__init__()
        _import("a DataArray source")
        rio = data.rio
        try:
            y_dim, x_dim = rio.y_dim, rio.x_dim
        except Exception as error:  # noqa: BLE001 - rioxarray raises its own MissingSpatialDimensionError
            raise ParameterError(f"{param}: the DataArray has no x/y dimensions rioxarray recognises ({error})") \
                from None
        others = [d for d in data.dims if d not in (y_dim, x_dim)]
        if len(others) > 1:
            raise ParameterError(f"{param}: the DataArray has dims {data.dims}; expected (y, x) or (band, y, x)")
        self.data = data.transpose(*others, y_dim, x_dim) if others else data.expand_dims("band")
        self.param = param
        transform = rio.transform(recalc=True)
        if transform.b or transform.d:
            raise GeometryError(f"{param}: the DataArray's grid is rotated; expected a north-up regular grid")
        self._grid = Grid.from_transform(transform, data.sizes[x_dim], data.sizes[y_dim], rio.crs)
        for axis, dim in ((self._grid.x, x_dim), (self._grid.y, y_dim)):
            coords = np.asarray(data[dim].values, dtype=np.float64)
            expected = axis.point(np.arange(axis.size))
            if coords.size > 1 and not np.allclose(coords, expected, rtol=0, atol=abs(axis.spacing) * 1e-6):
                raise GeometryError(f"{param}: the DataArray's {dim} coordinates are not evenly spaced; eotensor "
                                    "needs a regular grid (resample it first)")
        self._token = repr(("xarray", data.name, self._grid.transform, self.data.shape, str(self.data.dtype),
                            getattr(self.data.data, "name", None) or id(self.data)))

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    @property
    def token(self) -> str:
        return self._token

    @property
    def files(self) -> list[str]:
        """The file a DataArray opened with rioxarray/xarray reads (its ``encoding["source"]``), so it is never an
        output."""
        source = self.data.encoding.get("source")
        return [str(source)] if source else []

    def compute(self, window: Window) -> np.ndarray:
        rows, cols = window.slices()
        return np.asarray(self.data[:, rows, cols].values)


def from_xarray(data: Any, param: str = "source1.il") -> XarrayRaster:
    """A ``DataArray`` with a CRS on a regular grid (rioxarray's conventions) as a lazy result."""
    return XarrayRaster(data, param)
