"""The ``eotensor`` command: ``eotensor APP -key value ...`` with OTB's app names and keys.

Errors print one line on stderr and exit with status 1; ``-help``/``--help`` print an app's parameters;
``eotensor`` alone lists the apps.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from eotensor.apps.model_serve import APP as MODEL_SERVE
from eotensor.apps.params import App, format_help, parse_cli
from eotensor.errors import EotensorError

APPS: dict[str, App] = {app.name: app for app in (MODEL_SERVE,)}


def usage() -> str:
    """The app list shown by ``eotensor`` alone."""
    lines = ["usage: eotensor APP -key value ...   (OTB's application names and parameters)", "", "Applications:"]
    lines += [f"  {name:<24} {app.description}" for name, app in APPS.items()]
    lines += ["", "eotensor APP -help lists an application's parameters."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eotensor`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-version", "--version"):
        from eotensor import __version__

        print(f"eotensor {__version__}")
        return 0
    name, rest = args[0].removeprefix("otbcli_"), args[1:]
    app = APPS.get(name)
    if app is None:
        print(f"eotensor: unknown application {args[0]!r}; available: {', '.join(APPS)}", file=sys.stderr)
        return 2
    if any(a in ("-h", "-help", "--help") for a in rest):
        print(format_help(app))
        return 0
    warnings.formatwarning = lambda message, *args, **kwargs: f"{name}: warning: {message}\n"
    try:
        app.run(parse_cli(app, rest), True)
    except EotensorError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
