"""Start-up overlap: the sources' first rows are read while the model loads, and no pixel changes."""

import os
import textwrap

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

import eotensor as eot
from eotensor.engine import prefetch
from eotensor.engine.prefetch import RowPrefetch, load_while_reading
from eotensor.errors import InputFileError, ModelError
from eotensor.geometry import Window
from eotensor.io.raster import RasterSource
from eotensor.testing import write_raster

SLOW_MODEL = '''
import time

time.sleep({seconds})  # a runtime that takes a while to import, like TensorFlow


def model(x1, x2):
    return x1[..., :1] * 3 + x2[..., 1:2]
'''


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prefetch")
    rng = np.random.default_rng(7)
    fine = rng.integers(-500, 500, size=(3, 90, 70)).astype(np.int16)
    coarse = rng.integers(0, 100, size=(2, 45, 35)).astype(np.int16)
    a = write_raster(folder / "fine.tif", fine, origin=(1000, 2000), spacing=1)
    b = write_raster(folder / "coarse.tif", coarse, origin=(1000, 2000), spacing=2)
    return folder, a, b, fine, coarse


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 90), chunk=st.integers(1, 40), data=st.data())
def test_prefetched_windows_equal_file_reads(scene, rows, chunk, data):
    _, a, _, fine, _ = scene
    raster = RasterSource([a])
    held = RowPrefetch(raster)
    held.chunk_rows = chunk
    while held.rows < rows and held.extend():
        pass
    assert held.rows >= min(rows, 90)
    row = data.draw(st.integers(0, 89))
    col = data.draw(st.integers(0, 69))
    window = Window(row, col, data.draw(st.integers(1, 90 - row)), data.draw(st.integers(1, 70 - col)))
    held.read(Window(0, 0, 1, 1))  # a tile's read has used the rows held
    before = held.rows
    got = held.read(window)
    # a read starting below the rows held lets them go; any other keeps them
    assert held.rows == (0 if window.row >= before else before)
    expected = np.moveaxis(fine[:, window.row:window.row_stop, window.col:window.col_stop], 0, -1)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert got.flags.c_contiguous and got.dtype == np.float32
    got[...] = -1  # the caller owns the array: the rows held must not change
    np.testing.assert_array_equal(held.read(window), expected)


def test_rows_are_let_go_once_reads_pass_below_them(scene):
    _, a, _, fine, _ = scene
    held = RowPrefetch(RasterSource([a]))
    held.chunk_rows = 10
    held.extend(), held.extend()
    assert held.rows == 20
    held.read(Window(60, 0, 5, 5))  # below the rows before any read used them (a probe): rows kept
    assert held.rows == 20
    held.read(Window(15, 0, 10, 70))  # straddles: from the file, rows kept
    assert held.rows == 20
    held.read(Window(12, 0, 3, 3))  # starts below the first chunk: that chunk goes
    assert held._chunks[0] is None and held.rows == 20
    np.testing.assert_array_equal(held.read(Window(5, 0, 10, 70))[..., 1], fine[1, 5:15])  # from the file
    held.read(Window(20, 0, 5, 5))
    assert held.rows == 0 and not held.extend()
    np.testing.assert_array_equal(held.read(Window(0, 0, 3, 3))[..., 0], fine[0, :3, :3])


def test_a_file_changed_after_the_prefetch_is_still_refused(tmp_path):
    path = write_raster(tmp_path / "a.tif", np.ones((1, 20, 20), np.int16), origin=(0, 0))
    held = RowPrefetch(RasterSource([path]))
    held.extend()
    st_ = os.stat(path)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 5_000_000_000))
    with pytest.raises(InputFileError, match="changed since it was opened"):
        held.read(Window(0, 0, 5, 5))


def test_sources_are_read_over_the_same_share_of_their_height_within_the_budget(scene, monkeypatch):
    _, a, b, _, _ = scene
    monkeypatch.setattr(prefetch, "CHUNK_BYTES", 4 * 3 * 70 * 5)  # 5 rows of the fine source per chunk
    fine, coarse = RasterSource([a]), RasterSource([b])
    model, held = load_while_reading(lambda: __import__("time").sleep(0.5) or "loaded", [fine, coarse],
                                     budget_bytes=30 * 4 * 3 * 70 + 15 * 4 * 2 * 35)
    assert model == "loaded"
    assert [h.rows for h in held] == [30, 15]


def test_a_load_error_reaches_the_caller_and_reads_stop_quietly(scene, tmp_path):
    _, a, _, _, _ = scene

    def fail():
        raise ModelError("model.dir: broken")

    with pytest.raises(ModelError, match="model.dir: broken"):
        load_while_reading(fail, [RasterSource([a])], 1e9)


def test_serving_a_slow_model_file_prefetches_and_changes_no_pixel(scene, tmp_path):
    folder, a, b, fine, coarse = scene
    calc = tmp_path / "calc.py"
    calc.write_text(textwrap.dedent(SLOW_MODEL.format(seconds=0.5)))
    sources = [eot.source(a, 1), eot.source(b, 1, index=2)]
    result = eot.serve(str(calc), sources, tile_size=(16, 16), ram_mb=64)
    held = result.engine._readers
    assert all(isinstance(h, RowPrefetch) for h in held) and held[0].rows > 0
    out = result.write(tmp_path / "out.tif", "int32")
    with rasterio.open(out) as ds:
        written = ds.read(1)
    assert held[0].rows == held[1].rows == 0  # let go once the run is over
    up = np.repeat(np.repeat(coarse[1], 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(written, fine[0].astype(np.int32) * 3 + up)
