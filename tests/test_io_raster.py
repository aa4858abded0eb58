"""Input side: OTB band selection, complex bands, files changing under a result, clear geometry errors."""

from __future__ import annotations

import os
import threading
from functools import partial

import numpy as np
import pytest
import rasterio
from affine import Affine

from eotensor.errors import GeometryError, InputFileError
from eotensor.geometry import Window
from eotensor.io.extended import parse_input, resolve_bands
from eotensor.io.raster import RasterSource
from eotensor.testing import write_raster

TRANSFORM = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0)
_raster = partial(write_raster, origin=(TRANSFORM.c, TRANSFORM.f))


def _bands(count, height=6, width=5):
    """Band b (1-based) holds 100 * b + pixel index, so every value says where it came from."""
    base = np.arange(height * width, dtype=np.float32).reshape(height, width)
    return np.stack([base + 100 * b for b in range(1, count + 1)])


def _whole(source):
    return source.read(Window(0, 0, source.grid.height, source.grid.width))


# --- bands=... (OTB input extended filename) ------------------------------------------------------------------


@pytest.mark.parametrize(("bands", "expected"), [
    ("1", [1]), ("3,1", [3, 1]), ("1:3", [1, 2, 3]), (":2", [1, 2]), ("3:", [3, 4]), ("-1", [4]),
    ("-2:", [3, 4]), (":-3", [1, 2]), ("2,2", [2, 2]), ("1,3:4,-1", [1, 3, 4, 4]), (":", [1, 2, 3, 4]),
])
def test_band_selection(tmp_path, bands, expected):
    path = _raster(tmp_path / "a.tif", _bands(4))
    source = RasterSource([f"{path}?&bands={bands}"])
    assert source.count == len(expected) and source.band_counts == [len(expected)]
    assert source.paths == [path]
    pixels = _whole(source)
    np.testing.assert_array_equal(pixels.transpose(2, 0, 1), _bands(4)[[b - 1 for b in expected]])


def test_band_selection_stacks_with_other_images(tmp_path):
    a = _raster(tmp_path / "a.tif", _bands(3))
    b = _raster(tmp_path / "b.tif", _bands(2))
    source = RasterSource([f"{a}?&bands=2", b])
    assert source.band_counts == [1, 2]
    pixels = _whole(source).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels, np.concatenate([_bands(3)[1:2], _bands(2)]))


@pytest.mark.parametrize(("bands", "fragment"), [("5", 'bands "5" does not fit the 4 band(s)'),
                                                  ("3:2", 'bands "3:2" does not fit'),
                                                  ("-5:", 'bands "-5:" does not fit')])
def test_band_selection_outside_the_file(tmp_path, bands, fragment):
    path = _raster(tmp_path / "a.tif", _bands(4))
    with pytest.raises(InputFileError) as info:
        RasterSource([f"{path}?&bands={bands}"], "source2.il")
    message = str(info.value)
    assert fragment in message and message.startswith("source2.il: ") and path in message and "\n" not in message


@pytest.mark.parametrize("bands", ["", "a", "0", "1:0", "1;2", "1:2:3"])
def test_malformed_band_selection(tmp_path, bands):
    path = _raster(tmp_path / "a.tif", _bands(4))
    with pytest.raises(InputFileError, match=r"source1\.il: .*malformed; expected comma-separated 1-based"):
        RasterSource([f"{path}?&bands={bands}"])


@pytest.mark.parametrize("key", ["skipcarto=true", "geom=a.geom", "sdataidx=1", "resol=2", "skipgeom=1"])
def test_other_otb_input_keys_are_named_as_unsupported(tmp_path, key):
    path = _raster(tmp_path / "a.tif", _bands(1))
    with pytest.raises(InputFileError) as info:
        RasterSource([f"{path}?&{key}"])
    message = str(info.value)
    assert f'"{key.split("=")[0]}" is not supported' in message and "skipcarto" in message and path in message


def test_unknown_input_key(tmp_path):
    path = _raster(tmp_path / "a.tif", _bands(1))
    with pytest.raises(InputFileError, match='unknown extended-filename key "band"'):
        RasterSource([f"{path}?&band=1"])


def test_missing_file_with_extended_name_names_the_real_file(tmp_path):
    with pytest.raises(InputFileError) as info:
        RasterSource([f"{tmp_path}/nope.tif?&bands=1"])
    assert f'"{tmp_path}/nope.tif" does not exist' in str(info.value)


