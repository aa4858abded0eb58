"""Application parameters as data: one table per app gives the CLI parser, the help and the Python keywords.

A table is a tuple of items:

* :class:`Param`, one key (OTB's: ``model.dir``, ``out``); a ``Kind.CHOICE`` param holds :class:`Choice` s whose
  own params live under ``key.choice.`` (``-strategy split -strategy.split.trainprop 50``) and are mandatory only
  when that choice is made;
* :class:`Group`, params under ``key.`` with a help text (a section of ``-help``);
* :class:`Repeat`, params repeated for N = 1, 2, ... under ``prefixN.`` (``source{n}.il``, or
  ``training.source{n}.il`` inside a ``training`` group). N is the highest number given, or ``OTB_TF_NSOURCES``
  (+ ``extra``) if larger;
* :func:`share`, another app's table mounted into this one (OTB's ShareParameter), with renames.

Parsing gives :class:`Values`, a read-only mapping of every concrete key to its typed value (defaults filled in),
with the count of each repeat. Python keywords come from the table: every dot becomes an underscore
(``strategy_split_trainprop``, ``training_source2_il``); a key that is a Python keyword takes a trailing
underscore (``in_`` for ``-in``).
"""

from __future__ import annotations

import difflib
import numbers
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from keyword import iskeyword
from typing import Any, NamedTuple

from eotensor.errors import ParameterError
from eotensor.values import as_bool, as_number, is_bool

_KEY_TOKEN = re.compile(r"^--?[A-Za-z][\w.]*$")


class Kind(Enum):
    """How a parameter's values are read."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    STRING_LIST = "string list"
    FILE = "input file or directory"
    FILE_LIST = "input file list"
    INPUT_IMAGE = "input image"
    INPUT_VECTOR = "input vector"
    INPUT_VECTOR_LIST = "input vector list"
    FIELD = "field of a vector"
    CHOICE = "choice"
    OUTPUT_IMAGE = "output image [pixel type]"
    OUTPUT_VECTOR = "output vector"
    OUTPUT_FILE = "output file"

    @property
    def is_output(self) -> bool:
        """Whether the parameter names a file the app writes."""
        return self in (Kind.OUTPUT_IMAGE, Kind.OUTPUT_VECTOR, Kind.OUTPUT_FILE)

    @property
    def is_list(self) -> bool:
        """Whether the parameter takes one or more values after its key."""
        return self in (Kind.STRING_LIST, Kind.FILE_LIST, Kind.INPUT_VECTOR_LIST)


class OutputImage(NamedTuple):
    """An output image parameter's value: the filename (extended filename allowed) and the pixel type."""

    path: str
    pixel_type: str | None


@dataclass(frozen=True)
class Choice:
    """One option of a ``Kind.CHOICE`` parameter; its params are keyed ``<param>.<name>.<key>``."""

    name: str
    help: str
    params: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Param:
    """One application parameter. ``key`` is relative to the enclosing group, repeat or choice."""

    key: str
    kind: Kind
    help: str
    default: Any = None
    mandatory: bool = False
    aliases: tuple[str, ...] = ()
    """Other spellings, relative like ``key``, accepted with a note on stderr (the talk's slides, decision 1)."""
    minimum: float | None = None
    maximum: float | None = None
    finite: bool = True
    """Whether a number must be finite (no-data values may be nan or inf)."""
    choices: tuple[Choice, ...] = ()
    """``Kind.CHOICE``: the options; the default is the first unless ``default`` says otherwise."""
    pixel_type: str | None = None
    """``Kind.OUTPUT_IMAGE``: the pixel type when the user gives none (PatchesExtraction's ``outlabels``: uint8)."""
    suffix: str | None = None
    """``Kind.OUTPUT_FILE``: the extension the filename must have (``.xml``)."""
    of: str | None = None
    """``Kind.FIELD``: the key (relative, like ``key``) of the vector parameter whose fields are the choices."""
    computed: bool = False
    """A value the app computes rather than reads (OTB's output parameters: ReadImageInfo's ``sizex``): never given;
    ``build``'s result holds it in its ``output_values`` mapping, and the help lists it as such."""


