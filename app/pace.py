"""Progress of a long computation made of items of known relative cost: fraction done and time left.

A page runs the computation in a worker thread and redraws its progress bar
from a :class:`Pace` a few times a second, so the bar moves during an item
that takes seconds (one SVD chain of the 30522 x 384 word embedding) instead of
sitting empty until the item ends::

    pace = Pace(total=sum(costs.values()), prior_rate=UNITS_PER_SECOND)
    for name in pace.steps(costs):      # worker thread: begin, work, end
        ...
    pace.fraction(), pace.seconds_left()  # page thread, any time

The rate (cost units per second) is measured on the items finished so far;
before the first one ends it is ``prior_rate`` (a figure measured on this
project's 2-core machine), so the first estimate may be off on another machine
and corrects itself as items finish. Plain Python, no ``streamlit`` import.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

#: an item never shows as finished before it ends: the bar stops this short of its end
ITEM_CAP = 0.95
#: measured time below this (seconds) is too short to be a rate
MIN_MEASURED = 0.2


class Pace:
    """Items of known cost begun and ended by one thread, read by another; times from ``clock``."""

    def __init__(self, total: float, prior_rate: float, clock: Callable[[], float] = time.perf_counter):
        if not total > 0 or not prior_rate > 0:
            raise ValueError(f"a pace needs a positive total cost and prior rate, got {total} and {prior_rate}.")
        self.total, self.prior_rate, self.clock = float(total), float(prior_rate), clock
        self.done = self.spent = self.current = 0.0  # cost of finished items, seconds they took, cost of the current
        self.label, self.began = "", clock()
        self.count = 0  # items finished

    def begin(self, label: str, cost: float) -> None:
        self.label, self.current, self.began = label, float(cost), self.clock()

    def end(self) -> None:
        self.spent += self.clock() - self.began
        self.done, self.current, self.count = self.done + self.current, 0.0, self.count + 1

    def discount(self, cost: float) -> None:
        """Take ``cost`` off the total: work that turned out to be done already (e.g. read from a cache)."""
        self.total = max(self.total - float(cost), 0.0)

    def steps(self, costs: Mapping[str, float]) -> Iterator[str]:
        """Each label of ``costs`` in order, begun before it is yielded and ended when the loop comes back."""
        for label, cost in costs.items():
            self.begin(label, cost)
            yield label
            self.end()

    @property
    def rate(self) -> float:
        """Cost units per second: measured on the finished items, else the prior."""
        return self.done / self.spent if self.spent >= MIN_MEASURED and self.done > 0 else self.prior_rate

    def fraction(self) -> float:
        """Share of the total cost done, the current item counted by its time so far (never past its end)."""
        if self.total <= 0:
            return 1.0
        into = min(self.current * ITEM_CAP, (self.clock() - self.began) * self.rate) if self.current else 0.0
        return min(1.0, (self.done + into) / self.total)

    def seconds_left(self) -> float:
        """Seconds to the end at the measured rate (at least 1 s while an item runs)."""
        left = max(self.total - self.done, 0.0) / self.rate - (self.clock() - self.began if self.current else 0.0)
        return max(left, 1.0 if self.current else 0.0)


def format_seconds(seconds: float) -> str:
    """``"about 12 s"`` / ``"about 2 min"`` for a progress bar."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {seconds / 60:.0f} min"


@contextmanager
def forward_steps(module, pace: Pace, total: int, label: str):
    """Count ``module``'s forward passes in this thread as items of cost 1 (e.g. batches of an embedding).

    Hooks on a model other threads may run too (a shared, cached model) see only this thread's passes.
    """
    thread, seen = threading.get_ident(), [0]

    def before(*_):
        if threading.get_ident() == thread:
            seen[0] += 1
            pace.begin(f"{label}: batch {min(seen[0], total)} of {total}", 1)

    def after(*_):
        if threading.get_ident() == thread:
            pace.end()

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield pace
    finally:
        for handle in handles:
            handle.remove()


__all__ = ["ITEM_CAP", "Pace", "format_seconds", "forward_steps"]
