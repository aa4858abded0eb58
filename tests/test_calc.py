"""Operators on lazy results: folding, truth values, long chains, tile sizes (review regressions)."""

import functools

import numpy as np
import pytest

import eotensor as eot
from eotensor.calc import FOLD_DEPTH, Expression
from eotensor.errors import ParameterError
from eotensor.runtimes import FunctionModel
from eotensor.testing import write_raster


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    array = np.random.default_rng(4).integers(-300, 300, size=(3, 31, 29)).astype(np.int16)
    return write_raster(tmp_path_factory.mktemp("calc") / "a.tif", array), array


def f32(values):
    top = np.finfo(np.float32).max
    return np.clip(np.asarray(values, np.float64), -top, top).astype(np.float32)


def test_band_selections_of_expressions_fold_like_the_expressions(image):
    path, array = image
    f = eot.open(path)
    seventh = f[0] / 7
    x = array[0].astype(np.float64)
    np.testing.assert_array_equal((seventh * 7).read()[0], f32(x / 7 * 7))  # one float64 tree, as pyotb's BandMath
    np.testing.assert_array_equal((seventh[0] * 7).read()[0], (seventh * 7).read()[0])
    as_image = eot.BandMath(il=[seventh], exp="im1b1 * 7")  # an app reads it as its float32 file
    np.testing.assert_array_equal(as_image.read()[0], f32(f32(x / 7).astype(np.float64) * 7))


def test_the_truth_value_of_a_result_is_an_error_and_numpy_scalars_defer(image):
    path, array = image
    f = eot.open(path)
    with pytest.raises(ParameterError, match="truth value of a lazy result is ambiguous"):
        -100 < f[0] < 100  # noqa: B015 - Python's chained comparison asks bool() of the first
    with pytest.raises(ParameterError, match="ambiguous"):
        f in [eot.open(path)]  # noqa: B015
    scaled = np.float32(2) * f[1]
    assert isinstance(scaled, Expression)
    np.testing.assert_array_equal(scaled.read()[0], f32(array[1] * 2.0))


def test_long_chains_evaluate_and_equal_numpy(image):
    path, array = image
    f = eot.open(path)
    total = sum(f[k % 3] for k in range(3 * FOLD_DEPTH + 7))  # hundreds of operators: folding stops in steps
    counting = functools.reduce(lambda acc, _: acc + 1, range(2 * FOLD_DEPTH + 10), f[0])
    x = array.astype(np.float64)
    np.testing.assert_allclose(total.read()[0], (FOLD_DEPTH + 2) * x.sum(axis=0) + x[0], rtol=1e-6)
    np.testing.assert_array_equal(counting.read()[0], f32(x[0] + 2 * FOLD_DEPTH + 10))
    assert counting.depth <= FOLD_DEPTH + 1


def test_a_pixel_wise_head_keeps_its_own_budget_over_cheap_sources(image, tmp_path):
    path, array = image
    wide = write_raster(tmp_path / "wide.tif", np.zeros((1, 200, 4000), np.float32))
    many = FunctionModel(lambda x: {"y": np.repeat(x, 64, axis=-1)}, ["x"], ["y"], name="many")
    on_file = eot.serve(many, [eot.source(wide)], fullyconv=True, ram_mb=16)
    on_lazy = eot.serve(many, [eot.source(eot.open(wide))], fullyconv=True, ram_mb=16)
    assert on_lazy.tile_shape() == on_file.tile_shape()
    assert on_lazy.tile_shape().rows * on_lazy.tile_shape().cols * 64 * 4 <= 1.5 * 16 * 2**20
