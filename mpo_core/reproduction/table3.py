"""MPOP Table 3 under the controlled protocol (issue 13 §3/§5): MPOP vs full fine-tuning and the ablations, seeded.

Our base model is the packaged MiniLM (6 layers, 384 wide, real weights), not
ALBERT-base; the full mode runs on a CPU with the reductions of
:data:`~mpo_core.reproduction.glue_grid.FULL`, and the paper's rows sit beside
ours for the direction of each comparison. Rows (``strategy``)::

    full          the uncompressed model fine-tuned ("ALBERT_rep")
    mpo_full      full-bond MPO, every tensor trains
    mpo_full_lfa  full-bond MPO, auxiliary tensors + head train
    mpop          LFA, then squeezing to #To <= 0.75 x dense: the frontier's ``mpop@0.75`` run of the same
                  seed (:mod:`.frontier`; it records where the paper's delta rule would have stopped)
    mpop_dir      truncated straight to that mpop run's final bond dims, then LFA

The protocol: every row of a task has the same data (seeded subset), optimizer,
schedule (linear, 20 warmup steps), steps (94) and batch size; each family's
learning rate is the one the learning-rate probe chose on held-out *training*
examples (:func:`.lr_probe.probed_rates`; a family the probe found nothing for keeps
:data:`~mpo_core.reproduction.glue_grid.LEARNING_RATES`, said in the settings);
three seeds per cell; the dev set only reports. ``full``, ``mpo_full`` and
``mpo_full_lfa`` on SST-2 and MRPC also evaluate dev ``CURVE_POINTS`` times during
training: their learning curves answer "is the LFA gap budget or design?".
Tasks: SST-2, MRPC and STS-B, where this budget learns (RTE, CoLA and WNLI
stayed at a constant prediction in the first grid).
"""
from __future__ import annotations

import functools

import pandas as pd

from ..data.glue import get_task
from . import frontier, lr_probe
from .glue_grid import ByMode, RunSpec, constant_levels, predicted_one_class, records_root, run_grid, run_records
from .paper_numbers import TABLE3, TABLE3_ROW_OF, TABLE3_TASKS, paper_frame
from .results_store import Results, results_dir
from .seed_summary import claim_sentence, score_frame, seed_table

NAME = "table3"
TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc", "stsb"))
SEEDS = ByMode(small=(0,), full=(0, 1, 2))
ROWS = ("full", "mpo_full", "mpo_full_lfa", "mpop", "mpop_dir")
MPOP_TARGET = ByMode(small=0.75, full=0.75)
CURVE_TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc"))
CURVE_ROWS = ("full", "mpo_full", "mpo_full_lfa")
CURVE_POINTS = ByMode(small=2, full=5)  # dev evaluations during a curve run (its steps // this apart)


def learning_rates(mode: str, probe: Results | None = None) -> dict:
    """``{(strategy, task): (rate, source)}`` of Table 3's rows (:func:`.lr_probe.probed_rates`)."""
    return lr_probe.probed_rates(mode, tuple(dict.fromkeys((*ROWS, *frontier.STRATEGIES))), TASKS[mode], probe)


@functools.lru_cache(maxsize=None)
def _full_bond_share(task: str, mode: str) -> float:
    """#To of the task's full-bond MPO model / the dense model's (where squeezing starts)."""
    sizes = frontier.task_sizes(task, mode, targets=())
    return sizes["mpo_full_bond_params"] / sizes["dense_params"]


def mpop_spec(task: str, seed: int, mode: str, rates: dict) -> RunSpec:
    """The frontier's ``mpop@target`` run of this task and seed (the same spec, so the run is shared).

    A task the frontier does not run (STS-B) gets the same options, its squeeze budget from its own model's sizes.
    """
    target = MPOP_TARGET[mode]
    if task in frontier.TASKS[mode]:
        sizes = frontier.all_sizes(mode)[task]
        return next(s for s in frontier.cells(task, mode, sizes, seed, rates)
                    if s.label == frontier.label_of("mpop", target))
    start = _full_bond_share(task, mode)
    return RunSpec(frontier.label_of("mpop", target), task, "mpop", frontier.mpop_options(mode, target, start, task),
                   seed=seed, settings={"learning_rate": rates[("mpop", task)][0]})