@dataclass(frozen=True)
class Group:
    """Params under ``key.``, shown as one section of ``-help`` with its help text."""

    key: str
    help: str
    params: tuple[Item, ...]


@dataclass(frozen=True)
class Repeat:
    """Params repeated for N = 1, 2, ... under ``<prefix>N.``.

    N runs to the highest number given, or to ``env`` (an environment variable, 1 when unset) plus ``extra`` if
    larger: TensorflowModelTrain has ``OTB_TF_NSOURCES + 1`` training sources (one for the labels).
    """

    prefix: str
    help: str
    params: tuple[Item, ...]
    extra: int = 0
    env: str | None = "OTB_TF_NSOURCES"


@dataclass(frozen=True)
class Shared:
    """Another app's table mounted into this one; made by :func:`share`."""

    prefix: str
    items: tuple[Item, ...]
    renames: tuple[tuple[str, str], ...] = ()


Item = Param | Group | Repeat | Shared


def share(table: Sequence[Item], prefix: str, renames: Mapping[str, str] | None = None,
          only: Sequence[str] | None = None) -> Shared:
    """Mount ``table`` (another app's) into a table, as OTB's ShareParameter does.

    ``only`` keeps the top-level names listed (``("source", "model", "output", "optim")``; a repeat is named by its
    prefix); ``renames`` changes a top-level name (``{"model": "deepmodel"}``; a dotted new name such as
    ``"tfmodel.model"`` moves the rows under a group). :meth:`Values.part` (``prefix``) gives the shared rows'
    values back under the other app's own keys, ready for its config reader.
    """
    names = set(only) if only is not None else None
    kept = tuple(item for item in table if names is None or _top_name(item) in names)
    return Shared(prefix, kept, tuple((renames or {}).items()))


def _top_name(item: Item) -> str:
    return item.prefix if isinstance(item, Repeat | Shared) else item.key.split(".")[0]


@dataclass(frozen=True)
class Row:
    """One flattened parameter: its full key pattern (``{n}``: the repeat number) and where it comes from."""

    key: str
    param: Param
    aliases: tuple[str, ...]
    repeat: str | None
    """The repeat's path (``source``, ``training.source``) when the key has ``{n}``."""
    when: tuple[str, str] | None
    """(choice key pattern, choice name): the row applies only when that choice is made."""
    origin: str
    """The key in the app the row was shared from, after its ``share`` prefix; ``key`` when not shared."""

    @property
    def keyword(self) -> str:
        """The Python keyword pattern: every dot becomes an underscore."""
        return self.key.replace(".", "_")

    def sibling(self, relative: str) -> str:
        """The full key pattern of ``relative`` (an alias or ``of``) written next to this row's param."""
        return self.key[: len(self.key) - len(self.param.key)] + relative


def _pattern(key: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(key).replace(r"\{n\}", r"([1-9][0-9]*)") + "$")


def _concrete(pattern: str, n: int) -> str:
    return pattern.replace("{n}", str(n))


def _rename(key: str, renames: Sequence[tuple[str, str]]) -> str:
    for old, new in renames:
        if key == old or key.startswith((old + ".", old + "{n}")):
            return new + key[len(old):]
    return key


