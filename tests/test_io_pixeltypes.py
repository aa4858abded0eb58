"""Output pixel types and OTB's casting (clamp, then truncate toward zero)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eotensor.errors import ParameterError
from eotensor.io.pixeltypes import PIXEL_TYPES, parse_pixel_type, to_pixel_type

INT_TYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


# --- pixel types -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("uint8", np.uint8), ("int8", np.int8), ("int16", np.int16), ("uint16", np.uint16),
        ("int32", np.int32), ("uint32", np.uint32), ("int64", np.int64), ("uint64", np.uint64),
        ("float", np.float32), ("float32", np.float32), ("double", np.float64), ("float64", np.float64),
        ("Float", np.float32), ("UINT8", np.uint8),
    ],
)
def test_pixel_type_names(name, expected):
    assert parse_pixel_type(name) == np.dtype(expected)


def test_pixel_type_default_is_float32():
    assert parse_pixel_type(None) == np.dtype(np.float32)


def test_pixel_types_table_covers_otb_names():
    assert {"uint8", "int16", "uint16", "int32", "uint32", "float", "double"} <= set(PIXEL_TYPES)
    assert all(dtype.kind in "iuf" for dtype in PIXEL_TYPES.values())


@pytest.mark.parametrize("name", ["int7", "cint16", "complex64", "bool", ""])
def test_unknown_pixel_type(name):
    with pytest.raises(ParameterError) as info:
        parse_pixel_type(name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("out:")
    assert f'"{name}"' in message
    assert "uint8" in message and "double" in message


# --- to_pixel_type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INT_TYPES)
def test_integer_clamp_then_truncate(name):
    info = np.iinfo(name)
    values = np.array([1.7, -2.7, 0.999, -0.999, 40000.6, -40000.6, 1e30, -1e30, np.inf, -np.inf], np.float32)
    out = to_pixel_type(values, np.dtype(name), None)
    assert out.dtype == np.dtype(name)

    def expected(v: float) -> int:
        if math.isinf(v):
            return info.max if v > 0 else info.min
        return int(min(max(math.trunc(v), info.min), info.max))

    assert out.tolist() == [expected(float(v)) for v in values]


def test_otb_examples_int16():
    out = to_pixel_type(np.array([1.7, -2.7, 40000.6, -40000.6], np.float32), np.dtype("int16"), None)
    assert out.tolist() == [1, -2, 32767, -32768]


@pytest.mark.parametrize("name", ["uint8", "uint16", "uint32", "uint64"])
def test_unsigned_negatives_become_zero(name):
    out = to_pixel_type(np.array([-0.5, -1.0, -2.7, -300.0, -1e12], np.float32), np.dtype(name), None)
    assert out.tolist() == [0, 0, 0, 0, 0]


@pytest.mark.parametrize("name", ["int32", "uint32", "int64", "uint64"])
def test_wide_types_saturate_exactly(name):
    info = np.iinfo(name)
    out = to_pixel_type(np.array([3e38, -3e38], np.float32), np.dtype(name), None)
    assert out.tolist() == [info.max, info.min]


@pytest.mark.parametrize("name", INT_TYPES)
def test_nan_becomes_nodata_or_zero(name):
    values = np.array([np.nan, 5.5, np.nan], np.float32)
    assert to_pixel_type(values, np.dtype(name), None).tolist() == [0, 5, 0]
    assert to_pixel_type(values, np.dtype(name), 7.0).tolist() == [7, 5, 7]


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_float_types_keep_nan(name):
    values = np.array([np.nan, 1.25, -2.5], np.float32)
    out = to_pixel_type(values, np.dtype(name), -9999.0)
    assert out.dtype == np.dtype(name)
    assert np.isnan(out[0]) and out[1:].tolist() == [1.25, -2.5]


def test_float32_to_float32_is_not_copied():
    values = np.ones((2, 3, 4), np.float32)
    assert to_pixel_type(values, np.dtype("float32"), None) is values


def test_input_is_not_modified():
    values = np.array([np.nan, 1.7, -2.7, 1e9], np.float32)
    before = values.copy()
    to_pixel_type(values, np.dtype("uint8"), 3.0)
    np.testing.assert_array_equal(values, before)


def test_float64_and_integer_inputs():
    assert to_pixel_type(np.array([1.9, -1.9, 1e10]), np.dtype("int16"), None).tolist() == [1, -1, 32767]
    assert to_pixel_type(np.array([-5, 300, 7], np.int32), np.dtype("uint8"), None).tolist() == [0, 255, 7]
    assert to_pixel_type(np.array([-5, 300], np.int16), np.dtype("int32"), None).tolist() == [-5, 300]
    assert to_pixel_type(np.array([True, False]), np.dtype("uint8"), None).tolist() == [1, 0]


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(INT_TYPES[:6]),
    values=hnp.arrays(np.float32, st.integers(1, 50), elements=st.floats(width=32, allow_nan=True)),
    nodata=st.one_of(st.none(), st.integers(0, 100)),
)
def test_to_pixel_type_matches_scalar_reference(name, values, nodata):
    info = np.iinfo(name)

    def reference(v: float) -> int:
        if math.isnan(v):
            return 0 if nodata is None else nodata
        if math.isinf(v):
            return info.max if v > 0 else info.min
        return min(max(math.trunc(v), info.min), info.max)

    out = to_pixel_type(values, np.dtype(name), None if nodata is None else float(nodata))
    assert out.dtype == np.dtype(name) and out.shape == values.shape
    assert out.tolist() == [reference(float(v)) for v in values]
