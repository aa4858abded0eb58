"""Python files served like models from the CLI: the "big calculator" path without TensorFlow."""

import textwrap
import warnings

import numpy as np
import pytest
import rasterio

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.testing import write_raster


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(1)
    x1 = rng.integers(0, 1000, size=(4, 50, 60)).astype(np.int16)
    x2 = rng.integers(0, 1000, size=(4, 50, 60)).astype(np.int16)
    calc = tmp_path / "calc.py"
    calc.write_text(textwrap.dedent('''
        import numexpr as ne

        OUTPUTS = ["dot", "sum"]

        def model(x1, x2):
            a, b = x1[..., :4], x2[..., :4]
            dot = ne.evaluate("sum(a * b, axis=3)")
            return {"dot": dot, "sum": a + b}

        def ndvi(x):
            red, nir = x[..., 0], x[..., 3]
            return ne.evaluate("(nir - red) / (nir + red)")
    '''))
    a = write_raster(tmp_path / "a.tif", x1, origin=(0, 0))
    b = write_raster(tmp_path / "b.tif", x2, origin=(0, 0))
    return a, b, str(calc), x1, x2


def test_numexpr_function_with_two_sources_and_two_outputs(inputs, tmp_path):
    a, b, calc, x1, x2 = inputs
    out = tmp_path / "o.tif"
    assert main(["TensorflowModelServe", "-source1.il", a, "-source2.il", b, "-model.dir", calc,
                 "-model.fullyconv", "on", "-output.names", "dot", "sum", "-out", str(out), "double"]) == 0
    with rasterio.open(out) as ds:
        got = ds.read()
    f1, f2 = x1.astype(np.float64), x2.astype(np.float64)
    np.testing.assert_array_equal(got[0], (f1 * f2).sum(axis=0))
    np.testing.assert_array_equal(got[1:], f1 + f2)


def test_named_function_returning_one_array(inputs, tmp_path):
    a, _, calc, x1, _ = inputs
    out = tmp_path / "ndvi.tif"
    assert main(["TensorflowModelServe", "-source1.il", a, "-model.dir", f"{calc}::ndvi", "-out", str(out)]) == 0
    with rasterio.open(out) as ds:
        got = ds.read(1)
    red, nir = x1[0].astype(np.float32), x1[3].astype(np.float32)
    np.testing.assert_allclose(got, (nir - red) / (nir + red), rtol=1e-6)


def test_missing_function_is_a_clear_error(inputs, tmp_path, capsys):
    a, _, calc, _, _ = inputs
    assert main(["TensorflowModelServe", "-source1.il", a, "-model.dir", f"{calc}::nope",
                 "-out", str(tmp_path / "o.tif")]) == 1
    assert 'defines no function "nope"' in capsys.readouterr().err


# ---------------------------------------------------------------- binding order (decision 33)
@pytest.fixture
def bands(tmp_path):
    """A red and a near-infrared raster (one band each): NDVI = (nir - red) / (nir + red) = +2/3."""
    red = np.full((1, 12, 16), 100, np.int16)
    nir = np.full((1, 12, 16), 500, np.int16)
    return (write_raster(tmp_path / "red.tif", red, origin=(0, 0)),
            write_raster(tmp_path / "nir.tif", nir, origin=(0, 0)))


NDVI = '''
def model(red, nir):
    return (nir - red) / (nir + red)
'''


def ndvi_file(tmp_path, text=NDVI):
    path = tmp_path / "ndvi.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_python_file_binds_sources_in_parameter_order(bands, tmp_path):
    red, nir = bands
    got = eot.serve(ndvi_file(tmp_path), [eot.source(red), eot.source(nir)], fullyconv=True).read()
    np.testing.assert_allclose(got, 2 / 3, rtol=1e-6)  # alphabetical binding (nir <- red.tif) gives -2/3
    out = tmp_path / "ndvi.tif"
    assert main(["TensorflowModelServe", "-source1.il", red, "-source2.il", nir, "-model.dir", ndvi_file(tmp_path),
                 "-model.fullyconv", "on", "-out", str(out)]) == 0
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(), 2 / 3, rtol=1e-6)


