"""BandMath / BandMathX expressions: parsing, precedence, every function, matrices, errors, and random trees.

The random-tree property renders a tree to text with the fewest parentheses this file's own precedence
table allows, parses it back (the same tree must come out) and compares the evaluator with an independent
NumPy evaluation of the tree written here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eotensor.errors import ParameterError
from eotensor.expressions import (
    FUNCTIONS,
    BinOp,
    Call,
    Cond,
    Const,
    ExpressionError,
    Matrix,
    Unary,
    Var,
    Vector,
    evaluate,
    parse,
    to_otb_float32,
    variables_of,
)

RNG = np.random.default_rng(7)
IM1 = RNG.uniform(-3, 3, (5, 6, 4)).astype(np.float32)
IM2 = RNG.uniform(0.1, 4, (5, 6, 3)).astype(np.float32)
IM1[0, 0] = 0.0  # zeros for division, ndvi and logic cases
IM2[0, 0, 0] = 0.0


def run(text: str, dialect: str = "bandmath", images=(IM1, IM2), **kwargs) -> np.ndarray:
    return parse(text, dialect).evaluate(list(images), **kwargs)


def b(image: np.ndarray, band: int) -> np.ndarray:
    return image[..., band - 1].astype(np.float64)


# -- precedence and associativity: each value below was checked with otbcli_BandMath 8.1 (muParser 2.3.3)

@pytest.mark.parametrize("text, value", [
    ("-2^2", -4), ("2^3^2", 512), ("2^-1", 0.5), ("2*-3", -6), ("+2", 2), ("2 ^ 2 * 3", 12),
    ("1<2<3", 1), ("3 == 3 > 0", 1), ("1 || 0 && 0", 1), ("0 && 1 || 1", 1),
    ("1 + 1 and 0", 0), ("1 || 0 and 0", 0), ("0 and 1 ? 1 : 1", 1), ("1 or 0 and 0", 0), ("0 and 1 == 0", 0),
    ("1 ? 2 : 3 ? 4 : 5", 2), ("0 ? 2 : 0 ? 4 : 5", 5), ("1 ? 0 : 1 + 5", 0), ("0 || 1 ? 5 : 6", 5),
    ("rint(2.5)", 3), ("rint(-0.5)", 0), ("rint(-1.5)", -1), ("rint(-2.5)", -2), ("log(100)", math.log(100)),
    ("ln(_e)", 1), ("log2(8) + log10(100)", 5), ("sign(-3)", -1), ("avg(1, 2)", 1.5), ("sum(1,2,3)", 6),
    ("min(3, 1, 2)", 1), ("max(1)", 1), ("ndvi(0, 0)", 0), ("ndvi(1, -1)", 0), ("1e3 + .5 + 5.", 1005.5),
    ("_pi", math.pi), ("3!=3", 0), ("1 ?2:3", 2), ("(0/0) && 1", 1), ("(0/0) ? 1 : 2", 1), ("sign(0/0)", 0),
])
def test_bandmath_precedence_and_values(text, value):
    np.testing.assert_array_equal(run(text), np.full((5, 6, 1), value, np.float64))


def test_pixel_variables_and_indexes_take_the_window_offset():
    out = run("im1b2 * 10 + im2b3")
    np.testing.assert_array_equal(out[..., 0], b(IM1, 2) * 10 + b(IM2, 3))
    out = run("idxX * 100 + idxY", row0=7, col0=3)
    rows, cols = np.mgrid[7:12, 3:9]
    np.testing.assert_array_equal(out[..., 0], cols * 100.0 + rows)


def test_tiles_give_the_whole_window():
    program = parse("im1b1 > 0 ? idxX + im2b2 : max(idxY, im1b3) / 2", "bandmath")
    whole = program.evaluate([IM1, IM2])
    tiled = np.empty_like(whole)
    for r in range(0, 5, 2):
        for c in range(0, 6, 4):
            tiled[r:r + 2, c:c + 4] = program.evaluate([IM1[r:r + 2, c:c + 4], IM2[r:r + 2, c:c + 4]], r, c)
    np.testing.assert_array_equal(tiled, whole)


def test_division_by_zero_and_comparisons_are_float_arithmetic():
    out = run("im1b1 / 0; 0 / 0; (im1b1 > 0) + (im1b1 <= 0) * 2", "bandmathx")
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out[..., 0], b(IM1, 1) / 0.0)
    assert np.isnan(out[..., 1]).all()
    np.testing.assert_array_equal(out[..., 2], np.where(b(IM1, 1) > 0, 1.0, 2.0))
    clamped = to_otb_float32(out[..., :2])
    assert clamped.dtype == np.float32 and np.isnan(clamped[..., 1]).all()
    first = clamped[..., 0]
    assert np.isnan(first[0, 0]) and np.isnan(first).sum() == 1  # IM1 is 0 there: 0/0
    np.testing.assert_array_equal(first[1:], np.sign(IM1[1:, :, 0]) * np.finfo(np.float32).max)  # ±inf -> ±FLT_MAX


# -- every function against NumPy written here

def _ref_min(*xs):
    r = xs[0]
    for x in xs[1:]:
        r = np.where(x < r, x, r)
    return r


def _ref_max(*xs):
    r = xs[0]
    for x in xs[1:]:
        r = np.where(r < x, x, r)
    return r


REFERENCE = {
    "abs": np.fabs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "ln": np.log, "log2": np.log2,
    "log10": np.log10, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "rint": lambda x: np.floor(x + 0.5), "sign": np.sign,
    "atan2": np.arctan2, "min": _ref_min, "max": _ref_max, "sum": lambda *x: sum(x[1:], x[0]),
    "avg": lambda *x: sum(x[1:], x[0]) / len(x),
    "ndvi": lambda r, n: np.where(np.abs(r + n) < 1e-6, 0.0, (n - r) / (n + r)),
}
REFERENCE["NDVI"] = REFERENCE["ndvi"]
SCALAR_FUNCTIONS = sorted(name for name, f in FUNCTIONS.items() if f.elementwise)


def test_every_scalar_function_has_a_reference():
    assert set(SCALAR_FUNCTIONS) == set(REFERENCE)


@pytest.mark.parametrize("use_numexpr", [True, False])
@pytest.mark.parametrize("name", SCALAR_FUNCTIONS)
def test_every_function(name, use_numexpr):
    function = FUNCTIONS[name]
    count = function.min_args if function.max_args is not None else 3
    args = [b(IM1, k + 1) for k in range(count)]
    text = f"{name}({', '.join(f'im1b{k + 1}' for k in range(count))})"
    with np.errstate(all="ignore"):
        expected = REFERENCE[name](*args)
    for dialect in function.dialects:
        out = run(text, dialect, use_numexpr=use_numexpr)[..., 0]
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=0, equal_nan=True)


def test_min_max_keep_std_min_order_with_nan():
    # std::min(a, b) is (b < a) ? b : a: a NaN first stays, a NaN later is skipped (muParser folds left);
    # otbcli_BandMath 8.1 gives these five values
    out = run("min(0/0, 1); min(1, 0/0); max(0/0, 1); max(1, 0/0); sign(0/0)", "bandmathx")[0, 0]
    np.testing.assert_array_equal(out, [np.nan, 1, np.nan, 1, 0])


# -- BandMathX: pixels are 1xN rows, * is the matrix product

def rows(image):
    return image.astype(np.float64)


@pytest.mark.parametrize("use_numexpr", [True, False])
def test_bandmathx_decision_12_rounds(use_numexpr):
    x1, x2 = rows(IM1), rows(IM1[..., ::-1] * 2)
    images = [IM1, np.ascontiguousarray(IM1[..., ::-1] * 2)]
    exp = "im1+{1;1;1;1}; sqrt(im1*im1'); im1*im2'; dotpr(im1,im2); ((im1'*im2)*{1, 1, 1, 1}')'"
    program = parse(exp, "bandmathx")
    assert program.check([4, 4]) == 4 + 1 + 1 + 1 + 4
    out = program.evaluate(images, use_numexpr=use_numexpr)
    np.testing.assert_allclose(out[..., 0:4], x1 + 1, rtol=1e-15)
    np.testing.assert_allclose(out[..., 4], np.sqrt(np.einsum("rcb,rcb->rc", x1, x1)), rtol=1e-14)
    np.testing.assert_allclose(out[..., 5], np.einsum("rcb,rcb->rc", x1, x2), rtol=1e-14)
    np.testing.assert_allclose(out[..., 6], out[..., 5], rtol=1e-14)
    np.testing.assert_allclose(out[..., 7:11], x1 * x2.sum(-1, keepdims=True), rtol=1e-13)


def test_bandmathx_vector_functions():
    x1, x2 = rows(IM1), rows(IM2)
    out = run("im1 mult bands(im1, {4,3,2,1}); im2 div im2b1; im2 pow {2,2,2}; vmin(im1); vmax(im1); mean(im1);"
              " var(im1); median(im1); median(im2); cat(im1b1, im2, 7); vsqrt(im2); vabs(-im1); vect2scal(im1*im1');"
              " bands(im1, {2}) + 1; -im2; im1b1 mult 2",
              "bandmathx")
    with np.errstate(all="ignore"):
        expected = np.concatenate([
            x1 * x1[..., ::-1], x2 / x2[..., :1], x2 ** 2, x1.min(-1, keepdims=True), x1.max(-1, keepdims=True),
            x1.mean(-1, keepdims=True), x1.var(-1, keepdims=True), np.sort(x1, -1)[..., 2:3],
            np.sort(x2, -1)[..., 1:2], x1[..., :1], x2, np.full(x1.shape[:2] + (1,), 7.0), np.sqrt(x2),
            np.abs(x1), (x1 * x1).sum(-1, keepdims=True), x1[..., 1:2] + 1, -x2, x1[..., :1] * 2],
            axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-14, equal_nan=True)


def test_bandmathx_semicolons_in_braces_are_commas_as_in_otb():
    # OTB 8.1 replaces every ";" by "," inside cat(...): {1;2} is the row {1,2}, never a column
    assert parse("{1;2} + im1b1", "bandmathx").outputs == parse("{1,2} + im1b1", "bandmathx").outputs
    with pytest.raises(ExpressionError, match=r"matrix dimension error: a 1x2 row \* a 1x2 row .* at column 6: "):
        parse("{1;2}*{3;4}", "bandmathx").check([4])
    assert parse("{1,2}*{3,4}'", "bandmathx").evaluate([IM1])[0, 0, 0] == 11


# -- errors: one line, the column, what exists

@pytest.mark.parametrize("text, dialect, bands, message", [
    ("im1b1 + )", "bandmath", [4], 'exp: unexpected ")" at column 9: im1b1 + )'),
    ("im1b1 +", "bandmath", [4], "exp: unexpected end of expression at column 8: im1b1 +"),
    ("(im1b1 + 1", "bandmath", [4], 'exp: missing ")" for the "(" at column 1: (im1b1 + 1'),
    ("1 ? 2", "bandmath", [4], 'exp: missing ":" for the "?" at column 3: 1 ? 2'),
    ("im1b1 % 2", "bandmath", [4], 'exp: unexpected character "%" at column 7: im1b1 % 2'),
    ("- -2", "bandmath", [4], 'exp: unexpected "-" at column 3: - -2'),
    ("im1b1 im1b2", "bandmath", [4], 'exp: unexpected "im1b2" at column 7: im1b1 im1b2'),
    ("sqr(im1b1)", "bandmath", [4], 'exp: unknown function "sqr" (did you mean sqrt?) at column 1: sqr(im1b1)'),
    ("2 * ndvi(im1b1)", "bandmath", [4], "exp: ndvi takes 2 arguments, got 1 at column 5: 2 * ndvi(im1b1)"),
    ("dotpr(im1, im1)", "bandmath", [4], 'exp: unknown function "dotpr" at column 1: dotpr(im1, im1)'),
    ("foo + 1", "bandmath", [4], 'exp: unknown variable "foo"; expected imXbY, idxX or idxY at column 1: foo + 1'),
    ("im1 + 1", "bandmath", [4],
     'exp: unknown variable "im1"; a whole pixel imX is BandMathX syntax at column 1: im1 + 1'),
    ("1 + im3b1", "bandmath", [4, 4], "exp: im3b1 refers to image 3, but 2 images are given at column 5: 1 + im3b1"),
    ("im1b5", "bandmath", [4], "exp: im1b5 refers to band 5 of image 1, which has 4 bands at column 1: im1b5"),
    ("im2b1Mean", "bandmathx", [4, 4],
     'exp: "im2b1Mean" (image statistics) is not supported by eotensor at column 1: im2b1Mean'),
    ("im1b1N3x3", "bandmathx", [4],
     'exp: "im1b1N3x3" (neighbourhoods) is not supported by eotensor at column 1: im1b1N3x3'),
    ("sqrt(im1)", "bandmathx", [4],
     "exp: sqrt takes scalars, got a 1x4 row; use vsqrt for element-wise values at column 6: sqrt(im1)"),
    ("im1 ^ 2", "bandmathx", [4],
     "exp: ^ takes scalars, got a 1x4 row ^ a scalar; use pow for element-wise powers at column 5: im1 ^ 2"),
    ("1; im1'", "bandmathx", [4], "exp: output 2 is a 4x1 column; each output must be a scalar or a 1xN row "
                                  "(transpose a column with ') at column 7: 1; im1'"),
    ("im1 + im2", "bandmathx", [4, 3], "exp: matrix dimension error: a 1x4 row + a 1x3 row at column 5: im1 + im2"),
    ("bands(im1, {1, 9})", "bandmathx", [4], "exp: bands() takes band numbers 1 to 4 written as numbers, "
                                             "like bands(im1, {1, 3}) at column 16: bands(im1, {1, 9})"),
    ("  ", "bandmath", [4], "exp: the expression is empty"),
    ("{} + 1", "bandmathx", [4], "exp: a {...} row needs at least one value at column 1: {} + 1"),
    ("(" * 5000 + "1" + ")" * 5000, "bandmath", [4], "exp: the expression is nested too deeply"),
])
def test_errors_name_the_problem_and_the_column(text, dialect, bands, message):
    with pytest.raises(ExpressionError) as info:
        parse(text, dialect).check(bands)
    assert str(info.value) == message
    assert isinstance(info.value, ParameterError) and "\n" not in str(info.value)


def test_the_parameter_name_is_the_callers():
    with pytest.raises(ExpressionError, match=r"^exp\.2: unexpected"):
        parse("1 +", param="exp.2")


def test_images_used_and_unread_images():
    program = parse("im3b1 + im1b2 * idxX")
    assert program.images_used == (0, 2)
    out = program.evaluate([IM1, None, IM2])
    np.testing.assert_array_equal(out[..., 0], b(IM2, 1) + b(IM1, 2) * np.arange(6.0))
    with pytest.raises(ExpressionError, match="im3b1 refers to image 3, which was not given"):
        program.evaluate([IM1, IM2, None])
    assert parse("idxX + 1").evaluate([], shape=(2, 3)).shape == (2, 3, 1)


# -- trees built in Python

def test_python_built_trees_evaluate_by_name():
    red, nir = b(IM1, 3), b(IM2, 1)
    tree = Cond(BinOp(">", Call("ndvi", (Var("red"), Var("nir"))), 0.2), Var("nir"), BinOp("-", 0, Var("red")))
    with np.errstate(all="ignore"):
        expected = np.where(REFERENCE["ndvi"](red, nir) > 0.2, nir, -red)
    np.testing.assert_array_equal(evaluate(tree, {"red": red, "nir": nir}), expected)
    np.testing.assert_array_equal(evaluate(tree, {"red": red, "nir": nir}, use_numexpr=False), expected)
    assert variables_of(tree) == {"red", "nir"}
    stack = IM1.astype(np.float64)  # any shapes that broadcast: here all bands at once
    np.testing.assert_array_equal(evaluate(BinOp("*", Var("x"), 2), {"x": stack}), stack * 2)
    matrix = evaluate(BinOp("mult", Var("p"), Vector((1, 1, 1, 1))), {"p": Matrix(stack[..., None, :])})
    assert isinstance(matrix, Matrix) and matrix.dims == (1, 4)
    assert BinOp("+", Var("a"), 1) == BinOp("+", Var("a"), Const(1.0))
    with pytest.raises(ParameterError, match='unknown operator "%"'):
        BinOp("%", 1, 2)
    with pytest.raises(ExpressionError, match='unknown variable "b"'):
        evaluate(BinOp("+", Var("a"), Var("b")), {"a": 1.0})


def test_extra_names_are_the_callers():
    program = parse("im1b1 * gain + offset", "bandmathx", names=["gain", "offset"])
    out = program.evaluate([IM1], variables={"gain": 2.0, "offset": np.float64(1)})
    np.testing.assert_array_equal(out[..., 0], b(IM1, 1) * 2 + 1)


# -- random trees: render with minimal parentheses, parse back, compare with a NumPy evaluation written here

BINARY_LEVEL = {"?": 1, "and": 2, "or": 2, "||": 3, "&&": 4, "<": 5, ">": 5, "<=": 5, ">=": 5, "==": 5, "!=": 5,
                "+": 6, "-": 6, "*": 7, "/": 7, "^": 8}
SPELLING = {"&&": ["&&", "and"], "||": ["||", "or"]}
LEAVES = ["im1b1", "im1b2", "im2b1", "idxX", "idxY"]


def trees():
    leaf = st.one_of(st.sampled_from(LEAVES).map(Var),
                     st.floats(0, 100, allow_nan=False).map(lambda v: Const(round(v, 3))),
                     st.integers(0, 9).map(Const))

    def extend(children):
        ops = st.sampled_from(["+", "-", "*", "/", "^", "<", ">", "<=", ">=", "==", "!=", "&&", "||", "and", "or"])
        functions = st.sampled_from(["abs", "sqrt", "exp", "log", "sin", "atan", "tanh", "rint", "sign"])
        return st.one_of(
            st.tuples(ops, children, children).map(lambda t: ("bin", *t)),
            st.tuples(children, children, children).map(lambda t: ("cond", *t)),
            children.map(lambda c: ("neg", c)),
            st.tuples(functions, children).map(lambda t: ("call", t[0], (t[1],))),
            st.tuples(st.sampled_from(["min", "max", "sum", "avg"]), st.lists(children, min_size=1, max_size=3))
            .map(lambda t: ("call", t[0], tuple(t[1]))),
            st.tuples(children, children).map(lambda t: ("call", "ndvi", t)),
        )

    return st.recursive(leaf, extend, max_leaves=12)


def to_node(tree):
    """The parser's tree for a generated tree (``and``/``or`` become ``&&``/``||``, spelled as generated)."""
    if not isinstance(tree, tuple):
        return tree
    kind = tree[0]
    if kind == "bin":
        return BinOp({"and": "&&", "or": "||"}.get(tree[1], tree[1]), to_node(tree[2]), to_node(tree[3]))
    if kind == "cond":
        return Cond(*map(to_node, tree[1:]))
    if kind == "neg":
        return Unary("-", to_node(tree[1]))
    return Call(tree[1], tuple(map(to_node, tree[2])))


