"""Classifiers: OTB's classifier choices on scikit-learn, and their model files (skops + a JSON sidecar).

:data:`CLASSIFIERS` maps OTB 8.1's ``-classifier`` names (and eotensor's ``sgd``) to scikit-learn estimators,
OTB's sub-keys mapped where they have a meaning there (the app's ``-help`` lists them):

* ``rf`` (OpenCV random trees) → ``RandomForestClassifier``: ``max`` → ``max_depth``, ``min`` (OpenCV's
  "minimum samples in a node to split it") → ``min_samples_split`` (at least 2), ``var`` → ``max_features``
  (0: the square root of the features, OpenCV's default), ``nbtrees`` → ``n_estimators``; ``ra``, ``cat``
  and ``acc`` (OpenCV's early stop on the out-of-bag error) have no counterpart;
* ``libsvm`` (and ``svm``, OTB 6's name, with the same sub-keys: ``classifier.svm.c``, ``classifier.svm.k``...)
  → ``SVC`` (``m csvc``) or ``NuSVC`` (``m nusvc``): ``k`` → ``kernel``, ``c`` → ``C``, ``gamma``, ``coef0``,
  ``degree``, ``nu``; ``prob on`` wraps it in ``CalibratedClassifierCV(ensemble=False)`` (Platt
  scaling on cross-validated decisions, as libsvm's probabilities; a confidence map needs them);
* ``knn`` → ``KNeighborsClassifier`` (``k``); ``dt`` → ``DecisionTreeClassifier`` (``max``, ``min``);
  ``boost`` → ``AdaBoostClassifier`` over depth-``m`` trees, ``w`` of them; ``bayes`` → ``GaussianNB``;
  ``ann`` → ``MLPClassifier`` (``sizes``, ``f``: ident/sig → identity/logistic, ``iter``, ``eps``; ``t back``
  → SGD with momentum ``bpms``, ``t reg`` → Adam);
* ``sgd`` (no OTB peer) → ``SGDClassifier`` (``loss``, ``alpha``), linear and fast on many samples.

Model files (decision 23): the estimator is written with ``skops.io`` and beside it ``<file>.json`` holds what
predicting needs and checks — format version, eotensor and scikit-learn versions, the classifier's name and
class, the number of features, the classes, the normalisation used (``imstat``), and the SHA-256 of the model
file. Loading checks the sidecar (ours, this format), the hash (a changed file is refused), and lets skops
build only the types of :data:`TRUSTED_TYPES` (a file naming any other type is refused before anything in it
runs); ``pickle`` and ``joblib`` are never used. Both files are written under temporary names and renamed
together when complete.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.classify.statistics import Normalisation
from eotensor.errors import InputFileError, MissingDependencyError, ParameterError

__all__ = ["CLASSIFIERS", "FORMAT", "TRUSTED_TYPES", "ClassifierModel", "load_classifier", "make_classifier"]

FORMAT = "eotensor-classifier"
FORMAT_VERSION = 1
SIDECAR = ".json"
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)
"""The types skops may build beyond those it trusts itself (scikit-learn's estimators, NumPy arrays): what the
estimators of :data:`CLASSIFIERS` hold. Anything else in a file is refused."""


def sklearn() -> Any:
    """``sklearn``, or a one-line error naming the extra that installs it."""
    try:
        import sklearn as module
    except ImportError:
        raise MissingDependencyError("classifiers need scikit-learn (not installed); pip install "
                                     "'eotensor[classify]'") from None
    return module


SKIPPED_AT_SKOPS_IMPORT = ("sklearn.externals.array_api_compat.torch", "sklearn.externals.array_api_compat.dask")
"""scikit-learn's array-API shims for PyTorch and Dask arrays, which import PyTorch (~1 s, ~250 MB) and Dask."""


class _SkipShims(importlib.abc.MetaPathFinder):
    """Refuses the modules of :data:`SKIPPED_AT_SKOPS_IMPORT` (ImportError) while ``skops.io`` is first imported,
    in the thread importing it only.

    skops builds its default trusted list from ``sklearn.utils.all_estimators()``, which walks every scikit-learn
    package with ``pkgutil.walk_packages``; the walk imports each package to look inside it, the shims too,
    though ``all_estimators`` then ignores everything under ``sklearn.externals``. The walk skips a package whose
    import fails, so refusing the shims changes no estimator and no trusted type; they stay importable after
    (a failed import is not cached), for the day scikit-learn is handed a PyTorch or Dask array. The finder sits
    in the process-wide ``sys.meta_path``, so it refuses only in the thread that put it there (``thread``):
    another thread importing a shim meanwhile gets it."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if threading.get_ident() != self.thread:
            return None
        if any(name == shim or name.startswith(shim + ".") for shim in SKIPPED_AT_SKOPS_IMPORT):
            raise ImportError(f"{name} is not imported while skops.io is (eotensor.classify.models)")
        return None


_SKOPS_IMPORT = threading.Lock()
"""Held while :func:`skops_io` imports ``skops.io`` with :class:`_SkipShims` in ``sys.meta_path``: threads calling
it at once insert and remove one finder at a time (the others then find ``skops.io`` imported)."""


def skops_io() -> Any:
    """``skops.io`` (imported when a model file is written or read), or a one-line error. Its first import walks
    every scikit-learn module (a second or so); the array-API shims it would import on the way, PyTorch's and
    Dask's, are skipped in that thread (:class:`_SkipShims`); should a scikit-learn release need them there, the
    import is simply tried again without skipping."""
    if "skops.io" not in sys.modules:
        with _SKOPS_IMPORT:
            if "skops.io" not in sys.modules:
                finder = _SkipShims()
                sys.meta_path.insert(0, finder)
                try:
                    import skops.io  # noqa: F401
                except ImportError:
                    pass  # skops missing (reported below), or a shim needed after all: import plainly below
                finally:
                    sys.meta_path.remove(finder)
    try:
        import skops.io as module
    except ImportError:
        raise MissingDependencyError("classifier model files need skops (not installed); pip install "
                                     "'eotensor[classify]'") from None
    return module


def _rf(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=o["nbtrees"], max_depth=o["max"] or None,
                                  min_samples_split=max(2, o["min"]), max_features=o["var"] or "sqrt",
                                  random_state=seed, n_jobs=None)


def _libsvm(o: Mapping[str, Any], seed: int, key: str = "libsvm") -> Any:
    from sklearn.svm import SVC, NuSVC

    common = dict(kernel=o["k"], gamma=o["gamma"], coef0=o["coef0"], degree=o["degree"], random_state=seed)
    if o["m"] == "oneclass":
        raise ParameterError(f'classifier.{key}.m: "oneclass" has no classes to map; expected csvc or nusvc')
    if o["m"] == "csvc" and not o["c"] > 0:
        raise ParameterError(f"classifier.{key}.c: {o['c']:g}; expected a cost greater than 0, e.g. 1")
    svm = NuSVC(nu=o["nu"], **common) if o["m"] == "nusvc" else SVC(C=o["c"], **common)
    if not o["prob"]:
        return svm
    from sklearn.calibration import CalibratedClassifierCV

    # libsvm's probabilities: Platt scaling fitted on cross-validated decisions (SVC(probability=True) is
    # deprecated in scikit-learn 1.9 for exactly this)
    return CalibratedClassifierCV(svm, ensemble=False)


def _knn(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=o["k"])


def _dt(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=o["max"] or None, min_samples_split=max(2, o["min"]), random_state=seed)


def _boost(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    return AdaBoostClassifier(DecisionTreeClassifier(max_depth=o["m"]), n_estimators=o["w"], random_state=seed)


def _bayes(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB()


def _ann(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    activation = {"ident": "identity", "sig": "logistic"}.get(o["f"])
    if activation is None:
        raise ParameterError(f'classifier.ann.f: "{o["f"]}" (Gaussian) has no scikit-learn counterpart; expected '
                             "ident or sig")
    try:
        sizes = [int(s) for s in o["sizes"] or []]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ParameterError(f"classifier.ann.sizes: {o['sizes']!r}; expected one positive neuron count per hidden "
                             "layer, e.g. 16 8")
    solver = dict(solver="sgd", momentum=o["bpms"], learning_rate_init=o["bpdw"]) if o["t"] == "back" else \
        dict(solver="adam")
    return MLPClassifier(hidden_layer_sizes=sizes, activation=activation, max_iter=o["iter"], tol=o["eps"],
                         random_state=seed, **solver)


def _sgd(o: Mapping[str, Any], seed: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss=o["loss"], alpha=o["alpha"], random_state=seed)


CLASSIFIERS: dict[str, Callable[[Mapping[str, Any], int], Any]] = {
    "libsvm": _libsvm, "svm": functools.partial(_libsvm, key="svm"), "boost": _boost, "dt": _dt, "ann": _ann,
    "bayes": _bayes, "rf": _rf, "knn": _knn, "sgd": _sgd,
}
"""``-classifier`` name -> ``builder(sub-key values, seed)`` giving an unfitted scikit-learn estimator."""


def make_classifier(name: str, options: Mapping[str, Any], seed: int) -> Any:
    """The unfitted estimator for ``-classifier name`` with its sub-keys ``options`` (``{"nbtrees": 100, ...}``)."""
    sklearn()
    return CLASSIFIERS[name](options, seed)


@dataclass
class ClassifierModel:
    """A fitted classifier and what its sidecar records."""

    estimator: Any
    kind: str
    """The ``-classifier`` name it was trained as."""
    features: int
    classes: np.ndarray
    normalisation: Normalisation | None = None

    @classmethod
    def fit(cls, estimator: Any, kind: str, features: np.ndarray, labels: np.ndarray,
            normalisation: Normalisation | None) -> ClassifierModel:
        """Fit ``estimator`` on ``features`` (n, f), normalised first when ``normalisation`` is given."""
        x = normalisation.apply(features) if normalisation is not None else features
        if kind == "knn" and estimator.n_neighbors > len(x):
            raise ParameterError(f"classifier.knn.k: {estimator.n_neighbors} neighbours but {len(x)} training "
                                 f"samples; expected at most {len(x)}")
        parallel = "n_jobs" in estimator.get_params()
        if parallel:  # fit on every core (threads); predictions run one per executor thread, hence reset below
            estimator.set_params(n_jobs=-1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
            warnings.filterwarnings("ignore", message=".*ConvergenceWarning.*|.*did not converge.*")
            try:
                estimator.fit(x, labels)
            except ValueError as error:  # scikit-learn's InvalidParameterError too: a value it refuses
                raise ParameterError(f"classifier.{kind}.*: scikit-learn refused to fit ({_first_line(error)})") \
                    from None
        if parallel:
            estimator.set_params(n_jobs=None)
        return cls(estimator, kind, features.shape[1], np.asarray(estimator.classes_, np.int64), normalisation)

    @property
    def has_probabilities(self) -> bool:
        """Whether the estimator gives class probabilities (for a confidence map)."""
        return hasattr(self.estimator, "predict_proba")  # False for SVC(probability=False), SGD's hinge loss

    def predict(self, features: np.ndarray, confidence: bool = False,
                normalisation: Normalisation | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (n,) int64 of ``features`` (n, f) — the estimator's ``predict``, with or without a confidence —
        and, if asked, the confidence: the probability of that label. ``normalisation`` overrides the model's own."""
        if confidence:
            # the labels are predict()'s whatever -confmap (modified_huber's argmax of probabilities can differ from
            # its decision); the confidence is the probability of that label
            labels, probabilities = self.predict_probabilities(features, normalisation)
            column = np.searchsorted(self.classes, labels)
            return labels, probabilities[np.arange(len(labels)), column]
        norm = normalisation if normalisation is not None else self.normalisation
        x = norm.apply(features) if norm is not None else features.astype(np.float32, copy=False)
        if not len(x):
            return np.zeros(0, np.int64), None
        return np.asarray(self.estimator.predict(x), np.int64), None

    def predict_probabilities(self, features: np.ndarray,
                              normalisation: Normalisation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels (n,) int64 of ``features`` (n, f) — the estimator's ``predict``, exactly — and the class
        probabilities (n, classes) float64, columns in :attr:`classes` order (ascending). A forest's ``predict``
        is the argmax of its probabilities, so for one they are computed once."""
        norm = normalisation if normalisation is not None else self.normalisation
        x = norm.apply(features) if norm is not None else features.astype(np.float32, copy=False)
        if not len(x):
            return np.zeros(0, np.int64), np.zeros((0, len(self.classes)))
        probabilities = np.asarray(self.estimator.predict_proba(x), np.float64)
        if self.argmax_labels:
            labels = self.classes[np.argmax(probabilities, axis=1)]
        else:
            labels = np.asarray(self.estimator.predict(x), np.int64)
        return labels, probabilities

    @property
    def argmax_labels(self) -> bool:
        """Whether ``predict`` is the argmax of ``predict_proba`` by construction (scikit-learn's forests)."""
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        return type(self.estimator) in (RandomForestClassifier, ExtraTreesClassifier)

    def sidecar(self, digest: str) -> dict[str, Any]:
        """The JSON sidecar's content for a model file of SHA-256 ``digest``."""
        from eotensor import __version__

        estimator = type(self.estimator)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "eotensor": __version__,
                "sklearn": sklearn().__version__, "kind": self.kind,
                "estimator": f"{estimator.__module__}.{estimator.__qualname__}", "features": self.features,
                "classes": self.classes.tolist(),
                "imstat": self.normalisation.to_dict() if self.normalisation is not None else None,
                "sha256": digest}

    def save(self, path: str | os.PathLike, param: str = "io.out") -> str:
        """Write the model file and its ``.json`` sidecar, both renamed into place when complete; return ``path``."""
        from eotensor.errors import OutputFileError
        from eotensor.io.atomic import AtomicOutput

        path = os.fspath(path)
        data = skops_io().dumps(self.estimator)
        with AtomicOutput(path, param, sidecars=(SIDECAR,)) as output:
            try:
                with open(output.temp_path, "wb") as stream:
                    stream.write(data)
                with open(output.temp_path + SIDECAR, "w", encoding="utf-8") as stream:
                    json.dump(self.sidecar(hashlib.sha256(data).hexdigest()), stream, indent=1)
            except OSError as error:
                raise OutputFileError(f'{param}: cannot write "{path}" ({output.explain(error)})') from None
        return path


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (scikit-learn's may run over several)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_classifier(path: str | os.PathLike, param: str = "model") -> ClassifierModel:
    """A model file written by :meth:`ClassifierModel.save`, checked (sidecar, hash, trusted types) before skops
    builds anything; every refusal is one line naming ``param`` and the file."""
    path = os.fspath(path)
    side = path + SIDECAR
    if not os.path.isfile(path):
        raise InputFileError(f'{param}: classifier model "{path}" does not exist')
    if not os.path.isfile(side):
        raise InputFileError(f'{param}: "{path}" has no sidecar "{side}"; expected a model written by eotensor\'s '
                             "TrainImagesClassifier (OTB's OpenCV/libsvm model files are not read)")
    try:
        with open(side, encoding="utf-8") as stream:
            meta = json.load(stream)
        with open(path, "rb") as stream:
            data = stream.read()
    except (OSError, ValueError) as error:
        raise InputFileError(f'{param}: cannot read "{side}" as JSON ({error})') from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputFileError(f'{param}: "{side}" is not an eotensor classifier sidecar; expected "format": "{FORMAT}"')
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputFileError(f'{param}: "{path}" is a classifier of format version {meta.get("format_version")} '
                             f"(eotensor {meta.get('eotensor')}); this eotensor reads version {FORMAT_VERSION}: "
                             "train it again")
    missing = [key for key in ("sklearn", "kind", "estimator", "features", "classes", "sha256") if key not in meta]
    if missing:
        raise InputFileError(f'{param}: "{side}" has no {", ".join(missing)}; expected the sidecar eotensor writes '
                             "beside its model files")
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise InputFileError(f'{param}: "{path}" was changed after it was written (its SHA-256 differs from '
                             f'"{side}"); refusing to load it')
    installed = sklearn().__version__
    if meta["sklearn"] != installed:  # scikit-learn's own InconsistentVersionWarning follows, when it applies
        warnings.warn(f'{param}: "{path}" was written with scikit-learn {meta["sklearn"]} and is loaded with '
                      f"{installed}; its predictions may differ: train it again with this version", stacklevel=2)
    sio = skops_io()  # only now: the checks above cost nothing, this import takes seconds
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:  # noqa: BLE001 - skops raises several kinds on a bad archive
        raise InputFileError(f'{param}: "{path}" is not a skops model file ({error})') from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise InputFileError(f'{param}: "{path}" holds types eotensor does not trust ({", ".join(refused)}); '
                             "refusing to load it")
    try:
        estimator = sio.loads(data, trusted=[t for t in untrusted])
    except Exception as error:  # noqa: BLE001
        raise InputFileError(f'{param}: cannot load "{path}" ({type(error).__name__}: {error})') from None
    actual = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    if actual != meta.get("estimator"):
        raise InputFileError(f'{param}: "{path}" holds a {actual}, but its sidecar says {meta.get("estimator")}')
    # what predicting uses comes from the estimator itself; the sidecar must agree with it
    classes = np.asarray(estimator.classes_, np.int64)
    features = int(estimator.n_features_in_)
    if list(meta["classes"]) != classes.tolist() or meta["features"] != features:
        raise InputFileError(f'{param}: "{path}" holds a classifier of {features} feature(s) and classes '
                             f"{classes.tolist()}, but its sidecar says {meta['features']} and {meta['classes']}")
    imstat = meta.get("imstat")
    return ClassifierModel(estimator, str(meta["kind"]), features, classes,
                           Normalisation.from_dict(imstat) if imstat else None)
