"""The CLI end to end: the talk's models and command lines, compared with NumPy, and every bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine

import models
from eotensor.apps.cli import main
from eotensor.testing import write_raster

pytestmark = pytest.mark.tf

WIDTH, HEIGHT = 96, 80


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    x1 = rng.integers(0, 50, size=(4, HEIGHT, WIDTH)).astype(np.float32)
    x2 = rng.integers(0, 50, size=(4, HEIGHT, WIDTH)).astype(np.float32)
    return {
        "dir": d, "x1": x1, "x2": x2,
        "a": write_raster(d / "a.tif", x1), "b": write_raster(d / "b.tif", x2),
        "a3": write_raster(d / "a3.tif", x1[:3]),
        "small": write_raster(d / "small.tif", x1[:, :40, :40]),
        "text": str(d / "notraster.tif"),
        "scalprod": models.build_scalar_product(d / "scalprod"),
        "ax": models.build_scalar_product_ax(d / "ax"),
        "add1": models.build_add_one(d / "add1"),
        "norm": models.build_norm(d / "norm"),
        "round4": models.build_matrix_round4(d / "round4"),
        "tf1": models.build_tf1_simple_save(d / "tf1"),
        "nosig": models.build_no_signature(d / "nosig"),
    }


def run_cli(*argv):
    return main([str(a) for a in argv])


def test_scalar_product_of_two_sources(data, tmp_path):
    out = tmp_path / "scalprod.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source2.il", data["b"],
                   "-model.dir", data["scalprod"], "-model.fullyconv", "on", "-out", out,
                   "-optim.disabletiling", "on") == 0
    values, ds = read(out)
    np.testing.assert_array_equal(values[0], (data["x1"] * data["x2"]).sum(axis=0))
    assert ds.crs.to_epsg() == 32631 and ds.transform == Affine(10, 0, 300000.0, 0, -10, 4900020.0)


def test_user_placeholder_vector(data, tmp_path):
    out = tmp_path / "ax.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-model.userplaceholders",
                   "a=(1.0, 2.0, 2.0, 1.0)", "-model.dir", data["ax"], "-model.fullyconv", "on",
                   "-out", out, "-optim.disabletiling", "on") == 0
    weights = np.array([1, 2, 2, 1], np.float32)[:, None, None]
    np.testing.assert_array_equal(read(out)[0][0], (data["x1"] * weights).sum(axis=0))


def test_add_one_keras3_export_int16_box(data, tmp_path):
    out = tmp_path / "plus1.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-model.dir", data["add1"],
                   "-model.fullyconv", "1", "-out", f"{out}?&box=10:20:30:16&gdal:co:COMPRESS=DEFLATE", "int16") == 0
    values, ds = read(out)
    assert ds.dtypes[0] == "int16" and values.shape == (4, 16, 30)
    np.testing.assert_array_equal(values, data["x1"][:, 20:36, 10:40] + 1)
    assert ds.transform == Affine(10, 0, 300100.0, 0, -10, 4899820.0)


def test_euclidean_norm_patch_based_tiles(data, tmp_path):
    out = tmp_path / "norm.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-model.dir", data["norm"],
                   "-optim.tilesizex", "17", "-optim.tilesizey", "9", "-out", out) == 0
    expected = np.sqrt((data["x1"] ** 2).sum(axis=0))
    np.testing.assert_allclose(read(out)[0][0], expected, rtol=1e-6)


def test_round4_matrix_computation_learns_four_bands(data, tmp_path):
    out = tmp_path / "r4.tif"
    env_before = os.environ.get("OTB_TF_NSOURCES")
    os.environ["OTB_TF_NSOURCES"] = "2"
    try:
        assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source2.il", data["b"],
                       "-model.dir", data["round4"], "-model.fullyconv", "on", "-out", out,
                       "-optim.disabletiling", "on") == 0
    finally:
        os.environ.pop("OTB_TF_NSOURCES") if env_before is None else os.environ.update(OTB_TF_NSOURCES=env_before)
    values, _ = read(out)
    np.testing.assert_array_equal(values, data["x1"] * data["x2"].sum(axis=0, keepdims=True))


def test_tf1_graph_served_by_tensor_name(data, tmp_path):
    out = tmp_path / "tf1.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source1.placeholder", "x",
                   "-model.dir", data["tf1"], "-model.fullyconv", "on", "-output.names", "y",
                   "-out", out, "double") == 0
    values, ds = read(out)
    assert ds.dtypes[0] == "float64"
    np.testing.assert_array_equal(values, data["x1"] * 2 + 1)


def test_talk_spellings_are_aliases(data, tmp_path, capsys):
    out = tmp_path / "alias.tif"
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source1.rfielddy", "1",
                   "-model.dir", data["add1"], "-model.fullyconv", "on", "-optim.tilesex", "32",
                   "-optim.tilesey", "32", "-out", out) == 0
    err = capsys.readouterr().err
    assert "-source1.rfielddy is read as -source1.rfieldy" in err and "-optim.tilesex is read as" in err


BAD_INPUTS = {
    "missing input": (["-source1.il", "{dir}/nope.tif", "-model.dir", "{add1}"], r'source1.il: input file ".*nope.tif" does not exist'),
    "unreadable input": (["-source1.il", "{text}", "-model.dir", "{add1}"], r"source1.il: cannot read .*notraster.tif"),
    "mismatched list": (["-source1.il", "{a}", "{small}", "-model.dir", "{add1}"], r"source1.il: image 2 .* is 40x40 pixels but image 1"),
    "model dir missing": (["-source1.il", "{a}", "-model.dir", "{dir}/nomodel"], r"model.dir.*nomodel.*does not exist"),
    "no signatures": (["-source1.il", "{a}", "-model.dir", "{nosig}"], r"saved_model_cli show --dir"),
    "unknown tensor": (["-source1.il", "{a}", "-source1.placeholder", "zz", "-model.dir", "{add1}"], r'source1.placeholder: tensor "zz" is not in the model signature; available: x'),
    "unknown output": (["-source1.il", "{a}", "-output.names", "zz", "-model.dir", "{add1}"], r'output.names: tensor "zz" .*available: y'),
    "unknown user placeholder": (["-source1.il", "{a}", "-model.userplaceholders", "b=1.0", "-model.dir", "{ax}"], r'model.userplaceholders: tensor "b" is not in the model signature'),
    "placeholder open paren": (["-source1.il", "{a}", "-model.userplaceholders", "a=(1,2", "-model.dir", "{ax}"], r'model.userplaceholders "a=\(1,2": unbalanced parentheses'),
    "placeholder no value": (["-source1.il", "{a}", "-model.userplaceholders", "a", "-model.dir", "{ax}"], r'model.userplaceholders "a": expected name=value'),
    "placeholder exponent": (["-source1.il", "{a}", "-model.userplaceholders", "a=1e-3", "-model.dir", "{ax}"], r'"1e-3" is neither a number'),
    "inconsistent fields": (["-source1.il", "{a}", "-model.dir", "{add1}", "-model.fullyconv", "on", "-output.efieldx", "8"], r"source1.rfieldx = 1 is inconsistent with output.efieldx = 8"),
    "efield larger than output": (["-source1.il", "{a}", "-source1.rfieldx", "94", "-output.spcscale", "4", "-model.dir", "{add1}", "-model.fullyconv", "on"], r"output.efieldx = 1 is larger than the output grid"),
    "element count": (["-source1.il", "{a}", "-source1.rfieldx", "3", "-source1.rfieldy", "3", "-model.dir", "{add1}", "-model.fullyconv", "on"], r'model output "y" has (\d+ values|shape) .*check the sources. rfieldx/rfieldy, output.efieldx/efieldy and output.spcscale'),
    "band count": (["-source1.il", "{a3}", "-model.dir", "{add1}", "-model.fullyconv", "on"], r'source1.il: 3 band\(s\) in .*a3.tif but model input "x" expects 4 channels'),
    "unknown pixel type": (["-source1.il", "{a}", "-model.dir", "{add1}", "-model.fullyconv", "on"], r"pixel type", "int17"),
    "unknown extended key": (["-source1.il", "{a}", "-model.dir", "{add1}", "-model.fullyconv", "on"], r'unknown extended-filename key "foo"', "", "?&foo=1"),
    "unknown parameter": (["-source1.il", "{a}", "-model.dir", "{add1}", "-model.fullconv", "on"], r"unknown parameter -model.fullconv; did you mean -model.fullyconv\?"),
    "source without il": (["-source1.il", "{a}", "-source2.rfieldx", "3", "-model.dir", "{add1}"], r"missing mandatory parameter -source2.il"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line(case, data, tmp_path, capsys):
    args, pattern, *extra = BAD_INPUTS[case]
    pixel_type = extra[0] if extra and extra[0] else None
    suffix = extra[1] if len(extra) > 1 else ""
    if case == "unreadable input":
        with open(data["text"], "w") as f:
            f.write("not a raster")
    out = tmp_path / "out.tif"
    argv = [a.format(**{k: v for k, v in data.items() if isinstance(v, str)}, dir=data["dir"]) for a in args]
    argv += ["-out", f"{out}{suffix}"] + ([pixel_type] if pixel_type else [])
    assert run_cli("TensorflowModelServe", *argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert __import__("re").search(pattern, errors[0]), errors[0]
    assert os.listdir(tmp_path) == []


def test_output_directory_not_writable(data, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-model.dir", data["add1"],
                   "-model.fullyconv", "on", "-out", blocker / "o.tif") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'out: cannot write' in err[0] and 'afile" is a file' in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_non_numeric_nsources(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OTB_TF_NSOURCES", "two")
    assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-model.dir", data["add1"],
                   "-out", tmp_path / "o.tif") == 1
    assert 'OTB_TF_NSOURCES="two" is not a positive integer' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_console_script_lists_apps_and_help():
    exe = os.path.join(os.path.dirname(sys.executable), "eotensor")
    listing = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    assert "TensorflowModelServe" in listing
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("eotensor 0.")
    helptext = subprocess.run([exe, "TensorflowModelServe", "--help"], capture_output=True, text=True,
                              check=True).stdout
    for key in ("-source1.il", "-sourceN.rfieldx", "-output.spcscale", "-optim.tilesizex", "-model.userplaceholders",
                "expression field", "receptive field"):
        assert key.replace("source1", "sourceN") in helptext


def test_xla_jit_gives_the_same_bytes(data, tmp_path):
    outputs = []
    for jit in ("off", "on"):
        out = tmp_path / f"r4_{jit}.tif"
        assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source2.il", data["b"],
                       "-model.dir", data["round4"], "-model.fullyconv", "on", "-model.jit", jit,
                       "-optim.tilesizex", "40", "-optim.tilesizey", "32", "-out", out) == 0
        outputs.append(read(out)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_threads_and_model_threads_do_not_change_results(data, tmp_path):
    outputs = []
    for threads in ("0", "3"):
        out = tmp_path / f"t{threads}.tif"
        assert run_cli("TensorflowModelServe", "-source1.il", data["a"], "-source2.il", data["b"],
                       "-model.dir", data["scalprod"], "-model.fullyconv", "on", "-optim.threads", threads,
                       "-optim.modelthreads", "1", "-optim.tilesizex", "24", "-optim.tilesizey", "16",
                       "-out", out) == 0
        outputs.append(read(out)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