def level(tree):
    if not isinstance(tree, tuple) or tree[0] == "call":
        return 10
    return {"bin": lambda: BINARY_LEVEL[tree[1]], "cond": lambda: 1, "neg": lambda: 7}[tree[0]]()


def render(tree) -> str:
    """Text with parentheses only where this file's precedence table needs them."""
    if isinstance(tree, Var):
        return tree.name
    if isinstance(tree, Const):
        return repr(tree.value)
    kind = tree[0]
    if kind == "call":
        return f"{tree[1]}({', '.join(render(arg) for arg in tree[2])})"
    if kind == "neg":
        inner = tree[1]
        # muParser's unary minus sits at the * level: -(a*b) needs no parentheses but is a different tree
        text = render(inner)
        return f"-{text}" if level(inner) > 7 else f"-({text})"
    if kind == "cond":
        test, then, other = tree[1:]
        wrap = lambda t, low: f"({render(t)})" if level(t) <= low else render(t)  # noqa: E731
        return f"{wrap(test, 1)} ? {render(then)} : {wrap(other, 0)}"
    op, left, right = tree[1:]
    mine = BINARY_LEVEL[op]
    right_assoc = op == "^"
    left_text = render(left)
    if level(left) < mine or (right_assoc and level(left) == mine) or (isinstance(left, tuple) and left[0] == "neg"):
        left_text = f"({left_text})"
    right_text = render(right)
    if level(right) < mine or (not right_assoc and level(right) == mine) or (
            isinstance(right, tuple) and right[0] == "neg"):
        right_text = f"({right_text})"
    return f"{left_text} {op} {right_text}"


