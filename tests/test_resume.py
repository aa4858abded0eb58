"""Resumable runs (``-optim.resume on``, ``write(..., resume=True)``): a run killed at any point, then resumed,
writes the file an uninterrupted run writes; a journal from other inputs or parameters is refused."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

import eotensor as eot
from eotensor.io.atomic import partial_paths, resume_files
from eotensor.io.cog import validate_cog
from eotensor.io.journal import Journal, header_changes
from eotensor.testing import write_raster

COMMAND = [sys.executable, "-m", "eotensor", "TensorflowModelServe"]
ENV = {**os.environ, "EOTENSOR_CHECKPOINT_S": "0.1",  # PYTHONPATH made absolute: some runs start in other directories
       "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 64x64 two-band image and a Python model that sleeps on every 8x8 tile (64 tiles, ~1.5 s a run)."""
    root = tmp_path_factory.mktemp("resume")
    image = write_raster(root / "a.tif", np.random.default_rng(1).normal(size=(2, 64, 64)).astype(np.float32))
    model = root / "slow.py"
    model.write_text(textwrap.dedent("""
        import time

        def model(x):
            time.sleep(0.02)
            return x * 2 + 1
    """))
    return root, image, str(model)


def argv(scene, out, *extra):
    root, image, model = scene
    return [*COMMAND, "-source1.il", image, "-model.dir", model, "-optim.tilesizex", "8", "-optim.tilesizey", "8",
            "-optim.threads", "1", *extra, "-out", out]


def run(args):
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=120)
    return done.returncode, done.stderr


def killed(args, path, after, signum=signal.SIGKILL):
    """Start ``args``, wait until its partial file appears, let it run ``after`` seconds more, send ``signum``."""
    partial = partial_paths(os.path.realpath(path))[0]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 60
    while not os.path.exists(partial) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(after)
    process.send_signal(signum)
    stderr = process.communicate(timeout=60)[1]
    return process.returncode, stderr


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith(".eot-"))


def assert_same_raster(a, b):
    """Pixels, georeferencing and metadata (profile, tags, no-data, band descriptions, overviews) are equal."""
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert x.profile == y.profile
        assert x.tags() == y.tags() and x.descriptions == y.descriptions
        assert [x.tags(k) for k in range(1, x.count + 1)] == [y.tags(k) for k in range(1, y.count + 1)]
        assert x.overviews(1) == y.overviews(1)
        np.testing.assert_array_equal(x.read(), y.read())
        for level in range(len(x.overviews(1))):
            with rasterio.open(a, overview_level=level) as xo, rasterio.open(b, overview_level=level) as yo:
                np.testing.assert_array_equal(xo.read(), yo.read())


@pytest.fixture(scope="module")
def reference(scene):
    """The uninterrupted runs' files, by output options."""
    root = scene[0]
    made = {}
    for name, options in (("plain", ""), ("deflate", "?&nodata=-9999&gdal:co:COMPRESS=DEFLATE"),
                          ("cog", "?&cog=true&overviews=2,4")):
        out = str(root / f"ref-{name}.tif") + options
        code, stderr = run(argv(scene, out))
        assert code == 0, stderr
        made[name] = out.partition("?")[0]
    return made


