"""ExtractROI: regions and bands as lazy results, against NumPy and otbcli_ExtractROI."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import rasterio

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import ParameterError
from eotensor.testing import write_raster


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    array = np.random.default_rng(2).integers(0, 5000, size=(3, 40, 50)).astype(np.uint16)
    return write_raster(tmp_path_factory.mktemp("roi") / "a.tif", array), array


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform


def test_standard_and_extent_modes_with_channels(image, tmp_path):
    path, array = image
    roi = eot.ExtractROI(in_=path, startx=7, starty=3, sizex=20, sizey=11, cl=["Channel3", "Channel1"])
    np.testing.assert_array_equal(roi.read(), array[[2, 0], 3:14, 7:27])
    with rasterio.open(path) as ds:
        assert roi.transform == ds.transform @ rasterio.Affine.translation(7, 3)
    to_end = eot.ExtractROI(in_=eot.open(path), startx=45, starty=38)  # a lazy input; sizes default to the end
    np.testing.assert_array_equal(to_end.read(), array[:, 38:, 45:])
    extent = eot.ExtractROI(in_=path, mode="extent", mode_extent_ulx=5, mode_extent_uly=6, mode_extent_lrx=9,
                            mode_extent_lry=8)
    np.testing.assert_array_equal(extent.read(), array[:, 6:9, 5:10])
    x, y = roi.grid.x.point(2), roi.grid.y.point(4)  # map coordinates of the roi's pixel (4, 2): image (7, 9)
    by_map = eot.ExtractROI(in_=path, mode="extent", mode_extent_unit="phy", mode_extent_ulx=x, mode_extent_uly=y,
                            mode_extent_lrx=x, mode_extent_lry=y)
    np.testing.assert_array_equal(by_map.read()[:, 0, 0], array[:, 7, 9])
    with pytest.raises(ParameterError, match='cl: "Channel4" is not a band of the 3-band image'):
        eot.ExtractROI(in_=path, cl=["Channel4"])
    with pytest.raises(ParameterError, match="leaves the 50x40 image"):
        eot.ExtractROI(in_=path, startx=40, sizex=20)


@pytest.mark.skipif(shutil.which("otbcli_ExtractROI") is None and not os.environ.get("CI"),
                    reason="otbcli_ExtractROI (Debian otb-bin) not installed")
def test_files_equal_otbcli_extractroi(image, tmp_path):
    path, _ = image
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
    args = ["-startx", "4", "-starty", "9", "-sizex", "13", "-sizey", "17", "-cl", "Channel2", "Channel3"]
    subprocess.run(["otbcli_ExtractROI", "-in", path, *args, "-out", str(tmp_path / "otb.tif"), "uint16"], env=env,
                   check=True, capture_output=True)
    assert main(["ExtractROI", "-in", path, *args, "-out", str(tmp_path / "ours.tif"), "uint16"]) == 0
    (ours, ours_transform), (theirs, their_transform) = read(tmp_path / "ours.tif"), read(tmp_path / "otb.tif")
    np.testing.assert_array_equal(ours, theirs)
    assert ours_transform == their_transform
