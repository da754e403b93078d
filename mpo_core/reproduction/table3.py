"""MPOP Table 3: GLUE with MPOP vs full fine-tuning, and the ablations mpo_full, mpo_full_lfa, mpop_dir.

Our base model is the packaged MiniLM (6 layers, 384 wide, real weights), not
ALBERT-base, and the full mode runs on a CPU with the reductions of
:data:`~mpo_core.reproduction.glue_grid.FULL`; the paper's rows are shown
beside ours for the direction of each comparison, not for equal numbers.
Rows (``strategy``): ``full`` plays "ALBERT_rep" (the uncompressed model
fine-tuned), ``mpop``, ``mpo_full``, ``mpo_full_lfa`` and ``mpop_dir`` (bond
dims from this task's ``mpop`` run).
"""
from __future__ import annotations

import pandas as pd

from .glue_grid import (
    RunSpec, constant_sentence, mean_scores, run_grid, runs_root, score_table, side_by_side as _side_by_side,
    squeeze_options, task_columns,
)
from .paper_numbers import TABLE3, TABLE3_ROW_OF, TABLE3_TASKS, paper_frame
from .results_store import Results

NAME = "table3"
TASKS = {"small": ("rte", "mrpc"), "full": ("rte", "mrpc", "wnli", "sst2", "cola", "stsb")}
ROWS = ("full", "mpop", "mpo_full", "mpo_full_lfa", "mpop_dir")


def specs(mode: str) -> list[RunSpec]:
    """Per task: full, mpop, then the ablations (mpop_dir after mpop: it takes that run's bond dims)."""
    out = []
    for task in TASKS[mode]:
        mpop_folder = runs_root(NAME, mode) / f"mpop-{task}"
        options = {"full": {}, "mpop": squeeze_options(mode), "mpo_full": {}, "mpo_full_lfa": {},
                   "mpop_dir": {"bond_dims_from": str(mpop_folder)}}
        out += [RunSpec(row, task, row, options[row]) for row in ROWS]
    return out


def run(mode: str) -> Results:
    return run_grid(NAME, specs(mode), mode, extra_settings={"tasks": TASKS[mode]})


def side_by_side(results: Results) -> pd.DataFrame:
    return _side_by_side(score_table(results), paper_frame(TABLE3, TABLE3_TASKS), TABLE3_ROW_OF)


def findings(results: Results) -> list[str]:
    """The paper's qualitative claims, each checked against our numbers (sentences built from them)."""
    ours = score_table(results)
    tasks = task_columns(ours)
    mean = mean_scores(ours)
    lines = [f"mean score over {len(tasks)} tasks: " + ", ".join(f"{r} {mean[r]:.1f}" for r in ours.index)]
    if {"mpop", "full"} <= set(ours.index):
        lines.append(f"#Pr of mpop is {ours.at['mpop', 'pr'] / ours.at['full', 'pr']:.1%} of full fine-tuning "
                     f"(paper: 1.1M of 11.6M = 9.5%); #To {ours.at['mpop', 'to'] / ours.at['full', 'to']:.2f}x "
                     f"(paper 0.78x). mpop {'beats' if mean['mpop'] > mean['full'] else 'trails'} full "
                     f"by {abs(mean['mpop'] - mean['full']):.1f} points on average (paper: +0.8).")
    if {"mpop", "mpop_dir"} <= set(ours.index):
        gap = mean["mpop"] - mean["mpop_dir"]
        lines.append(f"dimension squeezing vs direct truncation to the same bond dims (mpop - mpop_dir): "
                     f"{gap:+.1f} points (paper: +11.1).")
    lines.append(constant_sentence(results))
    squeeze = squeeze_summary(results)
    if len(squeeze):
        reasons = ", ".join(f"{reason} ({count})" for reason, count in squeeze["stop_reason"].value_counts().items())
        lines.append(f"squeezing (mpop): {squeeze['steps_accepted'].min()}-{squeeze['steps_accepted'].max()} cuts "
                     f"accepted per task; stop reasons: {reasons}; #To fell to "
                     f"{squeeze['to_vs_start'].min():.3f}-{squeeze['to_vs_start'].max():.3f} of the full-bond MPO's.")
    if {"mpo_full", "mpo_full_lfa"} <= set(ours.index):
        lines.append(f"auxiliary-only vs all tensors at full bonds (mpo_full_lfa - mpo_full): "
                     f"{mean['mpo_full_lfa'] - mean['mpo_full']:+.1f} points (paper: +0.1).")
    return lines


def squeeze_summary(results: Results) -> pd.DataFrame:
    """Per ``mpop`` run: cuts accepted, why squeezing stopped, the metric before/after, #To vs the full-bond MPO."""
    rows = []
    for record in results.meta.get("records", []):
        squeeze = record.get("squeeze")
        if record.get("strategy") != "mpop" or not isinstance(squeeze, dict):
            continue
        history = squeeze.get("history") or []
        saved = sum(h.get("params_saved", 0) for h in history if h.get("accepted"))
        start = (record.get("total_params") or 0) + saved  # the full-bond MPO, before any cut
        rows.append({"task": record.get("task"), "steps_accepted": squeeze.get("steps_accepted"),
                     "stop_reason": squeeze.get("stop_reason"), "baseline": squeeze.get("baseline"),
                     "final": squeeze.get("final"), "total_params": record.get("total_params"),
                     "to_vs_start": record.get("total_params") / start if start else float("nan")})
    return pd.DataFrame(rows)
