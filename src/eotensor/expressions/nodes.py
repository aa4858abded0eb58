"""The expression tree: small immutable nodes that the parser builds and Python code can build too.

Every node is a frozen dataclass, so trees compare and hash by value (two parses of the same text are
equal, and a tree can key a cache or a plan fingerprint). ``pos`` is the 1-based column of the node in the
text it was parsed from (0 when built in Python); it serves error messages only and takes no part in
equality. ``str(node)`` renders fully parenthesised text that parses back to a tree computing the same
values (a negative constant comes back as a negated one).

Python code builds trees with the constructors directly: numbers are wrapped in :class:`Const`, lists
become tuples, and an unknown operator is refused at once::

    BinOp("+", Var("red"), 1)                       # red + 1
    Cond(BinOp(">", Var("ndvi"), 0.3), 1, 0)        # ndvi > 0.3 ? 1 : 0
    Call("max", (Var("a"), Var("b"), 0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from eotensor.errors import ParameterError
from eotensor.expressions.functions import FUNCTIONS, suggest

#: Binary operators, in both dialects' spelling (``and``/``or`` parse to ``&&``/``||``; ``mult``,
#: ``div`` and ``pow`` are BandMathX's element-wise operators).
BINARY_OPERATORS = ("+", "-", "*", "/", "^", "<", ">", "<=", ">=", "==", "!=", "&&", "||", "mult", "div", "pow")
UNARY_OPERATORS = ("-", "+")

__all__ = ["BINARY_OPERATORS", "UNARY_OPERATORS", "BinOp", "Call", "Cond", "Const", "Node", "Transpose", "Unary",
           "Var", "Vector", "as_node", "variables_of"]


@dataclass(frozen=True)
class Node:
    """Base of every node; ``pos`` is the column it was parsed at (1-based; 0 when built in Python)."""

    pos: int = field(default=0, compare=False, repr=False, kw_only=True)

    def children(self) -> tuple[Node, ...]:
        """The direct sub-expressions, in evaluation order."""
        return ()


def as_node(value: Any) -> Node:
    """``value`` as a node: nodes pass through, real numbers become :class:`Const`."""
    if isinstance(value, Node):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(value, "__float__"):
        raise ParameterError(f"expression: expected a node or a number, got {value!r}")
    return Const(float(value))


def _set(node: Node, name: str, value: Any) -> None:
    object.__setattr__(node, name, value)


@dataclass(frozen=True)
class Const(Node):
    """A number (always held as a float, as muParser holds every value as a double)."""

    value: float

    def __post_init__(self) -> None:
        _set(self, "value", float(self.value))

    def __str__(self) -> str:
        if math.isfinite(self.value):
            text = repr(self.value)
            return f"({text})" if self.value < 0 or text.startswith("-") else text
        return "(1/0)" if self.value > 0 else "(-1/0)" if self.value < 0 else "(0/0)"


@dataclass(frozen=True)
class Var(Node):
    """A name bound at evaluation: ``im1b2``, ``im1`` (BandMathX), ``idxX``, ``idxY`` or any name of the caller's."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Unary(Node):
    """``-x`` or ``+x``."""

    op: str
    operand: Node

    def __post_init__(self) -> None:
        if self.op not in UNARY_OPERATORS:
            raise ParameterError(f'expression: unknown unary operator "{self.op}"; expected one of - +')
        _set(self, "operand", as_node(self.operand))

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def __str__(self) -> str:
        return f"({self.op}{self.operand})"


@dataclass(frozen=True)
class BinOp(Node):
    """``left op right`` for one of :data:`BINARY_OPERATORS`."""

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        if self.op not in BINARY_OPERATORS:
            raise ParameterError(f'expression: unknown operator "{self.op}"; expected one of '
                                 + " ".join(BINARY_OPERATORS))
        _set(self, "left", as_node(self.left))
        _set(self, "right", as_node(self.right))

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Cond(Node):
    """``test ? then : other``: ``then`` where ``test`` is not 0 (NaN counts as true, as in C)."""

    test: Node
    then: Node
    other: Node

    def __post_init__(self) -> None:
        for name in ("test", "then", "other"):
            _set(self, name, as_node(getattr(self, name)))

    def children(self) -> tuple[Node, ...]:
        return (self.test, self.then, self.other)

    def __str__(self) -> str:
        return f"({self.test} ? {self.then} : {self.other})"


@dataclass(frozen=True)
class Call(Node):
    """``name(args...)``; the function table (:mod:`eotensor.expressions.functions`) gives the meaning."""

    name: str
    args: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        function = FUNCTIONS.get(self.name)
        if function is None:
            raise ParameterError(f'expression: unknown function "{self.name}"{suggest(self.name, FUNCTIONS)}')
        _set(self, "args", tuple(as_node(arg) for arg in self.args))
        count = len(self.args)
        if count < function.min_args or function.max_args is not None and count > function.max_args:
            raise ParameterError(f"expression: {self.name} takes {function.arity()}, got {count}")

    def children(self) -> tuple[Node, ...]:
        return self.args

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class Vector(Node):
    """A BandMathX row literal ``{a, b, c}`` (1 x n; OTB reads ``{a; b}`` as the same row)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        _set(self, "items", tuple(as_node(item) for item in self.items))

    def children(self) -> tuple[Node, ...]:
        return self.items

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.items)) + "}"


@dataclass(frozen=True)
class Transpose(Node):
    """BandMathX's postfix ``'``: a 1 x n row becomes an n x 1 column and back."""

    operand: Node

    def __post_init__(self) -> None:
        _set(self, "operand", as_node(self.operand))

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def __str__(self) -> str:
        return f"({self.operand})'"


def variables_of(*nodes: Node) -> frozenset[str]:
    """The names of every :class:`Var` in the trees."""
    names: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            names.add(node.name)
        stack.extend(node.children())
    return frozenset(names)
