"""The Python API: serve a model over rasters and get a lazy raster back.

>>> import eotensor as eot
>>> result = eot.serve("model_dir", [eot.source("s2.tif", rfield=16)], efield=8, fullyconv=True)
>>> block = result.read(eot.Window(0, 0, 512, 512))     # NumPy (bands, rows, cols), computed on demand
>>> result.write("out.tif", "int16")                     # streamed, tile by tile, bounded memory

Nothing is computed until :meth:`ServedRaster.read` or :meth:`ServedRaster.write`; both stream the same
EF-aligned tiles, so a window read equals the same window of the written file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.engine.run import Progress, run_tiles
from eotensor.engine.serve import DEFAULT_BATCH_SIZE, ServeEngine, Source
from eotensor.engine.tiling import (
    TileShape,
    align_tile_size,
    auto_tile_shape,
    bytes_per_output_pixel,
    count_tiles,
    plan_tiles,
    ram_budget_mb,
)
from eotensor.errors import ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.fields import Fields
from eotensor.io.atomic import ensure_not_input
from eotensor.io.extended import parse_output
from eotensor.io.geotiff import GeoTiffWriter
from eotensor.io.raster import RasterSource
from eotensor.runtimes import Model, load_model
from eotensor.runtimes.signature import parse_user_placeholder


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An (x, y) pair from an int or a 2-sequence."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    try:
        x, y = value
        return int(x), int(y)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an int or an (x, y) pair, got {value!r}") from None


def source(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    rfield: int | Sequence[int] = 1,
    placeholder: str = "",
    nodata: float | None = None,
    *,
    index: int = 1,
) -> Source:
    """A model input: one raster or an image list stacked on bands, with its receptive field (x, y).

    ``placeholder`` is the model input key (empty: next in alphabetical order); when every value a
    model call would read from this source equals ``nodata``, the call is skipped (``background``).
    ``index`` is the source number used in error messages (``source2.il`` ...).
    """
    paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    return Source(RasterSource(paths, f"source{index}.il"), _pair(rfield, "rfield"), placeholder or "", nodata)


class ServedRaster:
    """The lazy output of a model over its sources: a grid, a band count, and windows on demand."""

    def __init__(self, engine: ServeEngine, workers: int | None = None, ram_mb: float | None = None,
                 tile_size: int | Sequence[int] | None = None, strips: bool = False) -> None:
        self.engine = engine
        self.workers = workers
        self.ram_mb = ram_budget_mb(ram_mb)
        self.strips = strips
        self._tile_size = tile_size

    @property
    def grid(self) -> Grid:
        """The output grid (OTBTF's geometry)."""
        return self.engine.grid

    @property
    def transform(self) -> Any:
        """GDAL-style affine transform of the output."""
        return self.grid.transform

    @property
    def crs(self) -> Any:
        """CRS of the output (source 1's)."""
        return self.grid.crs

    @property
    def count(self) -> int:
        """Number of output bands."""
        return self.engine.count

    @property
    def shape(self) -> tuple[int, int, int]:
        """(bands, rows, cols), like a rasterio dataset read."""
        return (self.count, self.grid.height, self.grid.width)

    def tile_shape(self) -> TileShape:
        """The tile size used: the user's (EF-aligned), else one chosen from the memory budget."""
        fields = self.engine.fields
        if self._tile_size is not None:
            cols, rows = _pair(self._tile_size, "tile_size")
            return align_tile_size(rows, cols, fields)
        sources = [(s.raster.grid, s.raster.count, s.rfield) for s in self.engine.sources]
        bands = self.count if self.engine.bands_known else 4
        halo = any(rf != (1, 1) for rf in fields.rfields) or fields.efield != (1, 1)
        pixel_bytes = bytes_per_output_pixel(sources, self.grid, fields, bands, halo)
        return auto_tile_shape(self.grid, fields, pixel_bytes, self.ram_mb, halo, self.strips)

    def read(self, window: Window | tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Output pixels of ``window`` (row, col, height, width; default: everything) as float32 (bands, rows, cols)."""
        if window is None:
            window = self.grid.full_window()
        elif not isinstance(window, Window):
            window = Window(*window)
        clipped = window.intersect(self.grid.full_window())
        if clipped != window:
            raise ParameterError(
                f"read: {window} reaches outside the output grid ({self.grid.height} rows x {self.grid.width} cols)"
            )
        out = np.empty((self.count, window.height, window.width), dtype=np.float32)

        def sink(array: np.ndarray, tile: Window) -> None:
            inside = tile.intersect(window)
            out[(slice(None), *inside.slices(window))] = array[(slice(None), *inside.slices(tile))]

        run_tiles(self.engine, plan_tiles(self.grid, self.tile_shape(), window), sink, self.workers)
        return out

    def write(self, out: str, pixel_type: str | None = None, progress: bool = False) -> str:
        """Stream the output to a GeoTIFF (OTB extended filename accepted); return the path written.

        The file appears under its final name only once complete.
        """
        # GDAL sizes its block cache when first used (default: 5 % of RAM). Tiles cover whole blocks, so a
        # quarter of the budget is plenty.
        os.environ.setdefault("GDAL_CACHEMAX", str(max(32, int(self.ram_mb / 4))))
        target = parse_output(out, pixel_type)
        ensure_not_input(target.path, [p for s in self.engine.sources for p in s.raster.paths])
        tile = self.tile_shape()
        box = self.grid.full_window()
        if target.box is not None:
            x0, y0, width, height = target.box
            box = Window(y0, x0, height, width)
        box = box.intersect(self.grid.full_window())
        tiles = plan_tiles(self.grid, tile, box)
        bar = Progress(count_tiles(self.grid, tile, box), os.path.basename(target.path)) if progress else None
        with GeoTiffWriter(target, width=self.grid.width, height=self.grid.height, count=self.count,
                           transform=self.grid.transform, crs=self.grid.crs) as writer:
            run_tiles(self.engine, tiles, writer.write, self.workers, bar)
        return target.path


def serve(
    model: str | os.PathLike | Model,
    sources: Sequence[Source],
    *,
    efield: int | Sequence[int] = 1,
    spcscale: float = 1.0,
    fullyconv: bool = False,
    output_names: Sequence[str] = (),
    user_placeholders: Mapping[str, Any] | Sequence[str] | None = None,
    background: float = 0.0,
    tags: Sequence[str] = (),
    tile_size: int | Sequence[int] | None = None,
    ram_mb: float | None = None,
    strips: bool = False,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jit: bool = False,
) -> ServedRaster:
    """Bind a model to its sources and outputs; return the lazy :class:`ServedRaster`.

    ``model`` is a SavedModel directory or any loaded :class:`~eotensor.runtimes.Model`. ``efield``
    and ``tile_size`` take an int or (x, y). ``user_placeholders`` takes a dict of values or OTBTF's
    ``["name=value", ...]`` strings. ``jit`` compiles a TensorFlow model with XLA.
    """
    if user_placeholders is None:
        placeholders: dict[str, np.ndarray] = {}
    elif isinstance(user_placeholders, Mapping):
        placeholders = {k: np.atleast_1d(np.asarray(v)) for k, v in user_placeholders.items()}
    else:
        placeholders = dict(parse_user_placeholder(item) for item in user_placeholders)
    fields = Fields(
        rfields=tuple(s.rfield for s in sources), efield=_pair(efield, "efield"), scale=spcscale,
        fully_conv=bool(fullyconv),
    )
    loaded = load_model(model, tags, jit=jit)
    engine = ServeEngine(loaded, sources, fields, output_names, placeholders, background, batch_size)
    return ServedRaster(engine, workers=workers, ram_mb=ram_mb, tile_size=tile_size, strips=strips)
