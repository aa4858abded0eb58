"""Accuracy metrics of labels and values, pure NumPy: a confusion matrix with OTB's measures, and RMSE.

Used by TensorflowModelTrain's validation (``validation.mode class|rmse``) and meant for any app that compares
predictions with references (TrainImagesClassifier). Both results accumulate: ``a + b`` is the result over the
two sets of samples, so a validation pass adds batch after batch in bounded memory.

The measures are OTB's ``ConfusionMatrixMeasurements``: rows are reference labels, columns produced labels,
labels in ascending order (every label seen in either); per class precision ``TP / (TP + FP)``, recall
``TP / (TP + FN)`` and F-score ``2PR / (P + R)``, each 0 where its denominator is 0; overall accuracy
``trace / total``; Cohen's kappa ``(OA - Pe) / (1 - Pe)`` with ``Pe = sum(row sums x column sums) / total²``
(NaN where undefined: one class only, or no sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConfusionMatrix", "ErrorStats", "confusion_matrix", "rmse"]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where the denominator is not 0, else 0 (OTB's convention)."""
    out = np.zeros(np.shape(numerator), np.float64)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) != 0)
    return out


def _format(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


@dataclass(frozen=True, eq=False)
class ConfusionMatrix:
    """Counts of (reference label, produced label) pairs: ``counts[i, j]`` samples of ``labels[i]`` produced as
    ``labels[j]``. Add two matrices to merge their samples (their label sets are merged too); two matrices are
    equal when their labels and counts are."""

    labels: np.ndarray
    """The labels, ascending (int64)."""
    counts: np.ndarray
    """``(n, n)`` int64: rows are reference labels, columns produced labels."""

    @property
    def total(self) -> int:
        """The number of samples."""
        return int(self.counts.sum())

    @property
    def true_positives(self) -> np.ndarray:
        """Per class, the samples of that class produced as it."""
        return np.diag(self.counts)

    @property
    def precision(self) -> np.ndarray:
        """Per class, ``TP / (TP + FP)`` (0 when the class was never produced)."""
        return _ratio(self.true_positives, self.counts.sum(axis=0))

    @property
    def recall(self) -> np.ndarray:
        """Per class, ``TP / (TP + FN)`` (0 when the class is absent from the reference)."""
        return _ratio(self.true_positives, self.counts.sum(axis=1))

    @property
    def fscore(self) -> np.ndarray:
        """Per class, the harmonic mean of precision and recall (0 when both are 0)."""
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def overall_accuracy(self) -> float:
        """The share of samples produced as their reference label (NaN without samples)."""
        total = self.total
        return float(self.true_positives.sum() / total) if total else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa: agreement beyond chance, ``(OA - Pe) / (1 - Pe)`` (NaN when ``Pe`` is 1 or no sample)."""
        total = self.total
        if not total:
            return float("nan")
        chance = float((self.counts.sum(axis=1).astype(np.float64) @ self.counts.sum(axis=0)) / total**2)
        return (self.overall_accuracy - chance) / (1 - chance) if chance != 1 else float("nan")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConfusionMatrix) and np.array_equal(self.labels, other.labels)
                and np.array_equal(self.counts, other.counts))

    __hash__ = None  # type: ignore[assignment] - mutable arrays inside

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        labels = np.union1d(self.labels, other.labels)
        counts = np.zeros((labels.size, labels.size), np.int64)
        for part in (self, other):
            where = np.searchsorted(labels, part.labels)
            counts[np.ix_(where, where)] += part.counts
        return ConfusionMatrix(labels, counts)

    def report(self) -> str:
        """OTB's log of the measures: per class lines, vectors, kappa, overall accuracy, then the matrix."""
        lines = []
        for label, p, r, f in zip(self.labels, self.precision, self.recall, self.fscore):
            lines += [f"Precision of class [{label}] vs all: {p:.6g}", f"Recall of class [{label}] vs all: {r:.6g}",
                      f"F-score of class [{label}] vs all: {f:.6g}", ""]
        lines += [f"Precision of the different classes: {_format(self.precision)}",
                  f"Recall of the different classes: {_format(self.recall)}",
                  f"F-score of the different classes: {_format(self.fscore)}", "",
                  f"Kappa index: {self.kappa:.6g}", f"Overall accuracy index: {self.overall_accuracy:.6g}", "",
                  "Confusion matrix (rows = reference labels, columns = produced labels):"]
        heads = [f"[{label}]" for label in self.labels]
        width = max([len(h) for h in heads] + [len(str(c)) for c in self.counts.ravel()] + [1])
        lines.append(" " * width + "".join(f" {h:>{width}}" for h in heads))
        for head, row in zip(heads, self.counts):
            lines.append(f"{head:>{width}}" + "".join(f" {c:>{width}}" for c in row))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def confusion_matrix(reference: np.ndarray, produced: np.ndarray) -> ConfusionMatrix:
    """The confusion matrix of two label arrays of the same size (any shape; values cast to int64 as C does:
    toward zero). Its labels are every value seen in either array, ascending."""
    reference = np.asarray(reference).astype(np.int64, copy=False).ravel()
    produced = np.asarray(produced).astype(np.int64, copy=False).ravel()
    if reference.size != produced.size:
        raise ValueError(f"{reference.size} reference labels but {produced.size} produced ones; expected as many")
    labels, index = np.unique(np.concatenate([reference, produced]), return_inverse=True)
    n = labels.size
    pairs = index[:reference.size] * n + index[reference.size:]
    return ConfusionMatrix(labels, np.bincount(pairs, minlength=n * n).reshape(n, n).astype(np.int64))


@dataclass(frozen=True)
class ErrorStats:
    """Sums of the squared differences between produced and reference values; add two to merge their samples."""

    count: int = 0
    squares: float = 0.0

    @property
    def rmse(self) -> float:
        """Root mean square error (NaN without samples)."""
        return float(np.sqrt(self.squares / self.count)) if self.count else float("nan")

    def __add__(self, other: ErrorStats) -> ErrorStats:
        return ErrorStats(self.count + other.count, self.squares + other.squares)

    def report(self) -> str:
        """One line: the RMSE and the number of values."""
        return f"RMSE: {self.rmse:.6g} ({self.count} values)"

    def __str__(self) -> str:
        return self.report()


def rmse(reference: np.ndarray, produced: np.ndarray) -> ErrorStats:
    """The squared errors of ``produced`` against ``reference`` (same size, any shape), in float64."""
    reference = np.asarray(reference, np.float64).ravel()
    produced = np.asarray(produced, np.float64).ravel()
    if reference.size != produced.size:
        raise ValueError(f"{reference.size} reference values but {produced.size} produced ones; expected as many")
    return ErrorStats(int(reference.size), float(np.square(produced - reference).sum()))
