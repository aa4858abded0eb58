"""ImageClassifierFromDeepFeatures: OTBTF's composite app — ImageClassifier over a served model's output, in
memory.

Its table mounts TensorflowModelServe's ``source{n}.*``, ``model.*`` (renamed ``deepmodel.*``, as OTBTF does,
since ``model`` is the classifier file), ``output.*`` and ``optim.*`` rows, and ImageClassifier's ``model``,
``imstat``, ``nodatalabel``, ``out``, ``confmap`` and ``ram`` (:func:`~eotensor.apps.params.share`). The map is a
lazy result over the served result: each tile of features is computed, classified and written, never stored.
"""

from __future__ import annotations

from typing import Any

from eotensor.apps import image_classifier, model_serve
from eotensor.apps.params import App, Values, run_python, share

PARAMS = (
    share(model_serve.PARAMS, "tfmodel", {"model": "deepmodel"}, only=("source", "model", "output", "optim")),
    share(image_classifier.SHARED, "classif"),
)

NOTES = f"""\
The features are the served model's output (sourceN, deepmodel, output, optim: as TensorflowModelServe's
model.*), computed tile by tile and classified as they come; the tiles are the served model's own. The memory
goes mostly to the served tiles kept for the classifier (up to 2 x -optim.ram): -optim.ram bounds it, -ram is
the classifier's own budget, as in OTBTF. Labels and confidence are written in one pass from one prediction.

{image_classifier.SHARED_NOTES}"""


def build(values: Values) -> Any:
    """Bind the deep model to its sources and the classifier to its output: the lazy map."""
    features = model_serve.build(values.part("tfmodel"))
    return image_classifier.classification(features, values.part("classif"), None, "the features (model output)")


def write(result: Any, values: Values, progress: bool = False) -> list[str]:
    """Stream the labels to ``out`` (and the confidence to ``confmap``) in one pass."""
    return image_classifier.write(result, values.part("classif"), progress, values.part("tfmodel")["optim.resume"])


APP = App(
    name="ImageClassifierFromDeepFeatures",
    description="Classify every pixel of a served model's output with a trained classifier (OTBTF's), streamed.",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def ImageClassifierFromDeepFeatures(options: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Run ImageClassifierFromDeepFeatures from Python: ``source1_il=``, ``deepmodel_dir=``,
    ``deepmodel_fullyconv=``, ``output_names=``, ``model=`` (the classifier), ``out=``, ``confmap=`` ...
    Without ``out`` the lazy map is returned."""
    return run_python(APP, options, **kwargs)
