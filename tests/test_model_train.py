"""TensorflowModelTrain: TF1 graphs and Keras 3 models trained on generated patches images, then served."""

import os

import numpy as np
import pytest
import rasterio

from eotensor.apps.model_serve import TensorflowModelServe
from eotensor.apps.model_train import TensorflowModelTrain
from eotensor.errors import EotensorError
from eotensor.metrics import ConfusionMatrix
from eotensor.testing import write_raster
from models import build_tf1_trainable

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PS = 4
"""Patch size (x and y) of the generated patches."""


def separable(n, seed, channels=2):
    """``n`` patches of per-pixel classes 0/1 and their 2-band pixels: (1, -1) for class 1, (-1, 1) for 0, noisy."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (n, PS, PS, 1)).astype(np.uint8)
    sign = labels.astype(np.float32) * 2 - 1
    pixels = np.concatenate([sign, -sign], axis=-1) + rng.normal(0, 0.3, (n, PS, PS, channels)).astype(np.float32)
    return pixels, labels


def write_patches(path, patches, dtype=None):
    """Patches ``(n, psy, psx, bands)`` as a patches image: one patch wide, stacked on rows."""
    n, psy, psx, bands = patches.shape
    return write_raster(path, patches.reshape(n * psy, psx, bands).transpose(2, 0, 1), dtype=dtype)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("patches")
    files = {}
    for name, n, seed in (("train", 50, 1), ("valid", 20, 2)):
        pixels, labels = separable(n, seed)
        files[name] = (write_patches(root / f"{name}_x.tif", pixels), write_patches(root / f"{name}_y.tif", labels))
    return files


def tf1_args(model, data, **extra):
    """The keywords of a TF1 run on ``data``: x and labels, Adam's node, validation by class."""
    (tx, ty), (vx, vy) = data["train"], data["valid"]
    args = dict(model_dir=model, training_source1_il=tx, training_source1_patchsizex=PS, training_source1_patchsizey=PS,
                training_source1_placeholder="x", training_source2_il=ty, training_source2_patchsizex=PS,
                training_source2_patchsizey=PS, training_source2_placeholder="y", training_targetnodes="optimizer",
                training_userplaceholders="lr=0.1", training_batchsize=16, training_epochs=8,
                validation_mode="class", validation_step=4, validation_source1_il=vx, validation_source2_il=vy,
                validation_source2_name="prediction", rand=7)
    args.update(extra)
    return args


def variables(model):
    from tensorflow.train import load_checkpoint

    reader = load_checkpoint(os.path.join(model, "variables", "variables"))
    return {name: reader.get_tensor(name) for name in ("kernel", "bias", "seen")}


def test_tf1_graph_trains_saves_and_serves(tmp_path, data):
    model = build_tf1_trainable(tmp_path / "model")
    before = variables(model)
    trainer = TensorflowModelTrain(**tf1_args(model, data, model_saveto=os.path.join(model, "variables", "variables")))
    reports = trainer.reports
    assert [(r.epoch, r.dataset) for r in reports] == [(4, "training"), (4, "validation"), (8, "training"),
                                                        (8, "validation")]
    final = reports[-1].metrics["prediction"]
    assert isinstance(final, ConfusionMatrix)
    assert final.total == 20 * PS * PS  # every validation pixel, once
    assert final.overall_accuracy > 0.95 and final.kappa > 0.9
    after = variables(model)
    assert not np.allclose(before["kernel"], after["kernel"])
    assert before["seen"] == 0 and after["seen"] == 0  # "count" was not a target node
    assert not any(f.startswith(".eot-") for f in os.listdir(os.path.join(model, "variables")))

    # the trained graph serves with its training-only inputs (y, lr) unfed
    pixels, labels = separable(1, 3)
    image = write_raster(tmp_path / "scene.tif", pixels[0].transpose(2, 0, 1))
    out = tmp_path / "map.tif"
    TensorflowModelServe(source1_il=image, source1_placeholder="x", model_dir=model, model_fullyconv=True,
                         output_names="prediction", out=(str(out), "uint8"))
    with rasterio.open(out) as ds:
        served = ds.read(1)
    assert (served == labels[0, ..., 0]).mean() > 0.9


def test_tf1_restorefrom_and_seed(tmp_path, data):
    model = build_tf1_trainable(tmp_path / "model")
    from tensorflow.train import load_checkpoint

    kernels = []
    for n, seed in enumerate((5, 5, 6)):  # the same seed, the same batches, the same variables; another seed, others
        TensorflowModelTrain(**tf1_args(model, data, training_epochs=1, validation_mode="none", rand=seed,
                                        model_saveto=str(tmp_path / f"seed{n}")))
        kernels.append(load_checkpoint(str(tmp_path / f"seed{n}")).get_tensor("kernel"))
    assert np.array_equal(kernels[0], kernels[1]) and not np.array_equal(kernels[0], kernels[2])
    # a checkpoint of the trained variables, restored into the untrained model, gives the trained accuracy
    ckpt = str(tmp_path / "ckpt")
    trained = TensorflowModelTrain(**tf1_args(model, data, model_saveto=ckpt))
    restored = TensorflowModelTrain(**tf1_args(model, data, model_restorefrom=ckpt, training_epochs=1,
                                               validation_step=1, training_userplaceholders="lr=0.0"))
    assert trained.reports[-1].metrics["prediction"].overall_accuracy > 0.95
    assert restored.reports[-1].metrics["prediction"] == trained.reports[-1].metrics["prediction"]


