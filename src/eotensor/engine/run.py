"""Running a tile plan: compute every tile of a :class:`ServeEngine` and hand it to a sink.

Reading and model calls run in worker threads (GDAL and the model runtimes release the GIL) while the
calling thread writes tiles in plan order; at most ``workers + 1`` tiles are in flight, so memory stays
flat whatever the image size. ``workers=0`` is the sequential reference path; both give identical bytes.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TextIO

import numpy as np

from eotensor.engine.serve import ServeEngine
from eotensor.geometry import Window


def default_workers() -> int:
    """Worker threads when the user gives none: one per core (at least 1, at most 4).

    Reads, model calls and writes release the GIL; with 2 cores, 2 workers plus the writing thread
    measured 1.0x the I/O floor on pixel-wise math against 1.7x with one worker.
    """
    return max(1, min(4, os.cpu_count() or 1))


class Progress:
    """A progress bar with ETA on stderr, shown only for runs longer than ``delay`` seconds.

    On a terminal it redraws one line twice a second; in a log (not a terminal) it prints a line every
    ten seconds and at the end.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, delay: float = 2.0) -> None:
        self.total, self.label, self.delay = max(total, 1), label, delay
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.start = time.monotonic()
        self.done = 0
        self._last = -1.0

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more tiles done and redraw when it is time to."""
        self.done += n
        now = time.monotonic()
        elapsed = now - self.start
        period = 0.5 if self.tty else 10.0
        if elapsed < self.delay or (now - self._last < period and self.done < self.total):
            return
        self._last = now
        fraction = self.done / self.total
        eta = elapsed * (1 - fraction) / fraction if fraction else 0.0
        bar = "#" * int(30 * fraction)
        end = "\n" if self.done >= self.total else ""
        line = f"{self.label} [{bar:<30}] {100 * fraction:5.1f}% {self.done}/{self.total} tiles, " \
               f"{elapsed:6.1f}s elapsed, ETA {eta:6.1f}s"
        self.stream.write(("\r" if self.tty else "") + line + (end if self.tty else "\n"))
        self.stream.flush()


def run_tiles(
    engine: ServeEngine,
    tiles: Iterable[Window],
    sink: Callable[[np.ndarray, Window], None],
    workers: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Compute ``tiles`` with ``engine`` and call ``sink(array, window)`` for each, in plan order.

    ``workers`` threads compute (None: :func:`default_workers`; 0: everything in the calling thread).
    """
    workers = default_workers() if workers is None else workers
    tick = progress.advance if progress else (lambda n=1: None)
    if workers <= 0:
        for window in tiles:
            sink(engine.compute(window), window)
            tick()
        return
    pending: deque[tuple[Future[np.ndarray], Window]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eotensor") as pool:
        try:
            for window in tiles:
                pending.append((pool.submit(engine.compute, window), window))
                if len(pending) > workers:
                    future, done = pending.popleft()
                    sink(future.result(), done)
                    tick()
            while pending:
                future, done = pending.popleft()
                sink(future.result(), done)
                tick()
        finally:
            for future, _ in pending:
                future.cancel()
