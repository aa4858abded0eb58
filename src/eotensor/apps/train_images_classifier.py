"""TrainImagesClassifier: OTB's classifier training on image pixels under labelled geometries, on scikit-learn.

The table below is the app (OTB 8.1's keys); :class:`TrainConfig` reads the parsed values, :func:`build` opens
the images and vectors (training waits for the first use, :class:`Training`) and :func:`write` trains, writes the
model file (skops + JSON sidecar), the confusion matrix CSV, and prints OTB's measures. The work is
:mod:`eotensor.classify`; TrainClassifierFromDeepFeatures mounts these rows (:data:`SHARED`) and trains on a
served model's output instead of files.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Group, Kind, Param, Values, run_python

NOTES = """\
Samples (OTB 8.1's sizes): a polygon's pixels whose centre lies inside, a point's pixel, the pixels a line
touches; vectors in another CRS are reprojected. With sample.bm 1 (default) every class gets as many samples
as the smallest class has pixels (mt and mv are then not used); with sample.bm 0 the per-class total is capped
from mt, mv and vtr as OTB computes it (-1: no cap). floor(n x vtr) samples of each class go to validation,
unless io.valid gives separate validation vectors; with sample.vtr 0 and no io.valid the model is measured on
its own training samples, as OTB 8.1 does ("Training performances", io.confmatout written). Samples are drawn
at random, seeded by -rand (default 0: runs repeat); only the image blocks holding samples are read. Drawn
samples with a NaN or infinite feature are left out (one warning line per set, counts per class).
One vector file per image, or one for all.

Classifiers are scikit-learn's: rf (RandomForestClassifier: max -> max_depth, min -> min_samples_split,
var -> max_features, 0 = sqrt; nbtrees -> n_estimators), libsvm (SVC/NuSVC), knn, dt, boost (AdaBoost of
depth-m trees), bayes (GaussianNB), ann (MLPClassifier), and sgd (SGDClassifier, no OTB peer). Keys with no
scikit-learn meaning (rf.ra, rf.cat, rf.acc, dt.ra/cat/r/t, boost.t/r, ann.a/b/rdw/rdwm/term,
libsvm.opt) are accepted and not used. The model file is written with skops, with a .json sidecar beside it
(features, classes, imstat, versions, hash); OTB's own model files are not read or written.
With io.imstat, features are normalised as (x - mean) / stddev. elev.* and cleanup are accepted, not used."""

_NOT_USED = ("classifier.rf.ra", "classifier.rf.cat", "classifier.rf.acc", "classifier.dt.ra", "classifier.dt.cat",
             "classifier.dt.r", "classifier.dt.t", "classifier.boost.t", "classifier.boost.r", "classifier.ann.a",
             "classifier.ann.b", "classifier.ann.rdw", "classifier.ann.rdwm", "classifier.ann.term",
             "classifier.libsvm.opt", "classifier.svm.opt", "elev.dem", "elev.geoid", "elev.default", "cleanup")

_SVM_KEYS = (
        Param("k", Kind.CHOICE, "Kernel.", "linear", choices=(
            Choice("linear", "linear"), Choice("rbf", "Gaussian radial basis"), Choice("poly", "polynomial"),
            Choice("sigmoid", "sigmoid"))),
        Param("m", Kind.CHOICE, "Model type.", "csvc", choices=(
            Choice("csvc", "C-SVC"), Choice("nusvc", "nu-SVC"), Choice("oneclass", "one-class (refused: no classes)"))),
        Param("c", Kind.FLOAT, "Cost parameter C.", 1.0, minimum=0),
        Param("gamma", Kind.FLOAT, "Kernel coefficient (rbf, poly, sigmoid).", 1.0, minimum=0),
        Param("coef0", Kind.FLOAT, "Kernel's independent term (poly, sigmoid).", 0.0),
        Param("degree", Kind.INT, "Degree of the polynomial kernel.", 3, minimum=1),
        Param("nu", Kind.FLOAT, "nu of nu-SVC.", 0.5, minimum=0, maximum=1),
        Param("opt", Kind.BOOL, "Parameter optimisation (not used).", False),
        Param("prob", Kind.BOOL, "Probability estimates (needed for -confmap).", False),
    )
"""The sub-keys of libsvm (OTB 8.1) and svm (the same classifier under OTB 6's name)."""

CLASSIFIER = Param("classifier", Kind.CHOICE, "Classifier to train (scikit-learn's; OTB's names).", "libsvm", choices=(
    Choice("libsvm", "support vector machine (SVC, NuSVC)", _SVM_KEYS),
    Choice("svm", "the same support vector machine under OTB 6's name (-classifier.svm.c, -classifier.svm.k...)",
           _SVM_KEYS),
    Choice("boost", "AdaBoost over small decision trees", (
        Param("t", Kind.CHOICE, "Boost type (not used: scikit-learn's SAMME).", "real", choices=(
            Choice("discrete", "discrete"), Choice("real", "real"), Choice("logit", "logit"),
            Choice("gentle", "gentle"))),
        Param("w", Kind.INT, "Weak learners.", 100, minimum=1),
        Param("r", Kind.FLOAT, "Weight trim rate (not used).", 0.95),
        Param("m", Kind.INT, "Depth of each tree.", 1, minimum=1),
    )),
    Choice("dt", "decision tree", (
        Param("max", Kind.INT, "Maximum depth (0: none).", 10, minimum=0),
        Param("min", Kind.INT, "Minimum samples in a node to split it.", 10, minimum=0),
        Param("ra", Kind.FLOAT, "Regression accuracy (not used).", 0.01),
        Param("cat", Kind.INT, "Categorical clusters (not used).", 10),
        Param("r", Kind.BOOL, "Use1seRule (not used).", False),
        Param("t", Kind.BOOL, "TruncatePrunedTree (not used).", False),
    )),
    Choice("ann", "multi-layer perceptron", (
        Param("t", Kind.CHOICE, "Training method.", "reg", choices=(
            Choice("back", "back-propagation (SGD with momentum)"), Choice("reg", "RPROP (Adam here)"))),
        Param("sizes", Kind.STRING_LIST, "Neurons of each hidden layer, e.g. 16 8."),
        Param("f", Kind.CHOICE, "Activation.", "sig", choices=(
            Choice("ident", "identity"), Choice("sig", "sigmoid"), Choice("gau", "Gaussian (refused)"))),
        Param("a", Kind.FLOAT, "Activation alpha (not used).", 1.0),
        Param("b", Kind.FLOAT, "Activation beta (not used).", 1.0),
        Param("bpdw", Kind.FLOAT, "Learning rate of back-propagation.", 0.1, minimum=0),
        Param("bpms", Kind.FLOAT, "Momentum of back-propagation.", 0.1, minimum=0),
        Param("rdw", Kind.FLOAT, "RPROP initial update (not used).", 0.1),
        Param("rdwm", Kind.FLOAT, "RPROP minimum update (not used).", 1e-7),
        Param("term", Kind.CHOICE, "Termination (not used: both iter and eps apply).", "all", choices=(
            Choice("iter", "iterations"), Choice("eps", "epsilon"), Choice("all", "both"))),
        Param("eps", Kind.FLOAT, "Tolerance.", 0.01, minimum=0),
        Param("iter", Kind.INT, "Maximum iterations.", 1000, minimum=1),
    )),
    Choice("bayes", "Gaussian naive Bayes"),
    Choice("rf", "random forest", (
        Param("max", Kind.INT, "Maximum depth of the trees (0: none).", 5, minimum=0),
        Param("min", Kind.INT, "Minimum samples in a node to split it.", 10, minimum=0),
        Param("ra", Kind.FLOAT, "Regression accuracy (not used).", 0.0),
        Param("cat", Kind.INT, "Categorical clusters (not used).", 10),
        Param("var", Kind.INT, "Features tried at each split (0: square root of the features).", 0, minimum=0),
        Param("nbtrees", Kind.INT, "Number of trees.", 100, minimum=1),
        Param("acc", Kind.FLOAT, "OpenCV's out-of-bag early stop (not used: every tree is grown).", 0.01),
    )),
    Choice("knn", "k nearest neighbours", (
        Param("k", Kind.INT, "Number of neighbours.", 32, minimum=1),
    )),
    Choice("sgd", "linear model by stochastic gradient descent (eotensor's; no OTB peer)", (
        Param("loss", Kind.CHOICE, "Loss.", "log_loss", choices=(
            Choice("log_loss", "logistic regression (gives probabilities)"), Choice("hinge", "linear SVM"),
            Choice("modified_huber", "smoothed hinge (gives probabilities)"))),
        Param("alpha", Kind.FLOAT, "Regularisation strength.", 1e-4, minimum=0),
    )),
))

IO_SHARED = (
    Param("vd", Kind.INPUT_VECTOR_LIST, "Training vectors (polygons, lines or points with an integer class field), "
          "one per image or one for all.", mandatory=True),
    Param("valid", Kind.INPUT_VECTOR_LIST, "Separate validation vectors (default: a share of the training samples)."),
    Param("out", Kind.OUTPUT_FILE, "Output model file (skops; a .json sidecar is written beside it).", mandatory=True),
    Param("confmatout", Kind.OUTPUT_FILE, "Output confusion matrix (OTB's CSV: reference rows, produced columns)."),
)
"""The ``io`` rows TrainClassifierFromDeepFeatures shares (its features are the served model's output)."""

SAMPLE = Group("sample", "Training and validation samples.", (
    Param("mt", Kind.INT, "Maximum training samples per class (-1: no maximum; used with sample.bm 0).", 1000,
          minimum=-1),
    Param("mv", Kind.INT, "Maximum validation samples per class (-1: no maximum; used with sample.bm 0).", 1000,
          minimum=-1),
    Param("bm", Kind.INT, "Bound the samples of every class by the smallest class (1) or not (0).", 1, minimum=0,
          maximum=1),
    Param("vtr", Kind.FLOAT, "Share of the samples kept for validation, in [0, 1).", 0.5),
    Param("vfn", Kind.STRING, "Integer field holding the class label.", mandatory=True),
))

ELEV = Group("elev", "Elevation management (OTB's; reprojection here is 2-D, so these are not used).", (
    Param("dem", Kind.STRING, "DEM directory (not used)."),
    Param("geoid", Kind.STRING, "Geoid file (not used)."),
    Param("default", Kind.FLOAT, "Default elevation (not used).", 0.0),
))

RAND = Param("rand", Kind.INT, "Random seed of the sample draw and the classifier (default 0).")

SHARED = (SAMPLE, ELEV, CLASSIFIER, RAND, options.ram())
"""The rows besides ``io`` that TrainClassifierFromDeepFeatures shares."""

PARAMS = (
    Group("io", "Input and output data.", (
        Param("il", Kind.FILE_LIST, "Input images, each with its vectors (same bands); Python results accepted.",
              mandatory=True),
        *IO_SHARED[:2],
        Param("imstat", Kind.FILE, "Statistics XML (ComputeImagesStatistics) to normalise the features: "
              "(x - mean) / stddev."),
        *IO_SHARED[2:],
    )),
    Param("cleanup", Kind.BOOL, "Temporary files cleaning (none are made here; not used).", True),
    *SHARED,
)


@dataclass(frozen=True)
class TrainConfig:
    """TrainImagesClassifier's parameters as typed fields (keys as this app spells them)."""

    vectors: list[str]
    valid: list[str]
    imstat: str | None
    out: str | None
    confmatout: str | None
    sample: Any
    classifier: str
    options: dict[str, Any]
    seed: int
    ram_mb: float | None
    unused: tuple[str, ...]

    @classmethod
    def from_values(cls, v: Values) -> TrainConfig:
        """Read ``v``; the ``io.il`` and ``io.imstat`` keys may be absent (the deep-features app has none)."""
        from eotensor.classify.training import SampleOptions

        name = v["classifier"]
        prefix = f"classifier.{name}."
        return cls(
            vectors=list(v["io.vd"]), valid=list(v.get("io.valid") or []), imstat=v.get("io.imstat"),
            out=v.get("io.out"), confmatout=v.get("io.confmatout"),
            sample=SampleOptions(v["sample.mt"], v["sample.mv"], bool(v["sample.bm"]), v["sample.vtr"],
                                 v["sample.vfn"] or ""),
            classifier=name, options={k[len(prefix):]: v[k] for k in v if k.startswith(prefix)},
            seed=v["rand"] if v.get("rand") is not None else 0, ram_mb=v["ram"],
            unused=tuple(k for k in _NOT_USED if k in v and v.is_set(k)),
        )


class Training:
    """One training run on lazy rasters, done on first use (:attr:`result`): the model, samples and measures."""

    def __init__(self, config: TrainConfig, rasters: list[Any], names: list[str],
                 keys: dict[str, str] | None = None) -> None:
        from eotensor.classify.training import train_classifier  # noqa: F401 - fails early without scikit-learn
        from eotensor.io.atomic import check_outputs

        self.config = config
        self.rasters = rasters
        self.names = names
        self.keys = {"vd": "io.vd", "valid": "io.valid", "imstat": "io.imstat", "il": "io.il", "out": "io.out",
                     "confmatout": "io.confmatout", **(keys or {})}
        config.sample.check()
        if config.unused:
            warnings.warn(f"{', '.join(config.unused)}: accepted for OTB command lines, not used here", stacklevel=3)
        outputs = [(self.keys[k], getattr(config, k)) for k in ("out", "confmatout") if getattr(config, k)]
        inputs = {f for r in rasters for f in r.files} | set(config.vectors) | set(config.valid)
        check_outputs(outputs, inputs)
        self.normalisation = None
        if config.imstat:
            from eotensor.classify.statistics import Normalisation

            self.normalisation = Normalisation.read(config.imstat, self.keys["imstat"])
            self.normalisation.check(rasters[0].count, self.keys["imstat"], self.keys["il"])

    @cached_property
    def result(self) -> Any:
        """The :class:`~eotensor.classify.training.TrainingResult` (samples drawn and the model fitted now)."""
        from eotensor.classify.training import train_classifier

        c = self.config
        return train_classifier(self.rasters, c.vectors, c.sample, c.classifier, c.options, valid_vectors=c.valid,
                                seed=c.seed, normalisation=self.normalisation, names=self.names, ram_mb=c.ram_mb,
                                params=self.keys)

    @property
    def model(self) -> Any:
        """The fitted :class:`~eotensor.classify.models.ClassifierModel`."""
        return self.result.model

    @property
    def confusion(self) -> Any:
        """The validation's :class:`~eotensor.metrics.ConfusionMatrix` (of the training samples when there is no
        validation sample: ``result.on_training``)."""
        return self.result.confusion


def build(values: Values) -> Training:
    """Open the images and check the parameters; training waits for the first use."""
    from eotensor.lazy import LazyRaster, open

    config = TrainConfig.from_values(values)
    images = list(values["io.il"])
    rasters = [image if isinstance(image, LazyRaster) else open(image, ram_mb=config.ram_mb) for image in images]
    names = [image if isinstance(image, str) else f"io.il item {k + 1}" for k, image in enumerate(images)]
    return Training(config, rasters, names)


def write(training: Training, values: Values, progress: bool = False) -> str | None:
    """Train, write the model (and the confusion CSV); on the command line print OTB's measures."""
    from eotensor.classify.training import write_confusion_csv

    result = training.result
    config, keys = training.config, training.keys
    path = result.model.save(config.out, keys["out"]) if config.out else None
    if config.confmatout:
        write_confusion_csv(config.confmatout, result.confusion, keys["confmatout"])
    if progress:
        counts = lambda s: ", ".join(f"{c}: {n}" for c, n in s.per_class.items())  # noqa: E731
        print(f"Training samples per class: {counts(result.train)}", file=sys.stderr)
        print(f"Validation samples per class: {counts(result.valid) or 'none'}", file=sys.stderr)
        if result.on_training:
            print(f"Training performances (sample.vtr 0 and no {keys['valid']}: measured on the training "
                  "samples, as OTB does; not a validation)")
        print(result.confusion.report())
        if path:
            print(f"wrote {path} ({config.classifier}, {result.model.features} features, "
                  f"{len(result.model.classes)} classes)", file=sys.stderr)
    return path


APP = App(
    name="TrainImagesClassifier",
    description="Train a classifier (scikit-learn) on image pixels under labelled polygons, lines or points; "
                "validate it.",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def TrainImagesClassifier(options: dict[str, Any] | None = None, **kwargs: Any) -> Training:  # noqa: N802
    """Run TrainImagesClassifier from Python with OTB keys: ``io_il=[...]``, ``io_vd=[...]``, ``sample_vfn=``,
    ``classifier="rf"``, ``classifier_rf_nbtrees=``, ``io_out=``, ``io_confmatout=``.

    With ``io_out`` the model is trained and written; without it, the :class:`Training` is returned and trains on
    first use (``.model``, ``.confusion``, ``.result``).
    """
    return run_python(APP, options, **kwargs)
