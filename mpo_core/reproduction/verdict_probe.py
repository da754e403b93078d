"""The learning-rate probe of the verdict grid (issue 26): every family's rate, chosen on held-out training examples.

At the verdict grid's own budget (:mod:`.glue_verdicts`: the same data, steps and
constant-then-decay schedule), one representative row per family runs at each
rate of a log grid with :data:`PROBE_SEEDS`, and is scored on the examples held out
of its training pool (never trained on; dev is not looked at)::

    families   whole (full) · lfa (mpo_full_lfa) · last_k · opf (static) · truncated (compressed, auto, all tensors)
    round 0    the family's three starting rates (x3 apart)
    round r    if the best mean held-out score is at an end of the rates tried, one more rate x3 beyond that
               end (at most MAX_WIDENINGS times): the chosen rate is interior, or the note says it is not
    chosen     the rate with the best mean held-out score over the seeds; a run that predicted one class
               for every held-out example cannot be chosen (its rate scores as the worst)

:func:`~.glue_verdicts.rates` reads the choices from this experiment's settings (``chosen``).
"""
from __future__ import annotations

import math
import os

import pandas as pd

from ..data.glue import get_task
from .glue_grid import ByMode, RunSpec, run_grid
from .glue_verdicts import LAST_K, budget, chosen_tasks, run_settings
from .results_store import Results

NAME = "verdict_probe"
PROBE_SEEDS = ByMode(small=(0,), full=(0, 1))
MAX_WIDENINGS = ByMode(small=1, full=3)
PROBE_SIZE = 0.5  # the truncated family is probed at #To 0.5x
#: family -> (label, strategy, options, starting rates)
FAMILIES = {
    "whole": ("full", "full", {}, (3e-5, 1e-4, 3e-4)),
    "lfa": ("mpo_full_lfa", "mpo_full_lfa", {}, (3e-4, 1e-3, 3e-3)),
    "last_k": (f"last_{LAST_K}", "last_k", {"k": LAST_K}, (1e-4, 3e-4, 1e-3)),
    "opf": ("opf_static", "opf", {"selection": "static"}, (3e-5, 1e-4, 3e-4)),
    "truncated": (f"compressed_all@{PROBE_SIZE:g}", "compressed",
                  {"compression": "auto", "model_size": PROBE_SIZE, "trains": "all"}, (3e-5, 1e-4, 3e-4)),
}
SMALL_FAMILIES = ("whole", "lfa")  # the small mode exercises the widening on two families
SMALL_OPTIONS = {"opf": {"top_n": 1, "stages": 1}}


#: comma-separated families to probe (a CPU plan cut to its hours probes only the families its rows use)
FAMILIES_ENV = "MPO_PROBE_FAMILIES"


def families(mode: str) -> dict:
    text = os.environ.get(FAMILIES_ENV, "").strip()
    named = {f.strip() for f in text.split(",") if f.strip()}
    unknown = named - set(FAMILIES)
    if unknown:
        raise ValueError(f"${FAMILIES_ENV}: no families {sorted(unknown)}; choose among {list(FAMILIES)}.")
    return {k: v for k, v in FAMILIES.items()
            if (mode != "small" or k in SMALL_FAMILIES) and (not named or k in named)}


def probe_spec(mode: str, family: str, task: str, rate: float, seed: int, steps: int) -> RunSpec:
    label, strategy, options, _ = FAMILIES[family]
    extra = SMALL_OPTIONS.get(family, {}) if mode == "small" else {}
    return RunSpec(f"{label}@lr{rate:g}", task, strategy, {**options, **extra}, seed=seed,
                   settings=run_settings(mode, task, steps, rate))


def _row(spec: RunSpec, record: dict) -> dict:
    family = next(f for f, (label, *_rest) in FAMILIES.items() if spec.label.startswith(label + "@lr"))
    heldout = record.get("heldout_eval") or {}
    classes = heldout.get("predicted_classes")
    return {"task": get_task(spec.task).name, "family": family, "seed": spec.seed,
            "learning_rate": spec.settings["learning_rate"], "heldout_score": record.get("heldout_score"),
            "one_class": classes is not None and classes <= 1, "dev_score": record.get("score"),
            "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def choose(table: pd.DataFrame) -> dict:
    """``{(family, task): (rate, interior)}``: the best mean held-out rate (one-class runs score as the worst)."""
    out = {}
    for (family, task), part in table.groupby(["family", "task"], sort=False):
        scores = part.assign(score=[-math.inf if one or s is None or s != s else s
                                    for one, s in zip(part["one_class"], part["heldout_score"])])
        means = scores.groupby("learning_rate")["score"].mean().sort_index()
        if means.max() == -math.inf:
            out[(family, task)] = (None, False)
            continue
        best = float(means.idxmax())
        rates = list(means.index)
        out[(family, task)] = (best, rates[0] < best < rates[-1])
    return out


def run(mode: str) -> Results:
    tasks = chosen_tasks(mode)
    steps = {task: budget(mode, task) for task in tasks}
    grid = {(family, task): list(start) for family, (*_, start) in families(mode).items() for task in tasks}
    results = None
    for widening in range(MAX_WIDENINGS[mode] + 1):
        specs = [probe_spec(mode, family, task, rate, seed, steps[task])
                 for (family, task), rates in grid.items() for rate in sorted(rates) for seed in PROBE_SEEDS[mode]]
        results = run_grid(NAME, specs, mode, keep_records=True, row=_row, extra_settings={"partial": True})
        edges = {key: best for key, (best, interior) in choose(results.table).items()
                 if best is not None and not interior}
        if not edges or widening == MAX_WIDENINGS[mode]:
            break
        for key, best in edges.items():  # one more rate beyond the end the best one sits at
            grid[key].append(best * 3 if best == max(grid[key]) else best / 3)
    chosen = choose(results.table)
    settings = {"tasks": tasks, "families": sorted(families(mode)), "steps": steps, "seeds": PROBE_SEEDS[mode], "grids": {f"{f}/{t}": sorted(r)
                for (f, t), r in grid.items()},
                "chosen": [{"family": f, "task": t, "learning_rate": rate, "interior": interior}
                           for (f, t), (rate, interior) in chosen.items() if rate is not None],
                "no_rate_learned": [f"{f}/{t}" for (f, t), (rate, _) in chosen.items() if rate is None]}
    return run_grid(NAME, specs, mode, keep_records=True, row=_row, extra_settings=settings)


__all__ = ["FAMILIES", "NAME", "choose", "run"]
