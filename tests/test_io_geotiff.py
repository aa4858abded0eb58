"""The GeoTIFF writer: windows in any order, boxes, blocks, creation options, temporary files, inputs kept,
the completeness check at commit."""

from __future__ import annotations

import os
import random
import tempfile

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from eotensor.errors import OutputFileError
from eotensor.io.atomic import ensure_not_input
from eotensor.io.extended import parse_output
from eotensor.io.geotiff import GeoTiffWriter, block_shape

TRANSFORM = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0)
CRS = "EPSG:32631"


# --- writer ------------------------------------------------------------------------------------------


def _write_tiles(path, data, tiles, pixel_type=None, extended="", block_size=None, order_seed=0):
    if block_size:
        extended = (extended or "?") + f"&gdal:co:BLOCKXSIZE={block_size}&gdal:co:BLOCKYSIZE={block_size}"
    target = parse_output(str(path) + extended, pixel_type)
    tiles = list(tiles)
    random.Random(order_seed).shuffle(tiles)
    bands, height, width = data.shape
    with GeoTiffWriter(target, width=width, height=height, count=bands, transform=TRANSFORM, crs=CRS) as writer:
        for row, col, h, w in tiles:
            writer.write(data[:, row : row + h, col : col + w], (row, col, h, w))
    return target


def _tiles(height, width, tile_h, tile_w):
    for row in range(0, height, tile_h):
        for col in range(0, width, tile_w):
            yield row, col, min(tile_h, height - row), min(tile_w, width - col)


def _data(bands, height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1000, size=(bands, height, width)).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(
    bands=st.integers(1, 3),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    tile_h=st.integers(1, 40),
    tile_w=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_random_order_windows_reproduce_the_array(bands, height, width, tile_h, tile_w, seed):
    data = _data(bands, height, width, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "full.tif")
        _write_tiles(path, data, _tiles(height, width, tile_h, tile_w), block_size=16, order_seed=seed)
        with rasterio.open(path) as ds:
            assert (ds.count, ds.height, ds.width) == data.shape
            assert ds.transform == TRANSFORM
            np.testing.assert_array_equal(ds.read(), data)
        assert os.listdir(tmp) == ["full.tif"]


def test_box_equals_window_of_full_output(tmp_path):
    data = _data(2, 100, 90)
    tiles = list(_tiles(100, 90, 32, 32))
    full = tmp_path / "full.tif"
    boxed = tmp_path / "box.tif"
    _write_tiles(full, data, tiles, "int16")
    target = _write_tiles(boxed, data, tiles, "int16", "?&box=17:33:50:40", order_seed=3)
    assert target.path == str(boxed)
    with rasterio.open(full) as whole, rasterio.open(boxed) as part:
        assert (part.width, part.height) == (50, 40)
        np.testing.assert_array_equal(part.read(), whole.read()[:, 33:73, 17:67])
        assert part.transform.c == 300000.0 + 17 * 10 and part.transform.f == 5000000.0 - 33 * 10
        assert part.crs == whole.crs


def test_box_skips_windows_outside(tmp_path):
    target = parse_output(str(tmp_path / "o.tif?&box=10:10:5:5"), "uint8")
    with GeoTiffWriter(target, width=40, height=40, count=1, transform=TRANSFORM, crs=CRS) as writer:
        writer.write(np.full((1, 10, 10), 9, np.float32), (0, 0, 10, 10))  # wholly outside: skipped
        writer.write(np.full((1, 10, 40), 4, np.float32), (12, 0, 10, 40))  # partly inside
    with rasterio.open(tmp_path / "o.tif") as ds:
        out = ds.read(1)
    assert out.shape == (5, 5)
    assert (out[:2] == 0).all() and (out[2:] == 4).all()


def test_box_outside_grid(tmp_path):
    target = parse_output(str(tmp_path / "o.tif") + "?&box=30:0:20:10")
    with pytest.raises(OutputFileError) as info:
        GeoTiffWriter(target, width=40, height=40, count=1, transform=TRANSFORM, crs=CRS)
    message = str(info.value)
    assert "30:0:20:10" in message and "40x40" in message and "\n" not in message
    assert os.listdir(tmp_path) == []


def test_default_creation_options(tmp_path):
    data = _data(3, 300, 280)
    _write_tiles(tmp_path / "o.tif", data, _tiles(300, 280, 128, 128))
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.profile["tiled"] is True
        assert ds.block_shapes[0] == (256, 256)
        assert ds.interleaving.value == "BAND"
        assert ds.dtypes[0] == "float32"
        assert ds.nodata is None
        assert ds.crs.to_epsg() == 32631


def test_block_size_and_user_options(tmp_path):
    data = _data(2, 100, 100)
    _write_tiles(tmp_path / "o.tif", data, _tiles(100, 100, 64, 64), "int16",
                 "?&gdal:co:COMPRESS=DEFLATE&gdal:co:PREDICTOR=2&gdal:co:INTERLEAVE=PIXEL&nodata=-9999",
                 block_size=64)
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.profile["compress"] == "deflate"
        assert ds.compression.value == "DEFLATE"
        assert ds.block_shapes[0] == (64, 64)
        assert ds.interleaving.value == "PIXEL"
        assert ds.nodata == -9999
        np.testing.assert_array_equal(ds.read(), data.astype(np.int16))


def test_user_block_size_overrides(tmp_path):
    target = _write_tiles(tmp_path / "o.tif", _data(1, 50, 50), [(0, 0, 50, 50)], extended="?&gdal:co:BLOCKXSIZE=32")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.block_shapes[0] == (64, 32) == block_shape(target, 50, 50)


def test_nan_written_as_nodata(tmp_path):
    data = np.array([[[np.nan, 1.7], [-2.7, 40000.6]]], np.float32)
    _write_tiles(tmp_path / "o.tif", data, [(0, 0, 2, 2)], "int16", "?&nodata=-9999")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.nodata == -9999
        assert ds.read(1).tolist() == [[-9999, 1], [-2, 32767]]


def test_accepts_geometry_window_and_2d_arrays(tmp_path):
    from eotensor.geometry import Window

    target = parse_output(str(tmp_path / "o.tif"), "uint16")
    with GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS) as writer:
        writer.write(np.full((2, 4), 3, np.float32), Window(0, 0, 2, 4))
        writer.write(np.full((1, 2, 4), 5, np.float32), rasterio.windows.Window(0, 2, 4, 2))
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.read(1).tolist() == [[3] * 4, [3] * 4, [5] * 4, [5] * 4]


