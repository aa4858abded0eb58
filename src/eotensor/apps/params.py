"""Application parameters as data: one table per app gives the CLI parser, the help and the Python keywords.

Keys are OTB's (``source1.rfieldx``, ``model.dir``, ``out``). Per-source keys are written with ``{n}``
(``source{n}.il``) and exist for every source; the number of sources is the highest ``sourceN`` given,
or ``OTB_TF_NSOURCES`` if larger.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from eotensor.errors import ParameterError

_KEY_TOKEN = re.compile(r"^--?[A-Za-z][\w.]*$")
_SOURCE_KEY = re.compile(r"^source(\d+)\.(.+)$")


class Kind(Enum):
    """How a parameter's command-line values are read."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    STRING_LIST = "string list"
    FILE_LIST = "input file list"
    FILE = "input file or directory"
    OUTPUT_IMAGE = "output image [pixel type]"


@dataclass(frozen=True)
class Param:
    """One application parameter."""

    key: str
    """OTB key; ``{n}`` stands for the source number."""
    kind: Kind
    help: str
    default: Any = None
    mandatory: bool = False
    aliases: tuple[str, ...] = ()
    """Other spellings accepted with a note on stderr (the talk's slides, decision 1)."""
    minimum: float | None = None
    """Smallest accepted value of a number."""

    def concrete(self, n: int) -> str:
        """The key for source ``n``."""
        return self.key.replace("{n}", str(n))


@dataclass(frozen=True)
class App:
    """An application: its name, description, parameter table and the function that runs it."""

    name: str
    description: str
    params: tuple[Param, ...]
    run: Callable[[dict[str, Any], bool], Any]
    """Runs the app on parsed parameters; the flag asks for a progress bar and a summary on stderr."""
    notes: str = ""
    per_source: bool = field(default=True)

    def keys(self, n_sources: int) -> dict[str, Param]:
        """Every concrete key for ``n_sources`` sources."""
        out: dict[str, Param] = {}
        for p in self.params:
            for n in range(1, n_sources + 1) if "{n}" in p.key else [0]:
                out[p.concrete(n)] = p
        return out


