"""A parsed BandMath/BandMathX expression bound to an image list: references, band count, evaluation.

:func:`parse` gives a :class:`Program`; an app checks it against the images' band counts once
(:meth:`Program.check`: references and the output band count, before anything is read), reads only
:attr:`Program.images_used`, and evaluates window after window (:meth:`Program.evaluate`, which takes the
window's offset so ``idxX``/``idxY`` are indices in the full image and any tiling gives the same pixels).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.expressions.evaluate import Matrix, evaluate
from eotensor.expressions.functions import BANDMATH, BANDMATHX
from eotensor.expressions.nodes import Node, Var
from eotensor.expressions.parser import ExpressionError, fail, parse_outputs

__all__ = ["Program", "Reference", "parse", "to_otb_float32"]

_BAND = re.compile(r"im([1-9]\d*)b([1-9]\d*)")
_IMAGE = re.compile(r"im([1-9]\d*)")
_INDEXES = ("idxX", "idxY")
_UNSUPPORTED = re.compile(r"im[1-9]\d*(?:b[1-9]\d*)?(N\d+x\d+|Mini|Maxi|Mean|Sum|Var|PhyX|PhyY)")
_UNSUPPORTED_WHAT = {"N": "neighbourhoods", "Mini": "image statistics", "Maxi": "image statistics",
                     "Mean": "image statistics", "Sum": "image statistics", "Var": "image statistics",
                     "PhyX": "pixel spacings", "PhyY": "pixel spacings"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Reference:
    """A name that reads an image: ``image`` 0-based, ``band`` 0-based or None for the whole pixel."""

    name: str
    image: int
    band: int | None
    pos: int


def _walk(node: Node) -> Iterable[Node]:
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children())


class Program:
    """An expression's trees (one per output band group), its image references and how to evaluate it."""

    def __init__(self, outputs: Sequence[Node], dialect: str = BANDMATH, *, text: str | None = None,
                 param: str = "exp", names: Iterable[str] = ()) -> None:
        self.outputs = tuple(outputs)
        self.dialect, self.text, self.param = dialect, text, param
        self.names = frozenset(names)
        references: dict[str, Reference] = {}
        for output in self.outputs:
            for node in _walk(output):
                if isinstance(node, Var) and node.name not in references:
                    reference = self._reference(node)
                    if reference is not None:
                        references[node.name] = reference
        self.references = tuple(sorted(references.values(), key=lambda r: (r.image, r.band or 0, r.name)))

    def _reference(self, node: Var) -> Reference | None:
        name = node.name
        if name in self.names or name in _INDEXES:
            return None
        if match := _BAND.fullmatch(name):
            return Reference(name, int(match[1]) - 1, int(match[2]) - 1, node.pos)
        if self.dialect == BANDMATHX and (match := _IMAGE.fullmatch(name)):
            return Reference(name, int(match[1]) - 1, None, node.pos)
        if match := _UNSUPPORTED.fullmatch(name):
            what = _UNSUPPORTED_WHAT["N" if match[1].startswith("N") else match[1]]
            raise self._error(f'"{name}" ({what}) is not supported by eotensor', node.pos)
        expected = "imXbY, imX, idxX or idxY" if self.dialect == BANDMATHX else "imXbY, idxX or idxY"
        hint = ("; a whole pixel imX is BandMathX syntax" if self.dialect == BANDMATH and _IMAGE.fullmatch(name)
                else f"; expected {expected}")
        raise self._error(f'unknown variable "{name}"{hint}', node.pos)

    def _error(self, message: str, pos: int = 0) -> ExpressionError:
        return fail(self.param, message, self.text, pos)

    def __str__(self) -> str:
        """Canonical text (fully parenthesised) that parses back to a program computing the same values."""
        return "; ".join(map(str, self.outputs))

    def __repr__(self) -> str:
        return f"Program({str(self)!r}, dialect={self.dialect!r})"

    @property
    def images_used(self) -> tuple[int, ...]:
        """0-based positions, in the image list, of the images the expression reads (others need not be read)."""
        return tuple(sorted({reference.image for reference in self.references}))

    def check_references(self, band_counts: Sequence[int]) -> None:
        """Refuse a reference to an image or band that does not exist (names it and says how many exist)."""
        for ref in self.references:
            if ref.image >= len(band_counts):
                many = len(band_counts) != 1
                given = f"{len(band_counts)} image{'s' * many} {'are' if many else 'is'}"
                raise self._error(f"{ref.name} refers to image {ref.image + 1}, but {given} given", ref.pos)
            count = band_counts[ref.image]
            if count is None:
                raise self._error(f"{ref.name} refers to image {ref.image + 1}, which was not given", ref.pos)
            if ref.band is not None and ref.band >= count:
                raise self._error(f"{ref.name} refers to band {ref.band + 1} of image {ref.image + 1}, "
                                  f"which has {count} band{'s' * (count != 1)}", ref.pos)

    def check(self, band_counts: Sequence[int]) -> int:
        """Validate against the images' band counts and return the number of output bands.

        References are checked first; then the program runs once on one pixel of zeros, so every shape
        error (a matrix product of mismatched sizes, an output that is a column) is found before any read.
        """
        self.check_references(band_counts)
        pixel = [None if count is None else np.zeros((1, 1, count), np.float32) for count in band_counts]
        return self.evaluate(pixel, shape=(1, 1)).shape[-1]

    def bind(self, images: Sequence[np.ndarray | None], row0: int = 0, col0: int = 0,
             shape: tuple[int, int] | None = None) -> dict[str, Any]:
        """The variables of one window: ``imXbY`` (a band), ``imX`` (a :class:`Matrix` row), ``idxX``/``idxY``."""
        self.check_references([None if image is None else image.shape[-1] for image in images])
        if shape is None:
            given = [images[i] for i in self.images_used] or [image for image in images if image is not None]
            if not given:
                raise ExpressionError(f"{self.param}: the expression reads no image; give the window's shape")
            shape = given[0].shape[:2]
        rows, cols = shape
        variables: dict[str, Any] = {
            "idxX": np.arange(col0, col0 + cols, dtype=np.float64)[np.newaxis, :],
            "idxY": np.arange(row0, row0 + rows, dtype=np.float64)[:, np.newaxis],
        }
        for ref in self.references:
            image = images[ref.image]
            if image.shape[:2] != (rows, cols):
                raise ExpressionError(f"{self.param}: image {ref.image + 1} is {image.shape[0]}x{image.shape[1]} "
                                      f"pixels, expected {rows}x{cols} like the others")
            if ref.band is None and image.shape[-1] > 1:  # a 1xN row (one band: a scalar, as muParserX has it)
                variables[ref.name] = Matrix(image.astype(np.float64)[..., np.newaxis, :])
            else:  # float32 stays: NumExpr widens it block by block, the NumPy path when it looks the name up
                variables[ref.name] = image[..., ref.band or 0]
        return variables

    def evaluate(self, images: Sequence[np.ndarray | None], row0: int = 0, col0: int = 0, *,
                 shape: tuple[int, int] | None = None, variables: dict[str, Any] | None = None,
                 use_numexpr: bool = True) -> np.ndarray:
        """The output of one window as float64 (rows, cols, bands).

        ``images`` are (rows, cols, bands) arrays in the order of the image list (``None`` for one the
        expression does not read); ``row0``/``col0`` place the window in the full image (``idxY``/``idxX``);
        ``shape`` is needed only when no image is read; ``variables`` binds the caller's extra names.
        """
        bound = self.bind(images, row0, col0, shape)
        rows, cols = (bound["idxY"].shape[0], bound["idxX"].shape[1])
        bound.update(variables or {})
        values = [evaluate(output, bound, param=self.param, text=self.text,
                           use_numexpr=use_numexpr) for output in self.outputs]
        widths = []
        for number, (output, value) in enumerate(zip(self.outputs, values), 1):
            if isinstance(value, Matrix):
                if value.dims[0] != 1:
                    which = f"output {number}" if len(self.outputs) > 1 else "the result"
                    raise fail(self.param, f"{which} is {value.describe()}; each output must be a scalar or a "
                               "1xN row (transpose a column with ')", self.text, output.pos)
                widths.append(value.dims[1])
            else:
                widths.append(1)
        only = values[0]
        if len(values) == 1 and not isinstance(only, Matrix) and np.shape(only) == (rows, cols) and \
                only.dtype == np.float64 and not any(np.may_share_memory(only, value) for value in bound.values()
                                                     if isinstance(value, np.ndarray)):
            return only[..., np.newaxis]  # computed here, so already a new array: no copy
        result = np.empty((rows, cols, sum(widths)), np.float64)
        band = 0
        for value, width in zip(values, widths):
            result[..., band:band + width] = value.data[..., 0, :] if isinstance(value, Matrix) else \
                np.asarray(value)[..., np.newaxis]
            band += width
        return result


def parse(text: str, dialect: str = BANDMATH, *, param: str = "exp", names: Iterable[str] = ()) -> Program:
    """Parse OTB BandMath (``dialect="bandmath"``) or BandMathX (``"bandmathx"``) text into a :class:`Program`.

    ``param`` names the parameter in error messages; ``names`` are extra variable names the caller binds
    at evaluation (BandMathX's ``-incontext`` constants, a chain's named inputs). Errors are one line and
    point at the column: ``exp: unexpected ")" at column 9: im1b1 + )``.
    """
    outputs = parse_outputs(text, dialect, param)
    return Program(outputs, dialect, text=text, param=param, names=names)


def to_otb_float32(values: np.ndarray) -> np.ndarray:
    """What OTB's BandMath filters store: float32, with ±inf and out-of-range values clamped to ±FLT_MAX.

    ``otbcli_BandMath -exp "im1b1/0"`` writes 3.4028235e38, not inf, whatever the output type; NaN stays.
    Apply this before casting to the output pixel type to reproduce OTB.
    """
    return np.clip(values, -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)

