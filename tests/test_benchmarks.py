"""The benchmark scripts must keep running (quick mode); their figures are not asserted here."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark scripts

ROOT = Path(__file__).resolve().parents[1]


CPU = ("--device", "cpu")


@pytest.mark.parametrize("script, options, headings", [
    ("bench_engine.py", CPU, ("1. Full-bond decomposition", "2. Slider path", "3. MPOLinear vs nn.Linear")),
    ("bench_finetune.py", CPU, ("1. mpo_full_lfa vs full", "2. merged model inference latency", "3. examples/s")),
    ("bench_methods.py", CPU, ("1. mpop (LFA + dimension squeezing)", "2. opf (", "3. opf merged model")),
    ("bench_dashboard.py", (), ("1. Slider on Decompose", "2. First load of every page")),
    ("bench_allocation.py", (), ("1. Word embedding", "2. Every other 2-D weight", "3. Time per allocation")),
    ("bench_contraction.py", CPU, ("1. Big matrix", "2. MiniLM layer-0 matrices", "3. forward_mode='auto'")),
    ("bench_compare_estimates.py", (), ("1. Calibration curves", "2. Speed per (method, n)", "3. Other sizes")),
    ("bench_inference.py", (), ("1. Compressed MiniLM",)),
    ("bench_training.py", (), ("1. mpo_full_lfa vs full", "2. mpop vs mpo_full_lfa", "3. The LFA run's task adapter")),
])
def test_benchmark_quick_mode_runs(script, options, headings):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *options],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    for heading in headings:
        assert heading in result.stdout


def test_reliability_probes_run():
    """Two of issue 24's hostile probes through the probe script (the whole table takes minutes)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probe_reliability.py"), "--only", "STS-B score 1_0",
         "MPOLinear on an empty batch"], capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "2 of 2 probes pass; code ran in 0" in result.stdout, result.stdout[-2000:]
