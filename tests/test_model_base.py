"""ModelBase on Keras 3, end to end: patches images -> dataset -> a subclass trained with fit -> export ->
TensorflowModelServe with the cropped output it names, as OTBTF's tutorial does."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from eotensor.apps.cli import main
from eotensor.testing import write_raster

pytestmark = pytest.mark.tf


def _write_patches(path, patches):
    n, h, w, c = patches.shape
    return write_raster(path, patches.transpose(3, 0, 1, 2).reshape(c, n * h, w))


def test_a_modelbase_subclass_trains_exports_and_serves_its_cropped_output(tmp_path):
    import keras

    from eotensor.dataset import DatasetFromPatchesImages
    from eotensor.model.base import ModelBase, cropped_tensor_name

    class Net(ModelBase):
        def normalize_inputs(self, inputs):
            return {"x": keras.ops.cast(inputs["x"], "float32") * 0.01}

        def get_outputs(self, normalized_inputs):
            conv = keras.layers.Conv2D(1, 3, padding="same", name="conv")
            return {"y": conv(normalized_inputs["x"])}

    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, (32, 12, 12, 2)).astype(np.int16)
    y = ((x[..., :1] - x[..., 1:]) * 0.01).astype(np.float32)
    files = {"x": [_write_patches(tmp_path / "x.tif", x)], "y": [_write_patches(tmp_path / "y.tif", y)]}
    dataset = DatasetFromPatchesImages(filenames_dict=files, seed=0)
    tf_ds = dataset.get_tf_dataset(batch_size=8, targets_keys=["y"])
    keras.utils.set_random_seed(0)
    model = Net(tf_ds.element_spec, inference_cropping=[2])
    assert set(model.model.output) == {"y", "y_crop2"}  # dict keys: what model.export names the outputs
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss={"y": "mse"})
    history = model.fit(tf_ds, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 4  # it learns x0 - x1
    model.export(str(tmp_path / "saved"), verbose=False)

    image = rng.integers(0, 100, (2, 40, 36)).astype(np.int16)
    source = write_raster(tmp_path / "image.tif", image)
    out = tmp_path / "map.tif"
    name = cropped_tensor_name("y", 2)
    assert main(["TensorflowModelServe", "-source1.il", source, "-source1.rfieldx", "12", "-source1.rfieldy", "12",
                 "-model.dir", str(tmp_path / "saved"), "-model.fullyconv", "on", "-output.names", name,
                 "-output.efieldx", "8", "-output.efieldy", "8", "-optim.tilesizex", "16", "-optim.tilesizey", "16",
                 "-out", str(out)]) == 0
    with rasterio.open(out) as ds:
        served = ds.read(1)
    # the first 8 x 8 block is the model's cropped output on the image's first 12 x 12 window
    window = image[:, :12, :12].transpose(1, 2, 0)[None]
    expected = model.predict({"x": window}, verbose=0)[name][0, :, :, 0]
    np.testing.assert_allclose(served[:8, :8], expected, rtol=1e-5, atol=1e-5)


def test_default_crops_larger_than_the_training_patches_train_and_predict(tmp_path):
    """OTBTF's default crops (16 ... 128) on 16 x 16 patches: the cropped outputs are empty while training,
    never an error (Keras' Cropping2D refused them)."""
    import keras

    from eotensor.model.base import ModelBase

    class Net(ModelBase):
        def normalize_inputs(self, inputs):
            return inputs

        def get_outputs(self, normalized_inputs):
            return {"y": keras.layers.Conv2D(1, 3, padding="same")(normalized_inputs["x"])}

    import tensorflow as tf

    spec = ({"x": tf.TensorSpec((None, 16, 16, 2), tf.float32)}, {"y": tf.TensorSpec((None, 16, 16, 1), tf.float32)})
    model = Net(spec)
    assert set(model.model.output) == {"y", "y_crop16", "y_crop32", "y_crop64", "y_crop96", "y_crop128"}
    model.compile(optimizer="adam", loss={"y": "mse"})
    x, y = np.ones((4, 16, 16, 2), np.float32), np.zeros((4, 16, 16, 1), np.float32)
    model.fit({"x": x}, {"y": y}, epochs=1, verbose=0)
    out = model.predict({"x": np.ones((1, 40, 40, 2), np.float32)}, verbose=0)
    assert out["y_crop16"].shape == (1, 8, 8, 1) and out["y_crop32"].shape[1] == 0


def test_metrics_per_output_train_the_model_that_exports(tmp_path):
    """OTBTF's example compiles metrics for its output: Keras 3 asks a target of every output, so training
    goes through the same layers without the crops, and the model with them predicts the trained values."""
    import keras
    import tensorflow as tf

    from eotensor.model.base import ModelBase

    class Net(ModelBase):
        def normalize_inputs(self, inputs):
            return inputs

        def get_outputs(self, normalized_inputs):
            return {"y": keras.layers.Conv2D(2, 3, padding="same", activation="softmax")(normalized_inputs["x"])}

    spec = ({"x": tf.TensorSpec((None, 16, 16, 1), tf.float32)}, {"y": tf.TensorSpec((None, 16, 16, 2), tf.float32)})
    model = Net(spec, inference_cropping=[4])
    assert set(model.training_model.output) == {"y"} and set(model.model.output) == {"y", "y_crop4"}
    model.compile(optimizer="adam", loss={"y": "categorical_crossentropy"},
                  metrics={"y": [keras.metrics.Recall(class_id=1)]})
    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[(x[..., 0] > 0.5).astype(int)]
    before = model.model.predict({"x": x}, verbose=0)["y_crop4"]
    history = model.fit({"x": x}, {"y": y}, epochs=3, verbose=0)
    assert "recall" in history.history and history.history["loss"][-1] < history.history["loss"][0]
    after = model.predict({"x": x}, verbose=0)
    assert not np.allclose(before, after["y_crop4"])
    np.testing.assert_allclose(after["y_crop4"], model.training_model.predict({"x": x}, verbose=0)["y"][:, 4:-4, 4:-4],
                               rtol=1e-6)
    assert len(model.evaluate({"x": x}, {"y": y}, verbose=0)) == 2


def test_an_attribute_set_after_super_init_is_named(tmp_path):
    import keras
    import tensorflow as tf

    from eotensor.model.base import ModelBase

    class Late(ModelBase):
        def __init__(self, spec):
            super().__init__(spec)
            self.n_classes = 3

        def get_outputs(self, normalized_inputs):
            return {"y": keras.layers.Conv2D(self.n_classes, 1)(normalized_inputs["x"])}

    with pytest.raises(AttributeError, match=r"Late.n_classes is not set when create_network runs"):
        Late(({"x": tf.TensorSpec((None, 8, 8, 2), tf.float32)},))


def test_a_saved_modelbase_trains_further_with_tensorflowmodeltrain(tmp_path):
    """ModelBase.save writes the compiled model without the crops, which TensorflowModelTrain trains; its
    model.export then has the outputs of that file (no crops): the crops come from ModelBase.export."""
    import keras

    from eotensor.apps.model_train import TensorflowModelTrain
    from eotensor.dataset import DatasetFromPatchesImages
    from eotensor.model.base import ModelBase
    from eotensor.runtimes.tensorflow import load_saved_model

    class Net(ModelBase):
        def normalize_inputs(self, inputs):
            return inputs

        def get_outputs(self, normalized_inputs):
            return {"prob": keras.layers.Conv2D(2, 1, activation="softmax", name="conv")(normalized_inputs["x"])}

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (24, 4, 4, 1)).astype(np.uint8)
    sign = labels.astype(np.float32) * 2 - 1
    pixels = np.concatenate([sign, -sign], axis=-1)
    files = {"x": [_write_patches(tmp_path / "x.tif", pixels)], "prob": [_write_patches(tmp_path / "y.tif", labels)]}
    tf_ds = DatasetFromPatchesImages(filenames_dict=files, seed=0).get_tf_dataset(batch_size=8, targets_keys=["prob"])
    keras.utils.set_random_seed(0)
    model = Net(tf_ds.element_spec, inference_cropping=[1])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss={"prob": "sparse_categorical_crossentropy"})
    model.fit(tf_ds, epochs=1, verbose=0, shuffle=False)
    model.save(str(tmp_path / "net.keras"))
    assert set(keras.saving.load_model(tmp_path / "net.keras").output) == {"prob"}

    source = dict(patchsizex=4, patchsizey=4)
    trainer = TensorflowModelTrain(
        model_dir=str(tmp_path / "net.keras"), training_source1_il=files["x"], training_source1_placeholder="x",
        training_source2_il=files["prob"], training_source2_placeholder="prob", training_batchsize=8,
        training_epochs=2, model_export=str(tmp_path / "export"), rand=0,
        **{f"training_source{n}_{k}": v for n in (1, 2) for k, v in source.items()})
    assert len(trainer.losses) == 2 and trainer.losses[-1]["loss"] < trainer.losses[0]["loss"]
    assert set(load_saved_model(tmp_path / "export").outputs) == {"prob"}
