import numpy as np
import pytest
from scipy.stats import spearmanr

from mpo_core.reproduction.paired_bootstrap import metric_rows, paired_difference
from mpo_core.reproduction.verdict import FAILS, HOLDS, UNCLEAR


def test_rowwise_metrics_equal_scipy_and_numpy():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 6, 200).astype(float)  # ties, like STS-B's scores
    predictions = rng.normal(size=(3, 200)) + gold
    expected = [spearmanr(p, gold).statistic for p in predictions]
    assert np.allclose(metric_rows("spearman", predictions, gold), expected)
    assert np.allclose(metric_rows("pearson", predictions, gold), [np.corrcoef(p, gold)[0, 1] for p in predictions])
    labels = rng.integers(0, 2, 50)
    assert metric_rows("accuracy", np.stack([labels, 1 - labels]), labels).tolist() == [1.0, 0.0]


def test_identical_rows_differ_by_exactly_nothing():
    rng = np.random.default_rng(1)
    gold = rng.normal(size=300)
    runs = gold + rng.normal(size=(4, 300))
    interval = paired_difference("spearman", runs, runs, gold, resamples=200)
    assert interval.difference == interval.low == interval.high == 0.0
    assert interval.equivalent(0.01) == HOLDS and interval.seeds == 4


def test_pairing_removes_the_noise_the_rows_share():
    """Both rows see the same hard examples: paired, a small true gap is resolved."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    shared = rng.random((5, 2000)) < 0.2  # examples both get wrong, per seed
    reference = np.where(shared, 1 - labels, labels)
    extra = rng.random((5, 2000)) < 0.03  # the method gets 3 % more wrong
    method = np.where(shared | extra, 1 - labels, labels)
    interval = paired_difference("accuracy", method, reference, labels, resamples=500)
    assert interval.low < interval.difference < interval.high < 0
    assert -0.035 < interval.difference < -0.015
    assert interval.not_below(0.0) == FAILS and interval.not_below(0.05) == HOLDS
    assert interval.equivalent(0.01) == FAILS and interval.equivalent(0.05) == HOLDS
    wide = paired_difference("accuracy", method[:1, :100], reference[:1, :100], labels[:100], resamples=500)
    assert wide.equivalent(0.03) == UNCLEAR


def test_the_interval_is_reproducible_and_covers_about_its_level():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    a = np.where(rng.random((3, 400)) < 0.2, 1 - labels, labels)
    b = np.where(rng.random((3, 400)) < 0.2, 1 - labels, labels)
    first = paired_difference("accuracy", a, b, labels, resamples=300, seed=7)
    assert first == paired_difference("accuracy", a, b, labels, resamples=300, seed=7)
    # the true difference is 0: most independent replications' intervals contain it
    hits = 0
    for k in range(40):
        r = np.random.default_rng(100 + k)
        a = np.where(r.random((3, 400)) < 0.2, 1 - labels, labels)
        b = np.where(r.random((3, 400)) < 0.2, 1 - labels, labels)
        interval = paired_difference("accuracy", a, b, labels, resamples=200, seed=k)
        hits += interval.low <= 0 <= interval.high
    assert hits >= 32  # 95 % nominal; 40 draws


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "f1"}, "metric must be"), ({"resamples": 10}, "at least 100"),
    ({"labels": np.zeros(3)}, "must be paired"), ({"method": np.array([[0.0, np.nan, 1.0, 1.0]])}, "NaN"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"metric": "accuracy", "method": np.zeros((1, 4)), "reference": np.zeros((1, 4)),
            "labels": np.zeros(4)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        paired_difference(args.pop("metric"), args.pop("method"), args.pop("reference"), args.pop("labels"), **args)
