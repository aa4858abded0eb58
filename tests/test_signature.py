"""Tensor-name resolution (§1.4) and the user-placeholder grammar (§1.5, decision 5c)."""

import numpy as np
import pytest

from eotensor.errors import ModelError, ParameterError
from eotensor.runtimes.base import TensorSpec
from eotensor.runtimes.signature import parse_user_placeholder, placeholder_feed, resolve_names


def specs(*keys, dtype=np.float32, shape=(None, None, None, None)):
    return {k: TensorSpec(k, np.dtype(dtype), shape) for k in keys}


def test_empty_names_take_keys_in_alphabetical_order_without_placeholders():
    sig = specs("x2", "a", "x1")
    got = resolve_names(sig, ["", ""], ["source1.placeholder", "source2.placeholder"], exclude=["a"])
    assert [s.key for s in got] == ["x1", "x2"]


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
    ("a=1", np.int32, [1]),
    ("a=-2.5", np.float32, [-2.5]),
    ("a=(1.0, 2.0, 2.0, 1.0)", np.float32, [1, 2, 2, 1]),
    ("a=(1, 2.5)", np.float32, [1.0, 2.5]),
    ("dates=(1,32,60)", np.int32, [1, 32, 60]),
    ("flag=TRUE", np.bool_, [True]),
    ("flags=(true, false)", np.bool_, [True, False]),
    (" k = 3 ", np.int32, [3]),
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
])
def test_placeholder_errors(item, message):
    with pytest.raises(ParameterError, match=message):
        parse_user_placeholder(item)


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
