"""The Dask executor on a real LocalCluster of worker processes: the same bytes as the sequential reference.

One cluster (2 single-threaded worker processes) serves the whole module (decision 29); the CLI test starts
its own through ``-optim.scheduler processes:2``, as a user's run does.
"""

import os
import textwrap

import numpy as np
import pytest
import rasterio

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import ParameterError
from eotensor.runtimes import FunctionModel
from eotensor.testing import write_raster
from models import build_conv_fcn

distributed = pytest.importorskip("distributed")

MODEL = '''
import numpy as np

OUTPUTS = ["y"]

def model(x1, x2, k):
    """A 3x3 box sum of x1's first band (RF 3) plus x2 (RF 1), two bands out; ``k`` a user placeholder."""
    if FAIL_ABOVE is not None and x1.max() > FAIL_ABOVE:
        raise ValueError(f"value {float(x1.max()):g} is too large")
    h, w = x2.shape[1:3]
    box = sum(x1[:, i:i + h, j:j + w, 0] for i in range(3) for j in range(3))
    return {"y": np.stack([box + x2[..., 0], box * x2[..., 1] - k[0]], axis=-1)}
'''


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(7)
    a = write_raster(tmp / "a.tif", rng.integers(0, 100, size=(2, 45, 61)).astype(np.int16))
    b = write_raster(tmp / "b.tif", rng.integers(0, 100, size=(2, 43, 59)).astype(np.int16))
    for name, fail in (("model.py", None), ("failing.py", 98)):
        (tmp / name).write_text(f"FAIL_ABOVE = {fail}\n" + textwrap.dedent(MODEL))
    return tmp, a, b


def served(scene, model="model.py", **options):
    tmp, a, b = scene
    return eot.serve(str(tmp / model), [eot.source(a, rfield=3), eot.source(b)], fullyconv=True,
                     user_placeholders={"k": np.float32(2.5)}, **options)


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("tile", [7, 16])
def test_dask_write_and_read_equal_the_sequential_reference(scene, cluster, tmp_path, tile):
    reference = served(scene, tile_size=tile, scheduler="sync")
    on_dask = served(scene, tile_size=tile, scheduler=cluster)
    assert len(reference.plan()) > 4  # several tiles travel, more than the workers
    sync_path = reference.write(tmp_path / "sync.tif", "float32")
    dask_path = on_dask.write(tmp_path / "dask.tif", "float32")
    assert file_bytes(dask_path) == file_bytes(sync_path)
    np.testing.assert_array_equal(on_dask.read(), reference.read())
    with rasterio.open(sync_path) as ds:
        assert ds.count == 2 and ds.read().any()


@pytest.mark.tf
def test_saved_model_on_dask_equals_the_sequential_reference(cluster, tmp_path):
    x = np.random.default_rng(3).integers(-50, 50, size=(4, 30, 37)).astype(np.int16)
    image = write_raster(tmp_path / "x.tif", x)
    model = build_conv_fcn(tmp_path / "fcn")
    outputs = {}
    for scheduler in ("sync", cluster):
        result = eot.serve(model, eot.source(image, rfield=5), fullyconv=True, tile_size=12, scheduler=scheduler)
        outputs[scheduler] = file_bytes(result.write(tmp_path / f"{len(outputs)}.tif", "float32"))
    assert outputs[cluster] == outputs["sync"]
    with rasterio.open(tmp_path / "0.tif") as ds:
        assert ds.count == 2 and ds.read().any()


def test_a_worker_error_reaches_the_client_as_one_line_and_leaves_no_file(scene, cluster, tmp_path):
    messages = []
    for scheduler in ("sync", cluster):
        with pytest.raises(eot.EotensorError) as error:
            served(scene, "failing.py", tile_size=8, scheduler=scheduler).write(tmp_path / "out.tif")
        messages.append(str(error.value))
    assert messages[1].startswith(messages[0] + "; on Dask worker tcp://127.0.0.1:")  # which worker failed
    assert "\n" not in messages[1] and "value 99 is too large" in messages[1]
    assert os.listdir(tmp_path) == []


def test_a_worker_refuses_a_file_changed_since_the_result_was_served(scene, cluster, tmp_path):
    import shutil

    folder, a, b = scene
    copy = shutil.copy(a, tmp_path / "a.tif")
    result = eot.serve(str(folder / "model.py"), [eot.source(copy, rfield=3), eot.source(b)], fullyconv=True,
                       user_placeholders=["k=1"], scheduler=cluster)
    assert result.count == 2  # learned on the client before the change: from now on only workers read
    os.utime(copy, ns=(0, 0))
    with pytest.raises(eot.EotensorError, match=f'"{copy}" is not the file the result was served from'):
        result.read()


