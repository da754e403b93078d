"""The learning budget of the GLUE verdicts (issue 26): the number of steps where dense fine-tuning has plateaued.

Chosen on training data only. Per task, dense full fine-tuning (the packaged
MiniLM, rate 1e-4, batch 32, max length 64) runs at a *constant* rate after a
short warmup, and every ``eval_steps`` is scored on examples held out of its
training pool (never trained on)::

    stage 1 (constant)   the held-out curve s(t) at a constant rate, t = eval_steps, 2 eval_steps, ... T_max
    gain(T)            = slope of the least-squares line through s(t), 2T/3 <= t <= T, times T/3
                         (what the curve still gained over its last third; a line through several
                         points, so one noisy evaluation does not decide)
    budget T*          = the smallest T with gain(T') < 0.5 points for every T' >= T on the curve
    stage 2 (budget)     the same run with T* steps and a constant-then-decay schedule (constant, then
                         linear to 0 over the last DECAY_SHARE of the steps): the curve a grid row follows,
                         and its own last-third gain, reported

The training pool excludes the task's fixed evaluation set
(:mod:`~mpo_core.data.evaluation_set`: SST-2's 5000-example slice of the training
file; the dev sets are never seen). MRPC enters the verdict grid only if its
budget run ends at least :data:`MRPC_MARGIN` above the majority share of its
held-out examples (else the task measures "started learning or not").
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from ..data.glue import get_task
from .glue_grid import ByMode, RunSpec, run_grid
from .results_store import Results

NAME = "learning_budget"
TASKS = ByMode(small=("sst2",), full=("sst2", "stsb", "mrpc"))
#: points gained over the last third below which the curve counts as plateaued (the small mode's 32 held-out
#: examples move 3 points per example: it exercises the code path, it cannot decide a plateau)
PLATEAU_GAIN = ByMode(small=100.0, full=0.5)
DECAY_SHARE = 0.2  # the constant-then-decay schedule's decay: the last 20 % of the steps
MRPC_MARGIN = 0.05  # MRPC is kept when its dense budget run ends this far above the majority share
LEARNING_RATE = 1e-4  # the whole-matrix family's rate of the first protocol (its probe's choice on SST-2)
#: per task: training pool size (None: the whole file less the evaluation slice), held-out, evaluation slice,
#: and the constant run's length
DESIGN = ByMode(
    small={"sst2": dict(max_train_examples=96, heldout_examples=24, evaluation_slice=64, max_steps=12, eval_steps=2)},
    # SST-2: 900 constant steps were not enough (held-out 90.2, still +0.9 points over the last third;
    # records/learning_budget/dense_constant-sst2-seed0.json), so the constant run is twice as long
    full={"sst2": dict(max_train_examples=32_000, heldout_examples=1000, evaluation_slice=5000, max_steps=1800,
                       eval_steps=50),
          "stsb": dict(max_train_examples=None, heldout_examples=500, evaluation_slice=0, max_steps=600,
                       eval_steps=50),
          # MRPC: 600 constant steps still gained 0.9 points over their last third (held-out 79.0): twice as long
          "mrpc": dict(max_train_examples=None, heldout_examples=400, evaluation_slice=0, max_steps=1200,
                       eval_steps=50)},
)
#: the smallest budget considered (steps): a shorter run has too few evaluations in its last third
MIN_BUDGET = ByMode(small=6, full=150)
COMMON = ByMode(small=dict(num_hidden_layers=1, max_length=32, batch_size=16, warmup_steps=1),
                full=dict(max_length=64, batch_size=32, warmup_steps=30))


def _settings(mode: str, task: str, **changes) -> dict:
    design = {**DESIGN[mode][task], **changes}
    return {**COMMON[mode], **design, "learning_rate": LEARNING_RATE, "max_eval_examples": None,
            "keep_predictions": True, "save_steps": 10**9, "logging_steps": 10}


def constant_spec(mode: str, task: str) -> RunSpec:
    return RunSpec("dense_constant", task, "full", seed=0,
                   settings=_settings(mode, task, lr_scheduler_type="constant_with_warmup"))


def budget_spec(mode: str, task: str, steps: int) -> RunSpec:
    decay = max(1, round(DECAY_SHARE * steps))
    return RunSpec(f"dense_budget{steps}", task, "full", seed=0,
                   settings=_settings(mode, task, max_steps=steps, lr_scheduler_type="warmup_stable_decay",
                                      decay_steps=decay))


def heldout_curve(record: dict) -> list[tuple[int, float]]:
    """``[(step, held-out score in points)]`` of a run's evaluations during training."""
    return [(int(c["step"]), 100 * float(c["score"])) for c in record.get("curve", []) if c["split"] == "heldout"]


def last_third_gain(curve: list[tuple[int, float]], steps: int) -> float:
    """Points gained over ``[2 steps / 3, steps]``: the least-squares slope through the curve there, times steps/3.

    NaN with fewer than 3 evaluations in that window (no line to trust)."""
    window = [(t, s) for t, s in curve if 2 * steps / 3 <= t <= steps]
    if len(window) < 3 or any(not math.isfinite(s) for _, s in window):
        return math.nan
    t, s = np.array(window, dtype=float).T
    slope = np.polyfit(t, s, 1)[0]
    return float(slope * steps / 3)


