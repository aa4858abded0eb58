"""The ``eotensor`` command: ``eotensor APP -key value ...`` with OTB's app names and keys.

Errors print one line on stderr and exit with status 1; ``-help``/``--help`` print an app's parameters;
``eotensor`` alone lists the apps. Ctrl-C, SIGTERM and SIGHUP (what batch schedulers, ``timeout`` and
``docker stop`` send) abort cleanly: no partial output is left, one line says so, and the exit status is
128 + the signal number. This module imports nothing heavy, so even an early Ctrl-C is handled.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eotensor.errors import EotensorError

_BROKEN_PIPE = 128 + 13  # what a process killed by SIGPIPE reports


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP turned into an exception in the main thread, so that outputs are cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    # Later signals are ignored: the first one's clean-up (deleting the temporary output) must finish.
    for other in _TERMINATING:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM/SIGHUP raise :class:`Interrupted` while the block runs (main thread only); handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in _TERMINATING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def usage() -> str:
    """The app list shown by ``eotensor`` alone."""
    from eotensor.apps import registry

    lines = ["usage: eotensor APP -key value ...   (OTB's application names and parameters)", "", "Applications:"]
    names = registry.names()
    width = max(map(len, names), default=0)
    for name in names:
        try:
            description = registry.get(name).description
        except EotensorError as error:  # a broken plug-in must not hide the others
            description = f"({error})"
        lines.append(f"  {name:<{width}}  {description}")
    lines += ["", "eotensor APP -help lists an application's parameters."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eotensor`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0].removeprefix("otbcli_") if args and not args[0].startswith("-") else "eotensor"
    try:
        with _signals_as_interrupts():
            status = _main(args, name)
            sys.stdout.flush()
            return status
    except KeyboardInterrupt as interrupt:
        print(f"{name}: interrupted; no output written", file=sys.stderr)
        return 128 + getattr(interrupt, "signum", signal.SIGINT)
    except BrokenPipeError:
        # The reader went away (``eotensor APP -help | head -1``): stop quietly; later flushes go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _BROKEN_PIPE


def _main(args: list[str], name: str) -> int:
    from eotensor.apps import registry
    from eotensor.apps.params import format_help, parse_cli

    if not args or args[0] in ("-h", "-help", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-version", "--version"):
        from eotensor import __version__

        print(f"eotensor {__version__}")
        return 0
    try:
        app = registry.get(name)
    except EotensorError as error:
        print(f"eotensor: error: {error}", file=sys.stderr)
        return 1
    if app is None:
        print(f"eotensor: unknown application {args[0]!r}; available: {', '.join(registry.names())}", file=sys.stderr)
        return 2
    rest = args[1:]
    if any(a in ("-h", "-help", "--help") for a in rest):
        print(format_help(app))
        return 0
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(name)
        try:
            app.run(parse_cli(app, rest), True)
        except EotensorError as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            return 1
        except SystemExit as exit_:
            # App or model code called sys.exit(): that must not end the run silently, nor look like success.
            print(f"{name}: error: sys.exit({exit_.code!r}) was called while running; no output written",
                  file=sys.stderr)
            return 1
    return 0


def _one_line_warnings(name: str) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        print(f"{name}: warning: {message}", file=sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