class Table:
    """A table flattened into rows, with the checks that make it well formed (no key, alias or keyword twice)."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = tuple(items)
        self.repeats: dict[str, Repeat] = {}
        self.repeat_origins: dict[str, str] = {}
        self.rows: tuple[Row, ...] = tuple(self._flatten(self.items, "", None, None))
        self._check()
        self._keys = [(row, _pattern(row.key), [_pattern(a) for a in row.aliases]) for row in self.rows]
        self._keywords = [(row, _pattern(row.keyword), [_pattern(a.replace(".", "_")) for a in row.aliases])
                          for row in self.rows]

    def _flatten(self, items: Sequence[Item], prefix: str, repeat: str | None,
                 when: tuple[str, str] | None) -> Iterator[Row]:
        for item in items:
            if isinstance(item, Param):
                key = prefix + item.key
                yield Row(key, item, tuple(prefix + a for a in item.aliases), repeat, when, key)
                for choice in item.choices:
                    yield from self._flatten(choice.params, f"{key}.{choice.name}.", repeat, (key, choice.name))
            elif isinstance(item, Group):
                yield from self._flatten(item.params, f"{prefix}{item.key}.", repeat, when)
            elif isinstance(item, Repeat):
                if repeat is not None:
                    raise ValueError(f"repeat {prefix}{item.prefix}{{n}} inside repeat {repeat}{{n}}")
                path = prefix + item.prefix
                self.repeats[path] = item
                self.repeat_origins[path] = path
                yield from self._flatten(item.params, path + "{n}.", path, when)
            else:
                inner = Table(item.items)
                for path, rep in inner.repeats.items():
                    public = prefix + _rename(path, item.renames)
                    self.repeats[public] = rep
                    self.repeat_origins[public] = f"{item.prefix}.{inner.repeat_origins[path]}"
                for row in inner.rows:
                    yield self._mount(row, prefix, item)

    @staticmethod
    def _mount(row: Row, prefix: str, shared: Shared) -> Row:
        """``row`` of a shared table as this table sees it: renamed, under ``prefix``, its origin kept."""
        def mount(key: str) -> str:
            return prefix + _rename(key, shared.renames)

        return Row(mount(row.key), row.param, tuple(mount(a) for a in row.aliases),
                   mount(row.repeat) if row.repeat else None, (mount(row.when[0]), row.when[1]) if row.when else None,
                   f"{shared.prefix}.{row.origin}")

    def _check(self) -> None:
        """No key, alias or Python keyword twice; choices have options; a field names a parameter."""
        seen: dict[str, str] = {}
        for row in self.rows:
            for spelling in (row.key, *row.aliases):
                for form in {spelling, spelling.replace(".", "_")}:
                    if form in seen:
                        raise ValueError(f"parameter table: {form!r} of -{row.key} is also {seen[form]!r}")
                    seen[form] = f"-{row.key}"
        numbered = [(_pattern(form), key) for form, key in seen.items() if "{n}" in form]
        for form, key in seen.items():
            clash = next((other for pattern, other in numbered if other != key and pattern.match(form)), None)
            if clash:
                raise ValueError(f"parameter table: {form!r} of {key} is also one of {clash}'s numbered keys")
        keys = {row.key for row in self.rows}
        for row in self.rows:
            p = row.param
            if p.kind is Kind.CHOICE and not p.choices:
                raise ValueError(f"parameter table: -{row.key} is a choice without choices")
            if p.kind is Kind.CHOICE and p.default is not None and p.default not in [c.name for c in p.choices]:
                raise ValueError(f"parameter table: -{row.key} defaults to {p.default!r}, which is not one of its "
                                 "choices")
            if p.kind is Kind.FIELD and (p.of is None or row.sibling(p.of) not in keys):
                raise ValueError(f"parameter table: -{row.key} is a field of {p.of!r}, which is not a parameter")

    def find(self, key: str, keyword: bool = False) -> tuple[Row, int, bool] | None:
        """(row, repeat number or 0, whether an alias matched) for a user key (or Python keyword), or None."""
        for row, pattern, aliases in self._keywords if keyword else self._keys:
            for alias, regex in ((False, pattern), *((True, a) for a in aliases)):
                match = regex.match(key)
                if match:
                    return row, int(match.group(1)) if match.groups() else 0, alias
        return None

    def param(self, key: str) -> Param:
        """The param of the row whose key pattern is ``key``."""
        return next(row.param for row in self.rows if row.key == key)

    def counts(self, numbers: Mapping[str, int], env: Mapping[str, str]) -> dict[str, int]:
        """N of every repeat: the highest given (``numbers``), or its environment variable (+ extra) if larger."""
        return {path: max(numbers.get(path, 0), (read_count(rep.env, env) if rep.env else 1) + rep.extra)
                for path, rep in self.repeats.items()}

    def concrete(self, counts: Mapping[str, int]) -> Iterator[tuple[str, Row, int]]:
        """Every concrete key with its row and repeat number."""
        for row in self.rows:
            for n in range(1, counts[row.repeat] + 1) if row.repeat else (0,):
                yield _concrete(row.key, n), row, n


def read_count(name: str, env: Mapping[str, str] | None = None) -> int:
    """An environment variable such as ``OTB_TF_NSOURCES`` as a positive int (1 when unset), or a clear error."""
    value = (env if env is not None else os.environ).get(name, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ParameterError(f'{name}="{value}" is not a positive integer; unset it or give e.g. 2')
    return int(value)


class Values(Mapping[str, Any]):
    """Parsed parameters: every concrete key (``source2.il``) -> typed value, defaults filled in.

    ``counts`` holds N for each repeat (``{"source": 2}``); :meth:`is_set` tells a given value from a default.
    """

    def __init__(self, values: Mapping[str, Any], counts: Mapping[str, int], given: frozenset[str],
                 origins: Mapping[str, str], repeat_origins: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.counts = dict(counts)
        self._given = given
        self._origins = dict(origins)
        self._repeat_origins = dict(repeat_origins)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Values({self._values!r}, counts={self.counts!r})"

    def count(self, repeat: str = "source") -> int:
        """N of the repeat ``repeat`` (its path: ``source``, ``training.source``)."""
        return self.counts[repeat]

    def is_set(self, key: str) -> bool:
        """Whether ``key`` was given (rather than filled with its default)."""
        return key in self._given

    def part(self, prefix: str) -> Values:
        """The values of the rows shared with ``share(table, prefix, ...)``, keyed as in the table shared."""
        head = prefix + "."
        keys = {key: origin[len(head):] for key, origin in self._origins.items() if origin.startswith(head)}
        counts = {origin[len(head):]: self.counts[path] for path, origin in self._repeat_origins.items()
                  if origin.startswith(head)}
        return Values({inner: self._values[key] for key, inner in keys.items()}, counts,
                      frozenset(inner for key, inner in keys.items() if key in self._given),
                      {inner: inner for inner in keys.values()}, {path: path for path in counts})


@dataclass(frozen=True)
class App:
    """An application: its name, description, parameter table, and its two steps.

    ``build(values)`` makes the lazy result (nothing written: OTB's ``Execute()``); ``write(result, values,
    progress)`` writes the outputs (``ExecuteAndWriteOutput()``), with a progress bar and summary on stderr if asked.
    """

    name: str
    description: str
    params: tuple[Item, ...]
    build: Callable[[Values], Any]
    write: Callable[[Any, Values, bool], Any]
    notes: str = ""

    @cached_property
    def table(self) -> Table:
        """The flattened, checked table."""
        return Table(self.params)

    def run(self, values: Values, progress: bool = False) -> Any:
        """Build, then write; return the lazy result."""
        result = self.build(values)
        self.write(result, values, progress)
        return result

    def __call__(self, options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Run from Python (see :func:`run_python`)."""
        return run_python(self, options, **kwargs)


