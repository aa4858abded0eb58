"""A progress bar with ETA for long runs, on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
