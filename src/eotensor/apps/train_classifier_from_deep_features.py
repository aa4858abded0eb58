"""TrainClassifierFromDeepFeatures: OTBTF's composite app — a served model's output, in memory, as the image of
TrainImagesClassifier.

Its table mounts TensorflowModelServe's ``source{n}.*``, ``model.*``, ``output.*`` and ``optim.*`` rows and
TrainImagesClassifier's rows with OTBTF's spellings (``vd``, ``valid``, ``out``, ``confmatout`` without ``io.``;
``sample.*``, ``classifier.*``, ``rand``, ``ram``, ``elev.*``), all defined once in their own apps
(:func:`~eotensor.apps.params.share`). :func:`build` binds the model lazily and hands its result to the training:
samples read only the tiles of the features that hold them, and no feature file is ever written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eotensor.apps import model_serve
from eotensor.apps import train_images_classifier as train
from eotensor.apps.params import App, Values, run_python, share

RENAMES = {"io.vd": "vd", "io.valid": "valid", "io.out": "out", "io.confmatout": "confmatout"}
"""TrainImagesClassifier's keys as OTBTF's composite spells them."""

IO_ROWS = tuple(dataclasses.replace(row, key=f"io.{row.key}") for row in train.IO_SHARED)
"""TrainImagesClassifier's shared ``io`` rows under their full keys (so that the renames show in ``-help`` too)."""

PARAMS = (
    share(model_serve.PARAMS, "tfmodel", only=("source", "model", "output", "optim")),
    share((*IO_ROWS, *train.SHARED), "train", RENAMES),
)

NOTES = f"""\
The features are the served model's output (sourceN, model, output, optim: as TensorflowModelServe),
computed tile by tile where the training geometries lie, never written. Typical use: a fully-convolutional
model's features output with large tiles (-optim.tilesizex 999999 -optim.tilesizey 128).

{train.NOTES}"""


def build(values: Values) -> train.Training:
    """Bind the model to its sources (lazily) and prepare the training on its output."""
    features = model_serve.build(values.part("tfmodel"))
    config = train.TrainConfig.from_values(values.part("train"))
    keys = {old: new for old, new in zip(("vd", "valid", "out", "confmatout"), RENAMES.values())}
    return train.Training(config, [features], ["the served model's output"],
                          keys={**keys, "il": "the features (model output)", "imstat": "imstat"})


def write(training: train.Training, values: Values, progress: bool = False) -> str | None:
    """Train on the features, write the model (and the confusion CSV), print the measures on the command line."""
    return train.write(training, values, progress)


APP = App(
    name="TrainClassifierFromDeepFeatures",
    description="Train a classifier (scikit-learn) on a served model's output under labelled geometries (OTBTF's).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def TrainClassifierFromDeepFeatures(options: dict[str, Any] | None = None,  # noqa: N802
                                    **kwargs: Any) -> train.Training:
    """Run TrainClassifierFromDeepFeatures from Python: ``source1_il=``, ``source1_rfieldx=``, ``model_dir=``,
    ``model_fullyconv=``, ``output_names=``, ``vd=``, ``sample_vfn=``, ``classifier="rf"``, ``out=`` ...
    With ``out`` the model is trained and written; without it the :class:`~eotensor.apps.train_images_classifier.
    Training` is returned (trains on first use)."""
    return run_python(APP, options, **kwargs)