def run_python(app: App, options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Run ``app`` with Python keywords and/or an OTB-key dict; return its lazy result.

    The outputs are written when given; without any output the result is returned unwritten (in Python only:
    on the command line outputs stay mandatory).
    """
    values = parse_python(app, options, **kwargs)
    if any(values.is_set(key) for key, row, _ in app.table.concrete(values.counts) if row.param.kind.is_output):
        return app.run(values)
    return app.build(values)


def _is_number(token: str) -> bool:
    """Whether ``token`` reads as a number (``-10000``, ``-inf``, ``-nan`` are values, not keys)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def _from_text(key: str, param: Param, values: list[str]) -> Any:
    """Typed value of ``-key values...`` on the command line."""
    def single() -> str:
        if len(values) != 1:
            got = f": {' '.join(values)}" if values else ""
            raise ParameterError(f"-{key} expects one {param.kind.value} value, got {len(values)}{got}")
        return values[0]

    if param.kind in (Kind.INT, Kind.FLOAT):
        return _number(key, param, single())
    if param.kind is Kind.BOOL:
        return as_bool(values[0] if values else "on", f"-{key}") if len(values) <= 1 else single()
    if param.kind is Kind.OUTPUT_IMAGE:
        if len(values) not in (1, 2):
            raise ParameterError(f"-{key} expects a filename and an optional pixel type, got {' '.join(values)!r}")
        return OutputImage(values[0], values[1] if len(values) == 2 else param.pixel_type)
    if param.kind.is_list:
        if not values:
            raise ParameterError(f"-{key} expects at least one value")
        return list(values)
    return single()


def _number(key: str, param: Param, text: Any) -> int | float:
    return as_number(text, f"-{key}", integer=param.kind is Kind.INT, minimum=param.minimum,
                     maximum=param.maximum, finite=param.finite)


def _from_python(key: str, param: Param, value: Any) -> Any:
    """Typed value of a Python keyword: strings parse as on the command line; a path, string or in-memory image is
    one list item."""
    kind = param.kind
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if kind is Kind.BOOL:
        return as_bool(value, f"-{key}")
    if kind in (Kind.INT, Kind.FLOAT):
        return _number(key, param, value) if isinstance(value, str) else value
    if kind is Kind.OUTPUT_IMAGE:
        if isinstance(value, str):
            return OutputImage(value, param.pixel_type)
        if isinstance(value, Sequence) and len(value) == 2:
            return OutputImage(os.fspath(value[0]), value[1] or param.pixel_type)
        raise ParameterError(f"-{key} expects a filename or (filename, pixel type), got {value!r}")
    if kind.is_list:
        items = [value] if isinstance(value, str) or _is_image(value) else value
        if not isinstance(items, Sequence) or not items:
            raise ParameterError(f"-{key} expects a string or a non-empty list of strings, got {value!r}")
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in items]
    return value


