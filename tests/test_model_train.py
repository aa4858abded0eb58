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
        (dict(model_dir=str(tmp_path / "none.keras"), training_source1_il=str(tmp_path / "none.tif")),
         "model.dir"),  # the model is loaded before the patches are read
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


def cli(args, capsys):
    """Run TensorflowModelTrain through the CLI with Python keywords; (exit status, stderr)."""
    from eotensor.apps.cli import main

    argv = [token for key, value in args.items() if value is not None
            for token in (f"-{key.replace('_', '.')}", *(value if isinstance(value, list) else [str(value)]))]
    status = main(["TensorflowModelTrain", *argv])
    return status, capsys.readouterr().err.strip()


def test_outputs_are_checked_before_any_epoch(tmp_path, data, capsys):
    """model.saveto and model.export fail at setup, not after the epochs; a directory holding more than a
    SavedModel is never replaced."""
    tf1 = build_tf1_trainable(tmp_path / "model")
    keras_model = build_keras_classifier(tmp_path / "net.keras")
    user = tmp_path / "user"
    user.mkdir()
    (user / "saved_model.pb").write_bytes(b"old")
    (user / "notes.txt").write_text("mine")
    cases = [
        (tf1_args(tf1, data, model_saveto=str(tmp_path / "nodir" / "variables")),
         f'model.saveto: cannot write "{tmp_path / "nodir" / "variables"}": the directory'),
        (keras_args(keras_model, data, model_saveto=str(tmp_path / "nodir" / "net.keras")),
         "model.saveto: cannot write"),
        (keras_args(keras_model, data, model_export=str(tmp_path / "nodir" / "export")), "model.export: cannot write"),
        (keras_args(keras_model, data, model_export=str(user)), "holds notes.txt, which is not part of a SavedModel"),
    ]
    for args, expected in cases:
        status, err = cli(dict(args, training_epochs=1000, validation_step=1), capsys)
        assert status == 1 and expected in err and "\n" not in err, err
        assert "Epoch" not in err  # not one epoch ran
    assert sorted(os.listdir(user)) == ["notes.txt", "saved_model.pb"]
    assert (user / "saved_model.pb").read_bytes() == b"old" and (user / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "nodir").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".eot-")]


def test_graph_errors_give_their_cause(tmp_path, data, capsys):
    """A label out of range: TF1 graphs and Keras models say so in one line (not "Node: ..." nor a traceback)."""
    bad = write_patches(tmp_path / "bad_y.tif", np.full((50, PS, PS, 1), 5, np.uint8))
    model = build_tf1_trainable(tmp_path / "model")
    with pytest.raises(EotensorError) as error:
        TensorflowModelTrain(**tf1_args(model, data, training_source2_il=bad, training_epochs=1))
    message = str(error.value)
    assert "the graph failed: Received a label value of 5 which is outside the valid range" in message, message
    assert "\n" not in message

    status, err = cli(keras_args(build_keras_classifier(tmp_path / "net.keras"), data, training_source2_il=bad,
                                 training_epochs=1, validation_mode="none"), capsys)
    assert status == 1 and "\n" not in err, err
    assert err.startswith("TensorflowModelTrain: error: model.dir") and "Received a label value of 5" in err, err


def test_validation_roles_are_checked_at_setup(tmp_path, data):
    """A validation source renamed into an output leaves a model input unfed; an output of other channels than
    the reference bands cannot be compared: both fail at setup, naming validation.sourceN.name."""
    tf1 = build_tf1_trainable(tmp_path / "model")
    keras_model = build_keras_classifier(tmp_path / "net.keras")
    cases = [
        (tf1_args(tf1, data, validation_source1_name="loss"),
         'validation.source1.name: output "loss" needs model input(s) x, y, which validation does not feed'),
        (keras_args(keras_model, data, validation_source1_name="label", validation_source2_name="prob"),
         'validation.source1.name: "label" leaves model input "x" (fed by training.source1) without a source'),
        (keras_args(keras_model, data, validation_source2_name=None),  # compares "prob" (2 channels) with labels
         'validation.source2.name: output "prob" has 2 channels but validation.source2.il has 1 band(s)'),
    ]
    for args, expected in cases:
        with pytest.raises(EotensorError) as error:
            TensorflowModelTrain(**{k: v for k, v in args.items() if v is not None})
        assert expected in str(error.value) and "\n" not in str(error.value), str(error.value)


