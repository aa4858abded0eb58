"""BandMath/BandMathX apps and Python operators on lazy results: NumPy, OTB and file-based chains agree."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.calc import Expression
from eotensor.errors import GeometryError, InputFileError, ParameterError
from eotensor.runtimes import FunctionModel
from eotensor.testing import write_raster

OTB = shutil.which("otbcli_BandMath")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bandmath")
    rng = np.random.default_rng(11)
    a = rng.integers(-50, 1000, size=(4, 37, 53)).astype(np.int16)
    b = rng.integers(0, 255, size=(3, 37, 53)).astype(np.uint8)
    return folder, write_raster(folder / "a.tif", a), write_raster(folder / "b.tif", b), a, b


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def f32(values):
    """OTB's storage: float32, +-inf clamped to +-FLT_MAX."""
    top = np.finfo(np.float32).max
    return np.clip(np.asarray(values, np.float64), -top, top).astype(np.float32)


def test_operators_fold_into_one_expression_over_the_original_inputs(scene):
    _, pa, pb, a, b = scene
    ra, rb = eot.open(pa), eot.open(pb)
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    ndvi = (ra[3] - ra[2]) / (ra[3] + ra[2])
    result = eot.where((ndvi > 0.1) & (rb[0] < 200), ndvi * 100, -1) + 2 ** rb[1] / 1e70
    assert isinstance(result, Expression) and result.count == 1
    assert [r.files for r in result.inputs] == [[pa], [pb]]  # bands of one result: one image of the expression
    want_ndvi = (x[3] - x[2]) / (x[3] + x[2])
    want = np.where((want_ndvi > 0.1) & (y[0] < 200), want_ndvi * 100, -1) + 2 ** y[1] / 1e70
    np.testing.assert_array_equal(result.read()[0], f32(want))
    # band-wise with broadcasting of one-band operands; numbers on either side
    both = 3 - ra[:3] * rb + abs(-rb[2])
    np.testing.assert_array_equal(both.read(), f32(3 - x[:3] * y + y[2]))
    assert both.count == 3 and both.dtype == np.float32
    np.testing.assert_array_equal((ra == 5).read(), (x == 5).astype(np.float32))
    np.testing.assert_array_equal((1 / (ra[0] - ra[0])).read()[0], f32(np.full(x[0].shape, np.inf)))
    with pytest.raises(ParameterError, match="operands of 4 and 3 bands"):
        ra + rb
    with pytest.raises(ParameterError, match="not a lazy result or a number"):
        ra + "1"


def test_bandmath_cli_equals_numpy_and_refuses_bad_references(scene, tmp_path, capsys):
    _, pa, pb, a, b = scene
    out = tmp_path / "m.tif"
    assert main(["BandMath", "-il", pa, pb, "-out", str(out), "int16", "-exp",
                 "im1b1 * 2 + im2b3 > 500 ? ndvi(im1b3, im1b4) * 1000 : -idxX"]) == 0
    x, y = a.astype(np.float64), b.astype(np.float64)
    r, nir = x[2], x[3]
    ndvi = np.where(np.abs(r + nir) < 1e-6, 0, (nir - r) / np.where(r + nir == 0, 1, r + nir))
    cols = np.broadcast_to(np.arange(a.shape[2], dtype=np.float64), x[0].shape)
    want = np.where(x[0] * 2 + y[2] > 500, ndvi * 1000, -cols)
    np.testing.assert_array_equal(read(out)[0], np.clip(np.trunc(f32(want)), -32768, 32767).astype(np.int16))
    for expression, message in (("im1b5", "im1b5 refers to band 5 of image 1, which has 4 bands"),
                                ("im3b1 + 1", "im3b1 refers to image 3, but 2 images are given"),
                                ("im1b1 + )", 'unexpected ")" at column 9'),
                                ("im1b1; im2b1", 'unexpected ";" at column 6')):
        assert main(["BandMath", "-il", pa, pb, "-out", str(tmp_path / "bad.tif"), "-exp", expression]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "bad.tif")


def test_bandmathx_stacks_outputs_and_takes_lazy_inputs(scene, tmp_path):
    _, pa, pb, a, b = scene
    head = eot.BandMathX(il=[pa, eot.open(pb)], exp="im1 + {1, 1, 1, 1}; dotpr(im1, {1, 2, 3, 4}); im2b1 / 2")
    assert head.count == 6
    x = a.astype(np.float64)
    want = np.concatenate([x + 1, np.tensordot([1, 2, 3, 4], x, axes=1)[None], b[:1] / 2.0])
    np.testing.assert_array_equal(head.read(), f32(want))
    path = eot.BandMathX(il=[pa], exp="im1b1 - 0.5", out=(str(tmp_path / "x.tif"), "int32")).write(
        tmp_path / "y.tif", "int32")
    np.testing.assert_array_equal(read(path)[0], np.trunc(x[0] - 0.5).astype(np.int32))


