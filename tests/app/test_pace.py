"""app/pace.py: progress over items of known cost, read from another thread while they run."""
import threading

import pytest
import torch
from torch import nn

from app.pace import ITEM_CAP, Pace, format_seconds, forward_steps


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_moves_during_an_item_and_the_rate_is_measured_on_finished_ones():
    clock = Clock()
    pace = Pace(total=10, prior_rate=1.0, clock=clock)
    assert pace.fraction() == 0 and pace.seconds_left() == 10  # nothing begun: the prior rate
    pace.begin("a", 4)
    clock.now = 2.0
    assert pace.fraction() == pytest.approx(0.2) and pace.seconds_left() == pytest.approx(8)
    clock.now = 20.0  # far slower than the prior: the item is never shown as done before it ends
    assert pace.fraction() == pytest.approx(4 * ITEM_CAP / 10) and pace.seconds_left() == 1.0
    pace.end()  # 4 units in 20 s: 0.2 units per second from now on
    assert pace.rate == pytest.approx(0.2) and pace.fraction() == pytest.approx(0.4)
    assert pace.seconds_left() == pytest.approx(30)
    pace.begin("b", 6)
    clock.now = 25.0
    assert pace.fraction() == pytest.approx(0.5) and pace.seconds_left() == pytest.approx(25)
    pace.end()
    assert pace.fraction() == 1 and pace.seconds_left() == 0 and pace.count == 2


def test_steps_begin_and_end_each_item_around_the_loop_body():
    clock = Clock()
    pace = Pace(total=3, prior_rate=1.0, clock=clock)
    seen = []
    for label in pace.steps({"x": 1, "y": 2}):
        seen.append((label, pace.label, pace.current, pace.done))
        clock.now += 1
    assert seen == [("x", "x", 1, 0), ("y", "y", 2, 1)] and pace.done == 3 and pace.count == 2


@pytest.mark.parametrize("total, rate", [(0, 1.0), (1, 0.0), (-1, 1.0)])
def test_a_pace_needs_positive_cost_and_rate(total, rate):
    with pytest.raises(ValueError, match="positive"):
        Pace(total, rate)


def test_forward_steps_count_this_threads_passes_only():
    model = nn.Linear(3, 2)
    pace = Pace(total=3, prior_rate=1.0)
    other = threading.Thread(target=lambda: model(torch.ones(1, 3)))  # e.g. another session using a cached model
    with forward_steps(model, pace, 3, "model"):
        model(torch.ones(1, 3))
        other.start()
        other.join()
        model(torch.ones(1, 3))
        assert pace.count == 2 and pace.label == "model: batch 2 of 3"
    model(torch.ones(1, 3))
    assert pace.count == 2 and not model._forward_hooks and not model._forward_pre_hooks


def test_format_seconds():
    assert [format_seconds(s) for s in (0.2, 12.4, 59, 150)] == ["about 1 s", "about 12 s", "about 59 s",
                                                                  "about 2 min"]


def test_work_found_done_comes_off_the_total():
    clock = Clock()
    pace = Pace(total=10, prior_rate=1.0, clock=clock)
    pace.discount(6)
    assert pace.total == 4 and pace.seconds_left() == 4
    pace.discount(9)  # all of it was cached
    assert pace.total == 0 and pace.fraction() == 1 and pace.seconds_left() == 0
