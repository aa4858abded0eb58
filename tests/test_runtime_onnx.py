"""The ONNX runtime and the runtime registry: real ONNX graphs built by the tests, served like SavedModels."""

from __future__ import annotations

import os
import textwrap
import warnings

import numpy as np
import pytest
import rasterio

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import EotensorError, ModelError, ParameterError
from eotensor.runtimes import registry
from eotensor.testing import assert_tiled_equals_untiled, write_raster
from models import conv_fcn_numpy

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from onnx_models import onnx_add_one, onnx_conv, onnx_difference, onnx_patch_sum  # noqa: E402


@pytest.fixture
def image(tmp_path):
    data = np.random.default_rng(3).integers(-50, 50, size=(4, 37, 45)).astype(np.int16)
    return write_raster(tmp_path / "img.tif", data), data


def test_nhwc_graph_through_the_cli_equals_numpy(image, tmp_path):
    path, data = image
    model = onnx_add_one(tmp_path / "add.onnx")
    out = tmp_path / "out.tif"
    assert main(["TensorflowModelServe", "-source1.il", path, "-model.dir", model, "-model.fullyconv", "on",
                 "-optim.tilesizex", "16", "-optim.tilesizey", "8", "-out", str(out)]) == 0
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), data + 1)


@pytest.mark.parametrize("layout", [None, "nchw"])
def test_nchw_cnn_is_inferred_and_tiled_equals_untiled_equals_numpy(image, tmp_path, layout):
    path, data = image
    model = onnx_conv(tmp_path / "conv.onnx", rf=5)
    served = eot.serve(model, eot.source(path, 5), fullyconv=True, layout=layout)
    assert served.engine.layout == "nchw" and served.count == 2
    result = assert_tiled_equals_untiled(served.engine, [(8, 8), (5, 13), (64, 64)])
    expected = conv_fcn_numpy(data.transpose(1, 2, 0)[None])[0].transpose(2, 0, 1)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.tf
def test_onnx_and_tensorflow_give_identical_bytes(image, tmp_path):
    from models import build_conv_fcn

    path, _ = image
    onnx_out = eot.serve(onnx_conv(tmp_path / "conv.onnx", rf=3), eot.source(path, 3), fullyconv=True).read()
    tf_out = eot.serve(build_conv_fcn(tmp_path / "conv_tf", rf=3), eot.source(path, 3), fullyconv=True).read()
    np.testing.assert_array_equal(onnx_out, tf_out)


def test_patch_based_nchw_graph(tmp_path):
    data = np.random.default_rng(4).integers(0, 9, size=(3, 20, 23)).astype(np.uint8)
    path = write_raster(tmp_path / "p.tif", data)
    served = eot.serve(onnx_patch_sum(tmp_path / "p.onnx"), eot.source(path, 5), batch_size=7)
    result = assert_tiled_equals_untiled(served.engine, [(3, 4), (16, 16)])
    windows = np.lib.stride_tricks.sliding_window_view(data.astype(np.float32), (5, 5), axis=(1, 2))
    np.testing.assert_array_equal(result, windows.sum(axis=(3, 4)))


def test_sources_bind_in_the_graphs_declared_order(tmp_path):
    one = write_raster(tmp_path / "one.tif", np.full((1, 6, 7), 10, np.int16))
    two = write_raster(tmp_path / "two.tif", np.full((1, 6, 7), 3, np.int16))
    served = eot.serve(onnx_difference(tmp_path / "d.onnx"), [eot.source(one), eot.source(two)], fullyconv=True)
    assert (served.read() == 7).all()  # source1 feeds "b", the first input declared, although "a" sorts first


def test_layout_that_cannot_be_inferred_asks_for_model_layout(image, tmp_path):
    path, _ = image
    model = onnx_conv(tmp_path / "c.onnx", rf=3, declared_channels=False)
    with pytest.raises(ParameterError, match=r"model.layout: cannot tell .* input \"x\" \[\?, \?, \?, \?\] gets 4 "
                                             r"band\(s\) from source1.il\); give -model.layout nhwc or nchw"):
        eot.serve(model, eot.source(path, 3), fullyconv=True)
    assert eot.serve(model, eot.source(path, 3), fullyconv=True, layout="nchw").count == 2


def test_declared_channels_that_disagree_with_the_source(tmp_path):
    data = np.zeros((3, 10, 10), np.int16)
    path = write_raster(tmp_path / "three.tif", data)
    with pytest.raises(ParameterError, match="source1.il: 3 band.* model input \"x\" expects 4 channels"):
        eot.serve(onnx_conv(tmp_path / "c.onnx", rf=3), eot.source(path, 3), fullyconv=True, layout="nchw")