@pytest.mark.parametrize("seed", range(4))
def test_a_run_killed_at_random_points_then_resumed_writes_the_uninterrupted_file(scene, reference, tmp_path, seed):
    draw = random.Random(seed)
    kind = ("plain", "deflate")[seed % 2]
    options = {"plain": "", "deflate": "?&nodata=-9999&gdal:co:COMPRESS=DEFLATE"}[kind]
    out = str(tmp_path / "o.tif")
    kept = []
    for _ in range(1 + seed % 3):  # killed once, twice or three times: a resumed run is resumable again
        code, stderr = killed(argv(scene, out + options, "-optim.resume", "on"), out, draw.uniform(0.0, 1.0))
        if code == 0:  # it finished before the kill: the next run finds no journal
            kept = []
            break
        assert code == -signal.SIGKILL, stderr
        journal = Journal.read(partial_paths(out)[1])
        kept.append(0 if journal is None else len(journal.done))
    code, stderr = run(argv(scene, out + options, "-optim.resume", "on"))
    assert code == 0, stderr
    if kept and kept[-1]:
        assert f"resuming \"{out}\": {kept[-1]} of 64 tiles already written" in stderr
    assert leftovers(tmp_path) == []
    assert_same_raster(out, reference[kind])
    if kind == "plain":
        with open(out, "rb") as f, open(reference[kind], "rb") as g:
            assert f.read() == g.read()  # uncompressed blocks are rewritten in place: byte for byte
    else:  # compressed blocks written twice leave dead bytes, which the commit copies away
        assert os.path.getsize(out) <= 1.01 * os.path.getsize(reference[kind])


def test_some_kill_points_leave_tiles_to_reuse(scene, tmp_path):
    # The property above must not pass only because every kill came before the first checkpoint.
    out = str(tmp_path / "o.tif")
    code, stderr = killed(argv(scene, out, "-optim.resume", "on"), out, 0.7)
    assert code == -signal.SIGKILL, stderr
    journal = Journal.read(partial_paths(out)[1])
    assert journal is not None and 0 < len(journal.done) < 64


def test_ctrl_c_keeps_the_tiles_written_and_the_same_command_finishes(scene, reference, tmp_path):
    out = str(tmp_path / "o.tif")
    args = argv(scene, out, "-optim.resume", "on")
    code, stderr = killed(args, out, 0.6, signal.SIGINT)
    assert code == 130 and "Traceback" not in stderr, stderr
    journal = Journal.read(partial_paths(out)[1])
    assert journal is not None and len(journal.done) > 0
    assert f'"{out}": {len(journal.done)} of 64 tiles kept' in stderr  # a last checkpoint at the interruption
    assert leftovers(tmp_path) == sorted(os.path.basename(p) for p in partial_paths(out))
    code, stderr = run(args)
    assert code == 0 and f"{len(journal.done)} of 64 tiles already written" in stderr, stderr
    assert_same_raster(out, reference["plain"])
    assert leftovers(tmp_path) == []


