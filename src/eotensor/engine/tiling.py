"""Tile plans: which output windows to compute, in which order, and how big.

Tiles are anchored at output index 0 and their sizes are multiples of the expression field, so every
tile is already EF-aligned: a tile's result is exactly the same window of the untiled result. Without
a user tile size, the size comes from a memory budget: strips when the model needs no halo (pixel-wise
math: sequential, block-aligned I/O; full width up to 8192 pixels), square tiles otherwise (least halo
re-read).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from eotensor.geometry import Grid, Window, round_up
from eotensor.geometry.fields import Fields
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE as BLOCK

DEFAULT_RAM_MB = 256
"""Default memory budget for one tile's buffers (OTB's default ``ram``); ``OTB_MAX_RAM_HINT`` overrides it."""

MODEL_WORK_FACTOR = 4
"""Working memory per output pixel of a pixel-wise model, as a multiple of its input and output bytes."""

CNN_WORK_FACTOR = 16
"""The same for models with a halo (CNNs keep wide activations, which eotensor cannot see). With a
256 MB budget and two workers: the demo net peaks at 0.9 GB RSS (1024² tiles), the benchmark U-Net
(24-96 channels) at 1.8 GB (768² tiles); lower ``optim.ram`` or ``optim.threads`` for less."""


def ram_budget_mb(ram_mb: float | None = None) -> float:
    """The memory budget in MB: the argument, else ``OTB_MAX_RAM_HINT``, else :data:`DEFAULT_RAM_MB`."""
    if ram_mb:
        return float(ram_mb)
    hint = os.environ.get("OTB_MAX_RAM_HINT", "")
    return float(hint) if hint.replace(".", "", 1).isdigit() and float(hint) > 0 else float(DEFAULT_RAM_MB)


@dataclass(frozen=True)
class TileShape:
    """Tile height and width in output pixels (both multiples of the expression field)."""

    rows: int
    cols: int


def align_tile_size(rows: int, cols: int, fields: Fields) -> TileShape:
    """Round a user tile size up to multiples of the expression field, warning as OTBTF does."""
    ef_x, ef_y = fields.efield
    aligned = TileShape(round_up(rows, ef_y), round_up(cols, ef_x))
    if (aligned.rows, aligned.cols) != (rows, cols):
        warnings.warn(
            f"Aligning the tiling to the output expression field: tiles of {aligned.cols}x{aligned.rows} "
            f"instead of {cols}x{rows}", stacklevel=2,
        )
    return aligned


def bytes_per_output_pixel(sources: list[tuple[Grid, int, tuple[int, int]]], out: Grid, fields: Fields,
                           bands: int, halo: bool = False) -> float:
    """Estimated bytes one output pixel costs in a tile: source pixels (or patches), outputs, model work.

    ``sources`` holds (grid, band count, receptive field) per source.
    """
    total = 4.0 * bands
    for grid, count, (rfx, rfy) in sources:
        if fields.fully_conv:
            ratio = abs(out.x.spacing / grid.x.spacing) * abs(out.y.spacing / grid.y.spacing)
            total += 4.0 * count * ratio
        else:
            total += 4.0 * count * rfx * rfy
    return total * (CNN_WORK_FACTOR if halo else MODEL_WORK_FACTOR)


MAX_STRIP_WIDTH = 8192
"""Images wider than this are cut in strips of half this width."""


def _block_multiple(size: int, ef: int) -> int:
    """``size`` rounded down to a multiple of lcm(BLOCK, EF) when that is not zero, else up to EF."""
    step = math.lcm(BLOCK, ef)
    return size // step * step if size >= step else round_up(size, ef)


def auto_tile_shape(out: Grid, fields: Fields, pixel_bytes: float, ram_mb: float, halo: bool,
                    strips: bool = False) -> TileShape:
    """Tile size from a memory budget: full-width strips without halo (or when asked), squares otherwise.

    Both are multiples of the expression field and, where the budget allows, of the output block size.
    """
    ef_x, ef_y = fields.efield
    pixels = max(1.0, ram_mb * 1024 * 1024 / pixel_bytes)
    if strips or not halo:
        # Strips, at most MAX_STRIP_WIDTH wide so that very wide images still get block-tall strips.
        cols = round_up(out.width if out.width <= MAX_STRIP_WIDTH else MAX_STRIP_WIDTH // 2, ef_x)
        rows = int(pixels // cols)
        if rows < BLOCK and BLOCK * cols <= 1.5 * pixels:
            rows = BLOCK  # a whole block row is worth 50 % over budget: complete blocks, sequential writes
        rows = _block_multiple(max(1, rows), ef_y)
    else:
        side = max(64, int(math.sqrt(pixels)))
        rows, cols = _block_multiple(side, ef_y), _block_multiple(side, ef_x)
    return TileShape(min(rows, round_up(out.height, ef_y)), min(cols, round_up(out.width, ef_x)))


def plan_tiles(out: Grid, tile: TileShape, region: Window | None = None) -> Iterator[Window]:
    """Tiles of ``tile`` size anchored at index 0 that meet ``region`` (default: the whole grid), raster order.

    Tiles are clipped to the grid, never to ``region``: a tile's result (its no-data test included) must
    not depend on the region asked for; callers crop.
    """
    region = region or out.full_window()
    grid = out.full_window()
    for r0 in range(region.row - region.row % tile.rows, region.row_stop, tile.rows):
        for c0 in range(region.col - region.col % tile.cols, region.col_stop, tile.cols):
            window = Window(r0, c0, tile.rows, tile.cols).intersect(grid)
            if window.size:
                yield window


def count_tiles(out: Grid, tile: TileShape, region: Window | None = None) -> int:
    """Number of tiles :func:`plan_tiles` yields."""
    region = region or out.full_window()
    rows = len(range(region.row - region.row % tile.rows, region.row_stop, tile.rows))
    cols = len(range(region.col - region.col % tile.cols, region.col_stop, tile.cols))
    return rows * cols