def reference(tree, env):
    """NumPy, node by node: the meaning muParser gives each operator and function."""
    if isinstance(tree, Var):
        return env[tree.name]
    if isinstance(tree, Const):
        return np.float64(tree.value)
    kind = tree[0]
    if kind == "neg":
        return -reference(tree[1], env)
    if kind == "cond":
        return np.where(reference(tree[1], env) != 0, reference(tree[2], env), reference(tree[3], env))
    if kind == "call":
        return REFERENCE[tree[1]](*(reference(arg, env) for arg in tree[2]))
    op, left, right = tree[1], reference(tree[2], env), reference(tree[3], env)
    table = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
             "<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "==": np.equal,
             "!=": np.not_equal, "&&": lambda a, c: (a != 0) & (c != 0), "and": lambda a, c: (a != 0) & (c != 0),
             "||": lambda a, c: (a != 0) | (c != 0), "or": lambda a, c: (a != 0) | (c != 0)}
    return np.asarray(table[op](left, right), np.float64)


ENV_IMAGES = [np.round(RNG.uniform(-4, 4, (4, 5, 2)), 1).astype(np.float32),
              np.round(RNG.uniform(-4, 4, (4, 5, 1)), 1).astype(np.float32)]
ENV = {"im1b1": b(ENV_IMAGES[0], 1), "im1b2": b(ENV_IMAGES[0], 2), "im2b1": b(ENV_IMAGES[1], 1),
       "idxX": np.arange(3.0, 8.0)[None, :], "idxY": np.arange(2.0, 6.0)[:, None]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.sampled_from(["bandmath", "bandmathx"]))