def specs(mode: str, rates: dict | None = None) -> tuple[list[RunSpec], dict]:
    """Seed by seed, task by task: the rows, and ``{run name: experiment}`` of the runs borrowed from the frontier.

    The frontier's mpop run (at the same probed rate) is borrowed on the frontier's tasks; ``mpop_dir``
    reads the bond dims from the mpop run's kept record.
    """
    rates = rates or learning_rates(mode)
    out, borrowed = [], {}
    for seed in SEEDS[mode]:
        for task in TASKS[mode]:
            out += [dense_spec(row, task, seed, mode, rates) for row in ("full", "mpo_full", "mpo_full_lfa")]
            mpop = mpop_spec(task, seed, mode, rates)
            owner = NAME
            if task in frontier.TASKS[mode]:
                owner = borrowed[mpop.run_name] = frontier.NAME
            out.append(mpop)
            source = records_root(owner, mode) / f"{mpop.run_name}.json"
            out.append(RunSpec("mpop_dir", task, "mpop_dir", {"bond_dims_from": str(source)}, seed=seed,
                               settings={"learning_rate": rates[("mpop_dir", task)][0]}, after=mpop.run_name))
    return out, borrowed


def dense_spec(row: str, task: str, seed: int, mode: str, rates: dict) -> RunSpec:
    """A run of ``full``, ``mpo_full`` or ``mpo_full_lfa`` (the strategy of that name), with its curve if it has one."""
    settings = {"learning_rate": rates[(row, task)][0]}
    if task in CURVE_TASKS[mode] and row in CURVE_ROWS:
        settings["eval_steps"] = curve_eval_steps(mode, task)
    return RunSpec(row, task, row, seed=seed, settings=settings)


def full_spec(task: str, seed: int, mode: str, rates: dict) -> RunSpec:
    """Table 3's ``full`` run of this task and seed (OPF's reference, shared)."""
    return dense_spec("full", task, seed, mode, rates)


