"""The PyTorch runtime: real torch.export programs and TorchScript modules built by the tests."""

from __future__ import annotations

import numpy as np
import pytest

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import ModelError, ParameterError
from eotensor.testing import assert_tiled_equals_untiled, write_raster
from models import conv_fcn_numpy

torch = pytest.importorskip("torch")

from torch_models import TupleNet, export_conv, script  # noqa: E402


@pytest.fixture
def image(tmp_path):
    data = np.random.default_rng(5).integers(-40, 40, size=(4, 33, 41)).astype(np.int16)
    return write_raster(tmp_path / "img.tif", data), data


def _record_calls(model):
    """Wrap ``model.run`` so that the shape of every ``x`` it is called on is recorded; return that list."""
    calls, run = [], model.run

    def spy(feeds, fetches):
        calls.append(feeds["x"].shape)
        return run(feeds, fetches)

    model.run = spy
    return calls


def _numpy_conv(data, rf):
    return conv_fcn_numpy(data.transpose(1, 2, 0)[None], rf=rf)[0].transpose(2, 0, 1)


def test_exported_program_is_nchw_inferred_tiled_equals_untiled_equals_numpy(image, tmp_path):
    path, data = image
    served = eot.serve(export_conv(tmp_path / "conv.pt2", rf=5), eot.source(path, 5), fullyconv=True,
                       output_names="y")
    assert served.engine.layout == "nchw" and served.count == 2
    result = assert_tiled_equals_untiled(served.engine, [(8, 8), (6, 19), (64, 64)])
    np.testing.assert_array_equal(result, _numpy_conv(data, 5))


def test_torchscript_through_the_cli_with_an_explicit_layout(image, tmp_path):
    import rasterio

    path, data = image
    model = script(tmp_path / "tuple.pt", TupleNet())
    out = tmp_path / "out.tif"
    assert main(["TensorflowModelServe", "-source1.il", path, "-model.dir", model, "-model.fullyconv", "on",
                 "-model.layout", "nchw", "-output.names", "output_1", "output_0", "-out", str(out)]) == 0
    with rasterio.open(out) as ds:
        result = ds.read()
    np.testing.assert_array_equal(result[0], data.sum(axis=0))
    np.testing.assert_array_equal(result[1:], data + 1)


def test_torchscript_without_layout_asks_for_it(image, tmp_path):
    path, _ = image
    with pytest.raises(ParameterError, match="give -model.layout nhwc or nchw"):
        eot.serve(script(tmp_path / "t.pt", TupleNet()), eot.source(path), fullyconv=True)


@pytest.mark.tf
def test_tensorflow_onnx_and_pytorch_give_identical_bytes(image, tmp_path):
    pytest.importorskip("onnxruntime")
    from models import build_conv_fcn
    from onnx_models import onnx_conv

    path, _ = image
    results = [eot.serve(model, eot.source(path, 3), fullyconv=True).read() for model in (
        build_conv_fcn(tmp_path / "tf", rf=3), onnx_conv(tmp_path / "c.onnx", rf=3),
        export_conv(tmp_path / "c.pt2", rf=3))]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.tf
def test_a_float_cnn_agrees_across_runtimes_within_1e_5(image, tmp_path):
    """Float weights: each runtime rounds in its own order; the results agree to float32 rounding."""
    pytest.importorskip("onnxruntime")
    from models import build_conv_fcn
    from onnx_models import onnx_conv

    path, _ = image
    tf_out, onnx_out, torch_out = [eot.serve(model, eot.source(path, 5), fullyconv=True).read() for model in (
        build_conv_fcn(tmp_path / "tf", rf=5, floats=True), onnx_conv(tmp_path / "c.onnx", rf=5, floats=True),
        export_conv(tmp_path / "c.pt2", rf=5, floats=True))]
    scale = np.abs(tf_out).max()
    for other in (onnx_out, torch_out):
        assert np.abs(other - tf_out).max() <= 1e-5 * scale


