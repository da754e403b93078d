"""GLUE metrics as the paper reports them, computed locally with scikit-learn and scipy.

=========  =================  ==================
task       main metric        also reported
=========  =================  ==================
CoLA       Matthews corr.     accuracy
STS-B      Spearman corr.     Pearson corr.
MRPC, QQP  accuracy           F1 (positive class 1)
others     accuracy
=========  =================  ==================

Values are fractions (accuracy in [0, 1], correlations in [-1, 1]); the paper
prints them x100. Where a score is undefined because predictions or
references are constant, it is reported as 0.0 (no detectable agreement):
that is scikit-learn's convention for Matthews and F1, and it is applied to
Pearson and Spearman too, so the main metric is always finite and can select
a best checkpoint. Non-finite predictions (any NaN or infinite logit or
score, the output of a diverged model) make **every** metric NaN, main
included: an argmax over NaN logits picks an arbitrary class and would score
like a guess (0.625 on a skewed dev set), which is no score at all. NaN rather
than an error, so that evaluating a diverged run still ends as diverged runs
do (a results record with the divergence step and null scores).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .glue import GlueTask, get_task


def compute_glue_metrics(task: str | GlueTask, predictions, references) -> dict[str, float | str]:
    """Score predictions on a GLUE task.

    Parameters
    ----------
    task : str or GlueTask
    predictions : array_like
        Logits ``(n, num_labels)`` (argmax is taken) or class ids ``(n,)`` for
        classification; scores ``(n,)`` or ``(n, 1)`` for STS-B.
    references : array_like
        Gold class ids or STS-B scores, shape ``(n,)``.

    Returns
    -------
    dict
        The task's metrics (keys among ``accuracy``, ``f1``, ``matthews``,
        ``pearson``, ``spearman``), plus ``main`` (value of the paper's
        metric) and ``main_name`` (its key). All NaN when any prediction is
        NaN or infinite (see the module docstring).
    """
    task = get_task(task)
    references = np.asarray(references).reshape(-1)
    raw = np.asarray(predictions)
    predictions = _predicted_values(task, raw, len(references))
    if np.issubdtype(raw.dtype, np.number) and not np.isfinite(raw).all():  # a diverged model: no score
        scores = {name: float("nan") for name in task.metrics}
    else:
        scores = {name: _METRICS[name](predictions, references) for name in task.metrics}
    return {**scores, "main": scores[task.metric], "main_name": task.metric}


def predicted_classes(task: str | GlueTask, predictions) -> int | None:
    """How many distinct classes ``predictions`` (logits or ids) name; 1 = a constant prediction. ``None`` for STS-B."""
    task = get_task(task)
    if task.is_regression:
        return None
    predictions = np.asarray(predictions)
    return int(len(np.unique(_predicted_values(task, predictions, len(predictions)))))


def _predicted_values(task: GlueTask, predictions: np.ndarray, n: int) -> np.ndarray:
    """Class ids or scores, shape ``(n,)``, from logits, ids or scores."""
    if n == 0:
        raise ValueError("no references given; metrics need at least one example.")
    if predictions.ndim == 2 and predictions.shape[1] == task.num_labels > 1:
        predictions = predictions.argmax(axis=1)  # (n, C) -> (n,)
    elif predictions.ndim == 2 and predictions.shape[1] == 1 and task.is_regression:
        predictions = predictions[:, 0]  # (n, 1) -> (n,)
    if predictions.shape != (n,):
        raise ValueError(f"{task.display_name}: predictions of shape {predictions.shape} do not fit "
                         f"{n} references; give ({n},) or ({n}, {task.num_labels}).")
    if task.is_regression:
        return predictions.astype(np.float64)
    if not np.all(np.mod(predictions, 1) == 0):
        raise ValueError(f"{task.display_name}: class-id predictions must be integers; "
                         f"pass logits of shape ({n}, {task.num_labels}) to take the argmax.")
    return predictions.astype(np.int64)


def _correlation(statistic):
    def score(predictions: np.ndarray, references: np.ndarray) -> float:
        if np.ptp(predictions) == 0 or np.ptp(references) == 0:
            return 0.0  # undefined for constant input; see module docstring
        return float(statistic(predictions, references).statistic)

    return score


def _matthews(predictions: np.ndarray, references: np.ndarray) -> float:
    with warnings.catch_warnings():  # one class only: sklearn warns, then returns 0.0 as documented
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(matthews_corrcoef(references, predictions))


_METRICS = {
    "accuracy": lambda p, r: float(accuracy_score(r, p)),
    "f1": lambda p, r: float(f1_score(r, p, pos_label=1, zero_division=0.0)),
    "matthews": _matthews,
    "pearson": _correlation(pearsonr),
    "spearman": _correlation(spearmanr),
}