def curve_eval_steps(mode: str, task: str) -> int:
    """Steps between the dev evaluations of a curve run: about :data:`CURVE_POINTS` of them in its run."""
    return max(1, frontier.training_steps(mode, task) // CURVE_POINTS[mode])


def row_name(label: str) -> str:
    """Table 3's row of a run label (the frontier's ``mpop@0.75`` is the ``mpop`` row)."""
    return frontier.parse_label(label)[0]


def row(spec: RunSpec, record: dict) -> dict:
    task = get_task(spec.task)
    eval_scores = record.get("eval") or {}
    return {"row": row_name(spec.label), "task": task.name, "seed": spec.seed, "strategy": spec.strategy,
            "metric": task.metric, "score": record.get("score"),
            "learning_rate": (record.get("config") or {}).get("learning_rate"),
            "predicted_classes": eval_scores.get("predicted_classes"),
            "pr_millions": record.get("trainable_millions"), "to_millions": record.get("total_millions"),
            "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def run(mode: str) -> Results:
    rates = learning_rates(mode)
    run_specs, borrowed = specs(mode, rates)
    extra = {"tasks": TASKS[mode], "seeds": SEEDS[mode], "mpop_target": MPOP_TARGET[mode],
             "learning_rates_used": lr_probe.rates_setting(rates),
             "curve_points": CURVE_POINTS[mode], "squeeze": frontier.SQUEEZE[mode]}
    return run_grid(NAME, run_specs, mode, extra_settings=extra, borrowed=borrowed, row=row, keep_records=True)


def with_constant(results: Results, data_dir=None) -> pd.DataFrame:
    """The results table with ``constant``: the run predicted one class on dev (:func:`.glue_grid.predicted_one_class`)."""
    table = results.table.copy()
    max_eval = results.meta.get("settings", {}).get("mode_settings", {}).get("max_eval_examples")
    levels, records = {}, run_records(results)

    def stuck(r) -> bool:
        record = records.get(r.get("run")) if "run" in r else None
        if record is None:
            record = {"score": r["score"], "metric": r["metric"]}
            if "predicted_classes" in r and not pd.isna(r["predicted_classes"]):
                record["eval"] = {"predicted_classes": r["predicted_classes"]}
        key = (r["task"], int(r["seed"]))
        if key not in levels:
            levels[key] = constant_levels(r["task"], max_eval, int(r["seed"]), data_dir)
        return predicted_one_class(record, levels[key])

    table["constant"] = table.apply(stuck, axis=1)
    return table


def side_by_side(results: Results) -> pd.DataFrame:
    """Per row and task: ours (mean ± std over seeds, percent) beside the paper's; #Pr / #To in millions."""
    table = with_constant(results)
    ours = score_frame(table)
    paper = paper_frame(TABLE3, TABLE3_TASKS)
    columns = {}
    for task in ours.columns:
        columns[(task, "ours")] = ours[task]
        columns[(task, "paper")] = [paper.at[TABLE3_ROW_OF[r], task] if task in paper.columns else None
                                    for r in ours.index]
    sizes = table.groupby("row", sort=False)[["pr_millions", "to_millions"]].mean().reindex(ours.index)
    columns[("#Pr", "ours")], columns[("#Pr", "paper")] = sizes["pr_millions"].round(2), [
        paper.at[TABLE3_ROW_OF[r], "pr"] for r in ours.index]
    columns[("#To", "ours")], columns[("#To", "paper")] = sizes["to_millions"].round(2), [
        paper.at[TABLE3_ROW_OF[r], "to"] for r in ours.index]
    frame = pd.DataFrame(columns)
    frame.index = [f"{r} (paper: {TABLE3_ROW_OF[r]})" for r in ours.index]
    return frame


#: The paper's Table 3 claims: (text, method, reference, margin in points, the paper's own numbers)
CLAIMS = (
    ("MPOP stays within 1 point of full fine-tuning", "mpop", "full", 1.0, "+0.8 on average"),
    ("dimension squeezing beats direct truncation to the same bonds (mpop > mpop_dir)", "mpop", "mpop_dir", 0.0,
     "+11.1"),
    ("training only the auxiliary tensors stays within 1 point of training all of them", "mpo_full_lfa",
     "mpo_full", 1.0, "+0.1"),
    ("the full-bond MPO, all tensors training, stays within 1 point of full fine-tuning", "mpo_full", "full", 1.0,
     "+1.4 (the Score column: MPOP_full 80.3 vs ALBERT_rep 78.9)"),
)


def findings(results: Results) -> list[str]:
    """Each claim judged per task from the seeds (holds / does not hold / cannot tell), the sizes, the stuck runs."""
    table = with_constant(results)
    present = set(table["row"])
    lines = [claim_sentence(table, text, method, reference, margin, paper)
             for text, method, reference, margin, paper in CLAIMS if {method, reference} <= present]
    sizes = table.groupby("row", sort=False)[["pr_millions", "to_millions"]].mean()
    if {"mpop", "full"} <= present:
        lines.append(f"#Pr of mpop {sizes.at['mpop', 'pr_millions']:.2f}M = "
                     f"{sizes.at['mpop', 'pr_millions'] / sizes.at['full', 'pr_millions']:.1%} of full fine-tuning "
                     f"(paper 9.5 %); #To {sizes.at['mpop', 'to_millions'] / sizes.at['full', 'to_millions']:.2f}x "
                     f"dense (paper 0.78x).")
    stuck = table[table["constant"]]
    lines.append(f"{len(stuck)} of {len(table)} runs predicted one class on dev (left out of the means): "
                 f"{', '.join(stuck['run'])}." if len(stuck) else "every run learned beyond a constant prediction.")
    return lines


def curves(results: Results) -> pd.DataFrame:
    """Dev score (percent) per step of the curve runs: row, task, seed, step, score; the final score at the last step."""
    rows = []
    for record in results.meta.get("records", []):
        config = record.get("config") or {}
        points = [c for c in record.get("curve") or [] if c["split"] == "dev"]
        if not points or config.get("eval_steps", 0) >= (record.get("global_step") or 0):
            continue  # not a curve run (the Trainer's evaluation at the last step only)
        label = row_name(config.get("run_name", "").rsplit("-", 2)[0])
        task, seed = record.get("task"), config.get("seed")
        rows += [{"row": label, "task": task, "seed": seed, "step": c["step"], "score": 100 * c["score"]}
                 for c in points]
        last = max(c["step"] for c in points)
        steps = record.get("global_step") or last
        if steps > last:
            rows.append({"row": label, "task": task, "seed": seed, "step": steps, "score": 100 * record["score"]})
    return pd.DataFrame(rows, columns=["row", "task", "seed", "step", "score"])


def curve_findings(results: Results) -> list[str]:
    """Per task, from the curves' means over seeds: each row's gap to ``full`` at every evaluation, and how far
    each row still rose over the second half of the run ("is the LFA gap budget or design?")."""
    data = curves(results)
    lines = []
    for task, part in data.groupby("task", sort=False):
        means = part.groupby(["row", "step"], sort=False)["score"].mean().unstack("step").sort_index(axis=1)
        if "full" not in means.index or means.shape[1] < 2:
            continue
        steps = list(means.columns)
        middle = next(s for s in steps if s >= steps[-1] / 2)
        gaps = "; ".join(f"{row} − full " + ", ".join(f"{means.at[row, s] - means.at['full', s]:+.1f}" for s in steps)
                         for row in means.index if row != "full")
        rise = ", ".join(f"{row} {means.at[row, steps[-1]] - means.at[row, middle]:+.1f}" for row in means.index)
        seeds = part["seed"].nunique()
        lines.append(f"{task} curves (mean of {seeds} seed{'s' * (seeds != 1)}), at steps "
                     f"{', '.join(map(str, steps))}: {gaps} points; from step {middle} to the end: {rise} points.")
    return lines


def curve_figure(results: Results):
    """Dev score vs step per task, mean ± std over seeds, for full, mpo_full and mpo_full_lfa."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = curves(results)
    tasks = list(dict.fromkeys(data["task"]))
    fig = make_subplots(rows=1, cols=max(1, len(tasks)), subplot_titles=tasks)
    colors = {"full": "black", "mpo_full": "#d62728", "mpo_full_lfa": "#1f77b4"}
    for col, task in enumerate(tasks, start=1):
        for name, part in data[data["task"] == task].groupby("row", sort=False):
            stats = part.groupby("step")["score"].agg(["mean", "std"]).reset_index()
            fig.add_trace(go.Scatter(x=stats["step"], y=stats["mean"], mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=col == 1, line=dict(color=colors.get(name)),
                                     error_y=dict(type="data", array=stats["std"].fillna(0))), row=1, col=col)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="dev score (%)", col=1)
    fig.update_layout(title=f"{results.name} [{results.mode}]: learning curves (mean ± std over seeds)")
    return fig


def squeeze_summary(results: Results) -> pd.DataFrame:
    """Per mpop run: #To reached vs dense, and the #To at which each delta rule would have stopped."""
    rows = []
    for record in results.meta.get("records", []):
        squeeze = record.get("squeeze")
        if record.get("strategy") != "mpop" or not isinstance(squeeze, dict):
            continue
        dense = squeeze.get("dense_params") or float("nan")
        rows.append({"task": record.get("task"), "seed": (record.get("config") or {}).get("seed"),
                     "stop_reason": squeeze.get("stop_reason"), "to_vs_dense": record.get("total_params") / dense,
                     **{f"{rule}_rule_vs_dense": (frontier.rule_stop(squeeze, rule) or float("nan")) / dense
                        for rule in frontier.RULES},
                     "p_heldout": squeeze.get("baseline"), "p_tilde_final": squeeze.get("final")})
    return pd.DataFrame(rows)


__all__ = ["NAME", "ROWS", "TASKS", "curve_figure", "curve_findings", "curves", "findings", "run", "side_by_side",
           "specs", "squeeze_summary", "results_dir", "seed_table"]
