"""Typed values from what users pass (Python keywords or command-line strings), with one-line errors.

The Python API and the parameter tables share these, so ``fullyconv="off"``, ``tile_size=0`` or
``output_names="probs"`` mean the same from Python as on the command line. Imports nothing heavy: the
CLI parses its arguments before NumPy loads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from eotensor.errors import ParameterError

_TRUE = ("on", "true", "1", "yes")
_FALSE = ("off", "false", "0", "no")


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy boolean (which must not pass for the numbers 0 and 1)."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"


def as_bool(value: Any, param: str) -> bool:
    """on/off, true/false, yes/no, 1/0 (any case) or a Python bool."""
    if is_bool(value):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParameterError(f'{param} expects on/off, true/false or 1/0, got "{value}"')


def as_number(value: Any, param: str, *, integer: bool = False, minimum: float | None = None,
              maximum: float | None = None, finite: bool = True) -> Any:
    """An int (``integer``) or float from a number or a numeric string, checked against ``minimum``/``maximum``.

    Non-finite values (inf, nan) are refused unless ``finite`` is False (no-data values may be NaN).
    """
    expected = "an integer" if integer else "a number"
    if is_bool(value):
        raise ParameterError(f"{param} expects {expected}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f'{param} expects {expected}, got "{value}"') from None
    if finite and not math.isfinite(number):
        raise ParameterError(f"{param} expects a finite number, got {value}")
    if integer:
        if not number.is_integer():
            raise ParameterError(f"{param} expects an integer, got {value!r}")
        number = int(number)
    if minimum is not None and number < minimum:
        raise ParameterError(f"{param} must be >= {_show(minimum)}, got {_show(number)}")
    if maximum is not None and number > maximum:
        raise ParameterError(f"{param} must be <= {_show(maximum)}, got {_show(number)}")
    return number


def _show(number: float) -> str:
    """A limit or value as users typed it: integers in full (a seed's 4294967295, not 4.29497e+09)."""
    return str(int(number)) if float(number).is_integer() and abs(number) < 2**63 else f"{number:g}"


def as_pair(value: Any, param: str, minimum: int = 1) -> tuple[int, int]:
    """An (x, y) pair of integers >= ``minimum`` from an int or a 2-sequence."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        x = as_number(value, param, integer=True, minimum=minimum)
        return x, x
    if len(value) != 2:
        raise ParameterError(f"{param} expects an int or an (x, y) pair, got {value!r}")
    x, y = (as_number(v, param, integer=True, minimum=minimum) for v in value)
    return x, y


def as_strings(value: Any, param: str) -> list[str]:
    """A list of strings from one string (one item, never its characters), a path, or a sequence."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if not isinstance(value, Sequence):
        raise ParameterError(f"{param} expects a string or a list of strings, got {type(value).__name__}")
    return [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value]