def test_url_query_is_not_an_extended_filename():
    spec = parse_input("/vsicurl/https://example.com/a.tif?token=abc")
    assert spec.path == "/vsicurl/https://example.com/a.tif?token=abc" and spec.bands is None
    spec = parse_input("/vsicurl/https://example.com/a.tif?token=abc?&bands=2:")
    assert spec.path == "/vsicurl/https://example.com/a.tif?token=abc"
    assert resolve_bands(spec, 3) == [2, 3]


# --- complex bands (decision 35) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "complex_int16"])
def test_complex_band_gives_real_and_imaginary(tmp_path, dtype):
    real, imag = _bands(2)
    values = (real + 1j * imag)[np.newaxis]
    path = str(tmp_path / "c.tif")
    with rasterio.open(path, "w", driver="GTiff", width=5, height=6, count=1, dtype=dtype, crs="EPSG:32631",
                       transform=TRANSFORM, nodata=0) as ds:
        ds.write(values.astype("complex64" if dtype == "complex_int16" else dtype))
    other = _raster(tmp_path / "r.tif", _bands(1))
    source = RasterSource([path, other])
    assert source.count == 3 and source.band_counts == [2, 1]
    assert source.nodata_values == [0.0, 0.0, None]
    pixels = source.read(Window(1, 2, 3, 2)).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels[0], real[1:4, 2:4])
    np.testing.assert_array_equal(pixels[1], imag[1:4, 2:4])
    np.testing.assert_array_equal(pixels[2], _bands(1)[0, 1:4, 2:4])


# --- files that change under a result -----------------------------------------------------------------------------


def test_input_that_shrank_after_opening(tmp_path):
    path = _raster(tmp_path / "a.tif", _bands(1, 8, 8))
    source = RasterSource([path], "source1.il")
    _raster(tmp_path / "a.tif", _bands(1, 4, 4))  # replaced before the first read
    with pytest.raises(InputFileError) as info:
        source.read(Window(0, 0, 8, 8))
    message = str(info.value)
    assert message == f'source1.il: "{path}" changed since it was opened: was 8x8, now 4x4; rerun on the new file'


def test_input_replaced_between_reads(tmp_path):
    path = _raster(tmp_path / "a.tif", _bands(1, 8, 8))
    source = RasterSource([path])
    source.read(Window(0, 0, 4, 4))  # this thread's handle is open
    replacement = _raster(tmp_path / "new.tif", _bands(1, 8, 8) + 1)
    os.replace(replacement, path)
    with pytest.raises(InputFileError, match="changed since it was opened: was 8x8, its contents were modified"):
        source.read(Window(4, 4, 4, 4))


def test_input_that_shrank_seen_by_a_new_thread(tmp_path):
    path = _raster(tmp_path / "a.tif", _bands(1, 8, 8))
    source = RasterSource([path])
    source.read(Window(0, 0, 4, 4))
    _raster(tmp_path / "a.tif", _bands(1, 5, 5))
    errors = []

    def worker():
        try:
            source.read(Window(0, 0, 4, 4))
        except InputFileError as error:
            errors.append(str(error))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors and "was 8x8, now 5x5" in errors[0]


def test_unchanged_input_reads_from_many_threads(tmp_path):
    path = _raster(tmp_path / "a.tif", _bands(2, 32, 32))
    source = RasterSource([path])
    results = []
    threads = [threading.Thread(target=lambda: results.append(_whole(source))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for pixels in results:
        np.testing.assert_array_equal(pixels.transpose(2, 0, 1), _bands(2, 32, 32))


# --- errors naming the source and file, no-data ------------------------------------------------------------------


def test_rotated_raster_error_names_param_and_file(tmp_path):
    path = _raster(tmp_path / "rot.tif", _bands(1), transform=Affine(10.0, 1.0, 300000.0, 1.0, -10.0, 5000000.0))
    with pytest.raises(GeometryError) as info:
        RasterSource([path], "source3.il")
    message = str(info.value)
    assert message.startswith(f'source3.il: "{path}": rotated rasters are not supported') and "\n" not in message


def test_nodata_files_follow_band_selection(tmp_path):
    a = _raster(tmp_path / "a.tif", _bands(2), nodata=-9999)
    b = _raster(tmp_path / "b.tif", _bands(1))
    source = RasterSource([f"{a}?&bands=2", b])
    assert source.nodata_values == [-9999.0, None]
    assert source.nodata_files() == [(a, -9999.0)]
    assert RasterSource([b]).nodata_files() == []
