"""Zarr outputs (issue 15 item 1, decision 31): the GeoTIFF's pixels, CRS and transform, written atomically, by the
client or (on a Dask cluster, one chunk per tile) by the workers themselves.

One cluster (2 single-threaded worker processes) serves the whole module (decision 29).
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import OutputFileError
from eotensor.runtimes import FunctionModel
from eotensor.testing import write_raster

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
xarray = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")

FC_MODEL = '''
import numpy as np

OUTPUTS = ["y"]

def model(x1, x2):
    """A 3x3 box sum of x1's first band (RF 3) plus x2 (RF 1), and a signed product: two bands out."""
    if FAIL_ABOVE is not None and x1.max() > FAIL_ABOVE:
        raise ValueError(f"value {float(x1.max()):g} is too large")
    h, w = x2.shape[1:3]
    box = sum(x1[:, i:i + h, j:j + w, 0] for i in range(3) for j in range(3))
    return {"y": np.stack([box + x2[..., 0] * 0.75, (box - 400) * x2[..., 1] / 7], axis=-1)}
'''

PATCH_MODEL = '''
import numpy as np

OUTPUTS = ["y"]

def model(x1, x2):
    """Patch-based: (n, 3, 3, 2) patches of x1 and (n, 1, 1, 2) of x2 -> (n, 2)."""
    return {"y": np.stack([x1[..., 0].sum(axis=(1, 2)) - x2[:, 0, 0, 0] * 3.5,
                           x1[:, 1, 1, 1] * x2[:, 0, 0, 1] - 2000.25], axis=-1)}
