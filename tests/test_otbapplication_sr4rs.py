"""sr4rs's inference script (remicres/sr4rs, code/sr.py) runs on eotensor.otbApplication with only its import changed.

``sr_inference`` below repeats the script's calls to the ``otbApplication`` module, in its order, with its keys
(ReadImageInfo's ``datatype`` picks the output encoding; TensorflowModelServe with ``model.fullyconv`` set from
the string "on", ``optim.disabletiling`` from the int 1, a spacing scale of 1/4, ``streaming:*`` extended
filename keys and ``SetParameterOutputImagePixelType``), against a tiny SavedModel shaped like sr4rs's
generator: input ``lr_input``, outputs ``output_<pad>`` = a 4x upsampling cropped by ``pad`` HR pixels per side.
"""

import numpy as np
import pytest
import rasterio

from eotensor import otbApplication
from eotensor.apps.cli import main
from eotensor.samples import save_module
from eotensor.testing import write_raster

FACTORS = [1, 2, 4]          # sr4rs's constants.py
PADS = [32, 64, 128, 256, 512]


def sr_inference(otb, input_path, savedmodel, output, encoding="auto", pad=64, ts=512):
    """The ``otbApplication`` calls of sr4rs's sr.py (its argparse and logging left out)."""
    encodings = {"unsigned_char": otb.ImagePixelType_uint8, "short": otb.ImagePixelType_int16,
                 "unsigned_short": otb.ImagePixelType_uint16, "int": otb.ImagePixelType_int32,
                 "unsigned_int": otb.ImagePixelType_uint32, "float": otb.ImagePixelType_float,
                 "double": otb.ImagePixelType_double}
    assert ts % min(FACTORS) == 0 and pad in PADS
    ratio = 1.0 / float(max(FACTORS))
    rfield = int((ts + 2 * pad) * ratio)
    if encoding == "auto":
        infos = otb.Registry.CreateApplication("ReadImageInfo")
        infos.SetParameterString("in", input_path)
        infos.Execute()
        encoding = infos.GetParameterString("datatype")
    infer = otb.Registry.CreateApplication("TensorflowModelServe")
    infer.SetParameterStringList("source1.il", [input_path])
    infer.SetParameterInt("source1.rfieldx", rfield)
    infer.SetParameterInt("source1.rfieldy", rfield)
    infer.SetParameterString("source1.placeholder", "lr_input")
    infer.SetParameterString("model.dir", savedmodel)
    infer.SetParameterString("model.fullyconv", "on")
    infer.SetParameterStringList("output.names", [f"output_{pad}"])
    infer.SetParameterInt("output.efieldx", ts)
    infer.SetParameterInt("output.efieldy", ts)
    infer.SetParameterFloat("output.spcscale", ratio)
    infer.SetParameterInt("optim.tilesizex", ts)
    infer.SetParameterInt("optim.tilesizey", ts)
    infer.SetParameterInt("optim.disabletiling", 1)
    out_fn = output + ("?" if "?" not in output else "")
    out_fn += f"&streaming:type=tiled&streaming:sizemode=height&streaming:sizevalue={ts}"
    infer.SetParameterString("out", out_fn)
    infer.SetParameterOutputImagePixelType("out", encodings[encoding])
    infer.ExecuteAndWriteOutput()


def sr_generator(x, pad):
    """What the test's generator computes, in NumPy: nearest 4x upsampling of 2 x + 1, cropped by ``pad``."""
    up = np.repeat(np.repeat(2 * x.astype(np.float64) + 1, 4, axis=1), 4, axis=2)
    return up[:, pad:-pad, pad:-pad]


@pytest.fixture(scope="module")
def savedmodel(tmp_path_factory):
    def generator(lr_input):
        import tensorflow as tf

        up = tf.repeat(tf.repeat(lr_input * 2.0 + 1.0, 4, axis=1), 4, axis=2)
        return {f"output_{pad}": tf.identity(up[:, pad:-pad, pad:-pad, :]) for pad in (32, 64)}

    return save_module(tmp_path_factory.mktemp("sr4rs") / "savedmodel", generator,
                       {"lr_input": ([None, None, None, None], "float32")})


@pytest.mark.parametrize("pad, ts, dtype, encoding", [(32, 64, "uint16", "auto"), (64, 32, "int16", "auto"),
                                                      (32, 64, "uint16", "unsigned_char")])
def test_sr_py_call_sequence(tmp_path, savedmodel, pad, ts, dtype, encoding):
    rng = np.random.default_rng(4)
    lr = rng.integers(0, 300, size=(3, 45, 53)).astype(dtype)
    lr_path = write_raster(tmp_path / "lr.tif", lr, spacing=10.0)
    out = tmp_path / "hr.tif"
    sr_inference(otbApplication, lr_path, savedmodel, str(out), encoding=encoding, pad=pad, ts=ts)
    with rasterio.open(out) as ds:
        hr, transform, written = ds.read(), ds.transform, ds.dtypes[0]
    assert written == {"auto": dtype, "unsigned_char": "uint8"}[encoding]
    assert (transform.a, transform.e) == (2.5, -2.5)
    # The generator run on the whole LR image (as one block) gives every HR pixel: blocks of EF HR pixels from
    # RF LR pixels tile it exactly; values cast to the encoding as OTB casts (clamp, then truncate).
    whole = sr_generator(lr, pad)
    info = np.iinfo(written)
    np.testing.assert_array_equal(hr, np.clip(whole[:, :hr.shape[1], :hr.shape[2]], info.min, info.max)
                                  .astype(written))
    assert hr.shape[0] == 3 and hr.shape[1] >= ts and hr.shape[2] >= ts and hr.shape[1] % ts == 0
    # the same run on the command line (OTBTF's keys, only the program name changed) writes the same bytes
    cli = tmp_path / "cli.tif"
    rfield = str((ts + 2 * pad) // 4)
    assert main(["TensorflowModelServe", "-source1.il", lr_path, "-source1.rfieldx", rfield, "-source1.rfieldy", rfield,
                 "-source1.placeholder", "lr_input", "-model.dir", savedmodel, "-model.fullyconv", "on",
                 "-output.names", f"output_{pad}", "-output.efieldx", str(ts), "-output.efieldy", str(ts),
                 "-output.spcscale", "0.25", "-optim.disabletiling", "on", "-out", str(cli), written]) == 0
    with rasterio.open(cli) as ds:
        np.testing.assert_array_equal(ds.read(), hr)
        assert ds.transform == transform
