"""Pixel-wise expressions over lazy results: OTB's BandMath programs and Python operators, evaluated lazily.

An :class:`Expression` is a :class:`~eotensor.lazy.LazyRaster` whose pixels are an
:class:`~eotensor.expressions.Program` evaluated over its inputs' windows. The BandMath and BandMathX apps
build one from OTB's text; Python operators build one from trees (pyotb's style)::

    ndvi = (r[3] - r[2]) / (r[3] + r[2])         # a lazy 1-band result, nothing computed yet
    mask = eot.where(ndvi > 0.3, 1, 0)
    mask.write("mask.tif", "uint8")

Operators work band by band, a one-band operand broadcasting over the other's bands (as NumPy's band axis),
and numbers are constants. Chained operators (and band selections of their results) fold into one tree over
the original inputs, as pyotb folds them into one BandMath expression: a chain is evaluated in one pass
(NumExpr fuses its element-wise parts), in float64, then stored as float32 the way OTB's BandMath stores it
(±inf clamped to ±FLT_MAX): the bytes an ``otbcli_BandMath`` of the whole folded text gives. An app given an
expression as an image (``BandMath(il=[e])``, ``source(e)``) reads it as its float32 file, like any result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from eotensor.engine.tiling import TileShape, auto_tile_shape
from eotensor.errors import ParameterError
from eotensor.expressions import BANDMATH, BinOp, Call, Cond, Const, Node, Program, Unary, Var, to_otb_float32
from eotensor.expressions import parse as parse_expression
from eotensor.geometry import Grid, Window
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE
from eotensor.io.pixeltypes import to_pixel_type
from eotensor.lazy import PIXELWISE, BandSelection, LazyRaster, same_grid, upstream_tiles

__all__ = ["Expression", "where"]


class Expression(LazyRaster):
    """``program`` evaluated pixel by pixel over ``inputs`` (its ``im1``, ``im2``, ...), as float32 bands."""

    def __init__(self, program: Program, inputs: Sequence[LazyRaster], param: str = "il",
                 count: int | None = None) -> None:
        """``count``: the output band count when the trees are valid by construction (operators build one scalar
        tree per band over existing bands); otherwise the program is checked against the inputs, which runs it
        on one pixel."""
        inputs = list(inputs)
        if not inputs:
            raise ParameterError(f"{param}: an expression needs at least one input image")
        first = inputs[0]
        super().__init__(first.workers, first.ram_mb, first.scheduler)
        self.program = program
        self.inputs = inputs
        self._grid = same_grid([raster.grid for raster in inputs], param,
                               "pixel-wise expressions need images of one size")
        self.depth = max(_depth(output) for output in program.outputs)
        """Levels of the deepest output tree (operators fold expressions only up to :data:`FOLD_DEPTH`)."""
        self._count = program.check([raster.count for raster in inputs]) if count is None else count
        # Images used band by band (imXbY only) are read for those bands alone: the program is evaluated with
        # its references renumbered to the bands read.
        whole = {ref.image for ref in program.references if ref.band is None}
        self._bands = {k: sorted({ref.band for ref in program.references if ref.image == k})
                       for k in program.images_used if k not in whole}
        names = {f"im{k + 1}b{band + 1}": f"im{k + 1}b{j + 1}"
                 for k, bands in self._bands.items() for j, band in enumerate(bands)}
        self._evaluated = Program([_rename(o, names) for o in program.outputs], program.dialect,
                                  text=program.text, param=program.param) if names else program

    @classmethod
    def from_text(cls, text: str, inputs: Sequence[LazyRaster], dialect: str = BANDMATH,
                  param: str = "exp", images_param: str = "il") -> Expression:
        """OTB BandMath (or BandMathX) text over ``inputs``; a syntax error points at the column."""
        return cls(parse_expression(text, dialect, param=param), inputs, images_param)

    @property
    def grid(self) -> Grid:
        return self._grid

    @property
    def count(self) -> int:
        return self._count

    @property
    def token(self) -> str:
        return repr(("expression", self.program.dialect, str(self.program), [r.token for r in self.inputs]))

    @property
    def files(self) -> list[str]:
        return [path for raster in self.inputs for path in raster.files]

    @property
    def upstreams(self) -> list[LazyRaster]:
        return list(self.inputs)

    def tile_shape(self, block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TileShape:
        """Strips from the memory budget, counting float32 reads of the images used and float64 results; the
        first input's tiles instead when they are worth sharing (a model's) and fit that budget."""
        used = sum(len(self._bands[k]) if k in self._bands else self.inputs[k].count
                   for k in self.program.images_used)
        own = auto_tile_shape(self.grid, PIXELWISE, 4.0 * used + 16.0 * self.count, self.ram_mb, False, False, block)
        return upstream_tiles(self.inputs[0], own, block)

    def compute(self, window: Window) -> np.ndarray:
        images: list[np.ndarray | None] = [None] * len(self.inputs)
        for k in self.program.images_used:
            raster = self.inputs[k]
            values = raster.compute_bands(window, self._bands[k]) if k in self._bands else raster.tiles.read(window)
            images[k] = np.moveaxis(to_pixel_type(values, np.float32), 0, -1)
        values = self._evaluated.evaluate(images, window.row, window.col, shape=(window.height, window.width))
        return np.moveaxis(to_otb_float32(values), -1, 0)


# ---------------------------------------------------------------------------------------------- operators
FOLD_DEPTH = 100
"""Operators stop folding an expression deeper than this into the next one (it is then read as an image, as its
float32 file): Python's recursion limits printing and evaluating deeper trees (a sum of hundreds of bands)."""