def test_sigterm_keeps_the_partial_file_and_its_journal(scene, tmp_path):
    out = str(tmp_path / "o.tif")
    code, _ = killed(argv(scene, out, "-optim.resume", "on"), out, 0.3, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert leftovers(tmp_path) == sorted(os.path.basename(p) for p in partial_paths(out))


def test_resume_without_a_journal_says_so_and_computes_everything(scene, reference, tmp_path):
    out = str(tmp_path / "o.tif")
    code, stderr = run(argv(scene, out, "-optim.resume", "on"))
    assert code == 0, stderr
    assert f'note: resume: "{out}" has no journal of an interrupted run; computing every tile' in stderr
    assert_same_raster(out, reference["plain"])
    assert leftovers(tmp_path) == []


@pytest.fixture
def interrupted(scene, tmp_path):
    """An output whose resumable run was killed after some tiles, and its command line."""
    out = str(tmp_path / "o.tif")
    code, stderr = killed(argv(scene, out, "-optim.resume", "on"), out, 0.6)
    assert code == -signal.SIGKILL, stderr
    assert leftovers(tmp_path) == sorted(os.path.basename(p) for p in resume_files(out)[:3])  # a killed run's lock
    return out


def test_a_journal_from_other_inputs_is_refused_naming_the_file(scene, interrupted):
    image = scene[1]
    stamp = os.stat(image)
    os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    try:
        code, stderr = run(argv(scene, interrupted, "-optim.resume", "on"))
    finally:
        os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert code == 1, stderr
    assert stderr.strip() == (f'TensorflowModelServe: error: out "{interrupted}": cannot resume the interrupted run: '
                              f'source1.il "{image}" modified since the interrupted run (size or modification time '
                              "differ); run without resume to start again")
    # Nothing touched (the stale lock of the killed run is taken and released by the refused one)
    assert leftovers(os.path.dirname(interrupted)) == sorted(os.path.basename(p) for p in partial_paths(interrupted))


@pytest.mark.parametrize(("extra", "change"), [
    (["-output.bv", "3"], "output.bv 0.0 → 3.0"),
    (["-out.pixeltype", "int16"], None),
])
def test_a_changed_parameter_is_refused_saying_which(scene, interrupted, extra, change):
    args = argv(scene, interrupted, "-optim.resume", "on")
    if extra[0] == "-out.pixeltype":  # the pixel type follows the output name
        args, change = [*args, "int16"], "pixel type float32 → int16"
    else:
        args = [*args[:-2], *extra, *args[-2:]]
    code, stderr = run(args)
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert f"cannot resume the interrupted run: {change}; run without resume" in stderr


def test_without_resume_a_stale_partial_file_is_replaced(scene, reference, interrupted):
    code, stderr = run(argv(scene, interrupted))
    assert code == 0, stderr
    assert leftovers(os.path.dirname(interrupted)) == []
    assert_same_raster(interrupted, reference["plain"])


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_partial_file_that_cannot_be_continued_is_said_and_everything_computed(scene, reference, interrupted,
                                                                                 damage):
    partial = partial_paths(interrupted)[0]
    if damage == "missing":
        os.remove(partial)
    else:
        os.truncate(partial, 300)  # the directory survives; the recorded tiles' blocks do not
    code, stderr = run(argv(scene, interrupted, "-optim.resume", "on"))
    assert code == 0, stderr
    why = "is missing" if damage == "missing" else "of a tile it recorded as written is missing"
    assert "cannot be continued" in stderr and why in stderr and "computing every tile" in stderr, stderr
    assert_same_raster(interrupted, reference["plain"])
    assert leftovers(os.path.dirname(interrupted)) == []


def test_a_cog_output_is_resumed(scene, reference, tmp_path):
    out = str(tmp_path / "o.tif")
    options = "?&cog=true&overviews=2,4"
    code, stderr = killed(argv(scene, out + options, "-optim.resume", "on"), out, 0.6)
    assert code == -signal.SIGKILL, stderr
    assert Journal.read(partial_paths(out)[1]).done
    code, stderr = run(argv(scene, out + options, "-optim.resume", "on"))
    assert code == 0 and "already written" in stderr, stderr
    assert validate_cog(out, full=True) == []
    assert_same_raster(out, reference["cog"])
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- Python API
CALLS = {"left": None}


def flaky(x):
    """Interrupted (as by Ctrl-C) once ``CALLS["left"]`` reaches zero; the same code (token) either way."""
    if CALLS["left"] is not None:
        CALLS["left"] -= 1
        if CALLS["left"] < 0:
            raise KeyboardInterrupt
    return x * 3 - 1


def test_python_write_resume_several_outputs_and_a_box(tmp_path, monkeypatch):
    import eotensor as eot

    monkeypatch.setenv("EOTENSOR_CHECKPOINT_S", "0.0001")
    image = write_raster(tmp_path / "a.tif", np.random.default_rng(2).normal(size=(1, 48, 40)).astype(np.float32))
    model = eot.FunctionModel(flaky, ["x"], ["y"])
    result = eot.serve(model, [eot.source(image)], tile_size=8, workers=0)
    outputs = {str(tmp_path / "full.tif"): (result, "float32"), str(tmp_path / "twice.tif"): (result * 2, "int16"),
               str(tmp_path / "box.tif?&box=8:16:24:16"): (result, "float32")}  # a pass of its own, after
    expected = {}
    for path, (raster, _) in outputs.items():
        expected[path.partition("?")[0]] = raster.read()
    CALLS["left"] = 13
    with pytest.raises(KeyboardInterrupt):
        eot.write(outputs, resume=True)
    journals = [Journal.read(partial_paths(path.partition("?")[0])[1]) for path in outputs]
    assert journals[0].done and journals[0].done == journals[1].done and journals[2] is None
    CALLS["left"] = None
    eot.write(outputs, resume=True)
    assert leftovers(tmp_path) == []
    for path, values in expected.items():
        with rasterio.open(path) as ds:
            window = (slice(16, 32), slice(8, 32)) if "box" in path else (slice(None), slice(None))
            np.testing.assert_array_equal(ds.read(), values[(slice(None), *window)].astype(ds.dtypes[0]))


# ---------------------------------------------------------------------------------------------- the journal
def test_a_torn_last_record_is_ignored(tmp_path):
    path = str(tmp_path / "j")
    journal = Journal.create(path, [["value", "pixel type", "uint8"]])
    journal.record([(0, 0), (0, 8)])
    journal.record([(8, 0)])
    journal.close()
    with open(path, "a") as f:
        f.write('{"tiles":[[8,8]]}\t0000')  # a crash in the middle of a write: no CRC, no newline
    assert Journal.read(path).done == {(0, 0), (0, 8), (8, 0)}
    with open(path, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace("[8,0]", "[9,0]"))  # a changed record no longer matches its CRC
    assert Journal.read(path).done == {(0, 0), (0, 8)}


def test_header_changes_name_the_first_difference():
    old = [["value", "pixel type", "float32"], ["file", 'source1.il "a.tif"', ":10:1"], ["text", "recipe", "a b c"]]
    assert header_changes(old, old) is None
    assert header_changes(old, [["value", "pixel type", "uint8"], *old[1:]]) == "pixel type float32 → uint8"
    assert header_changes(old, [old[0], ["file", 'source1.il "a.tif"', ":10:2"], old[2]]) == (
        'source1.il "a.tif" modified since the interrupted run (size or modification time differ)')
    assert header_changes(old, [old[0], ["file", 'source1.il "a.tif"', ""], old[2]]) == (
        'source1.il "a.tif" is missing (it existed in the interrupted run)')
    assert header_changes(old, [*old[:2], ["text", "recipe", "a X c"]]) == "recipe differs: a b c → a X c"
    assert header_changes(old, old[:2]) == "recipe was set in the interrupted run and is not now"
    assert header_changes(old[:2], old) == "recipe was not set in the interrupted run"


# ---------------------------------------------------------------------------------------------- the plan
@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 90), height=st.integers(1, 90), rows=st.integers(1, 40), cols=st.integers(1, 40),
       data=st.data())
