"""Cloud-Optimized GeoTIFF outputs (``?&cog=true``): GDAL's COG layout, overviews as GDAL builds them, pixels and
georeferencing equal to the plain output, options passed on, bad input refused before any tile, no temporary
file left after success or failure, the CLI spelling."""

from __future__ import annotations

import _thread
import os
import textwrap
import threading
import time

import numpy as np
import pytest
import rasterio
import rasterio.errors
import rasterio.shutil
from rasterio.enums import Resampling

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import OutputFileError
from eotensor.io.cog import _in_background, overview_factors, validate_cog
from eotensor.io.extended import CogLayout, parse_output
from eotensor.runtimes import FunctionModel, TensorSpec
from eotensor.testing import write_raster

NODATA = 0.0


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A 2-band 600x700 float32 image with a no-data rectangle (values 1..80, no-data 0)."""
    data = np.random.default_rng(1).integers(1, 81, (2, 600, 700)).astype(np.float32)
    data[:, 100:300, 50:400] = NODATA
    return write_raster(tmp_path_factory.mktemp("in") / "a.tif", data, nodata=NODATA)


def served(image, fn=lambda x: {"y": x * 3 + 1}):
    """A served result over ``image`` (no-data skipped blocks, so the output gets a no-data tag), 128-pixel tiles;
    the model declares its 2 bands, so no call is made before the first tile."""
    model = FunctionModel(fn, ["x"], [TensorSpec("y", np.dtype(np.float32), (None, None, None, 2))])
    return eot.serve(model, [eot.source(image, nodata=NODATA)], background=NODATA, tile_size=128)


def read(path, level=None):
    with rasterio.open(path, overview_level=level) as ds:
        return ds.read(), ds.transform, ds.crs, ds.nodata


def only(directory, *names):
    assert sorted(os.listdir(directory)) == sorted(names)


def test_a_served_result_as_cog_is_valid_with_the_plain_output_s_pixels(image, tmp_path):
    result = served(image)
    plain = result.write(tmp_path / "plain.tif")
    cog = result.write(str(tmp_path / "map.tif") + "?&cog=true&overviews=2,4&gdal:co:COMPRESS=DEFLATE"
                       "&gdal:co:PREDICTOR=2")
    assert validate_cog(cog, full=True) == []
    with rasterio.open(cog) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        assert ds.get_tag_item("PREDICTOR", "IMAGE_STRUCTURE") in (None, "2") and ds.compression.value == "DEFLATE"
        assert ds.overviews(1) == [2, 4] and ds.block_shapes[0] == (512, 512)
    got, want = read(cog), read(plain)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:] and want[3] == NODATA  # transform, CRS, no-data tag
    only(tmp_path, "plain.tif", "map.tif")


@pytest.mark.parametrize("pixel_type, ovr, gdal_name", [("uint8", None, "NEAREST"), ("float32", None, "AVERAGE"),
                                                         ("int16", "mode", "MODE")])
def test_auto_overviews_are_gdal_s_own(image, tmp_path, pixel_type, ovr, gdal_name):
    """The factors are those the COG driver picks on its own; the overview pixels those of GDAL's overview build
    (gdaladdo) on the plain output, with the default resampling (nearest for integer types, average for
    floats, no-data left out of averages); where the COG driver's own levels have the same size (it halves
    sizes rounding down, gdaladdo divides rounding up), their pixels too."""
    result = served(image)
    plain = result.write(tmp_path / "plain.tif", pixel_type)
    extended = "?&cog=true&gdal:co:BLOCKSIZE=128" + (f"&ovr={ovr}" if ovr else "")
    cog = result.write(str(tmp_path / "map.tif") + extended, pixel_type)
    rasterio.shutil.copy(plain, tmp_path / "driver.tif", driver="COG", BLOCKSIZE="128", OVERVIEW_RESAMPLING=gdal_name)
    rasterio.shutil.copy(plain, tmp_path / "addo.tif")
    with rasterio.open(tmp_path / "addo.tif", "r+") as ds:
        ds.build_overviews([2, 4, 8], Resampling[gdal_name.lower()])
    with rasterio.open(cog) as ours, rasterio.open(tmp_path / "driver.tif") as theirs:
        assert ours.overviews(1) == theirs.overviews(1) == [2, 4, 8]
        assert ours.dtypes == theirs.dtypes == (pixel_type,) * 2 and ours.nodata == NODATA
    for level in range(3):
        ours = read(cog, level)[0]
        np.testing.assert_array_equal(ours, read(tmp_path / "addo.tif", level)[0])
        driver = read(tmp_path / "driver.tif", level)[0]
        if driver.shape == ours.shape:
            np.testing.assert_array_equal(ours, driver)
    assert validate_cog(cog, full=True) == []


def test_overview_factor_rule():
    auto = CogLayout(None)
    assert overview_factors(auto, 512, 512) == ()
    assert overview_factors(auto, 513, 100) == (2,)
    assert overview_factors(auto, 2049, 300, 256) == (2, 4, 8)  # 2049 // 8 = 256: one block
    assert overview_factors(CogLayout(()), 5000, 5000) == ()
    assert overview_factors(CogLayout((2, 16)), 10, 10) == (2, 16)


def test_box_without_overviews_is_the_window_of_the_plain_output(image, tmp_path):
    result = served(image)
    plain = result.write(tmp_path / "plain.tif", "int16")
    cog = result.write(str(tmp_path / "box.tif") + "?&cog=true&overviews=none&box=30:40:300:200", "int16")
    got, want = read(cog), read(plain)
    np.testing.assert_array_equal(got[0], want[0][:, 40:240, 30:330])
    assert got[1] == want[1] @ want[1].translation(30, 40) and got[3] == want[3]
    with rasterio.open(cog) as ds:
        assert ds.overviews(1) == [] and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert validate_cog(cog, full=True) == []


def test_python_keyword_and_eot_write(image, tmp_path):
    result = served(image)
    one = result.write(tmp_path / "one.tif", "uint16", cog=True)
    two, three = eot.write({tmp_path / "two.tif": result, tmp_path / "three.tif": (result[0], "uint8")}, cog=True)
    for path, factors in ((one, [2]), (two, [2]), (three, [2])):
        assert validate_cog(path) == [] and rasterio.open(path).overviews(1) == factors
    np.testing.assert_array_equal(read(three)[0][0], read(one)[0][0].clip(0, 255))
    only(tmp_path, "one.tif", "two.tif", "three.tif")
    eot.open(one).write("/dev/null?&cog=true")  # a device is written through


def test_the_validator_finds_a_plain_geotiff_with_overviews(image, tmp_path):
    path = tmp_path / "x.tif"
    served(image).write(path)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2], Resampling.nearest)
    problems = validate_cog(path)
    assert "GDAL does not report LAYOUT=COG" in problems
    assert any("smallest level first" in p for p in problems)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_run_leaves_no_temporary_file_and_the_previous_output(image, tmp_path, error):
    calls = []

    def failing(x):
        calls.append(1)
        if len(calls) == 5:
            raise error("model failed mid-run")
        return {"y": x}

    result = served(image)
    result.write(tmp_path / "map.tif?&cog=true")
    before = read(tmp_path / "map.tif")[0]
    with pytest.raises((error, eot.EotensorError) if error is RuntimeError else error):
        served(image, failing).write(tmp_path / "map.tif?&cog=true&overviews=2,4,8")
    only(tmp_path, "map.tif")
    np.testing.assert_array_equal(read(tmp_path / "map.tif")[0], before)


@pytest.mark.parametrize("extended, pixel_type, message", [
    ("?&cog=true&overviews=often", None, 'overviews "often" is not a valid overview list; expected auto, none or'),
    ("?&cog=true&overviews=1,2", None, 'overviews "1,2"'),
    ("?&cog=true&ovr=median", None, 'ovr "median" is not an overview resampling; expected one of nearest, average'),
    ("?&cog=sure", None, 'cog "sure" is not a yes/no value'),
    ("?&overviews=2", None, "overviews applies to Cloud-Optimized GeoTIFFs only; add &cog=true"),
    ("?&cog=true&gdal:co:TILED=NO", None, "gdal:co:TILED=NO conflicts with cog=true: a COG is always tiled"),
    ("?&cog=true&gdal:co:OVERVIEWS=NONE", None, "use &overviews=auto|none|2,4,8"),
    ("?&cog=true&gdal:co:BLOCKXSIZE=256", None, "gdal:co:BLOCKSIZE=N"),
])
def test_bad_cog_options_are_one_line_errors(extended, pixel_type, message):
    with pytest.raises(OutputFileError) as caught:
        parse_output("map.tif" + extended, pixel_type)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_cog_needs_a_tif_name():
    with pytest.raises(OutputFileError, match=r'cog=true writes a GeoTIFF, not "\.png"; expected a \.tif'):
        parse_output("map.png?&cog=true", "uint8")
    assert parse_output("map.TIFF", cog=True).format.driver == "COG"


@pytest.mark.parametrize("extended, pixel_type, message", [
    ("&gdal:co:COMPRESS=JPEG", "float32", "BitsPerSample 32 not allowed for JPEG"),
    ("&gdal:co:COMPRESS=DEFLATE&gdal:co:PREDICTOR=3", "int16", "PREDICTOR=3 is only supported with Float32"),
    ("&gdal:co:COMPRESS=NOPE", "uint8", "'NOPE' is an unexpected value for COMPRESS"),
    ("&gdal:co:BLOCKSIZE=64", "uint8", "BLOCKSIZE"),
])
def test_options_gdal_refuses_fail_before_any_tile(image, tmp_path, extended, pixel_type, message):
    calls = []

    def counted(x):
        calls.append(1)
        return {"y": x}

    with pytest.raises(OutputFileError, match="GDAL rejected the COG output") as caught:
        served(image, counted).write(str(tmp_path / "map.tif") + "?&cog=true" + extended, pixel_type)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert calls == []
    only(tmp_path)


def test_cli_spelling(image, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        def model(x):
            return x * 2
    """))
    out = tmp_path / "map.tif"
    assert main(["TensorflowModelServe", "-source1.il", image, "-model.dir", str(model),
                 "-out", f"{out}?&cog=true&overviews=2,4&gdal:co:COMPRESS=DEFLATE", "uint16"]) == 0
    assert validate_cog(out, full=True) == []
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4] and ds.compression.value == "DEFLATE" and ds.dtypes[0] == "uint16"
        with rasterio.open(image) as src:
            np.testing.assert_array_equal(ds.read(), np.clip(src.read() * 2, 0, None).astype(np.uint16))
    only(tmp_path, "model.py", "map.tif")


def test_ctrl_c_ends_the_wait_for_a_long_gdal_step_at_once():
    """The finishing steps run in a helper thread: an interrupt reaches the caller while the step still runs, and
    the step's own errors reach the caller as they are."""
    release, started = threading.Event(), time.monotonic()
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _in_background(lambda: release.wait(30))
    assert time.monotonic() - started < 5
    release.set()
    with pytest.raises(rasterio.errors.RasterioError):
        _in_background(lambda: rasterio.open("/nonexistent/x.tif"))
    assert _in_background(lambda: 42) == 42