def test_results_without_a_recipe_and_bad_scheduler_names_are_refused_in_one_line(scene, monkeypatch):
    _, a, _ = scene
    model = FunctionModel(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(eot.EotensorError, match="the dask scheduler runs a served result .* with a model loaded "
                       "from a path and file sources"):
        eot.serve(model, eot.source(a), scheduler="processes:2").read()
    for name, message in [("processes:0", "no worker process"), ("processes:two", 'unknown scheduler "processes:two"'),
                          ("udp://host:1", "expected one of sync, threads, processes:N, tcp://HOST:PORT, dask")]:
        with pytest.raises(ParameterError, match=message):
            served(scene, scheduler=name)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ParameterError, match="DASK_SCHEDULER_ADDRESS"):
        served(scene, scheduler="dask")


def test_dask_address_from_the_environment(scene, cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster)
    result = served(scene, tile_size=20, scheduler="dask")
    np.testing.assert_array_equal(result.read(), served(scene, tile_size=20, scheduler="sync").read())


def test_cli_processes_scheduler_writes_the_sequential_bytes(scene, tmp_path):
    folder, a, b = scene
    common = ["TensorflowModelServe", "-source1.il", a, "-source1.rfieldx", "3", "-source1.rfieldy", "3",
              "-source2.il", b, "-model.dir", str(folder / "model.py"), "-model.fullyconv", "on",
              "-model.userplaceholders", "k=2.5", "-optim.tilesizex", "16", "-optim.tilesizey", "16"]
    assert main(common + ["-optim.scheduler", "sync", "-out", str(tmp_path / "sync.tif"), "float"]) == 0
    assert main(common + ["-optim.scheduler", "processes:2", "-out", str(tmp_path / "dask.tif"), "float"]) == 0
    assert file_bytes(tmp_path / "dask.tif") == file_bytes(tmp_path / "sync.tif")


def test_nan_background_and_nodata_build_one_engine_per_worker(scene, cluster, tmp_path):
    """A NaN never equals itself: the engine cache must not miss on every tile (a model load per tile)."""
    tmp, a, b = scene
    log = tmp_path / "imports.log"
    (tmp_path / "counted.py").write_text(f"open({str(log)!r}, 'a').write('x')\n"
                                         + (tmp / "model.py").read_text())
    result = eot.serve(str(tmp_path / "counted.py"), [eot.source(a, rfield=3, nodata=float("nan")), eot.source(b)],
                       fullyconv=True, user_placeholders=["k=1"], background=float("nan"), tile_size=8,
                       scheduler=cluster)
    assert len(result.plan()) > 20
    reference = eot.serve(str(tmp / "model.py"), [eot.source(a, rfield=3, nodata=float("nan")), eot.source(b)],
                          fullyconv=True, user_placeholders=["k=1"], background=float("nan"), scheduler="sync")
    np.testing.assert_array_equal(result.read(), reference.read())
    assert len(log.read_text()) <= 3  # the client and each of the 2 workers, once


def test_gdal_urls_stay_urls_for_the_workers(scene, cluster):
    _, a, _ = scene
    result = served(scene, scheduler=cluster)
    by_url = eot.serve(str(scene[0] / "model.py"), [eot.source("file://" + a, rfield=3), eot.source(scene[2])],
                       fullyconv=True, user_placeholders={"k": np.float32(2.5)}, scheduler=cluster)
    assert by_url.recipe.sources[0].images == ("file://" + a,)
    np.testing.assert_array_equal(by_url.read(), result.read())


def test_a_worker_that_dies_is_one_line(scene, cluster, tmp_path):
    tmp, a, b = scene
    (tmp_path / "dies.py").write_text(textwrap.dedent("""
        import os

        def model(x1, x2, k):
            try:
                from distributed import get_worker

                get_worker()
            except ValueError:  # the client, learning the band count
                return {"y": x2[..., :1]}
            os._exit(3)  # a worker process dies
    """))
    result = eot.serve(str(tmp_path / "dies.py"), [eot.source(a, rfield=3), eot.source(b)], fullyconv=True,
                       user_placeholders=["k=1"], scheduler="processes:1")
    with pytest.raises(eot.EotensorError, match="failed on the Dask cluster: KilledWorker"):
        result.write(tmp_path / "out.tif")
    assert not list(tmp_path.glob("out*"))


