"""Tensor-name resolution and user placeholders, as OTBTF does them (behaviour reference §1.4-1.5).

Runtime-independent: works on any model's :class:`~eotensor.runtimes.base.TensorSpec` mappings.
"""

from __future__ import annotations

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


def resolve_names(
    specs: Mapping[str, TensorSpec], wanted: Sequence[str], params: Sequence[str], exclude: Sequence[str] = ()
) -> list[TensorSpec]:
    """Resolve user tensor names against a signature, OTBTF-style.

    The k-th empty name takes the k-th key (alphabetical) among the candidates, which are the keys
    not in ``exclude`` (the user placeholders). A non-empty name matches a key equal to it, or whose
    part before ``:`` equals it. No match, or several, is an error (OTBTF silently misbehaves).
    ``params`` names the parameter of each wanted name, for error messages.
    """
    candidates = sorted(k for k in specs if k not in set(exclude))
    resolved = []
    for k, (name, param) in enumerate(zip(wanted, params)):
        if not name:
            if k >= len(candidates):
                raise ModelError(
                    f"{param} is empty and the model has no candidate #{k + 1} to pick "
                    f"(candidates in alphabetical order: {', '.join(candidates) or 'none'}); name the tensor"
                )
            resolved.append(specs[candidates[k]])
            continue
        matches = [key for key in specs if key == name] or [key for key in specs if _stem(key) == name]
        if not matches:
            available = ", ".join(sorted(specs))
            raise ModelError(f'{param}: tensor "{name}" is not in the model signature; available: {available}')
        if len(matches) > 1:
            raise ModelError(
                f'{param}: tensor "{name}" is ambiguous, it matches {", ".join(sorted(matches))}; give the full key'
            )
        resolved.append(specs[matches[0]])
    return resolved


def parse_user_placeholder(item: str, param: str = "model.userplaceholders") -> tuple[str, np.ndarray]:
    """Parse one ``name=value`` item into (name, rank-1 array of float32, int32 or bool).

    Grammar (OTBTF's): a value in parentheses is a vector of comma-separated items; the type is decided
    once for all items: numeric when every item uses only ``-0123456789.``, float when one has a dot,
    int otherwise; anything else must be ``true``/``false``. Exponents (``1e-3``) are not numbers.
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
        return name, np.array([float(v) if is_float else int(v) for v in items],
                              dtype=np.float32 if is_float else np.int32)
    lowered = [v.lower() for v in items]
    if all(v in ("true", "false") for v in lowered):
        return name, np.array([v == "true" for v in lowered], dtype=bool)
    bad = next(v for v in items if v.lower() not in ("true", "false") and not set(v) <= set("-0123456789."))
    raise ParameterError(
        f'{param} "{item}": "{bad}" is neither a number (digits, "-" and "." only, no exponent) nor true/false'
    )


def placeholder_feed(
    name: str, value: np.ndarray, spec: TensorSpec, param: str = "model.userplaceholders"
) -> np.ndarray:
    """Cast a parsed placeholder to the dtype and rank the signature declares (decision 5c).

    Casts to integers must be exact (integral values only); casts to floats round (0.1 as a float64 from
    Python becomes float32 0.1). A one-element value feeds a true scalar when the signature asks for rank 0.
    """
    target = np.dtype(spec.dtype)
    if value.dtype == np.bool_ or target == np.bool_:
        if value.dtype != target:
            raise ParameterError(f"{param}: {name} is {value.dtype} but the model declares {target}")
        cast = value
    else:
        cast = value.astype(target)
        if target.kind in "iu" and not np.array_equal(cast.astype(np.float64), value.astype(np.float64)):
            raise ParameterError(
                f"{param}: {name} = {value.tolist()} cannot be cast exactly to the model's {target}; "
                f"give {target} values"
            )
    if spec.rank == 0:
        if cast.size != 1:
            raise ParameterError(f"{param}: {name} is a scalar in the model but {cast.size} values were given")
        return cast.reshape(())
    return cast
