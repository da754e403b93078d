"""Paired comparison of two rows scored on the same examples with the same seeds: a bootstrap interval.

Two rows (e.g. a compressed model and dense, or two fine-tuning methods)
are *paired* when every seed of one has a run of the other with that seed,
and every run predicted the same evaluation examples. Their difference in a
metric then varies for two reasons: which seeds were drawn (training noise)
and which examples (the evaluation set's sampling). The bootstrap resamples
both, keeping the pairing, so the noise shared by the two rows cancels::

    resample b:  seeds s_1..s_S  drawn with replacement from the S paired seeds (kept as they are when S = 1)
                 examples e_1..e_n drawn with replacement from the n examples
                 d_b = mean_s metric(method[s, e]) - mean_s metric(reference[s, e])
    interval  = the (1 - level)/2 and (1 + level)/2 quantiles of d_b        (percentile bootstrap)
    difference = mean_s metric(method[s]) - mean_s metric(reference[s])     (all examples, all seeds)

Metrics are computed row-wise on the resampled examples: ``accuracy``
(predicted class ids against labels), ``spearman`` and ``pearson``
(scores against gold scores), in the metric's own units (fractions; a
caller reports points as 100x).

Verdicts, with the rules of :mod:`~mpo_core.reproduction.verdict`:

- :meth:`PairedInterval.not_below` "method is at most ``margin`` below reference":
  holds when the interval lies above ``-margin``, fails when it lies below;
- :meth:`PairedInterval.equivalent` "within ``margin``" as an equivalence statement:
  holds when both ends lie inside ``(-margin, margin)``, fails when the whole
  interval lies outside it on one side; otherwise cannot tell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from .verdict import FAILS, HOLDS, UNCLEAR

METRICS = ("accuracy", "spearman", "pearson")
#: resamples processed at once (bounds memory: chunk x seeds x examples values)
_CHUNK = 100


@dataclass(frozen=True)
class PairedInterval:
    """The paired difference ``method - reference`` and its bootstrap interval (metric units)."""

    metric: str
    difference: float
    low: float
    high: float
    seeds: int
    examples: int
    resamples: int
    level: float

    def not_below(self, margin: float = 0.0) -> str:
        if self.low > -margin:
            return HOLDS
        return FAILS if self.high < -margin else UNCLEAR

    def equivalent(self, margin: float) -> str:
        if -margin < self.low and self.high < margin:
            return HOLDS
        return FAILS if self.high < -margin or self.low > margin else UNCLEAR

    def describe(self, scale: float = 100.0, unit: str = " points") -> str:
        return (f"{self.difference * scale:+.2f}{unit}, {self.level:.0%} paired bootstrap interval "
                f"[{self.low * scale:+.2f}, {self.high * scale:+.2f}] ({self.seeds} seed(s), {self.examples} examples)")


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=-1) / denominator, np.nan)


def metric_rows(metric: str, predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``metric`` of each row of ``predictions`` ``(..., n)`` against the row of ``labels`` broadcast to it."""
    if metric == "accuracy":
        return (predictions == labels).mean(axis=-1)
    if metric == "pearson":
        return _rowwise_pearson(predictions.astype(float), np.broadcast_to(labels, predictions.shape).astype(float))
    if metric == "spearman":
        labels = np.broadcast_to(labels, predictions.shape)
        return _rowwise_pearson(rankdata(predictions, axis=-1), rankdata(labels, axis=-1))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")


def _as_runs(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must be predictions of shape (seeds, examples), got shape {array.shape}.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name} has NaN or infinite predictions: no metric can be paired on them.")
    return array


def paired_difference(metric: str, method, reference, labels, *, resamples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> PairedInterval:
    """The paired bootstrap interval of ``metric(method) - metric(reference)`` (see the module docstring).

    ``method`` and ``reference``: predictions of shape ``(seeds, examples)`` (or ``(examples,)`` for one
    run each), row ``s`` of both from the same seed, column ``e`` the same example. ``labels``: the
    examples' gold labels or scores. The resampling draws from its own generator seeded by ``seed``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if int(resamples) < 100:
        raise ValueError(f"resamples must be at least 100 for a {level:.0%} interval, got {resamples}.")
    a, b = _as_runs("method", method), _as_runs("reference", reference)
    gold = np.asarray(labels)
    if a.shape != b.shape or gold.shape != (a.shape[1],):
        raise ValueError(f"method {a.shape}, reference {b.shape} and labels {gold.shape} must be paired: the same "
                         f"seeds and the same examples.")
    seeds, n = a.shape
    difference = float(np.mean(metric_rows(metric, a, gold)) - np.mean(metric_rows(metric, b, gold)))
    generator = np.random.default_rng(seed)
    draws = []
    for start in range(0, int(resamples), _CHUNK):
        k = min(_CHUNK, int(resamples) - start)
        examples = generator.integers(0, n, size=(k, n))  # (k, n)
        runs = generator.integers(0, seeds, size=(k, seeds)) if seeds > 1 else np.zeros((k, 1), dtype=int)
        picked_a = a[runs[:, :, None], examples[:, None, :]]  # (k, S, n)
        picked_b = b[runs[:, :, None], examples[:, None, :]]
        picked_gold = gold[examples][:, None, :]  # (k, 1, n)
        draws.append(metric_rows(metric, picked_a, picked_gold).mean(axis=1)
                     - metric_rows(metric, picked_b, picked_gold).mean(axis=1))
    values = np.concatenate(draws)
    values = values[np.isfinite(values)]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return PairedInterval(metric, difference, float(low), float(high), seeds, n, int(resamples), level)


__all__ = ["METRICS", "PairedInterval", "metric_rows", "paired_difference"]
