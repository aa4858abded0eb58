"""OTBTF's layers and ops on Keras 3, each against a NumPy reference, and a model using them saved as .keras.

Keras (hence TensorFlow) is imported inside the tests, never at collection: TensorFlow loaded before GDAL
makes GDAL use TensorFlow's SQLite, and GeoPackages written in the same process then lack their R-tree.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eotensor.model import ops

pytestmark = pytest.mark.tf


def dilate_reference(mask, radius):
    """Per pixel, the max of the mask over the (2r+1)² window clipped to the image."""
    batch, rows, cols, bands = mask.shape
    out = np.zeros_like(mask)
    for r in range(rows):
        for c in range(cols):
            window = mask[:, max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1, :]
            out[:, r, c, :] = window.max(axis=(1, 2))
    return out


@settings(max_examples=40, deadline=None)
@given(arrays(np.int8, st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.just(1)),
              elements=st.integers(-2, 2)),
       st.integers(0, 3))
def test_dilated_mask_matches_numpy(image, radius):
    from eotensor.model import layers

    got = np.asarray(layers.DilatedMask(nodata_value=-2, radius=radius)(image.astype(np.float32)))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, dilate_reference((image == -2).astype(np.uint8), radius))


def test_dilated_mask_equals_otbtfs_dilation2d():
    import tensorflow as tf

    from eotensor.model import layers

    image = np.random.default_rng(0).integers(0, 6, (2, 13, 11, 1)).astype(np.float32)
    mask = tf.cast(tf.equal(image, 0), tf.uint8)
    expected = tf.nn.dilation2d(mask, tf.zeros((5, 5, 1), tf.uint8), [1, 1, 1, 1], "SAME", "NHWC", [1, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(layers.DilatedMask(0, 2)(image)), expected.numpy())


def test_apply_mask_puts_nodata_where_the_mask_is_one():
    from eotensor.model import layers

    rng = np.random.default_rng(1)
    mask = rng.integers(0, 3, (2, 5, 4, 1)).astype(np.uint8)
    image = rng.standard_normal((2, 5, 4, 1)).astype(np.float32)
    got = np.asarray(layers.ApplyMask(out_nodata=-9999)((mask, image)))
    expected = image.copy()
    expected[mask == 1] = -9999
    np.testing.assert_array_equal(got, expected)


def test_scalars_tile_fills_the_reference_grid():
    from eotensor.model import layers

    ref = np.zeros((2, 3, 5, 7), np.float32)
    a, b = np.array([0.5, 1.5], np.float32), np.array([-1.0, 2.0], np.float32)
    for scalars in ([a, b], [a[:, None], b]):
        got = np.asarray(layers.ScalarsTile()([ref, scalars]))
        assert got.shape == (2, 3, 5, 2)
        for n in range(2):
            for r in range(3):
                for c in range(5):
                    assert list(got[n, r, c]) == [a[n], b[n]]


@pytest.mark.parametrize("expand", [True, False])
def test_argmax_and_max_over_the_last_axis(expand):
    from eotensor.model import layers

    x = np.random.default_rng(2).standard_normal((2, 4, 3, 5)).astype(np.float32)
    got = np.asarray(layers.Argmax(expand_last_dim=expand)(x))
    assert got.dtype == np.int64
    expected = np.array([[[max(range(5), key=lambda k: x[n, r, c, k]) for c in range(3)] for r in range(4)]
                         for n in range(2)])
    np.testing.assert_array_equal(got, expected[..., None] if expand else expected)
    np.testing.assert_array_equal(np.asarray(layers.Max()(x)), np.sort(x, axis=-1)[..., -1:])
    assert layers.ArgMax is layers.Argmax


def test_one_hot_squeezes_and_encodes():
    labels = np.array([[[0], [2]], [[1], [3]]], np.uint8)
    got = np.asarray(ops.one_hot(labels, 3))
    expected = np.zeros((2, 2, 3), np.float32)
    for (r, c), value in np.ndenumerate(labels[..., 0]):
        if value < 3:
            expected[r, c, value] = 1
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32


def test_model_with_every_layer_saves_and_loads_as_keras(tmp_path):
    import keras

    from eotensor.model import layers

    image = keras.Input((None, None, 1), name="image")
    scalar = keras.Input((), name="scalar")
    mask = layers.DilatedMask(nodata_value=0.0, radius=1, name="mask")(image)
    features = keras.layers.Concatenate()([image, layers.ScalarsTile(name="tile")([image, [scalar]])])
    softmax = keras.layers.Conv2D(3, 1, activation="softmax", name="conv")(features)
    classes = layers.ApplyMask(out_nodata=255, name="masked")((mask, layers.Argmax(name="classes")(softmax)))
    model = keras.Model({"image": image, "scalar": scalar},
                        {"classes": classes, "confidence": layers.Max(name="confidence")(softmax)})
    rng = np.random.default_rng(3)
    feeds = {"image": rng.integers(0, 4, (2, 6, 7, 1)).astype(np.float32),
             "scalar": np.array([0.25, -2.0], np.float32)}
    before = model.predict(feeds, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    after = loaded.predict(feeds, verbose=0)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    assert (before["classes"][dilate_reference((feeds["image"] == 0).astype(np.uint8), 1) == 1] == 255).all()
    assert loaded.get_layer("mask").radius == 1 and loaded.get_layer("masked").out_nodata == 255
    assert isinstance(loaded.get_layer("classes"), layers.Argmax)


def test_model_with_the_layers_exports_a_servable_saved_model(tmp_path):
    import keras
    import tensorflow as tf

    from eotensor.model import layers

    image = keras.Input((None, None, 2), name="image")
    mask = layers.DilatedMask(nodata_value=-1.0, radius=2)(image[..., :1])
    softmax = keras.layers.Conv2D(4, 3, padding="same", activation="softmax")(image)
    model = keras.Model(image, [layers.ApplyMask(0)((mask, layers.ArgMax()(softmax))), layers.Max()(softmax)])
    model.export(str(tmp_path / "export"), verbose=False)
    feeds = np.random.default_rng(4).integers(-1, 3, (1, 9, 13, 2)).astype(np.float32)
    exported = tf.saved_model.load(str(tmp_path / "export"))
    served = exported.serve(feeds)
    for got, want in zip(served, model.predict(feeds, verbose=0), strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
