"""Input rasters: OTBTF "sources", i.e. image lists stacked along bands, read window by window as float32."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from eotensor.errors import InputFileError
from eotensor.geometry import Grid, Window


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def open_raster(path: str | os.PathLike, param: str) -> Any:
    """Open ``path`` with rasterio, or raise a one-line InputFileError naming ``param`` and the file."""
    path = os.fspath(path)
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
        raise InputFileError(f'{param}: input file "{path}" does not exist')
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as error:
        raise InputFileError(f'{param}: cannot read "{path}" as a raster ({_first_line(error)})') from None


class RasterSource:
    """An image list stacked along bands (OTBTF's ``sourceN.il``), read as float32 windows.

    All images must have the same size; the stack takes the first image's geometry (origin, spacing,
    CRS), as OTBTF does. Bands keep list order: all bands of image 1, then image 2, ... Each thread
    gets its own GDAL handles, so windows may be read concurrently.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], param: str = "source1.il") -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise InputFileError(f"{param}: the image list is empty; give at least one raster")
        self.paths = [os.fspath(p) for p in paths]
        self.param = param
        self.band_counts: list[int] = []
        self.nodata_values: list[float | None] = []
        first = None
        for k, path in enumerate(self.paths):
            with open_raster(path, param) as ds:
                if first is None:
                    first = (ds.width, ds.height)
                    self.grid = Grid.from_transform(ds.transform, ds.width, ds.height, ds.crs)
                elif (ds.width, ds.height) != first:
                    raise InputFileError(
                        f'{param}: image {k + 1} "{path}" is {ds.width}x{ds.height} pixels but image 1 '
                        f'"{self.paths[0]}" is {first[0]}x{first[1]}; all images of a list must have the same size'
                    )
                self.band_counts.append(ds.count)
                self.nodata_values.extend(ds.nodatavals)
        self._local = threading.local()

    @property
    def count(self) -> int:
        """Number of stacked bands."""
        return sum(self.band_counts)

    def _datasets(self) -> list[Any]:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = [open_raster(p, self.param) for p in self.paths]
        return handles

    def read(self, window: Window) -> np.ndarray:
        """Pixels of ``window`` as a C-contiguous float32 array of shape (rows, cols, bands).

        GDAL writes straight into the pixel-interleaved buffer (through a band-first view), so no
        transposing copy is made.
        """
        pixels = np.empty((window.height, window.width, self.count), dtype=np.float32)
        planes = pixels.transpose(2, 0, 1)
        if window.size:
            rio_window = window.to_rasterio()
            band = 0
            for ds, n in zip(self._datasets(), self.band_counts):
                try:
                    ds.read(out=planes[band:band + n], window=rio_window)
                except (RasterioError, OSError) as error:
                    raise InputFileError(f'{self.param}: cannot read "{ds.name}" ({_first_line(error)})') from None
                band += n
        return pixels

    def close(self) -> None:
        """Close this thread's handles (other threads' handles close when garbage-collected)."""
        for ds in getattr(self._local, "handles", None) or []:
            ds.close()
        self._local.handles = None
