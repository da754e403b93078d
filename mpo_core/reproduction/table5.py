"""MPOP Table 5: fine-tuning only the last 1-3 layers vs MPOP (SST-2, MRPC, RTE).

The paper used BERT-base's layers 10-12 / 11-12 / 12; on the 6-layer MiniLM
the same rows are its last 3 / 2 / 1 layers (``last_k``; the classifier head
trains too). The MPOP row is its own run with the first protocol's squeeze (until
Table 5 is redone under the controlled protocol); the small mode loads 3 layers.
"""
from __future__ import annotations

import pandas as pd

from .glue_grid import (
    RunSpec, constant_sentence, mean_scores, run_grid, score_table, side_by_side as _side_by_side, squeeze_options,
)
from .paper_numbers import TABLE5, TABLE5_TASKS, paper_frame
from .results_store import Results

NAME = "table5"
TASKS = {"small": ("rte",), "full": ("sst2", "mrpc", "rte")}
ROW_OF = {"last_3": "BERT_10-12", "last_2": "BERT_11-12", "last_1": "BERT_12", "mpop": "MPOP_B"}


def specs(mode: str) -> list[RunSpec]:
    out = []
    for task in TASKS[mode]:
        out += [RunSpec(f"last_{k}", task, "last_k", {"k": k}) for k in (3, 2, 1)]
        out.append(RunSpec("mpop", task, "mpop", squeeze_options(mode)))
    return out


def run(mode: str) -> Results:
    layers = {"num_hidden_layers": 3} if mode == "small" else {}  # last_3 needs three layers
    return run_grid(NAME, specs(mode), mode, extra_settings={"tasks": TASKS[mode]}, **layers)


def side_by_side(results: Results) -> pd.DataFrame:
    return _side_by_side(score_table(results), paper_frame(TABLE5, TABLE5_TASKS), ROW_OF)


def findings(results: Results) -> list[str]:
    ours = score_table(results)
    mean = mean_scores(ours)
    best_last = max((r for r in ours.index if r.startswith("last_")), key=lambda r: mean[r])
    return [
        "mean score: " + ", ".join(f"{r} {mean[r]:.1f} (#Pr {ours.at[r, 'pr']:.2f}M)" for r in ours.index),
        f"mpop {'beats' if mean['mpop'] > mean[best_last] else 'trails'} the best last-layers row "
        f"({best_last}) by {abs(mean['mpop'] - mean[best_last]):.1f} points with "
        f"{ours.at['mpop', 'pr'] / ours.at[best_last, 'pr']:.0%} of its #Pr (paper: +3.2 points on average).",
        constant_sentence(results),
    ]
