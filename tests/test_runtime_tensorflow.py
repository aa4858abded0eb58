"""The TensorFlow runtime on real SavedModels of every kind eotensor must serve.

Models are built once per module (``tests/models.py``): Keras 3 ``export``, ``tf.Module`` signatures,
Keras-2-style keys, TF1 ``simple_save`` graphs. Data are integer-valued float32, so results are compared
with NumPy bit for bit wherever the arithmetic is exact.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import eotensor as eot
import models
from eotensor.errors import ModelError, ParameterError
from eotensor.runtimes.base import Model, TensorSpec
from eotensor.runtimes.tensorflow import TensorflowModel, load_saved_model
from eotensor.testing import write_raster

pytestmark = pytest.mark.tf

BUILDERS = {
    "scalar_product": models.build_scalar_product,
    "scalar_product_ax": models.build_scalar_product_ax,
    "add_one": models.build_add_one,
    "norm": models.build_norm,
    "round4": models.build_matrix_round4,
    "tf1": models.build_tf1_simple_save,
    "keras2": models.build_keras2_style,
    "keras3_list": models.build_keras3_list_outputs,
    "scalar": models.build_scalar_placeholder,
    "int": models.build_int_placeholder,
    "uint8": models.build_uint8_input,
    "conv": models.build_conv_fcn,
    "other_signature": models.build_other_signature,
    "nosig": models.build_no_signature,
    "difference": models.build_difference,
    "fused": models.build_fused_float_math,
}

F32, IMG = np.dtype("float32"), (None, None, None, None)

SPECS = {  # model -> (inputs, outputs), each key -> (dtype, shape)
    "scalar_product": ({"x1": (F32, IMG), "x2": (F32, IMG)}, {"y": (F32, (None, None, None))}),
    "scalar_product_ax": ({"a": (F32, (None,)), "x": (F32, IMG)}, {"y": (F32, (None, None, None))}),
    "add_one": ({"x": (F32, (None, None, None, 4))}, {"y": (F32, (None, None, None, 4))}),
    "norm": ({"x": (F32, IMG)}, {"y": (F32, (None, None, None))}),
    "round4": ({"x1": (F32, IMG), "x2": (F32, IMG)}, {"y": (F32, (None, None, 1))}),
    "tf1": ({"x:0": (F32, (None, None, None, 4))}, {"y:0": (F32, (None, None, None, 4))}),
    "keras2": ({"input_1": (F32, (None, None, None, 4))},
               {"dense": (F32, (None, None, None, 1)), "dense_1": (F32, (None, None, None, 4))}),
    "keras3_list": ({"x1": (F32, (None, None, None, 4)), "x2": (F32, (None, None, None, 4))},
                    {"output_0": (F32, (None, None, None, 4)), "output_1": (F32, (None, None, None, 4))}),
    "scalar": ({"k": (F32, ()), "x": (F32, IMG)}, {"y": (F32, IMG)}),
    "int": ({"n": (np.dtype("int32"), (None,)), "x": (F32, IMG)}, {"y": (F32, IMG)}),
    "uint8": ({"x": (np.dtype("uint8"), IMG)}, {"y": (F32, IMG)}),
    "conv": ({"x": (F32, (None, None, None, 4))}, {"y": (F32, (None, None, None, 2))}),
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfmodels")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def loaded(paths):
    return {name: load_saved_model(paths[name]) for name in SPECS if name != "other_signature"}


def image(shape, seed=0, high=50, dtype=np.float32):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_signature_keys_dtypes_and_shapes(name, loaded):
    m = loaded[name]
    assert isinstance(m, Model) and isinstance(m, TensorflowModel)
    assert m.signature_name == "serving_default"
    want_in, want_out = SPECS[name]
    for got, want in ((m.inputs, want_in), (m.outputs, want_out)):
        assert list(got) == sorted(want)  # sorted by key
        assert got == {k: TensorSpec(k, dtype, shape) for k, (dtype, shape) in want.items()}
        assert all(isinstance(spec.dtype, np.dtype) for spec in got.values())


def test_scalar_product(loaded):
    x1, x2 = image((1, 5, 7, 4), 1), image((1, 5, 7, 4), 2)
    (y,) = loaded["scalar_product"].run({"x1": x1, "x2": x2}, ["y"])
    np.testing.assert_array_equal(y, (x1 * x2).sum(-1))


def test_scalar_product_with_a_vector_placeholder(loaded):
    x, a = image((1, 6, 3, 4)), np.array([1.0, 2.0, 2.0, 1.0], np.float32)
    (y,) = loaded["scalar_product_ax"].run({"x": x, "a": a}, ["y"])
    np.testing.assert_array_equal(y, (x * a).sum(-1))


def test_add_one_keras3_export(loaded):
    x = image((2, 3, 5, 4))
    (y,) = loaded["add_one"].run({"x": x}, ["y"])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x + 1)


def test_norm(loaded):
    x = image((1, 4, 4, 3))
    (y,) = loaded["norm"].run({"x": x}, ["y"])
    np.testing.assert_array_equal(y, np.sqrt((x * x).sum(-1)))


def test_round4_gives_d3_values_per_pixel(loaded):
    x1, x2 = image((1, 3, 5, 4), 3), image((1, 3, 5, 4), 4)
    (y,) = loaded["round4"].run({"x1": x1, "x2": x2}, ["y"])
    assert y.shape == (15, 4, 1)
    np.testing.assert_array_equal(y[..., 0], (x1 * x2.sum(-1, keepdims=True)).reshape(15, 4))


def test_tf1_simple_save_keys_keep_their_suffix(loaded):
    x = image((1, 2, 3, 4))
    (y,) = loaded["tf1"].run({"x:0": x}, ["y:0"])
    np.testing.assert_array_equal(y, x * 2 + 1)


def test_keras2_style_several_outputs_in_fetch_order(loaded):
    x = image((1, 4, 2, 4))
    dense_1, dense = loaded["keras2"].run({"input_1": x}, ["dense_1", "dense"])
    np.testing.assert_array_equal(dense, x.sum(-1, keepdims=True))
    np.testing.assert_array_equal(dense_1, x * 3)
    (only,) = loaded["keras2"].run({"input_1": x}, ["dense"])
    np.testing.assert_array_equal(only, dense)


def test_keras3_list_outputs_are_output_0_and_output_1(loaded):
    x1, x2 = image((1, 2, 2, 4), 5), image((1, 2, 2, 4), 6)
    y0, y1 = loaded["keras3_list"].run({"x1": x1, "x2": x2}, ["output_0", "output_1"])
    np.testing.assert_array_equal(y0, x1 + x2)
    np.testing.assert_array_equal(y1, x1 - x2)


@pytest.mark.parametrize("k", [np.array(3.0, np.float32), np.float32(3.0), 3.0])
def test_rank0_placeholder_is_a_true_scalar(k, loaded):
    x = image((1, 2, 3, 4))
    (y,) = loaded["scalar"].run({"x": x, "k": k}, ["y"])
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, x * 3)


def test_int32_placeholder(loaded):
    x = image((1, 2, 2, 4))
    (y,) = loaded["int"].run({"x": x, "n": np.array([7], np.int32)}, ["y"])
    np.testing.assert_array_equal(y, x + 7)


def test_uint8_input(loaded):
    x = image((1, 3, 3, 2), high=256, dtype=np.uint8)
    (y,) = loaded["uint8"].run({"x": x}, ["y"])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32) * 2)


def test_conv_fcn_matches_numpy_and_shrinks_by_rf(loaded):
    x = image((2, 17, 12, 4), 9, high=100)
    (y,) = loaded["conv"].run({"x": x}, ["y"])
    assert y.shape == (2, 13, 8, 2)
    np.testing.assert_array_equal(y, models.conv_fcn_numpy(x))


@pytest.mark.parametrize("rf, channels", [(1, 3), (3, 2), (7, 4)])
def test_conv_fcn_receptive_fields(rf, channels, tmp_path):
    m = load_saved_model(models.build_conv_fcn(tmp_path / "m", rf=rf, channels=channels, seed=rf))
    assert m.inputs["x"].shape == (None, None, None, channels)
    x = image((1, rf + 4, rf + 2, channels), rf, high=20)
    (y,) = m.run({"x": x}, ["y"])
    assert y.shape == (1, 5, 3, 2)
    np.testing.assert_array_equal(y, models.conv_fcn_numpy(x, rf, channels, seed=rf))


def test_first_signature_is_served_without_serving_default(paths):
    with pytest.warns(UserWarning, match=r'no "serving_default" signature; serving "predict"'):
        m = load_saved_model(paths["other_signature"])
    assert m.signature_name == "predict" and list(m.inputs) == ["x"] and list(m.outputs) == ["y"]
    x = image((1, 2, 2, 3))
    np.testing.assert_array_equal(m.run({"x": x}, ["y"])[0], x + 1)


def test_explicit_tags(paths):
    m = load_saved_model(paths["tf1"], tags=["serve"])
    assert m.tags == ("serve",) and list(m.inputs) == ["x:0"]


# --- errors: one line, naming model.dir and the path ---------------------------------------------------------------

def one_line(excinfo, *parts):
    text = str(excinfo.value)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text
    return text


def test_missing_directory(tmp_path):
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(tmp_path / "missing")
    one_line(excinfo, "model.dir", str(tmp_path / "missing"), "does not exist")


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(tmp_path / "f")
    one_line(excinfo, "model.dir", "is not a directory")


def test_directory_without_saved_model_pb(tmp_path):
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(tmp_path)
    one_line(excinfo, "model.dir", str(tmp_path), "no saved_model.pb")


def test_wrong_tags_list_the_available_tag_sets(paths):
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(paths["add_one"], tags=["gpu"])
    one_line(excinfo, "model.dir", paths["add_one"], '"gpu"', "tag sets are: serve")
    with pytest.raises(ModelError, match="tag sets are: serve"):
        load_saved_model(paths["tf1"], tags=["serve", "gpu"])


def test_no_signatures(paths):
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(paths["nosig"])
    one_line(excinfo, "model.dir", "no signatures", f"saved_model_cli show --dir {paths['nosig']} --all")


def test_corrupt_saved_model(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(tmp_path)
    one_line(excinfo, "model.dir", str(tmp_path))


def test_loading_failure_for_another_reason(paths, tmp_path):
    import shutil

    broken = tmp_path / "novars"
    shutil.copytree(paths["add_one"], broken)
    shutil.rmtree(broken / "variables")
    with pytest.raises(ModelError) as excinfo:
        load_saved_model(broken)
    one_line(excinfo, "model.dir", str(broken), "cannot load")


def test_call_failure_is_one_line_with_the_inputs(loaded, paths):
    with pytest.raises(ModelError) as excinfo:
        loaded["add_one"].run({"x": np.ones((1, 2, 2, 3), np.float32)}, ["y"])
    text = one_line(excinfo, f"model.dir {paths['add_one']}: the model call failed: ", "(inputs: x (1, 2, 2, 3) float32)")
    assert "Graph execution error" not in text and "[Op:" not in text and "{{" not in text


def test_call_failure_inside_the_graph(loaded):
    with pytest.raises(ModelError) as excinfo:  # 4 channels but a 3-vector placeholder
        loaded["scalar_product_ax"].run({"x": image((1, 2, 2, 4)), "a": np.ones(3, np.float32)}, ["y"])
    one_line(excinfo, "the model call failed: Incompatible shapes", "a (3,) float32, x (1, 2, 2, 4) float32")


def test_feed_errors(loaded):
    m, x = loaded["scalar_product"], image((1, 2, 2, 4))
    with pytest.raises(ModelError) as excinfo:
        m.run({"x1": x}, ["y"])
    one_line(excinfo, "missing input(s) x2")
    with pytest.raises(ModelError) as excinfo:
        m.run({"x1": x, "x2": x, "z": x}, ["y"])
    one_line(excinfo, "unknown input(s) z")
    with pytest.raises(ModelError) as excinfo:
        m.run({"x1": x, "x2": x.astype(np.float64)}, ["y"])
    one_line(excinfo, 'input "x2" is float64 but the signature declares float32')
    with pytest.raises(ModelError) as excinfo:
        m.run({"x1": x, "x2": x}, ["z"])
    one_line(excinfo, "output(s) z not in the signature; available: y")


# --- process-level behaviour -------------------------------------------------------------------------------------

def run_python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})


def test_importing_eotensor_does_not_import_tensorflow():
    done = run_python("import eotensor, sys; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    assert done.returncode == 0, done.stderr


def test_loading_and_running_prints_nothing_on_stderr(paths):
    done = run_python(f"""
        import numpy as np
        from eotensor.runtimes.tensorflow import load_saved_model
        m = load_saved_model({paths['add_one']!r})
        print(m.run({{"x": np.zeros((1, 2, 2, 4), np.float32)}}, ["y"])[0].sum())
        m = load_saved_model({paths['tf1']!r})
        print(m.run({{"x:0": np.zeros((1, 2, 2, 4), np.float32)}}, ["y:0"])[0].sum())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["16.0", "16.0"] and done.stderr == ""