def test_remaining_plan_is_the_plan_less_the_tiles_written_in_order(width, height, rows, cols, data):
    from affine import Affine

    from eotensor.engine.tiling import TileShape, plan_tiles, remaining
    from eotensor.geometry import Grid, Window

    grid = Grid.from_transform(Affine(1, 0, 0, 0, -1, height), width, height)
    x0, y0 = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    region = Window(y0, x0, data.draw(st.integers(1, height - y0)), data.draw(st.integers(1, width - x0)))
    plan = plan_tiles(grid, TileShape(rows, cols), region, "token")
    tiles = list(plan)
    skip = {(w.row, w.col) for w in tiles if data.draw(st.booleans())}
    left = remaining(plan, skip)
    assert list(left) == [w for w in tiles if (w.row, w.col) not in skip]
    assert len(left) == len(tiles) - len(skip)
    assert left.fingerprint == plan.fingerprint  # the journal's plan is the full one


def test_an_output_its_writer_refuses_leaves_no_journal(tmp_path):
    import eotensor as eot
    from eotensor.errors import OutputFileError

    image = write_raster(tmp_path / "a.tif", np.ones((1, 32, 32), np.float32))
    with pytest.raises(OutputFileError, match="COMPRES"):
        eot.open(image).write(str(tmp_path / "o.tif?&gdal:co:COMPRES=DEFLATE"), resume=True)
    assert leftovers(tmp_path) == []  # the corrected command then starts afresh, not refused as "changed"
    eot.open(image).write(str(tmp_path / "o.tif?&gdal:co:COMPRESS=DEFLATE"), resume=True)
    assert leftovers(tmp_path) == [] and os.path.exists(tmp_path / "o.tif")


