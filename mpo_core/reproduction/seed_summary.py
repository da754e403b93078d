"""A grid run over seeds, summarized: mean ± std per row and task, one-class runs left out, claims as verdicts.

The rows of a results table (one per run) need the columns ``row``, ``task``,
``seed``, ``score`` (a fraction) and ``constant`` (the run predicted one class
on dev, or scored exactly a constant prediction's score: it learned nothing and
is named, not averaged in). Scores are shown in percent, as the papers print them.
"""
from __future__ import annotations

import pandas as pd

from .verdict import Verdict, not_below


def seed_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per row and task: runs, constant runs, mean and std (percent) of the runs that learned, #Pr/#To means."""
    learned = table[~table["constant"].astype(bool)]
    keys = ["row", "task"]
    sizes = {c: (c, "mean") for c in ("pr_millions", "to_millions") if c in table}
    out = table.groupby(keys, sort=False).agg(runs=("score", "size"), constant=("constant", "sum"), **sizes)
    scores = learned.groupby(keys, sort=False)["score"].agg(["mean", "std"]) * 100
    return out.join(scores).reset_index()


def score_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Rows x tasks of ``"mean ± std"`` strings (``"-"`` where no run learned; ``(k/n)`` where k of n did)."""
    summary = seed_table(table)

    def cell(r) -> str:
        if pd.isna(r["mean"]):
            return f"- (0/{r['runs']})"
        text = f"{r['mean']:.1f}" + ("" if pd.isna(r["std"]) else f" ± {r['std']:.1f}")
        learned = r["runs"] - r["constant"]
        return text + ("" if learned == r["runs"] else f" ({learned}/{r['runs']})")

    summary["cell"] = summary.apply(cell, axis=1)
    return summary.pivot(index="row", columns="task", values="cell").reindex(
        index=list(dict.fromkeys(summary["row"])), columns=list(dict.fromkeys(summary["task"])))


def scores_of(table: pd.DataFrame, row: str, task: str) -> list[float]:
    """The percent scores of ``row`` on ``task`` over the seeds whose run learned."""
    part = table[(table["row"] == row) & (table["task"] == task) & ~table["constant"].astype(bool)]
    return list(part["score"] * 100)


def claim(table: pd.DataFrame, method: str, reference: str, task: str, margin: float) -> Verdict | None:
    """Verdict on "``method`` is at most ``margin`` points below ``reference``" on ``task`` (None: a side has no run)."""
    ours, theirs = scores_of(table, method, task), scores_of(table, reference, task)
    return not_below(ours, theirs, margin) if ours and theirs else None


def claim_sentence(table: pd.DataFrame, text: str, method: str, reference: str, margin: float,
                   paper: str = "") -> str:
    """One claim judged per task: ``"<text>: sst2 holds (...); mrpc cannot tell (...)"``."""
    parts = []
    for task in dict.fromkeys(table["task"]):
        verdict = claim(table, method, reference, task, margin)
        parts.append(f"{task} " + ("no run learned on one side" if verdict is None else verdict.describe()))
    return f"{text}{f' (paper: {paper})' if paper else ''}: " + "; ".join(parts) + "."