def test_wrong_array_shape(tmp_path):
    target = parse_output(str(tmp_path / "o.tif"))
    with pytest.raises(ValueError, match=r"expected \(2, 4, 4\)"):
        with GeoTiffWriter(target, width=8, height=8, count=2, transform=TRANSFORM, crs=CRS) as writer:
            writer.write(np.zeros((1, 4, 4), np.float32), (0, 0, 4, 4))
    assert os.listdir(tmp_path) == []


def test_temp_file_until_commit(tmp_path):
    final = tmp_path / "o.tif"
    target = parse_output(str(final))
    writer = GeoTiffWriter(target, width=8, height=8, count=1, transform=TRANSFORM, crs=CRS)
    writer.write(np.ones((1, 8, 8), np.float32), (0, 0, 8, 8))
    assert not final.exists()
    assert os.path.exists(writer.temp_path)
    assert os.path.dirname(writer.temp_path) == str(tmp_path)
    assert os.path.basename(writer.temp_path).startswith(".eot-")
    assert len(os.path.basename(writer.temp_path)) <= 25
    assert writer.commit() == str(final)
    assert final.exists() and not os.path.exists(writer.temp_path)
    assert os.listdir(tmp_path) == ["o.tif"]
    with pytest.raises(OutputFileError):
        writer.write(np.ones((1, 8, 8), np.float32), (0, 0, 8, 8))


def test_exception_leaves_nothing_and_keeps_old_file(tmp_path):
    final = tmp_path / "o.tif"
    _write_tiles(final, np.full((1, 4, 4), 7, np.float32), [(0, 0, 4, 4)])
    target = parse_output(str(final))
    with pytest.raises(RuntimeError, match="boom"):
        with GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS) as writer:
            writer.write(np.zeros((1, 4, 4), np.float32), (0, 0, 4, 4))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["o.tif"]
    with rasterio.open(final) as ds:
        assert (ds.read(1) == 7).all()


def test_abort_removes_temp(tmp_path):
    target = parse_output(str(tmp_path / "o.tif"))
    writer = GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)
    writer.abort()
    writer.abort()
    assert writer.closed and os.listdir(tmp_path) == []


def test_commit_removes_stale_sidecars(tmp_path):
    final = tmp_path / "o.tif"
    (tmp_path / "o.tif.aux.xml").write_text("<PAMDataset/>")
    _write_tiles(final, _data(1, 4, 4), [(0, 0, 4, 4)])
    assert os.listdir(tmp_path) == ["o.tif"]


