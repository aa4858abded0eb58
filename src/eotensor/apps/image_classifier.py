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

SHARED_NOTES = """\
The model is a file written by TrainImagesClassifier (or TrainClassifierFromDeepFeatures): skops with its
.json sidecar; a changed file, another format version, or a file naming types eotensor does not trust is
refused before anything in it runs. Features are normalised with -imstat, or else with the statistics the
model was trained with (recorded in its sidecar). Pixels with a NaN or infinite feature get -nodatalabel
(confidence 0). The confidence is the probability of the predicted label (the largest one but for sgd's
modified_huber; a libsvm model needs classifier.libsvm.prob on at training); the labels are the same with or
without -confmap."""
"""The notes on the rows of :data:`SHARED`, which ImageClassifierFromDeepFeatures shows too."""

NOTES = f"""\
{SHARED_NOTES}
Pixels where -mask is below 1 (0, as OTB reads masks as uint8) get -nodatalabel as well (confidence and
probabilities 0). The mask must be on the image's grid: same size (as OTB checks), same CRS and transform
(eotensor never resamples).
-probamap (OTB's, there for its Shark random forest only; here any classifier with probabilities) writes one
band per class, classes ascending (band descriptions "class 7"...), the probability x 1000 (OTB's scale:
uint16 by default, truncated); -nbclasses sets the bands as OTB does (extra bands 0, fewer keep the smallest
classes), but defaults to the model's classes (OTB's default, 20, pads with zero bands). Labels, confidence
and probabilities are written in one pass from one prediction.
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

PROBAMAP = (
    Param("probamap", Kind.OUTPUT_IMAGE, "Probability map: one band per class (classes ascending), the probability "
          "in per mille (x 1000, as OTB), then an optional pixel type (default uint16).", pixel_type="uint16"),
    Param("nbclasses", Kind.INT, "Bands of the probability map (OTB's; default here: the model's classes; extra "
          "bands are 0, fewer keep the smallest classes).", minimum=1),
)
"""ImageClassifier's own outputs (OTBTF's ImageClassifierFromDeepFeatures does not share them)."""

PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Input image (its bands are the features); a Python result is accepted.",
          mandatory=True),
    Param("mask", Kind.INPUT_IMAGE, "Mask on the image's grid: pixels where its first band is below 1 (0 as OTB's "
          "uint8 mask) are not classified."),
    *SHARED[:-1],
    *PROBAMAP,
    SHARED[-1],
)


def classification(features: Any, values: Values, mask: Any = None, param: str = "in") -> Any:
    """The lazy map of ``features`` with the shared rows' ``values`` (``model``, ``imstat``, ``nodatalabel``,
    ``confmap``, and ImageClassifier's ``probamap``, ``nbclasses`` when present)."""
    from eotensor.classify.models import load_classifier
    from eotensor.classify.predict import Classification, open_mask
    from eotensor.classify.statistics import Normalisation

    model = load_classifier(values["model"], "model")
    norm = Normalisation.read(values["imstat"], "imstat") if values.get("imstat") else None
    if norm is None and model.normalisation is not None:
        print(f'note: imstat: using the statistics "{model.normalisation.path}" recorded with the model',
              file=sys.stderr)
    bands = 0
    if values.get("probamap") is not None:
        bands = values.get("nbclasses") or len(model.classes)
        if bands < len(model.classes):
            print(f"warning: nbclasses: {bands} but the model has {len(model.classes)} classes; the probability map "
                  f"holds the {bands} smallest ({', '.join(map(str, model.classes[:bands].tolist()))})",
                  file=sys.stderr)
    return Classification(features, model, values["model"], norm, open_mask(mask), values["nodatalabel"],
                          values.get("confmap") is not None, param, probabilities=bands)


def build(values: Values) -> Any:
    """Open the image and the model; the lazy classification map (nothing computed yet)."""
    from eotensor.lazy import LazyRaster, open

    image = values["in"]
    features = image if isinstance(image, LazyRaster) else open(image, ram_mb=values["ram"])
    return classification(features, values, values.get("mask"))


def write(result: Any, values: Values, progress: bool = False, resume: bool = False) -> list[str]:
    """Stream the labels to ``out`` (the confidence to ``confmap``, the probabilities to ``probamap``) in one
    pass over one prediction: the outputs are bands of one lazy map, on one grid; return the paths (``resume``:
    a resumable run, see :mod:`eotensor.engine.resume`)."""
    from eotensor.lazy import write as write_all

    out = values["out"]
    outputs: dict[str, Any] = {out.path: (result[0], out.pixel_type)}
    if values.get("confmap") is not None:
        outputs[values["confmap"].path] = (result[1], values["confmap"].pixel_type)
    if values.get("probamap") is not None:
        first = 1 + result.confidence
        outputs[values["probamap"].path] = (result[first:first + result.probabilities], values["probamap"].pixel_type)
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
    ``confmap=``, ``probamap=``, ``nbclasses=``. Without ``out`` nothing is written and the lazy map is returned
    (band 1 labels, then the confidence when ``confmap`` is given, then the probabilities when ``probamap``
    is)."""
    return run_python(APP, options, **kwargs)
