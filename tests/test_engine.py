"""Engine behaviour through the Python API, with NumPy models (no TensorFlow needed)."""

import math
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine

import eotensor as eot
from eotensor.errors import OutputFileError
from eotensor.runtimes import FunctionModel, TensorSpec
from eotensor.testing import write_raster


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 20, size=(3, 70, 90)).astype(np.float32)
    return write_raster(tmp_path / "in.tif", data), data


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
    path = write_raster(tmp_path / "nd.tif", data)
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

    from eotensor.engine.progress import Progress

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
    """The skip is decided per block: a box or a window gets exactly the same pixels as the full output."""
    data = np.ones((1, 16, 16), np.float32)
    data[:, :, :4] = -9999
    path = write_raster(tmp_path / "nd.tif", data)
    model = FunctionModel(lambda x: {"y": x * 2}, ["x"], ["y"])
    result = eot.serve(model, [eot.source(path, nodata=-9999)], fullyconv=True, tile_size=8, background=-5)
    full = result.read()
    np.testing.assert_array_equal(result.read(eot.Window(0, 0, 8, 4)), full[:, :8, :4])
    out = tmp_path / "box.tif"
    result.write(f"{out}?&box=0:0:4:8")
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), full[:, :8, :4])
    assert (full[:, :, :4] == -5).all() and (full[:, :, 4:] == 2).all()


def test_the_issue_corner_no_longer_depends_on_the_tiles(tmp_path):
    """The issue's report: a 64x64 raster whose top-left 8x8 corner is no-data gave -5 there with 4x4 tiles
    and computed values with 64x64 tiles. Every tiling, memory budget and executor now gives -5 there."""
    data = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64)
    data[:, :8, :8] = 0
    path = write_raster(tmp_path / "corner.tif", data)
    model = FunctionModel(lambda x: {"y": x + 1}, ["x"], ["y"])
    outputs = []
    for options in ({"tile_size": 4}, {"tile_size": 64}, {"tile_size": (13, 5), "scheduler": "sync"},
                    {"ram_mb": 0.01}, {"ram_mb": 64, "scheduler": "threads", "workers": 3}):
        result = eot.serve(model, eot.source(path, nodata=0), fullyconv=True, background=-5, **options)
        outputs.append(result.read())
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])
    assert (outputs[0][:, :8, :8] == -5).all()
    np.testing.assert_array_equal(outputs[0][:, 8:, :], data[:, 8:, :] + 1)


