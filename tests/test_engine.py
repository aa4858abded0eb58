"""Engine behaviour through the Python API, with NumPy models (no TensorFlow needed)."""

import math

import numpy as np
import pytest
import rasterio
from affine import Affine

import eotensor as eot
from eotensor.errors import OutputFileError
from eotensor.runtimes import FunctionModel, TensorSpec


def write(path, data, spacing=10.0, x0=300000.0, y0=4900020.0):
    bands, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype="float32", crs="EPSG:32631",
                   transform=Affine(spacing, 0, x0, 0, -spacing, y0))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(np.float32))
    return str(path)


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 20, size=(3, 70, 90)).astype(np.float32)
    return write(tmp_path / "in.tif", data), data


def max_pool_model(k):
    """FC model: max over k x k windows (valid), i.e. RF = EF + k - 1 for any EF."""
    def fn(x):
        v = np.lib.stride_tricks.sliding_window_view(x[0], (k, k), axis=(0, 1)).max(axis=(-2, -1))
        return {"y": v[np.newaxis]}
    return FunctionModel(fn, ["x"], ["y"])


@pytest.mark.parametrize("rf, ef", [(5, 1), (9, 4), (20, 16), (7, 2)])
def test_output_geometry_matches_the_reference_formulas(image, tmp_path, rf, ef):
    path, data = image
    k = rf - ef + 1
    result = eot.serve(max_pool_model(k), [eot.source(path, rfield=rf)], efield=ef, fullyconv=True, tile_size=32)
    height, width = data.shape[1:]
    # §2.3 at S = 1: the valid area starts at RF//2 and has W - RF + 1 pixels, enlarged by EF - 1
    # (origin moved back EF//2 pixels), then cut to a multiple of EF.
    assert result.grid.width == (width - rf + 1 + ef - 1) // ef * ef
    assert result.grid.height == (height - rf + 1 + ef - 1) // ef * ef
    first = rf // 2 - ef // 2
    assert result.transform == Affine(10.0, 0, 300000.0 + 10.0 * first, 0, -10.0, 4900020.0 - 10.0 * first)
    out = tmp_path / "o.tif"
    if rf % 2 == 1 and ef % 2 == 0:  # decision 5f: the first block's input is cut by the border
        with pytest.raises(eot.EotensorError, match="cut by the image border"):
            result.write(str(out))
        return
    result.write(str(out))
    with rasterio.open(out) as ds:
        assert ds.transform == result.transform and ds.crs.to_epsg() == 32631
        written = ds.read()
    pooled = np.lib.stride_tricks.sliding_window_view(data, (k, k), axis=(1, 2)).max(axis=(-2, -1))
    start = first - math.ceil((rf - ef) / 2)  # the window of output pixel 0 starts RF-EF padding earlier
    np.testing.assert_array_equal(
        written, pooled[:, start:start + result.grid.height, start:start + result.grid.width])


def test_box_read_and_write_equal_the_same_window(image, tmp_path):
    path, _ = image
    result = eot.serve(max_pool_model(3), [eot.source(path, rfield=4)], efield=2, fullyconv=True, tile_size=(13, 7))
    full = result.read()
    window = eot.Window(5, 7, 20, 33)
    np.testing.assert_array_equal(result.read(window), full[:, 5:25, 7:40])
    out = tmp_path / "box.tif"
    result.write(f"{out}?&box=7:5:33:20")
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), full[:, 5:25, 7:40])
        assert ds.transform == result.grid.window(window).transform


@pytest.mark.parametrize("fully_conv", [True, False])
@pytest.mark.parametrize("layout", ["flat", "flat_c", "rank3", "rank4", "batch_c"])
def test_any_output_rank_uses_the_flat_layout(image, fully_conv, layout):
    """OTBTF's model5: [n], [n,c], [1,h,w], [1,h,w,c] and [n,1,1,c] all lay out row, col, band."""
    path, data = image

    def fn(x):  # x: (1, h, w, c) in FC mode, (n, 1, 1, c) patches of RF 1 in patch-based mode
        n = x.shape[0] * x.shape[1] * x.shape[2]
        two = np.concatenate([x[..., :1], x[..., 1:2] * 10], axis=-1)
        return {"y": {"flat": x[..., 0].reshape(n), "flat_c": two.reshape(n, 2), "rank3": x[..., 0],
                      "rank4": two, "batch_c": two.reshape(n, 1, 1, 2)}[layout]}

    model = FunctionModel(fn, ["x"], ["y"])
    result = eot.serve(model, [eot.source(path)], fullyconv=fully_conv, tile_size=(16, 8))
    got = result.read()
    if layout in ("flat", "rank3"):
        np.testing.assert_array_equal(got, data[:1])
    else:
        np.testing.assert_array_equal(got, np.stack([data[0], data[1] * 10]))


