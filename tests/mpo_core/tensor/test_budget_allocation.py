"""The model-wide budget: the multiple-choice knapsack against brute force."""
import itertools

import numpy as np
import pytest

from mpo_core.tensor.budget_allocation import allocate_budget


def _fronts(seed, matrices=4, options=5):
    rng = np.random.default_rng(seed)
    fronts = []
    for _ in range(matrices):
        params = np.sort(rng.integers(1, 40, options))
        errors = np.sort(rng.random(options) * 10)[::-1].copy()
        fronts.append((params, errors))
    return fronts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget", [20, 45, 80, 130])
def test_equals_brute_force_and_never_exceeds_the_budget(seed, budget):
    fronts = _fronts(seed)
    best = None
    for choice in itertools.product(*(range(len(p)) for p, _ in fronts)):
        params = sum(int(p[c]) for (p, _), c in zip(fronts, choice))
        if params <= budget:
            error = sum(float(e[c]) for (_, e), c in zip(fronts, choice))
            best = error if best is None else min(best, error)
    if best is None:
        with pytest.raises(ValueError, match="allow more parameters"):
            allocate_budget(fronts, budget)
        return
    result = allocate_budget(fronts, budget)
    assert result.grain == 1
    assert result.params <= budget and result.unspent == budget - result.params
    assert result.error == pytest.approx(best)


def test_large_budgets_are_rounded_up_per_option_so_the_budget_holds():
    fronts = [(np.arange(1000, 200_000, 997), np.linspace(5, 0, len(np.arange(1000, 200_000, 997)))) for _ in range(6)]
    result = allocate_budget(fronts, 500_000, resolution=256)
    assert result.grain > 1 and result.params <= 500_000
    assert result.unspent <= 6 * result.grain


def test_bad_fronts_are_clear_errors():
    with pytest.raises(ValueError, match="no fronts"):
        allocate_budget([], 10)
    with pytest.raises(ValueError, match="front 0"):
        allocate_budget([([1, 2], [1.0])], 10)