def test_range_constraints_are_read_and_never_violated(image, tmp_path):
    path, data = image
    expected = _numpy_conv(data, 3)
    model = export_conv(tmp_path / "min16.pt2", rf=3, min_size=16, max_size=24)
    loaded = eot.load_model(model)
    assert loaded.limits == {"x": {2: (16, 24), 3: (16, 24)}}
    calls = _record_calls(loaded)
    served = eot.serve(loaded, eot.source(path, 3), fullyconv=True)
    # Tiles of 4 are grown, tiles of 64 split, so that every call stays within 16..24 rows and columns.
    result = assert_tiled_equals_untiled(served.engine, [(4, 4), (64, 64), (5, 17)])
    np.testing.assert_array_equal(result, expected)
    assert calls and all(16 <= h <= 24 and 16 <= w <= 24 for _, _, h, w in calls), set(calls)


def test_range_constraints_that_no_tile_can_meet_are_one_line(tmp_path):
    data = np.zeros((4, 12, 40), np.int16)
    path = write_raster(tmp_path / "thin.tif", data)
    served = eot.serve(export_conv(tmp_path / "min16.pt2", rf=3, min_size=16), eot.source(path, 3), fullyconv=True)
    with pytest.raises(ModelError, match=r"size limits cannot be met: the whole image gives source1 feeds \"x\" 12 "
                                         r"rows \(it accepts 16..4096\); change sourceN.rfieldy"):
        served.read()


def test_threads_device_and_bad_files(tmp_path):
    model = export_conv(tmp_path / "c.pt2", rf=3)
    eot.load_model(model, threads=1)
    assert torch.get_num_threads() == 1
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match='model.device: "cuda" asked for, but PyTorch sees no CUDA device'):
            eot.load_model(model, device="cuda")
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r'model.dir: cannot load ".*bad.pt2" as a torch.export program'):
        eot.load_model(str(bad))


def test_nested_outputs_are_refused_at_load(tmp_path):
    class Nested(torch.nn.Module):
        def forward(self, x):
            return x + 1, (x + 2, x + 3)

    program = torch.export.export(Nested(), (torch.zeros(2, 3, 8, 8),))
    torch.export.save(program, tmp_path / "n.pt2")
    with pytest.raises(ModelError, match="returns nested outputs"):
        eot.load_model(str(tmp_path / "n.pt2"))
    with pytest.raises(ModelError, match=r"TorchScript module returning Tuple\[Tensor, Tuple\[Tensor, Tensor\]\]"):
        eot.load_model(script(tmp_path / "n.pt", Nested()))


def test_sizes_exported_as_multiples_are_met_by_growing_windows(tmp_path):
    """A program exported with rows and columns = 4 * Dim (what a U-Net's pooling asks) is only called on
    multiples of 4, whatever the tiles; an image whose every window stays odd is a one-line error."""

    class AddOne(torch.nn.Module):
        def forward(self, x):
            return x + 1

    dims = ({0: torch.export.Dim("n"), 2: 4 * torch.export.Dim("a", max=256), 3: 4 * torch.export.Dim("b", max=256)},)
    program = torch.export.export(AddOne(), (torch.zeros(2, 3, 16, 20),), dynamic_shapes=dims)
    torch.export.save(program, tmp_path / "mult4.pt2")
    loaded = eot.load_model(str(tmp_path / "mult4.pt2"))
    assert loaded.steps == {"x": {2: 4, 3: 4}}
    calls = _record_calls(loaded)
    data = np.random.default_rng(1).integers(0, 99, size=(3, 30, 27)).astype(np.int16)
    served = eot.serve(loaded, eot.source(write_raster(tmp_path / "img.tif", data)), fullyconv=True)
    result = assert_tiled_equals_untiled(served.engine, [(5, 5), (7, 9)])
    np.testing.assert_array_equal(result, data + 1)
    assert all(h % 4 == 0 and w % 4 == 0 for _, _, h, w in calls), set(calls)