def _is_image(value: Any) -> bool:
    """Whether ``value`` is one in-memory image (a lazy result or an ``xarray.DataArray``): one list item, as a
    string is. The engine is imported only for such a value, never by this module."""
    if isinstance(value, (list, tuple)):
        return False
    from eotensor.lazy import LazyRaster
    from eotensor.xarray_io import is_data_array

    return isinstance(value, LazyRaster) or is_data_array(value)


def _validate_value(key: str, param: Param, value: Any) -> Any:
    """``value`` validated against ``param`` (type, range, choices, suffix); numbers made int or float."""
    kind = param.kind
    if kind in (Kind.INT, Kind.FLOAT):
        if not isinstance(value, numbers.Real) or is_bool(value):
            raise ParameterError(f"-{key} expects {'an integer' if kind is Kind.INT else 'a number'}, got {value!r}")
        value = _number(key, param, value)
    elif kind is Kind.CHOICE:
        names = [c.name for c in param.choices]
        if value not in names:
            raise ParameterError(f'-{key} expects one of {", ".join(names)}, got "{value}"')
    if param.suffix is not None and not str(value).lower().endswith(param.suffix.lower()):
        raise ParameterError(f'-{key} expects a filename ending in {param.suffix}, got "{value}"')
    return value


def check_value(key: str, param: Param, value: Any) -> Any:
    """One Python value of the concrete ``key`` converted and checked as :func:`parse_python` would (a one-line
    :class:`ParameterError` otherwise): for callers that set parameters one at a time (``otbApplication``)."""
    return _validate_value(key, param, _from_python(key, param, value))


def default_value(param: Param) -> Any:
    """The value ``param`` takes when not given (a choice: its first option unless it names another)."""
    return _default(param)


def _default(param: Param) -> Any:
    if param.kind is Kind.CHOICE and param.default is None:
        return param.choices[0].name
    return param.default


