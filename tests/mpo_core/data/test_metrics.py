"""GLUE metrics against hand-computed values and direct formulas."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpo_core.data.glue import GLUE_TASKS
from mpo_core.data.metrics import compute_glue_metrics


def pearson(x, y):
    x, y = np.asarray(x, float) - np.mean(x), np.asarray(y, float) - np.mean(y)
    return float(x @ y / math.sqrt((x @ x) * (y @ y)))


@pytest.mark.parametrize("name", sorted(GLUE_TASKS))
def test_perfect_predictions_score_one(name):
    task = GLUE_TASKS[name]
    references = [0.0, 1.2, 2.5, 3.1, 4.0, 5.0] if task.is_regression else [i % task.num_labels for i in range(6)]
    scores = compute_glue_metrics(name, references, references)
    assert set(scores) == {*task.metrics, "main", "main_name"}
    assert scores["main_name"] == task.metric
    assert all(scores[m] == pytest.approx(1.0) for m in task.metrics)


def test_matthews_and_f1_against_confusion_counts():
    predictions, references = [1, 1, 0, 0, 1], [1, 0, 0, 0, 1]  # TP=2 TN=2 FP=1 FN=0
    tp, tn, fp, fn = 2, 2, 1, 0
    matthews = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    cola = compute_glue_metrics("CoLA", predictions, references)
    assert cola["matthews"] == cola["main"] == pytest.approx(matthews) == pytest.approx(2 / 3)
    assert cola["accuracy"] == pytest.approx(0.8)
    mrpc = compute_glue_metrics("MRPC", predictions, references)
    assert mrpc["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn)) and mrpc["main"] == pytest.approx(0.8)


def test_spearman_and_pearson_against_formulas():
    predictions, references = [0.5, 2.0, 1.0, 4.0, 3.5], [1.0, 3.0, 2.0, 3.5, 5.0]
    ranks_p, ranks_r = [1, 3, 2, 5, 4], [1, 3, 2, 4, 5]
    d2 = sum((a - b) ** 2 for a, b in zip(ranks_p, ranks_r))
    scores = compute_glue_metrics("sts-b", np.array(predictions)[:, None], references)  # (n, 1) regression head
    assert scores["spearman"] == scores["main"] == pytest.approx(1 - 6 * d2 / (5 * (25 - 1)))
    assert scores["pearson"] == pytest.approx(pearson(predictions, references))


def test_logits_are_argmaxed():
    logits = np.array([[2.0, 0.1, 0.3], [0.0, 1.0, -1.0], [0.0, 0.0, 5.0], [3.0, 0.0, 0.0]])
    scores = compute_glue_metrics("mnli", logits, [0, 1, 2, 2])
    assert scores == {"accuracy": 0.75, "main": 0.75, "main_name": "accuracy"}


def test_degenerate_inputs_score_zero_not_nan():
    assert compute_glue_metrics("cola", [1, 1, 1, 1], [0, 1, 0, 1])["matthews"] == 0.0
    assert compute_glue_metrics("qqp", [0, 0], [0, 0])["f1"] == 0.0
    constant = compute_glue_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert constant["spearman"] == constant["pearson"] == 0.0
    assert math.isnan(compute_glue_metrics("stsb", [np.nan, 1.0, 2.0], [1.0, 2.0, 3.0])["spearman"])


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"predictions of shape \(3,\) do not fit 2 references"):
        compute_glue_metrics("sst2", [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        compute_glue_metrics("rte", np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="must be integers"):
        compute_glue_metrics("rte", [0.2, 0.9], [0, 1])
    with pytest.raises(ValueError, match="at least one example"):
        compute_glue_metrics("rte", [], [])
    with pytest.raises(ValueError, match="unknown GLUE task"):
        compute_glue_metrics("squad", [0], [0])


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=30))
def test_accuracy_and_matthews_bounds(pairs):
    predictions, references = map(list, zip(*pairs))
    scores = compute_glue_metrics("mrpc", predictions, references)
    assert scores["accuracy"] == pytest.approx(np.mean(np.equal(predictions, references)))
    assert 0.0 <= scores["f1"] <= 1.0
    cola = compute_glue_metrics("cola", predictions, references)
    assert -1.0 <= cola["matthews"] <= 1.0


@pytest.mark.parametrize("task, predictions, references", [
    ("rte", np.full((8, 2), np.nan), [0, 0, 0, 0, 0, 1, 1, 0]),  # argmax of NaN: class 0, "accuracy 0.75"
    ("mrpc", [[0.0, np.inf], [1.0, 0.0]], [1, 0]),
    ("cola", [[np.nan, 1.0], [1.0, 0.0]], [1, 0]),
    ("stsb", [np.nan, 1.0, 2.0], [1.0, 2.0, 3.0]),
    ("stsb", [[np.inf], [1.0], [2.0]], [1.0, 2.0, 3.0]),
])
def test_non_finite_predictions_score_nan_on_every_metric(task, predictions, references):
    scores = compute_glue_metrics(task, predictions, references)
    assert all(math.isnan(v) for k, v in scores.items() if k != "main_name"), scores
