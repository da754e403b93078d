"""Verdicts from seeds: the Welch interval against scipy's own test, and the three outcomes."""
import math

import pytest
from scipy import stats

from mpo_core.reproduction.verdict import FAILS, HOLDS, UNCLEAR, difference_interval, not_below


def test_interval_is_welchs_t_interval():
    method, reference = [80.1, 79.4, 80.9], [81.0, 81.6, 80.2, 81.1]
    d, low, high = difference_interval(method, reference)
    welch = stats.ttest_ind(method, reference, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(sum(method) / 3 - sum(reference) / 4)
    assert (low, high) == pytest.approx((welch.low, welch.high))


@pytest.mark.parametrize("method, verdict", [
    ([80.0, 80.2, 79.8], HOLDS),      # d = 0 +- ~0.5: the whole interval above -1
    ([75.0, 75.2, 74.8], FAILS),      # d = -5: the whole interval below -1
    ([79.0, 81.0, 77.0], UNCLEAR),    # d = -1 +- ~5: straddles -1
])
def test_within_one_point_three_outcomes(method, verdict):
    assert not_below(method, [80.0, 80.1, 79.9], margin=1.0).verdict == verdict


def test_one_seed_cannot_tell_and_says_so():
    result = not_below([90.0], [80.0, 80.5, 79.5], margin=1.0)
    assert result.verdict == UNCLEAR and math.isnan(result.low) and "one seed" in result.describe()
    with pytest.raises(ValueError, match="at least one score"):
        not_below([], [80.0])


def test_identical_seeds_give_a_point_interval():
    assert not_below([80.0, 80.0], [80.5, 80.5], margin=1.0).verdict == HOLDS  # d = -0.5 exactly
    assert "95 % CI [-0.5, -0.5]" in not_below([80.0, 80.0], [80.5, 80.5], margin=1.0).describe()
