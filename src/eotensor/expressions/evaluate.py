"""Tree → arrays: one vectorised pass over a whole window, NumExpr for the element-wise parts.

Values are float64. A per-pixel scalar is an array that broadcasts to the window (a constant is a 0-d
float64, ``idxX`` a single row); a BandMathX vector or matrix is a :class:`Matrix` whose data end in two
axes (m, n) after the window's axes: a pixel ``im1`` of a 4-band image is 1 x 4. A 1 x 1 result collapses
to a scalar, as muParserX reads it (``sqrt(im1*im1')`` is a scalar).

Every maximal element-wise subtree over scalars (arithmetic, comparisons, logic, ``?:`` and the functions
with a NumExpr template) is rendered to one NumExpr string and run in one call, without the temporaries
NumPy would allocate per operator; the rest (matrix products, vector functions, or everything when NumExpr
is not installed: it is the optional ``eotensor[fast]``) runs in NumPy. Both paths compute the same float
arithmetic; transcendental functions may differ in the last bit between NumExpr's and NumPy's libm calls.

Semantics are muParser's: comparisons and ``&&``/``||`` give 1 or 0, a condition is true where it is not 0
(NaN is true), division by zero gives ±inf or NaN, no error is raised for any value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from eotensor.expressions.functions import FUNCTIONS
from eotensor.expressions.nodes import BinOp, Call, Cond, Const, Node, Transpose, Unary, Var, Vector
from eotensor.expressions.parser import ExpressionError, fail

__all__ = ["Matrix", "evaluate"]

_COMPARE = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "==": np.equal,
            "!=": np.not_equal}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
               "mult": np.multiply, "div": np.divide, "pow": np.power}
_NE_OPERATOR = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**", "mult": "*", "div": "/", "pow": "**"}
_MAX_NE_VARIABLES = 24  # NumExpr compiles at most a few dozen operands; larger subtrees are split


class Matrix:
    """A BandMathX vector or matrix per pixel: ``data`` has the window's axes then (rows, cols)."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    @property
    def dims(self) -> tuple[int, int]:
        return self.data.shape[-2], self.data.shape[-1]

    def describe(self) -> str:
        m, n = self.dims
        return f"a {m}x{n} {'row' if m == 1 else 'column' if n == 1 else 'matrix'}"


def _matrix(data: np.ndarray) -> Matrix | np.ndarray:
    """``data`` as a :class:`Matrix`, or a scalar when it is 1 x 1."""
    return data[..., 0, 0] if data.shape[-2:] == (1, 1) else Matrix(data)


def _as_data(value: Any) -> np.ndarray:
    """Matrix data, a scalar broadcast as 1 x 1."""
    return value.data if isinstance(value, Matrix) else np.asarray(value)[..., np.newaxis, np.newaxis]


def _numexpr() -> Any:
    try:
        import numexpr
    except ImportError:  # eotensor[fast] not installed: NumPy does it all
        return None
    return numexpr


def _bind(key: str, value: Any, local: dict[str, Any], names: dict[str, str]) -> str | None:
    """The NumExpr name of ``value`` (one per key), or None once a subtree has too many operands."""
    if key not in names:
        if len(names) >= _MAX_NE_VARIABLES:
            return None
        names[key] = f"v{len(names)}"
        local[names[key]] = value
    return names[key]


def _one_operation(node: Node) -> bool:
    """Whether ``node`` is one operator on leaves: one NumPy ufunc call, faster than a NumExpr call."""
    return isinstance(node, BinOp | Unary) and all(isinstance(child, Const | Var) for child in node.children())


def _describe(value: Any) -> str:
    return value.describe() if isinstance(value, Matrix) else "a scalar"