def test_every_sample_each_epoch_streaming_equals_in_memory(tmp_path, data):
    """50 samples in batches of 16: 4 batches (the last of 2), not OTBTF's 3; streaming reads the same batches."""
    results = []
    for streaming in (False, True):
        model = build_tf1_trainable(tmp_path / f"model{streaming}")
        prefix = str(tmp_path / f"ckpt{streaming}")
        trainer = TensorflowModelTrain(**tf1_args(model, data, training_targetnodes=["optimizer", "count"],
                                                  training_epochs=3, validation_step=3, training_usestreaming=streaming,
                                                  validation_usestreaming=streaming, model_saveto=prefix))
        from tensorflow.train import load_checkpoint

        reader = load_checkpoint(prefix)
        assert reader.get_tensor("seen") == 3 * 50
        results.append((reader.get_tensor("kernel"), trainer.reports[-1].metrics["prediction"].counts))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_validation_none_does_nothing_and_bands_stack(tmp_path, data):
    tx = data["train"][0]
    model = build_tf1_trainable(tmp_path / "model", channels=3)
    with rasterio.open(tx) as ds:
        extra = write_raster(tmp_path / "band3.tif", ds.read(1)[None])
    args = tf1_args(model, data, training_source1_il=[tx, extra], validation_mode="none", training_epochs=1)
    del args["validation_source1_il"], args["validation_source2_il"]
    trainer = TensorflowModelTrain(**args)
    assert trainer.reports == [] and len(trainer.losses) == 1
    # three bands for a 2-channel input
    with pytest.raises(EotensorError, match='training.source1.il: 3 band.* but tensor "x" has 2 channels') as error:
        TensorflowModelTrain(**tf1_args(build_tf1_trainable(tmp_path / "two"), data,
                                        training_source1_il=[tx, extra], training_epochs=1))
    assert "\n" not in str(error.value)