def test_outputs_stack_on_bands_in_the_order_given(image):
    path, data = image
    model = FunctionModel(lambda x: {"a": x[..., :1] + 1, "b": x * 2}, ["x"], ["a", "b"])
    ab = eot.serve(model, [eot.source(path)], fullyconv=True, output_names=["b", "a"]).read()
    np.testing.assert_array_equal(ab, np.concatenate([data * 2, data[:1] + 1]))


def test_nodata_blocks_are_skipped_and_get_the_background(tmp_path):
    data = np.ones((1, 16, 16), np.float32)
    data[:, 4:8, 8:12] = -1  # exactly one 4x4 block of no-data
    path = write(tmp_path / "nd.tif", data)
    calls = []

    def fn(x):  # OTBTF's nodata test: RF = EF = 4, 4x4 tiles; a block reads exactly its own 4x4 pixels
        calls.append(x.shape)
        return {"y": np.full((1, x.shape[1], x.shape[2], 1), 5.0)}

    model = FunctionModel(fn, [TensorSpec("x", np.dtype(np.float32), (None, None, None, 1))],
                          [TensorSpec("y", np.dtype(np.float32), (None, None, None, 1))])
    result = eot.serve(model, [eot.source(path, rfield=4, nodata=-1)], efield=4, fullyconv=True,
                       tile_size=4, background=-9)
    out = result.read()
    assert out.shape == (1, 16, 16)
    skipped = out == -9
    assert skipped.sum() == 16 and skipped[0, 4:8, 8:12].all()
    assert (out[~skipped] == 5).all()
    assert len(calls) == 15 and set(calls) == {(1, 4, 4, 1)}


def test_threaded_and_sequential_runs_are_identical(image, tmp_path):
    path, _ = image
    outputs = []
    for workers in (0, 1, 3):
        result = eot.serve(max_pool_model(3), [eot.source(path, rfield=4)], efield=2, fullyconv=True,
                           tile_size=8, workers=workers)
        out = tmp_path / f"w{workers}.tif"
        result.write(str(out), "int16")
        with rasterio.open(out) as ds:
            outputs.append(ds.read())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


