"""OTB's BandMath and BandMathX expressions, parsed into a safe tree and evaluated over whole windows.

Text is tokenized and parsed (never ``eval``-ed) into immutable nodes; a :class:`Program` checks the
references against the images' band counts, tells which images it reads and evaluates windows with NumPy,
fusing element-wise subtrees into NumExpr calls when NumExpr is installed. Python code can build the same
trees with the node constructors and evaluate them with :func:`evaluate`, binding variables by name::

    program = parse("im1b4 > 0 ? ndvi(im1b3, im1b4) : 0")
    program.check([4])                      # -> 1 output band
    program.evaluate([window], row0, col0)  # float64 (rows, cols, 1)

    evaluate(Cond(BinOp(">", Var("a"), 3), Var("a"), 0), {"a": array})
"""

from eotensor.expressions.evaluate import Matrix, evaluate
from eotensor.expressions.functions import BANDMATH, BANDMATHX, FUNCTIONS, Function
from eotensor.expressions.nodes import (
    BinOp,
    Call,
    Cond,
    Const,
    Node,
    Transpose,
    Unary,
    Var,
    Vector,
    as_node,
    variables_of,
)
from eotensor.expressions.parser import ExpressionError, parse_outputs, tokenize
from eotensor.expressions.program import Program, Reference, parse, to_otb_float32

__all__ = [
    "BANDMATH", "BANDMATHX", "FUNCTIONS", "BinOp", "Call", "Cond", "Const", "ExpressionError", "Function", "Matrix",
    "Node", "Program", "Reference", "Transpose", "Unary", "Var", "Vector", "as_node", "evaluate", "parse",
    "parse_outputs", "to_otb_float32", "tokenize", "variables_of",
]