def test_cli_errors_are_one_line(image, tmp_path, capsys):
    path, _ = image
    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"not a protobuf")
    unknown = tmp_path / "model.xyz"
    unknown.write_text("?")
    cases = [
        (["-model.dir", str(corrupt)], 'model.dir: cannot load ".*bad.onnx" as an ONNX graph'),
        (["-model.dir", str(unknown)], r'model.dir: no runtime opens ".*model.xyz"; expected one of: python: .*'
                                       r"onnx: ONNX graphs \(.onnx\)"),
        (["-model.dir", str(tmp_path / "missing.onnx")], "model.dir: .*missing.onnx.* does not exist"),
        (["-model.dir", onnx_add_one(tmp_path / "a.onnx"), "-model.runtime", "caffe"],
         'model.runtime: unknown runtime "caffe"; installed: python'),
        (["-model.dir", onnx_add_one(tmp_path / "a.onnx"), "-model.device", "tpu"],
         'model.device: "tpu" is not a device; expected cpu, cuda, cuda:N or auto'),
        (["-model.dir", onnx_add_one(tmp_path / "a.onnx"), "-model.layout", "chw"],
         "model.layout expects one of auto, nhwc, nchw"),
    ]
    for extra, expected in cases:
        code = main(["TensorflowModelServe", "-source1.il", path, "-model.fullyconv", "on", *extra,
                     "-out", str(tmp_path / "o.tif")])
        err = capsys.readouterr().err.strip()
        assert code != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert __import__("re").search(expected, err), err
    assert not os.path.exists(tmp_path / "o.tif")


def test_cuda_asked_for_without_a_cuda_provider_is_an_error(image, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider")
    path, _ = image
    with pytest.raises(ModelError, match='model.device: "cuda" asked for, but ONNX Runtime has no CUDA provider'):
        eot.serve(onnx_add_one(tmp_path / "a.onnx"), eot.source(path), fullyconv=True, device="cuda")
    auto = eot.serve(onnx_add_one(tmp_path / "a.onnx"), eot.source(path), fullyconv=True, device="auto")
    assert "CPUExecutionProvider" in auto.engine.model.session.get_providers()


def test_threads_reach_onnx_runtime_and_tensorflow_options_warn(tmp_path):
    model = onnx_add_one(tmp_path / "a.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = eot.load_model(model, threads=1)
    assert loaded.session.get_session_options().intra_op_num_threads == 1
    with pytest.warns(UserWarning, match="served by the onnx runtime: jit ignored"):
        eot.load_model(model, jit=True)


def test_a_third_party_runtime_registers_through_an_entry_point(tmp_path, monkeypatch, image):
    """A plug-in package (a real distribution on sys.path) adds a runtime for ``.npy`` "models"."""
    path, data = image
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "npy_runtime.py").write_text(textwrap.dedent('''
        import numpy as np
        from eotensor.runtimes import FunctionModel, Runtime

        def load(path, options, param):
            offset = float(np.load(path))
            return FunctionModel(lambda x: x + offset, ["x"], ["y"])

        RUNTIME = Runtime("npy", "offsets in .npy files", lambda p: p.endswith(".npy"), load)
    '''))
    info = package / "npy_runtime-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npy-runtime\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[eotensor.runtimes]\nnpy = npy_runtime:RUNTIME\n")
    monkeypatch.syspath_prepend(str(package))
    assert "npy" in registry.runtimes()
    np.save(tmp_path / "offset.npy", np.float32(5))
    served = eot.serve(str(tmp_path / "offset.npy"), eot.source(path), fullyconv=True)
    np.testing.assert_array_equal(served.read(), data + 5)


def test_a_runtime_whose_module_is_missing_names_the_extra(tmp_path, monkeypatch):
    fake = registry.Runtime("fake", "fake models (.fake)", lambda p: p.endswith(".fake"),
                            lambda p, o, q: None, requires="no_such_module_xyz", extra="fake")
    monkeypatch.setattr(registry, "BUILTIN", (*registry.BUILTIN, fake))
    (tmp_path / "m.fake").write_text("")
    with pytest.raises(EotensorError, match=r"needs the fake runtime \(no_such_module_xyz\), which is not installed; "
                                            r"pip install 'eotensor\[fake\]'"):
        eot.load_model(str(tmp_path / "m.fake"))


