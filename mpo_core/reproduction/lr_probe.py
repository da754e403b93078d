"""The learning-rate probe of the controlled protocol (issue 13 §3): rates chosen on training data, never on dev.

One run per (family, task, rate), seed 0, with the full mode's data, schedule,
steps and batch size (:data:`~mpo_core.reproduction.glue_grid.FULL`). Each run
holds out ``HELDOUT`` of its training examples (seeded, never trained on) and
is judged by its score there (``heldout_score``); the dev score is recorded and
only reported. A family's rate for a task is the one with the best held-out
score; a run whose held-out predictions are one class for every example is
named and cannot be chosen.

Families (which parameters train decides the step size that works)::

    whole   full         every dense weight                 (full, last_k, opf train whole matrices)
    mpo     mpo_full     every MPO tensor, central included (its own family: Adam moves factors, and the
                         matrix they rebuild, differently from a dense weight; the STS-B collapse, issue 13)
    lfa     mpo_full_lfa auxiliary tensors + head           (mpo_lfa, mpop, mpop_dir train the same tensors)

Held-out examples come out of the run's 1500 training examples (as mpop's
do), so a probe run trains on 1244: the same for every rate it compares.
"""
from __future__ import annotations

import pandas as pd

from ..data.glue import get_task
from .glue_grid import ByMode, RunSpec, constant_levels, run_grid
from .results_store import Results

NAME = "lr_probe"
TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc", "stsb"))
FAMILIES = ByMode(  # family -> (strategy probed, candidate rates)
    small={"whole": ("full", (1e-4, 5e-4)), "lfa": ("mpo_full_lfa", (1e-3,))},
    full={"whole": ("full", (5e-5, 1e-4, 2e-4)), "mpo": ("mpo_full", (2e-5, 5e-5, 1e-4)),
          "lfa": ("mpo_full_lfa", (3e-4, 1e-3, 3e-3))},
)
HELDOUT = ByMode(small=16, full=256)
#: which family's rate each strategy of the controlled grids takes
FAMILY_OF = {"full": "whole", "last_k": "whole", "opf": "whole", "mpo_full": "mpo",
             "mpo_full_lfa": "lfa", "mpo_lfa": "lfa", "mpop": "lfa", "mpop_dir": "lfa"}


def label(strategy: str, rate: float) -> str:
    return f"{strategy}@lr{rate:g}"


def specs(mode: str) -> list[RunSpec]:
    return [RunSpec(label(strategy, rate), task, strategy, seed=0,
                    settings={"learning_rate": rate, "heldout_examples": HELDOUT[mode]})
            for task in TASKS[mode] for strategy, rates in FAMILIES[mode].values() for rate in rates]


def row(spec: RunSpec, record: dict) -> dict:
    family = FAMILY_OF[spec.strategy]
    return {"task": get_task(spec.task).name, "family": family, "strategy": spec.strategy,
            "learning_rate": spec.settings["learning_rate"], "metric": record.get("metric"),
            "heldout_score": record.get("heldout_score"), "heldout_examples": record.get("num_heldout_examples"),
            "heldout_constant": _one_class(record), "dev_score": record.get("score"),
            "wall_seconds": record.get("wall_seconds"), "run": spec.run_name}


def _one_class(record: dict) -> bool:
    """Whether the run predicted one class for every held-out example (STS-B: a constant score, Spearman 0)."""
    heldout = record.get("heldout_eval") or {}
    if "predicted_classes" in heldout:
        return heldout["predicted_classes"] <= 1
    return record.get("metric") == "spearman" and record.get("heldout_score") == 0.0


def run(mode: str) -> Results:
    extra = {"tasks": TASKS[mode], "families": FAMILIES[mode], "heldout_examples": HELDOUT[mode],
             "family_of": FAMILY_OF}
    return run_grid(NAME, specs(mode), mode, extra_settings=extra, row=row, keep_records=True)


def chosen_rates(results: Results) -> pd.DataFrame:
    """Per task and family: the rate with the best held-out score (one-class runs cannot win), and the others'."""
    table = results.table
    rows = []
    for (task, family), part in table.groupby(["task", "family"], sort=False):
        usable = part[~part["heldout_constant"].astype(bool)]
        best = usable.loc[usable["heldout_score"].idxmax()] if len(usable) else None
        rows.append({"task": task, "family": family,
                     "learning_rate": None if best is None else best["learning_rate"],
                     "heldout_score": None if best is None else best["heldout_score"],
                     "probed": ", ".join(f"{r:g}: {s:.3f}" + (" (one class)" if c else "")
                                         for r, s, c in zip(part["learning_rate"], part["heldout_score"],
                                                            part["heldout_constant"]))})
    return pd.DataFrame(rows)


def rate_of(results: Results, strategy: str, task: str) -> float:
    """The probed rate for ``strategy``'s family on ``task``."""
    chosen = chosen_rates(results).set_index(["task", "family"])
    key = (get_task(task).name, FAMILY_OF[strategy])
    if key not in chosen.index or pd.isna(chosen.at[key, "learning_rate"]):
        raise ValueError(f"the learning-rate probe chose no rate for {key} (every probed rate predicted one class, "
                         f"or the task was not probed).")
    return float(chosen.at[key, "learning_rate"])


def probed_rates(mode: str, strategies, tasks, probe: Results | None = None) -> dict:
    """``{(strategy, task): (rate, source)}`` for the controlled grids: the probe's choice for the strategy's
    family (:data:`FAMILY_OF`), or the fixed :data:`~mpo_core.reproduction.glue_grid.LEARNING_RATES` where the
    probe chose none (every rate predicted one class), said in ``source``.

    The small mode runs without a probe (fixed rates); the others need its results.
    """
    from .glue_grid import LEARNING_RATES
    from .results_store import load_results

    probe = probe if probe is not None else load_results(NAME, mode)
    if probe is None and mode != "small":
        raise ValueError("the controlled grids take their learning rates from the probe on training data: run "
                         f"`python -m mpo_core reproduce lr_probe --mode {mode}` first.")
    out = {}
    for task in tasks:
        for strategy in strategies:
            try:
                out[(strategy, task)] = (rate_of(probe, strategy, task), NAME)
            except (ValueError, AttributeError):  # no probe (small mode), or nothing learned in it
                out[(strategy, task)] = (LEARNING_RATES[strategy], "fixed (the probe chose none)")
    return out


def rates_setting(rates: dict) -> dict:
    """The rates as the results' settings record them: ``{"strategy/task": {"rate", "source"}}``."""
    return {f"{s}/{t}": {"rate": r, "source": source} for (s, t), (r, source) in rates.items()}


def findings(results: Results) -> list[str]:
    """The chosen rate per task and family, with the held-out scores it was chosen from."""
    lines = [f"{r.task} / {r.family}: {r.learning_rate:g} (held-out {r.heldout_score:.3f}; probed {r.probed})"
             if r.learning_rate is not None else f"{r.task} / {r.family}: no rate learned ({r.probed})"
             for r in chosen_rates(results).itertuples()]
    stuck = results.table[results.table["heldout_constant"].astype(bool)]
    if len(stuck):
        lines.append(f"{len(stuck)} probe runs predicted one class on the held-out examples: {', '.join(stuck['run'])}.")
    return lines


__all__ = ["NAME", "chosen_rates", "findings", "rate_of", "run", "specs", "constant_levels"]
