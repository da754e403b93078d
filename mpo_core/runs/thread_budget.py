"""CPU threads from the cores actually free: no OpenMP oversubscription on a shared machine.

torch starts one intra-op thread per core. When other processes keep some of
those cores busy, the extra threads do not get more CPU: they wait for each
other at every parallel region while the scheduler hands their core to someone
else, and a run slows down far more than the CPU it lost (measured for issue 27:
a squeeze demo 2.7x slower with one of two cores busy, 12x on a loaded machine).

:func:`free_cores` measures how much CPU *other* processes used over an
interval (the machine's busy time less this process's own), and
:class:`ThreadBudget` sets ``torch.set_num_threads`` to the cores left over,
at least one, at most the machine's, re-measured every ``interval`` seconds as
load comes and goes::

    free = cores - (busy_all - busy_self) / seconds          threads = clamp(floor(free + slack), 1, cores)

With ``slack = 0.25`` a core that others use less than a quarter of the time
still counts as free (a shell, a watched page), one they use more does not.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

#: share of a core others may use while it still counts as free
SLACK = 0.25


def machine_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuSample:
    """Busy seconds of the whole machine and of this process, at one wall-clock time."""

    wall: float
    machine_busy: float
    own_busy: float


def cpu_sample() -> CpuSample:
    """A :class:`CpuSample` now (psutil: ``/proc/stat`` and this process's times)."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    own = psutil.Process().cpu_times()
    return CpuSample(time.monotonic(), sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0),
                     own.user + own.system)


def free_cores(before: CpuSample, after: CpuSample, cores: int | None = None) -> float:
    """Cores other processes left free between two samples (0 .. ``cores``)."""
    cores = machine_cores() if cores is None else cores
    seconds = after.wall - before.wall
    if seconds <= 0:
        return float(cores)
    others = (after.machine_busy - before.machine_busy) - (after.own_busy - before.own_busy)
    return min(float(cores), max(0.0, cores - others / seconds))


def threads_for(free: float, cores: int, slack: float = SLACK) -> int:
    """The thread count for ``free`` cores: ``floor(free + slack)``, within ``1 .. cores``."""
    return max(1, min(cores, math.floor(free + slack)))


@dataclass
class ThreadBudget:
    """Keeps ``torch``'s intra-op threads at the cores others leave free.

    Call :meth:`start` once (it samples for ``first_sample`` seconds) and
    :meth:`update` as often as convenient: it re-measures at most every
    ``interval`` seconds. ``history`` records ``(seconds since start, free cores, threads)``.
    """

    interval: float = 10.0
    first_sample: float = 0.3
    cores: int = field(default_factory=machine_cores)
    threads: int | None = None
    history: list = field(default_factory=list)
    _last: CpuSample | None = field(default=None, repr=False)
    _started: float = field(default=0.0, repr=False)

    def start(self) -> int:
        before = cpu_sample()
        time.sleep(self.first_sample)
        self._started = before.wall
        return self._apply(before, cpu_sample())

    def update(self) -> int | None:
        """Re-measure if ``interval`` seconds have passed; the (possibly new) thread count."""
        if self._last is None:
            return self.start()
        now = cpu_sample()
        if now.wall - self._last.wall < self.interval:
            return self.threads
        return self._apply(self._last, now)

    def _apply(self, before: CpuSample, after: CpuSample) -> int:
        import torch

        free = free_cores(before, after, self.cores)
        threads = threads_for(free, self.cores)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
            self.history.append((round(after.wall - self._started, 1), round(free, 2), threads))
        self._last = after
        return threads


def thread_callback(budget: ThreadBudget):
    """A ``TrainerCallback`` that calls ``budget.update()`` after every step (cheap: two small reads at most every
    ``interval`` seconds)."""
    from transformers import TrainerCallback

    class ThreadBudgetCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            budget.update()
            return control

    return ThreadBudgetCallback()
