"""Bond allocation: the optimal allocator against the old greedy, on the packaged model's real weights.

For every 2-D weight of MiniLM (n = 5) and each target ratio: the bond dims
of both allocators, their true relative errors (truncate + contract, so the
number is measured, not estimated), and the allocator's time, with the greedy
timed in the same run as the reference.

1. Word embedding (30522 x 384): true error at each ratio, optimal vs greedy
   (target at ratio 0.2: <= 0.845; greedy 0.857).
2. Every other matrix: how often the optimal allocator's true error is below /
   equal to / above the greedy's, and the mean difference.
3. Time per allocation, one thread: first call (with the central pair's
   table) and later calls, against the greedy.

Run: ``python benchmarks/bench_allocation.py`` (``--quick``: three matrices, two ratios).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpo_core import decompose, frobenius_error, list_weight_matrices, load_weight_matrix  # noqa: E402
from mpo_core.tensor.bond_allocation import greedy_bond_dims, optimal_bond_dims  # noqa: E402
from mpo_core.tensor.truncation import truncate_to  # noqa: E402

EMBEDDING = "embeddings.word_embeddings.weight"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def compare(weight, mpo, ratio) -> dict:
    budget = ratio * mpo.shape.num_matrix_params
    optimal, t_opt = timed(lambda: optimal_bond_dims(mpo, max_params=budget))
    greedy, t_greedy = timed(lambda: greedy_bond_dims(mpo, lambda params, added, cost: params <= budget))
    norm = float(weight.norm())
    errors = {name: frobenius_error(weight, truncate_to(mpo, dims).mpo.to_matrix()) / norm
              for name, dims in (("optimal", optimal), ("greedy", greedy))}
    return {"optimal": optimal, "greedy": greedy, **{f"error_{k}": v for k, v in errors.items()},
            "seconds_optimal": t_opt, "seconds_greedy": t_greedy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ratios = (0.1, 0.3) if args.quick else (0.05, 0.1, 0.2, 0.3, 0.5)
    names = [n for n in list_weight_matrices() if n != EMBEDDING]
    names = names[3:6] if args.quick else names

    print("1. Word embedding (30522 x 384), n = 5: true relative error, optimal vs greedy")
    weight = load_weight_matrix(EMBEDDING)
    mpo = decompose(weight, n=5)
    first = True
    for ratio in ratios if not args.quick else (0.2,):
        r = compare(weight, mpo, ratio)
        note = " (first call: builds the pair table)" if first else ""
        first = False
        print(f"   rho={ratio:<5} optimal {r['optimal']} {r['error_optimal']:.4f}   greedy {r['greedy']} "
              f"{r['error_greedy']:.4f}   time {r['seconds_optimal']:.2f} s vs {r['seconds_greedy']:.2f} s{note}")

    print("2. Every other 2-D weight, n = 5: optimal vs greedy true error")
    diffs, counts, times = [], {"below": 0, "equal": 0, "above": 0}, []
    for name in names:
        weight = load_weight_matrix(name)
        if weight.dim() != 2:
            continue
        mpo = decompose(weight, n=5)
        for ratio in ratios:
            r = compare(weight, mpo, ratio)
            diff = r["error_optimal"] - r["error_greedy"]
            diffs.append(diff)
            counts["below" if diff < -1e-6 else "above" if diff > 1e-6 else "equal"] += 1
            times.append((r["seconds_optimal"], r["seconds_greedy"]))
    print(f"   {len(diffs)} (matrix, ratio) pairs: optimal below greedy {counts['below']}, equal {counts['equal']}, "
          f"above {counts['above']}; mean difference {statistics.mean(diffs):+.4f} (min {min(diffs):+.4f})")
    print("3. Time per allocation (one thread), matrices of section 2")
    ours, greedy = (statistics.median(t[i] for t in times) for i in (0, 1))
    print(f"   median {1000 * ours:.1f} ms optimal (pair table included) vs {1000 * greedy:.1f} ms greedy: "
          f"{ours / greedy:.2f}x; max {1000 * max(t[0] for t in times):.0f} ms")


if __name__ == "__main__":
    main()
