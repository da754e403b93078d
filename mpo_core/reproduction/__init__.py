"""Reproductions of the papers' tables and figures, one module per experiment (used by ``notebooks/``).

Each module has ``run(mode) -> Results`` (computes, then saves
``results/<mode>/<name>.csv`` + ``.json``) and helpers that put our numbers
beside the paper's. ``python -m mpo_core reproduce <name> --mode full``
regenerates one; see ``notebooks/README.md`` for run times.
"""
from __future__ import annotations

import importlib

# experiment name -> module (imported only when asked for: some need transformers' Trainer)
EXPERIMENTS = {
    "mpo_basics": "mpo_basics", "figure2": "figure2", "table1": "table1", "table2": "table2",
    "table3": "table3", "table4": "table4", "table5": "table5", "opf": "opf_comparison",
    "frontier": "frontier", "lr_probe": "lr_probe", "stsb_collapse": "stsb_collapse",
    "frontier_errors": "frontier_errors", "zero_shot_frontier": "zero_shot_frontier",
    "learning_budget": "learning_budget", "glue_verdicts": "glue_verdicts", "verdict_probe": "verdict_probe",
}


def experiment(name: str):
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}.")
    return importlib.import_module(f".{EXPERIMENTS[name]}", __name__)


def reproduce(name: str, mode: str, force: bool = False):
    """Stored results of ``name`` in ``mode``, or run it (``force``: run even if stored)."""
    from ..runs.provenance import commit
    from .results_store import load_or_run

    commit()  # the provenance of what runs now: the code as it starts (see mpo_core.runs.provenance)
    return load_or_run(name, mode, experiment(name).run, force=force)


__all__ = ["EXPERIMENTS", "experiment", "reproduce"]
