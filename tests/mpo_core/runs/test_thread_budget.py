"""Threads from the cores other processes leave free (no oversubscription on a busy machine)."""
import pytest
import torch

from mpo_core.runs import thread_budget
from mpo_core.runs.thread_budget import CpuSample, ThreadBudget, free_cores, threads_for


@pytest.mark.parametrize("others, own, expected", [
    (0.0, 2.0, 2.0),   # idle machine, this process on both cores: both free for it
    (1.0, 1.0, 1.0),   # another process holds one core
    (2.0, 0.0, 0.0),   # both held by others
    (1.7, 0.3, 0.3),
])
def test_free_cores_count_only_other_processes(others, own, expected):
    before = CpuSample(wall=10.0, machine_busy=100.0, own_busy=5.0)
    after = CpuSample(wall=11.0, machine_busy=100.0 + others + own, own_busy=5.0 + own)
    assert free_cores(before, after, cores=2) == pytest.approx(expected)


@pytest.mark.parametrize("free, threads", [(2.0, 2), (1.8, 2), (1.7, 1), (1.0, 1), (0.3, 1), (0.0, 1), (7.9, 4)])
def test_a_core_others_use_more_than_a_quarter_of_is_not_free(free, threads):
    assert threads_for(free, cores=4 if free > 4 else 2) == threads


def test_the_budget_follows_the_load_and_sets_torch_threads(monkeypatch):
    samples = iter([CpuSample(0.0, 0.0, 0.0), CpuSample(1.0, 0.1, 0.0),      # start: idle -> 2 threads
                    CpuSample(5.0, 8.0, 4.0),                                   # too soon: not re-measured
                    CpuSample(12.0, 23.0, 11.0)])                               # others: 11.9 s in 11 s: 1 thread
    monkeypatch.setattr(thread_budget, "cpu_sample", lambda: next(samples))
    monkeypatch.setattr(thread_budget.time, "sleep", lambda s: None)
    before = torch.get_num_threads()
    try:
        budget = ThreadBudget(interval=10.0, cores=2)
        assert budget.start() == 2 and torch.get_num_threads() == 2
        assert budget.update() == 2  # 4 s later: the last measurement stands
        assert budget.update() == 1 and torch.get_num_threads() == 1
        assert [h[1:] for h in budget.history] == [(1.9, 2), (0.92, 1)]
    finally:
        torch.set_num_threads(before)


def test_a_real_sample_is_consistent():
    a = thread_budget.cpu_sample()
    sum(i * i for i in range(200_000))  # some CPU of our own
    b = thread_budget.cpu_sample()
    assert b.wall > a.wall and b.own_busy >= a.own_busy and b.machine_busy >= a.machine_busy
    assert 0.0 <= free_cores(a, b) <= thread_budget.machine_cores()
