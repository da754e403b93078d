"""MPOP Table 5 under the controlled protocol: fine-tuning only the last 1-3 layers vs MPOP (SST-2, MRPC), seeded.

The paper used BERT-base's layers 10-12 / 11-12 / 12; on the 6-layer MiniLM the
same rows are its last 3 / 2 / 1 layers (``last_k``; the classifier head trains
too). The protocol is Table 3's (:mod:`.table3`): the same data, schedule, steps
and batch size for every row, the probed learning rate of each family, seeds
0-2, dev only reported. ``last_1`` and ``mpop`` are the frontier's runs of the
same seed (``last_1``, ``mpop@0.75``), shared.
"""
from __future__ import annotations

import pandas as pd

from ..data.glue import get_task
from . import frontier, table3
from .glue_grid import ByMode, RunSpec, run_grid
from .lr_probe import probed_rates, rates_setting
from .paper_numbers import TABLE5, TABLE5_TASKS, paper_frame
from .results_store import Results
from .seed_summary import claim_sentence, score_frame

NAME = "table5"
TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc"))
SEEDS = table3.SEEDS
LAYERS = (3, 2, 1)
SMALL_LAYERS = 3  # the small mode loads one layer; its last_2 / last_3 rows load three (scores mean nothing there)
ROW_OF = {"last_3": "BERT_10-12", "last_2": "BERT_11-12", "last_1": "BERT_12", "mpop": "MPOP_B"}


def learning_rates(mode: str) -> dict:
    """``{(strategy, task): (rate, source)}`` of Table 5's rows (:func:`.lr_probe.probed_rates`)."""
    return probed_rates(mode, frontier.STRATEGIES, TASKS[mode])  # last_k, and the frontier's rows it shares


def specs(mode: str, rates: dict | None = None) -> tuple[list[RunSpec], dict]:
    """Seed by seed, task by task: last_3, last_2, last_1, mpop; and the runs borrowed from the frontier."""
    rates = rates or learning_rates(mode)
    out, borrowed = [], {}
    for seed in SEEDS[mode]:
        for task in TASKS[mode]:
            shared = {s.label: s for s in frontier.cells(task, mode, frontier.all_sizes(mode)[task], seed, rates)}
            for k in LAYERS:
                if k == frontier.LAST_K:
                    spec = shared[f"last_{k}"]  # the frontier's own last_1 run: the same spec
                    borrowed[spec.run_name] = frontier.NAME
                else:
                    layers = {"num_hidden_layers": SMALL_LAYERS} if mode == "small" else {}
                    spec = RunSpec(f"last_{k}", task, "last_k", {"k": k}, seed=seed,
                                   settings={"learning_rate": rates[("last_k", task)][0], **layers})
                out.append(spec)
            mpop = shared[frontier.label_of("mpop", table3.MPOP_TARGET[mode])]
            borrowed[mpop.run_name] = frontier.NAME
            out.append(mpop)
    return out, borrowed


def row(spec: RunSpec, record: dict) -> dict:
    task = get_task(spec.task)
    return {"row": table3.row_name(spec.label), "task": task.name, "seed": spec.seed, "strategy": spec.strategy,
            "metric": task.metric, "score": record.get("score"),
            "learning_rate": (record.get("config") or {}).get("learning_rate"),
            "predicted_classes": (record.get("eval") or {}).get("predicted_classes"),
            "pr_millions": record.get("trainable_millions"), "to_millions": record.get("total_millions"),
            "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def run(mode: str) -> Results:
    rates = learning_rates(mode)
    run_specs, borrowed = specs(mode, rates)
    extra = {"tasks": TASKS[mode], "seeds": SEEDS[mode],
             "learning_rates_used": rates_setting(rates)}
    return run_grid(NAME, run_specs, mode, extra_settings=extra, borrowed=borrowed, row=row, keep_records=True)


def side_by_side(results: Results) -> pd.DataFrame:
    """Per row and task: ours (mean ± std over seeds, percent) beside the paper's; #Pr in millions."""
    table = table3.with_constant(results)
    ours = score_frame(table)
    paper = paper_frame(TABLE5, TABLE5_TASKS)
    columns = {}
    for task in ours.columns:
        columns[(task, "ours")] = ours[task]
        columns[(task, "paper")] = [paper.at[ROW_OF[r], task] if task in paper.columns else None for r in ours.index]
    sizes = table.groupby("row", sort=False)["pr_millions"].mean().reindex(ours.index)
    columns[("#Pr", "ours")] = sizes.round(2)
    columns[("#Pr", "paper")] = [paper.at[ROW_OF[r], "pr"] if "pr" in paper.columns else None for r in ours.index]
    frame = pd.DataFrame(columns)
    frame.index = [f"{r} (paper: {ROW_OF[r]})" for r in ours.index]
    return frame


def paper_difference(row: str) -> str:
    """The paper's own margin for "MPOP_B beats ``row``'s BERT row": the mean over Table 5's three tasks."""
    ours, theirs = TABLE5["MPOP_B"], TABLE5[ROW_OF[row]]
    gap = sum(ours[t] - theirs[t] for t in TABLE5_TASKS) / len(TABLE5_TASKS)
    return f"{gap:+.1f} points (MPOP_B vs {ROW_OF[row]}, mean of SST-2, MRPC, RTE)"


def findings(results: Results) -> list[str]:
    """The paper's claim (MPOP beats fine-tuning the last layers with fewer trainable parameters), per k, as verdicts."""
    table = table3.with_constant(results)
    pr = table.groupby("row", sort=False)["pr_millions"].mean()
    lines = [claim_sentence(table, f"mpop (#Pr {pr['mpop']:.2f}M) beats last_{k} (#Pr {pr[f'last_{k}']:.2f}M)",
                            "mpop", f"last_{k}", 0.0, paper_difference(f"last_{k}"))
             for k in LAYERS if {"mpop", f"last_{k}"} <= set(table["row"])]
    stuck = table[table["constant"]]
    lines.append(f"{len(stuck)} of {len(table)} runs predicted one class on dev (left out of the means): "
                 f"{', '.join(stuck['run'])}." if len(stuck) else "every run learned beyond a constant prediction.")
    return lines