# ---------------------------------------------------------------------------------------------- review fixes
def wait_for(path, process, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return os.path.exists(path)


def test_a_second_run_on_the_same_output_is_refused_and_a_run_without_resume_leaves_its_files(scene, reference,
                                                                                             tmp_path):
    out = str(tmp_path / "o.tif")
    slower = tmp_path / "slower.py"  # ~6 s: the other runs start and end meanwhile
    slower.write_text("import time\n\ndef model(x):\n    time.sleep(0.1)\n    return x * 2 + 1\n")
    args = argv((scene[0], scene[1], str(slower)), out, "-optim.resume", "on")
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert wait_for(partial_paths(out)[0], first)
        code, stderr = run(args)
        assert code == 1 and stderr == (f'TensorflowModelServe: error: out "{out}": another run (pid {first.pid}) is '
                                        "writing it; wait for it or choose another output\n"), stderr
        code, stderr = run(argv(scene, out))  # without resume: commits its own file, leaves the live run's alone
        assert code == 0, stderr
        assert first.poll() is None and os.path.exists(partial_paths(out)[0])
    finally:
        stderr = first.communicate(timeout=120)[1]
    assert first.returncode == 0, stderr
    assert_same_raster(out, reference["plain"])
    assert leftovers(tmp_path) == []


def test_a_torn_journal_line_does_not_hide_the_records_of_the_resumed_run(scene, interrupted):
    journal_path = partial_paths(interrupted)[1]
    os.truncate(journal_path, os.path.getsize(journal_path) - 3)  # the last record torn (a full disk, a power cut)
    kept = Journal.read(journal_path).done
    assert kept  # the records before it still count
    torn = os.path.getsize(journal_path)
    process = subprocess.Popen(argv(scene, interrupted, "-optim.resume", "on"), stderr=subprocess.PIPE, text=True,
                               env=ENV)
    deadline = time.monotonic() + 60
    while os.path.getsize(journal_path) <= torn and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)  # until the resumed run recorded a checkpoint
    process.kill()
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == -signal.SIGKILL, stderr
    now = Journal.read(journal_path).done
    assert now > kept  # what the resumed run recorded is read back
    code, stderr = run(argv(scene, interrupted, "-optim.resume", "on"))
    assert code == 0 and f"{len(now)} of 64 tiles already written" in stderr, stderr


def test_a_journal_torn_then_appended_to_reads_every_record(tmp_path):
    path = str(tmp_path / "j")
    journal = Journal.create(path, [["value", "pixel type", "uint8"]])
    journal.record([(0, 0)])
    journal.close()
    with open(path, "a") as f:
        f.write('{"tiles":[[0,8]]}\t00')  # torn
    journal = Journal.read(path)
    journal.record([(8, 0)])
    journal.close()
    assert Journal.read(path).done == {(0, 0), (8, 0)}


