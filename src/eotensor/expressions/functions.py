"""The functions expressions may call, with muParser's (BandMath) and OTB's (BandMathX) meanings.

Each :class:`Function` says how many arguments it takes, which dialects know it, its NumPy meaning and,
for the element-wise ones, a NumExpr template, so the evaluator can fuse a whole element-wise subtree into
one NumExpr call. The templates and the NumPy code spell out the same arithmetic (muParser's ``rint`` is
``floor(x + 0.5)``, ``min`` keeps the first argument unless a later one is smaller, as ``std::min`` does,
``sign(NaN)`` is 0) so the two paths agree.

Vector functions (BandMathX only: ``dotpr``, ``vmin``, ``bands``, ``cat``...) work on matrices and are
implemented in :mod:`eotensor.expressions.evaluate`; here they are only named and counted.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

BANDMATH = "bandmath"
BANDMATHX = "bandmathx"
DIALECTS = (BANDMATH, BANDMATHX)


@dataclass(frozen=True)
class Function:
    """One callable name: arity (``max_args`` None: variadic), dialects, and its element-wise meaning if any."""

    name: str
    min_args: int
    max_args: int | None
    dialects: tuple[str, ...] = DIALECTS
    numpy: Callable[..., np.ndarray] | None = None  # element-wise meaning; None for vector functions
    numexpr: Callable[..., str | None] | None = None  # the same as NumExpr text, from the arguments' texts

    @property
    def elementwise(self) -> bool:
        return self.numpy is not None

    def arity(self) -> str:
        """How many arguments, in words, for error messages."""
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' * (self.min_args != 1)}"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' * (self.min_args != 1)}"
        return f"{self.min_args} to {self.max_args} arguments"


def _unary(name: str, ufunc: Callable[[np.ndarray], np.ndarray], ne_name: str | None,
           dialects: tuple[str, ...] = DIALECTS) -> Function:
    template = (lambda a: f"{ne_name}({a})") if ne_name else None
    return Function(name, 1, 1, dialects, ufunc, template)


def _rint(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)  # muParser's Rint: floor(v + 0.5), so rint(-0.5) == 0 and rint(2.5) == 3


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, -1.0, np.where(x > 0, 1.0, 0.0))


def _min(*args: np.ndarray) -> np.ndarray:
    result = args[0]
    for arg in args[1:]:
        result = np.where(arg < result, arg, result)  # std::min(result, arg)
    return result


def _max(*args: np.ndarray) -> np.ndarray:
    result = args[0]
    for arg in args[1:]:
        result = np.where(result < arg, arg, result)  # std::max(result, arg)
    return result


def _sum(*args: np.ndarray) -> np.ndarray:
    result = args[0]
    for arg in args[1:]:
        result = result + arg
    return result


def _ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    # OTB's ndvi(): 0 where |red + nir| < 1e-6, else (nir - red) / (nir + red)
    return np.where(np.abs(red + nir) < 1e-6, 0.0, (nir - red) / (nir + red))


def _fold(args: tuple[str, ...], step: Callable[[str, str], str]) -> str:
    result = args[0]
    for arg in args[1:]:
        result = step(result, arg)
    return result


def _fold_small(args: tuple[str, ...], step: Callable[[str, str], str]) -> str | None:
    """``_fold`` for steps that repeat the running result: its text doubles per argument, so past four
    arguments NumPy does the call (None) and NumExpr only its arguments."""
    return _fold(args, step) if len(args) <= 4 else None


_X = (BANDMATHX,)
FUNCTIONS: dict[str, Function] = {f.name: f for f in [
    _unary("abs", np.abs, "abs"),
    _unary("sqrt", np.sqrt, "sqrt"),
    _unary("exp", np.exp, "exp"),
    _unary("log", np.log, "log"),  # natural, in muParser and muParserX alike
    _unary("ln", np.log, "log"),
    _unary("log2", np.log2, "log2"),
    _unary("log10", np.log10, "log10"),
    _unary("sin", np.sin, "sin"),
    _unary("cos", np.cos, "cos"),
    _unary("tan", np.tan, "tan"),
    _unary("asin", np.arcsin, "arcsin"),
    _unary("acos", np.arccos, "arccos"),
    _unary("atan", np.arctan, "arctan"),
    _unary("sinh", np.sinh, "sinh"),
    _unary("cosh", np.cosh, "cosh"),
    _unary("tanh", np.tanh, "tanh"),
    _unary("asinh", np.arcsinh, "arcsinh"),
    _unary("acosh", np.arccosh, "arccosh"),
    _unary("atanh", np.arctanh, "arctanh"),
    Function("rint", 1, 1, DIALECTS, _rint, lambda a: f"floor({a} + 0.5)"),
    Function("sign", 1, 1, DIALECTS, _sign, lambda a: f"where({a} < 0, -1.0, where({a} > 0, 1.0, 0.0))"),
    Function("atan2", 2, 2, DIALECTS, np.arctan2, lambda a, b: f"arctan2({a}, {b})"),
    Function("min", 1, None, DIALECTS, _min, lambda *a: _fold_small(a, lambda r, x: f"where({x} < {r}, {x}, {r})")),
    Function("max", 1, None, DIALECTS, _max, lambda *a: _fold_small(a, lambda r, x: f"where({r} < {x}, {x}, {r})")),
    Function("sum", 1, None, DIALECTS, _sum, lambda *a: _fold(a, lambda r, x: f"({r} + {x})")),
    Function("avg", 1, None, DIALECTS, lambda *a: _sum(*a) / len(a),
             lambda *a: f"({_fold(a, lambda r, x: f'({r} + {x})')} / {float(len(a))!r})"),
    Function("ndvi", 2, 2, DIALECTS, _ndvi,
             lambda r, n: f"where(abs({r} + {n}) < 1e-06, 0.0, ({n} - {r}) / ({n} + {r}))"),
    # BandMathX's vector functions (evaluate.py gives their meaning)
    Function("dotpr", 2, 2, _X),
    Function("vmin", 1, 1, _X),
    Function("vmax", 1, 1, _X),
    Function("mean", 1, 1, _X),
    Function("var", 1, 1, _X),
    Function("median", 1, 1, _X),
    Function("bands", 2, 2, _X),
    Function("cat", 1, None, _X),
    Function("vect2scal", 1, 1, _X),
    *(Function(f"v{name}", 1, 1, _X) for name in ("abs", "exp", "log", "log10", "sqrt", "cos", "sin", "tan",
                                                     "cosh", "sinh", "tanh")),
]}
FUNCTIONS["NDVI"] = FUNCTIONS["ndvi"]  # OTB registers both spellings


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean x?)`` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
