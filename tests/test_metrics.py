"""eotensor.metrics against references computed by plain loops (no scikit-learn here), and OTB's report layout."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eotensor.metrics import ConfusionMatrix, ErrorStats, confusion_matrix, rmse


def reference_measures(ref, prod):
    """Labels, counts, precision, recall, F-score, OA and kappa by loops over the pairs, from the definitions."""
    labels = sorted(set(ref) | set(prod))
    counts = [[sum(1 for r, p in zip(ref, prod) if r == a and p == b) for b in labels] for a in labels]
    n = len(ref)
    precision, recall, fscore = [], [], []
    for k in range(len(labels)):
        produced = sum(counts[i][k] for i in range(len(labels)))
        actual = sum(counts[k])
        p = counts[k][k] / produced if produced else 0.0
        r = counts[k][k] / actual if actual else 0.0
        precision.append(p)
        recall.append(r)
        fscore.append(2 * p * r / (p + r) if p + r else 0.0)
    oa = sum(counts[k][k] for k in range(len(labels))) / n
    chance = sum(sum(counts[k]) * sum(counts[i][k] for i in range(len(labels))) for k in range(len(labels))) / n**2
    kappa = (oa - chance) / (1 - chance) if chance != 1 else math.nan
    return labels, counts, precision, recall, fscore, oa, kappa


label_pairs = st.integers(1, 60).flatmap(lambda n: st.tuples(
    arrays(np.int32, n, elements=st.integers(-3, 4)), arrays(np.int32, n, elements=st.integers(-3, 4))))


@settings(max_examples=60, deadline=None)
@given(label_pairs, st.integers(1, 59))
def test_confusion_matrix_matches_loops_and_adds_up(pair, cut):
    ref, prod = pair
    matrix = confusion_matrix(ref, prod)
    labels, counts, precision, recall, fscore, oa, kappa = reference_measures(ref.tolist(), prod.tolist())
    assert matrix.labels.tolist() == labels and matrix.counts.tolist() == counts
    np.testing.assert_allclose(matrix.precision, precision)
    np.testing.assert_allclose(matrix.recall, recall)
    np.testing.assert_allclose(matrix.fscore, fscore)
    assert matrix.overall_accuracy == pytest.approx(oa)
    assert (math.isnan(kappa) and math.isnan(matrix.kappa)) or matrix.kappa == pytest.approx(kappa)
    cut = min(cut, len(ref))
    merged = confusion_matrix(ref[:cut], prod[:cut]) + confusion_matrix(ref[cut:], prod[cut:])
    assert merged.labels.tolist() == labels and merged.counts.tolist() == counts
    one_more = confusion_matrix(np.append(ref, 0), np.append(prod, 1))  # one sample more: never the same matrix
    assert merged == matrix and not (merged == one_more)


def test_values_are_cast_toward_zero_and_shapes_ignored():
    matrix = confusion_matrix(np.array([[1.7, -0.5]]), np.array([1, 0]))
    assert matrix.labels.tolist() == [0, 1] and matrix.counts.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="3 reference labels but 2 produced"):
        confusion_matrix([1, 2, 3], [1, 2])


def test_report_has_otb_lines():
    text = confusion_matrix([1, 1, 2, 2], [1, 2, 2, 2]).report()
    assert "Precision of class [1] vs all: 1" in text
    assert "Recall of class [1] vs all: 0.5" in text
    assert "F-score of class [2] vs all: 0.8" in text
    assert "Precision of the different classes: [1, 0.666667]" in text
    assert "Overall accuracy index: 0.75" in text and "Kappa index: 0.5" in text
    rows = text.splitlines()[-3:]
    assert rows == ["    [1] [2]", "[1]   1   1", "[2]   0   2"]


def test_one_class_and_empty():
    assert math.isnan(confusion_matrix([3, 3], [3, 3]).kappa)
    assert confusion_matrix([3, 3], [3, 3]).overall_accuracy == 1
    empty = ConfusionMatrix(np.zeros(0, np.int64), np.zeros((0, 0), np.int64))
    assert math.isnan(empty.overall_accuracy) and math.isnan(empty.kappa)
    assert math.isnan(ErrorStats().rmse)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=40), st.integers(0, 40))
def test_rmse_matches_loop_and_adds_up(pairs, cut):
    ref = np.array([a for a, _ in pairs])
    prod = np.array([b for _, b in pairs])
    expected = math.sqrt(sum((b - a) ** 2 for a, b in pairs) / len(pairs))
    assert rmse(ref, prod).rmse == pytest.approx(expected, rel=1e-9, abs=1e-12)
    cut = min(cut, len(pairs))
    merged = rmse(ref[:cut], prod[:cut]) + rmse(ref[cut:], prod[cut:])
    assert merged.count == len(pairs) and merged.rmse == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert "RMSE: " in merged.report()
