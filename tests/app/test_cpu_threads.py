"""Torch threads around a page's heavy call: the cores other processes leave free, put back afterwards."""
import pytest
import torch

from app import cpu_threads
from mpo_core.runs import thread_budget


@pytest.fixture(autouse=True)
def _fresh_measurement(monkeypatch):
    monkeypatch.setattr(cpu_threads, "_last", [])


def _machine(monkeypatch, busy_per_second: float, cores: int = 2):
    """A fake clock and load: other processes keep ``busy_per_second`` cores busy; this process idles."""
    clock = {"t": 1000.0}

    def sample():
        clock["t"] += 0.25
        return thread_budget.CpuSample(clock["t"], busy_per_second * clock["t"], 0.0)

    monkeypatch.setattr(thread_budget, "cpu_sample", sample)
    monkeypatch.setattr(thread_budget, "machine_cores", lambda: cores)
    monkeypatch.setattr(cpu_threads.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize("busy, threads", [(0.0, 2), (1.0, 1), (2.0, 1), (0.1, 2)])
def test_threads_follow_the_cores_others_leave_free(monkeypatch, busy, threads):
    _machine(monkeypatch, busy)
    assert cpu_threads.free_thread_count() == threads


def test_a_recent_measurement_is_reused(monkeypatch):
    _machine(monkeypatch, 1.0)
    assert cpu_threads.free_thread_count() == 1
    monkeypatch.setattr(thread_budget, "cpu_sample",
                        lambda: thread_budget.CpuSample(cpu_threads._last[0].wall + 0.05, 0.0, 0.0))
    assert cpu_threads.free_thread_count() == 1  # 50 ms later: the same answer, nothing re-measured


def test_without_psutil_one_thread(monkeypatch):
    def no_psutil():
        raise ImportError("No module named 'psutil'")

    monkeypatch.setattr(thread_budget, "cpu_sample", no_psutil)
    assert cpu_threads.free_thread_count() == 1


def test_the_count_holds_inside_the_block_only():
    before = torch.get_num_threads()
    with cpu_threads.free_cores(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with cpu_threads.free_cores(1):
            raise RuntimeError("the heavy call failed")
    assert torch.get_num_threads() == before


def test_the_real_machine_gives_a_count_in_range():
    assert 1 <= cpu_threads.free_thread_count() <= thread_budget.machine_cores()
