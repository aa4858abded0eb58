"""Python files served like models from the CLI: the "big calculator" path without TensorFlow."""

import textwrap

import numpy as np
import pytest
import rasterio
from affine import Affine

from eotensor.apps.cli import main


def write(path, data):
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype="int16", crs="EPSG:32631", transform=Affine(10, 0, 0, 0, -10, 0))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return str(path)


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
    return write(tmp_path / "a.tif", x1), write(tmp_path / "b.tif", x2), str(calc), x1, x2


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
