"""The GLUE verdicts at a budget where the model learns, with paired statistics (issue 26).

Every row of a task runs with the same data, steps, schedule and batch:
the budget that :mod:`.learning_budget` chose on held-out training examples
(dense fine-tuning plateaus there), a constant-then-decay schedule, the same
training pool and the same number of held-out examples (mpop judges its cuts
on them; the other rows hold them out too, so every row trains on the same
examples for a seed). Every run keeps its predictions on the task's fixed
evaluation set (:mod:`~mpo_core.data.evaluation_set`: SST-2's dev plus a
5000-sentence slice of train, STS-B's whole dev set), so two rows are
compared on the same seeds and the same examples::

    claim "A within 1 point of B":  paired bootstrap interval of A - B (seeds and examples resampled
                                    together, :mod:`.paired_bootstrap`) inside (-1, +1)  -> holds
    claim "A beats B" / "not below": the interval above 0 / above -margin
    beside it: the Welch interval of the per-seed scores (:mod:`.verdict`), as the first protocol had

Rows (``@t``: the whole model's #To at t x dense, word embedding included)::

    full               dense fine-tuning                                 family whole
    mpo_full_lfa       full-bond MPO, auxiliary tensors + head           family lfa
    last_k             the last LAST_K layers + head (#Pr near LFA's)    family last_k
    opf_static/dynamic OPF, then contracted back to dense                family opf
    mpop@t             LFA, then squeezing with cuts ranked by the data-aware error (Algorithm 2), steps
                       matched: LFA steps + cuts x tune steps = the budget   family lfa
    mpop_dir@t         mpop's final bonds of the same seed, truncated directly, LFA   family lfa
    compressed_aux@t   the calibrated compressor (auto), then auxiliary tensors + head   family lfa
    compressed_all@t   the same, every parameter trains                  family truncated
    svd_whitened@t     the whitened SVD at t, every parameter trains     family truncated

Rates come from :data:`RATES_EXPERIMENT` (a probe per family on held-out training
examples at this budget) when it is stored; until then a row runs at its
first-protocol rate and the table says so (``rate_source``) — such a grid is a
dry run of the design, not the verdicts.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from ..data.glue import get_task
from .glue_grid import LEARNING_RATES, ByMode, RunSpec, predicted_one_class, records_root, run_grid
from .learning_budget import DECAY_SHARE, NAME as BUDGET, _settings as budget_settings
from .results_store import Results, load_results

NAME = "glue_verdicts"
RATES_EXPERIMENT = "verdict_probe"
#: MRPC runs only while the stored learning budget says it learns (its dense budget run ends at least
#: learning_budget.MRPC_MARGIN above the majority share: 13.8 points in the stored run), see :func:`chosen_tasks`
TASKS = ByMode(small=("sst2",), full=("sst2", "stsb", "mrpc"))
SEEDS = ByMode(small=(0,), full=(0, 1, 2, 3, 4))
SIZES = ByMode(small=(0.75,), full=(0.5, 0.75))
LAST_K = 1
WITHIN = 1.0  # points: "within 1 point"
#: the squeeze of mpop@t: a cut removes step_size of the dense model; tune_steps after each; the budget's
#: steps are shared out so that LFA steps + cuts x tune steps = the budget (the comparators' steps)
SQUEEZE = ByMode(small=dict(step_size=0.2, tune_steps=1, delta=0.01),
                 full=dict(step_size=0.05, tune_steps=12, delta=0.01))
SQUEEZE_SLACK = 2
#: the calibrated compressor of the compressed rows (the small mode's auto would spend minutes on the embedding's
#: MPO options; it exercises the code path with the whitened SVD)
COMPRESSOR = ByMode(small="svd_whitened", full="auto")
OPF = ByMode(small={"top_n": 1, "stages": 1}, full={})  # the small mode's one layer: one matrix per group
MPO_FULL_BOND_SHARE = 1.07  # #To of the full-bond MPO model (n = 5) as a share of dense (MiniLM)
FAMILY = {"full": "whole", "mpo_full_lfa": "lfa", "last_k": "last_k", "opf_static": "opf", "opf_dynamic": "opf",
          "mpop": "lfa", "mpop_dir": "lfa", "compressed_aux": "lfa", "compressed_all": "truncated",
          "svd_whitened": "truncated"}
#: the first protocol's rate of each family, used (and said) until the probe at this budget is stored
FIRST_RATES = {"whole": LEARNING_RATES["full"], "lfa": LEARNING_RATES["mpo_full_lfa"],
               "last_k": LEARNING_RATES["last_k"], "opf": LEARNING_RATES["opf"], "truncated": LEARNING_RATES["mpo_full"]}
#: the papers' claims, judged per task: (text, row, reference row, kind, margin in points, the paper's number)
CLAIMS = (
    ("MPOP stays within 1 point of full fine-tuning (MPOP Table 3)", "mpop@{t}", "full", "within", WITHIN, "+0.8"),
    ("dimension squeezing beats direct truncation to the same bonds", "mpop@{t}", "mpop_dir@{t}", "beats", 0.0,
     "+11.1"),
    ("auxiliary tensors alone stay within 1 point of full fine-tuning", "mpo_full_lfa", "full", "within", WITHIN,
     "+1.5 (MPOP_full+LFA vs ALBERT_rep)"),
    ("MPOP beats fine-tuning the last layers (MPOP Table 5)", "mpop@{t}", f"last_{LAST_K}", "beats", 0.0, "+7.6"),
    ("OPF (static) beats full fine-tuning", "opf_static", "full", "beats", 0.0, "OPF Table 2"),
    ("OPF (dynamic) beats full fine-tuning", "opf_dynamic", "full", "beats", 0.0, "OPF Table 2"),
    ("the calibrated compressor, auxiliary tensors tuned, stays within 1 point of full", "compressed_aux@{t}",
     "full", "within", WITHIN, "-"),
    ("the calibrated compressor, all tuned, stays within 1 point of full", "compressed_all@{t}", "full", "within",
     WITHIN, "-"),
    ("the calibrated compressor beats the whitened SVD at equal #To (all tuned)", "compressed_all@{t}",
     "svd_whitened@{t}", "not below", 0.0, "-"),
)


def family_of(label: str) -> str:
    method = label.partition("@")[0]
    return "last_k" if method.startswith("last_") else FAMILY[method]


def budget(mode: str, task: str) -> int:
    """The task's steps: the learning budget's choice (small mode: its design's steps)."""
    if mode == "small":
        return 8
    stored = load_results(BUDGET, mode)
    steps = None if stored is None else stored.meta["settings"]["chosen_steps"].get(task)
    if steps is None:
        raise ValueError(f"{task}: no learning budget is stored for mode {mode}: run `python -m mpo_core reproduce "
                         f"{BUDGET} --mode {mode}` first (the grid runs where dense fine-tuning has plateaued).")
    return int(steps)


def run_settings(mode: str, task: str, steps: int, rate: float) -> dict:
    """The shared FineTuneConfig settings of a task's rows (the budget's data, steps and schedule)."""
    settings = budget_settings(mode, task, max_steps=steps, lr_scheduler_type="warmup_stable_decay",
                               decay_steps=max(1, round(DECAY_SHARE * steps)))
    settings.update(eval_steps=10**9, learning_rate=rate)  # no evaluation during training (mpop judges its own)
    return settings


def rates(mode: str, tasks) -> dict:
    """``{(family, task): (rate, source)}``: the probe's choice at this budget, or the first protocol's (said)."""
    probe = load_results(RATES_EXPERIMENT, mode)
    chosen = {} if probe is None else {(r["family"], r["task"]): r["learning_rate"]
                                       for r in probe.meta["settings"].get("chosen", [])}
    return {(family, task): ((chosen[(family, task)], RATES_EXPERIMENT) if (family, task) in chosen
                             else (rate, "first protocol (not probed at this budget)"))
            for task in tasks for family, rate in FIRST_RATES.items()}


def mpop_options(mode: str, target: float, steps: int, heldout: int) -> dict:
    squeeze = SQUEEZE[mode]
    cuts = max(1, math.ceil((MPO_FULL_BOND_SHARE - target) / squeeze["step_size"])) + SQUEEZE_SLACK
    lfa = steps - cuts * squeeze["tune_steps"]
    if lfa < steps // 2:
        raise ValueError(f"mpop@{target}: {cuts} cuts x {squeeze['tune_steps']} steps leave {lfa} of {steps} steps "
                         "for LFA; give a larger budget or fewer tune steps.")
    return dict(target_size=target, step_unit="model", rank="per_param", bonds="all", stop_on="never",
                error="data", lfa_steps=lfa, squeeze_steps=cuts, heldout_examples=heldout, fill_budget=True,
                **squeeze)


def cells(mode: str, task: str, seed: int, steps: int, rate_of: dict) -> list[RunSpec]:
    """One seed's rows of one task."""
    heldout = budget_settings(mode, task)["heldout_examples"]

    def spec(label, strategy, options=None, after=None):
        return RunSpec(label, task, strategy, dict(options or {}), seed=seed, after=after,
                       settings=run_settings(mode, task, steps, rate_of[(family_of(label), task)][0]))

    out = [spec("full", "full"), spec("mpo_full_lfa", "mpo_full_lfa"),
           spec(f"last_{LAST_K}", "last_k", {"k": LAST_K}),
           spec("opf_static", "opf", {"selection": "static", **OPF[mode]}),
           spec("opf_dynamic", "opf", {"selection": "dynamic", **OPF[mode]})]
    for t in SIZES[mode]:
        mpop = spec(f"mpop@{t:g}", "mpop", mpop_options(mode, t, steps, heldout))
        kept = records_root(NAME, mode) / f"{mpop.run_name}.json"  # committed: a fresh machine has it too
        out += [mpop, spec(f"mpop_dir@{t:g}", "mpop_dir", {"bond_dims_from": str(kept)}, after=mpop.run_name),
                spec(f"compressed_aux@{t:g}", "compressed", {"compression": COMPRESSOR[mode], "model_size": t,
                                                             "trains": "auxiliary"}),
                spec(f"compressed_all@{t:g}", "compressed", {"compression": COMPRESSOR[mode], "model_size": t,
                                                             "trains": "all"}),
                spec(f"svd_whitened@{t:g}", "compressed", {"compression": "svd_whitened", "model_size": t,
                                                           "trains": "all"})]
    return out


#: environment variables that cut a grid down (a device run that must fit 10 minutes, or a CPU plan that must
#: fit its hours): comma-separated seeds, row labels and tasks; all are recorded in the results' settings (the
#: tasks in the probe's too)
SEEDS_ENV, ROWS_ENV, TASKS_ENV = "MPO_VERDICT_SEEDS", "MPO_VERDICT_ROWS", "MPO_VERDICT_TASKS"


def chosen_tasks(mode: str) -> tuple[str, ...]:
    """The mode's tasks, or the subset ``$MPO_VERDICT_TASKS`` names (in the mode's order)."""
    text = os.environ.get(TASKS_ENV, "").strip()
    named = {t.strip() for t in text.split(",") if t.strip()} if text else set(TASKS[mode])
    unknown = named - set(TASKS[mode])
    if unknown or not named:
        raise ValueError(f"${TASKS_ENV}: no tasks {sorted(unknown)} in mode {mode}; choose among {list(TASKS[mode])}.")
    tasks = tuple(t for t in TASKS[mode] if t in named and (t != "mrpc" or mrpc_learns(mode)))
    if not tasks:  # only MRPC named, and its stored budget run did not learn
        raise ValueError(f"${TASKS_ENV}: MRPC does not enter the grid (its stored learning budget run ends within "
                         "the margin of the majority share); name another task.")
    return tasks


def mrpc_learns(mode: str) -> bool:
    """Whether the stored learning budget lets MRPC into the grid (its dense budget run far enough above the
    majority share); ``True`` while none is stored (:func:`budget` then says what to run first)."""
    from .learning_budget import budget_table

    stored = load_results(BUDGET, mode)
    if stored is None or "chosen_steps" not in stored.meta["settings"]:
        return True
    rows = budget_table(stored)
    mrpc = rows[rows["task"] == "mrpc"]
    enters = mrpc.iloc[0].get("enters_grid") if len(mrpc) else None
    return bool(pd.notna(enters) and enters)  # None/NaN: the budget run is not stored yet


def chosen_seeds(mode: str) -> tuple[int, ...]:
    text = os.environ.get(SEEDS_ENV, "").strip()
    if not text:
        return tuple(SEEDS[mode])
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"${SEEDS_ENV} must be comma-separated seeds, e.g. 0,1,2; got {text!r}.") from None