def test_failed_run_leaves_nothing_behind(image, tmp_path):
    path, _ = image
    calls = {"n": 0}

    def fn(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return {"y": x}

    result = eot.serve(FunctionModel(fn, ["x"], ["y"]), [eot.source(path)], fullyconv=True, tile_size=16)
    with pytest.raises(eot.EotensorError, match="boom"):
        result.write(str(tmp_path / "o.tif"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_output_cannot_overwrite_an_input(image):
    path, _ = image
    result = eot.serve(FunctionModel(lambda x: {"y": x}, ["x"], ["y"]), [eot.source(path)], fullyconv=True)
    with pytest.raises(OutputFileError, match="is also an input"):
        result.write(path)


def test_input_dtype_is_the_models(image):
    path, data = image
    seen = {}

    def fn(x):
        seen["dtype"] = x.dtype
        return {"y": x.astype(np.float32) * 2}

    model = FunctionModel(fn, [TensorSpec("x", np.dtype(np.uint8), (None, None, None, 3))], ["y"])
    out = eot.serve(model, [eot.source(path)], fullyconv=True).read()
    assert seen["dtype"] == np.uint8
    np.testing.assert_array_equal(out, data * 2)


def test_memory_budget_picks_strips_for_pixelwise_and_squares_for_cnns(image):
    path, _ = image
    pixelwise = eot.serve(FunctionModel(lambda x: {"y": x}, ["x"], ["y"]), [eot.source(path)], fullyconv=True,
                          ram_mb=0.05)
    tile = pixelwise.tile_shape()
    assert tile.cols == 90 and tile.rows < 70
    cnn = eot.serve(max_pool_model(5), [eot.source(path, rfield=8)], efield=4, fullyconv=True, ram_mb=0.2)
    tile = cnn.tile_shape()
    assert tile.rows == tile.cols and tile.rows % 4 == 0
    assert math.isclose(tile.rows, 64, rel_tol=0.2)


def test_python_keywords_run_the_app(image, tmp_path):
    path, data = image
    out = tmp_path / "kw.tif"
    model = FunctionModel(lambda x: {"y": x + 1}, ["x"], ["y"])
    result = eot.TensorflowModelServe(source1_il=path, model_dir=model, model_fullyconv=True, out=str(out))
    assert result.count == 3
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), data + 1)


def test_progress_bar_shows_percent_and_eta():
    import io

    from eotensor.engine.run import Progress

    stream = io.StringIO()
    bar = Progress(4, "o.tif", stream=stream, delay=0.0)
    for _ in range(4):
        bar.advance()
    text = stream.getvalue()
    assert "o.tif [" in text and "100.0% 4/4 tiles" in text and "ETA" in text
    quiet = io.StringIO()
    short = Progress(4, stream=quiet, delay=60.0)
    short.advance(4)
    assert quiet.getvalue() == ""  # short runs print nothing


def test_strided_net_at_scale_4_runs_and_tiles_do_not_matter(image):
    """§2.8 example 3: FC, RF 16, EF 1, S 4. OTBTF cuts the first block's input by one pixel; only that
    block row/column is affected, every other block is the same whatever the tiles."""
    path, _ = image

    def fn(x):  # valid 16x16 mean, stride 4
        v = np.lib.stride_tricks.sliding_window_view(x[0], (16, 16), axis=(0, 1)).mean(axis=(-2, -1))
        return {"y": v[::4, ::4][np.newaxis]}

    model = FunctionModel(fn, ["x"], ["y"])
    results = []
    for tile in (1, 3, 64):
        with pytest.warns(UserWarning, match="border cuts the input of the first output block"):
            results.append(eot.serve(model, [eot.source(path, rfield=16)], spcscale=4, fullyconv=True,
                                     tile_size=tile, workers=0).read())
    assert results[0].shape[1:] == (13, 18)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_box_and_window_do_not_change_the_nodata_skip(tmp_path):
    """A tile partly no-data is computed in the full output, so it must be in a box or a window too."""
    data = np.ones((1, 16, 16), np.float32)
    data[:, :, :4] = -9999
    path = write(tmp_path / "nd.tif", data)
    model = FunctionModel(lambda x: {"y": x * 2}, ["x"], ["y"])
    result = eot.serve(model, [eot.source(path, nodata=-9999)], fullyconv=True, tile_size=8)
    full = result.read()
    np.testing.assert_array_equal(result.read(eot.Window(0, 0, 8, 4)), full[:, :8, :4])
    out = tmp_path / "box.tif"
    result.write(f"{out}?&box=0:0:4:8")
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), full[:, :8, :4])
    assert (full[:, :8, :4] == -19998).all()


def test_sources_feeding_the_same_input_and_unusual_grids_are_errors(image, tmp_path):
    path, _ = image
    model = FunctionModel(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match='model input "x" is fed twice'):
        eot.serve(model, [eot.source(path, placeholder="x"), eot.source(path, placeholder="x", index=2)],
                  fullyconv=True)
    south_up = write(tmp_path / "south.tif", np.ones((1, 8, 8)), spacing=10.0)
    with rasterio.open(south_up, "r+") as ds:
        ds.transform = Affine(10.0, 0, 0, 0, 10.0, 0)
    with pytest.raises(eot.EotensorError, match="source1.il: spacing .* is not north-up"):
        eot.serve(model, [eot.source(south_up)], fullyconv=True)
    with pytest.raises(eot.EotensorError, match="finite"):
        eot.serve(model, [eot.source(path)], fullyconv=True, spcscale=float("inf"))


def test_float_user_placeholders_from_python_round_to_float32(image):
    path, data = image
    model = FunctionModel(lambda x, a: {"y": x * a}, ["x", "a"], ["y"])
    out = eot.serve(model, [eot.source(path)], fullyconv=True, user_placeholders={"a": 0.5}).read()
    np.testing.assert_array_equal(out, data * 0.5)
    eot.serve(model, [eot.source(path)], fullyconv=True, user_placeholders={"a": 0.1})  # not exact: fine
