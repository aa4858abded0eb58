"""Tile plans: which output windows to compute, in which order, and how big.

Tiles are anchored at output index 0 and their sizes are multiples of the expression field, so every
tile is already EF-aligned: a tile's result is exactly the same window of the untiled result. Without
a user tile size, the size comes from a memory budget: strips when the model needs no halo (pixel-wise
math: sequential, block-aligned I/O; full width up to 8192 pixels), square tiles otherwise (least halo
re-read).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from eotensor.errors import ParameterError
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


def ram_budget_mb(ram_mb: float | None = None, env: dict[str, str] | None = None, param: str = "optim.ram") -> float:
    """The memory budget in MB: the argument (the parameter ``param``), else ``OTB_MAX_RAM_HINT``, else
    :data:`DEFAULT_RAM_MB`.

    Anything but a finite number > 0 is a one-line :class:`ParameterError` naming where it came from.
    """
    if ram_mb is not None:
        return _budget(ram_mb, param)
    hint = (os.environ if env is None else env).get("OTB_MAX_RAM_HINT", "").strip()
    return _budget(hint, "OTB_MAX_RAM_HINT") if hint else float(DEFAULT_RAM_MB)


def _budget(value: object, where: str) -> float:
    try:
        mb = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        mb = math.nan
    if isinstance(value, bool) or not (math.isfinite(mb) and mb > 0):
        raise ParameterError(f'{where}: "{value}" is not a memory budget; expected a positive number of MB, e.g. 256')
    return mb


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


def _block_multiple(size: int, ef: int, block: int) -> int:
    """``size`` rounded down to a multiple of lcm(block, EF) when that is not zero, else up to EF."""
    step = math.lcm(block, ef)
    return size // step * step if size >= step else round_up(size, ef)


def auto_tile_shape(out: Grid, fields: Fields, pixel_bytes: float, ram_mb: float, halo: bool,
                    strips: bool = False, block: tuple[int, int] = (BLOCK, BLOCK)) -> TileShape:
    """Tile size from a memory budget: full-width strips without halo (or when asked), squares otherwise.

    Both are multiples of the expression field and, where the budget allows, of the output's ``block``
    (rows, cols: what the writer will use, e.g. a user's ``gdal:co:BLOCKXSIZE``), so every written block
    is complete at once.
    """
    ef_x, ef_y = fields.efield
    block_rows, block_cols = block
    pixels = max(1.0, ram_mb * 1024 * 1024 / pixel_bytes)
    if strips or not halo:
        # Strips, at most MAX_STRIP_WIDTH wide so that very wide images still get block-tall strips.
        if out.width <= MAX_STRIP_WIDTH:
            cols = round_up(out.width, ef_x)
        else:
            cols = _block_multiple(MAX_STRIP_WIDTH // 2, ef_x, block_cols)
        rows = int(pixels // cols)
        if rows < block_rows and block_rows * cols <= 1.5 * pixels:
            rows = block_rows  # a whole block row is worth 50 % over budget: complete blocks, sequential writes
        rows = _block_multiple(max(1, rows), ef_y, block_rows)
    else:
        side = max(64, int(math.sqrt(pixels)))
        rows, cols = _block_multiple(side, ef_y, block_rows), _block_multiple(side, ef_x, block_cols)
    return TileShape(min(rows, round_up(out.height, ef_y)), min(cols, round_up(out.width, ef_x)))


@dataclass(frozen=True)
class TilePlan:
    """Which output windows to compute, in which order: a value that executors, writers and journals share.

    Tiles of ``tile`` size anchored at output index 0 that meet ``region``, in raster order, clipped to
    the grid but never to ``region`` (a tile's result must not depend on the region asked for; sinks
    crop). ``fingerprint`` identifies what determines the pixels (the caller's token: inputs, model,
    parameters) together with the tiling, so a resumed or distributed run can tell whether a finished
    tile still belongs to this plan.
    """

    grid: Grid
    """The full output grid."""
    tile: TileShape
    """Tile size in output pixels."""
    region: Window
    """The part of the grid wanted (the whole grid, or a box)."""
    token: str = ""
    """What determines the pixels besides the geometry (inputs, model, parameters), as the caller spells it."""

    def __iter__(self) -> Iterator[Window]:
        grid, region, tile = self.grid.full_window(), self.region, self.tile
        for r0 in range(region.row - region.row % tile.rows, region.row_stop, tile.rows):
            for c0 in range(region.col - region.col % tile.cols, region.col_stop, tile.cols):
                window = Window(r0, c0, tile.rows, tile.cols).intersect(grid)
                if window.size:
                    yield window

    def __len__(self) -> int:
        region, tile = self.region, self.tile
        rows = len(range(region.row - region.row % tile.rows, region.row_stop, tile.rows))
        cols = len(range(region.col - region.col % tile.cols, region.col_stop, tile.cols))
        return rows * cols

    @property
    def fingerprint(self) -> str:
        """A hex digest of the token, the grid, the tile shape and the region."""
        text = repr((self.token, self.grid, self.tile, self.region))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RemainingPlan(TilePlan):
    """A :class:`TilePlan` less the tiles a resumed run finds already written (``skip``, by their (row, col)
    start): executors run only the others. Its :attr:`~TilePlan.fingerprint` is the full plan's."""

    skip: frozenset[tuple[int, int]] = frozenset()

    def __iter__(self) -> Iterator[Window]:
        return (window for window in super().__iter__() if (window.row, window.col) not in self.skip)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def remaining(plan: TilePlan, skip: set[tuple[int, int]] | frozenset[tuple[int, int]]) -> TilePlan:
    """``plan`` without the tiles starting at ``skip`` (``plan`` itself when there are none)."""
    if not skip:
        return plan
    return RemainingPlan(plan.grid, plan.tile, plan.region, plan.token, frozenset(skip))


def plan_tiles(out: Grid, tile: TileShape, region: Window | None = None, token: str = "") -> TilePlan:
    """The :class:`TilePlan` of ``tile``-sized tiles over ``region`` (default: the whole grid)."""
    return TilePlan(out, tile, (region or out.full_window()).intersect(out.full_window()), token)


def strip_plan(grid: Grid, pixel_bytes: float, ram_mb: float | None = None, halo_rows: int = 0,
               token: str = "", param: str = "ram") -> TilePlan:
    """Full-width strips over ``grid`` for a pass over a whole image (masks, label images, rasterised vectors).

    A strip holds as many rows as the memory budget (``ram_mb``, see :func:`ram_budget_mb`) allows at
    ``pixel_bytes`` per pixel, counting ``halo_rows`` more rows that a pass reads beyond each strip (a patch's
    height, an erosion's radius); at least one row.
    """
    budget = ram_budget_mb(ram_mb, param=param) * 2**20
    rows = int(budget // max(1.0, pixel_bytes * max(1, grid.width))) - halo_rows
    return plan_tiles(grid, TileShape(max(1, min(rows, grid.height)), max(1, grid.width)), token=token)
