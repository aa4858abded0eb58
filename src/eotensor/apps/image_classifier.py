"""ImageClassifier: OTB's pixel-wise classification of an image by a trained classifier, streamed.

The table below is the app (OTB 8.1's keys); :func:`build` loads the model file (checked: ours, unchanged,
trusted types only) and returns the lazy map (:class:`~eotensor.classify.predict.Classification`), :func:`write`
streams the labels (and the confidence map) through the pipelined executor in one pass. ImageClassifierFromDeepFeatures
mounts :data:`SHARED` and classifies a served model's output instead of a file.
"""

from __future__ import annotations

import sys
from typing import Any

from eotensor.apps import options
from eotensor.apps.params import App, Kind, Param, Values, run_python

NOTES = """\
The model is a file written by TrainImagesClassifier (or TrainClassifierFromDeepFeatures): skops with its
.json sidecar; a changed file, another format version, or a file naming types eotensor does not trust is
refused before anything in it runs. Features are normalised with -imstat, or else with the statistics the
model was trained with (recorded in its sidecar). Pixels where -mask is 0, and pixels with a NaN or infinite
feature, get -nodatalabel (confidence 0).
The confidence is the probability of the predicted label (the largest one but for sgd's modified_huber; libsvm
needs -classifier.libsvm.prob on at training); the labels are the same with or without -confmap.
Tiles come from -ram (default: OTB_MAX_RAM_HINT or 256 MB) and never change a result."""

SHARED = (
    Param("model", Kind.FILE, "Classifier model file (TrainImagesClassifier's -io.out).", mandatory=True),
    Param("imstat", Kind.FILE, "Statistics XML to normalise the features (default: the model's own, if any)."),
    Param("nodatalabel", Kind.INT, "Label of the pixels the mask excludes.", 0),
    Param("out", Kind.OUTPUT_IMAGE, "Output label image, then an optional pixel type (default uint8).",
          mandatory=True, pixel_type="uint8"),
    Param("confmap", Kind.OUTPUT_IMAGE, "Confidence map (probability of the label), then an optional pixel type "
          "(default double).", pixel_type="double"),
    options.ram(),
)
"""The rows ImageClassifierFromDeepFeatures shares."""

PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Input image (its bands are the features); a Python result is accepted.",
          mandatory=True),
    Param("mask", Kind.INPUT_IMAGE, "Mask: pixels where its first band is 0 are not classified."),
    *SHARED,
)


def classification(features: Any, values: Values, mask: Any = None, param: str = "in") -> Any:
    """The lazy map of ``features`` with the shared rows' ``values`` (``model``, ``imstat``, ``nodatalabel``,
    ``confmap``)."""
    from eotensor.classify.models import load_classifier
    from eotensor.classify.predict import Classification, open_mask
    from eotensor.classify.statistics import Normalisation

    model = load_classifier(values["model"], "model")
    norm = Normalisation.read(values["imstat"], "imstat") if values.get("imstat") else None
    if norm is None and model.normalisation is not None:
        print(f'note: imstat: using the statistics "{model.normalisation.path}" recorded with the model',
              file=sys.stderr)
    return Classification(features, model, values["model"], norm, open_mask(mask), values["nodatalabel"],
                          values.get("confmap") is not None, param)


def build(values: Values) -> Any:
    """Open the image and the model; the lazy classification map (nothing computed yet)."""
    from eotensor.lazy import LazyRaster, open

    image = values["in"]
    features = image if isinstance(image, LazyRaster) else open(image, ram_mb=values["ram"])
    return classification(features, values, values.get("mask"))


def write(result: Any, values: Values, progress: bool = False, resume: bool = False) -> list[str]:
    """Stream the labels to ``out`` (and the confidence to ``confmap``) in one pass; return the paths
    (``resume``: a resumable run, see :mod:`eotensor.engine.resume`)."""
    from eotensor.lazy import write as write_all

    out = values["out"]
    outputs: dict[str, Any] = {out.path: (result[0], out.pixel_type)}
    if values.get("confmap") is not None:
        outputs[values["confmap"].path] = (result[1], values["confmap"].pixel_type)
    paths = write_all(outputs, progress, resume=resume)
    if progress:
        print(f"wrote {', '.join(paths)} ({result.grid.width}x{result.grid.height} pixels)", file=sys.stderr)
    return paths


APP = App(
    name="ImageClassifier",
    description="Classify every pixel of an image with a trained classifier (labels, confidence), streamed.",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def ImageClassifier(options: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Run ImageClassifier from Python with OTB keys: ``in_=``, ``model=``, ``imstat=``, ``mask=``, ``out=``,
    ``confmap=``. Without ``out`` nothing is written and the lazy map is returned (band 1 labels, band 2 the
    confidence when ``confmap`` is given)."""
    return run_python(APP, options, **kwargs)
