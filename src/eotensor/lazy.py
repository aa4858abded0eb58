"""Lazy rasters: results that compute any window on demand, chain in memory, and stream to files.

Every result — a served model (:class:`~eotensor.api.ServedRaster`), an opened file (:func:`open`), a band
selection, a pixel-wise expression — is a :class:`LazyRaster`: a grid, a band count, and ``compute(window)``
giving that window's pixels. Any of them can feed another app as a source (:func:`as_source`): the
downstream engine asks its upstream for exactly the windows it needs (halo included), so a chain stays
streamed and bounded in memory, and, since a window's pixels never depend on the tiling, it gives the
bytes the same chain gives through intermediate files:

>>> import eotensor as eot
>>> features = eot.serve("cnn", [eot.source("s2.tif", rfield=64)], efield=32, fullyconv=True)
>>> head = eot.serve("head", [eot.source(features)])          # no intermediate file
>>> head[0].write("classes.tif", "uint8")

What a source reads from an upstream result is what the upstream's file would hold with the default pixel
type (float32): values converted the way the writer converts them, then read as float32.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from eotensor.engine.execute import get_executor, in_list, runs_remotely, with_remote
from eotensor.engine.progress import Progress
from eotensor.engine.tiling import (
    TilePlan,
    TileShape,
    auto_tile_shape,
    plan_tiles,
    ram_budget_mb,
)
from eotensor.errors import GeometryError, InputFileError, ParameterError
from eotensor.geometry import Grid, Window, as_window
from eotensor.geometry.fields import Fields
from eotensor.geometry.grid import grid_difference
from eotensor.io.extended import OutputTarget, parse_output
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE, GeoTiffWriter, block_shape
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.io.raster import RasterSource
from eotensor.values import as_number, as_strings

__all__ = ["ArrayRaster", "BandSelection", "ChainedSource", "FileRaster", "LazyRaster", "Stack", "TileCache",
           "WindowRaster", "as_raster_source", "open", "size_gdal_cache", "write"]

PIXELWISE = Fields(rfields=((1, 1),), efield=(1, 1), scale=1.0, fully_conv=True)
"""The fields of a pixel-wise result: one output pixel from the same input pixel."""


def size_gdal_cache(ram_mb: float) -> None:
    """Size GDAL's block cache before its first use (its default is 5 % of RAM): tiles cover whole blocks, so a
    quarter of the memory budget is plenty. It is process-wide and fixed at first use, hence ``setdefault``."""
    os.environ.setdefault("GDAL_CACHEMAX", str(max(32, int(ram_mb / 4))))


def _window(value: Any) -> Window:
    """:func:`~eotensor.geometry.as_window`, with a one-line :class:`ParameterError` naming ``read``."""
    try:
        return as_window(value)
    except (TypeError, ValueError) as error:
        raise ParameterError(
            f"read: window {value!r} is not a Window, a (row, col, height, width) tuple or a rasterio window "
            f"({error})"
        ) from None


class TileCache:
    """Whole tiles of one result, computed once for every consumer that reads it (band selections, chained
    sources, expressions, several outputs written together).

    Consumers ask for windows; the cache computes the result's own plan tiles that meet them, keeps them
    (least recently used first out) and cuts the windows out. Windows consumers ask for overlap (halos,
    OTBTF's one-pixel margin in patch-based mode) and run in plan order, so four rows of tiles (the rows
    a halo reaches around the tiles in flight), within twice the result's memory budget, let every tile
    be computed once; beyond the budget a tile a halo reaches may be computed again (never differently).
    Threads wanting the same tile wait for the one computing it. A window under a sixteenth of a tile
    that the tiles kept do not cover (a band-count probe) is computed on its own.
    """

    def __init__(self, raster: LazyRaster) -> None:
        self.raster = raster
        self._tiles: OrderedDict[Window, np.ndarray] = OrderedDict()
        self._pending: dict[Window, threading.Event] = {}
        self._lock = threading.Lock()
        self._shape: TileShape | None = None
        """The result's tile shape, asked once."""

    def clear(self) -> None:
        """Let go of every tile kept."""
        with self._lock:
            self._tiles.clear()

    def _tile(self, tile: Window, keep: int) -> np.ndarray:
        while True:
            with self._lock:
                if tile in self._tiles:
                    self._tiles.move_to_end(tile)
                    return self._tiles[tile]
                waiting = self._pending.get(tile)
                if waiting is None:
                    self._pending[tile] = threading.Event()
                    break
            waiting.wait()  # then look again: it is cached, or its computation failed and this thread tries
        try:
            values = self.raster.compute(tile)
            values.flags.writeable = False  # shared by every consumer: none may change it
            with self._lock:
                self._tiles[tile] = values
                cap = 2 * self.raster.ram_mb * 1024 * 1024
                while len(self._tiles) > keep or (len(self._tiles) > 2 and sum(
                        v.nbytes for v in self._tiles.values()) > cap):
                    self._tiles.popitem(last=False)
        finally:
            with self._lock:
                self._pending.pop(tile).set()
        return values

    def read(self, window: Window) -> np.ndarray:
        """The result's pixels of ``window`` (bands, rows, cols), in its own dtype; do not modify the array."""
        if not self.raster.worth_caching:
            return self.raster.compute(window)
        if self._shape is None:  # fixed for the result; its fingerprint (a stat of every file) is not needed here
            self._shape = self.raster.tile_shape()
        plan = plan_tiles(self.raster.grid, self._shape, window)
        tiles = list(plan)
        per_row = -(-self.raster.grid.width // plan.tile.cols)
        keep = max(4 * per_row, len(tiles) + 2 * per_row) + 4  # this window's tiles and the rows halos reach
        if len(tiles) == 1 and tiles[0] == window:
            return self._tile(window, keep)
        if window.size * 16 < plan.tile.rows * plan.tile.cols:
            with self._lock:
                cached = [self._tiles[t] for t in tiles if t in self._tiles]
            if len(cached) < len(tiles):  # a small window (a band-count probe): not worth whole tiles
                return self.raster.compute(window)
        out: np.ndarray | None = None
        for tile in tiles:
            values = self._tile(tile, keep)
            if out is None or out.dtype != np.result_type(out.dtype, values.dtype):
                dtype = values.dtype if out is None else np.result_type(out.dtype, values.dtype)
                grown = np.empty((values.shape[0], window.height, window.width), dtype)
                if out is not None:
                    grown[...] = out
                out = grown
            piece = tile.intersect(window)
            out[(slice(None), *piece.slices(window))] = values[(slice(None), *piece.slices(tile))]
        assert out is not None
        return out


class LazyRaster(ABC):
    """A raster computed on demand: a grid, a band count, and any window's pixels.

    Subclasses give :attr:`grid`, :attr:`count`, :attr:`token`, :attr:`files` and :meth:`compute`; this base
    gives reading (:meth:`read`, :meth:`to_numpy`), streamed writing (:meth:`write`), band selection
    (``r[0]``, ``r[[2, 1, 0]]``) and the tile plan. Execution options: ``workers`` threads (None: one per
    core, at most 4), a memory budget ``ram_mb`` per tile, and the executor's name ``scheduler``.
    """

    def __init__(self, workers: int | None = None, ram_mb: float | None = None, scheduler: Any = "threads") -> None:
        self.workers = None if workers is None else as_number(workers, "workers", integer=True, minimum=0)
        self.ram_mb = ram_budget_mb(ram_mb)
        self.scheduler = scheduler
        self.executor = get_executor(scheduler, "optim.scheduler")
        """The executor function ``scheduler`` names (see :mod:`eotensor.engine.execute`)."""
        self.tiles = TileCache(self)
        """This result's tiles for the consumers that read it (see :class:`TileCache`)."""

    # ------------------------------------------------------------------ what subclasses give
    @property
    @abstractmethod
    def grid(self) -> Grid:
        """The output grid."""

    @property
    @abstractmethod
    def count(self) -> int:
        """Number of bands."""

    @property
    @abstractmethod
    def token(self) -> str:
        """What determines the pixels (inputs, model, parameters), as text: part of every plan's fingerprint."""

    @property
    @abstractmethod
    def files(self) -> list[str]:
        """Every file this result reads, upstream results included (an output may never be one of them)."""

    @abstractmethod
    def compute(self, window: Window) -> np.ndarray:
        """Pixels of ``window`` (full-grid indices) as an array (bands, rows, cols), in the result's own dtype."""

    @property
    def descriptions(self) -> tuple[str, ...]:
        """What each band holds, one text per band ("" for none), written as the output's band descriptions
        (GeoTIFF: GDAL's); empty (the default) for none at all."""
        return ()

    # ------------------------------------------------------------------ derived
    @property
    def transform(self) -> Any:
        """GDAL-style affine transform of the grid."""
        return self.grid.transform

    @property
    def crs(self) -> Any:
        """CRS of the grid."""
        return self.grid.crs

    @property
    def shape(self) -> tuple[int, int, int]:
        """(bands, rows, cols), like a rasterio dataset read."""
        return (self.count, self.grid.height, self.grid.width)

    @property
    def dtype(self) -> np.dtype:
        """The dtype :meth:`read` and :meth:`to_numpy` return (and a source reads): float32."""
        return np.dtype(np.float32)

    def compute_bands(self, window: Window, bands: Sequence[int]) -> np.ndarray:
        """Only ``bands`` (0-based) of ``window``, (len(bands), rows, cols): from the shared tiles by default;
        a file reads just those bands."""
        return self.tiles.read(window)[list(bands)]

    def tile_shape(self, block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TileShape:
        """The tile size: strips from the memory budget, multiples of the output's ``block`` (rows, cols)."""
        return auto_tile_shape(self.grid, PIXELWISE, 4.0 * (self.count + 1), self.ram_mb, False, False, block)

    def plan(self, region: Window | None = None,
             block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TilePlan:
        """The tile plan over ``region`` (default: the whole grid), with this result's fingerprint token."""
        return plan_tiles(self.grid, self.tile_shape(block), region, self.token)

    remote: Any = None
    """A picklable twin of :meth:`compute` that gives the same pixels in any process (what the Dask executor
    ships), or None; a served result from files by model path has one (``ServedRaster.remote``)."""

    worth_caching = True
    """Whether consumers should share whole computed tiles (a model's output); False where a window is as cheap
    to get again as to keep (a file read, an array slice): consumers then read exactly their windows."""

    @property
    def upstreams(self) -> list[LazyRaster]:
        """The lazy results this one reads (not files)."""
        return []

    def _after_run(self) -> None:
        """Called once a read or write has run over its plan: let go of the tiles kept here and upstream."""
        self.tiles.clear()
        for upstream in self.upstreams:
            upstream._after_run()

    def read(self, window: Window | tuple[int, int, int, int] | Any | None = None) -> np.ndarray:
        """Pixels of ``window`` (row, col, height, width; default: everything) as float32 (bands, rows, cols).

        Computed tile by tile over this result's plan, so a window read equals the same window of the written
        file.
        """
        window = self.grid.full_window() if window is None else _window(window)
        clipped = window.intersect(self.grid.full_window())
        if clipped != window:
            raise ParameterError(
                f"read: {window} reaches outside the output grid ({self.grid.height} rows x {self.grid.width} cols)"
            )
        out = np.empty((self.count, window.height, window.width), dtype=np.float32)

        def sink(array: np.ndarray, tile: Window) -> None:
            inside = tile.intersect(window)
            out[(slice(None), *inside.slices(window))] = array[(slice(None), *inside.slices(tile))]

        try:
            self.executor(with_remote(self.compute, self.remote), self.plan(window), sink, workers=self.workers)
        finally:
            self._after_run()
        return out

    def to_numpy(self, window: Window | tuple[int, int, int, int] | Any | None = None) -> np.ndarray:
        """Pixels of ``window`` (default: everything) as float32 (rows, cols, bands), as pyotb gives them."""
        return np.ascontiguousarray(np.moveaxis(self.read(window), 0, -1))

    def _output_target(self, target: OutputTarget) -> OutputTarget:
        """The output as it will be written (e.g. tagged with a no-data value); the default: as given."""
        return target

    def write(self, out: str | os.PathLike, pixel_type: str | None = None, progress: bool = False, *,
              cog: bool = False, scheduler: Any = None, client: Any = None, resume: bool = False) -> str:
        """Stream the result to a raster file (OTB extended filename accepted); return the path written.

        The format comes from the extension (``.zarr``: a Zarr store xarray opens with its CRS and transform);
        ``cog=True`` (as ``?&cog=true``) makes a Cloud-Optimized GeoTIFF; the file appears under its final name
        only once complete; none of the files the result reads may be the output. ``scheduler`` (a name, as
        ``-optim.scheduler``) or ``client`` (a ``distributed.Client``) runs this write with another executor than
        the result's own. ``resume=True`` makes the run resumable (see :func:`write`). :func:`write` writes several
        results in one pass.
        """
        return write({out: (self, pixel_type)}, progress, cog=cog, scheduler=scheduler, client=client,
                     resume=resume)[0]

    def to_xarray(self, name: str | None = None) -> Any:
        """A lazily computed, Dask-backed ``xarray.DataArray`` (band, y, x) with the CRS and transform as rioxarray
        reads them, chunked like the tiles (see :mod:`eotensor.xarray_io`; the ``xarray`` extra)."""
        from eotensor.xarray_io import to_xarray

        return to_xarray(self, name)

    def __getitem__(self, bands: int | Sequence[int] | slice) -> LazyRaster:
        """Bands by 0-based index: ``r[0]``, ``r[[2, 1, 0]]``, ``r[1:3]``, ``r[-1]`` (a lazy result)."""
        return BandSelection(self, bands)


def _operator(name: str) -> Any:
    """The shim behind ``LazyRaster.<name>``: pixel-wise expressions live in :mod:`eotensor.calc`."""

    def method(self: LazyRaster, *args: Any) -> Any:
        from eotensor.calc import OPERATORS

        return OPERATORS[name](self, *args)

    method.__name__ = name
    method.__doc__ = f"``{name}``: a lazy pixel-wise expression (see :mod:`eotensor.calc`)."
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__pow__", "__rpow__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__and__",
              "__rand__", "__or__", "__ror__", "__neg__", "__pos__", "__abs__"):
    setattr(LazyRaster, _name, _operator(_name))
LazyRaster.__hash__ = object.__hash__  # type: ignore[method-assign] - == builds an expression; identity hashes


def _ambiguous(self: LazyRaster) -> bool:
    raise ParameterError("the truth value of a lazy result is ambiguous (a comparison gives a result per pixel); "
                         "combine conditions with &, | or eot.where, and compare results with `is`")


LazyRaster.__bool__ = _ambiguous  # type: ignore[attr-defined] - `-1 < r < 1` and `r in [...]` must not pass silently
LazyRaster.__array_ufunc__ = None  # type: ignore[attr-defined] - `ndarray + r` defers to r's reflected operator


def upstream_tiles(upstream: LazyRaster, own: TileShape, block: tuple[int, int]) -> TileShape:
    """The tile shape of a pixel-wise head: its upstream's tiles when they are worth sharing (a model's: each
    computed once, and a ``&box=`` computes only those that meet it) and no larger than the head's ``own``
    budget allows; else ``own``."""
    if upstream.worth_caching:
        tile = upstream.tile_shape(block)
        if tile.rows * tile.cols <= own.rows * own.cols:
            return tile
    return own


class BandSelection(LazyRaster):
    """Some bands of an upstream result, in the order given (lazy, pixel-wise)."""

    worth_caching = False  # its upstream's tiles are cached already

    def __init__(self, upstream: LazyRaster, bands: int | Sequence[int] | slice) -> None:
        super().__init__(upstream.workers, upstream.ram_mb, upstream.scheduler)
        count = upstream.count
        if isinstance(bands, slice):
            indexes = list(range(count))[bands]
        else:
            indexes = [bands] if isinstance(bands, (int, np.integer)) else list(bands)
        chosen = []
        for index in indexes:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -count <= index < count:
                raise ParameterError(f"bands: {index!r} is not a band index of a {count}-band result; expected "
                                     f"0..{count - 1} (or -{count}..-1 from the end)")
            chosen.append(int(index) % count)
        if not chosen:
            raise ParameterError(f"bands: {bands!r} selects no band of a {count}-band result")
        self.upstream = upstream
        self.indexes = chosen

    @property
    def grid(self) -> Grid:
        return self.upstream.grid

    @property
    def count(self) -> int:
        return len(self.indexes)

    @property
    def token(self) -> str:
        return repr(("bands", self.indexes, self.upstream.token))

    @property
    def files(self) -> list[str]:
        return self.upstream.files

    @property
    def descriptions(self) -> tuple[str, ...]:
        own = self.upstream.descriptions
        return tuple(own[k] for k in self.indexes) if own else ()

    def tile_shape(self, block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TileShape:
        """The upstream's tiles: a band selection changes no window the upstream computes."""
        return self.upstream.tile_shape(block)

    def compute(self, window: Window) -> np.ndarray:
        return self.upstream.tiles.read(window)[self.indexes]

    @property
    def remote(self) -> Any:
        """The upstream's twin, then the bands: a band selection of a served result runs on Dask too."""
        return None if self.upstream.remote is None else functools.partial(_bands_of, self.upstream.remote,
                                                                            self.indexes)

    @property
    def upstreams(self) -> list[LazyRaster]:
        return [self.upstream]


def _bands_of(remote: Any, indexes: list[int], window: Window) -> np.ndarray:
    """``indexes`` of ``remote(window)``: :attr:`BandSelection.remote` (a module function, so it pickles)."""
    return remote(window)[indexes]


class WindowRaster(LazyRaster):
    """A window of an upstream result as a result of its own (OTB's ExtractROI): its grid starts at the window."""

    worth_caching = False  # its upstream's tiles are cached already

    def __init__(self, upstream: LazyRaster, window: Window, param: str = "in") -> None:
        super().__init__(upstream.workers, upstream.ram_mb, upstream.scheduler)
        full = upstream.grid.full_window()
        if not window.size or window.intersect(full) != window:
            raise ParameterError(f"{param}: the region {window.col},{window.row} {window.width}x{window.height} "
                                 f"(x, y, width x height) is empty or leaves the {full.width}x{full.height} image")
        self.upstream = upstream
        self.window = window
        self._grid = upstream.grid.window(window)

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def count(self) -> int:
        return self.upstream.count

    @property
    def token(self) -> str:
        return repr(("window", self.window, self.upstream.token))

    @property
    def files(self) -> list[str]:
        return self.upstream.files

    @property
    def upstreams(self) -> list[LazyRaster]:
        return [self.upstream]

    def compute(self, window: Window) -> np.ndarray:
        return self.upstream.tiles.read(_shifted(self.window, window))

    @property
    def remote(self) -> Any:
        """The upstream's twin on the shifted window (tiled == untiled: the same pixels as through the cache)."""
        return None if self.upstream.remote is None else functools.partial(_shifted_remote, self.upstream.remote,
                                                                            self.window)


def _shifted(origin: Window, window: Window) -> Window:
    """``window`` of a :class:`WindowRaster` starting at ``origin``, in its upstream's indices."""
    return Window(window.row + origin.row, window.col + origin.col, window.height, window.width)


def _shifted_remote(remote: Any, origin: Window, window: Window) -> np.ndarray:
    """``remote`` over ``window`` shifted by ``origin``: :attr:`WindowRaster.remote` (pickles)."""
    return remote(_shifted(origin, window))


class FileRaster(LazyRaster):
    """An image list stacked on bands (:class:`~eotensor.io.raster.RasterSource`) as a lazy result."""

    worth_caching = False  # GDAL keeps its own block cache

    def __init__(self, raster: RasterSource, workers: int | None = None, ram_mb: float | None = None,
                 scheduler: Any = "threads") -> None:
        super().__init__(workers, ram_mb, scheduler)
        self.raster = raster

    @property
    def grid(self) -> Grid:
        return self.raster.grid

    @property
    def count(self) -> int:
        return self.raster.count

    @property
    def token(self) -> str:
        return self.raster.token

    @property
    def files(self) -> list[str]:
        return self.raster.paths

    def compute(self, window: Window) -> np.ndarray:
        return np.moveaxis(self.raster.read(window), -1, 0)

    def compute_bands(self, window: Window, bands: Sequence[int]) -> np.ndarray:
        return np.moveaxis(self.raster.read_bands(window, bands), -1, 0)


def open(images: str | os.PathLike | Sequence[str | os.PathLike], *, workers: int | None = None,  # noqa: A001
         ram_mb: float | None = None) -> LazyRaster:
    """A raster file, or an image list stacked on bands (OTB's ``?&bands=`` selection accepted), as a lazy result
    that chains, selects bands and writes like any other."""
    return FileRaster(RasterSource(as_strings(images, "il"), "il"), workers, ram_mb)


class ArrayRaster(LazyRaster):
    """A NumPy array (rows, cols) or (rows, cols, bands) on a grid, as a lazy result (OTB's
    ``SetImageFromNumpyArray``). Without a grid: north-up unit pixels, row 0 at the top (transform
    ``(1, 0, 0, 0, -1, rows)``), no CRS. The array is not copied: do not change it while a result uses it."""

    worth_caching = False

    def __init__(self, array: np.ndarray, grid: Grid | None = None) -> None:
        super().__init__()
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
        if array.ndim != 3 or not array.size:
            raise ParameterError(f"array: shape {array.shape} is not an image; expected (rows, cols) or "
                                 "(rows, cols, bands)")
        self.array = array
        if grid is None:
            from affine import Affine

            grid = Grid.from_transform(Affine(1, 0, 0, 0, -1, array.shape[0]), array.shape[1], array.shape[0])
        if (grid.height, grid.width) != array.shape[:2]:
            raise ParameterError(f"array: {array.shape[1]}x{array.shape[0]} pixels but the grid is "
                                 f"{grid.width}x{grid.height}")
        self._grid = grid

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def count(self) -> int:
        return int(self.array.shape[2])

    @property
    def token(self) -> str:
        return repr(("array", id(self.array), self.array.shape, str(self.array.dtype), self._grid))

    @property
    def files(self) -> list[str]:
        return []

    def compute(self, window: Window) -> np.ndarray:
        return np.moveaxis(self.array[window.slices()], -1, 0)


class ChainedSource:
    """A lazy result read as a source (the :class:`~eotensor.io.raster.RasterSource` interface): float32
    (rows, cols, bands) windows holding what the result's float32 file would hold.

    Windows come from the result's :class:`TileCache`: the upstream is computed in whole tiles of its own plan
    (a CNN upstream keeps its memory bound), each once while the downstream tiles that need it pass.
    """

    def __init__(self, upstream: LazyRaster, param: str = "source1.il") -> None:
        self.upstream = upstream
        self.param = param

    @property
    def grid(self) -> Grid:
        return self.upstream.grid

    @property
    def count(self) -> int:
        return self.upstream.count

    @property
    def token(self) -> str:
        return repr(("chained", self.upstream.token))

    @property
    def paths(self) -> list[str]:
        return self.upstream.files

    def nodata_files(self) -> list[tuple[str, float]]:
        """No file-declared no-data: an upstream result has none of its own."""
        return []

    def read(self, window: Window) -> np.ndarray:
        if not window.size:
            return np.empty((window.height, window.width, self.count), dtype=np.float32)
        values = to_pixel_type(self.upstream.tiles.read(window), np.float32)
        return np.moveaxis(values, 0, -1).copy(order="C")  # the engine's own array, never a shared cached tile


def same_grid(grids: Sequence[Grid], param: str, why: str) -> Grid:
    """The first grid, once every other is checked to have its size and CRS (OTB's rule for image lists and
    BandMath: the first image's geometry is the result's); ``why`` ends the size error. eotensor never resamples."""
    first = grids[0]
    for k, grid in enumerate(grids[1:], start=2):
        difference = grid_difference(grid, first)
        if difference and difference[0] == "size":
            raise InputFileError(f"{param}: image {k} is {difference[1]} pixels but image 1 is {difference[2]}; {why}")
        if difference:
            raise GeometryError(f"{param}: image {k} is in {difference[1]} but image 1 in {difference[2]}; "
                                "eotensor does not resample: reproject one first (e.g. gdalwarp)")
    return first


class Stack:
    """Several sources stacked on bands (an image list mixing files and lazy results), read as one source.

    As OTB stacks an image list, all pieces must have the same size, and the stack takes the first piece's
    geometry; pieces in another CRS are refused (eotensor does not resample).
    """

    def __init__(self, pieces: Sequence[Any], param: str = "source1.il") -> None:
        self.pieces = list(pieces)
        self.param = param
        same_grid([piece.grid for piece in self.pieces], param, "all images of a list must have the same size")

    @property
    def grid(self) -> Grid:
        return self.pieces[0].grid

    @property
    def count(self) -> int:
        return sum(piece.count for piece in self.pieces)

    @property
    def token(self) -> str:
        return repr([piece.token for piece in self.pieces])

    @property
    def paths(self) -> list[str]:
        return [path for piece in self.pieces for path in piece.paths]

    def nodata_files(self) -> list[tuple[str, float]]:
        return [found for piece in self.pieces for found in piece.nodata_files()]

    def read(self, window: Window) -> np.ndarray:
        return np.concatenate([piece.read(window) for piece in self.pieces], axis=-1)


def as_raster_source(images: Any, param: str) -> Any:
    """An image list — file names, lazy results, ``xarray.DataArray`` objects, or a mix — as one source: a
    :class:`~eotensor.io.raster.RasterSource` when all are files, else a :class:`Stack` of file groups and
    :class:`ChainedSource` pieces, in list order."""
    from eotensor.xarray_io import from_xarray, is_data_array

    single = isinstance(images, (str, os.PathLike, LazyRaster)) or is_data_array(images)
    items = [from_xarray(item, param) if is_data_array(item) else item for item in ([images] if single else images)]
    if not any(isinstance(item, LazyRaster) for item in items):
        return RasterSource(as_strings(images, param), param)
    pieces: list[Any] = []
    files: list[Any] = []
    for item in items:
        if isinstance(item, LazyRaster):
            if files:
                pieces.append(RasterSource(as_strings(files, param), param))
                files = []
            pieces.append(ChainedSource(item, param))
        else:
            files.append(item)
    if files:
        pieces.append(RasterSource(as_strings(files, param), param))
    return pieces[0] if len(pieces) == 1 else Stack(pieces, param)



def write(outputs: dict[str | os.PathLike, LazyRaster | tuple[LazyRaster, str | None]],
          progress: bool = False, *, cog: bool = False, scheduler: Any = None, client: Any = None,
          resume: bool = False) -> list[str]:
    """Write several results, ``{path: result}`` or ``{path: (result, pixel_type)}``; return the paths written.

    ``cog=True`` makes every output a Cloud-Optimized GeoTIFF (as ``?&cog=true`` does for one). ``scheduler``
    (``threads``, ``processes:2``, ``tcp://HOST:PORT``...) or ``client`` (a ``distributed.Client``, left open)
    overrides the first result's executor for this write.

    ``resume=True`` (``-optim.resume on``): an interrupted run keeps its partial files and journals, and the
    same call with ``resume=True`` computes only the tiles they lack, refusing them (one line saying what
    changed) when the inputs, model or parameters differ (:mod:`eotensor.engine.resume`).

    Results on the same grid (and the same ``&box=``) are written in one pass over the first one's tiles,
    through their tile caches, so whatever they share (one model feeding two heads, bands of one result, a
    result and its own head) is computed once; each other grid or box gets a pass of its own. Every output is
    checked before any work (not an input, not written twice, creatable) and appears only once complete.
    """
    from eotensor.io.atomic import check_outputs

    if scheduler is not None and client is not None:
        raise ParameterError("write: give scheduler or client, not both")
    chosen = client if client is not None else scheduler
    executor = None if chosen is None else get_executor(chosen, "client" if client is not None else "scheduler")
    items = [(value if isinstance(value, tuple) else (value, None), path) for path, value in outputs.items()]
    if not items:
        return []
    for (raster, _), path in items:
        if not isinstance(raster, LazyRaster):
            raise ParameterError(f'write: "{path}" is given {type(raster).__name__}, not a lazy result')
    size_gdal_cache(max(raster.ram_mb for (raster, _), _ in items))
    targets = [raster._output_target(parse_output(path, pixel_type, cog=cog)) for (raster, pixel_type), path in items]
    targets = [dataclasses.replace(t, descriptions=raster.descriptions) if raster.descriptions else t
               for t, ((raster, _), _) in zip(targets, items)]
    check_outputs([("out", t.path, t.format.directory) for t in targets],
                  {f for (raster, _), _ in items for f in raster.files})
    rasters = [raster for (raster, _), _ in items]
    groups: dict[tuple[Any, Window], list[int]] = {}  # one pass per grid and box
    for k, (raster, target) in enumerate(zip(rasters, targets)):
        groups.setdefault((raster.grid, target.region(raster.grid.width, raster.grid.height)), []).append(k)
    written: dict[int, str] = {}
    for members in groups.values():
        paths = _write_together([rasters[k] for k in members], [targets[k] for k in members], progress, executor,
                                resume)
        written.update(zip(members, paths))
    return [written[k] for k in range(len(items))]


def _write_together(rasters: list[LazyRaster], targets: list[OutputTarget], progress: bool,
                    executor: Callable[..., None] | None = None, resume: bool = False) -> list[str]:
    """Stream results on one grid over the first one's plan, each tile computed for all with a shared cache;
    with the first result's executor unless ``executor`` is given; ``resume``: through a
    :class:`~eotensor.engine.resume.ResumableWrite` (journaled, only the missing tiles)."""
    first, grid = rasters[0], rasters[0].grid
    box = targets[0].region(grid.width, grid.height)
    plan = first.plan(box, block_shape(targets[0], grid.width, grid.height))
    names = ", ".join(os.path.basename(t.path) for t in targets)

    def compute(window: Window) -> list[np.ndarray]:
        if len(rasters) == 1:
            return [first.compute(window)]
        return [raster.tiles.read(window) for raster in rasters]  # upstreams they share: computed once

    alone = len(rasters) == 1 and first.remote is not None  # one result: its twin can run on another process
    run = executor or first.executor

    with ExitStack() as stack:
        resumable = _resumable(rasters, targets, plan) if resume else None
        if resumable is not None:
            stack.callback(resumable.release)  # the outputs stay locked until their writers are done (exited first)
            plan = resumable.plan
        bar = Progress(len(plan), names) if progress else None
        writers = [stack.enter_context(open_writer(target, grid, r.count, plan,
                                                   **(resumable.writer_options(k) if resumable else {})))
                   for k, (r, target) in enumerate(zip(rasters, targets))]
        task = with_remote(compute, _remote_write(first, writers[0], run) if alone else None)
        if resumable is not None:
            stack.enter_context(_journaling(resumable, writers))

        def sink(arrays: list[np.ndarray], window: Window) -> None:
            for writer, array in zip(writers, arrays):
                writer.write(array, window)
            if resumable is not None:
                resumable.wrote(window)

        try:
            if len(plan) or resumable is None:  # a resumed run with no tile left starts no executor (no cluster)
                run(task, plan, sink, workers=first.workers, progress=bar)
            if resumable is not None:
                resumable.finish()
        finally:
            for raster in rasters:
                raster._after_run()
    return [target.path for target in targets]


def open_writer(target: OutputTarget, grid: Grid, count: int, plan: TilePlan, **resume: Any) -> Any:
    """The writer of ``target`` for ``count`` bands on ``grid``: a Zarr store chunked like ``plan``'s tiles, else a
    (streamed, then maybe copied) GeoTIFF; ``resume``: a resumable run's partial file (``partial``, ``reopen``)."""
    if target.format.directory is not None:
        from eotensor.io.zarr import ZarrWriter

        return ZarrWriter(target, width=grid.width, height=grid.height, count=count, transform=grid.transform,
                          crs=grid.crs, chunks=(plan.tile.rows, plan.tile.cols))
    return GeoTiffWriter(target, width=grid.width, height=grid.height, count=count, transform=grid.transform,
                         crs=grid.crs, **resume)


def compute_and_sink(compute: Any, sink: Any, window: Window) -> list[Any]:
    """``[sink(compute(window), window)]``: a tile computed and written where it runs (a Dask worker), only the
    sink's small acknowledgement travelling back."""
    return [sink(compute(window), window)]


def _remote_write(raster: LazyRaster, writer: Any, executor: Callable[..., None]) -> Any:
    """The picklable twin of a one-result write: compute the tile and return it; on a remote ``executor`` with a
    writer whose tiles workers may write themselves (a Zarr store, one chunk per tile), compute and write the tile
    there."""
    sink = getattr(writer, "remote_sink", lambda: None)() if runs_remotely(executor) else None
    if sink is not None:
        return functools.partial(compute_and_sink, raster.remote, sink)
    return functools.partial(in_list, raster.remote)


def _resumable(rasters: list[LazyRaster], targets: list[OutputTarget], plan: TilePlan) -> Any:
    """The :class:`~eotensor.engine.resume.ResumableWrite` of a pass (imported only when resume is asked)."""
    from eotensor.engine.resume import ResumableWrite

    return ResumableWrite(rasters, targets, plan)


@contextmanager
def _journaling(resumable: Any, writers: list[GeoTiffWriter]) -> Iterator[None]:
    """Journal the writers' tiles; on any exception (Ctrl-C included), a last checkpoint before they abort."""
    resumable.attach(writers)
    try:
        yield
    except BaseException:
        resumable.interrupted()
        raise


def as_lazy(image: Any, param: str = "il", ram_mb: float | None = None) -> LazyRaster:
    """One image of an app's list — a lazy result (as is), an ``xarray.DataArray`` or a raster file name — as a
    lazy result, so every app takes the same three kinds of image."""
    from eotensor.xarray_io import from_xarray, is_data_array

    if isinstance(image, LazyRaster):
        return image
    if is_data_array(image):
        return from_xarray(image, param)
    return open(image, ram_mb=ram_mb)