def test_named_sources_win_and_empty_ones_take_the_remaining_parameters(bands, tmp_path):
    red, nir = bands
    sources = [eot.source(nir, placeholder="nir"), eot.source(red)]  # source2 takes "red", the input left
    got = eot.serve(ndvi_file(tmp_path), sources, fullyconv=True).read()
    np.testing.assert_allclose(got, 2 / 3, rtol=1e-6)
    # a user placeholder takes its parameter out of the order too: def model(k, red, nir) with k given
    text = "def model(k, red, nir):\n    return k * (nir - red) / (nir + red)\n"
    got = eot.serve(ndvi_file(tmp_path, text), [eot.source(red), eot.source(nir)], fullyconv=True,
                    user_placeholders={"k": 3}).read()
    np.testing.assert_allclose(got, 2.0, rtol=1e-6)


def test_function_model_binds_sources_in_declared_order(bands):
    red, nir = bands
    model = eot.FunctionModel(lambda red, nir: (nir - red) / (nir + red), ["red", "nir"], ["ndvi"])
    assert list(model.inputs) == ["red", "nir"] and model.ordered_inputs
    got = eot.serve(model, [eot.source(red), eot.source(nir)], fullyconv=True).read()  # one array: the output
    np.testing.assert_allclose(got, 2 / 3, rtol=1e-6)


def test_models_that_declare_no_order_bind_alphabetically(bands):
    """A third-party object implementing the protocol without ``ordered_inputs`` keeps OTBTF's rule."""
    red, nir = bands
    inner = eot.FunctionModel(lambda red, nir: {"y": (nir - red) / (nir + red)}, ["red", "nir"], ["y"])

    class Plain:
        inputs = {"red": inner.inputs["red"], "nir": inner.inputs["nir"]}  # declaration order, but not declared
        outputs = inner.outputs

        def run(self, feeds, fetches):
            return inner.run(feeds, fetches)

    got = eot.serve(Plain(), [eot.source(red), eot.source(nir)], fullyconv=True).read()
    np.testing.assert_allclose(got, -2 / 3, rtol=1e-6)  # source1 -> "nir", alphabetically first


