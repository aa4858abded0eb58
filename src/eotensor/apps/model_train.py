"""TensorflowModelTrain: OTBTF's training app, parameter for parameter, for TF1 graphs and Keras 3 models.

The table below is the app; :func:`build` reads the values into :class:`~eotensor.training.TrainOptions` and makes
the trainer (models loaded, outputs and patches checked, patches read, nothing trained yet); :func:`write` trains,
validates and saves. The trainers live in :mod:`eotensor.training`.

No parameter is an output file (``model.saveto`` is a checkpoint prefix, as in OTBTF), so the generic Python call
of an app (which writes only when an output is given) would stop after :func:`build`: ``APP(...)`` always trains.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Group, Kind, Param, Repeat, Values, parse_python

if TYPE_CHECKING:
    from eotensor.training import Trainer

NOTES = """\
TF1 graphs (a SavedModel directory): every batch feeds training.sourceN to the signature input its placeholder
names, with training.userplaceholders, and runs training.targetnodes (graph node names, e.g. optimizer);
model.saveto <model.dir>/variables/variables writes the trained variables back into the SavedModel, which
TensorflowModelServe then serves (inputs used only for training, such as labels, may stay unfed).
Keras 3 (a .keras file saved compiled): a source whose placeholder names a model input is an input, one that
names a model output is that output's target; the model is trained with fit, saved with model.saveto (a .keras
path) and exported as a SavedModel with model.export.
Epochs use every sample once (ceil(N / B) batches), shuffled; -rand makes the order reproducible.
Validation (validation.mode class or rmse, every validation.step epochs) runs on the training data, then on the
validation data: validation.sourceN.name, when it differs from the training placeholder, names the output that
source's patches are compared with (class: confusion matrix, per-class precision/recall/F-score, kappa, overall
accuracy; rmse: root mean square error).
Environment: OTB_TF_NSOURCES (number of sources, when higher than the keys given; training and validation get
one more, for the labels)."""

_MODES = (
    Choice("none", "no validation"),
    Choice("class", "confusion matrix, per-class precision, recall and F-score, kappa and overall accuracy"),
    Choice("rmse", "root mean square error of each compared output"),
)

PARAMS = (
    Group("model", "The model to train and where it goes.", (
        Param("dir", Kind.FILE, "The model: a TF1 graph SavedModel directory (with a saver and training ops), or a "
              "Keras 3 .keras file saved compiled.", mandatory=True),
        Param("restorefrom", Kind.STRING, "TF1: checkpoint prefix to restore the variables from before training."),
        Param("saveto", Kind.STRING, "Where the trained model goes. TF1: a checkpoint prefix, typically "
              "<model.dir>/variables/variables; Keras: a .keras file."),
        Param("tagsets", Kind.STRING_LIST, "SavedModel tag set (default: serve)."),
        Param("export", Kind.STRING, "Keras: a directory to export the trained model to, as a SavedModel ready to "
              "serve."),
    )),
    Group("training", "Training parameters.", (
        Param("batchsize", Kind.INT, "Patches per batch (validation too).", 100, minimum=1),
        Param("epochs", Kind.INT, "Number of epochs.", 100, minimum=1),
        Param("userplaceholders", Kind.STRING_LIST, 'Constant inputs while training: name=value, e.g. '
              '"is_training=true" "lr=0.0002".'),
        Param("targetnodes", Kind.STRING_LIST, "TF1: the graph nodes run on every batch (e.g. optimizer); "
              "mandatory for TF1 graphs."),
        Param("outputtensors", Kind.STRING_LIST, "TF1: signature outputs fetched on every batch; their mean per "
              "epoch is logged (e.g. loss)."),
        Param("usestreaming", Kind.BOOL, "Read each patch when needed instead of loading every patch first.", False),
        options.sources(
            Param("patchsizex", Kind.INT, "Patch width of source N (its patches images' width).", mandatory=True,
                  minimum=1),
            Param("patchsizey", Kind.INT, "Patch height of source N.", mandatory=True, minimum=1),
            Param("placeholder", Kind.STRING, "The model input source N feeds (Keras: or the output it is the target "
                  "of).", mandatory=True),
            help="Training source N: patches images (stacked on bands), their patch size and the tensor they feed.",
            extra=1),
    )),
    Group("validation", "Validation, every validation.step epochs, on the training then the validation data.", (
        Param("step", Kind.INT, "Validate every this many epochs.", 10, minimum=1),
        Param("mode", Kind.CHOICE, "What to measure.", "none", choices=_MODES),
        Param("userplaceholders", Kind.STRING_LIST, 'Constant inputs while validating, e.g. "is_training=false".'),
        Param("usestreaming", Kind.BOOL, "Read each validation patch when needed.", False),
        Repeat("source", "Validation source N: patches images matching training source N.", (
            Param("il", Kind.FILE_LIST, "Validation patches images of source N (mandatory when validating)."),
            Param("name", Kind.STRING, "The tensor of source N: empty or the training placeholder: an input; another "
                  "name: the output compared with source N's patches."),
        ), extra=1),
    )),
    Param("rand", Kind.INT, "Seed of the shuffling (and of Keras' random operations): the same seed, the same run.",
          minimum=0, maximum=2**32 - 1),
)


def options_from(values: Values) -> Any:
    """Read ``values`` into :class:`~eotensor.training.TrainOptions`."""
    from eotensor.training import PatchSource, TrainOptions

    def given(key: str) -> tuple[str, ...]:
        return tuple(values[key] or ())

    training = tuple(
        PatchSource(f"training.source{n}", given(f"training.source{n}.il"),
                    (values[f"training.source{n}.patchsizex"], values[f"training.source{n}.patchsizey"]),
                    values[f"training.source{n}.placeholder"])
        for n in range(1, values.count("training.source") + 1))
    validation = tuple(
        PatchSource(f"validation.source{n}", given(f"validation.source{n}.il"),
                    training[n - 1].patch_size if n <= len(training) else (1, 1),
                    values[f"validation.source{n}.name"] or "")
        for n in range(1, values.count("validation.source") + 1))
    return TrainOptions(
        model=str(values["model.dir"]), training=training, validation=validation, tags=given("model.tagsets"),
        restore_from=values["model.restorefrom"] or None, save_to=values["model.saveto"] or None,
        export=values["model.export"] or None, batch_size=values["training.batchsize"],
        epochs=values["training.epochs"], user_placeholders=given("training.userplaceholders"),
        target_nodes=given("training.targetnodes"), output_tensors=given("training.outputtensors"),
        streaming=values["training.usestreaming"], validation_step=values["validation.step"],
        validation_mode=values["validation.mode"], validation_placeholders=given("validation.userplaceholders"),
        validation_streaming=values["validation.usestreaming"], seed=values["rand"])


def build(values: Values) -> Trainer:
    """The trainer: model loaded, sources checked and read; nothing trained yet."""
    from eotensor.training import make_trainer

    return make_trainer(options_from(values))


def write(result: Trainer, values: Values, progress: bool = False) -> list[str]:
    """Train, validate and save; with ``progress``, the epochs and metrics are logged on stderr."""
    if progress:
        result.log = lambda line: print(line, file=sys.stderr, flush=True)
    try:
        result.train()
        return result.save()
    finally:
        result.close()


class TrainingApp(App):
    """An app whose work is training: called from Python it builds, trains and saves, like the command line."""

    def __call__(self, options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.run(parse_python(self, options, **kwargs))


APP = TrainingApp(
    name="TensorflowModelTrain",
    description="Train a TF1 graph SavedModel or a Keras 3 model on patches images (OTBTF's training app).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def TensorflowModelTrain(options: dict[str, Any] | None = None, **kwargs: Any) -> Trainer:  # noqa: N802
    """Train from Python with OTB keys (``model_dir=...``, ``training_source1_il=[...]``); returns the trainer,
    whose ``reports`` hold the validation metrics and ``losses`` the logged means per epoch."""
    return APP(options, **kwargs)
