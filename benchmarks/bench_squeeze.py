"""Dimension squeezing that reaches a size: one ``mpop`` run on SST-2 with the packaged MiniLM (6 layers, 384 wide).

Prints #To of the dense model, of the full-bond MPO model (before squeezing)
and after squeezing, against the ``target_size`` (default 0.8 of dense); every
cut made (matrix, bond, before -> after, parameters removed, p~ on the
held-out training slice); the stop reason; the dev score; wall time.

Run: ``python benchmarks/bench_squeeze.py`` (small: a few minutes on a 2-core
CPU), ``--full`` for more data and training, ``--quick`` for a smoke run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GLUE = Path(__file__).resolve().parents[2] / "shared" / "glue"

SETTINGS = {
    "quick": (dict(num_hidden_layers=1, max_train_examples=96, max_eval_examples=32, max_length=32, batch_size=8),
              dict(lfa_steps=2, tune_steps=1, squeeze_steps=2, heldout_examples=24, delta=1.0)),
    "small": (dict(max_train_examples=800, max_eval_examples=200, max_length=32, batch_size=16),
              dict(lfa_steps=30, tune_steps=2, squeeze_steps=20, heldout_examples=128, delta=0.05, stop_on="drop")),
    "full": (dict(max_train_examples=4000, max_eval_examples=None, max_length=64, batch_size=32),
             dict(lfa_steps=125, tune_steps=8, squeeze_steps=30, heldout_examples=256, delta=0.01, stop_on="drop")),
}


def squeeze_run(mode: str, target_size: float, step_size: float, device: str, runs_dir: str,
                delta: float | None = None) -> dict:
    from mpo_core.training.fine_tune import fine_tune
    from mpo_core.training.fine_tune_config import FineTuneConfig

    data, squeeze = SETTINGS[mode]
    squeeze = {**squeeze, **({} if delta is None else {"delta": delta})}
    config = FineTuneConfig(
        task="sst2", data_dir=str(GLUE), strategy="mpop", learning_rate=1e-3, warmup_steps=2, device=device,
        runs_dir=runs_dir, run_name=f"sst2-mpop-{mode}", logging_steps=10, eval_steps=10**6, save_steps=10**6,
        save_model=False, **data,
        strategy_options=dict(target_size=target_size, step_size=step_size, **squeeze),
    )
    start = time.perf_counter()
    results = fine_tune(config)
    results["bench_seconds"] = time.perf_counter() - start
    return results


def report(results: dict) -> None:
    s = results["squeeze"]
    dense, start, final = s["dense_params"], s["mpo_params"], results["total_params"]
    print(f"\nmpop on SST-2: {results['num_train_examples']} train / {results['num_heldout_examples']} held-out "
          f"(p judged there) / {results['num_eval_examples']} dev examples")
    print(f"   step: {s['step_size']} of the dense model per cut ({s['step_unit']}), rank {s['rank']}, "
          f"bonds {s['bonds']}, delta {s['delta']} on {s['metric']}")
    print(f"   #To dense {dense / 1e6:.2f}M; full-bond MPO (before squeezing) {start / 1e6:.2f}M = {start / dense:.3f}x; "
          f"after {final / 1e6:.2f}M = {final / dense:.3f}x (target {s['target_size']}x = {s['target_params'] / 1e6:.2f}M)")
    print(f"   cuts accepted: {s['steps_accepted']}; stop: {s['stop_reason']}")
    print(f"   {'#':>3} {'matrix':<44} {'bond':>4} {'cut':>11} {'removed':>9} {'rel err':>8} {'p~':>7} ok")
    for h in s["history"]:
        print(f"   {h['squeeze_step']:>3} {h['matrix'].removeprefix('bert.'):<44} {h['bond']:>4} "
              f"{h['before']:>5}->{h['after']:<5} {h['params_saved']:>9} {h['relative_error']:>8.4f} "
              f"{h['p_tilde']:>7.4f} {'yes' if h['accepted'] else 'no'}")
    print(f"   {s['metric']} on held-out: before squeezing {s['baseline']:.4f}, last accepted {s['final']:.4f}; "
          f"dev {results['metric']} {results['score']:.4f}")
    print(f"   wall time {results['bench_seconds']:.0f} s (training + squeezing {results['wall_seconds']:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="more data and training (tens of minutes on a CPU)")
    size.add_argument("--quick", action="store_true", help="a 1-layer smoke run")
    parser.add_argument("--target-size", type=float, default=0.8, help="#To target as a fraction of dense")
    parser.add_argument("--step-size", type=float, default=0.02, help="share of the dense model one cut removes")
    parser.add_argument("--delta", type=float, help="largest allowed metric drop (default: the mode's)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    mode = "full" if args.full else "quick" if args.quick else "small"
    with tempfile.TemporaryDirectory() as runs_dir:
        report(squeeze_run(mode, args.target_size, args.step_size, args.device, runs_dir, args.delta))


if __name__ == "__main__":
    main()