def test_rank4_user_placeholder_stays_in_the_models_layout(tmp_path):
    from onnx_models import onnx_add_bias

    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    path = write_raster(tmp_path / "x.tif", data)
    bias = np.array([10, 20, 30], np.float32).reshape(1, 3, 1, 1)
    served = eot.serve(onnx_add_bias(tmp_path / "b.onnx"), eot.source(path), fullyconv=True,
                       user_placeholders={"b": bias})
    np.testing.assert_array_equal(served.read(), data + bias.reshape(3, 1, 1))


def test_pixels_that_do_not_fit_the_input_type_are_an_error(tmp_path):
    from onnx_models import onnx_uint8_identity

    path = write_raster(tmp_path / "neg.tif", np.array([[[-3, 4], [5, 6]]], np.int16))
    served = eot.serve(onnx_uint8_identity(tmp_path / "u8.onnx"), eot.source(path), fullyconv=True)
    with pytest.raises(ModelError, match=r'source1.il: pixel values -3..6 do not fit model input "x" \(uint8: 0..255\)'):
        served.read()


def test_a_fixed_batch_of_one_is_fed_one_patch_at_a_time(tmp_path):
    from onnx_models import onnx_uint8_identity

    data = np.random.default_rng(0).integers(0, 200, size=(1, 9, 8)).astype(np.uint8)
    path = write_raster(tmp_path / "p.tif", data)
    served = eot.serve(onnx_uint8_identity(tmp_path / "one.onnx", batch=1, patch=1), eot.source(path), layout="nhwc")
    assert served.engine.batch_size == 1
    np.testing.assert_array_equal(served.read()[0], data[0])


def test_onnx_failures_keep_the_telling_part(tmp_path):
    data = np.zeros((3, 12, 12), np.uint8)
    path = write_raster(tmp_path / "p.tif", data)
    served = eot.serve(onnx_patch_sum(tmp_path / "p.onnx"), eot.source(path, 3))  # the model wants 5 x 5
    with pytest.raises(ModelError, match="Got: 3 Expected: 5"):
        served.read()


def test_declared_channels_at_one_position_that_disagree(tmp_path):
    path = write_raster(tmp_path / "three.tif", np.zeros((3, 10, 10), np.int16))
    with pytest.raises(ParameterError, match=r'source1.il: 3 band\(s\), but model input "x" \[\?, 4, \?, \?\] declares '
                                             r"4 channels \(NCHW\)"):
        eot.serve(onnx_conv(tmp_path / "c.onnx", rf=3), eot.source(path, 3), fullyconv=True)


def test_device_asked_of_a_runtime_without_devices_is_an_error(tmp_path):
    model = tmp_path / "m.py"
    model.write_text("def model(x):\n    return x\n")
    with pytest.raises(ModelError, match='model.device: "cuda" asked for, but the python runtime does not place'):
        eot.load_model(str(model), device="cuda")


def test_a_plugin_runtime_that_fails_is_one_line(tmp_path, monkeypatch):
    def broken(path, options, param):
        raise RuntimeError("bad weights\nmore detail")

    fake = registry.Runtime("broken", "broken models (.brk)", lambda p: p.endswith(".brk"), broken)
    monkeypatch.setattr(registry, "BUILTIN", (*registry.BUILTIN, fake))
    (tmp_path / "m.brk").write_text("")
    with pytest.raises(ModelError, match=r'model.dir: the broken runtime failed on ".*m.brk" \(bad weights\)$'):
        eot.load_model(str(tmp_path / "m.brk"))


def test_optim_batchsize_changes_the_calls_not_the_result(tmp_path):
    data = np.random.default_rng(9).integers(0, 9, size=(3, 14, 13)).astype(np.uint8)
    path = write_raster(tmp_path / "p.tif", data)
    model = onnx_patch_sum(tmp_path / "p.onnx")
    outs = []
    for size in ("7", "256"):
        out = tmp_path / f"b{size}.tif"
        assert main(["TensorflowModelServe", "-source1.il", path, "-source1.rfieldx", "5", "-source1.rfieldy", "5",
                     "-model.dir", model, "-optim.batchsize", size, "-out", str(out)]) == 0
        with rasterio.open(out) as ds:
            outs.append(ds.read())
    np.testing.assert_array_equal(outs[0], outs[1])
    windows = np.lib.stride_tricks.sliding_window_view(data.astype(np.float32), (5, 5), axis=(1, 2))
    np.testing.assert_array_equal(outs[0], windows.sum(axis=(3, 4)))
