"""The suite's own configuration: a failure in a thread (Streamlit's script thread, a job's reader) fails the test.

pytest only turns an exception raised outside the test's thread into ``PytestUnhandledThreadExceptionWarning``.
Left a warning, an assertion inside an AppTest's script thread could never fail its test (issue 27 found one
such test); ``pytest.ini`` makes the warning an error. This runs a two-line test under that file and checks it fails.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # > 2 s each: a pytest in a subprocess (issue 27's fast subset stays under 3 minutes)
ROOT = Path(__file__).resolve().parents[1]


def run_under_our_config(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_thread.py"
    test.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path), "-q", str(test)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
    )


THREAD_FAILS = """
import threading

def test_a_thread_raises():
    def boom():
        raise AssertionError("raised in a thread")
    t = threading.Thread(target=boom)
    t.start()
    t.join()
"""


def test_an_exception_in_another_thread_fails_the_test(tmp_path):
    result = run_under_our_config(tmp_path, THREAD_FAILS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "raised in a thread" in result.stdout


def test_a_quiet_thread_passes(tmp_path):  # the control: the same file without the raise passes
    result = run_under_our_config(tmp_path, THREAD_FAILS.replace('raise AssertionError("raised in a thread")', "pass"))
    assert result.returncode == 0, result.stdout + result.stderr
