"""Training a classifier on image pixels under labelled geometries, and validating it, as OTB's
TrainImagesClassifier does: draw the samples (:mod:`eotensor.classify.samples`), fit, predict the validation
samples, and measure them with :class:`~eotensor.metrics.ConfusionMatrix`. Drawn samples holding a non-finite
feature (no-data under a geometry) are left out with one warning line per set — no classifier can fit them —
and a class left with no training sample is an error."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.classify.models import ClassifierModel, make_classifier
from eotensor.classify.samples import (
    Candidates,
    SampleSet,
    check_classes,
    check_sample_memory,
    concat,
    gather,
    sample_sizes,
    split_samples,
)
from eotensor.classify.statistics import Normalisation
from eotensor.errors import OutputFileError, ParameterError
from eotensor.metrics import ConfusionMatrix, confusion_matrix

__all__ = ["SampleOptions", "TrainingResult", "confusion_csv", "finite_samples", "train_classifier",
           "write_confusion_csv"]


@dataclass(frozen=True)
class SampleOptions:
    """``sample.*``: per-class maxima (-1: no maximum), bound by the smallest class, validation ratio, class field."""

    mt: int = 1000
    mv: int = 1000
    bm: bool = True
    vtr: float = 0.5
    field: str = ""

    def check(self, param: str = "sample") -> None:
        """One-line errors for a ratio outside [0, 1) or an empty field name."""
        if not 0 <= self.vtr < 1:
            raise ParameterError(f"{param}.vtr: {self.vtr:g} is outside [0, 1); expected the share of samples kept "
                                 "for validation, e.g. 0.5")
        if not self.field:
            raise ParameterError(f"{param}.vfn: no class field given; expected the integer field of the vectors")


@dataclass
class TrainingResult:
    """A fitted model, its training and validation samples, and the validation's confusion matrix; with no
    validation sample (``sample.vtr 0`` and no ``io.valid``) the matrix measures the training samples, as OTB 8.1
    does ("Training performances"), and :attr:`on_training` says so."""

    model: ClassifierModel
    train: SampleSet
    valid: SampleSet
    confusion: ConfusionMatrix
    on_training: bool = False


def train_classifier(rasters: Sequence[Any], vectors: Sequence[str], sample: SampleOptions, classifier: str,
                     options: Mapping[str, Any], *, valid_vectors: Sequence[str] = (), seed: int = 0,
                     normalisation: Normalisation | None = None, names: Sequence[str] = (),
                     ram_mb: float | None = None, params: Mapping[str, str] | None = None) -> TrainingResult:
    """Draw samples of ``rasters`` (lazy results, one per image) under ``vectors``, fit ``classifier``, validate.

    ``params`` names the keys in messages (``{"vd": "io.vd", "valid": "io.valid", "imstat": "io.imstat"}``).
    """
    keys = {"vd": "io.vd", "valid": "io.valid", "imstat": "io.imstat", "il": "io.il", **(params or {})}
    sample.check()
    bands = rasters[0].count
    for name, raster in zip(names or [f"image {k + 1}" for k in range(len(rasters))], rasters):
        if raster.count != bands:
            raise ParameterError(f'{keys["il"]}: "{name}" has {raster.count} band(s) but the first image has {bands}; '
                                 "expected images with the same bands")
    if normalisation is not None:
        normalisation.check(bands, keys["imstat"], keys["il"])
    grids = [raster.grid for raster in rasters]
    rng = np.random.default_rng(seed)
    candidates = Candidates.from_vectors(vectors, grids, sample.field, keys["vd"], ram_mb=ram_mb, names=names)
    available = candidates.per_class
    check_classes(available, keys["vd"], vectors)
    if valid_vectors:
        checking = Candidates.from_vectors(valid_vectors, grids, sample.field, keys["valid"], ram_mb=ram_mb,
                                           names=names)
        check_classes(checking.per_class, keys["valid"], valid_vectors)
        train_sizes, valid_sizes = sample_sizes(available, sample.mt, sample.mv, sample.bm, sample.vtr,
                                                checking.per_class)
        assert valid_sizes is not None
        check_sample_memory(sum(train_sizes.values()) + sum(valid_sizes.values()), bands)
        train = concat(gather(rasters, candidates.draw(train_sizes, rng), sorted(train_sizes)), bands)
        valid = concat(gather(rasters, checking.draw(valid_sizes, rng), sorted(valid_sizes)), bands)
    else:
        totals, _ = sample_sizes(available, sample.mt, sample.mv, sample.bm, sample.vtr)
        check_sample_memory(sum(totals.values()), bands)
        train, valid = _split(gather(rasters, candidates.draw(totals, rng), sorted(totals)), sample.vtr, bands)
    finite = np.isfinite(train.features).all(axis=1)
    emptied = sorted(set(train.per_class) - set(np.unique(train.labels[finite]).tolist()))
    if emptied:
        raise ParameterError(f'{keys["il"]}: every training sample of class(es) {", ".join(map(str, emptied))} holds '
                             f'a non-finite feature (NaN or inf); expected finite pixel values under the geometries '
                             f'of {keys["vd"]} (mask the no-data out of the vectors, or fill it)')
    train = finite_samples(train, "training", keys["il"])
    valid = finite_samples(valid, "validation", keys["il"])
    if len(train.per_class) < 2:
        raise ParameterError(f'{keys["vd"]}: the training samples hold {len(train.per_class)} class(es); expected at '
                             "least two (give more geometries, or a lower sample.vtr)")
    estimator = make_classifier(classifier, options, seed)
    model = ClassifierModel.fit(estimator, classifier, train.features, train.labels, normalisation)
    on_training = not len(valid)
    measured = train if on_training else valid
    produced, _ = model.predict(measured.features)
    return TrainingResult(model, train, valid, confusion_matrix(measured.labels, produced), on_training)


def _split(per_class: list[SampleSet], vtr: float, bands: int) -> tuple[SampleSet, SampleSet]:
    """Each class's drawn samples cut into training and validation (:func:`split_samples`), as two sets; the
    drawn values are let go on return (the sets are copies), so they are held twice only while cut."""
    train_parts, valid_parts = [], []
    for part in per_class:
        n_train, _ = split_samples(len(part), vtr)
        train_parts.append(SampleSet(part.features[:n_train], part.labels[:n_train]))
        valid_parts.append(SampleSet(part.features[n_train:], part.labels[n_train:]))
    return concat(train_parts, bands), concat(valid_parts, bands)


def finite_samples(samples: SampleSet, name: str, param: str) -> SampleSet:
    """``samples`` without those holding a non-finite feature (NaN, ±inf: no-data under a geometry), which no
    classifier can fit or measure; one stderr line says how many were left out per class."""
    keep = np.isfinite(samples.features).all(axis=1)
    if keep.all():
        return samples
    classes, counts = np.unique(samples.labels[~keep], return_counts=True)
    per_class = ", ".join(f"{c}: {n}" for c, n in zip(classes.tolist(), counts.tolist()))
    print(f"warning: {param}: {int((~keep).sum())} {name} sample(s) hold a non-finite feature (NaN or inf) and are "
          f"left out (per class: {per_class})", file=sys.stderr)
    return SampleSet(samples.features[keep], samples.labels[keep])


def confusion_csv(matrix: ConfusionMatrix) -> str:
    """The confusion matrix as OTB's ``io.confmatout`` writes it: two header lines, then one row per reference
    label, produced labels in columns."""
    labels = ",".join(str(label) for label in matrix.labels)
    rows = "".join(",".join(str(c) for c in row) + "\n" for row in matrix.counts)
    return f"#Reference labels (rows):{labels}\n#Produced labels (columns):{labels}\n{rows}"


def write_confusion_csv(path: str | os.PathLike, matrix: ConfusionMatrix, param: str = "io.confmatout") -> str:
    """Write :func:`confusion_csv` to ``path`` (renamed into place when complete); return ``path``."""
    from eotensor.io.atomic import AtomicOutput

    path = os.fspath(path)
    with AtomicOutput(path, param) as output:
        try:
            with open(output.temp_path, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(confusion_csv(matrix))
        except OSError as error:
            raise OutputFileError(f'{param}: cannot write "{path}" ({output.explain(error)})') from None
    return path