def build_tf1_counter(path, samples, epochs):
    """A TF1 graph that counts, per epoch, how often each sample is fed: input ``x`` (float32 patches whose
    pixels hold the sample's index), an unused input ``ref``; node ``record`` adds one to ``hits[epoch, index]``
    for every patch of the batch (the epoch is ``seen // samples``, ``seen`` the patches fed before); outputs
    ``half`` (every other pixel of ``x``, a quarter of its values) and ``same`` (``x``)."""
    from models import _tf

    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1], name="x")
        ref = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1], name="ref")
        hits = tf.compat.v1.get_variable("hits", [epochs, samples], tf.int32, tf.compat.v1.zeros_initializer())
        seen = tf.compat.v1.get_variable("seen", [], tf.int32, tf.compat.v1.zeros_initializer())
        ids = tf.cast(x[:, 0, 0, 0], tf.int32)
        epoch = tf.fill(tf.shape(ids), seen.read_value() // samples)
        update = hits.scatter_nd_add(tf.stack([epoch, ids], axis=1), tf.ones_like(ids))
        with tf.control_dependencies([update]):
            tf.group(seen.assign_add(tf.shape(ids)[0]), name="record")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.saved_model.simple_save(session, os.fspath(path), inputs={"x": x, "ref": ref},
                                                 outputs={"half": x[:, ::2, ::2, 0], "same": tf.identity(x)})
    return os.fspath(path)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """50 patches whose pixels hold their index, and 50 zero patches."""
    root = tmp_path_factory.mktemp("indexed")
    ids = np.broadcast_to(np.arange(50, dtype=np.float32)[:, None, None, None], (50, PS, PS, 1))
    return (write_patches(root / "ids.tif", np.ascontiguousarray(ids)),
            write_patches(root / "zeros.tif", np.zeros((50, PS, PS, 1), np.float32)))


def counter_args(model, files, **extra):
    ids, zeros = files
    args = dict(model_dir=model, training_source1_il=ids, training_source1_patchsizex=PS,
                training_source1_patchsizey=PS, training_source1_placeholder="x", training_source2_il=zeros,
                training_source2_patchsizex=PS, training_source2_patchsizey=PS, training_source2_placeholder="ref",
                training_targetnodes="record", training_batchsize=16, training_epochs=3, rand=1)
    args.update(extra)
    return args


def test_each_sample_exactly_once_per_epoch(tmp_path, indexed):
    from tensorflow.train import load_checkpoint

    for streaming in (False, True):
        model = build_tf1_counter(tmp_path / f"model{streaming}", 50, 3)
        prefix = str(tmp_path / f"ckpt{streaming}")
        TensorflowModelTrain(**counter_args(model, indexed, training_usestreaming=streaming, model_saveto=prefix))
        hits = load_checkpoint(prefix).get_tensor("hits")
        np.testing.assert_array_equal(hits, np.ones((3, 50), np.int32))


def test_size_error_in_the_training_pass_names_the_validation_parameter(tmp_path, indexed):
    model = build_tf1_counter(tmp_path / "model", 50, 1)
    ids, zeros = indexed
    args = counter_args(model, indexed, training_epochs=1, validation_mode="rmse", validation_step=1,
                        validation_source1_il=ids, validation_source2_il=zeros, validation_source2_name="half")
    with pytest.raises(EotensorError, match=r'^validation.source2.name: output "half" gives 64 values for 16 '
                                            r"patches but the reference patches hold 256"):
        TensorflowModelTrain(**args)
    trainer = TensorflowModelTrain(**dict(args, validation_source2_name="same"))  # the same sizes: compared
    assert trainer.reports[0].dataset == "training" and trainer.reports[0].metrics["same"].count == 50 * PS * PS


def test_seed_above_32_bits_is_a_parameter_error(tmp_path, data):
    model = build_keras_classifier(tmp_path / "net.keras")  # Keras refuses such seeds with a ValueError
    with pytest.raises(EotensorError, match="^-rand ") as error:
        TensorflowModelTrain(**keras_args(model, data, rand=2**32, training_epochs=1, validation_mode="none"))
    assert "\n" not in str(error.value)


def test_the_app_object_trains_from_python_as_the_function_does(tmp_path, data):
    import eotensor as eot
    from eotensor.apps.model_train import APP

    for call in (APP, eot.TensorflowModelTrain):
        model = build_tf1_trainable(tmp_path / f"model{len(os.listdir(tmp_path))}")
        trainer = call(**tf1_args(model, data, training_epochs=2, validation_step=2))
        assert len(trainer.losses) == 2 and [r.epoch for r in trainer.reports] == [2, 2]
        assert trainer.session._closed
