"""Tensor-name resolution (§1.4) and the user-placeholder grammar (§1.5, decision 5c)."""

import numpy as np
import pytest

from eotensor.errors import ModelError, ParameterError
from eotensor.runtimes.base import TensorSpec
from eotensor.runtimes.signature import parse_user_placeholder, placeholder_feed, resolve_names


def specs(*keys, dtype=np.float32, shape=(None, None, None, None)):
    return {k: TensorSpec(k, np.dtype(dtype), shape) for k in keys}


SOURCES = ["source1.placeholder", "source2.placeholder", "source3.placeholder"]


def test_empty_names_take_keys_in_alphabetical_order_without_placeholders():
    sig = specs("x2", "a", "x1")
    got = resolve_names(sig, ["", ""], SOURCES[:2], exclude=["a"])
    assert [s.key for s in got] == ["x1", "x2"]
    # OTBTF: the k-th source takes the k-th candidate, whatever the other sources name
    assert [s.key for s in resolve_names(sig, ["x1", ""], SOURCES[:2], exclude=["a"])] == ["x1", "x2"]
    assert [s.key for s in resolve_names(sig, ["x2", ""], SOURCES[:2], exclude=["a"])] == ["x2", "x2"]


def test_ordered_signatures_bind_sources_in_declaration_order():
    sig = specs("red", "nir", "k")  # def model(red, nir, k)
    assert [s.key for s in resolve_names(sig, ["", ""], SOURCES[:2], ordered=True)] == ["red", "nir"]
    assert [s.key for s in resolve_names(sig, ["", ""], SOURCES[:2])] == ["k", "nir"]  # alphabetical
    # a user placeholder or another source's name takes its input out; the empty names take the rest in order
    assert [s.key for s in resolve_names(sig, ["", ""], SOURCES[:2], exclude=["red"], ordered=True)] == ["nir", "k"]
    got = resolve_names(sig, ["", "red", ""], SOURCES, ordered=True)
    assert [s.key for s in got] == ["nir", "red", "k"]
    with pytest.raises(ModelError, match=r"source4.placeholder is empty .* no candidate #2 .*declaration order, "
                                         r"not named elsewhere: k\)"):
        resolve_names(sig, ["red", "nir", "", ""], [*SOURCES, "source4.placeholder"], ordered=True)


def test_tf1_keys_match_without_suffix():
    sig = specs("x:0", "y:0")
    assert resolve_names(sig, ["x"], ["p"])[0].key == "x:0"
    assert resolve_names(sig, ["x:0"], ["p"])[0].key == "x:0"


def test_ambiguous_and_missing_names_are_errors():
    sig = specs("x:0", "x:1")
    with pytest.raises(ModelError, match='"x" is ambiguous, it matches x:0, x:1'):
        resolve_names(sig, ["x"], ["source1.placeholder"])
    with pytest.raises(ModelError, match="source1.placeholder: tensor \"q\" .* available: x:0, x:1"):
        resolve_names(sig, ["q"], ["source1.placeholder"])
    with pytest.raises(ModelError, match="no candidate #2"):
        resolve_names(specs("x"), ["", ""], ["source1.placeholder", "source2.placeholder"])


@pytest.mark.parametrize("item, dtype, values", [
    ("a=1", np.int64, [1]),
    ("a=-2.5", np.float64, [-2.5]),
    ("a=(1.0, 2.0, 2.0, 1.0)", np.float64, [1, 2, 2, 1]),
    ("a=(1, 2.5)", np.float64, [1.0, 2.5]),
    ("dates=(1,32,60)", np.int64, [1, 32, 60]),
    ("big=9223372036854775807", np.int64, [2**63 - 1]),
    ("tenth=0.1", np.float64, [0.1]),
    ("flag=TRUE", np.bool_, [True]),
    ("flags=(true, false)", np.bool_, [True, False]),
    (" k = 3 ", np.int64, [3]),
])
def test_placeholder_grammar(item, dtype, values):
    name, value = parse_user_placeholder(item)
    assert name == item.split("=")[0].strip()
    assert value.dtype == dtype and value.ndim == 1 and value.tolist() == values


