"""The benchmark scripts must keep running (quick mode); their figures are not asserted here."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_benchmark_quick_mode_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_engine.py"), "--quick", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    for heading in ("1. Full-bond decomposition", "2. Slider path", "3. MPOLinear vs nn.Linear"):
        assert heading in result.stdout


def test_finetune_benchmark_quick_mode_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_finetune.py"), "--quick", "--device", "cpu"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    for heading in ("1. mpo_full_lfa vs full", "2. merged model inference latency", "3. examples/s"):
        assert heading in result.stdout