class _Evaluator:
    """One evaluation: ``variables`` by name, and where errors point."""

    def __init__(self, variables: Mapping[str, Any], param: str, text: str | None, use_numexpr: bool) -> None:
        self.variables, self.param, self.text = variables, param, text
        self.widened: dict[str, Any] = {}
        self.ne = _numexpr() if use_numexpr else None

    def error(self, message: str, node: Node) -> ExpressionError:
        return fail(self.param, message, self.text if node.pos else None, node.pos)

    def lookup(self, node: Var) -> Any:
        """The variable as float64 (a float32 band widened once per evaluation, however often it is named)."""
        if node.name not in self.widened:
            try:
                value = self.variables[node.name]
            except KeyError:
                raise self.error(f'unknown variable "{node.name}"', node) from None
            self.widened[node.name] = value if isinstance(value, Matrix) else np.asarray(value, np.float64)
        return self.widened[node.name]

    # -- NumExpr: the text of an element-wise subtree, or None when some part is not element-wise

    def source(self, node: Node, local: dict[str, Any], names: dict[str, str]) -> str | None:
        if isinstance(node, Const):  # bound, not written: NumExpr folds literals in Python (x / 0.0 raises)
            return _bind(f"const:{node.value!r}", np.float64(node.value), local, names)
        if isinstance(node, Var):
            value = self.variables.get(node.name)
            if value is None:
                self.lookup(node)  # raises: unknown variable
            if isinstance(value, Matrix):
                return None
            value = np.asarray(value)
            name = _bind(node.name, value, local, names)
            if value.dtype == np.float64 or name is None:
                return name
            # a float32 band is read as it is and widened block by block inside NumExpr (no float64 copy of
            # the window); "* 1.0" forces that even where no other operand is float64, and keeps -0.0 and NaN
            one = self.source(Const(1.0), local, names)
            return None if one is None else f"({name} * {one})"
        if isinstance(node, Unary):
            inner = self.source(node.operand, local, names)
            if inner is None or node.op == "+":
                return inner
            return f"(-{inner})"
        if not isinstance(node, BinOp | Cond | Call) or isinstance(node, Call) and FUNCTIONS[node.name].numexpr is None:
            return None
        parts = []
        for child in node.children():
            part = self.source(child, local, names)
            if part is None:
                return None
            parts.append(part)
        if isinstance(node, Cond):
            return f"where({parts[0]} != 0, {parts[1]}, {parts[2]})"
        if isinstance(node, Call):
            text = FUNCTIONS[node.name].numexpr(*parts)
            return None if text is None else f"({text})"
        left, right = parts
        if node.op in _COMPARE:
            return f"where({left} {node.op} {right}, 1.0, 0.0)"
        if node.op in ("&&", "||"):
            joint = "&" if node.op == "&&" else "|"
            return f"where(({left} != 0) {joint} ({right} != 0), 1.0, 0.0)"
        return f"({left} {_NE_OPERATOR[node.op]} {right})"

    # -- evaluation

    def value(self, node: Node) -> Any:
        if self.ne is not None and not isinstance(node, Const | Var) and not _one_operation(node):
            local: dict[str, Any] = {}
            text = self.source(node, local, {})
            if text is not None:
                return self.ne.evaluate(text, local_dict=local, global_dict={})
        return self.numpy(node)

    def numpy(self, node: Node) -> Any:
        if isinstance(node, Const):
            return np.float64(node.value)
        if isinstance(node, Var):
            return self.lookup(node)
        if isinstance(node, Unary):
            operand = self.value(node.operand)
            if node.op == "+":
                return operand
            return Matrix(-operand.data) if isinstance(operand, Matrix) else np.negative(operand)
        if isinstance(node, BinOp):
            return self.binary(node, self.operand(node.left), self.operand(node.right))
        if isinstance(node, Cond):
            return self.condition(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Vector):
            items = [self.value(item) for item in node.items]
            for item, value in zip(node.items, items):
                if isinstance(value, Matrix):
                    raise self.error(f"a {{...}} row holds scalars, got {value.describe()}", item)
            return _matrix(np.stack(np.broadcast_arrays(*items), axis=-1)[..., np.newaxis, :])
        if isinstance(node, Transpose):
            operand = self.value(node.operand)
            return Matrix(np.swapaxes(operand.data, -1, -2)) if isinstance(operand, Matrix) else operand
        raise ExpressionError(f"{self.param}: cannot evaluate {type(node).__name__} nodes")

    def operand(self, node: Node) -> Any:
        """An operator's operand: a band as it is (the operator widens it as it goes), anything else valued."""
        if isinstance(node, Var) and node.name in self.variables and not isinstance(self.variables[node.name], Matrix):
            return np.asarray(self.variables[node.name])
        return self.value(node)

    def binary(self, node: BinOp, left: Any, right: Any) -> Any:
        op = node.op
        if not isinstance(left, Matrix) and not isinstance(right, Matrix):
            if op in _COMPARE:
                return _COMPARE[op](left, right).astype(np.float64)
            if op == "&&":
                return ((left != 0) & (right != 0)).astype(np.float64)
            if op == "||":
                return ((left != 0) | (right != 0)).astype(np.float64)
            return _ARITHMETIC[op](left, right, dtype=np.float64)  # float32 operands: float64 arithmetic
        shapes = f"{_describe(left)} {op} {_describe(right)}"
        if op in _COMPARE or op in ("&&", "||", "^"):
            hint = "; use pow for element-wise powers" if op == "^" else ""
            raise self.error(f"{op} takes scalars, got {shapes}{hint}", node)
        if op == "*" and isinstance(left, Matrix) and isinstance(right, Matrix):
            if left.dims[1] != right.dims[0]:
                raise self.error(f"matrix dimension error: {shapes} (a pixel imX is a 1xN row; "
                                 "use ' to transpose or mult for element-wise products)", node)
            return _matrix(np.matmul(left.data, right.data))
        if op == "/" and isinstance(left, Matrix) and isinstance(right, Matrix):
            raise self.error(f"/ divides by a scalar, got {shapes}; use div for element-wise division", node)
        if isinstance(left, Matrix) and isinstance(right, Matrix) and left.dims != right.dims:
            raise self.error(f"matrix dimension error: {shapes}", node)
        return _matrix(_ARITHMETIC[op](_as_data(left), _as_data(right)))

    def condition(self, node: Cond) -> Any:
        test = self.value(node.test)
        if isinstance(test, Matrix):
            raise self.error(f"the condition of ?: must be a scalar, got {test.describe()}", node)
        then, other = self.value(node.then), self.value(node.other)
        if isinstance(then, Matrix) or isinstance(other, Matrix):
            if isinstance(then, Matrix) and isinstance(other, Matrix) and then.dims != other.dims:
                raise self.error(f"the branches of ?: differ: {then.describe()} and {other.describe()}", node)
            return _matrix(np.where(_as_data(test) != 0, _as_data(then), _as_data(other)))
        return np.where(test != 0, then, other)

    def call(self, node: Call) -> Any:
        function = FUNCTIONS[node.name]
        args = [self.value(arg) for arg in node.args]
        if function.elementwise:
            for arg, value in zip(node.args, args):
                if isinstance(value, Matrix):
                    vector = f"v{function.name}"
                    hint = f"; use {vector} for element-wise values" if vector in FUNCTIONS else ""
                    raise self.error(f"{node.name} takes scalars, got {value.describe()}{hint}", arg)
            return function.numpy(*args)
        return _VECTOR_FUNCTIONS[function.name](self, node, args)


