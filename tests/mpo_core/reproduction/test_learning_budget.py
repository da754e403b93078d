import math

import pytest

from mpo_core.reproduction import learning_budget as lb


def _curve(f, steps=range(50, 901, 50)):
    return [(t, f(t)) for t in steps]


def test_last_third_gain_is_the_fitted_line_over_the_window():
    linear = _curve(lambda t: 80 + 0.01 * t)  # 0.01 point per step
    assert lb.last_third_gain(linear, 600) == pytest.approx(0.01 * 200)
    flat_with_noise = _curve(lambda t: 85 + (0.3 if (t // 50) % 2 else -0.3))
    assert abs(lb.last_third_gain(flat_with_noise, 900)) < 0.5
    assert math.isnan(lb.last_third_gain(linear, 100))  # 2 evaluations in [67, 100]: no line


def test_the_budget_is_where_every_later_last_third_is_flat():
    saturating = _curve(lambda t: 86 - 10 * math.exp(-t / 100))
    steps = lb.chosen_steps(saturating, 150, 0.5)
    assert steps is not None and lb.last_third_gain(saturating, steps) < 0.5
    earlier = [t for t, _ in saturating if 150 <= t < steps]
    assert earlier and lb.last_third_gain(saturating, earlier[-1]) >= 0.5
    assert lb.chosen_steps(_curve(lambda t: 0.01 * t), 150, 0.5) is None  # still learning at the end


def test_a_late_rise_moves_the_budget_past_it():
    """A curve that is flat, then rises again: the budget is after the rise, not at the first flat stretch."""
    curve = _curve(lambda t: 80 if t < 500 else 80 + 0.02 * (min(t, 650) - 500), range(50, 1501, 50))
    assert lb.last_third_gain(curve, 450) < 0.5  # flat before the rise
    steps = lb.chosen_steps(curve, 150, 0.5)
    assert steps is not None and steps > 900
    assert lb.chosen_steps(curve[:18], 150, 0.5) is None  # cut at 900, the rise is still in its last third
