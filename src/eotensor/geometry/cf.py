"""A grid as xarray/rioxarray describe it: pixel-centre coordinates and the ``spatial_ref`` grid-mapping variable.

rioxarray reads a raster's CRS from the grid-mapping variable its data variable names (``grid_mapping``,
default ``spatial_ref``): its ``spatial_ref``/``crs_wkt`` attributes (GDAL's WKT), and the transform from its
``GeoTransform`` attribute (GDAL's six numbers as text). The ``x``/``y`` coordinates are the pixel centres. The
in-memory ``DataArray`` (:func:`eotensor.xarray_io.to_xarray`) and the Zarr store (:mod:`eotensor.io.zarr`) both
take their georeferencing from here, so both read back with the same ``.rio.crs`` and ``.rio.transform()`` as
the GeoTIFF of the same grid. Pure functions: no xarray or rioxarray needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eotensor.geometry.grid import Grid

__all__ = ["GRID_MAPPING", "grid_mapping_attrs", "pixel_centres"]

GRID_MAPPING = "spatial_ref"
"""The name of the grid-mapping variable (rioxarray's default)."""


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The ``y`` and ``x`` coordinates (float64) of the grid's pixel centres, rows then columns."""
    return (np.asarray(grid.y.point(np.arange(grid.height)), np.float64),
            np.asarray(grid.x.point(np.arange(grid.width)), np.float64))


def grid_mapping_attrs(grid: Grid) -> dict[str, Any]:
    """The attributes of the ``spatial_ref`` variable as rioxarray's ``write_crs`` + ``write_transform`` give them.

    ``crs_wkt`` and ``spatial_ref`` hold the CRS as WKT (rasterio's, as rioxarray writes it), with the CF
    grid-mapping parameters (``grid_mapping_name``...) when pyproj is installed (it comes with rioxarray);
    ``GeoTransform`` holds the transform. A grid without a CRS gets the transform only.
    """
    attrs: dict[str, Any] = {}
    if grid.crs is not None:
        from rasterio.crs import CRS

        wkt = CRS.from_user_input(grid.crs).to_wkt()
        try:
            import pyproj

            attrs.update(pyproj.CRS.from_user_input(wkt).to_cf())
        except ImportError:
            pass  # the WKT attributes alone are what rioxarray and GDAL read
        attrs["spatial_ref"] = wkt
        attrs["crs_wkt"] = wkt
    attrs["GeoTransform"] = " ".join(str(item) for item in grid.transform.to_gdal())
    return attrs