@pytest.mark.parametrize("item, message", [
    ("a=(1,2", "unbalanced parentheses"),
    ("a=1,2)", "unbalanced parentheses"),
    ("a", "expected name=value"),
    ("=1", "expected name=value"),
    ("a=1e-3", "neither a number"),
    ("a=1-2", '"1-2" is not a number'),
    ("a=maybe", "neither a number"),
    ("a=(1,,2)", "empty value"),
    ("a=inf", "neither a number"),
    ("a=-inf", "neither a number"),
    ("a=nan", "neither a number"),
    ("a=9223372036854775808", "9223372036854775808 is out of range \\(int64\\)"),
    ("a=(1, -99999999999999999999999)", "-99999999999999999999999 is out of range"),
    ("a=1" + "0" * 400 + ".0", "is out of range \\(float64\\)"),
])
def test_placeholder_errors(item, message):
    with pytest.raises(ParameterError, match=message):
        parse_user_placeholder(item)


@pytest.mark.parametrize("item, dtype, message", [
    ("a=99999999999", np.int32, r"a = \[99999999999\] cannot be cast exactly to the model's int32 "
                                r"\(range -2147483648..2147483647\)"),
    ("a=-1", np.uint8, "cannot be cast exactly to the model's uint8"),
    ("a=(1.0, 3000000000.0)", np.int32, "cannot be cast exactly to the model's int32"),
    ("a=1" + "0" * 40 + ".0", np.float32, r"cannot be cast exactly to the model's float32 \(it would overflow to inf"),
    ("a=70000", np.float16, "overflow to inf"),
])
def test_placeholders_out_of_the_model_dtype_range_are_errors(item, dtype, message):
    name, value = parse_user_placeholder(item)
    with pytest.raises(ParameterError, match=message):
        placeholder_feed(name, value, TensorSpec(name, np.dtype(dtype), (None,)))


def test_placeholders_within_range_cast_exactly():
    ints = TensorSpec("n", np.dtype(np.int32), (None,))
    fed = placeholder_feed("n", *parse_user_placeholder("n=(2147483647, -2147483648, 3.0)")[1:], ints)
    assert fed.dtype == np.int32 and fed.tolist() == [2**31 - 1, -(2**31), 3]
    big = TensorSpec("n", np.dtype(np.int64), (None,))
    assert placeholder_feed("n", parse_user_placeholder("n=9223372036854775807")[1], big).tolist() == [2**63 - 1]
    tenth = placeholder_feed("t", parse_user_placeholder("t=0.1")[1], TensorSpec("t", np.dtype(np.float64), ()))
    assert tenth == 0.1 and tenth.dtype == np.float64  # parsed in float64: no float32 detour
    assert placeholder_feed("t", np.array([np.inf]), TensorSpec("t", np.dtype(np.float32), ())) == np.inf  # from Python
    with pytest.raises(ParameterError, match="is <U1 and the model declares float32; expected numbers"):
        placeholder_feed("t", np.array(["a"]), TensorSpec("t", np.dtype(np.float32), ()))


def test_placeholder_casts_exactly_and_feeds_scalars():
    scalar = TensorSpec("k", np.dtype(np.float32), ())
    fed = placeholder_feed("k", np.array([3], np.int32), scalar)
    assert fed.shape == () and fed.dtype == np.float32 and fed == 3.0
    ints = TensorSpec("n", np.dtype(np.int32), (None,))
    assert placeholder_feed("n", np.array([2.0], np.float32), ints).dtype == np.int32
    with pytest.raises(ParameterError, match="cannot be cast exactly"):
        placeholder_feed("n", np.array([2.5], np.float32), ints)
    with pytest.raises(ParameterError, match="is a scalar in the model but 2 values"):
        placeholder_feed("k", np.array([1, 2], np.int32), scalar)
    with pytest.raises(ParameterError, match="bool"):
        placeholder_feed("k", np.array([True]), scalar)
