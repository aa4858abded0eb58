"""Input rasters: OTBTF "sources", i.e. image lists stacked along bands, read window by window as float32.

Each image may be an OTB extended filename selecting bands (``in.tif?&bands=1,3:4``, see
:func:`~eotensor.io.extended.parse_input`). A complex band gives two bands, real then imaginary, as OTB
reads it (decision 35). An image that changes while a result is being computed is an error, not a mix of
old and new pixels.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from eotensor.errors import GeometryError, InputFileError
from eotensor.geometry import Grid, Window
from eotensor.io.atomic import error_text, is_virtual_path
from eotensor.io.extended import parse_input, resolve_bands


def open_raster(path: str | os.PathLike, param: str) -> Any:
    """Open ``path`` with rasterio, or raise a one-line InputFileError naming ``param`` and the file."""
    path = os.fspath(path)
    if not is_virtual_path(path) and not os.path.exists(path):
        raise InputFileError(f'{param}: input file "{path}" does not exist')
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as error:
        raise InputFileError(f'{param}: cannot read "{path}" as a raster ({error_text(error)})') from None


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    """What tells a changed file, cheaply: device, inode, size and modification time (None if virtual)."""
    if is_virtual_path(path):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0, -1, 0)
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def dataset_files(path: str) -> list[str]:
    """The files that determine the pixels eotensor reads from the raster ``path``: the file and a VRT's sources;
    ``[path]`` when it cannot be opened. A resumable run stamps them all (:func:`eotensor.engine.resume.describe`).
    GDAL's statistics and overview side-cars (``.aux.xml``, ``.ovr``) are left out: eotensor reads neither (full
    resolution, its own no-data), and ``gdalinfo -stats`` or QGIS writing them must not void a resume."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                files = [os.fspath(name) for name in ds.files]
    except (RasterioError, OSError):
        return [path]
    return [path, *(name for name in files if name != path and not name.lower().endswith(SIDE_CARS))]


SIDE_CARS = (".aux.xml", ".ovr")
"""GDAL side-cars that change no pixel eotensor reads (see :func:`dataset_files`)."""


@dataclass(frozen=True)
class _Image:
    """One image of the list, as opened: what is read from it and what it looked like."""

    path: str
    """The real filename (extended part removed)."""
    indexes: tuple[int, ...]
    """The 1-based bands read, in order (the ``bands`` selection)."""
    complex_bands: tuple[bool, ...]
    """Per read band: whether it is complex (it then gives two stacked bands, real and imaginary)."""
    shape: tuple[int, int, int]
    """``(width, height, band count)`` of the file when opened."""
    stamp: tuple[int, int, int, int] | None
    """:func:`_stamp` of the file when opened."""

    @property
    def count(self) -> int:
        """Number of stacked bands this image gives."""
        return len(self.indexes) + sum(self.complex_bands)


