"""The TensorFlow runtime on real SavedModels of every kind the issue names."""

import os
import subprocess
import sys

import numpy as np
import pytest

import models
from eotensor.errors import ModelError
from eotensor.runtimes.tensorflow import load_saved_model

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import tensorflow as tf

    d = tmp_path_factory.mktemp("tfmodels")

    class Keras2Style(tf.Module):
        """Signature keys as Keras 2 wrote them: input names and output-layer names."""

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 4], tf.float32, name="input_1")])
        def serve(self, input_1):
            return {"dense": tf.reduce_sum(input_1, -1, keepdims=True), "dense_1": input_1 * 3.0}

    class Typed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 4], tf.uint8, name="x"),
                                      tf.TensorSpec([], tf.float32, name="k"),
                                      tf.TensorSpec([None], tf.int32, name="n")])
        def serve(self, x, k, n):
            return {"y": tf.cast(x, tf.float32) * k + tf.cast(n[0], tf.float32)}

    k2, typed = Keras2Style(), Typed()
    tf.saved_model.save(k2, str(d / "keras2"), signatures={"serving_default": k2.serve})
    tf.saved_model.save(typed, str(d / "typed"), signatures={"other": typed.serve})
    return {
        "keras2": str(d / "keras2"), "typed": str(d / "typed"),
        "add1": models.build_add_one(d / "add1"), "tf1": models.build_tf1_simple_save(d / "tf1"),
        "round4": models.build_matrix_round4(d / "round4"), "nosig": models.build_no_signature(d / "nosig"),
        "dir": d,
    }


def test_keras3_export(built):
    m = load_saved_model(built["add1"])
    assert list(m.inputs) == ["x"] and list(m.outputs) == ["y"]
    assert m.inputs["x"].shape == (None, None, None, 4) and m.inputs["x"].dtype == np.float32
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(m.run({"x": x}, ["y"])[0], x + 1)


def test_keras2_style_keys_and_several_outputs(built):
    m = load_saved_model(built["keras2"])
    assert list(m.inputs) == ["input_1"] and list(m.outputs) == ["dense", "dense_1"]
    assert m.outputs["dense"].shape == (None, None, None, 1)
    x = np.ones((1, 2, 2, 4), np.float32)
    dense_1, dense = m.run({"input_1": x}, ["dense_1", "dense"])
    assert dense.shape == (1, 2, 2, 1) and (dense == 4).all() and (dense_1 == 3).all()


def test_tf1_simple_save_keys_keep_their_suffix(built):
    m = load_saved_model(built["tf1"])
    assert list(m.inputs) == ["x:0"] and list(m.outputs) == ["y:0"]
    x = np.full((1, 2, 2, 4), 2.0, np.float32)
    np.testing.assert_array_equal(m.run({"x:0": x}, ["y:0"])[0], x * 2 + 1)


def test_round4_signature_has_an_unknown_band_count(built):
    m = load_saved_model(built["round4"])
    assert m.outputs["y"].shape == (None, None, 1)


def test_other_signature_dtypes_and_true_scalars(built):
    with pytest.warns(UserWarning, match='serving "other"'):
        m = load_saved_model(built["typed"])
    assert m.inputs["x"].dtype == np.uint8 and m.inputs["k"].shape == () and m.inputs["n"].dtype == np.int32
    x = np.full((1, 1, 2, 4), 3, np.uint8)
    y = m.run({"x": x, "k": np.float32(2.0), "n": np.array([5], np.int32)}, ["y"])[0]
    assert (y == 11).all()


def test_call_errors_are_one_line(built):
    m = load_saved_model(built["add1"])
    with pytest.raises(ModelError, match=r"the model call failed: .*\(inputs: x \(1, 2, 2, 3\) float32\)"):
        m.run({"x": np.ones((1, 2, 2, 3), np.float32)}, ["y"])


def test_loading_errors(built, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_saved_model(tmp_path / "missing")
    with pytest.raises(ModelError, match="has no saved_model.pb"):
        load_saved_model(tmp_path)
    with pytest.raises(ModelError, match="no MetaGraph with tags gpu; model.tagsets: serve"):
        load_saved_model(built["add1"], tags=["gpu"])
    with pytest.raises(ModelError, match="saved_model_cli show --dir"):
        load_saved_model(built["nosig"])


def test_importing_eotensor_does_not_import_tensorflow():
    code = "import eotensor, sys; assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
