"""Zarr outputs (``-out map.zarr``, decision 31): one store that xarray opens with its georeferencing.

The store (Zarr format 2, written with zarr-python 3 directly; consolidated metadata, so ``xarray.open_zarr`` reads
it in one request and without warnings) holds:

* ``band_data`` ``(band, y, x)``: the result in the output pixel type (OTB's casting,
  :func:`~eotensor.io.pixeltypes.to_pixel_type`), chunked like the tiles (one chunk per tile, all bands),
  compressed with Blosc LZ4 (:data:`COMPRESSOR`); the no-data value, if any, is its ``fill_value`` (xarray's
  ``_FillValue``, GDAL's no-data), else it has none (no value is masked);
* ``band`` (1..N), ``y`` and ``x`` (pixel centres of the written region);
* ``spatial_ref``: the grid-mapping variable rioxarray reads (``crs_wkt``, ``spatial_ref``, ``GeoTransform``;
  :mod:`eotensor.geometry.cf`), so ``open_zarr(path).rio.crs`` and ``.rio.transform()`` equal the GeoTIFF's.

The store is composed in a temporary directory next to the final name and renamed when complete
(:class:`~eotensor.io.atomic.AtomicOutput` with :data:`ZARR`): an existing store is replaced only then, any other
existing path is refused before any work, and an error or Ctrl-C leaves no temporary directory.

Tiles are written by :class:`ZarrTiles`, a picklable writer: the client calls it (sync and threaded runs, or a
box whose origin is not on the chunk grid, where tiles straddle chunks), or, on a Dask cluster with one tile per
chunk, each worker calls it right after computing its tile (:meth:`ZarrWriter.remote_sink`) and only a
:class:`ChunkWritten` acknowledgement travels back; no two tasks ever write one chunk, and a task that runs again
(its worker died) rewrites its chunk with the same bytes (zarr writes chunk files atomically). When a run fails, a
``processes:N`` cluster is closed before the temporary store is removed; on a shared cluster a task still running
checks that the store exists before writing its chunk (a task finishing in the instant of the removal could still
recreate a directory there). zarr is imported only when a store is written (the ``dask`` extra).

Why format 2: GDAL 3.10 (rasterio's wheels) cannot read zarr-python 3's format-3 stores ("Unsupported codec:
bytes"), while it opens a format-2 store with its CRS, transform and no-data (``ZARR:"map.zarr":/band_data``), as
xarray and every Zarr reader do; xarray reads both alike.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eotensor.errors import MissingDependencyError, OutputFileError
from eotensor.geometry import Grid, Window, as_window
from eotensor.geometry.cf import GRID_MAPPING, grid_mapping_attrs, pixel_centres
from eotensor.io.atomic import AtomicOutput, CommitOnSuccess, DirectoryKind, error_text
from eotensor.io.pixeltypes import to_pixel_type

if TYPE_CHECKING:
    from affine import Affine

    from eotensor.io.extended import OutputTarget

__all__ = ["ARRAY", "ZARR", "ChunkWritten", "ZarrTiles", "ZarrWriter", "is_zarr_store"]

ARRAY = "band_data"
"""The data variable's name (what xarray's rasterio engine calls a raster's bands)."""

COMPRESSOR = {"cname": "lz4", "clevel": 5, "shuffle": 1}
"""The pixels' codec: Blosc LZ4 with byte shuffle (xarray's Zarr 2 default). zstd took 7 x longer on a 32 MB float32
chunk for a 23 % smaller store: a client writing every chunk would be the bottleneck."""


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding Zarr metadata (``zarr.json``; format 2: ``.zgroup``/``.zarray``)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in ("zarr.json", ".zgroup", ".zarray"))


ZARR = DirectoryKind("Zarr", is_zarr_store)
"""Zarr stores as directory outputs: an existing one is replaced, any other existing path refused."""


def _zarr(param: str) -> Any:
    try:
        import zarr
    except ImportError as error:
        raise MissingDependencyError(f"{param}: Zarr output needs zarr ({error}); pip install 'eotensor[dask]'") \
            from None
    return zarr