def _depth(node: Node) -> int:
    """Levels of ``node``'s tree (iteratively: trees may be deep)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in item.children())
    return deepest


def _rename(node: Node, names: dict[str, str]) -> Node:
    """``node`` with its variables renamed (a chained expression's images renumbered in a larger list)."""
    if isinstance(node, Var):
        return dataclasses.replace(node, name=names.get(node.name, node.name))
    changes = {}
    for item in dataclasses.fields(node):
        value = getattr(node, item.name)
        if isinstance(value, Node):
            changes[item.name] = _rename(value, names)
        elif isinstance(value, tuple) and value and isinstance(value[0], Node):
            changes[item.name] = tuple(_rename(v, names) for v in value)
    return dataclasses.replace(node, **changes) if changes else node


def _index(inputs: list[LazyRaster], raster: LazyRaster) -> int:
    """1-based position of ``raster`` in ``inputs`` (appended when new; identity, not equality)."""
    for k, known in enumerate(inputs, start=1):
        if known is raster:
            return k
    inputs.append(raster)
    return len(inputs)


def _bands(value: Any, inputs: list[LazyRaster]) -> list[Node]:
    """One tree per band of ``value`` over ``inputs``: numbers are constants; a BandMath expression is inlined
    (its images renumbered); a band selection names bands of its upstream; any other result is an image whose
    bands are ``imKbJ``."""
    if isinstance(value, Expression) and value.program.dialect == BANDMATH and value.depth < FOLD_DEPTH:
        names = {f"im{k}b{b}": f"im{_index(inputs, raster)}b{b}"
                 for k, raster in enumerate(value.inputs, start=1) for b in range(1, raster.count + 1)}
        return [_rename(output, names) for output in value.program.outputs]
    if isinstance(value, BandSelection):  # bands of an image of the expression, not an image of their own
        upstream = _bands(value.upstream, inputs)
        return [upstream[b] for b in value.indexes]
    if isinstance(value, LazyRaster):
        k = _index(inputs, value)
        return [Var(f"im{k}b{b}") for b in range(1, value.count + 1)]
    if isinstance(value, (bool, np.bool_)):
        return [Const(float(value))]
    if isinstance(value, (int, float, np.integer, np.floating)):
        return [Const(float(value))]
    raise ParameterError(f"expression: {type(value).__name__} {value!r:.40} is not a lazy result or a number")


def _combine(operands: Sequence[list[Node]], what: str) -> int:
    """The band count of a band-wise operation: all equal, or 1 (broadcast)."""
    counts = {len(bands) for bands in operands} - {1}
    if len(counts) > 1:
        raise ParameterError(f"{what}: operands of {' and '.join(str(len(b)) for b in operands)} bands cannot be "
                             "combined band by band; select bands first (r[0], r[[0, 1]])")
    return counts.pop() if counts else 1


def _apply(build: Any, operands: Sequence[Any], what: str) -> Expression:
    """A new expression: ``build(*band trees)`` for each output band, over the operands' inputs."""
    inputs: list[LazyRaster] = []
    bands = [_bands(value, inputs) for value in operands]
    count = _combine(bands, what)
    outputs = [build(*(b[0] if len(b) == 1 else b[j] for b in bands)) for j in range(count)]
    return Expression(Program(outputs, BANDMATH, param="expression"), inputs, "expression", count=len(outputs))


def _binary(op: str, swap: bool = False) -> Any:
    def method(self: LazyRaster, other: Any) -> Expression:
        left, right = (other, self) if swap else (self, other)
        return _apply(lambda a, b: BinOp(op, a, b), (left, right), f"operator {op}")

    method.__name__ = f"__{'r' if swap else ''}{op}__"
    return method


def where(condition: Any, then: Any, otherwise: Any) -> Expression:
    """``then`` where ``condition`` is not 0, else ``otherwise`` (band by band; lazy results or numbers)."""
    return _apply(Cond, (condition, then, otherwise), "where")


OPERATORS = {
    "__add__": _binary("+"), "__radd__": _binary("+", True), "__sub__": _binary("-"),
    "__rsub__": _binary("-", True), "__mul__": _binary("*"), "__rmul__": _binary("*", True),
    "__truediv__": _binary("/"), "__rtruediv__": _binary("/", True), "__pow__": _binary("^"),
    "__rpow__": _binary("^", True), "__lt__": _binary("<"), "__le__": _binary("<="), "__gt__": _binary(">"),
    "__ge__": _binary(">="), "__eq__": _binary("=="), "__ne__": _binary("!="), "__and__": _binary("&&"),
    "__rand__": _binary("&&", True), "__or__": _binary("||"), "__ror__": _binary("||", True),
    "__neg__": lambda self: _apply(lambda a: Unary("-", a), (self,), "operator -"),
    "__pos__": lambda self: self,
    "__abs__": lambda self: _apply(lambda a: Call("abs", (a,)), (self,), "abs"),
}
"""LazyRaster's operators: :mod:`eotensor.lazy` installs a shim per name that imports this module on first use."""