@pytest.mark.skipif(OTB is None and not os.environ.get("CI"), reason="otbcli_BandMath (Debian otb-bin) not installed")
def test_bandmath_files_equal_otbcli_bandmath(scene, tmp_path):
    _, pa, pb, _, _ = scene
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
    for k, expression in enumerate(["(im1b1 + 3) / (im2b1 - 100) * im1b4", "im1b2 > 400 && im2b2 < 90 ? sqrt(im1b1) : "
                                    "exp(im2b3 / 100)", "min(im1b1, im1b2, im2b1) + rint(im1b3 / 7) - abs(im1b4)"]):
        ours, theirs = tmp_path / f"e{k}.tif", tmp_path / f"o{k}.tif"
        eot.BandMath(il=[pa, pb], exp=expression, out=str(ours))
        subprocess.run(["otbcli_BandMath", "-il", pa, pb, "-out", str(theirs), "-exp", expression], env=env,
                       check=True, capture_output=True)
        np.testing.assert_array_equal(read(ours), read(theirs), err_msg=expression)


@settings(max_examples=6, deadline=None)
@given(up_tile=st.integers(4, 30), scheduler=st.sampled_from(["sync", "threads"]))
def test_serve_into_bandmath_in_memory_equals_through_a_file(scene, tmp_path_factory, up_tile, scheduler):
    _, pa, pb, _, _ = scene
    tmp = tmp_path_factory.mktemp("chain")
    model = FunctionModel(lambda x: {"y": x[:, 1:-1, 1:-1] * 0.5 - x[:, :-2, 2:]}, ["x"], ["y"], name="shift")
    served = eot.serve(model, [eot.source(pa, rfield=3)], fullyconv=True, tile_size=up_tile, scheduler=scheduler)
    expression = "im1b1 > 100 ? im1b2 / im1b3 : im1b4 * 3"
    step = served.write(tmp / "step.tif")
    on_files = eot.BandMath(il=[step], exp=expression, out=str(tmp / "files.tif"))
    in_memory = eot.BandMath(il=[served], exp=expression)
    np.testing.assert_array_equal(in_memory.read(), read(tmp / "files.tif"))
    np.testing.assert_array_equal(in_memory.read(), on_files.read())
    mixed = served[1] + eot.open(step)[2] * 2  # operators across a lazy result and a file
    np.testing.assert_array_equal(mixed.read()[0], f32(read(step)[1].astype(np.float64) + read(step)[2] * 2.0))


def test_images_of_other_sizes_or_crs_are_refused(scene, tmp_path):
    _, pa, _, a, _ = scene
    small = write_raster(tmp_path / "small.tif", a[:, :30])
    elsewhere = write_raster(tmp_path / "utm32.tif", a, crs="EPSG:32632")
    with pytest.raises(InputFileError, match="image 2 is 53x30 pixels but image 1 is 53x37"):
        eot.BandMath(il=[pa, small], exp="im1b1 + im2b1")
    with pytest.raises(GeometryError, match="image 2 is in EPSG:32632 but image 1 in EPSG:32631; .* reproject"):
        eot.open(pa) + eot.open(elsewhere)


def test_only_the_bands_an_expression_names_are_read(scene, monkeypatch):
    _, pa, pb, a, b = scene
    from eotensor.io.raster import RasterSource

    asked = []
    read_bands = RasterSource.read_bands
    monkeypatch.setattr(RasterSource, "read_bands", lambda self, w, bands: asked.append(list(bands)) or
                        read_bands(self, w, bands))
    result = eot.BandMath(il=[pa, pb], exp="im1b4 - im1b2 * im2b3")
    want = a[3].astype(np.float64) - a[1].astype(np.float64) * b[2]
    np.testing.assert_array_equal(result.read()[0], f32(want))
    assert asked and all(bands in ([1, 3], [2]) for bands in asked)
    whole = eot.BandMathX(il=[pa], exp="im1 * {1, 0, 0, 0}' + im1b2")  # a whole pixel: every band read
    np.testing.assert_array_equal(whole.read()[0], f32(a[0].astype(np.float64) + a[1]))


def test_a_single_lazy_result_is_a_one_image_list(scene):
    _, pa, _, a, _ = scene
    one = eot.open(pa)[1]
    np.testing.assert_array_equal(eot.BandMath(il=one, exp="im1b1 * 2").read()[0], f32(a[1] * 2.0))
    np.testing.assert_array_equal(eot.BandMathX(il=one, exp="im1 + 1").read(), f32(a[1:2] + 1.0))


def test_dataarrays_are_images_of_bandmath_and_extract_roi(scene):
    import rioxarray

    _, pa, pb, a, b = scene
    opened = rioxarray.open_rasterio(pa)
    want = f32(a[2].astype(np.float64) - b[0])
    np.testing.assert_array_equal(eot.BandMath(il=[opened, pb], exp="im1b3 - im2b1").read()[0], want)
    np.testing.assert_array_equal(eot.BandMath(il=opened[2], exp="im1b1").read()[0], f32(a[2]))  # one, no list
    np.testing.assert_array_equal(eot.BandMathX(il=[opened], exp="im1b1; im1b4").read(), f32(a[[0, 3]]))
    roi = eot.ExtractROI(in_=opened, startx=3, starty=5, sizex=7, sizey=4, cl=["Channel2"])
    np.testing.assert_array_equal(roi.read(), f32(a[1:2, 5:9, 3:10]))
    t = eot.open(pa).transform
    assert roi.crs == eot.open(pa).crs and tuple(roi.transform)[:6] == (t.a, 0, t.c + 3 * t.a, 0, t.e, t.f + 5 * t.e)