def test_missing_parent_directory(tmp_path):
    target = parse_output(str(tmp_path / "missing" / "o.tif"))
    with pytest.raises(OutputFileError) as info:
        GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)
    message = str(info.value)
    assert message.startswith("out: ") and "does not exist" in message and "o.tif" in message
    assert not (tmp_path / "missing").exists()


def test_parent_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    target = parse_output(str(tmp_path / "afile" / "o.tif"))
    with pytest.raises(OutputFileError, match="is a file"):
        GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)


def test_output_is_a_directory(tmp_path):
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(OutputFileError, match="is a directory"):
        GeoTiffWriter(parse_output(str(tmp_path / "d.tif")), width=4, height=4, count=1, transform=TRANSFORM)


@pytest.mark.parametrize(("option", "fragment"), [("COMPRESS=NOSUCHCODEC", "NOSUCHCODEC"), ("COMPRES=LZW", "COMPRES")])
def test_bad_creation_option_is_an_output_error(tmp_path, option, fragment):
    target = parse_output(str(tmp_path / "o.tif") + f"?&gdal:co:{option}")
    with pytest.raises(OutputFileError) as info:
        GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)
    message = str(info.value)
    assert "creation option" in message and fragment in message and "\n" not in message
    assert os.listdir(tmp_path) == []


def test_not_georeferenced_grid(tmp_path):
    with GeoTiffWriter(parse_output(str(tmp_path / "o.tif")), width=3, height=2, count=1,
                       transform=Affine.identity(), crs=None) as writer:
        writer.write(np.arange(6, dtype=np.float32).reshape(1, 2, 3), (0, 0, 2, 3))
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.read(1).tolist() == [[0, 1, 2], [3, 4, 5]]


# --- never overwrite an input ------------------------------------------------------------------------


def test_output_equal_to_input(tmp_path):
    source = tmp_path / "in.tif"
    _write_tiles(source, _data(1, 4, 4), [(0, 0, 4, 4)])
    with pytest.raises(OutputFileError) as info:
        ensure_not_input(str(source), [str(tmp_path / "other.tif"), str(source)])
    assert "in.tif" in str(info.value) and str(info.value).startswith("out: ")
    # The same file through another spelling or a symlink.
    with pytest.raises(OutputFileError):
        ensure_not_input(str(tmp_path / "sub" / ".." / "in.tif"), [str(source)])
    os.symlink(source, tmp_path / "link.tif")
    with pytest.raises(OutputFileError):
        ensure_not_input(str(tmp_path / "link.tif"), [str(source)])
    with pytest.raises(OutputFileError):
        ensure_not_input(parse_output(str(source) + "?&nodata=0").path, [str(source)])


def test_output_distinct_from_inputs(tmp_path):
    source = tmp_path / "in.tif"
    source.write_bytes(b"")
    ensure_not_input(str(tmp_path / "out.tif"), [str(source), "/vsicurl/http://example.com/in.tif"])
    ensure_not_input(str(tmp_path / "out.tif"), [])


@pytest.mark.parametrize("options", [{}, {"BIGTIFF": "YES"}, {"tiled": False}, {"interleave": "band"},
                                     {"compress": "deflate"}])
def test_block_check_reads_gdal_s_offsets_and_finds_a_truncated_file(tmp_path, options):
    """The completeness check parses the TIFF directory itself (fast); it must agree with GDAL's own view."""
    import os

    from eotensor.io.geotiff import _block_extents, _unwritten_block
    from eotensor.testing import write_raster

    path = str(tmp_path / "blocks.tif")
    settings = {"tiled": True, "blockxsize": 256, "blockysize": 256, **options}
    if settings["tiled"] is False:
        del settings["blockxsize"], settings["blockysize"]
    write_raster(path, np.random.default_rng(0).random((3, 700, 500)).astype(np.float32), **settings)
    offsets, _ = _block_extents(path)
    with rasterio.open(path) as ds:
        rows, cols = ds.block_shapes[0]
        bands = range(1, 4) if ds.interleaving and ds.interleaving.value == "BAND" else (1,)
        gdal = [int(ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b))
                for b in bands for y in range(-(-700 // rows)) for x in range(-(-500 // cols))]
    assert sorted(offsets.tolist()) == sorted(gdal)
    assert _unwritten_block(path, sparse_ok=False) is None
    os.truncate(path, os.path.getsize(path) - 100)
    assert "is missing from the file" in _unwritten_block(path, sparse_ok=False)