def test_served_output_that_needs_a_training_input_is_an_error(tmp_path):
    model = build_tf1_trainable(tmp_path / "model")
    image = write_raster(tmp_path / "scene.tif", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(EotensorError, match='output "loss" needs unfed input\\(s\\) y \\(fed: x\\)'):
        TensorflowModelServe(source1_il=image, source1_placeholder="x", model_dir=model, model_fullyconv=True,
                             output_names="loss", out=str(tmp_path / "loss.tif"))
    assert not (tmp_path / "loss.tif").exists()


def test_tf1_cli_logs_metrics(tmp_path, data, capsys):
    from eotensor.apps.cli import main

    model = build_tf1_trainable(tmp_path / "model")
    args = tf1_args(model, data, training_outputtensors="loss", training_epochs=2, validation_step=2)
    argv = [token for key, value in args.items() for token in (f"-{key.replace('_', '.')}", str(value))]
    assert main(["TensorflowModelTrain", *argv]) == 0
    err = capsys.readouterr().err
    assert "Epoch 1/2: loss = " in err and "Epoch 2/2: loss = " in err
    assert 'Epoch 2, validation data, output "prediction":' in err
    assert "Overall accuracy index:" in err and "Kappa index:" in err
    assert "Confusion matrix (rows = reference labels, columns = produced labels):" in err


def test_bad_inputs_are_one_line_errors(tmp_path, data):
    model = build_tf1_trainable(tmp_path / "model")
    short = write_patches(tmp_path / "short.tif", separable(49, 5)[1])
    wide = write_patches(tmp_path / "wide.tif", np.zeros((3, PS, PS + 1, 1), np.uint8))
    cases = [
        (dict(model_dir=str(tmp_path / "nope")), "model.dir"),
        (dict(training_source1_il=str(tmp_path / "missing.tif")), 'training.source1.il: input file'),
        (dict(training_source2_il=short), "training.source2.il holds 49 patches but training.source1.il holds 50"),
        (dict(training_source2_il=wide), "is 5 pixels wide but training.source2.patchsizex is 4"),
        (dict(training_source2_patchsizey=3), "not a multiple of training.source2.patchsizey 3"),
        (dict(training_targetnodes="optimiser"), 'node "optimiser" is not in the graph'),
        (dict(training_source2_placeholder="x"), 'model input "x" is fed twice'),
        (dict(training_userplaceholders=["lr=0.1", "lr=0.2"]), 'model input "lr" is fed twice'),
        (dict(validation_source2_il=None), "validation.source2.il: no validation patches"),
        (dict(model_restorefrom=str(tmp_path / "none")), "model.restorefrom: no checkpoint"),
        (dict(validation_source2_name="nothing"), 'tensor "nothing" is not in the model signature'),
        (dict(model_export=str(tmp_path / "exported")), "model.export: only Keras models"),
    ]
    for change, expected in cases:
        args = tf1_args(model, data)
        args.update(change)
        with pytest.raises(EotensorError) as error:
            TensorflowModelTrain(**{k: v for k, v in args.items() if v is not None})
        message = str(error.value)
        assert expected in message and "\n" not in message, (change, message)
    with pytest.raises(EotensorError, match="close names: optimizer"):
        TensorflowModelTrain(**tf1_args(model, data, training_targetnodes="optimiser"))


def build_keras_classifier(path, seed=0):
    """A compiled Keras 3 pixel classifier saved as ``.keras``: input ``x``, outputs ``prob`` (softmax, trained
    with sparse cross-entropy) and ``label`` (its argmax, int64)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from eotensor.model.layers import Argmax

    keras.utils.set_random_seed(seed)
    x = keras.Input((None, None, 2), name="x")
    prob = keras.layers.Conv2D(2, 1, activation="softmax", name="prob")(x)
    model = keras.Model({"x": x}, {"prob": prob, "label": Argmax(name="label")(prob)})
    model.compile(keras.optimizers.Adam(0.1), loss={"prob": "sparse_categorical_crossentropy"})
    model.save(path)
    return str(path)


def keras_args(model, data, **extra):
    (tx, ty), (vx, vy) = data["train"], data["valid"]
    args = dict(model_dir=model, training_source1_il=tx, training_source1_patchsizex=PS, training_source1_patchsizey=PS,
                training_source1_placeholder="x", training_source2_il=ty, training_source2_patchsizex=PS,
                training_source2_patchsizey=PS, training_source2_placeholder="prob", training_batchsize=16,
                training_epochs=6, validation_mode="class", validation_step=3, validation_source1_il=vx,
                validation_source2_il=vy, validation_source2_name="label", rand=3)
    args.update(extra)
    return args


def test_keras_trains_saves_exports_and_serves(tmp_path, data):
    model = build_keras_classifier(tmp_path / "net.keras")
    saved, exported = tmp_path / "trained.keras", tmp_path / "export"
    trainer = TensorflowModelTrain(**keras_args(model, data, model_saveto=str(saved), model_export=str(exported)))
    assert [r.epoch for r in trainer.reports] == [3, 3, 6, 6]
    assert len(trainer.losses) == 6 and trainer.losses[-1]["loss"] < trainer.losses[0]["loss"]
    assert trainer.reports[-1].metrics["label"].overall_accuracy > 0.95
    assert saved.is_file() and (exported / "saved_model.pb").is_file()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".eot-")]

    pixels, labels = separable(1, 3)
    image = write_raster(tmp_path / "scene.tif", pixels[0].transpose(2, 0, 1))
    for served_model in (exported, saved):  # the export, through the TF runtime; the saved file, through Keras
        out = tmp_path / f"map_{served_model.name}.tif"
        TensorflowModelServe(source1_il=image, model_dir=str(served_model), model_fullyconv=True,
                             output_names="label", out=(str(out), "uint8"))
        with rasterio.open(out) as ds:
            assert (ds.read(1) == labels[0, ..., 0]).mean() > 0.9


def test_keras_rmse_validation_and_bad_inputs(tmp_path, data):
    model = build_keras_classifier(tmp_path / "net.keras")
    trainer = TensorflowModelTrain(**keras_args(model, data, training_epochs=1, validation_step=1,
                                                validation_mode="rmse"))
    stats = trainer.reports[-1].metrics["label"]
    assert stats.count == 20 * PS * PS and 0 <= stats.rmse < 1
    cases = [
        (dict(training_source2_placeholder="nothing"), '"nothing" is neither a model input'),
        (dict(training_targetnodes="optimizer"), "training.targetnodes: applies to TF1 graphs only"),
        (dict(model_saveto=str(tmp_path / "x.h5")), "must end in .keras"),
        (dict(model_dir=str(tmp_path / "none.keras")), "model.dir"),
        (dict(training_source2_placeholder="x"), 'model input "x" is fed twice'),
    ]
    for change, expected in cases:
        with pytest.raises(EotensorError) as error:
            TensorflowModelTrain(**keras_args(model, data, **change))
        assert expected in str(error.value) and "\n" not in str(error.value), (change, str(error.value))


def test_cli_error_is_one_line_and_non_zero(tmp_path, data, capsys):
    from eotensor.apps.cli import main

    model = build_tf1_trainable(tmp_path / "model")
    args = tf1_args(model, data, training_source2_il=str(tmp_path / "labels.tif"))
    argv = [token for key, value in args.items() for token in (f"-{key.replace('_', '.')}", str(value))]
    assert main(["TensorflowModelTrain", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("TensorflowModelTrain: error: training.source2.il: input file") and "\n" not in err
