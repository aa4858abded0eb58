"""pyotb 2.2 unchanged on eotensor.otbApplication.install(): apps as objects, chaining, write, to_numpy.

pyotb is not a dependency: this module runs only where pyotb can be imported (``pip install --no-deps
pyotb==2.2.*``; its ``numpy<2`` pin is the only obstacle, and pyotb never needs more than NumPy's basics).
Operators and slicing go through eotensor's BandMath(X) and ExtractROI apps.
"""

import os
import sys

import numpy as np
import pytest
import rasterio

from eotensor import otbApplication
from eotensor.testing import write_raster


@pytest.fixture(scope="module")
def pyotb():
    if "otbApplication" in sys.modules and sys.modules["otbApplication"] is not otbApplication:
        pytest.skip("OTB's own otbApplication is imported")
    previous = os.environ.get("OTB_APPLICATION_PATH")
    os.environ["OTB_APPLICATION_PATH"] = ""  # pyotb then does not look for OTB's libraries on disk
    otbApplication.install()
    try:
        yield pytest.importorskip("pyotb")
    finally:
        otbApplication.uninstall()
        if previous is None:
            del os.environ["OTB_APPLICATION_PATH"]
        else:
            os.environ["OTB_APPLICATION_PATH"] = previous


def test_pyotb_apps_chain_write_and_export(pyotb, tmp_path):
    image = np.random.default_rng(0).integers(0, 3000, size=(3, 21, 17)).astype(np.uint16)
    path = write_raster(tmp_path / "a.tif", image)
    model = tmp_path / "m.py"
    model.write_text("def model(x):\n    return x * 2 + 1\n")
    assert {"TensorflowModelServe", "ReadImageInfo"} <= set(pyotb.AVAILABLE_APPLICATIONS)
    first = pyotb.TensorflowModelServe({"source1.il": [path], "model.dir": str(model), "model.fullyconv": True})
    assert first.shape == (21, 17, 3) and first.dtype == "float32"
    second = pyotb.TensorflowModelServe({"source1.il": [first], "model.dir": str(model)})   # ConnectImage
    x = np.moveaxis(image, 0, -1).astype(np.float32)
    np.testing.assert_array_equal(second.to_numpy(), (x * 2 + 1) * 2 + 1)
    assert second.write(str(tmp_path / "o.tif"), pixel_type="uint16")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.dtypes[0] == "uint16"
        np.testing.assert_array_equal(ds.read(), image.astype(np.float64) * 4 + 3)
        assert second.transform == tuple(ds.transform)[:6]
    info = pyotb.ReadImageInfo(path, quiet=True)
    assert (info["datatype"], info["sizex"], info["numberbands"]) == ("unsigned_short", 17, 3)


def test_pyotb_input_slicing_and_operators(pyotb, tmp_path):
    image = np.random.default_rng(1).integers(1, 3000, size=(4, 23, 19)).astype(np.uint16)
    path = write_raster(tmp_path / "b.tif", image)
    x = np.moveaxis(image, 0, -1).astype(np.float64)
    inp = pyotb.Input(path)  # ExtractROI
    assert inp.shape == (23, 19, 4)
    np.testing.assert_array_equal(inp[2:9, 3:7, 1].to_numpy()[..., 0], x[2:9, 3:7, 1])  # ExtractROI extent + cl
    ndvi = (inp[:, :, 3] - inp[:, :, 2]) / (inp[:, :, 3] + inp[:, :, 2])  # BandMath(X) through the module
    want = (x[..., 3] - x[..., 2]) / (x[..., 3] + x[..., 2])
    np.testing.assert_allclose(ndvi.to_numpy()[..., 0], want.astype(np.float32), rtol=1e-6)
    mask = pyotb.where(inp[:, :, 0] > 1500, 1, 0)
    np.testing.assert_array_equal(mask.to_numpy()[..., 0], (x[..., 0] > 1500).astype(np.float32))