def test_a_run_killed_in_the_cog_stage_leaves_only_files_the_next_run_removes(tmp_path):
    image = write_raster(tmp_path / "big.tif", np.random.default_rng(3).normal(size=(1, 2048, 2048)).astype(np.float32))
    model = tmp_path / "fast.py"
    model.write_text("def model(x):\n    return x * 2 + 1\n")
    out = str(tmp_path / "o.tif")
    args = [*COMMAND, "-source1.il", image, "-model.dir", str(model), "-optim.tilesizex", "256", "-optim.tilesizey",
            "256", "-optim.resume", "on", "-out", out + "?&cog=true&gdal:co:COMPRESS=DEFLATE"]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=ENV)
    copying = wait_for(resume_files(out).temp, process)  # the COG copy has a fixed name: found again
    process.kill()
    stderr = process.communicate(timeout=60)[1]
    assert copying and process.returncode == -signal.SIGKILL, stderr
    assert os.path.basename(resume_files(out).temp) in leftovers(tmp_path)
    scratch = tmp_path / "scratch"  # where a LocalCluster's workers would make their directories
    scratch.mkdir()
    done = subprocess.run([*args, "-optim.scheduler", "processes:2"], capture_output=True, text=True, timeout=300,
                          env={**ENV, "TMPDIR": str(scratch)})
    assert done.returncode == 0 and "64 of 64 tiles already written" in done.stderr, done.stderr
    assert leftovers(tmp_path) == []
    assert validate_cog(out) == []
    assert os.listdir(scratch) == []  # no tile left: no worker process started


def test_a_rewritten_file_behind_a_vrt_is_refused(scene, tmp_path):
    import rasterio.shutil

    source = write_raster(tmp_path / "b.tif", np.random.default_rng(4).normal(size=(2, 64, 64)).astype(np.float32))
    vrt = str(tmp_path / "b.vrt")
    rasterio.shutil.copy(source, vrt, driver="VRT")
    out = str(tmp_path / "o.tif")
    args = [*argv(scene, out, "-optim.resume", "on")]
    args[args.index("-source1.il") + 1] = vrt
    code, stderr = killed(args, out, 0.6)
    assert code == -signal.SIGKILL, stderr
    write_raster(source, np.zeros((2, 64, 64), np.float32))  # the same shape, other pixels
    stamp = os.stat(source)
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    code, stderr = run(args)
    assert code == 1, stderr
    assert (f'cannot resume the interrupted run: source1.il "{vrt}" (its file "{source}") modified since the '
            "interrupted run") in stderr, stderr


def test_the_same_input_spelled_otherwise_is_resumed(scene, reference, interrupted):
    image = scene[1]
    args = argv(scene, interrupted, "-optim.resume", "on")
    args[args.index("-source1.il") + 1] = os.path.join(".", os.path.basename(image))
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=120, cwd=os.path.dirname(image))
    assert done.returncode == 0 and "tiles already written" in done.stderr, done.stderr
    assert_same_raster(interrupted, reference["plain"])


def test_a_partial_file_replaced_by_another_of_the_same_shape_is_not_continued(scene, reference, interrupted):
    import shutil

    partial = partial_paths(interrupted)[0]
    other = partial + ".other"
    shutil.copyfile(partial, other)
    with rasterio.open(other, "r+") as ds:
        ds.write(np.zeros((ds.count, ds.height, ds.width), ds.dtypes[0]))  # the same shape and blocks, other pixels
    shutil.copyfile(other, partial)  # copied over it: the same inode, the same name
    os.remove(other)
    code, stderr = run(argv(scene, interrupted, "-optim.resume", "on"))
    assert code == 0, stderr
    assert "are not those the interrupted run wrote); computing every tile" in stderr, stderr
    assert_same_raster(interrupted, reference["plain"])
    assert leftovers(os.path.dirname(interrupted)) == []


