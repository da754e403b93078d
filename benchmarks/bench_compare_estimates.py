"""Compare page: how long each method's curve really takes, against the page's estimate.

The Compare page offers to compute the curves it has not cached with an
estimate: a curve's work units (``app.compare._work``, ~flops) divided by the
method's speed in work units per second. This script measures that speed per
method on the packaged embedding (the page's source) and prints, for every
case, estimate / measured with the speeds the page ships
(``app.compare.WORK_PER_SECOND``) and with the speeds measured here.

1. Calibration: curves at the page's defaults (first 4096 rows, default
   ratios): SVD, MPO n=3/5/7, Tucker n=3/5/7; CPD on 512 rows (on 4096 rows
   one CPD curve takes ~40 min), n=3 and 5.
2. Speed per (method, n) measured in 1, beside the shipped ``WORK_PER_SECOND``.
3. Check: curves of other sizes (the whole embedding, 1024 and 256 rows),
   estimated with the speeds of 1 (the page promises within ~2.5x).

Run: ``python benchmarks/bench_compare_estimates.py`` (``--quick``: 512 rows, one curve per
method); ``--record results/bench/compare_estimates_cpu.json`` stores the figures.
Threads: torch's default (as the page runs), printed.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import compare, decompose  # noqa: E402
from mpo_core.tensor.shape import plan_shape  # noqa: E402

EMBEDDING = decompose.MatrixSource()  # the page's default source: the packaged word embedding


def cases(quick: bool) -> tuple[list, list]:
    """(rows, curve) pairs to time: the calibration cases and the check cases (other sizes)."""
    if quick:
        return ([(512, compare.Curve(m, n)) for m, n in (("svd", 2), ("mpo", 3), ("tucker", 3), ("cpd", 3))],
                [(256, compare.Curve("cpd", 3))])
    rows = compare.DEFAULT_MAX_ROWS
    calibration = [(rows, compare.Curve("svd", 2))]
    calibration += [(rows, compare.Curve(m, n)) for m in ("mpo", "tucker") for n in (3, 5, 7)]
    calibration += [(512, compare.Curve("cpd", n)) for n in (3, 5)]
    check = [(0, compare.Curve("mpo", 3)), (0, compare.Curve("mpo", 5)), (1024, compare.Curve("tucker", 3)),
             (1024, compare.Curve("tucker", 5)), (1024, compare.Curve("cpd", 3)), (256, compare.Curve("cpd", 5))]
    return calibration, check


def measure(rows: int, curve: compare.Curve) -> dict:
    """Compute one curve of the page's default ratios on the first ``rows`` rows (0: all) and time it."""
    settings = compare.CompareSettings(source=EMBEDDING, max_rows=rows, methods=(curve.method,),
                                       n_values=(curve.n,) if curve.method != "svd" else ())
    matrix = compare.load_matrix(settings.source, rows)
    start = time.perf_counter()
    frame = compare.compute_curve(matrix, settings, curve)
    seconds = time.perf_counter() - start
    work = compare._work(curve, plan_shape(*matrix.shape, n=curve.n), settings)
    return {"method": curve.method, "n": curve.n, "label": curve.label, "rows": int(matrix.shape[0]),
            "points": int((frame["skipped_reason"] == "").sum()), "seconds": seconds, "work": work,
            "work_per_second": work / seconds,
            "shipped_estimate_seconds": compare.estimate_seconds(settings, curve, tuple(matrix.shape))}


def show(row: dict, estimate: float) -> None:
    print(f"   {row['label']:<12} {row['rows']:>5} rows  {row['points']} points  {row['seconds']:8.2f} s  "
          f"work {row['work']:.3g}  estimate {estimate:8.2f} s  estimate/measured {estimate / row['seconds']:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--record", type=Path, help="write the measured figures to this JSON file")
    args = parser.parse_args()
    calibration, check = cases(args.quick)

    print(f"torch threads: {torch.get_num_threads()}")
    print("1. Calibration curves (the page's defaults): measured, and the estimate with the shipped speeds")
    measured = [measure(rows, curve) for rows, curve in calibration]
    for row in measured:
        show(row, row["shipped_estimate_seconds"])
    speeds = {(r["method"], r["n"]): r["work_per_second"] for r in measured}

    print("2. Speed per (method, n), work units per second: measured here and shipped (WORK_PER_SECOND)")
    for (method, n), value in speeds.items():
        shipped = compare.WORK_PER_SECOND.get((method, n), float("nan"))
        print(f"   {method:<7} n={n}  measured {value:.3g}   shipped {shipped:.3g}   shipped/measured {shipped / value:.2f}")

    print("3. Other sizes: measured, and the estimate with the speeds measured in part 1 (the page says within ~2.5x)")
    checked = []
    for rows, curve in check:
        row = measure(rows, curve)
        settings = compare.CompareSettings(source=EMBEDDING, max_rows=rows, methods=(curve.method,),
                                           n_values=(curve.n,) if curve.method != "svd" else ())
        row["estimate_seconds"] = compare.estimate_seconds(settings, curve, (row["rows"], 384), speeds)
        show(row, row["estimate_seconds"])
        checked.append(row)
    worst = max(max(r["estimate_seconds"] / r["seconds"], r["seconds"] / r["estimate_seconds"]) for r in checked)
    print(f"   worst: off by {worst:.2f}x")

    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps({
            "command": "python benchmarks/bench_compare_estimates.py" + (" --quick" if args.quick else ""),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "calibration": measured, "check": checked,
            "work_per_second": {f"{m} n={n}": v for (m, n), v in speeds.items()}, "worst_check_factor": worst,
        }, indent=1) + "\n")
        print(f"recorded in {args.record}")


if __name__ == "__main__":
    main()