def test_a_misspelt_scheduler_fails_before_the_model_loads(scene, tmp_path):
    _, a, _ = scene
    with pytest.raises(ParameterError, match='optim.scheduler: unknown scheduler "procesess:2"'):
        eot.serve(str(tmp_path / "no_such_model"), eot.source(a), scheduler="procesess:2")


def test_a_client_given_from_python_runs_the_write_and_stays_open(scene, cluster, tmp_path):
    reference = served(scene, tile_size=9, scheduler="sync").write(tmp_path / "sync.tif")
    with distributed.Client(cluster) as client:
        by_keyword = served(scene, tile_size=9).write(tmp_path / "client.tif", client=client)
        by_scheduler = served(scene, tile_size=9, scheduler=client).write(tmp_path / "scheduler.tif")
        assert client.status == "running"  # the user's client is theirs to close
        with pytest.raises(ParameterError, match="give scheduler or client, not both"):
            served(scene).write(tmp_path / "both.tif", scheduler="sync", client=client)
    assert file_bytes(by_keyword) == file_bytes(reference) == file_bytes(by_scheduler)


def test_a_worker_killed_during_the_run_has_its_tiles_recomputed_elsewhere(scene, tmp_path):
    """One worker process is SIGKILLed in the middle of a tile; Dask reruns its tiles on the other worker (and the
    restarted one): the output is still the sequential reference's, byte for byte."""
    tmp, a, b = scene
    marker = tmp_path / "killed-once"
    (tmp_path / "killer.py").write_text(f"import os, signal\nMARKER = {str(marker)!r}\n" + textwrap.dedent("""
        def on_worker():
            try:
                from distributed import get_worker

                get_worker()
                return True
            except ValueError:  # the client, learning the band count
                return False

        def model(x1, x2, k):
            if on_worker():
                try:
                    os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL))  # the first tile anywhere, once
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            h, w = x2.shape[1:3]
            box = sum(x1[:, i:i + h, j:j + w, 0] for i in range(3) for j in range(3))
            return {"y": box[..., None] + x2[..., :1] * k[0]}
    """))

    def result(scheduler):
        return eot.serve(str(tmp_path / "killer.py"), [eot.source(a, rfield=3), eot.source(b)], fullyconv=True,
                         user_placeholders=["k=3"], tile_size=12, scheduler=scheduler)

    reference = result("sync").write(tmp_path / "sync.tif")
    assert not marker.exists()  # the sequential run is not on a worker: it never kills
    import signal

    before = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    killed = result("processes:2").write(tmp_path / "dask.tif")
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == before
    assert marker.exists()  # a worker really died
    assert file_bytes(killed) == file_bytes(reference)


def test_autofields_runs_on_the_cluster(scene, cluster, tmp_path, capsys):
    """A model loaded locally to probe its fields still has a recipe: the workers load it from its path."""
    _, a, _ = scene
    (tmp_path / "box.py").write_text(textwrap.dedent('''
        def model(x):
            h, w = x.shape[1] - 2, x.shape[2] - 2
            return {"y": sum(x[:, i:i + h, j:j + w] for i in range(3) for j in range(3))}
    '''))
    common = ["TensorflowModelServe", "-source1.il", a, "-model.dir", str(tmp_path / "box.py"),
              "-model.autofields", "on", "-optim.tilesizex", "16", "-optim.tilesizey", "16"]
    assert main(common + ["-optim.scheduler", "sync", "-out", str(tmp_path / "sync.tif")]) == 0
    assert main(common + ["-optim.scheduler", cluster, "-out", str(tmp_path / "dask.tif")]) == 0
    assert "source1 RF 3x3, EF 1x1" in capsys.readouterr().err
    assert file_bytes(tmp_path / "dask.tif") == file_bytes(tmp_path / "sync.tif")


@pytest.mark.parametrize("delay", [0.2, 1.5])
def test_ctrl_c_on_a_local_cluster_run_prints_no_worker_traceback(scene, tmp_path, delay):
    """Ctrl-C reaches the whole foreground process group: the workers eotensor starts ignore it, the client
    stops the run and closes them, and stderr holds the one interrupted line. Pressed while the cluster starts
    (0.2 s after the output is created), it is ignored until the cluster is up: the user presses again."""
    import signal
    import subprocess
    import sys
    import time

    _, a, _ = scene
    (tmp_path / "slow.py").write_text("import time\n\ndef model(x):\n    time.sleep(0.2)\n    return {'y': x}\n")
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "eotensor", "TensorflowModelServe", "-source1.il", a, "-model.dir",
         str(tmp_path / "slow.py"), "-optim.tilesizex", "8", "-optim.tilesizey", "8", "-optim.scheduler",
         "processes:2", "-out", str(out / "map.tif")],
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not os.listdir(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    while process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.5)
    stderr = process.communicate(timeout=60)[1]
    # 130: interrupted and cleaned up; -SIGINT: a later press ended the interpreter's own last steps after that
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "TensorflowModelServe: interrupted; no output written"
    assert os.listdir(out) == []