def test_random_trees_parse_back_and_evaluate_like_numpy(tree, dialect):
    if "'and'" in repr(tree) or "'or'" in repr(tree):
        dialect = "bandmath"  # the words are BandMath's only
    text = render(tree)
    program = parse(text, dialect)
    assert program.outputs == (to_node(tree),), text
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(reference(tree, ENV), (4, 5))
    for use_numexpr in (True, False):
        out = program.evaluate(ENV_IMAGES, row0=2, col0=3, use_numexpr=use_numexpr)[..., 0]
        np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-300, equal_nan=True, err_msg=text)
    # the canonical text parses back to the same values
    again = parse(str(program), dialect).evaluate(ENV_IMAGES, row0=2, col0=3, use_numexpr=False)[..., 0]
    np.testing.assert_allclose(again, expected, rtol=1e-9, atol=1e-300, equal_nan=True, err_msg=str(program))


def test_results_never_alias_the_inputs():
    own = np.arange(30.0).reshape(5, 6)
    for program, images, variables in [(parse("x", names=["x"]), [IM1], {"x": own}),
                                       (parse("im1b1"), [own[..., None]], None), (parse("+im1b1"), [IM1], None)]:
        out = program.evaluate(images, variables=variables)
        assert not any(np.may_share_memory(out, array) for array in (own, IM1))