def test_a_block_is_skipped_only_when_its_whole_input_is_nodata(tmp_path):
    """FC, RF 5, EF 2: a block reads a 6x6 window; one valid pixel anywhere in it keeps the block computed,
    and a tile whose blocks are all no-data makes no model call."""
    data = np.full((1, 20, 20), -1, np.float32)
    data[0, 10, 10] = 7  # one valid pixel: the blocks whose 6x6 input holds it are computed
    path = write_raster(tmp_path / "sparse.tif", data)
    calls = []

    def fn(x):
        calls.append(x.shape)
        v = np.lib.stride_tricks.sliding_window_view(x[0], (5, 5), axis=(0, 1)).max(axis=(-2, -1))
        return {"y": v[np.newaxis]}

    model = FunctionModel(fn, ["x"], ["y"])
    result = eot.serve(model, eot.source(path, rfield=6, nodata=-1), efield=2, fullyconv=True, tile_size=4,
                       background=-9, scheduler="sync")
    out = result.read()
    computed = out[0] != -9
    rows, cols = np.nonzero(computed)
    assert computed.any() and (out[0][computed] >= -1).all()
    # the output grid starts RF//2 - EF//2 = 2 pixels in: input pixel 10 is output pixel 8
    assert rows.min() <= 8 <= rows.max() and cols.min() <= 8 <= cols.max()
    assert computed.sum() < computed.size // 4
    tiles = -(-out.shape[1] // 4) * -(-out.shape[2] // 4)
    assert 0 < len(calls) - 1 < tiles  # one call learns the band count; tiles of no-data make none


def test_patch_based_skip_and_padding_never_show_made_up_values(tmp_path):
    """Patch-based: a pixel whose patch is all no-data gets the background; the last batch is padded with a
    real patch, so a model taking logs never sees zeros that are not in the data."""
    data = np.full((1, 12, 12), 3.0, np.float32)
    data[:, :6, :6] = -1
    path = write_raster(tmp_path / "pb.tif", data)
    seen = []

    def fn(x):
        seen.append(float(x.min()))
        with np.errstate(invalid="raise", divide="raise"):
            return {"y": np.log(np.where(x == -1, 1.0, x)).sum(axis=(1, 2, 3))}

    model = FunctionModel(fn, ["x"], ["y"])
    result = eot.serve(model, eot.source(path, rfield=3, nodata=-1), background=-7, batch_size=16, tile_size=5)
    out = result.read()
    assert out.shape == (1, 10, 10)
    assert (out[0, :4, :4] == -7).all() and (out[0, 5:, 5:] > 0).all()
    assert min(seen) == -1  # mixed patches are computed; no padding zero was ever fed


def test_sources_feeding_the_same_input_and_unusual_grids_are_errors(image, tmp_path):
    path, _ = image
    model = FunctionModel(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match='model input "x" is fed twice'):
        eot.serve(model, [eot.source(path, placeholder="x"), eot.source(path, placeholder="x", index=2)],
                  fullyconv=True)
    south_up = write_raster(tmp_path / "south.tif", np.ones((1, 8, 8), np.float32))
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


def test_an_upsampled_or_nchw_output_is_an_error_not_scrambled_bands(image):
    path, _ = image
    up = FunctionModel(lambda x: {"y": np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match=r"is 2x the block: serve it with output.spcscale 0.5"):
        eot.serve(up, eot.source(path), fullyconv=True, tile_size=16).read()
    assert eot.serve(up, eot.source(path), fullyconv=True, spcscale=0.5, efield=2).read().shape == (3, 140, 180)
    nchw = FunctionModel(lambda x: {"y": x.transpose(0, 3, 1, 2)}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match=r"has shape \(1, 3, 16, 16\) for a 16x16 output block"):
        eot.serve(nchw, eot.source(path), fullyconv=True, tile_size=16).read()


def test_round4_style_per_pixel_outputs_keep_the_element_count_rule(image):
    path, data = image

    def round4(x):  # the talk's [rows*cols, bands, 1] layout
        n = x.shape[1] * x.shape[2]
        return {"y": x.reshape(n, x.shape[3], 1)}

    out = eot.serve(FunctionModel(round4, ["x"], ["y"]), eot.source(path), fullyconv=True, tile_size=7).read()
    np.testing.assert_array_equal(out, data)


def test_sources_in_different_crss_are_named_in_the_error(tmp_path):
    a = write_raster(tmp_path / "a.tif", np.ones((1, 8, 8), np.float32), crs="EPSG:32631")
    b = write_raster(tmp_path / "b.tif", np.ones((1, 8, 8), np.float32), crs="EPSG:32632")
    model = FunctionModel(lambda x1, x2: {"y": x1 + x2}, ["x1", "x2"], ["y"])
    with pytest.raises(eot.EotensorError, match="source2.il is in EPSG:32632 but source1.il is in EPSG:32631"):
        eot.serve(model, [eot.source(a), eot.source(b, index=2)], fullyconv=True)


@pytest.mark.parametrize("fullyconv", [True, False])
def test_absurd_spacing_scales_are_a_quick_clear_error(image, fullyconv):
    path, _ = image
    model = FunctionModel(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match=r"output.spcscale gives an output of \d+ pixels along x"):
        eot.serve(model, eot.source(path), fullyconv=fullyconv, spcscale=1e-9)


def test_patch_based_grid_trimming_at_small_scales_is_exact(image):
    """S < 1 in patch-based mode drops the trailing pixels whose patch would leave the image (decision 5g)."""
    path, data = image
    model = FunctionModel(lambda x: {"y": x[:, 1, 1, :]}, ["x"], ["y"])
    result = eot.serve(model, eot.source(path, rfield=3), spcscale=0.25)
    # Output pixel k is centred at source index 1 + k/4, so half-up rounding centres its 3-pixel patch on
    # floor(1.5 + k/4); the patch must end inside the 90 source pixels, which holds for k < 4 * (90 - 2) - 2.
    assert result.grid.width == 4 * (90 - 2) - 2 and result.grid.height == 4 * (70 - 2) - 2
    last = result.grid.width - 1
    assert math.floor(1.5 + last / 4) + 1 < 90 <= math.floor(1.5 + (last + 1) / 4) + 1


@pytest.mark.parametrize("kwargs, message", [
    ({"ram_mb": -5}, "optim.ram"), ({"tile_size": 0}, "tile_size must be >= 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"), ({"fullyconv": "maybe"}, "model.fullyconv expects on/off"),
    ({"scheduler": "gpu"}, 'unknown scheduler "gpu"; expected one of sync, threads'),
    ({"workers": -1}, "workers must be >= 0"), ({"efield": (1, 2, 3)}, "output.efield"),
    ({"spcscale": float("nan")}, "output.spcscale expects a finite number"),
])
def test_python_arguments_are_checked_like_the_command_line(image, kwargs, message):
    path, _ = image
    model = FunctionModel(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match=message):
        eot.serve(model, eot.source(path), **kwargs)


def test_python_arguments_take_what_users_write(image, tmp_path):
    import pathlib

    import rasterio.windows

    path, data = image
    model = FunctionModel(lambda x, a: {"y": x * a}, ["x", "a"], ["y"])
    result = eot.serve(model, eot.source(pathlib.Path(path), nodata="nan"), fullyconv="off",
                       output_names="y", user_placeholders="a=2", tile_size=(16, 8))
    window = result.read(rasterio.windows.Window(col_off=3, row_off=2, width=5, height=4))
    np.testing.assert_array_equal(window, data[:, 2:6, 3:8] * 2)
    np.testing.assert_array_equal(result.read((2, 3, 4, 5)), window)
    written = result.write(tmp_path / "o.tif")
    with rasterio.open(written) as ds:
        np.testing.assert_array_equal(ds.read(), data * 2)
    with pytest.raises(eot.EotensorError, match="read: window"):
        result.read("everything")


def test_the_plan_is_made_after_the_band_count_is_known(image):
    """The first plan of a result whose band count the signature cannot tell learns it first, so it is the
    plan every later call makes (a 4-band guess gave other tiles: two writes of one result differed)."""
    path, _ = image
    model = FunctionModel(lambda x: {"y": x[..., :1] * 2}, ["x"], ["y"])  # 1 band, unknown to the signature
    result = eot.serve(model, eot.source(path), fullyconv=True, ram_mb=0.05)
    first = result.plan()
    result.read()
    assert result.plan() == first and first.fingerprint == result.plan().fingerprint
    # (1 output + 3 input bands) x 4 bytes x work factor 4 = 64 bytes per pixel: 819 pixels, 9 rows of 90
    assert first.tile.rows == 9 and first.tile.cols == 90 and len(first) == 8


def test_a_file_nodata_value_unused_is_said(tmp_path):
    path = write_raster(tmp_path / "nd.tif", np.ones((1, 8, 8), np.float32), nodata=-10000)
    with pytest.warns(UserWarning, match=r"declares no-data -10000; .* unless source1.nodata is set"):
        eot.source(path)


def test_memory_hint_garbage_is_an_error(monkeypatch):
    from eotensor.engine.tiling import ram_budget_mb

    assert ram_budget_mb(env={"OTB_MAX_RAM_HINT": "512"}) == 512
    for bad in ("lots", "inf", "nan", "-3"):
        with pytest.raises(eot.EotensorError, match=f'OTB_MAX_RAM_HINT: "{bad}" is not a memory budget'):
            ram_budget_mb(env={"OTB_MAX_RAM_HINT": bad})


def test_outputs_of_nodata_runs_are_tagged_with_the_background(tmp_path):
    data = np.ones((1, 8, 8), np.float32)
    data[:, :2] = -1
    path = write_raster(tmp_path / "in.tif", data)
    model = FunctionModel(lambda x: {"y": x * 3}, ["x"], ["y"])
    result = eot.serve(model, eot.source(path, nodata=-1), fullyconv=True, background=-9)
    with rasterio.open(result.write(tmp_path / "tagged.tif")) as ds:
        assert ds.nodata == -9 and (ds.read()[:, :2] == -9).all()
    with rasterio.open(result.write(f"{tmp_path / 'own.tif'}?&nodata=7")) as ds:
        assert ds.nodata == 7
    with pytest.warns(UserWarning, match="output.bv -9 is not an integer of uint8"):
        u8 = result.write(tmp_path / "u8.tif", "uint8")
    with rasterio.open(u8) as ds:
        assert ds.nodata is None  # -9 does not fit uint8: no tag rather than a wrong one
    plain = eot.serve(model, eot.source(path), fullyconv=True)
    with rasterio.open(plain.write(tmp_path / "plain.tif")) as ds:
        assert ds.nodata is None


def test_user_block_size_aligns_the_automatic_tiles(tmp_path):
    """Automatic tiles are multiples of the blocks the writer will use, the user's gdal:co:BLOCK*SIZE included."""
    from eotensor.io.extended import parse_output
    from eotensor.io.geotiff import block_shape

    path = write_raster(tmp_path / "big.tif", np.ones((1, 700, 700), np.float32))
    result = eot.serve(max_pool_model(3), eot.source(path, rfield=3), fullyconv=True, ram_mb=10)
    default = result.tile_shape()
    assert default.rows % 256 == 0 and default.cols % 256 == 0
    target = parse_output(f"{tmp_path / 'o.tif'}?&gdal:co:BLOCKXSIZE=48&gdal:co:BLOCKYSIZE=32")
    block = block_shape(target, result.grid.width, result.grid.height)
    assert block == (32, 48)
    tile = result.tile_shape(block)
    assert tile.rows % 32 == 0 and tile.cols % 48 == 0 and tile.rows < result.grid.height


def test_an_output_size_error_says_which_input_each_source_fed(image):
    """A user placeholder naming the image's input moves the source to another input: the error says so."""
    path, _ = image
    model = FunctionModel(lambda x, a: {"y": np.asarray(x) * np.asarray(a).ravel()[:2]}, ["x", "a"], ["y"])
    with pytest.raises(eot.EotensorError,
                       match=r'has \d+ values .*\(inputs: source1 -> "a", model.userplaceholders -> "x"\)'):
        eot.serve(model, eot.source(path), fullyconv=True, user_placeholders="x=(1.0, 2.0)").read()


@pytest.mark.parametrize("returns, background, pixel_type", [
    (lambda x: (x * 2 + 1).astype(np.float64), 0.1, "double"),
    (lambda x: x > 40, -5, "float"),
    (lambda x: (x > 40).astype(np.uint8), -5, "int16"),
    (lambda x: (x > 40).astype(np.uint8), -5, "uint8"),
])
def test_skipped_pixels_are_the_same_in_every_tile_whatever_the_model_dtype(tmp_path, returns, background,
                                                                            pixel_type):
    data = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64) % 97
    data[:, :8, :8] = -9
    path = write_raster(tmp_path / "in.tif", data)
    model = FunctionModel(lambda x: {"y": returns(x)}, ["x"], ["y"])
    written = []
    for tile in (4, 64, (24, 8)):
        result = eot.serve(model, eot.source(path, nodata=-9), fullyconv=True, background=background, tile_size=tile)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "output.bv -5 is not an integer of uint8")  # tested elsewhere
            out = result.write(tmp_path / f"o{len(written)}.tif", pixel_type)
        with rasterio.open(out) as ds:
            written.append(ds.read())
    for other in written[1:]:
        np.testing.assert_array_equal(other, written[0])
    expected = np.array(background).astype(written[0].dtype) if pixel_type != "uint8" else 0
    assert (written[0][:, :8, :8] == expected).all()