def test_band_selections_and_windows_of_a_served_result_run_on_the_cluster(scene, cluster, tmp_path):
    from eotensor.geometry import Window
    from eotensor.lazy import WindowRaster

    reference, on_dask = served(scene, tile_size=10, scheduler="sync"), served(scene, tile_size=10,
                                                                                scheduler=cluster)
    assert on_dask[1].remote is not None and WindowRaster(on_dask, Window(3, 5, 30, 40)).remote is not None
    np.testing.assert_array_equal(on_dask[1].read(), reference[1].read())
    window = Window(3, 5, 30, 40)
    np.testing.assert_array_equal(WindowRaster(on_dask, window).read(), WindowRaster(reference, window).read())
    path = on_dask[[1, 0]].write(tmp_path / "swapped.tif")
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(), reference.read()[[1, 0]])


def test_a_model_the_workers_cannot_read_is_their_one_line(scene, cluster, tmp_path):
    import shutil

    folder, a, b = scene
    model = shutil.copy(folder / "model.py", tmp_path / "gone.py")
    result = eot.serve(str(model), [eot.source(a, rfield=3), eot.source(b)], fullyconv=True,
                       user_placeholders=["k=1"], tile_size=8, scheduler=cluster)
    os.remove(model)  # loaded by the client, then gone before the workers load it
    with pytest.raises(eot.EotensorError) as error:
        result.write(tmp_path / "out.tif")
    message = str(error.value)
    assert "\n" not in message and message.count(str(model)) == 1 and "; on Dask worker tcp://" in message
    assert not list(tmp_path.glob("out*"))


def test_a_model_file_rewritten_after_its_load_is_refused_on_the_workers(scene, cluster, tmp_path):
    """A model loaded by path (a checkpoint), then its file rewritten before serve(): the workers would load the
    new one, so they refuse, as for a changed source."""
    import shutil

    folder, a, b = scene
    path = shutil.copy(folder / "model.py", tmp_path / "ckpt.py")
    model = eot.load_model(path)
    with open(path, "a") as f:
        f.write("\n# retrained\n")
    os.utime(path, ns=(10**9, 10**9))
    result = eot.serve(model, [eot.source(a, rfield=3), eot.source(b)], fullyconv=True, user_placeholders=["k=1"],
                       scheduler=cluster)
    with pytest.raises(eot.EotensorError, match=f'"{path}" is not the file the result was served from'):
        result.read()


def test_local_cluster_workers_share_the_cores_between_their_models(scene, tmp_path):
    """processes:N gives each worker's model cores ÷ N threads unless -optim.modelthreads says (N runtimes each
    sized for every core oversubscribe them); a remote cluster's workers keep the runtime's default."""
    from eotensor.engine.recipe import build_engine
    from onnx_models import onnx_add_one

    _, a, _ = scene
    model = onnx_add_one(str(tmp_path / "add.onnx"), channels=2)

    def threads_seen(recipe):
        return build_engine(recipe).model.session.get_session_options().intra_op_num_threads

    result = eot.serve(model, eot.source(a), scheduler="sync")
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None,
                                  env={"EOTENSOR_WORKER_MODEL_THREADS": "1"}) as local, \
            distributed.Client(local) as client:
        assert client.submit(threads_seen, result.recipe).result() == 1
        given = eot.serve(model, eot.source(a), model_threads=2, scheduler="sync")
        assert client.submit(threads_seen, given.recipe).result() == 2  # the user's count wins
    assert threads_seen(result.recipe) == 0  # outside such a cluster: ONNX Runtime's default


def test_processes_n_tells_its_workers_their_share_of_the_cores(scene, tmp_path):
    _, a, _ = scene
    (tmp_path / "share.py").write_text(textwrap.dedent('''
        import os

        import numpy as np

        def model(x):
            return {"y": np.full_like(x[..., :1], float(os.environ.get("EOTENSOR_WORKER_MODEL_THREADS", -1)))}
    '''))
    values = eot.serve(str(tmp_path / "share.py"), eot.source(a), tile_size=32, scheduler="processes:2").read()
    assert np.unique(values).tolist() == [max(1, (os.cpu_count() or 1) // 2)]
