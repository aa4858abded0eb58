"""Tensor-name resolution and user placeholders, as OTBTF does them (behaviour reference §1.4-1.5).

Runtime-independent: works on any model's :class:`~eotensor.runtimes.base.TensorSpec` mappings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from eotensor.errors import ModelError, ParameterError
from eotensor.runtimes.base import TensorSpec

_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)$")
_PLACEHOLDER_HELP = 'expected name=value, e.g. "a=1", "rate=0.5", "flag=true" or "a=(1.0, 2.0)"'


def _stem(key: str) -> str:
    """A signature key without its ``:N`` suffix (TF1 keys look like ``x:0``)."""
    return key.split(":", 1)[0]


def _match(specs: Mapping[str, TensorSpec], name: str, param: str) -> TensorSpec:
    """The one key equal to ``name``, or whose part before ``:`` equals it; an error otherwise."""
    matches = [key for key in specs if key == name] or [key for key in specs if _stem(key) == name]
    if not matches:
        available = ", ".join(sorted(specs))
        raise ModelError(f'{param}: tensor "{name}" is not in the model signature; available: {available}')
    if len(matches) > 1:
        raise ModelError(
            f'{param}: tensor "{name}" is ambiguous, it matches {", ".join(sorted(matches))}; give the full key'
        )
    return specs[matches[0]]


def resolve_names(
    specs: Mapping[str, TensorSpec],
    wanted: Sequence[str],
    params: Sequence[str],
    exclude: Sequence[str] = (),
    *,
    ordered: bool = False,
) -> list[TensorSpec]:
    """Resolve user tensor names against a signature (decision 33; OTBTF's rule when not ``ordered``).

    A non-empty name matches a key equal to it, or whose part before ``:`` equals it; no match, or
    several, is an error (OTBTF silently misbehaves). Empty names pick keys among the candidates:

    * not ``ordered`` (OTBTF, behaviour reference §1.4): the candidates are the keys not in ``exclude``
      (the user placeholders), sorted alphabetically, and the k-th name, if empty, takes the k-th one;
    * ``ordered`` (``specs`` is in the model's declared order): the candidates are the keys named
      nowhere else (neither in ``exclude`` nor by another name), in declared order, and the empty
      names take them one after the other.

    ``params`` names the parameter of each wanted name, for error messages.
    """
    named = {k: _match(specs, name, param) for k, (name, param) in enumerate(zip(wanted, params)) if name}
    taken = set(exclude) | ({spec.key for spec in named.values()} if ordered else set())
    candidates = [key for key in specs if key not in taken]
    if not ordered:
        candidates.sort()
    resolved = []
    empties = 0
    for k, (_, param) in enumerate(zip(wanted, params)):
        if k in named:
            resolved.append(named[k])
            continue
        pick = empties if ordered else k
        empties += 1
        if pick >= len(candidates):
            order = "declaration order, not named elsewhere" if ordered else "alphabetical order"
            raise ModelError(
                f"{param} is empty and the model has no candidate #{pick + 1} to pick "
                f"(candidates in {order}: {', '.join(candidates) or 'none'}); name the tensor"
            )
        resolved.append(specs[candidates[pick]])
    return resolved


def parse_user_placeholder(item: str, param: str = "model.userplaceholders") -> tuple[str, np.ndarray]:
    """Parse one ``name=value`` item into (name, rank-1 array of float64, int64 or bool).

    Grammar (OTBTF's): a value in parentheses is a vector of comma-separated items; the type is decided
    once for all items: numeric when every item uses only ``-0123456789.``, float when one has a dot,
    int otherwise; anything else must be ``true``/``false``. Exponents (``1e-3``) and ``inf``/``nan``
    are not numbers. Values are parsed exactly (int64, float64) and cast to the model's dtype, exactly,
    by :func:`placeholder_feed` (OTBTF builds int32/float32 tensors and overflows silently).
    """
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ParameterError(f'{param} "{item}": {_PLACEHOLDER_HELP}')
    opens, closes = value.startswith("("), value.endswith(")")
    if opens != closes:
        raise ParameterError(f'{param} "{item}": unbalanced parentheses; {_PLACEHOLDER_HELP}')
    items = [v.strip() for v in (value[1:-1] if opens else value).split(",")]
    if any(not v for v in items):
        raise ParameterError(f'{param} "{item}": empty value; {_PLACEHOLDER_HELP}')
    if all(set(v) <= set("-0123456789.") for v in items):
        is_float = any("." in v for v in items)
        pattern = _FLOAT if is_float else _INT
        bad = [v for v in items if not pattern.match(v)]
        if bad:
            raise ParameterError(f'{param} "{item}": "{bad[0]}" is not a number; {_PLACEHOLDER_HELP}')
        numbers = [float(v) if is_float else int(v) for v in items]
        big = [v for v, n in zip(items, numbers)  # float("1" + 400 * "0" + ".0") is inf
               if (not math.isfinite(n) if is_float else not -(2**63) <= n < 2**63)]
        if big:
            raise ParameterError(
                f'{param} "{item}": {big[0]} is out of range ({"float64" if is_float else "int64"})'
            )
        return name, np.array(numbers, dtype=np.float64 if is_float else np.int64)
    lowered = [v.lower() for v in items]
    if all(v in ("true", "false") for v in lowered):
        return name, np.array([v == "true" for v in lowered], dtype=bool)
    bad = next(v for v in items if v.lower() not in ("true", "false") and not set(v) <= set("-0123456789."))
    raise ParameterError(
        f'{param} "{item}": "{bad}" is neither a number (digits, "-" and "." only, no exponent) nor true/false'
    )


def _fits(value: np.ndarray, target: np.dtype) -> bool:
    """Whether ``value`` (bool-free numeric) casts to the numeric ``target`` without overflow or loss.

    Integer targets need integral values within their range; float targets need finite results
    (rounding is accepted: 0.1 becomes float32 0.1).
    """
    if target.kind in "iu":
        info = np.iinfo(target)
        integral = value.dtype.kind in "iu" or bool(np.isfinite(value).all() and (value == np.round(value)).all())
        return integral and bool((value >= info.min).all() and (value < info.max + 1).all())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool((np.isfinite(value.astype(target)) | ~np.isfinite(value)).all())


def placeholder_feed(
    name: str, value: np.ndarray, spec: TensorSpec, param: str = "model.userplaceholders"
) -> np.ndarray:
    """Cast a placeholder value to the dtype and rank the signature declares (decision 5c).

    Casts must be exact: integral values within range for integers, no overflow to ``inf`` for floats
    (which round: 0.1 as a float64 becomes float32 0.1). Bools feed bool inputs only. A one-element
    value feeds a true scalar when the signature asks for rank 0.
    """
    target = np.dtype(spec.dtype)
    value = np.asarray(value)
    if value.dtype == np.bool_ or target == np.bool_:
        if value.dtype != target:
            raise ParameterError(f"{param}: {name} is {value.dtype} but the model declares {target}")
        cast = value
    elif value.dtype.kind not in "iuf" or target.kind not in "iuf":
        raise ParameterError(f"{param}: {name} = {value.tolist()!r} is {value.dtype} and the model declares "
                             f"{target}; expected numbers for a numeric input")
    elif not _fits(value, target):
        detail = f" (range {np.iinfo(target).min}..{np.iinfo(target).max})" if target.kind in "iu" else \
            " (it would overflow to inf)"
        raise ParameterError(
            f"{param}: {name} = {value.tolist()} cannot be cast exactly to the model's {target}{detail}; "
            f"give {target} values"
        )
    else:
        cast = value.astype(target)
    if spec.rank == 0:
        if cast.size != 1:
            raise ParameterError(f"{param}: {name} is a scalar in the model but {cast.size} values were given")
        return cast.reshape(())
    return cast
