"""Read the first rows of the sources while the model loads, so that start-up overlaps I/O.

Loading a runtime is a fixed cost paid before the first model call: ``import tensorflow`` alone takes
2.5–6 s, ``import torch`` about 2 s. Reading pixels needs no model, so :func:`load_while_reading` loads
the model in a background thread while the calling thread reads the sources' first rows (full width, top
down, every source over the same share of its height) into memory, until the model is ready or the
budget is spent. The engine then reads through :class:`RowPrefetch`: a window inside the rows read is
served from memory, anything else from the files, so the prefetch can change which reads hit the disk,
never a pixel. Tiles run top down, so rows are let go as soon as a read starts below them: the memory
held shrinks as the first tiles are computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from eotensor.errors import EotensorError
from eotensor.geometry import Window
from eotensor.io.raster import RasterSource

__all__ = ["RowPrefetch", "load_while_reading"]

CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes read per source and step (float32 pixels): small enough to stop soon after the model is ready."""


class RowPrefetch:
    """A source's first rows held in memory; :meth:`read` serves windows inside them, the files the rest."""

    def __init__(self, raster: RasterSource) -> None:
        self.raster = raster
        self.rows = 0
        """Rows held, from row 0 down (full width)."""
        self._chunks: list[np.ndarray | None] | None = []
        self._started = False  # whether a read has used the rows held (reads before that are probes)
        self.chunk_rows = max(1, CHUNK_BYTES // (4 * raster.count * raster.grid.width))

    @property
    def row_bytes(self) -> int:
        """Memory one full-width row of float32 pixels takes."""
        return 4 * self.raster.count * self.raster.grid.width

    def extend(self) -> bool:
        """Read the next chunk of rows; False once the image is read to its end or the rows were let go."""
        if self._chunks is None or self.rows >= self.raster.grid.height:
            return False
        rows = min(self.chunk_rows, self.raster.grid.height - self.rows)
        self._chunks.append(self.raster.read(Window(self.rows, 0, rows, self.raster.grid.width)))
        self.rows += rows
        return True

    def release(self) -> None:
        """Let the rows go (reads all go to the files from now on)."""
        self._chunks = None
        self.rows = 0

    def read(self, window: Window) -> np.ndarray:
        """``window``'s pixels as :meth:`RasterSource.read` gives them: a new float32 (rows, cols, bands) array.

        Chunks that end above ``window`` are let go (tiles run top down); once a read has used the rows held, a
        read below them all lets them all go (a read below them before that is a band-count probe, not a tile).
        """
        chunks, rows, step = self._chunks, self.rows, self.chunk_rows
        if chunks:
            if window.row >= rows:
                if self._started:  # the tiles have passed below the rows held
                    self.release()
                return self.raster.read(window)  # before any tile: a band-count probe's central block
            self._started = True
            for k in range(window.row // step):
                chunks[k] = None
            if window.row_stop <= rows and window.size:
                first, last = window.row // step, (window.row_stop - 1) // step
                cols = slice(window.col, window.col_stop)
                parts = [chunks[k] for k in range(first, last + 1)]
                if all(part is not None for part in parts):
                    self.raster.check_unchanged()
                    parts = [part[max(window.row - k * step, 0):window.row_stop - k * step, cols]
                             for k, part in zip(range(first, last + 1), parts)]
                    return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        return self.raster.read(window)


def load_while_reading(load: Callable[[], Any], rasters: Sequence[RasterSource],
                       budget_bytes: float) -> tuple[Any, list[RowPrefetch]]:
    """Run ``load()`` in a background thread while reading the rasters' first rows; return its result and
    the prefetched rows.

    Rows are read in small chunks, every source keeping the same share of its height read (sources at
    other resolutions cover the same ground), until ``load`` finishes or ``budget_bytes`` (float32 pixels)
    are held. An exception from ``load`` is raised here, in the calling thread. A read that fails stops the
    prefetch quietly: the engine's own read of that window will report it, in its place.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["model"] = load()
        except BaseException as error:  # noqa: BLE001 - handed over to the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="eotensor-model-load", daemon=True)
    thread.start()
    prefetched = [RowPrefetch(raster) for raster in rasters]
    held = 0.0
    try:
        while thread.is_alive():
            # The source furthest behind (as a share of its height) reads next.
            behind = min(prefetched, key=lambda p: p.rows / p.raster.grid.height)
            if held + behind.chunk_rows * behind.row_bytes > budget_bytes or not behind.extend():
                break
            held += behind.chunk_rows * behind.row_bytes
    except EotensorError:
        for p in prefetched:
            p.release()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["model"], prefetched
