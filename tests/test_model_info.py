"""ModelInfo: the report, and the probe of RF, EF and spacing scale on nets whose fields are known."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from eotensor.apps.cli import main
from eotensor.apps.model_info import ModelInfo

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from onnx_models import onnx_conv, onnx_patch_sum  # noqa: E402
from torch_models import export_conv  # noqa: E402


class Strided(torch.nn.Module):
    """Two valid 3x3 convolutions, the second with stride 2: RF 5, S 2."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 3, 3), torch.nn.Conv2d(3, 1, 3, stride=2)

    def forward(self, x):
        return self.b(self.a(x))


class SuperResolution(torch.nn.Module):
    """A valid 3x3 convolution then nearest x4 upsampling: RF 3, EF 4, S 1/4 (integer weights: exact sums)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3)
        generator = torch.Generator().manual_seed(0)
        self.conv.weight.data = torch.randint(-1, 2, self.conv.weight.shape, generator=generator).float()
        self.conv.bias.data = torch.zeros(2)

    def forward(self, x):
        return torch.nn.functional.interpolate(self.conv(x), scale_factor=4, mode="nearest")


def _export(module, path, channels):
    dims = {"x": {2: torch.export.Dim("rows", min=8, max=2048), 3: torch.export.Dim("cols", min=8, max=2048)}}
    program = torch.export.export(module.eval(), (torch.zeros(1, channels, 33, 35),), dynamic_shapes=dims)
    torch.export.save(program, str(path))
    return str(path)


@pytest.mark.parametrize("make, fields", [
    (lambda p: onnx_conv(p / "c.onnx", rf=5), ((5, 5), (1, 1), Fraction(1))),
    (lambda p: export_conv(p / "c.pt2", rf=3, min_size=16), ((3, 3), (1, 1), Fraction(1))),
    (lambda p: _export(Strided(), p / "s.pt2", 3), ((5, 5), (1, 1), Fraction(2))),
    (lambda p: _export(SuperResolution(), p / "sr.pt2", 2), ((3, 3), (4, 4), Fraction(1, 4))),
])
def test_probe_finds_the_known_fields(tmp_path, make, fields):
    report = ModelInfo(model_dir=make(tmp_path))
    assert report.layout == "nchw"
    assert (report.probe.rfield, report.probe.efield, report.probe.scale) == fields, report.why


@pytest.mark.tf
def test_report_of_a_savedmodel_through_the_cli(tmp_path, capsys):
    from models import build_conv_fcn

    assert main(["ModelInfo", "-model.dir", build_conv_fcn(tmp_path / "m", rf=5)]) == 0
    out = capsys.readouterr().out
    assert "Runtime: tensorflow" in out and "Layout: NHWC" in out and "alphabetical order" in out
    assert "-source1.rfieldx 5 -source1.rfieldy 5 -output.efieldx 1 -output.efieldy 1 -output.spcscale 1" in out


def test_patch_based_model_is_reported_not_probed(tmp_path):
    report = ModelInfo(model_dir=onnx_patch_sum(tmp_path / "p.onnx"))
    assert report.probe is None and "has a fixed shape [3, 5, 5]: a patch-based model" in report.why
    assert "Fields: not probed" in str(report)


def test_probed_fields_serve_the_model_seamlessly(tmp_path):
    import eotensor as eot
    from eotensor.testing import assert_tiled_equals_untiled, write_raster

    model = _export(SuperResolution(), tmp_path / "sr.pt2", 2)
    probe = ModelInfo(model_dir=model).probe
    data = np.random.default_rng(2).integers(0, 9, size=(2, 30, 27)).astype(np.uint8)
    path = write_raster(tmp_path / "img.tif", data)
    served = eot.serve(model, eot.source(path, probe.rfield), efield=probe.efield, spcscale=float(probe.scale),
                       fullyconv=True)
    # Small tiles are grown so that every model input stays within the program's range (>= 8 pixels).
    assert_tiled_equals_untiled(served.engine, [(8, 8), (12, 20)])


def test_autofields_serve_like_the_probed_flags(tmp_path, capsys):
    import rasterio

    from eotensor.testing import write_raster

    model = _export(SuperResolution(), tmp_path / "sr.pt2", 2)
    data = np.random.default_rng(3).integers(0, 9, size=(2, 21, 19)).astype(np.uint8)
    path = write_raster(tmp_path / "img.tif", data)
    common = ["TensorflowModelServe", "-source1.il", path, "-model.dir", model, "-optim.tilesizex", "16",
              "-optim.tilesizey", "16"]
    assert main([*common, "-model.autofields", "on", "-out", str(tmp_path / "auto.tif")]) == 0
    assert "model.autofields: source1 RF 3x3, EF 4x4, spacing scale 0.25" in capsys.readouterr().err
    assert main([*common, "-source1.rfieldx", "3", "-source1.rfieldy", "3", "-output.efieldx", "4",
                 "-output.efieldy", "4", "-output.spcscale", "0.25", "-model.fullyconv", "on",
                 "-out", str(tmp_path / "flags.tif")]) == 0
    with rasterio.open(tmp_path / "auto.tif") as a, rasterio.open(tmp_path / "flags.tif") as b:
        assert a.shape == (76, 68) and a.transform == b.transform
        np.testing.assert_array_equal(a.read(), b.read())
    assert main([*common, "-model.autofields", "on", "-model.fullyconv", "off", "-out", str(tmp_path / "x.tif")]) == 1
    assert "model.autofields: probes fully-convolutional models" in capsys.readouterr().err


def test_padded_convolutions_are_not_given_fields(tmp_path):
    dims = ({2: torch.export.Dim("rows", min=8, max=2048), 3: torch.export.Dim("cols", min=8, max=2048)},)
    program = torch.export.export(torch.nn.Conv2d(3, 2, 5, padding=2).eval(), (torch.zeros(1, 3, 33, 35),),
                                  dynamic_shapes=dims)
    torch.export.save(program, tmp_path / "same.pt2")
    report = ModelInfo(model_dir=str(tmp_path / "same.pt2"))
    assert report.probe is None and "the model pads its borders" in report.why


def test_probe_uses_sizes_that_are_multiples_of_the_programs_step(tmp_path):
    """A valid convolution after which the program pools by 2 needs even inputs; the probe still finds RF/EF/S."""

    class PoolAfterConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return torch.nn.functional.avg_pool2d(self.conv(x[:, :, 1:, 1:]), 2)

    dims = ({2: 2 * torch.export.Dim("a", min=8, max=1024), 3: 2 * torch.export.Dim("b", min=8, max=1024)},)
    program = torch.export.export(PoolAfterConv().eval(), (torch.zeros(1, 3, 34, 36),), dynamic_shapes=dims)
    torch.export.save(program, tmp_path / "pool.pt2")
    report = ModelInfo(model_dir=str(tmp_path / "pool.pt2"))
    assert report.probe is not None, report.why
    assert float(report.probe.scale) == 2 and report.probe.efield == (1, 1)


def test_a_net_that_only_takes_multiples_of_16_is_probed_with_such_sizes():
    """A stride-16 encoder-decoder refuses 32 x 35 inputs: the probe retries with multiples of 2, 4, 8, 16."""
    from eotensor.engine.probe import probe_model
    from eotensor.errors import ModelError
    from eotensor.runtimes import FunctionModel

    def pooled(x):
        rows, cols = x.shape[1], x.shape[2]
        if rows % 16 or cols % 16:
            raise ModelError(f"Incompatible shapes for {rows} x {cols}")
        blocks = x.reshape(1, rows // 16, 16, cols // 16, 16, x.shape[3]).max(axis=(2, 4))
        return {"y": np.repeat(np.repeat(blocks, 16, axis=1), 16, axis=2)[:, 8:-8, 8:-8]}  # crop 8: RF 32, EF 16

    probe, why = probe_model(FunctionModel(pooled, ["x"], ["y"]), "nhwc", bands=2)
    assert probe is not None, why
    assert (probe.rfield, probe.efield, probe.scale) == ((32, 32), (16, 16), Fraction(1))
