import os
import subprocess
import sys
import time

from mpo_core.runs.process_alive import process_alive


def test_a_running_process_is_alive_and_an_ended_one_is_not():
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert process_alive(child.pid)
    child.kill()
    child.wait()
    assert not process_alive(child.pid)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[-1][:1]


def test_an_ended_child_not_yet_reaped_is_reported_ended():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while _state(child.pid) != "Z":  # ended, not reaped: a zombie that os.kill(pid, 0) still finds
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not process_alive(child.pid)