def chosen_steps(curve: list[tuple[int, float]], minimum: int, threshold: float) -> int | None:
    """The smallest evaluated step ``T >= minimum`` from which every last-third gain is below ``threshold``
    (points); ``None`` when the curve has not plateaued by its end."""
    steps = [t for t, _ in curve if t >= minimum]
    gains = {t: last_third_gain(curve, t) for t in steps}
    for t in steps:
        if all(math.isfinite(gains[u]) and gains[u] < threshold for u in steps if u >= t):
            return t
    return None


def _row(spec: RunSpec, record: dict) -> dict:
    curve = heldout_curve(record)
    steps = int(record.get("global_step") or spec.settings["max_steps"])
    return {"task": get_task(spec.task).name, "stage": "constant" if spec.label == "dense_constant" else "budget",
            "steps": steps, "schedule": spec.settings["lr_scheduler_type"], "metric": record.get("metric"),
            "heldout_final": record.get("heldout_score"), "last_third_gain": last_third_gain(curve, steps),
            "evaluation_score": record.get("evaluation_score"), "dev_score": record.get("score"),
            "train_examples": record.get("num_train_examples"), "heldout_examples": record.get("num_heldout_examples"),
            "majority_share_heldout": _majority(spec.task, record), "wall_seconds": record.get("wall_seconds"),
            "run": spec.run_name}


def _majority(task: str, record: dict) -> float | None:
    """The majority class's share of the run's held-out examples (``None`` for STS-B): a constant prediction's
    score there."""
    if get_task(task).is_regression or not record.get("heldout_indices"):
        return None
    labels = _train_labels(task)
    held = [labels[i] for i in record["heldout_indices"]]
    return max(held.count(c) for c in set(held)) / len(held)


@functools.lru_cache(maxsize=None)
def _train_labels(task: str) -> tuple:
    from ..data.glue import default_glue_dir, load_glue_split

    return tuple(load_glue_split(task, "train", default_glue_dir()).labels)


def run(mode: str) -> Results:
    tasks = TASKS[mode]
    first = [constant_spec(mode, task) for task in tasks]
    # saved as partial: a run stopped after this stage is continued, not read back as the answer
    stage1 = run_grid(NAME, first, mode, keep_records=True, extra_settings={"partial": True})
    budgets = {}
    for spec, record in zip(first, stage1.meta["records"]):
        budgets[spec.task] = chosen_steps(heldout_curve(record), MIN_BUDGET[mode], PLATEAU_GAIN[mode])
    second = [budget_spec(mode, task, steps) for task, steps in budgets.items() if steps is not None]
    extra = {"plateau_gain_points": PLATEAU_GAIN[mode], "decay_share": DECAY_SHARE, "learning_rate": LEARNING_RATE,
             "design": {task: DESIGN[mode][task] for task in tasks}, "common": COMMON[mode],
             "chosen_steps": budgets, "mrpc_margin": MRPC_MARGIN}
    return run_grid(NAME, first + second, mode, keep_records=True, row=_row, extra_settings=extra)


def budget_table(results: Results) -> pd.DataFrame:
    """Per task: the chosen steps, the budget run's final held-out score and last-third gain, and (MRPC) whether
    it learned enough to enter the grid."""
    table, chosen = results.table, results.meta["settings"]["chosen_steps"]
    rows = []
    for task, steps in chosen.items():
        name = get_task(task).name
        budget = table[(table["task"] == name) & (table["stage"] == "budget")]
        row = {"task": name, "chosen_steps": steps}
        if len(budget):
            b = budget.iloc[0]
            row.update(heldout_final=100 * b["heldout_final"], last_third_gain=b["last_third_gain"],
                       evaluation_score=100 * b["evaluation_score"], train_examples=b["train_examples"])
            if b["majority_share_heldout"] is not None and not pd.isna(b["majority_share_heldout"]):
                above = b["heldout_final"] - b["majority_share_heldout"]
                row.update(above_majority=100 * above, enters_grid=bool(above >= MRPC_MARGIN) if name == "mrpc"
                           else True)
        rows.append(row)
    return pd.DataFrame(rows)


def budget_figure(results: Results):
    """The held-out curves: the constant run per task, with the chosen budget marked, and the budget run."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    records, table = results.meta["records"], results.table
    tasks = list(dict.fromkeys(table["task"]))
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks)
    for column, task in enumerate(tasks, start=1):
        for index in np.flatnonzero(table["task"].to_numpy() == task):
            row, curve = table.iloc[index], heldout_curve(records[index])
            if not curve:
                continue
            steps, scores = zip(*curve)
            label = f"{row['stage']} ({row['schedule']}, {row['steps']} steps)"
            fig.add_trace(go.Scatter(x=steps, y=scores, mode="lines+markers", name=f"{task}: {label}",
                                     line={"dash": "solid" if row["stage"] == "constant" else "dot"}),
                          row=1, col=column)
        majority = table.loc[table["task"] == task, "majority_share_heldout"].dropna()
        if len(majority):  # a constant prediction's held-out score: what "learns" is measured against
            fig.add_hline(y=100 * float(majority.iloc[0]), line_dash="dot", line_color="black", row=1, col=column,
                          annotation_text="majority share", annotation_position="bottom right")
        chosen = results.meta["settings"].get("chosen_steps", {}).get(task)
        if chosen:
            fig.add_vline(x=chosen, line_dash="dash", line_color="grey", row=1, col=column,
                          annotation_text=f"budget {chosen}")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="held-out score (points)", col=1)
    fig.update_layout(title="Dense fine-tuning on held-out training examples: where it plateaus")
    return fig