def test_threads_evaluate_windows_concurrently():
    from concurrent.futures import ThreadPoolExecutor

    program = parse("im1b1 > 0 ? sqrt(im1b1) * idxX : ndvi(im1b2, im2b1) + idxY", "bandmath")
    expected = [program.evaluate([IM1, IM2], row0=k, col0=2 * k) for k in range(16)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: program.evaluate([IM1, IM2], row0=k, col0=2 * k), range(16)))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_many_arguments_and_bad_python_calls():
    args = ", ".join(f"im1b{k % 4 + 1} * {k}" for k in range(12))
    out = run(f"min({args}); max({args}); sum({args})", "bandmathx")
    values = [b(IM1, k % 4 + 1) * k for k in range(12)]
    np.testing.assert_array_equal(out, np.stack([_ref_min(*values), _ref_max(*values), sum(values[1:], values[0])], -1))
    with pytest.raises(ParameterError, match=r"unknown function \"sqr\" \(did you mean sqrt or vsqrt\?\)"):
        Call("sqr", (1,))
    with pytest.raises(ParameterError, match="ndvi takes 2 arguments, got 1"):
        Call("ndvi", (Var("a"),))


def test_a_one_band_pixel_is_a_scalar_in_bandmathx():
    one = IM1[..., :1]
    out = parse("sqrt(im1 * im1) + im1'; im1 * {1, 2}", "bandmathx").evaluate([one])
    x = b(one, 1)
    np.testing.assert_array_equal(out, np.stack([np.sqrt(x * x) + x, x, 2 * x], -1))