def test_set_threads_before_and_after_tensorflow_starts():
    done = run_python("""
        import sys
        from eotensor.runtimes.tensorflow import import_tensorflow, set_threads
        set_threads(2, 1)
        assert "tensorflow" not in sys.modules
        tf = import_tensorflow()
        assert tf.config.threading.get_intra_op_parallelism_threads() == 2
        assert tf.config.threading.get_inter_op_parallelism_threads() == 1
        tf.constant(1.0) + 1.0  # starts TF's runtime
        set_threads(2, 1)  # the sizes in force: nothing to say
        set_threads(None, None)
        print("ok")
        set_threads(3, 3)  # too late: ignored, with a warning for each pool
        assert tf.config.threading.get_intra_op_parallelism_threads() == 2
    """)
    assert done.returncode == 0, done.stderr
    out, err = done.stdout.split(), done.stderr.strip().splitlines()
    assert out == ["ok"] and len([line for line in err if "UserWarning" in line]) == 2, done.stderr
    assert "TensorFlow already runs in this process with 2 intra-op threads; 3 cannot apply any more" in err[0]


def test_load_model_threads_size_the_intra_op_pool(paths):
    done = run_python(f"""
        import warnings
        import numpy as np
        from eotensor import load_model
        m = load_model({paths['add_one']!r}, threads=2)
        m.run({{"x": np.zeros((1, 2, 2, 4), np.float32)}}, ["y"])
        import tensorflow as tf
        print(tf.config.threading.get_intra_op_parallelism_threads())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_model({paths['add_one']!r}, threads=2)  # same size: fine
            assert not caught, [str(w.message) for w in caught]
            load_model({paths['add_one']!r}, threads=3)
        print(len(caught), caught[0].message)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "2" and lines[1].startswith("1 TensorFlow already runs in this process with 2 intra-op"), lines


def test_saved_models_bind_sources_alphabetically(paths, tmp_path):
    """Decision 33: a SavedModel signature is unordered, so OTBTF's alphabetical rule holds (``a`` before ``b``)."""
    def write(name, value):
        return write_raster(tmp_path / name, np.full((1, 6, 8), value, np.float32), origin=(0, 0))

    model = load_saved_model(paths["difference"])
    assert list(model.inputs) == ["a", "b"] and not model.ordered_inputs
    one, ten = write("one.tif", 1), write("ten.tif", 10)
    got = eot.serve(paths["difference"], [eot.source(one), eot.source(ten)], fullyconv=True).read()
    assert (got == 10 - 1).all()  # y = b - a with a <- source1
    got = eot.serve(paths["difference"], [eot.source(ten, placeholder="a"), eot.source(one)], fullyconv=True).read()
    assert (got == 1 - 10).all()  # OTBTF: source2 takes the 2nd candidate, b
    with pytest.raises(ParameterError, match='model input "b" is fed twice'):  # ... even when source1 named it
        eot.serve(paths["difference"], [eot.source(one, placeholder="b"), eot.source(ten)], fullyconv=True)


def test_missing_tensorflow_names_the_extra(paths):
    done = run_python(f"""
        import sys
        sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
        from eotensor.errors import MissingDependencyError
        from eotensor.runtimes.tensorflow import load_saved_model
        try:
            load_saved_model({paths['add_one']!r})
        except MissingDependencyError as error:
            print(error)
    """)
    assert done.returncode == 0, done.stderr
    assert "pip install 'eotensor[tf]'" in done.stdout and len(done.stdout.strip().splitlines()) == 1


def test_xla_jit_is_bit_identical_on_exact_arithmetic_and_within_rounding_otherwise(paths):
    """What ``-model.jit on`` promises: the same bytes when every intermediate value is exact (integer-valued
    data through sums, products, matmuls and convolutions: the talk's models); otherwise XLA may fuse
    multiply-adds and reorder reductions, so results may differ in the last bits, within float32 rounding
    of the terms summed (TF 2.21 on CPU: up to 3 ulp on this model)."""
    x1, x2 = image((1, 64, 48, 4), seed=1), image((1, 64, 48, 4), seed=2)
    for name, feeds in (("scalar_product", {"x1": x1, "x2": x2}), ("round4", {"x1": x1, "x2": x2}),
                        ("conv", {"x": x1})):
        off, on = load_saved_model(paths[name]), load_saved_model(paths[name], jit=True)
        keys = list(off.outputs)
        np.testing.assert_array_equal(on.run(feeds, keys)[0], off.run(feeds, keys)[0])
    rng = np.random.default_rng(5)
    f1, f2 = (rng.random((1, 64, 48, 4), dtype=np.float32) * 100 for _ in range(2))
    off, on = load_saved_model(paths["fused"]), load_saved_model(paths["fused"], jit=True)
    got, want = on.run({"x1": f1, "x2": f2}, ["y"])[0], off.run({"x1": f1, "x2": f2}, ["y"])[0]
    terms = (np.abs(f1.astype(np.float64) * f2) + np.abs(f1 * 0.3)).sum(axis=-1)  # what the rounding scales with
    assert (np.abs(got.astype(np.float64) - want) <= 8 * np.finfo(np.float32).eps * terms).all()