def chosen_rows() -> set[str] | None:
    text = os.environ.get(ROWS_ENV, "").strip()
    return {r.strip() for r in text.split(",") if r.strip()} or None


def specs(mode: str) -> list[RunSpec]:
    """Every run, seed by seed (an interrupted grid holds whole rows of its first seeds)."""
    tasks = chosen_tasks(mode)
    rate_of = rates(mode, tasks)
    steps = {task: budget(mode, task) for task in tasks}
    rows = chosen_rows()
    out = [s for seed in chosen_seeds(mode) for task in tasks for s in cells(mode, task, seed, steps[task], rate_of)]
    if rows is not None:
        unknown = rows - {s.label for s in out}
        if unknown:
            raise ValueError(f"${ROWS_ENV}: no rows {sorted(unknown)}; the rows are {sorted({s.label for s in out})}.")
        out = [s for s in out if s.label in rows or any(s.run_name == o.after for o in out if o.label in rows)]
    return out


def _row(spec: RunSpec, record: dict) -> dict:
    return {"task": get_task(spec.task).name, "row": spec.label, "family": family_of(spec.label), "seed": spec.seed,
            "learning_rate": spec.settings.get("learning_rate"), "metric": record.get("metric"),
            "score": record.get("score"), "evaluation_score": record.get("evaluation_score"),
            "one_class": predicted_one_class(record) if record.get("metric") != "spearman" else
            record.get("evaluation_predicted_classes") == 1,
            "total_params": record.get("total_params"), "trainable_params": record.get("trainable_params"),
            "steps": record.get("global_step"), "train_examples": record.get("num_train_examples"),
            "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def run(mode: str) -> Results:
    tasks = chosen_tasks(mode)
    rate_of = rates(mode, tasks)
    extra = {"tasks": tasks, "seeds": chosen_seeds(mode), "rows": sorted(chosen_rows() or []) or "all",
             "sizes": SIZES[mode], "steps": {t: budget(mode, t) for t in tasks},
             "rates": {f"{f}/{t}": {"rate": r, "source": s} for (f, t), (r, s) in rate_of.items()},
             "within_points": WITHIN, "squeeze": SQUEEZE[mode]}
    return run_grid(NAME, specs(mode), mode, keep_records=True, row=_row, extra_settings=extra)


def _labels(task: str, evaluation_set: dict, data_dir=None) -> np.ndarray:
    """Gold labels of a task's fixed evaluation set (dev in file order, then the slice)."""
    from ..data.evaluation_set import split_evaluation_slice
    from ..data.glue import default_glue_dir, load_glue_split

    data_dir = data_dir or default_glue_dir()
    labels = list(load_glue_split(task, "dev", data_dir).labels)
    if evaluation_set.get("slice_examples"):
        whole = load_glue_split(task, "train", data_dir)
        labels += list(split_evaluation_slice(whole, evaluation_set["slice_examples"])[1].labels)
    return np.asarray(labels)


def verdicts(results: Results, resamples: int = 2000, data_dir=None) -> pd.DataFrame:
    """Each claim per task and size: the paired difference (points) and interval, its verdict, the Welch interval."""
    from .paired_bootstrap import METRICS, paired_difference
    from .verdict import difference_interval

    table, records = results.table, results.meta["records"]
    by_run = dict(zip(table["run"], records))
    rows = []
    for task in dict.fromkeys(table["task"]):
        part = table[table["task"] == task]
        metric = get_task(task).metric
        labels = None
        for text, method, reference, kind, margin, paper in CLAIMS:
            for t in results.meta["settings"]["sizes"] if "{t}" in method + reference else [None]:
                a_row, b_row = (r.format(t=f"{t:g}") if t is not None else r for r in (method, reference))
                a = part[part["row"] == a_row].set_index("seed")
                b = part[part["row"] == b_row].set_index("seed")
                seeds = sorted(set(a.index) & set(b.index))
                if not seeds:
                    continue
                pa = [by_run[a.at[s, "run"]].get("predictions") for s in seeds]
                pb = [by_run[b.at[s, "run"]].get("predictions") for s in seeds]
                if any(p is None for p in pa + pb):
                    continue
                if labels is None:
                    labels = _labels(task, by_run[a.at[seeds[0], "run"]]["evaluation_set"], data_dir)
                if metric not in METRICS:
                    raise ValueError(f"{task}: paired verdicts support {METRICS}, not {metric}.")
                interval = paired_difference(metric, np.asarray(pa), np.asarray(pb), labels, resamples=resamples)
                scale = 100.0
                if kind == "within":
                    verdict = interval.equivalent(margin / scale)
                else:
                    verdict = interval.not_below(margin / scale) if kind == "not below" else \
                        ("holds" if interval.low > 0 else "does not hold" if interval.high < 0 else "cannot tell")
                d, low, high = difference_interval(100 * a.loc[seeds, "evaluation_score"],
                                                   100 * b.loc[seeds, "evaluation_score"])
                rows.append({"task": task, "claim": text.replace("{t}", f"{t:g}") if t else text,
                             "row": a_row, "reference": b_row, "seeds": len(seeds), "examples": interval.examples,
                             "difference": scale * interval.difference, "paired_low": scale * interval.low,
                             "paired_high": scale * interval.high, "verdict": verdict,
                             "welch_low": low, "welch_high": high, "paper": paper})
    return pd.DataFrame(rows)


__all__ = ["CLAIMS", "NAME", "budget", "cells", "rates", "run", "specs", "verdicts"]