@dataclass(frozen=True)
class ChunkWritten:
    """A tile written into the store where it was computed: what travels back instead of its pixels."""

    window: Window


_OPEN: OrderedDict[str, Any] = OrderedDict()
_OPEN_LOCK = threading.Lock()


def _open_array(path: str) -> Any:
    """The Zarr array at ``path``, opened once per process (a Dask worker writes many tiles into one store)."""
    with _OPEN_LOCK:
        array = _OPEN.get(path)
        if array is None:
            if not os.path.isdir(path):  # the run was stopped and its temporary store removed: recreate nothing
                raise OutputFileError(f'the temporary Zarr store "{path}" is gone (the run was stopped)')
            array = _OPEN[path] = _zarr("out").open_array(path, mode="r+")
            while len(_OPEN) > 4:
                _OPEN.popitem(last=False)
        return array


@dataclass(frozen=True)
class ZarrTiles:
    """Writes tiles into one Zarr array (the temporary store's ``band_data``): picklable, so the same code runs on
    the client and on Dask workers.

    A tile is given in full-grid pixel coordinates, as every writer takes it; only its part inside ``region``
    (the box, else the grid) is converted to the pixel type and written.
    """

    path: str
    """The array's directory."""
    region: Window
    """The window of the full output grid the store holds."""
    dtype: str
    nodata: float | None
    count: int

    def __call__(self, array: np.ndarray, window: Any) -> ChunkWritten:
        window = as_window(window)
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.shape != (self.count, window.height, window.width):
            raise ValueError(f"Zarr tile of shape {array.shape} for a {window.height}x{window.width} window; "
                             f"expected ({self.count}, {window.height}, {window.width})")
        inside = window.intersect(self.region)
        if inside.size:
            part = array[(slice(None), *inside.slices(window))]
            dtype = np.dtype(self.dtype)
            values = part if part.dtype == dtype else to_pixel_type(part, dtype, self.nodata)
            if os.path.isdir(self.path):  # a stopped run's store is gone: never recreate its directories
                _open_array(self.path)[(slice(None), *inside.slices(self.region))] = values
        return ChunkWritten(window)


