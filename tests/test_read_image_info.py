"""ReadImageInfo: the same text and output parameters as otbcli_ReadImageInfo (Debian otb-bin) on the same files."""

import math
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import rasterio
import rasterio.errors
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

from eotensor import otbApplication as otb
from eotensor.apps.cli import main
from eotensor.testing import write_raster

OTB = shutil.which("otbcli_ReadImageInfo")
NOT_COMPARED = ("estimatedgroundspacingx", "estimatedgroundspacingy", "metadata")
"""OTB's ground spacing estimate (geodesic, through its sensor models) and its metadata dump are not reproduced."""


def _gcp_file(path):
    with warnings.catch_warnings():  # no geotransform yet: the GCPs come next
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8")
    with ds:
        ds.write(np.arange(12, dtype=np.uint8).reshape(1, 3, 4))
        ds.gcps = ([GroundControlPoint(0, 0, 1.5, 44.0, 0), GroundControlPoint(3, 4, 2.0, 43.0, 10)],
                   CRS.from_epsg(4326))
    return str(path)


FILES = {
    "uint16_nodata": lambda p: write_raster(p, np.arange(70, dtype=np.uint16).reshape(2, 5, 7), nodata=3),
    "float_rect_spacing": lambda p: write_raster(p, np.zeros((1, 4, 6), np.float32), spacing=(2.5, 5.0)),
    "float_nan_nodata": lambda p: write_raster(p, np.zeros((1, 3, 3), np.float32), nodata=float("nan")),
    "int16": lambda p: write_raster(p, np.zeros((3, 2, 2), np.int16), origin=(-1000.25, 20.5), spacing=0.5),
    "int32": lambda p: write_raster(p, np.zeros((1, 2, 2), np.int32)),
    "uint32": lambda p: write_raster(p, np.zeros((1, 2, 2), np.uint32)),
    "double": lambda p: write_raster(p, np.zeros((1, 2, 2), np.float64), nodata=0),
    "geographic": lambda p: write_raster(p, np.zeros((1, 3, 3), np.uint8), crs="EPSG:4326", origin=(1.0, 44.0),
                                         spacing=0.25),
    "no_crs": lambda p: write_raster(p, np.zeros((4, 4, 6), np.uint8), crs=None),
    "gcps": _gcp_file,
}


def _sections(text):
    """(general lines without OTB's ground spacing estimate, {key: value} of "Output parameters value")."""
    general = text[text.index("Image general information:"):text.index("Output parameters value:")]
    lines = [line for line in general.splitlines() if "Estimated ground spacing" not in line]
    values = {}
    for line in text[text.index("Output parameters value:"):].splitlines()[1:]:
        key, sep, value = line.partition(": ")
        if sep or line.endswith(":"):
            values[key.rstrip(":")] = value
    return lines, values


def _otb(path):
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1", "OTB_LOGGER_LEVEL": "INFO"}
    done = subprocess.run([OTB, "-in", path], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return _sections(done.stdout + done.stderr)


@pytest.mark.skipif(OTB is None, reason="otbcli_ReadImageInfo (Debian otb-bin) is not installed")
@pytest.mark.parametrize("name", FILES)
def test_same_text_and_values_as_otbcli(tmp_path, capsys, name):
    path = FILES[name](tmp_path / f"{name}.tif")
    want_lines, want = _otb(path)
    assert main(["ReadImageInfo", "-in", path]) == 0
    got_lines, got = _sections(capsys.readouterr().out)
    assert got_lines == want_lines
    assert set(got) == set(want) - set(NOT_COMPARED)
    for key, value in got.items():
        if key.startswith(("spacing", "origin")):
            # OTB keeps its float parameters in float32 and prints 10 digits; eotensor keeps doubles
            assert math.isclose(float(value), float(want[key]), rel_tol=1e-7), key
        else:
            assert value == want[key], key


def test_values_through_otbapplication(tmp_path):
    path = write_raster(tmp_path / "a.tif", np.zeros((3, 5, 7), np.uint16), origin=(300000.0, 4900020.0),
                        spacing=(10.0, 20.0), nodata=0)
    app = otb.Registry.CreateApplication("ReadImageInfo")
    app.SetParameterString("in", path)
    assert app.Execute() == 0
    assert (app.GetParameterInt("sizex"), app.GetParameterInt("sizey"), app.GetParameterInt("numberbands")) == (7, 5, 3)
    assert (app.GetParameterFloat("spacingx"), app.GetParameterFloat("spacingy")) == (10.0, -20.0)
    assert (app.GetParameterFloat("originx"), app.GetParameterValue("originy")) == (300005.0, 4900010.0)
    assert app.GetParameterString("datatype") == "unsigned_short"
    with rasterio.open(path) as ds:
        assert app.GetParameterString("projectionref") == ds.crs.to_wkt()
    assert app.GetParameterInt("gcp.count") == 0 and app.GetParameterStringList("gcp.ids") == []
    selected = otb.Registry.CreateApplication("ReadImageInfo")
    selected.SetParameterString("in", path + "?&bands=2:3")
    selected.Execute()
    assert selected.GetParameterInt("numberbands") == 2


def test_a_result_connected_in_memory(tmp_path):
    path = write_raster(tmp_path / "a.tif", np.zeros((2, 5, 7), np.int16))
    upstream = otb.Registry.CreateApplication("TensorflowModelServe")
    upstream.SetParameterStringList("source1.il", [path])
    (tmp_path / "m.py").write_text("def model(x):\n    return x[..., :1] + 1\n")
    upstream.SetParameterString("model.dir", str(tmp_path / "m.py"))
    info = otb.Registry.CreateApplication("ReadImageInfo")
    info.SetParameterInputImage("in", upstream.GetParameterOutputImage("out"))
    info.Execute()
    assert (info.GetParameterInt("numberbands"), info.GetParameterString("datatype")) == (1, "float")
    assert (info.GetParameterInt("sizex"), info.GetParameterInt("sizey")) == (7, 5)


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["ReadImageInfo", "-in", str(tmp_path / "missing.tif")]) == 1
    assert capsys.readouterr().err.strip().endswith('in: input file "' + str(tmp_path / "missing.tif") +
                                                    '" does not exist')
    path = write_raster(tmp_path / "a.tif", np.zeros((1, 2, 2), np.uint8))
    assert main(["ReadImageInfo", "-in", path, "-sizex", "3"]) == 1
    assert capsys.readouterr().err == "ReadImageInfo: error: -sizex is computed by ReadImageInfo, not given; read " \
                                      "it after the run\n"
    assert main(["ReadImageInfo", "-help"]) == 0
    assert "-sizex" in capsys.readouterr().out


def test_python_entry_and_image_metadata(tmp_path, capsys):
    import eotensor as eot

    path = write_raster(tmp_path / "a.tif", np.zeros((2, 3, 4), np.int16))
    info = eot.ReadImageInfo(in_=path)
    assert (info.output_values["datatype"], info.output_values["sizex"]) == ("short", 4)
    assert main(["ReadImageInfo", "-in", path, "-imagemetadata", "on"]) == 0
    out = capsys.readouterr().out
    assert "Image metadata (optional):\n\tAREA_OR_POINT=Area\n" in out
    assert main(["ReadImageInfo", "-in", path]) == 0
    assert "Image metadata" not in capsys.readouterr().out