class RasterSource:
    """An image list stacked along bands (OTBTF's ``sourceN.il``), read as float32 windows.

    All images must have the same size; the stack takes the first image's geometry (origin, spacing,
    CRS), as OTBTF does. Bands keep list order: the (selected) bands of image 1, then image 2, ...; a
    complex band gives two bands, real then imaginary. Each thread gets its own GDAL handles, opened on
    its first read, so windows may be read concurrently.

    A file that changed since the source was opened (replaced, rewritten, resized: device, inode, size or
    modification time differ) raises :class:`InputFileError` on the next read instead of giving stale or
    mixed pixels; the check is one ``stat`` per file and read.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], param: str = "source1.il") -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise InputFileError(f"{param}: the image list is empty; give at least one raster")
        self.param = param
        self.specs = [os.fspath(p) for p in paths]
        """The filenames as given (extended parts included)."""
        self.images: list[_Image] = []
        self.nodata_values: list[float | None] = []
        """The file's no-data value of each stacked band (None where it has none)."""
        first = None
        for k, text in enumerate(self.specs):
            spec = parse_input(text, param)
            stamp = _stamp(spec.path)
            with open_raster(spec.path, param) as ds:
                if first is None:
                    first = (ds.width, ds.height)
                    try:
                        self.grid = Grid.from_transform(ds.transform, ds.width, ds.height, ds.crs)
                    except GeometryError as error:
                        raise GeometryError(f'{param}: "{spec.path}": {error}') from None
                elif (ds.width, ds.height) != first:
                    raise InputFileError(
                        f'{param}: image {k + 1} "{spec.path}" is {ds.width}x{ds.height} pixels but image 1 '
                        f'"{self.paths[0]}" is {first[0]}x{first[1]}; all images of a list must have the same size'
                    )
                indexes = tuple(resolve_bands(spec, ds.count, param))
                complex_bands = tuple(ds.dtypes[i - 1].startswith("complex") for i in indexes)
                self.images.append(_Image(spec.path, indexes, complex_bands, (ds.width, ds.height, ds.count), stamp))
                for i, is_complex in zip(indexes, complex_bands):
                    self.nodata_values.extend([ds.nodatavals[i - 1]] * (2 if is_complex else 1))
        self._local = threading.local()

    @property
    def paths(self) -> list[str]:
        """The real filenames of the list (extended parts removed), e.g. to refuse one as an output."""
        return [image.path for image in self.images]

    @property
    def token(self) -> str:
        """What determines this source's pixels, as text: each file, the bands read and its stamp when opened
        (device, inode, size, modification time). Part of a tile plan's fingerprint. Files by their resolved path:
        ``a.tif``, ``./a.tif`` and ``/abs/a.tif`` give the same pixels (and a resumed run accepts either)."""
        return repr([(image.path if is_virtual_path(image.path) else os.path.realpath(image.path), image.indexes,
                      image.stamp) for image in self.images])

    @property
    def band_counts(self) -> list[int]:
        """Stacked bands per image (after band selection and complex splitting)."""
        return [image.count for image in self.images]

    @property
    def count(self) -> int:
        """Number of stacked bands."""
        return sum(self.band_counts)

    def nodata_files(self) -> list[tuple[str, float]]:
        """``(file, value)`` for each image whose read bands carry a no-data value (its first one).

        For a warning when ``sourceN.nodata`` is unset: OTBTF ignores a file's own no-data value, so such
        pixels are computed like any other.
        """
        found = []
        start = 0
        for image in self.images:
            values = [v for v in self.nodata_values[start:start + image.count] if v is not None]
            start += image.count
            if values:
                found.append((image.path, values[0]))
        return found

    def _changed(self, image: _Image) -> InputFileError:
        """The error for ``image``'s file having changed since it was opened, saying how if it can."""
        width, height, count = image.shape
        now = "its contents were modified"
        try:
            with rasterio.open(image.path) as ds:
                if (ds.width, ds.height) != (width, height):
                    now = f"now {ds.width}x{ds.height}"
                elif ds.count != count:
                    now = f"now {ds.count} band(s) instead of {count}"
        except (RasterioError, OSError) as error:
            now = f"now unreadable ({error_text(error)})"
        return InputFileError(
            f'{self.param}: "{image.path}" changed since it was opened: was {width}x{height}, {now}; '
            "rerun on the new file"
        )

    def _datasets(self) -> list[Any]:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = []
            try:
                for image in self.images:
                    ds = open_raster(image.path, self.param)
                    handles.append(ds)
                    if (ds.width, ds.height, ds.count) != image.shape or _stamp(image.path) != image.stamp:
                        raise self._changed(image)
            except BaseException:
                for ds in handles:
                    ds.close()
                raise
            self._local.handles = handles
        return handles

    def read(self, window: Window) -> np.ndarray:
        """Pixels of ``window`` as a C-contiguous float32 array of shape (rows, cols, bands).

        GDAL writes straight into the pixel-interleaved buffer (through a band-first view), so no
        transposing copy is made; complex bands go through a complex buffer, split into real and imaginary.
        """
        pixels = np.empty((window.height, window.width, self.count), dtype=np.float32)
        planes = pixels.transpose(2, 0, 1)
        if window.size:
            rio_window = window.to_rasterio()
            band = 0
            self.check_unchanged()
            for ds, image in zip(self._datasets(), self.images):
                n = image.count
                try:
                    if any(image.complex_bands):
                        self._read_complex(ds, image, rio_window, planes[band:band + n])
                    else:
                        ds.read(list(image.indexes), out=planes[band:band + n], window=rio_window)
                except (RasterioError, OSError) as error:
                    raise InputFileError(f'{self.param}: cannot read "{image.path}" ({error_text(error)})') from None
                band += n
        return pixels

    def read_bands(self, window: Window, bands: Sequence[int]) -> np.ndarray:
        """Only the stacked ``bands`` (0-based, in this order) of ``window``: float32 (rows, cols, len(bands)).

        What a pixel-wise expression needs when it uses a few bands of a multi-band image: GDAL reads just
        those. Complex images are read whole, then selected.
        """
        if any(any(image.complex_bands) for image in self.images):
            return np.ascontiguousarray(self.read(window)[..., list(bands)])
        where = [(k, i) for k, image in enumerate(self.images) for i in image.indexes]
        pixels = np.empty((window.height, window.width, len(bands)), dtype=np.float32)
        if window.size:
            planes = pixels.transpose(2, 0, 1)
            rio_window = window.to_rasterio()
            self.check_unchanged()
            datasets = self._datasets()
            for j, band in enumerate(bands):
                k, index = where[band]
                try:
                    datasets[k].read(index, out=planes[j], window=rio_window)
                except (RasterioError, OSError) as error:
                    raise InputFileError(f'{self.param}: cannot read "{self.images[k].path}" '
                                         f"({error_text(error)})") from None
        return pixels

    def check_unchanged(self) -> None:
        """Raise :class:`InputFileError` if a file changed since the source was opened (one ``stat`` per file)."""
        for image in self.images:
            if image.stamp is not None and _stamp(image.path) != image.stamp:
                raise self._changed(image)

    @staticmethod
    def _read_complex(ds: Any, image: _Image, rio_window: Any, planes: np.ndarray) -> None:
        """Read ``image``'s bands into ``planes``, each complex band as two planes (real, imaginary)."""
        values = ds.read(list(image.indexes), window=rio_window, out_dtype="complex64")
        k = 0
        for value, is_complex in zip(values, image.complex_bands):
            planes[k] = value.real
            if is_complex:
                planes[k + 1] = value.imag
            k += 1 + is_complex

    def close(self) -> None:
        """Close this thread's handles (other threads' handles close when garbage-collected)."""
        for ds in getattr(self._local, "handles", None) or []:
            ds.close()
        self._local.handles = None