def sources_from_env(env: Mapping[str, str] | None = None) -> int:
    """``OTB_TF_NSOURCES`` as an int (1 when unset); a non-integer is a clear error."""
    value = (env if env is not None else os.environ).get("OTB_TF_NSOURCES", "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ParameterError(f'OTB_TF_NSOURCES="{value}" is not a positive integer; unset it or give e.g. 2')
    return int(value)


def _resolve_key(app: App, key: str, n_sources: int) -> str:
    """Canonical key for a user key (aliases allowed with a note), or a clear error."""
    known = app.keys(n_sources)
    if key in known:
        return key
    match = _SOURCE_KEY.match(key)
    n, rest = (int(match.group(1)), match.group(2)) if match else (0, key)
    for p in app.params:
        for alias in p.aliases:
            if alias.replace("{n}", str(n)) == key or (not match and alias == key):
                canonical = p.concrete(n)
                print(f"note: -{key} is read as -{canonical}", file=sys.stderr)
                return canonical
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    hint = f"; did you mean -{close[0]}?" if close else f"; see {app.name} -help"
    raise ParameterError(f"{app.name}: unknown parameter -{key}{hint}")


def _convert(app: App, key: str, param: Param, values: list[str]) -> Any:
    """Typed value of ``-key values...``."""
    def single() -> str:
        if len(values) != 1:
            raise ParameterError(f"-{key} expects one {param.kind.value} value, got {len(values)}: {' '.join(values)}")
        return values[0]

    numbers = {Kind.INT: (int, "an integer"), Kind.FLOAT: (float, "a number")}
    if param.kind in numbers:
        convert, expected = numbers[param.kind]
        text = single()
        try:
            return convert(text)
        except ValueError:
            raise ParameterError(f'-{key} expects {expected}, got "{text}"') from None
    if param.kind is Kind.BOOL:
        return parse_bool(values[0] if values else "on", key) if len(values) <= 1 else single()
    if param.kind in (Kind.STRING, Kind.FILE):
        return single()
    if param.kind is Kind.OUTPUT_IMAGE:
        if len(values) not in (1, 2):
            raise ParameterError(f"-{key} expects a filename and an optional pixel type, got {' '.join(values)}")
        return (values[0], values[1] if len(values) == 2 else None)
    if not values:
        raise ParameterError(f"-{key} expects at least one value")
    return list(values)


def parse_bool(value: Any, key: str) -> bool:
    """on/off, true/false, yes/no, 1/0 (any case) or a Python bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ParameterError(f'-{key} expects on/off, true/false or 1/0, got "{value}"')


def count_sources(keys: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Highest ``sourceN`` among ``keys``, or ``OTB_TF_NSOURCES`` if larger."""
    numbers = [int(m.group(1)) for k in keys if (m := _SOURCE_KEY.match(k))]
    return max([sources_from_env(env), *numbers])


def _is_number(token: str) -> bool:
    """Whether ``token`` reads as a number (``-10000``, ``-inf``, ``-nan`` are values, not keys)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_cli(app: App, argv: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """OTB-style ``-key value...`` arguments -> {canonical key: typed value}, defaults filled in.

    A token is a key when it looks like ``-name.sub`` and is not a number, so values such as ``-10000``
    or ``-inf`` are values.
    """
    raw: list[tuple[str, list[str]]] = []
    for token in argv:
        if _KEY_TOKEN.match(token) and not _is_number(token):
            raw.append((token.lstrip("-"), []))
        elif not raw:
            raise ParameterError(f'{app.name}: "{token}" is not a parameter; parameters look like -model.dir DIR')
        else:
            raw[-1][1].append(token)
    n_sources = count_sources([k for k, _ in raw], env)
    given: dict[str, Any] = {}
    for key, values in raw:
        canonical = _resolve_key(app, key, n_sources)
        given[canonical] = _convert(app, canonical, app.keys(n_sources)[canonical], values)
    return complete(app, given, n_sources)


def complete(app: App, given: Mapping[str, Any], n_sources: int) -> dict[str, Any]:
    """Check mandatory keys and fill defaults; values stay as given."""
    params = dict(given)
    for key, param in app.keys(n_sources).items():
        if key in params and params[key] is not None:
            value = params[key]
            if param.kind is Kind.INT and (isinstance(value, bool) or not float(value).is_integer()):
                raise ParameterError(f"-{key} expects an integer, got {value!r}")
            if param.minimum is not None and value < param.minimum:
                raise ParameterError(f"-{key} must be >= {param.minimum:g}, got {value}")
            continue
        if param.mandatory:
            raise ParameterError(f"{app.name}: missing mandatory parameter -{key} ({param.help.split('.')[0]})")
        params[key] = param.default
    params["_n_sources"] = n_sources
    return params


def parse_python(app: App, options: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Python keywords (``source1_il=[...]``) and/or an OTB-key dict -> the same dict :func:`parse_cli` gives."""
    # OTB keys have exactly one dot (group.name), so the first underscore of a keyword is the dot.
    merged = {**dict(options or {}), **{k.replace("_", ".", 1): v for k, v in kwargs.items()}}
    n_sources = count_sources(list(merged))
    given: dict[str, Any] = {}
    for key, value in merged.items():
        canonical = _resolve_key(app, key, n_sources)
        param = app.keys(n_sources)[canonical]
        if param.kind is Kind.OUTPUT_IMAGE and isinstance(value, str):
            value = (value, None)
        elif param.kind is Kind.BOOL:
            value = parse_bool(value, canonical)
        elif param.kind in (Kind.INT, Kind.FLOAT) and isinstance(value, str):
            value = _convert(app, canonical, param, [value])
        elif param.kind in (Kind.STRING_LIST, Kind.FILE_LIST) and isinstance(value, (str, os.PathLike)):
            value = [os.fspath(value)]
        given[canonical] = value
    return complete(app, given, n_sources)


def format_help(app: App) -> str:
    """The ``-help`` text: description, every parameter with its type, default and meaning, then notes."""
    lines = [f"{app.name}: {app.description}", "", "Parameters (N = 1, 2, ... one group per source):"]
    for p in app.params:
        key = p.key.replace("{n}", "N")
        flag = " (mandatory)" if p.mandatory else (f" (default: {p.default})" if p.default is not None else "")
        lines.append(f"  -{key:<26} <{p.kind.value}>{flag}")
        lines.append(f"      {p.help}")
    if app.notes:
        lines += ["", app.notes.rstrip()]
    return "\n".join(lines)
