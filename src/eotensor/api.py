"""The Python API: serve a model over rasters and get a lazy raster back.

>>> import eotensor as eot
>>> result = eot.serve("model_dir", [eot.source("s2.tif", rfield=16)], efield=8, fullyconv=True)
>>> block = result.read(eot.Window(0, 0, 512, 512))     # NumPy (bands, rows, cols), computed on demand
>>> result.write("out.tif", "int16")                     # streamed, tile by tile, bounded memory

Nothing is computed until :meth:`ServedRaster.read` or :meth:`ServedRaster.write`; both stream the same
EF-aligned tiles, so a window read equals the same window of the written file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.engine.execute import get_executor, runs_remotely
from eotensor.engine.prefetch import load_while_reading
from eotensor.engine.recipe import ServeSpec, compute_tile, make_spec
from eotensor.engine.serve import DEFAULT_BATCH_SIZE, ServeEngine, Source
from eotensor.engine.tiling import (
    TileShape,
    align_tile_size,
    auto_tile_shape,
    bytes_per_output_pixel,
    ram_budget_mb,
)
from eotensor.errors import ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.fields import Fields
from eotensor.io.extended import OutputTarget, nodata_problem
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.io.raster import RasterSource
from eotensor.lazy import LazyRaster, as_raster_source, size_gdal_cache, upstream_tiles
from eotensor.runtimes import Model, load_model
from eotensor.runtimes.registry import model_origin
from eotensor.runtimes.signature import parse_user_placeholder
from eotensor.values import as_bool, as_number, as_pair, as_strings


def source(
    images: str | os.PathLike | LazyRaster | Sequence[str | os.PathLike | LazyRaster],
    rfield: int | Sequence[int] = 1,
    placeholder: str = "",
    nodata: float | str | None = None,
    *,
    index: int = 1,
) -> Source:
    """A model input: one raster or an image list stacked on bands, with its receptive field (x, y).

    ``images`` are file names, lazy results (another app's output, computed in memory window by window:
    see :mod:`eotensor.lazy`), or a list mixing both.

    ``placeholder`` is the model input key (empty: the next free input, see the binding rule of
    :class:`~eotensor.engine.serve.ServeEngine`). With ``nodata``, every expression-field block (or
    patch) whose input from this source is entirely ``nodata`` is not computed and gets ``background``.
    ``index`` is the source number used in error messages (``source2.il`` ...).
    """
    param = f"source{index}"
    raster = as_raster_source(images, f"{param}.il")
    value = None if nodata is None else as_number(nodata, f"{param}.nodata", finite=False)
    if value is not None and math.isfinite(value):
        with np.errstate(over="ignore", under="ignore"):
            as_read = float(np.float32(value))
        if not math.isfinite(as_read) or (as_read == 0) != (value == 0):
            raise ParameterError(
                f"{param}.nodata = {value:g} is outside float32's range; pixels are compared as float32: give "
                "a value float32 can hold (e.g. the file's own no-data value)")
    if value is None and (declaring := raster.nodata_files()):
        path, declared = declaring[0]
        warnings.warn(f'{param}.il: "{path}" declares no-data {declared:g}; eotensor (like OTBTF) ignores it '
                      f"unless {param}.nodata is set", stacklevel=2)
    return Source(raster, as_pair(rfield, f"{param}.rfield"), placeholder or "", value)


class ServedRaster(LazyRaster):
    """The lazy output of a model over its sources: a grid, a band count, and windows on demand."""

    def __init__(self, engine: ServeEngine, workers: int | None = None, ram_mb: float | None = None,
                 tile_size: int | Sequence[int] | None = None, strips: bool = False,
                 scheduler: str = "threads", recipe: ServeSpec | None = None) -> None:
        super().__init__(workers, ram_mb, scheduler)
        self.engine = engine
        self.recipe = recipe
        """What another process needs to rebuild the engine (None unless served from files by model path)."""
        self.strips = strips
        self._tile_size = None if tile_size is None else as_pair(tile_size, "tile_size")

    @property
    def grid(self) -> Grid:
        """The output grid (OTBTF's geometry)."""
        return self.engine.grid

    @property
    def count(self) -> int:
        """Number of output bands (the model runs once on a central block when its signature cannot tell)."""
        return self.engine.count

    @property
    def token(self) -> str:
        """The engine's token: sources, fields, model, outputs, placeholders, background, batch size."""
        return self.engine.token

    @property
    def files(self) -> list[str]:
        """The files every source reads (upstream results' included)."""
        return [path for s in self.engine.sources for path in s.raster.paths]

    def compute(self, window: Window) -> np.ndarray:
        """The engine's pixels of ``window`` (bands, rows, cols)."""
        return self.engine.compute(window)

    @property
    def remote(self) -> Any:
        """A picklable ``compute(window)`` that rebuilds the engine in the process that calls it (from
        :attr:`recipe`, once per process), or None."""
        return None if self.recipe is None else functools.partial(compute_tile, self.recipe)

    def tile_shape(self, block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TileShape:
        """The tile size used: the user's (EF-aligned), else one chosen from the memory budget.

        Automatic tiles are multiples of the output's ``block`` (rows, cols) where the budget allows; a
        pixel-wise result (RF and EF 1) reading another lazy result takes its (first) upstream's tiles when
        they fit its own budget (:func:`~eotensor.lazy.upstream_tiles`), so a head computes each of its
        upstream's tiles once and a ``&box=`` only those that meet it. The band count is learned first, so
        every plan of this result is the same.
        """
        fields = self.engine.fields
        if self._tile_size is not None:
            cols, rows = self._tile_size
            return align_tile_size(rows, cols, fields)
        halo = any(rf != (1, 1) for rf in fields.rfields) or fields.efield != (1, 1)
        sources = [(s.raster.grid, s.raster.count, s.rfield) for s in self.engine.sources]
        pixel_bytes = bytes_per_output_pixel(sources, self.grid, fields, self.count, halo)
        own = auto_tile_shape(self.grid, fields, pixel_bytes, self.ram_mb, halo, self.strips, block)
        if self.upstreams and not halo:  # a pixel-wise head: its upstream's tiles, each computed once
            return upstream_tiles(self.upstreams[0], own, block)
        return own

    @property
    def upstreams(self) -> list[LazyRaster]:
        """The lazy results its sources read (chained sources, alone or in an image list)."""
        found = []
        for source in self.engine.sources:
            for piece in getattr(source.raster, "pieces", [source.raster]):
                upstream = getattr(piece, "upstream", None)
                if isinstance(upstream, LazyRaster):
                    found.append(upstream)
        return found

    def _after_run(self) -> None:
        self.engine.release_prefetched()
        super()._after_run()

    def _output_target(self, target: OutputTarget) -> OutputTarget:
        """When a source has a no-data value and the output none of its own (``&nodata=``), the output is
        tagged with the background value the skipped blocks get, if its pixel type can hold it."""
        background = self.engine.background
        if target.nodata is None and any(s.nodata is not None for s in self.engine.sources):
            problem = nodata_problem(background, target.dtype)
            if problem is None:
                return dataclasses.replace(target, nodata=background)
            written = to_pixel_type(np.array([background]), target.dtype)[0]
            warnings.warn(f"output.bv {background:g} {problem}: skipped blocks are written as {written} and "
                          f'"{target.path}" gets no no-data tag; choose an output.bv the pixel type holds',
                          stacklevel=3)
        return target


def serve(
    model: str | os.PathLike | Model,
    sources: Source | Sequence[Source],
    *,
    efield: int | Sequence[int] = 1,
    spcscale: float = 1.0,
    fullyconv: bool | str = False,
    output_names: str | Sequence[str] = (),
    user_placeholders: Mapping[str, Any] | Sequence[str] | str | None = None,
    background: float = 0.0,
    tags: str | Sequence[str] = (),
    tile_size: int | Sequence[int] | None = None,
    ram_mb: float | None = None,
    strips: bool | str = False,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jit: bool | str = False,
    model_threads: int | None = None,
    scheduler: Any = "threads",
    runtime: str | None = None,
    device: str = "cpu",
    layout: str | None = None,
) -> ServedRaster:
    """Bind a model to its sources and outputs; return the lazy :class:`ServedRaster`.

    ``model`` is a SavedModel directory, a ``file.py[::function]`` or any loaded
    :class:`~eotensor.runtimes.Model`. ``efield`` and ``tile_size`` take an int or (x, y).
    ``user_placeholders`` takes a dict of values or OTBTF's ``["name=value", ...]`` strings. ``jit``
    compiles a TensorFlow model with XLA; ``model_threads`` sizes the runtime's own thread pool.
    ``scheduler`` names the executor (``threads``, ``sync`` the sequential reference, or Dask's: ``processes:N``,
    ``tcp://HOST:PORT``, ``dask``, or a ``distributed.Client``; see :mod:`eotensor.engine.execute`).
    ``runtime`` forces a runtime by name (default: the first whose ``can_open`` accepts the path), ``device``
    places the model (``cpu``, ``cuda``, ``cuda:N``, ``auto``) and ``layout`` says how it lays out tensors
    (``nhwc``, ``nchw``; default: the runtime's, inferred from the declared channels for ONNX and PyTorch).
    Values are checked as the command line checks them (``fullyconv="off"`` is off).
    """
    sources = [sources] if isinstance(sources, Source) else list(sources)
    if not all(isinstance(s, Source) for s in sources):
        raise ParameterError("sources: expected eotensor.source(...) objects (one, or a list)")
    if user_placeholders is None:
        placeholders: dict[str, np.ndarray] = {}
    elif isinstance(user_placeholders, Mapping):
        placeholders = {k: np.atleast_1d(np.asarray(v)) for k, v in user_placeholders.items()}
    else:
        parsed = [parse_user_placeholder(item) for item in as_strings(user_placeholders, "model.userplaceholders")]
        placeholders = dict(parsed)
        if len(placeholders) < len(parsed):
            twice = next(name for k, (name, _) in enumerate(parsed) if name in [n for n, _ in parsed[:k]])
            raise ParameterError(f'model.userplaceholders: "{twice}" is given twice; give each placeholder once')
    fields = Fields(
        rfields=tuple(s.rfield for s in sources), efield=as_pair(efield, "output.efield"),
        scale=as_number(spcscale, "output.spcscale"), fully_conv=as_bool(fullyconv, "model.fullyconv"),
    )
    tags = as_strings(tags, "model.tagsets")
    jit = as_bool(jit, "model.jit")
    batch_size = as_number(batch_size, "batch_size", integer=True, minimum=1)
    background = as_number(background, "output.bv", finite=False)
    if model_threads is not None:
        model_threads = as_number(model_threads, "optim.modelthreads", integer=True, minimum=1)
    options = {"runtime": runtime, "tags": tags, "jit": jit, "threads": model_threads, "device": device}
    remotely = runs_remotely(get_executor(scheduler, "optim.scheduler"))  # a misspelt name fails before the load

    def load() -> Model:
        return load_model(model, **options)

    readers: list[Any] = [s.raster for s in sources]
    files = [k for k, r in enumerate(readers) if isinstance(r, RasterSource)]
    if isinstance(model, (str, os.PathLike)) and files and not remotely:  # a load takes seconds: read meanwhile
        # (not for Dask: its workers read the rows themselves)
        budget = ram_budget_mb(ram_mb)
        size_gdal_cache(budget)
        loaded, prefetched = load_while_reading(load, [readers[k] for k in files], budget * 1024 * 1024)
        for k, reader in zip(files, prefetched):
            readers[k] = reader
    else:
        loaded = load()
    output_names = as_strings(output_names, "output.names")
    engine = ServeEngine(loaded, sources, fields, output_names, placeholders, background, batch_size, layout, readers)
    recipe = None
    origin = (model, options) if isinstance(model, (str, os.PathLike)) else model_origin(loaded)
    if origin is not None and all(isinstance(s.raster, RasterSource) for s in sources):
        recipe = make_spec(*origin, sources, fields, output_names, placeholders, background, batch_size, layout)
    return ServedRaster(engine, workers=workers, ram_mb=ram_mb, tile_size=tile_size,
                        strips=as_bool(strips, "optim.disabletiling"), scheduler=scheduler, recipe=recipe)