# ---------------------------------------------------------------- bad model files and results
def cli_error(tmp_path, capsys, text, *extra, sources=1):
    """Run the CLI on a .py model made of ``text``; return its one-line error (and check it is one line)."""
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(text))
    image = write_raster(tmp_path / "img.tif", np.ones((1, 8, 8), np.int16), origin=(0, 0))
    args = [arg for n in range(1, sources + 1) for arg in (f"-source{n}.il", image)]
    code = main(["TensorflowModelServe", *args, "-model.dir", str(path), "-model.fullyconv", "on", *extra,
                 "-out", str(tmp_path / "o.tif")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.tif").exists()
    return err


def test_unknown_input_dtype_names_the_file_the_input_and_the_value(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, 'INPUT_DTYPES = {"x": "flot32"}\ndef model(x):\n    return x\n')
    assert 'bad.py' in err and """INPUT_DTYPES["x"] = 'flot32' is not a numeric NumPy dtype""" in err
    err = cli_error(tmp_path, capsys, 'INPUT_DTYPES = {"x": "str"}\ndef model(x):\n    return x\n')
    assert """INPUT_DTYPES["x"] = 'str' is not a numeric""" in err
    err = cli_error(tmp_path, capsys, 'INPUT_DTYPES = {"x": None}\ndef model(x):\n    return x\n')
    assert """INPUT_DTYPES["x"] = None is not a numeric""" in err
    err = cli_error(tmp_path, capsys, 'INPUT_DTYPES = {"nri": "uint16"}\ndef model(x):\n    return x\n')
    assert 'INPUT_DTYPES names "nri", which is not a parameter of model(x)' in err
    err = cli_error(tmp_path, capsys, 'OUTPUTS = "ndvi"\ndef model(x):\n    return x\n')
    assert "OUTPUTS = 'ndvi'; expected a list of output names" in err


@pytest.mark.parametrize("body, message", [
    ('return {"y": np.full(x.shape, "a")}', 'output "y" holds strings (<U1); expected numeric arrays'),
    ('return np.array([object()] * x.size)', 'output "y" holds Python objects (object); expected numeric arrays'),
    ('return "y"', 'output "y" holds strings (<U1); expected numeric arrays'),
    ("return None", "the function returned None (no return?); expected a dict of numeric arrays with keys ['y']"),
    ('return {"z": x}', 'the result has no output "y" (keys: z)'),
    ("return [[1, 2], [3]]", 'output "y" is not an array'),
])
def test_non_numeric_results_are_clear_errors(tmp_path, capsys, body, message):
    err = cli_error(tmp_path, capsys, f"import numpy as np\ndef model(x):\n    {body}\n")
    assert "bad.py::model" in err and message in err


def test_one_array_is_the_first_output_and_other_outputs_need_a_dict(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, 'OUTPUTS = ["a", "b"]\ndef model(x):\n    return x\n', "-output.names", "b")
    assert 'returned one ndarray, which is output "a"; output "b" needs a dict of numeric arrays' in err


@pytest.mark.parametrize("call", ["sys.exit(3)", "sys.exit()", "exit('bye')"])
def test_sys_exit_in_a_model_is_a_model_error(tmp_path, capsys, call):
    err = cli_error(tmp_path, capsys, f"import sys\ndef model(x):\n    {call}\n")
    assert "the model called sys.exit(" in err
    err = cli_error(tmp_path, capsys, f"import sys\n{call}\ndef model(x):\n    return x\n")
    assert 'importing "' in err and "called sys.exit(" in err


def test_kwargs_only_function_asks_for_one_parameter_per_source(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, "def model(**inputs):\n    return inputs['x1']\n", sources=2)
    assert "def model(**inputs) declares no named inputs" in err and "declare one parameter per source" in err
    assert "def model(x1, x2)" in err
    err = cli_error(tmp_path, capsys, "def model(x, /):\n    return x\n")
    assert "positional-only" in err


def test_int_placeholder_beyond_int32_is_a_clear_error(tmp_path, capsys):
    text = 'INPUT_DTYPES = {"a": "int32"}\ndef model(x, a):\n    return x + a\n'
    err = cli_error(tmp_path, capsys, text, "-model.userplaceholders", "a=99999999999")
    assert "model.userplaceholders: a = [99999999999] cannot be cast exactly to the model's int32" in err
    err = cli_error(tmp_path, capsys, "def model(x, a):\n    return x + a\n",
                    "-model.userplaceholders", "a=1" + "0" * 40 + ".0")
    assert "cannot be cast exactly to the model's float32 (it would overflow to inf)" in err


def test_tensorflow_options_are_ignored_with_a_warning_for_python_files(bands, tmp_path):
    red, nir = bands
    with pytest.warns(UserWarning, match=r'ndvi.py" is served by the python runtime: jit, threads ignored'):
        eot.load_model(ndvi_file(tmp_path), jit=True, threads=2)
    with pytest.warns(UserWarning, match="model.dir is an already-loaded model: tags ignored"):
        eot.load_model(eot.FunctionModel(lambda x: x, ["x"], ["y"]), tags=["serve"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eot.load_model(ndvi_file(tmp_path))


def test_function_model_inputs_must_be_distinct():
    from eotensor.errors import ModelError

    with pytest.raises(ModelError, match=r"model inputs must have distinct keys; got \['x', 'x'\]"):
        eot.FunctionModel(lambda x: x, ["x", "x"], ["y"])
