"""MPOP Table 4: the method on other architectures (WNLI, MRPC, RTE).

Rows per architecture: plain fine-tuning (``full``) and ``mpop``. The packaged
MiniLM (a real pre-trained BERT) runs its own (the first protocol's squeeze; Table 3's
controlled runs are seeded and squeeze to a size). DistilBERT, MobileBERT,
ALBERT and MPNet have no offline weights: they run on seeded random weights
(:mod:`~mpo_core.reproduction.random_models`), marked as such in every row;
their scores say nothing about the paper's, only their #Pr/#To and that the
method runs on each architecture. Give ``models={arch: hub name}`` online to
use real checkpoints.
"""
from __future__ import annotations

import pandas as pd

from .glue_grid import RunSpec, constant_sentence, run_grid, score_table, squeeze_options
from .paper_numbers import TABLE4, TABLE4_TASKS, paper_frame
from .random_models import LABELS, random_model_folder
from .results_store import Results, results_dir

NAME = "table4"
TASKS = {"small": ("rte",), "full": ("wnli", "mrpc", "rte")}
ARCHS = ("distilbert", "mobilebert", "albert", "mpnet")
PAPER_ROW = {("minilm", "full"): "BERT", ("minilm", "mpop"): "MPOP_B", ("distilbert", "full"): "DistilBERT",
             ("distilbert", "mpop"): "MPOP_D", ("mobilebert", "full"): "MobileBERT", ("mobilebert", "mpop"): "MPOP_M"}


def specs(mode: str, models: dict[str, str] | None = None) -> list[RunSpec]:
    models = dict(models or {})
    out = []
    for task in TASKS[mode]:
        for strategy, options in (("full", {}), ("mpop", squeeze_options(mode))):
            out.append(RunSpec(strategy, task, strategy, options))  # MiniLM
        for arch in ARCHS:
            model = models.get(arch) or str(random_model_folder(arch, results_dir(mode) / "models" / f"{arch}-random"))
            label = arch if arch in models else LABELS[arch]
            for strategy, options in (("full", {}), ("mpop", squeeze_options(mode))):
                out.append(RunSpec(f"{arch}/{strategy}", task, strategy, options, model=model, model_label=label))
    return out


def run(mode: str, models: dict[str, str] | None = None) -> Results:
    return run_grid(NAME, specs(mode, models), mode, extra_settings={"tasks": TASKS[mode], "archs": ARCHS})


def side_by_side(results: Results) -> pd.DataFrame:
    """Our rows (model, strategy) with the paper's matching row where there is one."""
    ours = score_table(results)
    paper = paper_frame(TABLE4, TABLE4_TASKS)
    models = results.table.groupby("row", sort=False)["model"].first()
    rows = []
    for row in ours.index:
        arch, strategy = row.split("/") if "/" in row else ("minilm", row)
        paper_row = PAPER_ROW.get((arch, strategy))
        entry = {"model": models[row], "strategy": strategy, "paper row": paper_row or "-"}
        for column in ours.columns:
            entry[f"{column} ours"] = ours.at[row, column]
            if paper_row and column in paper.columns:
                entry[f"{column} paper"] = paper.at[paper_row, column]
        rows.append(entry)
    return pd.DataFrame(rows).round(2)


def findings(results: Results) -> list[str]:
    ours = score_table(results)
    lines = []
    for arch in ("minilm", *ARCHS):
        full, mpop = ("full", "mpop") if arch == "minilm" else (f"{arch}/full", f"{arch}/mpop")
        if full in ours.index and mpop in ours.index:
            lines.append(f"{arch}: mpop #Pr {ours.at[mpop, 'pr']:.2f}M of {ours.at[full, 'pr']:.2f}M "
                         f"({ours.at[mpop, 'pr'] / ours.at[full, 'pr']:.0%}), #To {ours.at[mpop, 'to']:.2f}M "
                         f"vs {ours.at[full, 'to']:.2f}M")
    return lines + [constant_sentence(results)]
