"""The Keras 3 runtime: real .keras files saved by the tests, served like SavedModels."""

from __future__ import annotations

import numpy as np
import pytest

import eotensor as eot
from eotensor.apps.cli import main
from eotensor.errors import ModelError
from eotensor.testing import assert_tiled_equals_untiled, write_raster
from models import conv_fcn_keras, conv_fcn_numpy

pytestmark = pytest.mark.tf


@pytest.fixture
def image(tmp_path):
    data = np.random.default_rng(6).integers(-30, 30, size=(4, 29, 34)).astype(np.int16)
    return write_raster(tmp_path / "img.tif", data), data


def test_keras_file_served_tiled_equals_untiled_equals_numpy(image, tmp_path):
    path, data = image
    model = tmp_path / "conv.keras"
    conv_fcn_keras(rf=5).save(model)
    served = eot.serve(str(model), eot.source(path, 5), fullyconv=True, output_names="y")
    assert served.engine.layout == "nhwc" and served.count == 2
    result = assert_tiled_equals_untiled(served.engine, [(8, 8), (5, 11)])
    np.testing.assert_array_equal(result, conv_fcn_numpy(data.transpose(1, 2, 0)[None])[0].transpose(2, 0, 1))


def test_keras_list_outputs_are_numbered_and_inputs_bind_alphabetically(tmp_path):
    import keras

    b = keras.Input((None, None, 1), name="b")
    a = keras.Input((None, None, 1), name="a")
    model = keras.Model([b, a], [keras.layers.Subtract()([b, a]), keras.layers.Add()([b, a])])
    model.save(tmp_path / "two.keras")
    one = write_raster(tmp_path / "one.tif", np.full((1, 5, 6), 10, np.int16))
    two = write_raster(tmp_path / "two.tif", np.full((1, 5, 6), 3, np.int16))
    out = tmp_path / "out.tif"
    assert main(["TensorflowModelServe", "-source1.il", one, "-source2.il", two, "-model.dir",
                 str(tmp_path / "two.keras"), "-model.fullyconv", "on", "-output.names", "output_0", "output_1",
                 "-out", str(out)]) == 0
    import rasterio

    with rasterio.open(out) as ds:
        result = ds.read()
    assert (result[0] == -7).all() and (result[1] == 13).all()  # source1 feeds "a" (OTBTF's alphabetical rule)


def test_corrupt_keras_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r'model.dir: cannot load ".*bad.keras" as a Keras model'):
        eot.load_model(str(bad))


@pytest.mark.parametrize("kind", ["single", "sequential"])
def test_single_input_and_sequential_models_load(tmp_path, kind):
    import keras

    if kind == "single":
        x = keras.Input((None, None, 3))
        model = keras.Model(x, keras.layers.Conv2D(2, 1)(x))
    else:
        model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1)])
    model.save(tmp_path / "m.keras")
    loaded = eot.load_model(str(tmp_path / "m.keras"))
    assert list(loaded.outputs) == ["output_0"] and len(loaded.inputs) == 1
    feeds = {key: np.ones((1, 4, 4, 3), np.float32) for key in loaded.inputs}
    assert loaded.run(feeds, ["output_0"])[0].shape == (1, 4, 4, 2)
