"""The dashboard's memory budget: estimates before allocating, a cap that admits every ordinary request."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mpo_core
from app import decompose, memory_budget
from app.memory_budget import MEMORY_CAP_BYTES, check_decomposition, check_memory, format_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("count, text", [(0, "0 B"), (1536, "1.5 KiB"), (1 << 30, "1 GiB"), (50.5 * 2**30, "50.5 GiB"),
                                         (3 * 2**40, "3 TiB"), (2**60, "1.05e+06 TiB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_a_request_over_the_cap_names_the_estimate_the_cap_and_what_to_do():
    assert check_memory("x", 100, cap=100) == 100
    with pytest.raises(ValueError, match=r"^Drawing would need about 1.5 KiB of memory, over the dashboard's cap of "
                                         r"1 KiB per request: draw less\.$"):
        check_memory("Drawing", 1536, cap=1024, hint="draw less")


def test_every_packaged_weight_fits_at_every_n():
    for name, (rows, cols) in decompose.model_weights().items():
        for n in range(2, decompose.MAX_NUM_TENSORS + 1):
            check_decomposition(mpo_core.plan_shape(rows, cols, n=n))


@pytest.mark.parametrize("side", [decompose.MAX_RANDOM_SIDE, decompose.MAX_IMAGE_SIDE])
def test_the_largest_random_matrix_and_image_fit_at_every_n(side):
    for decay in (0.0, 3.0):
        memory_budget.check_random_matrix(side, side, decay)
    for n in range(2, decompose.MAX_NUM_TENSORS + 1):
        check_decomposition(mpo_core.plan_shape(side, side, n=n))


def test_zero_padding_is_what_costs():
    """Padding beyond 2x + 16 is mpo_core's error; within it, the padded entries are what the cap weighs."""
    with pytest.raises(ValueError, match="multiply to 3200000"):
        mpo_core.plan_shape(30522, 384, out_factors=(20,) * 5, in_factors=(3, 4, 4, 4, 2))
    tight = mpo_core.plan_shape(30522, 384, out_factors=(6, 7, 13, 8, 7), in_factors=(3, 4, 4, 4, 2))
    padded = mpo_core.plan_shape(30522, 384, out_factors=(8,) * 5, in_factors=(3, 4, 4, 4, 2))
    cap = (memory_budget.decomposition_bytes(tight) + memory_budget.decomposition_bytes(padded)) // 2
    assert memory_budget.decomposition_bytes(tight) < cap < memory_budget.decomposition_bytes(padded)
    assert check_decomposition(tight, cap) is tight
    with pytest.raises(ValueError, match=r"\(1.07x its entries\).*Re-plan factors"):
        check_decomposition(padded, cap)


MEASURE = textwrap.dedent("""
    import json, sys
    import psutil, torch
    torch.set_num_threads(1)
    from app import decompose, memory_budget
    rows, cols, out_factors, in_factors = json.loads(sys.argv[1])
    matrix = decompose.random_matrix(rows, cols)
    shape = decompose.plan(rows, cols, len(out_factors), decompose.format_factors(out_factors),
                           decompose.format_factors(in_factors))
    before = psutil.Process().memory_info().rss
    decompose.decompose_matrix(matrix, shape.out_factors, shape.in_factors)
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so it would start at the pytest parent's peak
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
    print(json.dumps({"peak": peak - before, "estimate": memory_budget.decomposition_bytes(shape)}))
""")


@pytest.mark.slow  # fresh processes, so that their peak memory is this decomposition's
@pytest.mark.parametrize("case", [(1024, 1024, (1024, 1), (1, 1024)), (256, 192, (1, 1, 1, 1, 528), (1, 1, 1, 1, 192)),
                                  (2048, 768, (8, 8, 8, 4), (4, 8, 8, 3))])
def test_the_estimate_bounds_the_measured_peak(case):
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(case)], cwd=ROOT, capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout)
    assert 0 < measured["peak"] <= measured["estimate"], measured
