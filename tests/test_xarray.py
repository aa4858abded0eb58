"""xarray in and out: Dask-backed DataArrays with rioxarray's CRS and transform, and DataArrays as sources."""

import subprocess
import sys

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr

import eotensor as eot
from eotensor.errors import GeometryError, ParameterError
from eotensor.runtimes import FunctionModel
from eotensor.testing import write_raster


def box_sum(x):
    rows, cols = x.shape[1] - 2, x.shape[2] - 2
    return {"y": sum(x[:, i:i + rows, j:j + cols] for i in range(3) for j in range(3))}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xr")
    image = np.random.default_rng(5).integers(-100, 100, size=(3, 45, 38)).astype(np.int16)
    return folder, write_raster(folder / "a.tif", image, spacing=(10, 20)), image


def test_a_result_as_a_lazy_dataarray_keeps_values_coordinates_and_crs(scene):
    _, path, image = scene
    result = eot.serve(FunctionModel(box_sum, ["x"], ["y"]), [eot.source(path, rfield=4)], efield=2,
                       fullyconv=True, tile_size=(16, 12))
    array = result.to_xarray("boxes")
    assert array.dims == ("band", "y", "x") and array.shape == result.shape and array.dtype == np.float32
    assert array.chunks[1][0] == 12 and array.chunks[2][0] == 16  # chunks follow the tiles (rows, cols)
    assert array.rio.crs == result.crs
    assert array.rio.transform() == result.transform
    with rasterio.open(path) as ds:  # pixel centres: output pixel 0 is centred on input pixel 1 (RF 4, EF 2)
        x0, y0 = ds.xy(1, 1)
    assert array.x.values[0] == pytest.approx(x0) and array.y.values[0] == pytest.approx(y0)
    np.testing.assert_array_equal(array.values, result.read())
    np.testing.assert_array_equal(array.isel(x=slice(5, 9), y=slice(20, 31)).values, result.read((20, 5, 11, 4)))


def test_an_opened_file_round_trips_through_xarray_into_a_model(scene, tmp_path):
    _, path, image = scene
    array = eot.open(path).to_xarray()
    doubled = eot.serve(FunctionModel(lambda x: {"y": x * 2}, ["x"], ["y"]), [eot.source(array)])
    assert doubled.grid == eot.open(path).grid
    written = doubled.write(tmp_path / "doubled.tif", "int16")
    with rasterio.open(written) as ds, rasterio.open(path) as src:
        np.testing.assert_array_equal(ds.read(), image * 2)
        assert ds.transform == src.transform and ds.crs == src.crs


def test_a_rioxarray_dataarray_is_a_source(scene):
    _, path, image = scene
    opened = rioxarray.open_rasterio(path)  # what users have
    served = eot.serve(FunctionModel(lambda x: {"y": x[..., 1:] - x[..., :1]}, ["x"], ["y"]),
                       [eot.source(opened[[0, 2]])])  # xarray band selection first
    np.testing.assert_array_equal(served.read()[0], (image[2] - image[0]).astype(np.float32))
    two_d = opened.isel(band=1, drop=True).astype(np.float64) / 4  # (y, x), float64 read as float32
    np.testing.assert_array_equal(eot.from_xarray(two_d).read()[0], (image[1] / 4).astype(np.float32))


def test_irregular_or_unlocated_dataarrays_are_clear_errors(scene):
    _, path, _ = scene
    opened = rioxarray.open_rasterio(path)
    x = opened.x.values.copy()
    x[5] += 3.0
    bent = opened.assign_coords(x=x)
    with pytest.raises(GeometryError, match="not evenly spaced"):
        eot.source(bent)
    with pytest.raises(ParameterError, match="no x/y dimensions"):
        eot.source(xr.DataArray(np.zeros((4, 5)), dims=("a", "b")))
    with pytest.raises(ParameterError, match="expected \\(y, x\\) or \\(band, y, x\\)"):
        eot.source(opened.expand_dims(time=[1]))


def test_importing_eotensor_imports_no_xarray():
    code = "import sys, eotensor; eotensor.open; print('xarray' in sys.modules, 'dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == \
        ["False", "False"]


def test_results_with_equal_tokens_never_share_dask_keys(scene):
    _, path, image = scene

    def scaled(k):  # a closure's data is not part of a function model's token
        return FunctionModel(lambda x: {"y": x * k}, ["x"], ["y"], name="scale")

    a = eot.serve(scaled(2), [eot.source(path)], fullyconv=True)
    b = eot.serve(scaled(3), [eot.source(path)], fullyconv=True)
    assert a.token == b.token
    np.testing.assert_array_equal((b.to_xarray() - a.to_xarray()).values, image.astype(np.float32))