def test_a_partial_file_is_renamed_straight_onto_the_output_and_kept_if_that_fails(tmp_path):
    from eotensor.io.atomic import AtomicOutput

    out = str(tmp_path / "o.tif")
    partial = resume_files(out).partial
    with open(partial, "wb") as f:
        f.write(b"tiles")
    output = AtomicOutput(out, resumable=True)
    output.adopt(partial)  # no copy: at no moment are the tiles neither in the partial file nor in the output
    output.abort()
    assert os.path.exists(partial) and not os.path.exists(out)
    output = AtomicOutput(out, resumable=True)
    output.adopt(partial)
    output.commit()
    with open(out, "rb") as f:
        assert f.read() == b"tiles"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_lossy_codec_does_not_make_its_own_partial_file_look_replaced(scene, tmp_path, signum):
    """The rows sampled at checkpoints, and at the last one of an interrupted run, are read back from the file:
    JPEG's decoded values, not the values given."""
    out = str(tmp_path / "j.tif")
    common = argv(scene, out + "?&gdal:co:COMPRESS=JPEG", "-optim.resume", "on")[:-2]
    args = [*common, "-out", out + "?&gdal:co:COMPRESS=JPEG", "uint8"]
    code, stderr = killed(args, out, 0.7, signum)
    assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 130), stderr
    journal = Journal.read(partial_paths(out)[1])
    assert journal is not None and journal.done
    code, stderr = run(args)
    assert code == 0, stderr
    assert f'resuming "{out}": {len(journal.done)} of 64 tiles already written' in stderr
    assert "cannot be continued" not in stderr


def test_statistics_side_cars_written_meanwhile_do_not_void_a_resume(scene, reference, tmp_path):
    """gdalinfo -stats or QGIS write in.tif.aux.xml: no pixel eotensor reads changes."""
    import shutil

    root, image, model = scene
    copy = shutil.copy(image, tmp_path / "in.tif")
    out = str(tmp_path / "s.tif")
    args = [*COMMAND, "-source1.il", copy, "-model.dir", model, "-optim.tilesizex", "8", "-optim.tilesizey", "8",
            "-optim.threads", "1", "-optim.resume", "on", "-out", out]
    code, stderr = killed(args, out, 0.6)
    assert code == -signal.SIGKILL, stderr
    (tmp_path / "in.tif.aux.xml").write_text(  # what gdalinfo -stats leaves
        '<PAMDataset><PAMRasterBand band="1"><Metadata><MDI key="STATISTICS_MEAN">0.1</MDI></Metadata>'
        "</PAMRasterBand></PAMDataset>\n")
    with rasterio.open(copy) as ds:
        assert any(name.endswith(".aux.xml") for name in ds.files)  # GDAL lists it among the dataset's files
    code, stderr = run(args)
    assert code == 0, stderr
    assert "resuming" in stderr and "cannot resume" not in stderr
    assert_same_raster(out, reference["plain"])


def test_a_plain_write_in_the_same_process_leaves_a_live_resumable_runs_files(scene, tmp_path):
    """A resumable run of this process holds the output's lock: a plain write of the same output (another thread)
    commits and leaves the run's partial file and journal alone."""
    from eotensor.io.atomic import lock_output, unlock_output

    _, image, _ = scene
    out = str(tmp_path / "o.tif")
    files = resume_files(out)
    for path in (files.partial, files.journal):
        with open(path, "w") as f:
            f.write("a live run's")
    lock_output(os.path.realpath(out), "out", out)
    try:
        eot.open(image).write(out)
        assert os.path.exists(files.partial) and os.path.exists(files.journal)
    finally:
        unlock_output(os.path.realpath(out))
    eot.open(image).write(out)  # the run is over: its files are stale now
    assert not os.path.exists(files.partial) and not os.path.exists(files.journal)


def test_locks_on_a_file_system_without_them_refuse_resume_and_never_delete(scene, tmp_path, monkeypatch):
    import errno
    import fcntl

    _, image, _ = scene
    out = str(tmp_path / "o.tif")
    files = resume_files(out)
    with open(files.journal, "w") as f:
        f.write("a journal")

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    eot.open(image).write(out)  # commits; cannot tell whether the journal is live: leaves it
    assert os.path.exists(files.journal) and not os.path.exists(files.lock)
    with pytest.raises(eot.EotensorError, match="No locks available"):
        eot.open(image).write(str(tmp_path / "r.tif"), resume=True)