'''


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zarr")
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 100, size=(2, 45, 61)).astype(np.int16)
    a = write_raster(tmp / "a.tif", pixels)
    pixels[:, 10:22, 5:30] = 50  # a no-data hole (with -source1.nodata 50): skipped blocks get the background
    write_raster(tmp / "holes.tif", pixels)
    b = write_raster(tmp / "b.tif", rng.integers(0, 100, size=(2, 43, 59)).astype(np.int16))
    (tmp / "fc.py").write_text("FAIL_ABOVE = None\n" + textwrap.dedent(FC_MODEL))
    (tmp / "failing.py").write_text("FAIL_ABOVE = 98\n" + textwrap.dedent(FC_MODEL))
    (tmp / "patch.py").write_text(textwrap.dedent(PATCH_MODEL))
    return tmp, a, b


def served(scene, model="fc.py", nodata=None, **options):
    tmp, a, b = scene
    a = a if nodata is None else str(tmp / "holes.tif")
    return eot.serve(str(tmp / model), [eot.source(a, rfield=3, nodata=nodata), eot.source(b)],
                     fullyconv=model != "patch.py", **options)


def open_store(path):
    """The store as xarray opens it (raw values: no masking), refusing any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xarray.open_zarr(path, mask_and_scale=False)


def assert_same_raster(store, tif):
    """The store's band_data equals the GeoTIFF bit for bit: dtype, values, CRS, transform, coordinates, no-data."""
    ds = open_store(store)
    data = ds["band_data"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # rioxarray's own use of affine's `*`
        reference = rioxarray.open_rasterio(tif, mask_and_scale=False)
        assert data.dtype == reference.dtype
        np.testing.assert_array_equal(data.values, reference.values)
        assert data.values.tobytes() == reference.values.tobytes()  # NaN payloads and signed zeros too
        assert ds.rio.crs == reference.rio.crs and data.rio.crs == reference.rio.crs
        assert data.rio.transform() == reference.rio.transform()
        np.testing.assert_array_equal(data.x.values, reference.x.values)
        np.testing.assert_array_equal(data.y.values, reference.y.values)
        np.testing.assert_array_equal(data.band.values, reference.band.values)
        nodata, expected = data.rio.nodata, reference.rio.nodata  # both opened raw: the _FillValue attribute
        assert nodata == expected or (None not in (nodata, expected) and np.isnan(nodata) and np.isnan(expected))
    with rasterio.open(f'ZARR:"{store}":/band_data') as zarr_ds, rasterio.open(tif) as tif_ds:  # GDAL reads it too
        assert zarr_ds.read().tobytes() == tif_ds.read().tobytes()
        assert (zarr_ds.crs, zarr_ds.transform) == (tif_ds.crs, tif_ds.transform)
        assert zarr_ds.nodata == tif_ds.nodata or np.isnan(zarr_ds.nodata) and np.isnan(tif_ds.nodata)
    return ds


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".eot-"))


@pytest.mark.parametrize("model", ["fc.py", "patch.py"])
@pytest.mark.parametrize("on", ["threads", "dask"])
def test_zarr_equals_the_geotiff_of_the_same_run(scene, cluster, tmp_path, model, on):
    scheduler = cluster if on == "dask" else "threads"
    reference = served(scene, model, tile_size=16, scheduler="threads").write(tmp_path / "ref.tif", "int16")
    result = served(scene, model, tile_size=16, scheduler=scheduler)
    assert len(result.plan()) > 6
    store = result.write(tmp_path / "map.zarr", "int16")
    assert store == str(tmp_path / "map.zarr")
    ds = assert_same_raster(store, reference)
    assert ds["band_data"].encoding["chunks"] == (2, 16, 16)  # chunks are the tiles
    assert ds["band_data"].values.min() < 0 < ds["band_data"].values.max()
    with open(result.write(tmp_path / "same-run.tif", "int16"), "rb") as ours, open(reference, "rb") as threads:
        assert ours.read() == threads.read()  # the GeoTIFF through this executor: the threaded engine's bytes
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("pixel_type", "extended"), [
    ("uint8", ""), ("float32", "?&nodata=-9999"), ("int32", "?&box=16:8:33:27&nodata=-7"),
    ("uint16", "?&box=5:3:30:31"), ("float64", "?&box=16:16:20:20&nodata=nan")])
def test_pixel_types_boxes_and_nodata_on_the_cluster_equal_the_geotiff(scene, cluster, tmp_path, pixel_type,
                                                                         extended):
    """Boxes on the chunk grid are written by the workers, others (tiles straddling chunks) by the client."""
    reference = served(scene, tile_size=8, scheduler="sync").write(f"{tmp_path / 'ref.tif'}{extended}", pixel_type)
    store = served(scene, tile_size=8, scheduler=cluster).write(f"{tmp_path / 'map.zarr'}{extended}", pixel_type)
    ds = assert_same_raster(store, reference)
    if "nodata" in extended:  # decoded as xarray decodes its own stores
        decoded = xarray.open_zarr(store)["band_data"]
        raw = ds["band_data"].values
        nodata = ds["band_data"].rio.nodata
        assert np.isnan(decoded.values).sum() == (np.isnan(raw) if np.isnan(nodata) else raw == nodata).sum()


def test_a_source_nodata_tags_the_store_with_the_background(scene, cluster, tmp_path):
    tif = served(scene, nodata=50, scheduler="sync").write(tmp_path / "ref.tif", "int16")
    store = served(scene, nodata=50, scheduler=cluster).write(tmp_path / "map.zarr", "int16")
    assert_same_raster(store, tif)
    assert open_store(store)["band_data"].rio.nodata == 0
    assert np.isnan(xarray.open_zarr(store)["band_data"].values).sum() >= 2 * 10 * 23  # masked as xarray masks


def test_workers_write_the_chunks_and_only_acknowledgements_travel(scene, cluster, tmp_path):
    from distributed import Client, get_task_stream

    result = served(scene, tile_size=16, scheduler=cluster)
    with Client(cluster) as client, get_task_stream(client) as stream:
        result.write(tmp_path / "map.zarr", "float64")
    tasks = [t for t in stream.data if str(t["key"]).startswith("on_worker")]  # the executor's task wrapper
    assert len(tasks) == len(stream.data) == len(result.plan())
    assert max(t["nbytes"] for t in tasks) < 2 * 16 * 16 * 8 // 8  # an acknowledgement, not a tile of float64

    # The same through write(client=...) on a result served with threads: the workers write the chunks too.
    with Client(cluster) as client, get_task_stream(client) as stream:
        served(scene, tile_size=16).write(tmp_path / "by_client.zarr", "float64", client=client)
    assert len(stream.data) == len(result.plan()) and max(t["nbytes"] for t in stream.data) < 2 * 16 * 16
    np.testing.assert_array_equal(open_store(tmp_path / "by_client.zarr")["band_data"].values,
                                  open_store(tmp_path / "map.zarr")["band_data"].values)

    # A box off the chunk grid: tiles straddle chunks, so the pixels come back and the client writes them.
    with Client(cluster) as client, get_task_stream(client) as stream:
        result.write(f"{tmp_path / 'box.zarr'}?&box=3:3:40:30", "float64")
    assert stream.data and all(str(t["key"]).startswith("on_worker") for t in stream.data)
    assert max(t["nbytes"] for t in stream.data) > 2 * 16 * 16 * 4  # whole tiles of float32 pixels


def test_an_existing_store_is_replaced_only_when_the_new_one_is_complete(scene, cluster, tmp_path):
    store = tmp_path / "map.zarr"
    served(scene, "patch.py", scheduler="sync").write(store, "float32")
    first = open_store(store)["band_data"].values
    with pytest.raises(eot.EotensorError, match="value 99 is too large"):
        served(scene, "failing.py", tile_size=8, scheduler=cluster).write(store, "float32")
    np.testing.assert_array_equal(open_store(store)["band_data"].values, first)  # the failed run changed nothing
    served(scene, tile_size=8, scheduler=cluster).write(store, "float32")
    tif = served(scene, tile_size=8, scheduler="sync").write(tmp_path / "ref.tif", "float32")
    assert_same_raster(store, tif)
    assert leftovers(tmp_path) == []


def test_an_existing_non_zarr_path_is_refused_before_any_work(scene, tmp_path):
    calls = []

    def model(x1, x2):
        calls.append(1)
        return {"y": x2}

    _, a, b = scene
    result = eot.serve(FunctionModel(model, ["x1", "x2"], ["y"]), [eot.source(a), eot.source(b)])
    calls.clear()
    (tmp_path / "file.zarr").write_text("not a store")
    (tmp_path / "plain.zarr").mkdir()
    (tmp_path / "plain.zarr" / "keep.txt").write_text("mine")
    (tmp_path / "empty.zarr").mkdir()
    for name, what in (("file.zarr", "a file"), ("plain.zarr", "a directory that is not a Zarr store"),
                       ("empty.zarr", "a directory that is not a Zarr store")):
        with pytest.raises(OutputFileError) as error:
            result.write(tmp_path / name)
        message = str(error.value)
        assert "\n" not in message and what in message and name in message
        assert "Zarr output to an existing non-Zarr path" in message
    assert calls == []
    assert (tmp_path / "file.zarr").read_text() == "not a store"
    assert (tmp_path / "plain.zarr" / "keep.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_zarr_refuses_gdal_creation_options_and_cog(scene, tmp_path):
    result = served(scene, scheduler="sync")
    with pytest.raises(OutputFileError, match="gdal:co:COMPRESS does not apply to a Zarr store"):
        result.write(f"{tmp_path / 'map.zarr'}?&gdal:co:COMPRESS=DEFLATE")
    with pytest.raises(OutputFileError, match='cog=true writes a GeoTIFF, not ".zarr"'):
        result.write(tmp_path / "map.zarr", cog=True)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_an_interrupted_write_leaves_no_temporary_store(scene, tmp_path, scheduler):
    _, a, b = scene
    seen = []

    def model(x1, x2):
        seen.append(1)
        if len(seen) == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the calling thread
        return {"y": x2}

    store = tmp_path / "map.zarr"
    eot.open(a).write(store)  # an existing store: it must survive
    before = open_store(store)["band_data"].values
    result = eot.serve(FunctionModel(model, ["x1", "x2"], ["y"]), [eot.source(a), eot.source(b)], tile_size=8,
                       scheduler=scheduler, workers=1)
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        result.write(store)
    assert leftovers(tmp_path) == []
    np.testing.assert_array_equal(open_store(store)["band_data"].values, before)


def test_a_worker_error_leaves_no_temporary_store(scene, cluster, tmp_path):
    with pytest.raises(eot.EotensorError, match="value 99 is too large"):
        served(scene, "failing.py", tile_size=8, scheduler=cluster).write(tmp_path / "map.zarr")
    assert os.listdir(tmp_path) == []


def test_cli_writes_a_zarr_store(scene, tmp_path, capsys):
    folder, a, b = scene
    common = ["TensorflowModelServe", "-source1.il", a, "-source1.rfieldx", "3", "-source1.rfieldy", "3",
              "-source2.il", b, "-model.dir", str(folder / "fc.py"), "-model.fullyconv", "on",
              "-optim.tilesizex", "16", "-optim.tilesizey", "16"]
    assert main(common + ["-out", str(tmp_path / "ref.tif"), "uint8"]) == 0
    assert main(common + ["-out", str(tmp_path / "map.zarr"), "uint8"]) == 0
    assert_same_raster(tmp_path / "map.zarr", tmp_path / "ref.tif")
    (tmp_path / "taken.zarr").write_text("")
    capsys.readouterr()
    assert main(common + ["-out", str(tmp_path / "taken.zarr")]) != 0
    err = capsys.readouterr().err.strip()
    assert "Zarr output to an existing non-Zarr path" in err and "Traceback" not in err


def test_importing_eotensor_does_not_import_zarr():
    code = ("import sys, eotensor, eotensor.lazy, eotensor.io.extended, eotensor.io.zarr\n"
            "eotensor.io.extended.parse_output('x.zarr')\n"
            "assert 'zarr' not in sys.modules, 'zarr imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 50), cols=st.integers(1, 70), box=st.none() | st.tuples(  # the grid: 58 x 42
    st.integers(0, 37), st.integers(0, 27), st.integers(1, 21), st.integers(1, 15)),
    pixel_type=st.sampled_from(["uint8", "int16", "float32"]))
def test_any_tiling_writes_the_whole_array_reference(scene, tmp_path_factory, rows, cols, box, pixel_type):
    from eotensor.io.pixeltypes import to_pixel_type

    whole = served(scene, scheduler="sync").read()  # one untiled reference
    assert whole.shape == (2, 42, 58)
    result = served(scene, tile_size=(cols, rows), scheduler="threads")
    extended = "" if box is None else "?&box={}:{}:{}:{}".format(*box)
    store = result.write(f"{tmp_path_factory.mktemp('p') / 'map.zarr'}{extended}", pixel_type)
    x0, y0, w, h = box or (0, 0, whole.shape[2], whole.shape[1])
    expected = to_pixel_type(whole[:, y0:y0 + h, x0:x0 + w], np.dtype(pixel_type))
    values = open_store(store)["band_data"].values
    assert values.dtype == expected.dtype
    np.testing.assert_array_equal(values, expected)


def test_writers_that_write_files_refuse_a_zarr_target(tmp_path):
    from affine import Affine

    from eotensor.io.extended import parse_output
    from eotensor.io.geotiff import GeoTiffWriter

    with pytest.raises(OutputFileError, match="cannot be a Zarr store"):
        GeoTiffWriter(parse_output(str(tmp_path / "x.zarr")), width=4, height=4, count=1, transform=Affine.identity())
    assert os.listdir(tmp_path) == []


def test_a_worker_killed_mid_run_leaves_the_same_store(scene, cluster, tmp_path):
    """The killed worker's tile is recomputed on the other one, which writes the chunk again: the same store."""
    folder, a, b = scene
    marker = tmp_path / "killed"
    (tmp_path / "dies_once.py").write_text(f"MARKER = {str(marker)!r}\n" + textwrap.dedent('''
        import os

        def model(x1, x2):
            try:
                from distributed import get_worker

                get_worker()
            except ValueError:
                pass  # the client, learning the band count
            else:
                calls = globals().setdefault("CALLS", [])
                calls.append(1)
                if len(calls) == 3 and not os.path.exists(MARKER):  # mid-run, once for the whole cluster
                    open(MARKER, "w").close()
                    os._exit(3)
            return {"y": x1[:, 1:-1, 1:-1, :1] * 2 - x2[..., 1:]}
    '''))
    sources = [eot.source(a, rfield=3), eot.source(b)]
    dying = eot.serve(str(tmp_path / "dies_once.py"), sources, fullyconv=True, tile_size=8, scheduler=cluster)
    store = dying.write(tmp_path / "map.zarr", "int16")
    assert marker.exists()
    reference = eot.serve(str(tmp_path / "dies_once.py"), sources, fullyconv=True, tile_size=8, scheduler="sync")
    assert_same_raster(store, reference.write(tmp_path / "ref.tif", "int16"))


def test_a_worker_that_cannot_see_the_store_stops_the_run_in_one_line(tmp_path):
    """The workers write the chunks: a worker whose file system lacks the output folder must not acknowledge a
    chunk it never wrote (the store would be committed full of fill values)."""
    from eotensor.geometry import Window
    from eotensor.io.zarr import ZarrTiles

    tiles = ZarrTiles(str(tmp_path / ".eot-x.tmp" / "band_data"), Window(0, 0, 8, 8), "<f4", None, 1)
    with pytest.raises(OutputFileError, match="must be on a file system every worker shares"):
        tiles(np.zeros((1, 8, 8), np.float32), Window(0, 0, 8, 8))


def test_a_chunk_written_while_the_store_is_being_removed_recreates_nothing(tmp_path):
    """A run stopped on a cluster that outlives it: tiles still running finish while the temporary store is being
    deleted, and zarr recreates a chunk's missing parent folders. The worker sees the array's metadata gone and
    removes what its write recreated."""
    import shutil

    from eotensor.geometry import Window
    from eotensor.io.zarr import ZarrTiles

    served_store = tmp_path / ".eot-x.tmp"
    zarr.open_group(served_store, mode="w", zarr_format=2).create_array(
        "band_data", shape=(1, 8, 8), chunks=(1, 4, 4), dtype="f4", fill_value=None)
    tiles = ZarrTiles(str(served_store / "band_data"), Window(0, 0, 8, 8), "<f4", None, 1)
    tiles(np.ones((1, 4, 4), np.float32), Window(0, 0, 4, 4))  # opened (and cached) while the store is whole
    for name in os.listdir(served_store / "band_data"):  # the removal, half done
        path = served_store / "band_data" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(OutputFileError, match="was removed"):
        tiles(np.ones((1, 4, 4), np.float32), Window(4, 4, 4, 4))
    assert not served_store.exists()


def test_a_folder_that_appears_at_the_output_name_during_the_run_is_kept(scene, tmp_path):
    tmp, a, b = scene
    precious = tmp_path / "map.zarr" / "precious"
    armed = []

    def model(x1, x2):
        armed.append(True)
        if len(armed) > 4:  # during the write's tiles, once the store is being written
            precious.mkdir(parents=True, exist_ok=True)
            (precious / "thesis.txt").write_text("years of work")
        return {"y": x2}

    result = eot.serve(FunctionModel(model, ["x1", "x2"], ["y"]), [eot.source(a), eot.source(b)], tile_size=8,
                       scheduler="sync")
    armed.clear()
    with pytest.raises(OutputFileError, match="existing non-Zarr path"):
        result.write(tmp_path / "map.zarr")
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert leftovers(tmp_path) == []


def test_chunks_over_the_codec_limit_a_trailing_slash_and_closed_clients(scene, tmp_path):
    from affine import Affine

    from eotensor.io.extended import parse_output
    from eotensor.io.zarr import ZarrWriter

    with pytest.raises(OutputFileError, match=r"one chunk .* would be 2\.0 GiB, over the codec's 2 GiB"):
        ZarrWriter(parse_output(tmp_path / "big.zarr", "float64"), width=20000, height=20000, count=1,
                   transform=Affine(10, 0, 0, 0, -10, 0), chunks=(16384, 16384))
    assert os.listdir(tmp_path) == []  # refused before anything is created
    assert parse_output(f"{tmp_path / 'map.zarr'}/").path == str(tmp_path / "map.zarr")
    with distributed.Client(processes=False, dashboard_address=None) as client:
        pass
    with pytest.raises(eot.EotensorError, match="the distributed.Client is closed; give an open client"):
        served(scene).write(tmp_path / "map.zarr", client=client)
    with distributed.LocalCluster(processes=False, n_workers=1, dashboard_address=None) as local:
        with pytest.raises(eot.EotensorError, match=r"LocalCluster is a Dask cluster; give a client on it"):
            served(scene).write(tmp_path / "map.zarr", scheduler=local)
