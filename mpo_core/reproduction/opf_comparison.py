"""OPF (ACL 2023) under the controlled protocol: over-parameterized fine-tuning vs plain fine-tuning, seeded.

Rows per task (SST-2, MRPC) and seed (0-2): ``full`` (plain fine-tuning: Table
3's run of the same seed, shared), ``opf_static`` and ``opf_dynamic`` (Fisher
selection of the top 2 matrices per group, grown 4x into lossless MPOs while
training; dynamic in 2 stages), at the probed rate of whole-matrix training
(:mod:`.lr_probe`; the protocol of :mod:`.table3`). After training, OPF contracts
every MPO back to dense: the merge check loads each OPF run's saved final model
and the original pre-trained model, compares their parameter counts and shapes
and times their forward passes on the same batch
(:func:`~mpo_core.runs.latency.compare_latency`: median of interleaved paired
ratios); it is kept in the run's record, so a grid continued elsewhere keeps it.
The paper's headline is qualitative (a small PLM fine-tuned this way matches
~3x larger ones); no larger model exists offline, so the claim judged here is
"OPF is not below plain fine-tuning", per task, from the seeds.
"""
from __future__ import annotations

import pandas as pd

from ..data.glue import get_task
from ..runs.latency import compare_latency, random_token_batch
from ..runs.run_models import load_final_model, load_initial_model
from . import table3
from .glue_grid import ByMode, RunSpec, run_grid
from .lr_probe import probed_rates, rates_setting
from .results_store import Results
from .seed_summary import claim_sentence, score_frame

NAME = "opf"
TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc"))
SEEDS = table3.SEEDS
REPEATS = 15  # interleaved pairs of the merge check
OPTIONS = ByMode(small=dict(growth=2.0, top_n=2, fisher_batches=1), full=dict(growth=4.0, top_n=2, fisher_batches=8))
SMALL_LAYERS = 2  # the top 2 matrices per group need two layers; the small mode's others load one


def specs(mode: str, rates: dict | None = None) -> tuple[list[RunSpec], dict]:
    """Seed by seed, task by task: full (Table 3's run), opf_static, opf_dynamic; and the borrowed runs."""
    rates = rates or probed_rates(mode, ("full",), TASKS[mode])
    base, out, borrowed = OPTIONS[mode], [], {}
    layers = {"num_hidden_layers": SMALL_LAYERS} if mode == "small" else {}
    for seed in SEEDS[mode]:
        for task in TASKS[mode]:
            full = table3.full_spec(task, seed, mode, rates)
            borrowed[full.run_name] = table3.NAME
            settings = {"learning_rate": rates[("full", task)][0], "save_model": True, **layers}
            out += [full,
                    RunSpec("opf_static", task, "opf", {**base, "selection": "static"}, seed=seed, settings=settings),
                    RunSpec("opf_dynamic", task, "opf", {**base, "selection": "dynamic", "stages": 2}, seed=seed,
                            settings=settings)]
    return out, borrowed


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


def with_merge_check(spec: RunSpec, record: dict, folder) -> dict:
    """An OPF run's record with its :func:`merge_check` (the saved final model against the original)."""
    if spec.strategy != "opf":
        return record
    return {**record, "merge_check": merge_check(folder)}


def row(spec: RunSpec, record: dict) -> dict:
    task = get_task(spec.task)
    return {"row": spec.label, "task": task.name, "seed": spec.seed, "strategy": spec.strategy,
            "metric": task.metric, "score": record.get("score"),
            "learning_rate": (record.get("config") or {}).get("learning_rate"),
            "predicted_classes": (record.get("eval") or {}).get("predicted_classes"),
            "pr_millions": record.get("trainable_millions"), "to_millions": record.get("total_millions"),
            **(record.get("merge_check") or {}), "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def run(mode: str) -> Results:
    rates = probed_rates(mode, ("full",), TASKS[mode])
    run_specs, borrowed = specs(mode, rates)
    extra = {"tasks": TASKS[mode], "seeds": SEEDS[mode], "opf": OPTIONS[mode],
             "learning_rates_used": rates_setting(rates),
             "merge_check": f"batch 8 x 64 random tokens, {REPEATS} interleaved pairs, CPU"}
    return run_grid(NAME, run_specs, mode, extra_settings=extra, borrowed=borrowed, row=row, keep_records=True,
                    finish=with_merge_check)


def side_by_side(results: Results) -> pd.DataFrame:
    """Rows x tasks: mean ± std over seeds (percent)."""
    return score_frame(table3.with_constant(results))


def merge_table(results: Results) -> pd.DataFrame:
    columns = ["row", "task", "seed", "original_params", "merged_params", "same_shapes", "mpo_layers_left",
               "latency_ratio"]
    table = results.table
    return table[table["strategy"] == "opf"][[c for c in columns if c in table]].reset_index(drop=True)


def findings(results: Results) -> list[str]:
    """OPF vs plain fine-tuning per task as verdicts; the merge check; the runs that learned nothing."""
    table = table3.with_constant(results)
    lines = [claim_sentence(table, f"{row} is not below plain fine-tuning", row, "full", 0.0,
                            "OPF improves small PLMs")
             for row in ("opf_static", "opf_dynamic") if row in set(table["row"])]
    merged = merge_table(results)
    if len(merged) and "merged_params" in merged:
        lines.append(f"merged models: parameters equal to the original in "
                     f"{int((merged.merged_params == merged.original_params).sum())} of {len(merged)} runs, "
                     f"no MPO left in {int((merged.mpo_layers_left == 0).sum())}; latency ratio "
                     f"{merged.latency_ratio.min():.3f}-{merged.latency_ratio.max():.3f} (target 1.00 ± 0.05).")
    stuck = table[table["constant"]]
    lines.append(f"{len(stuck)} of {len(table)} runs predicted one class on dev (left out of the means): "
                 f"{', '.join(stuck['run'])}." if len(stuck) else "every run learned beyond a constant prediction.")
    return lines
