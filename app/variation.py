"""Back end of the Parameter variation page: MPOP Table 1 for any finished run (no streamlit import).

For one run folder, ``w_before`` is the pre-trained model of the run's config
(seeded as :func:`mpo_core.training.fine_tune.fine_tune` seeds it, so the classifier
head is the same) and ``w_after`` the model it saved in ``final_model/``. MPO
layers are compared through their rebuilt matrices, so for truncated
strategies (``mpo_lfa``, ``mpop``) ``|Δw|`` includes the truncation error::

    <run>/config.json  --load_initial_model-->  pre-trained model  (w_before)
    <run>/final_model  --load_final_model---->  fine-tuned model   (w_after)
        -> parameter_variation(...)  -> <run>/parameter_variation.json   (cache, written atomically)
        -> histogram_figure(...) / variation_table(...)

The cache remembers the size and time stamp of the saved weights and the
number of histogram bins; when either differs it is recomputed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from app import jobs
from mpo_core.model.matrix_groups import PAPER_GROUPS
from mpo_core.model.parameter_variation import BIN_EDGES, BIN_LABELS, PAPER_TABLE1, GroupVariation, parameter_variation
from mpo_core.runs.atomic_write import atomic_write_json
from mpo_core.runs.run_folder import FINAL_MODEL, RESULTS_FILE, read_config, read_json, read_run_results
from mpo_core.runs.run_models import load_final_model, load_initial_model

VARIATION_FILE = "parameter_variation.json"
CACHE_FORMAT = 1
DEFAULT_BINS = 60
FINISHED = ("finished", "stopped")  # a stopped run still evaluates and saves its final model
RUN_COLORS = ("#4c78a8", "#f58518")
PAPER_LABEL = "paper"


# --------------------------------------------------------------------------- runs
def finished_runs(runs_dir) -> list[dict]:
    """Finished (or stopped) runs under ``runs_dir``, newest first; ``has_model`` says if ``final_model/`` exists."""
    rows = []
    for row in jobs.list_runs(runs_dir):
        if row["status"] in FINISHED:
            rows.append({**row, "has_model": (Path(runs_dir) / row["run"] / FINAL_MODEL).is_dir()})
    return rows


def run_label(row: dict) -> str:
    """``name — strategy (task, accuracy 0.912)`` for a select box."""
    score = "" if row.get("score") is None else f", {row.get('metric')} {row['score']:.3f}"
    missing = "" if row.get("has_model", True) else " — no saved model"
    return f"{row['run']} — {row['strategy']} ({row['task']}{score}){missing}"


def run_summary(run_path) -> dict:
    """Task, strategy, score and #Pr / #To of a finished run, from its ``results.json``."""
    results = read_run_results(run_path)
    if results is None:
        raise FileNotFoundError(f"{Path(run_path) / RESULTS_FILE} does not exist: the run has not finished.")
    keys = ("task", "strategy", "metric", "score", "trainable_params", "total_params")
    return {key: results.get(key) for key in keys}


def missing_model_message(run_path) -> str:
    path = Path(run_path)
    return (f"Run {path.name!r} has no saved final model ({path / FINAL_MODEL} does not exist): it finished "
            "before runs saved their model, or it ran with save_model=False (--no-save-model). Run it again "
            "with the model saved (the default) to see how far fine-tuning moved its weights.")