# -- BandMathX's vector functions: (evaluator, node, argument values) -> value


def _row(ev: _Evaluator, node: Node, value: Any) -> np.ndarray:
    """The elements of a scalar or a row (…, n); anything taller is an error."""
    data = _as_data(value)
    if data.shape[-2] != 1:
        raise ev.error(f"expects a scalar or a row, got {_describe(value)}", node)
    return data[..., 0, :]


def _dotpr(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
    left, right = (_as_data(arg) for arg in args)
    if left.shape[-2:] != right.shape[-2:]:
        raise ev.error(f"dotpr needs two vectors of one size, got {_describe(args[0])} and "
                       f"{_describe(args[1])}", node)
    size = left.shape[-2] * left.shape[-1]  # summed in order, as OTB's loop (and a row times a column) does
    flat = (left.reshape(left.shape[:-2] + (1, size)), right.reshape(right.shape[:-2] + (size, 1)))
    return np.matmul(*flat)[..., 0, 0]


def _reduce(reduce: Callable[[np.ndarray], np.ndarray]) -> Callable[[_Evaluator, Call, list[Any]], Any]:
    def apply(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
        return reduce(_row(ev, node.args[0], args[0]))

    return apply


def _median(row: np.ndarray) -> np.ndarray:
    return np.sort(row, axis=-1)[..., row.shape[-1] // 2]  # OTB takes the upper middle of an even count


def _variance(row: np.ndarray) -> np.ndarray:
    return np.mean((row - np.mean(row, axis=-1, keepdims=True)) ** 2, axis=-1)


def _bands(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
    row = _row(ev, node.args[0], args[0])
    spec = node.args[1]
    items = spec.items if isinstance(spec, Vector) else (spec,)
    picks = []
    for item in items:
        number = item.value if isinstance(item, Const) else None
        if number is None or not float(number).is_integer() or not 1 <= number <= row.shape[-1]:
            raise ev.error(f"bands() takes band numbers 1 to {row.shape[-1]} written as numbers, "
                           f"like bands(im1, {{1, 3}})", item)
        picks.append(int(number) - 1)
    return _matrix(row[..., np.newaxis, picks])


def _cat(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
    rows = [_row(ev, arg, value) for arg, value in zip(node.args, args)]
    shape = np.broadcast_shapes(*(row.shape[:-1] for row in rows))
    return _matrix(np.concatenate([np.broadcast_to(row, shape + row.shape[-1:]) for row in rows],
                                  axis=-1)[..., np.newaxis, :])


def _vect2scal(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
    if isinstance(args[0], Matrix):
        raise ev.error(f"vect2scal takes a 1x1 value, got {args[0].describe()}", node.args[0])
    return args[0]


def _elementwise(ufunc: Callable[[np.ndarray], np.ndarray]) -> Callable[[_Evaluator, Call, list[Any]], Any]:
    def apply(ev: _Evaluator, node: Call, args: list[Any]) -> Any:
        value = args[0]
        return Matrix(ufunc(value.data)) if isinstance(value, Matrix) else ufunc(value)

    return apply


_VECTOR_FUNCTIONS: dict[str, Callable[[_Evaluator, Call, list[Any]], Any]] = {
    "dotpr": _dotpr,
    "vmin": _reduce(lambda row: np.min(row, axis=-1)),
    "vmax": _reduce(lambda row: np.max(row, axis=-1)),  # OTB starts from DBL_MIN: 0 where all are negative
    "mean": _reduce(lambda row: np.mean(row, axis=-1)),
    "var": _reduce(_variance),
    "median": _reduce(_median),
    "bands": _bands,
    "cat": _cat,
    "vect2scal": _vect2scal,
    **{f"v{name}": _elementwise(FUNCTIONS[name].numpy) for name in (
        "abs", "exp", "log", "log10", "sqrt", "cos", "sin", "tan", "cosh", "sinh", "tanh")},
}


def evaluate(node: Node, variables: Mapping[str, Any], *, param: str = "exp",
             text: str | None = None, use_numexpr: bool = True) -> Any:
    """The value of ``node`` with each :class:`~eotensor.expressions.nodes.Var` bound by name.

    ``variables`` maps names to arrays (broadcast together element-wise, any shapes NumPy broadcasts),
    numbers, or :class:`Matrix` values (BandMathX vectors). Returns a float64 array (or a 0-d one when no
    variable is an array) or a :class:`Matrix`. ``text`` (what the tree was parsed from) lets errors show
    the column. ``use_numexpr=False`` runs everything in NumPy (the tests compare both paths). Both
    dialects evaluate alike: the dialect only decides what the parser accepts.
    """
    evaluator = _Evaluator(variables, param, text, use_numexpr)
    with np.errstate(all="ignore"):
        return evaluator.value(node)