class ZarrWriter(CommitOnSuccess):
    """Write one result into a Zarr store, tile by tile, under a temporary directory until :meth:`commit`.

    ``width``, ``height``, ``transform`` and ``crs`` describe the **full** output grid; ``target.box`` selects the
    window the store holds (its coordinates and transform start there). ``chunks`` is the tile shape (rows,
    cols): tiles are anchored at index 0 of the full grid, so they coincide with the chunks when the box origin
    is a multiple of it (then :meth:`remote_sink` lets Dask workers write). :meth:`write` takes a tile's pixels,
    or the :class:`ChunkWritten` a worker returned for it; :meth:`commit` checks that every chunk was
    acknowledged, consolidates the metadata and renames the store into place.
    """

    def __init__(self, target: OutputTarget, *, width: int, height: int, count: int, transform: Affine,
                 crs: Any = None, chunks: tuple[int, int], param: str | None = None) -> None:
        self.param = param or target.param
        self.path = target.path
        self.region = target.region(int(width), int(height))
        rows, cols = int(chunks[0]), int(chunks[1])
        self.aligned = self.region.row % rows == 0 and self.region.col % cols == 0
        """Whether every tile is one chunk (the box origin lies on the chunk grid)."""
        self.expected = math.ceil(self.region.height / rows) * math.ceil(self.region.width / cols)
        self.acknowledged = 0
        zarr = _zarr(self.param)
        self._output: AtomicOutput | None = AtomicOutput(self.path, self.param, directory=ZARR)
        root = self._output.temp_path
        grid = Grid.from_transform(transform, int(width), int(height), crs).window(self.region)
        dtype = target.dtype
        try:
            from numcodecs import Blosc

            group = zarr.open_group(root, mode="w", zarr_format=2)
            group.create_array(ARRAY, shape=(int(count), grid.height, grid.width), dtype=dtype,
                               chunks=(int(count), min(rows, grid.height), min(cols, grid.width)),
                               compressors=Blosc(**COMPRESSOR),
                               fill_value=None if target.nodata is None else dtype.type(target.nodata),
                               attributes={"_ARRAY_DIMENSIONS": ["band", "y", "x"], "grid_mapping": GRID_MAPPING,
                                           "coordinates": GRID_MAPPING})
            y, x = pixel_centres(grid)
            for name, values in (("band", np.arange(1, int(count) + 1, dtype=np.int64)), ("y", y), ("x", x)):
                group.create_array(name, shape=values.shape, dtype=values.dtype, fill_value=None,
                                   attributes={"_ARRAY_DIMENSIONS": [name]})[...] = values
            group.create_array(GRID_MAPPING, shape=(), dtype=np.int64, fill_value=None,
                               attributes={**grid_mapping_attrs(grid), "_ARRAY_DIMENSIONS": []})[...] = 0
        except (OSError, ValueError, TypeError) as error:
            self.abort()
            raise OutputFileError(f'{self.param} "{self.path}": cannot create the Zarr store '
                                  f"({self._explain(error)})") from None
        self.tiles = ZarrTiles(os.path.join(root, ARRAY), self.region, dtype.str, target.nodata, int(count))
        """The picklable tile writer of this store."""

    def _explain(self, error: BaseException) -> str:
        return self._output.explain(error) if self._output is not None else error_text(error)

    @property
    def closed(self) -> bool:
        """Whether the store was committed or aborted."""
        return self._output is None

    def remote_sink(self) -> ZarrTiles | None:
        """The tile writer a Dask worker may call after computing a tile (one tile is one chunk), or None when
        tiles straddle chunks (a box origin off the chunk grid): then only the client writes."""
        return self.tiles if self.aligned else None

    def write(self, array: np.ndarray | ChunkWritten, window: Any) -> None:
        """Write a tile's pixels (full-grid ``window``), or count a :class:`ChunkWritten` a worker returned."""
        if self._output is None:
            raise OutputFileError(f'{self.param} "{self.path}": write after the store was committed or aborted')
        if isinstance(array, ChunkWritten):
            self.acknowledged += 1
            return
        try:
            self.tiles(array, window)
        except OSError as error:
            raise OutputFileError(f'{self.param} "{self.path}": writing the tile at {as_window(window)} failed '
                                  f"({self._explain(error)})") from None

    def commit(self) -> str:
        """Check the acknowledgements, consolidate the metadata and rename the store onto its final name."""
        if self._output is None:
            raise OutputFileError(f'{self.param} "{self.path}": commit after the store was committed or aborted')
        output, self._output = self._output, None
        try:
            if self.acknowledged and self.acknowledged != self.expected:
                raise OutputFileError(f'{self.param} "{self.path}": {self.acknowledged} of {self.expected} chunks '
                                      "were acknowledged by the workers; the previous store, if any, is unchanged")
            _zarr(self.param).consolidate_metadata(output.temp_path)
            with _OPEN_LOCK:
                _OPEN.pop(self.tiles.path, None)
            return output.commit()
        except OSError as error:
            output.abort()
            raise OutputFileError(f'{self.param} "{self.path}": finishing the Zarr store failed '
                                  f"({output.explain(error)}); the previous store, if any, is unchanged") from None
        except BaseException:
            output.abort()
            raise

    def abort(self) -> None:
        """Delete the temporary store; the final name is left untouched. Safe to call twice."""
        output, self._output = self._output, None
        if output is not None:
            output.abort()
        tiles = getattr(self, "tiles", None)
        if tiles is not None:
            with _OPEN_LOCK:
                _OPEN.pop(tiles.path, None)

    def __del__(self) -> None:
        try:
            if getattr(self, "_output", None) is not None:
                self.abort()
        except Exception:  # noqa: BLE001 - nothing may escape __del__
            pass
