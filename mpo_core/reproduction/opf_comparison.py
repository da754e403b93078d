"""OPF (ACL 2023): over-parameterized fine-tuning of a small model vs plain fine-tuning, and the merge check.

Rows per task: ``full`` (plain fine-tuning), ``opf`` with static and with
dynamic Fisher selection (growth 4x of the top 2 matrices per group; dynamic
in 2 stages). After training, OPF contracts every MPO back to dense: the check
loads each OPF run's saved final model and the original pre-trained model,
compares their parameter counts and times their forward passes on the same
batch (:func:`~mpo_core.runs.latency.compare_latency`: median of interleaved paired ratios). The paper's headline is
qualitative (a small PLM fine-tuned this way matches ~3x larger ones); no
larger model exists offline, so the comparison here is with plain fine-tuning.
"""
from __future__ import annotations

import pandas as pd

from ..runs.latency import compare_latency, random_token_batch
from ..runs.run_models import load_final_model, load_initial_model
from .glue_grid import RunSpec, constant_sentence, mean_scores, run_grid, runs_root, score_table
from .results_store import Results, save_results

NAME = "opf"
TASKS = {"small": ("rte",), "full": ("rte", "mrpc")}
REPEATS = 15  # interleaved pairs of the merge check
OPTIONS = {"small": dict(growth=2.0, top_n=2, fisher_batches=1), "full": dict(growth=4.0, top_n=2, fisher_batches=8)}


def specs(mode: str) -> list[RunSpec]:
    base = OPTIONS[mode]
    out = []
    for task in TASKS[mode]:
        out += [RunSpec("full", task, "full"),
                RunSpec("opf_static", task, "opf", {**base, "selection": "static"}),
                RunSpec("opf_dynamic", task, "opf", {**base, "selection": "dynamic", "stages": 2})]
    return out


def merge_check(run_path, batch: int = 8, length: int = 64) -> dict:
    """Original vs merged (saved final model of an OPF run): parameter counts, shapes, latency ratio."""
    from ..model.surgery import mpo_modules

    original, merged = load_initial_model(run_path), load_final_model(run_path)
    inputs = random_token_batch(original.config, batch, length)
    latency = compare_latency(merged, original, inputs, warmup=1, repeats=REPEATS)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    return {"original_params": sum(p.numel() for p in original.parameters()),
            "merged_params": sum(p.numel() for p in merged.parameters()),
            "same_shapes": shapes(original) == shapes(merged), "mpo_layers_left": len(mpo_modules(merged)),
            "latency_ratio": latency["ratio"]}


def run(mode: str) -> Results:
    layers = {"num_hidden_layers": 2} if mode == "small" else {}  # top 2 per group needs two layers
    grid = run_grid(NAME, specs(mode), mode, extra_settings={"tasks": TASKS[mode], "opf": OPTIONS[mode]},
                    save_model=True, **layers)
    table = grid.table.copy()
    checks = [merge_check(runs_root(NAME, mode) / r) if s == "opf" else {}
              for r, s in zip(table["run"], table["strategy"])]
    table = pd.concat([table, pd.DataFrame(checks, index=table.index)], axis=1)
    settings = {**grid.meta["settings"], "merge_check": "batch 8 x 64 random tokens, 15 interleaved pairs, CPU"}
    return save_results(NAME, mode, table, settings, grid.meta["records"], grid.meta["wall_seconds"])


def side_by_side(results: Results) -> pd.DataFrame:
    return score_table(results).round(2)


def merge_table(results: Results) -> pd.DataFrame:
    columns = ["row", "task", "original_params", "merged_params", "same_shapes", "mpo_layers_left", "latency_ratio"]
    table = results.table
    return table[table["strategy"] == "opf"][columns].reset_index(drop=True)


def findings(results: Results) -> list[str]:
    ours = score_table(results)
    mean = mean_scores(ours)
    merged = merge_table(results)
    lines = ["mean score: " + ", ".join(f"{r} {mean[r]:.1f}" for r in ours.index), constant_sentence(results)]
    for row in ("opf_static", "opf_dynamic"):
        if row in mean:
            lines.append(f"{row} {'beats' if mean[row] > mean['full'] else 'does not beat'} plain fine-tuning "
                         f"({mean[row] - mean['full']:+.1f} points).")
    if len(merged):
        lines.append(f"merged models: parameters equal to the original in {int((merged.merged_params == merged.original_params).sum())}"
                     f" of {len(merged)} runs; latency ratio {merged.latency_ratio.min():.3f}-{merged.latency_ratio.max():.3f}"
                     f" (target 1.00 +- 0.05).")
    return lines
