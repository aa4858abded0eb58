"""The talk's four rounds as plain NumPy/NumExpr functions (served with -model.dir functions.py::rN)."""

import numexpr as ne
import numpy as np


def r1(x):
    return ne.evaluate("x + 1")


def r2(x):
    a, b, c, d = (x[..., i] for i in range(4))
    return ne.evaluate("sqrt(a * a + b * b + c * c + d * d)")


def r3(x1, x2):
    a1, b1, c1, d1 = (x1[..., i] for i in range(4))
    a2, b2, c2, d2 = (x2[..., i] for i in range(4))
    return ne.evaluate("a1 * a2 + b1 * b2 + c1 * c2 + d1 * d2")


def r4(x1, x2):
    a, b, c, d = (x2[..., i] for i in range(4))
    total = ne.evaluate("a + b + c + d")[..., np.newaxis]
    return ne.evaluate("x1 * total", local_dict={"x1": x1, "total": total})
