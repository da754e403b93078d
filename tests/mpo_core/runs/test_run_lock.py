"""One process holds a run: a second is refused naming the holder; the lock goes with its process."""
import os
import signal
import subprocess
import sys

import pytest

from mpo_core.runs.run_folder import RunFolder
from mpo_core.runs.run_lock import LOCK_FILE, RunInUseError, RunLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

HOLD = """
import sys, time
from mpo_core.runs.run_lock import RunLock
lock = RunLock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def hold_in_child(folder):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        with pytest.raises(RunInUseError, match=f"pid {child.pid} on "):
            RunLock(tmp_path)
    finally:
        child.kill()
        child.wait()


def test_the_lock_goes_with_a_killed_holder_and_a_release(tmp_path):
    child = hold_in_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    lock = RunLock(tmp_path)  # no stale lock after kill -9
    assert lock.held and f"pid {os.getpid()}" in (tmp_path / LOCK_FILE).read_text()
    lock.release()
    RunLock(tmp_path).release()


def test_a_run_folder_holds_its_run_until_closed(tmp_path):
    run = tmp_path / "run"
    with RunFolder(run) as first:
        (run / "config.json").write_text("{}")
        with pytest.raises(RunInUseError, match=f"pid {os.getpid()}"):
            RunFolder(run, resume=True)
        assert first.lock.held
    with RunFolder(run, resume=True):
        pass


def test_a_resume_that_waited_out_a_holder_that_finished_the_run_is_refused(tmp_path):
    run = tmp_path / "run"
    with RunFolder(run):
        (run / "config.json").write_text("{}")
        (run / "results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="finished"):
        RunFolder(run, resume=True)
    RunLock(run).release()  # the refused resume let the lock go


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with RunFolder(run):
        (run / "config.json").write_text("{}")
        monkeypatch.setenv("RANK", "1")
        other_rank = RunFolder(run, resume=True)  # reads the path only
        assert other_rank.lock is None


def test_an_abandoned_new_folder_is_gone(tmp_path):
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.abandon()
    assert not run.exists()
    RunFolder(run).close()  # a rerun starts