# --------------------------------------------------------------------------- computation
def before_and_after(run_path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The run's pre-trained model (``w_before``, head seeded as the run's) and its saved model (``w_after``)."""
    run_path = Path(run_path)
    read_config(run_path)  # not a run folder: say so before anything else
    if not (run_path / FINAL_MODEL).is_dir():
        raise FileNotFoundError(missing_model_message(run_path))
    return load_initial_model(run_path), load_final_model(run_path)


def compute_variation(run_path, bins: int = DEFAULT_BINS) -> dict[str, GroupVariation]:
    """Table 1 statistics of one run (loads both models: a second or two for the 6-layer MiniLM)."""
    before, after = before_and_after(run_path)
    with torch.no_grad():
        return parameter_variation(before, after, bins=bins)


def _weights_signature(run_path: Path) -> list:
    """Name, size and time stamp of every saved file of the final model: changes when it is re-saved."""
    files = sorted(p for p in (run_path / FINAL_MODEL).iterdir() if p.suffix in (".safetensors", ".json"))
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _to_json(variation: dict[str, GroupVariation]) -> dict:
    return {group: {"count": v.count, "shares": list(v.shares), "unchanged_share": v.unchanged_share,
                    "histogram_counts": v.histogram_counts.tolist(), "histogram_edges": v.histogram_edges.tolist()}
            for group, v in variation.items()}


def _from_json(data: dict) -> dict[str, GroupVariation]:
    return {group: GroupVariation(group, int(v["count"]), tuple(v["shares"]), float(v["unchanged_share"]),
                                  np.asarray(v["histogram_counts"], dtype=np.int64),
                                  np.asarray(v["histogram_edges"], dtype=np.float64))
            for group, v in data.items()}


def save_variation(run_path, variation: dict[str, GroupVariation], bins: int) -> Path:
    """Write ``<run>/parameter_variation.json`` atomically (a torn file never replaces a good one)."""
    run_path = Path(run_path)
    record = {"format": CACHE_FORMAT, "bins": bins, "weights": _weights_signature(run_path),
              "groups": _to_json(variation)}
    return atomic_write_json(run_path / VARIATION_FILE, record, indent=None)


def load_variation(run_path, bins: int = DEFAULT_BINS) -> dict[str, GroupVariation] | None:
    """The cached statistics, or ``None`` when there is no cache or it is stale (other bins, re-saved model)."""
    run_path = Path(run_path)
    try:
        record = read_json(run_path / VARIATION_FILE)
        fresh = (record.get("format") == CACHE_FORMAT and record.get("bins") == bins
                 and record.get("weights") == _weights_signature(run_path))
        return _from_json(record["groups"]) if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_variation(run_path, bins: int = DEFAULT_BINS) -> dict[str, GroupVariation]:
    """Table 1 statistics of a run: from its cache file, else computed and cached."""
    run_path = Path(run_path)
    if not (run_path / FINAL_MODEL).is_dir():
        raise FileNotFoundError(missing_model_message(run_path))
    cached = load_variation(run_path, bins)
    if cached is not None:
        return cached
    variation = compute_variation(run_path, bins)
    try:
        save_variation(run_path, variation, bins)
    except OSError:  # a read-only runs folder: still show the numbers, just recompute next time
        pass
    return variation


# --------------------------------------------------------------------------- table and figure
def variation_table(variations: dict[str, dict[str, GroupVariation]]) -> pd.DataFrame:
    """Share of each group's weights per Table 1 bin: each run's next to the paper's.

    ``variations`` maps a column label (``"ours"``, or run names to compare)
    to a run's statistics. Columns: ``group``, ``weights``, then per bin
    ``"<label> (0,1e-4]"`` ... ``"paper (0,1e-4]"``, then ``"<label> Δw = 0"``.
    """
    labels = list(variations)
    if not labels:
        raise ValueError("no run to tabulate.")
    rows = []
    for group, name in PAPER_GROUPS.items():
        if not all(group in v for v in variations.values()):
            continue
        row = {"group": name, "weights": variations[labels[0]][group].count}
        for k, bin_label in enumerate(BIN_LABELS):
            row.update({f"{label} {bin_label}": variations[label][group].shares[k] for label in labels})
            row[f"{PAPER_LABEL} {bin_label}"] = PAPER_TABLE1[group][k]
        row.update({f"{label} Δw = 0": variations[label][group].unchanged_share for label in labels})
        rows.append(row)
    return pd.DataFrame(rows)


def share_columns(table: pd.DataFrame) -> list[str]:
    """The columns of :func:`variation_table` that hold shares (to format as percentages)."""
    return [c for c in table.columns if c not in ("group", "weights")]


def histogram_figure(variations: dict[str, dict[str, GroupVariation]]) -> go.Figure:
    """Histograms of ``log10 |Δw|``, one panel per paper group, one colour per run.

    Bars are shares of the group's weights (unchanged weights, ``Δw = 0``,
    have no logarithm: their share is written in each panel). Dashed lines
    mark the Table 1 bin edges ``1e-4`` and ``1e-3``.
    """
    groups = [g for g in PAPER_GROUPS if all(g in v for v in variations.values())]
    fig = make_subplots(rows=1, cols=max(len(groups), 1), shared_yaxes=True,
                        subplot_titles=[PAPER_GROUPS[g] for g in groups], horizontal_spacing=0.04)
    for r, (label, variation) in enumerate(variations.items()):
        color = RUN_COLORS[r % len(RUN_COLORS)]
        for c, group in enumerate(groups, start=1):
            stats = variation[group]
            edges = stats.histogram_edges
            fig.add_trace(go.Bar(
                x=(edges[:-1] + edges[1:]) / 2, y=stats.histogram_counts / stats.count, width=np.diff(edges),
                name=label, legendgroup=label, showlegend=c == 1, marker_color=color,
                opacity=0.6 if len(variations) > 1 else 0.9,
                hovertemplate=f"{label}<br>log10 |Δw| ≈ %{{x:.2f}}<br>share %{{y:.2%}}<extra></extra>",
            ), row=1, col=c)
    for c, group in enumerate(groups, start=1):
        unchanged = "<br>".join(f"{label}: Δw = 0 for {v[group].unchanged_share:.1%}"
                                for label, v in variations.items())
        fig.add_annotation(text=unchanged, x=0.02, y=0.98, xref="x domain", yref="y domain", showarrow=False,
                           xanchor="left", yanchor="top", align="left", font={"size": 11}, row=1, col=c)
        fig.update_xaxes(title_text="log10 |Δw|", row=1, col=c)
    for edge in BIN_EDGES:
        fig.add_vline(x=float(np.log10(edge)), line_dash="dash", line_color="#9d9d9d", row="all", col="all")
    fig.update_yaxes(title_text="share of the group's weights", tickformat=".0%", row=1, col=1)
    fig.update_layout(barmode="overlay", height=380, margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
                      title="|Δw| = |w_after − w_before| per group (dashed: Table 1 bin edges 1e-4, 1e-3)")
    return fig