def _parse(app: App, given: Sequence[tuple[str, Any, bool]], env: Mapping[str, str] | None,
           convert: Callable[[str, Param, Any], Any], require_outputs: bool | None = True) -> Values:
    """The common half of :func:`parse_cli` and :func:`parse_python`: resolve, convert, count, check, complete.

    ``given`` holds (spelling, raw value, whether the spelling is a Python keyword). ``require_outputs`` None:
    mandatory outputs are required once any output is given.
    """
    table = app.table
    resolved: dict[str, tuple[Row, Any, str]] = {}
    numbers: dict[str, int] = {}
    for spelling, raw, keyword in given:
        if keyword and spelling.endswith("_") and iskeyword(spelling[:-1]):
            spelling = spelling[:-1]  # in_= for -in, as PEP 8 spells a keyword used as a name
        found = table.find(spelling, keyword)
        shown = f"{spelling}=" if keyword else f"-{spelling}"
        if found is None:
            raise ParameterError(_unknown(app, spelling, keyword))
        row, n, alias = found
        key = _concrete(row.key, n)
        if row.param.computed:
            raise ParameterError(f"-{key} is computed by {app.name}, not given; read it after the run")
        if alias:
            print(f"note: {shown} is read as -{key}", file=sys.stderr)
        if key in resolved:
            first = resolved[key][2]
            also = "" if first == shown else f" (first as {first})"
            raise ParameterError(f"-{key} is given twice{also}; give it once")
        resolved[key] = (row, convert(key, row.param, raw), shown)
        if row.repeat:
            numbers[row.repeat] = max(numbers.get(row.repeat, 0), n)
    counts = table.counts(numbers, os.environ if env is None else env)
    if require_outputs is None:
        require_outputs = any(row.param.kind.is_output for row, _, _ in resolved.values())
    values: dict[str, Any] = {}
    for key, (row, value, _) in resolved.items():
        values[key] = None if value is None else _validate_value(key, row.param, value)
    origins: dict[str, str] = {}
    for key, row, n in table.concrete(counts):
        origins[key] = _concrete(row.origin, n)
        chosen = None
        if row.when is not None:
            choice_key = _concrete(row.when[0], n)
            chosen = values.get(choice_key, _default(table.param(row.when[0])))
        applies = row.when is None or chosen == row.when[1]
        if key in values:
            if not applies:
                warnings.warn(f"-{key} has no effect: -{choice_key} is {chosen}", stacklevel=3)
            continue
        if row.param.mandatory and applies and (require_outputs or not row.param.kind.is_output):
            what = row.param.help.split(". ")[0].rstrip(".")
            raise ParameterError(f"missing mandatory parameter -{key} ({what})")
        values[key] = _default(row.param)
    return Values(values, counts, frozenset(resolved), origins, table.repeat_origins)


def _unknown(app: App, spelling: str, keyword: bool) -> str:
    """"unknown parameter" with the closest known spelling (repeats counted up to the number given)."""
    numbers = [int(n) for n in re.findall(r"\d+", spelling)] or [1]
    counts = dict.fromkeys(app.table.repeats, max(numbers))
    known = [_concrete(row.keyword, n) if keyword else key for key, row, n in app.table.concrete(counts)]
    close = difflib.get_close_matches(spelling, known, n=1, cutoff=0.5)
    dash = "" if keyword else "-"
    hint = f"; did you mean {dash}{close[0]}?" if close else f"; see {app.name} -help"
    return f"unknown {'keyword ' if keyword else 'parameter -'}{spelling}{hint}"