def test_plan_fingerprints_follow_what_determines_the_pixels(image, tmp_path):
    """Equal set-ups give equal fingerprints across builds; an edited model file or another tile size changes it."""
    import os
    import time

    path, _ = image
    model_file = tmp_path / "calc.py"
    model_file.write_text("def model(x):\n    return x + 1\n")
    first = eot.serve(str(model_file), eot.source(path), fullyconv=True, tile_size=16).plan()
    again = eot.serve(str(model_file), eot.source(path), fullyconv=True, tile_size=16).plan()
    assert first.fingerprint == again.fingerprint
    assert eot.serve(str(model_file), eot.source(path), fullyconv=True, tile_size=32).plan().fingerprint \
        != first.fingerprint
    model_file.write_text("def model(x):\n    return x + 2\n")
    later = time.time() + 5
    os.utime(model_file, (later, later))
    edited = eot.serve(str(model_file), eot.source(path), fullyconv=True, tile_size=16).plan()
    assert edited.fingerprint != first.fingerprint
    assert len(first) == -(-first.grid.height // 16) * -(-first.grid.width // 16)
    model_file.write_text("def model(x):\n    return x[..., :1] + 1\n")
    band1 = eot.serve(str(model_file), eot.source(f"{path}?&bands=1"), fullyconv=True, tile_size=16).plan()
    band2 = eot.serve(str(model_file), eot.source(f"{path}?&bands=2"), fullyconv=True, tile_size=16).plan()
    assert band1.fingerprint != band2.fingerprint  # other bands, other pixels
    os.utime(path, (later, later))
    touched = eot.serve(str(model_file), eot.source(f"{path}?&bands=1"), fullyconv=True, tile_size=16).plan()
    assert touched.fingerprint != band1.fingerprint  # a rewritten input may hold other pixels


def test_more_inputs_users_get_wrong_are_one_line_errors_or_warnings(image, tmp_path):
    path, _ = image
    with pytest.raises(eot.EotensorError, match=r"source1.nodata = 1e-50 is outside float32's range"):
        eot.source(path, nodata=1e-50)
    with pytest.raises(eot.EotensorError, match=r"source1.nodata = -1e\+39 is outside float32's range"):
        eot.source(path, nodata=-1e39)
    assert np.isnan(eot.source(path, nodata="nan").nodata) and eot.source(path, nodata=0.1).nodata == 0.1
    model = FunctionModel(lambda x, a: {"y": x * a}, ["x", "a"], ["y"])
    with pytest.raises(eot.EotensorError, match='model.userplaceholders: "a" is given twice'):
        eot.serve(model, eot.source(path), user_placeholders=["a=1", "a=2"])
    with pytest.raises(eot.EotensorError, match="model.dir: int 3 is not a model"):
        eot.serve(3, eot.source(path))
    plus = FunctionModel(lambda x: {"y": x + 1}, ["x"], ["y"])
    result = eot.serve(plus, eot.source(path, nodata=0), fullyconv=True, background=-5)
    with pytest.warns(UserWarning, match=r"output.bv -5 is not an integer of uint8 .* written as 0"):
        result.write(tmp_path / "u8.tif", "uint8")
