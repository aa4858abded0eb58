"""The command as a process: start-up cost, ``python -m``, broken pipes, signals and sys.exit (no TensorFlow)."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from eotensor.apps.cli import main
from eotensor.testing import write_raster

COMMAND = [sys.executable, "-m", "eotensor"]


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def slow(tmp_path):
    """A 64x64 image and a Python model that sleeps on every 8x8 tile: a run of several seconds."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = write_raster(inputs / "a.tif", np.ones((1, 64, 64), np.float32), origin=(0, 0))
    model = inputs / "slow.py"
    model.write_text(textwrap.dedent("""
        import sys
        import time

        def model(x):
            time.sleep(0.1)
            return x + 1

        def leave(x):
            sys.exit(3)
    """))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["TensorflowModelServe", "-source1.il", image, "-model.dir", str(model), "-optim.tilesizex", "8",
            "-optim.tilesizey", "8", "-optim.threads", "1", "-out", str(out / "o.tif")]
    return argv, out


def test_import_eotensor_imports_no_app_and_the_cli_nothing_heavy():
    loaded = python("import sys, eotensor; print(sorted(m for m in sys.modules if m.startswith('eotensor')))")
    assert loaded == "['eotensor']"
    cli = python("import sys, eotensor.apps.cli; "
                 "print(sorted(m.split('.')[0] for m in sys.modules if m.startswith(('numpy', 'rasterio'))) "
                 "+ [m for m in sys.modules if m.startswith('eotensor.apps.model_serve')])")
    assert cli == "[]"


def test_library_names_and_lazy_apps():
    import eotensor as eot

    assert {"serve", "source", "Grid", "Window", "errors", "load_model", "FunctionModel", "Model", "TensorSpec",
            "ServedRaster", "EotensorError"} <= set(eot.__all__)
    assert "TensorflowModelServe" not in eot.__all__
    from eotensor.apps.model_serve import TensorflowModelServe

    assert eot.TensorflowModelServe is TensorflowModelServe
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        eot.Nope  # noqa: B018


def test_python_dash_m_runs_the_command():
    listing = subprocess.run(COMMAND, capture_output=True, text=True, check=True).stdout
    assert "TensorflowModelServe" in listing
    helptext = subprocess.run(COMMAND + ["TensorflowModelServe", "-help"], capture_output=True, text=True,
                              check=True).stdout
    assert "-sourceN.il" in helptext


def test_help_into_a_closed_pipe_exits_quietly():
    process = subprocess.Popen(COMMAND + ["TensorflowModelServe", "-help"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the help is printed, as with | head -1 on a long text
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 141
    assert stderr == ""


def test_errors_are_prefixed_once(capsys):
    assert main(["TensorflowModelServe", "-source1.il", "a", "-model.fullconv", "on"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("TensorflowModelServe: error: unknown parameter -model.fullconv")
    assert err.count("TensorflowModelServe") == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_the_run_leaves_no_temporary_file(slow, signum):
    argv, out = slow
    process = subprocess.Popen(COMMAND + argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not os.listdir(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(out), "the run never started writing"
    process.send_signal(signum)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines()[-1] == "TensorflowModelServe: interrupted; no output written"
    assert "Traceback" not in stderr
    assert os.listdir(out) == []


def test_ctrl_c_while_the_model_imports_gives_no_traceback(slow):
    # The import-cost test above keeps the window before main() to Python's own start-up; this one interrupts
    # a model import that takes seconds, like TensorFlow's.
    argv, out = slow
    model = argv[argv.index("-model.dir") + 1]
    with open(model) as f:
        code = f.read()
    with open(model, "w") as f:
        f.write("import time\ntime.sleep(30)\n" + code)
    process = subprocess.Popen(COMMAND + argv, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip() == "TensorflowModelServe: interrupted; no output written"
    assert os.listdir(out) == []


def test_a_model_calling_sys_exit_is_an_error_not_a_silent_end(slow, capsys):
    argv, out = slow
    argv = [a.replace("slow.py", "slow.py::leave") for a in argv]
    assert main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "exit" in errors[0], errors
    assert os.listdir(out) == []


def test_python_entry_without_out_returns_the_lazy_result(slow, tmp_path):
    import eotensor as eot

    argv, out = slow
    image = argv[argv.index("-source1.il") + 1]
    model = eot.FunctionModel(lambda x: {"y": x * 2}, ["x"], ["y"])
    lazy = eot.TensorflowModelServe(source1_il=image, model_dir=model, optim_tilesizex="16")
    assert isinstance(lazy, eot.ServedRaster) and os.listdir(out) == []
    np.testing.assert_array_equal(lazy.read(), np.full((1, 64, 64), 2, np.float32))
    written = eot.TensorflowModelServe({"source1.il": image, "model.dir": model}, out=out / "o.tif")
    assert isinstance(written, eot.ServedRaster) and os.listdir(out) == ["o.tif"]


def test_apps_from_the_entry_point_group_are_listed_and_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "plug_app.py").write_text(textwrap.dedent("""
        from eotensor.apps.params import App, Kind, Param

        def build(values):
            return values["word"] * 2

        def write(result, values, progress):
            open(values["out"], "w").write(result)

        APP = App("Echo", "Write a word twice.", (Param("word", Kind.STRING, "A word.", mandatory=True),
                                                  Param("out", Kind.OUTPUT_FILE, "Text file.", mandatory=True)),
                  build, write)
    """))
    dist = tmp_path / "plug_app-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-app\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[eotensor.apps]\nEcho = plug_app:APP\nBroken = plug_app:NOPE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main([]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^  Echo +Write a word twice\.$", listing, re.M) and "Broken" in listing
    assert "TensorflowModelServe" in listing
    assert re.search(r"^  Broken +\(application Broken \(plug_app:NOPE\) cannot be loaded: AttributeError", listing, re.M)
    assert main(["Broken", "-help"]) == 1
    assert capsys.readouterr().err.startswith("eotensor: error: application Broken (plug_app:NOPE) cannot be loaded")
    assert main(["Echo", "-word", "ab", "-out", str(tmp_path / "o.txt")]) == 0
    assert (tmp_path / "o.txt").read_text() == "abab"
