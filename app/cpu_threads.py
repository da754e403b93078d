"""Torch threads for a page's heavy call: the cores other processes leave free, for that call only.

torch starts one intra-op thread per core; when another process keeps a core
busy, the second thread does not get more CPU but makes every parallel region
wait for it (:mod:`mpo_core.runs.thread_budget`). Measured for issue 27 with
the machine's other core busy: the Entropy atlas' 40 decompositions 116 s on
two threads, 5.5 s on one; the allocator's bonds for the word embedding 44-57 s
against 1.7-2.9 s. A Streamlit server runs every session's script in its own
thread of one process, so the count is set around the call, in the calling
thread, and put back after::

    with cpu_threads.free_cores():
        atlas.build_atlas(...)

The free cores are measured between calls (no waiting) when the last
measurement is at least :data:`MIN_SAMPLE` s old, else over a short sample.
Without ``psutil`` the call runs on one thread. No ``streamlit`` import.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import torch

from mpo_core.runs import thread_budget

MIN_SAMPLE = 0.2  # seconds: a shorter interval says little about the load

_lock = threading.Lock()
_last: list = []  # [CpuSample, threads] of the latest measurement, shared by the sessions of this process


def free_thread_count() -> int:
    """Threads for the cores other processes leave free now (1 .. cores); 1 when the load cannot be read."""
    try:
        now = thread_budget.cpu_sample()
    except ImportError:  # psutil is not installed
        return 1
    with _lock:
        previous = _last[0] if _last else None
        if previous is not None and now.wall - previous.wall < MIN_SAMPLE:
            return _last[1]
    if previous is None or now.wall - previous.wall > 60:  # nothing recent to compare with: sample briefly
        time.sleep(MIN_SAMPLE)
        previous, now = now, thread_budget.cpu_sample()
    threads = thread_budget.threads_for(thread_budget.free_cores(previous, now), thread_budget.machine_cores())
    with _lock:
        _last[:] = [now, threads]
    return threads


@contextmanager
def free_cores(threads: int | None = None):
    """Run the block on ``threads`` torch threads (default :func:`free_thread_count`); yields the count."""
    count = free_thread_count() if threads is None else max(1, int(threads))
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)