def parse_cli(app: App, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Values:
    """OTB-style ``-key value...`` arguments -> :class:`Values`.

    A token is a key when it looks like ``-name.sub`` and is not a number, so values such as ``-10000``
    or ``-inf`` are values. A key given twice is an error (list values follow one key: ``-source1.il a b``).
    """
    raw: list[tuple[str, list[str]]] = []
    for token in argv:
        if _KEY_TOKEN.match(token) and not _is_number(token):
            raw.append((token.lstrip("-"), []))
        elif not raw:
            raise ParameterError(f'"{token}" is not a parameter; parameters look like -key value')
        else:
            raw[-1][1].append(token)
    return _parse(app, [(key, values, False) for key, values in raw], env, _from_text)


def parse_python(app: App, options: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 **kwargs: Any) -> Values:
    """Python keywords (``source1_il=[...]``) and/or an OTB-key dict -> the :class:`Values` :func:`parse_cli` gives.

    Outputs are mandatory only once one is given (:func:`run_python` returns the lazy result when none is given);
    a value of None means "not given".
    """
    given = [(key, value, False) for key, value in (options or {}).items() if value is not None]
    given += [(keyword, value, True) for keyword, value in kwargs.items() if value is not None]
    return _parse(app, given, env, _from_python, require_outputs=None)


def format_help(app: App) -> str:
    """The ``-help`` text: description, parameters by group (with choices and sub-parameters), then notes."""
    lines = [f"{app.name}: {app.description}", "", "Parameters:"]
    _help_items(app.params, "", "  ", lines)
    if app.notes:
        lines += ["", app.notes.rstrip()]
    return "\n".join(lines)


def _help_items(items: Sequence[Item], prefix: str, indent: str, lines: list[str],
                renames: tuple[Sequence[tuple[str, str]], ...] = (), when: str = "", path: str = "") -> None:
    """Append the help lines of ``items``: keys under ``prefix`` then ``path`` (the keys of the enclosing groups,
    choices and repeats since the innermost :func:`share`, to which its ``renames`` apply, innermost first;
    ``when``: the choice that makes them apply)."""
    def renamed(key: str) -> str:
        for layer in renames:
            key = _rename(key, layer)
        return key

    def show(key: str) -> str:
        return (prefix + renamed(path + key)).replace("{n}", "N")

    for item in items:
        if isinstance(item, Param):
            lines.append(f"{indent}-{show(item.key):<26} <{item.kind.value}>{_flags(item, show, when)}")
            lines.append(f"{indent}    {item.help}")
            if item.aliases:
                lines.append(f"{indent}    Also read: {', '.join('-' + show(a) for a in item.aliases)}")
            for choice in item.choices:
                lines.append(f"{indent}    {choice.name}: {choice.help}")
                _help_items(choice.params, prefix, indent + "      ", lines, renames,
                            f" with -{show(item.key)} {choice.name}", f"{path}{item.key}.{choice.name}.")
        elif isinstance(item, Group):
            lines += ["", f"{indent}{show(item.key)}: {item.help}"]
            _help_items(item.params, prefix, indent + "  ", lines, renames, when, f"{path}{item.key}.")
        elif isinstance(item, Repeat):
            count = f"{item.env}{f' + {item.extra}' if item.extra else ''}" if item.env else f"{1 + item.extra}"
            lines += ["", f"{indent}{show(item.prefix)}N: {item.help}",
                      f"{indent}  (N = 1, 2, ... up to the highest N given, or {count} if larger)"]
            _help_items(item.params, prefix, indent + "  ", lines, renames, when, f"{path}{item.prefix}{{n}}.")
        else:
            _help_items(item.items, prefix + renamed(path), indent, lines, (item.renames, *renames))


def _flags(p: Param, show: Callable[[str], str], when: str = "") -> str:
    """" (mandatory)", " (default: ...)" and the like, for one help line."""
    default = _default(p)
    if p.computed:
        return " (computed by the app)"
    if p.mandatory:
        flags = f" (mandatory{when})"
    elif isinstance(default, bool):
        flags = f" (default: {'on' if default else 'off'})"
    else:
        flags = f" (default: {default})" if default not in (None, "") else ""
    if p.choices:
        flags += f" (one of: {', '.join(c.name for c in p.choices)})"
    if p.pixel_type:
        flags += f" (default pixel type: {p.pixel_type})"
    if p.suffix:
        flags += f" (a {p.suffix} file)"
    if p.of:
        flags += f" (a field of -{show(p.of)})"
    return flags
