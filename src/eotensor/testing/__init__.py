"""Helpers for testing code built on eotensor: rasters in a line, and the tiled == untiled assertion.

``assert_tiled_equals_untiled`` is the engine's core property as one call (modelled on dask's
``assert_eq``): the whole output computed as one tile by the ``sync`` executor is the reference, and
every other tile shape, through every executor, must give the same bytes. Hypothesis strategies live
in :mod:`eotensor.testing.strategies` (importing it needs ``hypothesis``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from eotensor.engine.execute import EXECUTORS, run_tiles
from eotensor.engine.tiling import TileShape, plan_tiles
from eotensor.geometry import Grid, round_up

__all__ = ["assert_tiled_equals_untiled", "compute_tiled", "write_raster"]


def write_raster(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    spacing: float | tuple[float, float] = 10.0,
    origin: tuple[float, float] = (300000.0, 4900020.0),
    crs: Any = "EPSG:32631",
    dtype: str | None = None,
    nodata: float | None = None,
    **profile: Any,
) -> str:
    """Write ``data`` (bands, rows, cols) as a north-up GeoTIFF whose upper-left corner is ``origin``.

    ``spacing`` is the pixel size (x, y) or one number for both; ``dtype`` defaults to the array's;
    extra keywords go to the rasterio profile. ``path`` may be a ``/vsimem/`` name. Returns the path.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[np.newaxis]
    sx, sy = (spacing, spacing) if np.isscalar(spacing) else spacing
    bands, height, width = data.shape
    settings = dict(driver="GTiff", width=width, height=height, count=bands, dtype=dtype or data.dtype.name,
                    crs=crs, transform=Affine(sx, 0, origin[0], 0, -sy, origin[1]), nodata=nodata)
    settings.update(profile)
    with rasterio.open(os.fspath(path), "w", **settings) as ds:
        ds.write(data.astype(settings["dtype"]))
    return os.fspath(path)


def compute_tiled(engine: Any, tile: TileShape, scheduler: str = "sync", workers: int | None = 2) -> np.ndarray:
    """The whole output of ``engine`` (anything with ``grid``, ``count`` and ``compute(window)``), tile by tile."""
    grid: Grid = engine.grid
    out = np.zeros((engine.count, grid.height, grid.width), np.float32)

    def sink(array: np.ndarray, window: Any) -> None:
        out[(slice(None), *window.slices())] = array

    run_tiles(engine.compute, plan_tiles(grid, tile), sink, scheduler, workers)
    return out


def assert_tiled_equals_untiled(
    engine: Any, tiles: Iterable[TileShape | int | Sequence[int]], schedulers: Iterable[str] | None = None,
) -> np.ndarray:
    """Assert every tile shape, through every executor, gives the untiled ``sync`` result; return that result.

    Tile sizes (an int, (rows, cols) or a :class:`TileShape`) are rounded up to the expression field
    ``engine.fields.efield`` when the engine has one. The comparison is exact (NaN equals NaN).
    """
    grid: Grid = engine.grid
    ef_x, ef_y = getattr(getattr(engine, "fields", None), "efield", (1, 1))
    untiled = compute_tiled(engine, TileShape(round_up(grid.height, ef_y), round_up(grid.width, ef_x)))
    for tile in tiles:
        if not isinstance(tile, TileShape):
            rows, cols = (tile, tile) if np.isscalar(tile) else tile
            tile = TileShape(round_up(int(rows), ef_y), round_up(int(cols), ef_x))
        for name in schedulers or EXECUTORS:
            np.testing.assert_array_equal(
                compute_tiled(engine, tile, name), untiled,
                err_msg=f"tiles of {tile.rows}x{tile.cols} with the {name} executor differ from the untiled result")
    return untiled
