"""Back end of the OPF page: cached Fisher scores, selection preview, live run views, merge check (no streamlit).

OPF (Gao et al., ACL 2023) over-parameterizes the matrices ``W`` with the
largest Fisher scores of each group while fine-tuning, then contracts them
back. The page walks that story; the engine is :mod:`mpo_core.opf`
(``scoring``: F(W) on GLUE batches, ``selection``: the static / dynamic
plan); this module caches, tabulates and draws it::

    load_or_compute_fisher(request)         F(W) of every matrix on GLUE batches  -> JSON under the runs folder
    fisher_from_run(run)                    F(W) an opf run recorded at step 0     (opf_selection record)
    selection_preview(fisher, options)      which W each stage grows, #To while training
    opf_frames(run) + *_figure              a run's loss, dev metric, #To, selections, live
    merge_summary(results)                  #To before / peak / after the merge
    measure_latency(run)                    original vs merged forward time      -> <run>/latency.json

with ``F(W) = 1/B sum_b mean_ij (g_b)_ij^2`` (:mod:`mpo_core.opf.fisher`), the
mean squared clipped gradient of ``W`` over ``B`` training batches.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from mpo_core.model.matrix_groups import layer_index, matrix_group
from mpo_core.model.parameter_count import count_parameters
from mpo_core.model.pretrained import default_model_path, list_weight_matrices
from mpo_core.model.surgery import mpo_modules
from mpo_core.opf.scoring import MAX_LAYERS, FisherRequest, FisherScores, compute_fisher
from mpo_core.opf.selection import SelectionStage, grown_params, plan_selection
from mpo_core.opf.strategy import OPF_GROUPS, make_opf
from mpo_core.runs.atomic_write import atomic_write_json
from mpo_core.runs.latency import compare_latency, random_token_batch
from mpo_core.runs.run_folder import FINAL_MODEL, read_config, read_json, read_metrics, read_run_results
from mpo_core.runs.run_models import load_final_model, load_initial_model

__all__ = ["FisherRequest", "FisherScores", "SelectionStage", "MAX_LAYERS"]  # engine data the page names

FISHER_CACHE = ".opf"  # under the runs folder; jobs.list_runs skips folders without a config.json
LATENCY_FILE = "latency.json"
LATENCY_TARGET = 0.05  # merged / original within 1.00 +- 0.05 (OPF: no extra inference latency)

# Rows of the heatmap, in the order of the OPF groups, with the usual BERT notation.
GROUP_LABELS = {
    "query": "query W<sup>Q</sup>", "key": "key W<sup>K</sup>", "value": "value W<sup>V</sup>",
    "attention_output": "attn. output W<sup>O</sup>", "ffn_in": "FFN in W<sub>1</sub>",
    "ffn_out": "FFN out W<sub>2</sub>",
}
PLAIN_LABELS = {"query": "query", "key": "key", "value": "value", "attention_output": "attention output",
                "ffn_in": "FFN in", "ffn_out": "FFN out"}
STAGE_COLORS = ("#f58518", "#e45756", "#54a24b", "#b279a2", "#72b7b2", "#ff9da6", "#9d755d", "#4c78a8")
ORIGINAL_COLOR, GROWN_COLOR = "#9d9d9d", "#4c78a8"
HEAT_COLORS = [[0.0, "#f7fbff"], [1.0, "#6baed6"]]  # light enough for the printed scores to stay legible


# --------------------------------------------------------------------------- Fisher scores
# The server's caps on a Fisher request from the page (its inputs stop at them; a request above is refused here,
# whatever the page sent): B batches of this many examples, each a forward and backward pass of the model.
MAX_FISHER_BATCHES = 32
MAX_FISHER_BATCH_SIZE = 64
MAX_FISHER_LENGTH = 128


def check_fisher_request(request: FisherRequest) -> FisherRequest:
    """``request`` if within the dashboard's caps; else ``ValueError`` naming the cap."""
    for name, value, cap in (("batches B", request.num_batches, MAX_FISHER_BATCHES),
                             ("batch size", request.batch_size, MAX_FISHER_BATCH_SIZE),
                             ("max length", request.max_length, MAX_FISHER_LENGTH)):
        if value > cap:
            raise ValueError(f"Fisher scores: {name} is at most {cap} on this dashboard (the server's cap), got "
                             f"{value}; choose a smaller one.")
    return request


def load_or_compute_fisher(request: FisherRequest, cache_dir) -> FisherScores:
    """Scores from ``<cache_dir>/<request.cache_name>``, computed and written there when missing.

    A request above the dashboard's caps (:func:`check_fisher_request`) is refused before anything is loaded.
    """
    check_fisher_request(request)
    file = Path(cache_dir) / request.cache_name
    if file.is_file():
        return FisherScores.from_dict(read_json(file))
    fisher = compute_fisher(request)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(file, {**fisher.to_dict(), "request": asdict(request)})  # two tabs never read half a file
    return fisher


_LINEAR = nn.Linear(1, 1)  # stands in for a module of a recorded name: groups are found by type + name


def _weight_shapes(names, model_path) -> dict[str, tuple[int, int]]:
    """Shapes of the named modules' weights, read from a model folder's safetensors headers."""
    weights = list_weight_matrices(model_path)
    shapes = {}
    for name in names:
        full = f"{name}.weight"  # saved names may lack the task model's prefix ("bert.")
        keys = [k for k in weights if full == k or full.endswith("." + k)]
        if not keys:
            raise ValueError(f"no weight of {name} in {model_path}; cannot count its parameters.")
        shapes[name] = weights[max(keys, key=len)]
    return shapes


def _selections(run_path) -> list[dict]:
    return [r for r in read_metrics(run_path) if r.get("kind") == "opf_selection"]


def fisher_from_run(run_path) -> FisherScores | None:
    """The step-0 scores an opf run recorded (every candidate matrix), or ``None`` before its first selection."""
    run_path = Path(run_path)
    first = next((r for r in _selections(run_path) if r.get("stage") == 0), None)
    if first is None:
        return None
    config = read_config(run_path)
    scores = first["scores"]
    groups = {name: matrix_group(name, _LINEAR) for name in scores}
    final = run_path / FINAL_MODEL  # merged to dense: exact names and shapes; else the model it started from
    model_path = final if final.is_dir() else config.get("model") or default_model_path()
    options = config.get("strategy_options", {})
    source = (f"run {run_path.name}: step 0, {options.get('fisher_batches', 16)} training batches of "
              f"{config.get('batch_size')} ({config.get('task')})")
    return FisherScores(scores, groups, _weight_shapes(scores, model_path),
                        int(first["params_before"]["total_params"]), source)


def fisher_frame(fisher: FisherScores) -> pd.DataFrame:
    """``F(W)`` as a table: one row per group (OPF order), one column per encoder layer (NaN: not scored)."""
    layers = range(fisher.num_layers)
    rows = [group for group in OPF_GROUPS if group in fisher.groups.values()]
    frame = pd.DataFrame(np.nan, index=rows, columns=list(layers), dtype=float)
    for name, score in fisher.scores.items():
        frame.loc[fisher.groups[name], layer_index(name)] = score
    frame.index.name, frame.columns.name = "group", "layer"
    return frame


# --------------------------------------------------------------------------- selection preview
def opf_options(growth: float, selection: str, top_n: int, stages: int, fisher_batches: int,
                num_layers: int) -> dict:
    """``strategy_options`` of an opf run, checked now (a message on the page, not a failed job later)."""
    options = {"growth": float(growth), "selection": selection, "top_n": int(top_n), "stages": int(stages),
               "fisher_batches": int(fisher_batches)}
    make_opf(**options)
    if options["top_n"] > num_layers:
        raise ValueError(f"top_n={top_n} matrices per group, but {num_layers} encoder layers hold only "
                         f"{num_layers} per group; choose top_n <= {num_layers} or load more layers.")
    return options


def selection_preview(fisher: FisherScores, top_n: int, selection: str = "static", stages: int = 2,
                      growth: float = 4.0, max_steps: int = 100) -> list[SelectionStage]:
    """What an opf run with these options would grow, stage by stage, ranking by ``fisher``.

    The options are checked as a run checks them (:func:`~mpo_core.opf.strategy.make_opf`);
    the plan is :func:`~mpo_core.opf.selection.plan_selection`, the one
    :class:`~mpo_core.opf.strategy.OPFStrategy` follows (dynamic stages after
    the first are ``estimate``: a run re-scores there).
    """
    strategy = make_opf(growth=growth, selection=selection, top_n=top_n, stages=stages)  # checks the options
    return plan_selection(fisher.scores, fisher.groups, fisher.shapes, fisher.total_params, strategy.top_n,
                          strategy.num_stages, strategy.growth, max_steps)


def preview_rows(sizes: dict) -> list[tuple[str, str, str]]:
    """The preview's four headline numbers as ``(label, value, help)`` (from :func:`preview_sizes`)."""
    return [
        ("#To original", f"{sizes['original'] / 1e6:.3f}M", "All parameters of the model as loaded."),
        ("#To while training (peak)", f"{sizes['peak'] / 1e6:.3f}M", "With every grown matrix an over-sized MPO."),
        ("peak / original", f"{sizes['factor']:.3f}×", ""),
        ("matrices to grow", str(sizes["grown"]), "Over all six groups."),
    ]


def run_stages(run_path) -> list[SelectionStage]:
    """The selections an opf run made (actual, not estimates)."""
    return [SelectionStage(r["stage"], r["step"], tuple(r["chosen"]), r["params_after"]["total_params"], False)
            for r in _selections(run_path)]


def _short(name: str) -> str:
    return name.removeprefix("bert.").removeprefix("encoder.")


def _ranks(fisher: FisherScores) -> dict[str, int]:
    """Rank of each matrix within its group by ``F(W)`` (1 = highest), ties by name as select_top."""
    ranks = {}
    for group in set(fisher.groups.values()):
        names = sorted((n for n, g in fisher.groups.items() if g == group), key=lambda n: (-fisher.scores[n], n))
        ranks.update({n: k + 1 for k, n in enumerate(names)})
    return ranks


def selection_table(fisher: FisherScores, stages: Sequence[SelectionStage],
                    growth: float | None = None) -> pd.DataFrame:
    """One row per chosen matrix: stage, step, group, layer, ``F(W)``, rank, dense and grown sizes."""
    ranks, rows = _ranks(fisher), []
    for stage in stages:
        for name in stage.chosen:
            shape = fisher.shapes.get(name)
            row = {"stage": stage.stage + 1, "step": stage.step, "group": PLAIN_LABELS[fisher.groups[name]],
                   "layer": layer_index(name), "matrix": _short(name), "F(W)": fisher.scores.get(name),
                   "rank in group": ranks.get(name), "I x J": f"{shape[0]}x{shape[1]}" if shape else None}
            if growth is not None and shape:
                row["params while training"] = grown_params(shape, growth)
            row["estimate"] = stage.estimate
            rows.append(row)
    columns = ["stage", "step", "group", "layer", "matrix", "F(W)", "rank in group", "I x J", "estimate"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def preview_sizes(fisher: FisherScores, stages: Sequence[SelectionStage]) -> dict:
    """#To of the dense model, at its peak while training, and the factor between them."""
    peak = max([fisher.total_params, *(s.total_params for s in stages)])
    return {"original": fisher.total_params, "peak": peak, "factor": peak / fisher.total_params,
            "grown": sum(len(s.chosen) for s in stages)}


# --------------------------------------------------------------------------- figures: scores and preview
def _layer_label(layer: int) -> str:
    return f"layer {layer}"


def fisher_heatmap(fisher: FisherScores, stages: Sequence[SelectionStage] = (), title: str = "") -> go.Figure:
    """``log10 F(W)`` per group (rows) and layer (columns); chosen cells outlined in their stage's colour."""
    frame = fisher_frame(fisher)
    x = [_layer_label(c) for c in frame.columns]
    y = [GROUP_LABELS[g] for g in frame.index]
    with np.errstate(divide="ignore"):
        z = np.log10(frame.to_numpy())  # scores span orders of magnitude; 0 -> -inf is drawn blank
    z[~np.isfinite(z)] = np.nan
    text = [[("" if np.isnan(v) else f"{v:.2e}") for v in row] for row in frame.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=y, text=text, texttemplate="%{text}", colorscale=HEAT_COLORS, textfont={"size": 11},
        colorbar={"title": {"text": "log<sub>10</sub> F(W)"}}, hoverongaps=False,
        hovertemplate="%{y}, %{x}<br>F(W) = %{text}<extra></extra>",
    ))
    for stage in stages:  # outline each chosen cell (category k spans k +- 0.5), dotted for estimates
        color = STAGE_COLORS[stage.stage % len(STAGE_COLORS)]
        label = f"stage {stage.stage + 1}, step {stage.step}" + (" (estimate)" if stage.estimate else "")
        line = {"color": color, "width": 3, "dash": "dot" if stage.estimate else "solid"}
        for name in stage.chosen:
            col, row = x.index(_layer_label(layer_index(name))), y.index(GROUP_LABELS[fisher.groups[name]])
            fig.add_shape(type="rect", x0=col - 0.46, x1=col + 0.46, y0=row - 0.42, y1=row + 0.42, line=line,
                          name=label)
        if stage.chosen:  # a legend entry for the outlines
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=label))
    fig.update_layout(
        title=title or "Fisher score F(W) per matrix (outlined: grown)",
        xaxis_title="encoder layer", yaxis_title="matrix group", yaxis={"autorange": "reversed"},
        height=120 + 45 * len(y), margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
        showlegend=any(stage.chosen for stage in stages),
    )
    return fig


def preview_size_figure(fisher: FisherScores, stages: Sequence[SelectionStage], max_steps: int) -> go.Figure:
    """#To (millions) over training steps: grows at each stage, back to the original at the merge."""
    steps, totals = [0], [fisher.total_params]
    for stage in stages:
        steps.append(stage.step)
        totals.append(stage.total_params)
    steps += [max_steps, max_steps]
    totals += [totals[-1], fisher.total_params]  # the merge contracts every MPO back: the original #To
    fig = go.Figure(go.Scatter(x=steps, y=np.array(totals) / 1e6, mode="lines+markers", line_shape="hv",
                               name="#To while training", line={"color": GROWN_COLOR}))
    fig.add_hline(y=fisher.total_params / 1e6, line_dash="dash", line_color=ORIGINAL_COLOR,
                  annotation_text="original = after merge")
    fig.update_layout(title="#To (total parameters) during an opf run, preview", xaxis_title="training step",
                      yaxis_title="#To (millions)", yaxis_rangemode="tozero", height=360, margin={"t": 50, "b": 40})
    return fig


# --------------------------------------------------------------------------- a run, live
def _last_step(records: list[dict]) -> int:
    return max((r["step"] for r in records if isinstance(r.get("step"), int)), default=0)


def opf_frames(run_path) -> dict[str, pd.DataFrame]:
    """``train`` (loss per step), ``eval`` (dev metrics), ``sizes`` (#Pr/#To as records come) and ``selections``."""
    records = read_metrics(run_path)
    train = [{"step": r["step"], "loss": r["loss"]} for r in records if r.get("kind") == "train" and "loss" in r]
    evals = [{"step": r["step"], **{k.removeprefix("eval_"): v for k, v in r.items() if k.startswith("eval_")}}
             for r in records if r.get("kind") == "eval"]
    sizes, step = [], 0
    for r in records:
        kind = r.get("kind")
        step = r["step"] if isinstance(r.get("step"), int) else step  # merge / end records carry none
        if kind == "opf_selection":
            sizes.append({"step": step, "event": f"stage {r['stage'] + 1}: grow {len(r['chosen'])}",
                          **r["params_after"]})
        elif kind == "opf_merge":
            sizes.append({"step": step, "event": f"merge {r['merged']} MPOs", "total_params": r["total_params"],
                          "trainable_params": r["total_params"]})
        elif kind in ("start", "train", "eval") and "total_params" in r:
            sizes.append({"step": step, "event": kind, "total_params": r["total_params"],
                          "trainable_params": r["trainable_params"]})
    selections = [{"stage": r["stage"] + 1, "step": r["step"], "group": PLAIN_LABELS.get(matrix_group(n, _LINEAR), "?"),
                   "layer": layer_index(n), "matrix": _short(n), "F(W)": r["scores"].get(n),
                   "growth": r.get("growth", {}).get(n)}
                  for r in records if r.get("kind") == "opf_selection" for n in r["chosen"]]
    frame = lambda rows: pd.DataFrame(rows) if rows else pd.DataFrame()  # noqa: E731
    return {"train": frame(train), "eval": frame(evals), "sizes": frame(sizes), "selections": frame(selections),
            "merge": frame([r for r in records if r.get("kind") == "opf_merge"])}


def opf_summary(frames: dict, num_stages: int | None = None) -> dict:
    """Headline numbers of a run so far: stages done, matrices grown, #To now and at its peak, merged."""
    sizes, selections = frames["sizes"], frames["selections"]
    return {
        "stages_done": int(selections["stage"].nunique()) if not selections.empty else 0,
        "num_stages": num_stages,
        "grown": int(len(selections)),
        "total_params": int(sizes["total_params"].iloc[-1]) if not sizes.empty else None,
        "peak_params": int(sizes["total_params"].max()) if not sizes.empty else None,
        "original_params": int(sizes["total_params"].iloc[0]) if not sizes.empty else None,
        "merged": not frames["merge"].empty,
    }


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, height=320, xaxis_visible=False, yaxis_visible=False)
    return fig


def _selection_lines(fig: go.Figure, frames: dict) -> None:
    selections = frames["selections"]
    if selections.empty:
        return
    for (stage, step), _ in selections.groupby(["stage", "step"]):
        color = STAGE_COLORS[(stage - 1) % len(STAGE_COLORS)]
        fig.add_vline(x=step, line_color=color, line_dash="dot", annotation_text=f"S{stage}",
                      annotation_font_color=color)


def loss_figure(frames: dict) -> go.Figure:
    """Training loss per step, dotted lines at the selections (S1, S2, ...)."""
    train = frames["train"]
    if train.empty:
        return _empty("training loss", "no training log yet")
    fig = go.Figure(go.Scatter(x=train["step"], y=train["loss"], mode="lines+markers", name="loss"))
    _selection_lines(fig, frames)
    fig.update_layout(title="training loss (dotted: selections)", xaxis_title="training step",
                      yaxis_title="cross-entropy loss", height=320, margin={"t": 50, "b": 40})
    return fig


# GLUE metrics that are correlations (may be negative); the others (accuracy, F1) are shares in [0, 1].
CORRELATION_METRICS = ("matthews", "spearman", "pearson")


def metric_range(metric: str, values) -> tuple[float, float]:
    """The fixed y range of a dev metric: [0, 1], or [-1, 1] for a correlation that went negative."""
    negative = metric in CORRELATION_METRICS and min(values, default=0.0) < 0
    return (-1.0 if negative else 0.0, 1.0)


def eval_figure(frames: dict, metric: str) -> go.Figure:
    """The task's dev metric at each evaluation, on its whole scale (autoscaling ran an accuracy to 1.5)."""
    evals = frames["eval"]
    if evals.empty or metric not in evals:
        return _empty(f"dev {metric}", "no evaluation yet")
    fig = go.Figure(go.Scatter(x=evals["step"], y=evals[metric], mode="lines+markers", name=metric,
                               cliponaxis=False))  # a point at 1.0 is drawn whole on the axis' edge
    _selection_lines(fig, frames)
    fig.update_layout(title=f"dev {metric}", xaxis_title="training step", yaxis_title=f"dev {metric}",
                      yaxis_range=list(metric_range(metric, evals[metric].dropna())), height=320,
                      margin={"t": 50, "b": 40})
    return fig


def size_figure(frames: dict) -> go.Figure:
    """#To (millions) as records come: up at each selection, back to the original at the merge."""
    sizes = frames["sizes"]
    if sizes.empty:
        return _empty("#To", "no record yet")
    fig = go.Figure(go.Scatter(x=sizes["step"], y=sizes["total_params"] / 1e6, mode="lines+markers",
                               line_shape="hv", name="#To (total)", customdata=sizes[["event"]],
                               hovertemplate="step %{x}: %{y:.3f}M<br>%{customdata[0]}<extra></extra>",
                               line={"color": GROWN_COLOR}))
    fig.add_hline(y=sizes["total_params"].iloc[0] / 1e6, line_dash="dash", line_color=ORIGINAL_COLOR,
                  annotation_text="original")
    fig.update_layout(title="#To while training (all trainable: #Pr = #To)", xaxis_title="training step",
                      yaxis_title="#To (millions)", yaxis_rangemode="tozero", height=320, margin={"t": 50, "b": 40})
    return fig


# --------------------------------------------------------------------------- merge check
def merge_summary(results: dict) -> dict | None:
    """#To before, at the peak and after the merge, from a finished run's results (``None``: not an opf run)."""
    opf = results.get("opf")
    if not opf:
        return None
    before, peak, after = opf["total_params_before"], opf["max_total_params"], opf["total_params_after_merge"]
    return {"before": before, "peak": peak, "after": after, "final": results.get("total_params"),
            "peak_factor": peak / before, "equal": before == after == results.get("total_params")}


def read_results(run_path) -> dict | None:
    """A run's ``results.json``, or ``None`` while it runs."""
    return read_run_results(run_path)


def read_latency(run_path) -> dict | None:
    """The last latency measurement of a run, or ``None``."""
    file = Path(run_path) / LATENCY_FILE
    return read_json(file) if file.is_file() else None


def measure_latency(run_path, batch_size: int = 8, length: int = 64, warmup: int = 3, repeats: int = 21) -> dict:
    """Time the pre-trained model and the run's merged ``final_model`` on one batch; save ``latency.json``.

    Both run on the CPU in eval mode with the process's threads
    (:func:`~mpo_core.runs.latency.compare_latency`: interleaved; ``ratio`` is
    the median of the per-repeat ratios merged / original, robust to a busy
    machine; ``median_ms`` each model's own median).
    """
    run_path = Path(run_path)
    merged = load_final_model(run_path)
    original = load_initial_model(run_path)  # the same classifier head the run started from
    models = {"original": original, "merged": merged}
    timing = compare_latency(merged, original, random_token_batch(original.config, batch_size, length),
                             warmup, repeats)
    shapes = {key: {k: tuple(v.shape) for k, v in m.state_dict().items()} for key, m in models.items()}
    latency = {
        "batch_size": batch_size, "length": length, "warmup": warmup, "repeats": repeats,
        "threads": torch.get_num_threads(), "device": "cpu", "measured_at": time.time(),
        "seconds": timing["seconds"], "median_ms": timing["median_ms"], "ratio": timing["ratio"],
        "params": {key: count_parameters(m).total for key, m in models.items()},
        "mpo_layers_left": len(mpo_modules(merged)), "same_shapes": shapes["original"] == shapes["merged"],
    }
    atomic_write_json(run_path / LATENCY_FILE, latency)
    return latency


def latency_numbers(latency: dict) -> dict:
    """The page's latency numbers, each ratio computed from the figures shown beside it.

    ``original_ms`` and ``merged_ms`` are each model's median pass, rounded as shown (0.01 ms);
    ``ratio`` is merged_ms / original_ms of those shown figures. ``paired_ratio`` is the
    engine's median of per-repeat ratios (:func:`~mpo_core.runs.latency.compare_latency`),
    robust to drift: far from ``ratio``, it says the machine's load changed while measuring.
    """
    original, merged = (round(float(latency["median_ms"][key]), 2) for key in ("original", "merged"))
    return {"original_ms": original, "merged_ms": merged,
            "ratio": merged / original if original > 0 else float("nan"), "paired_ratio": float(latency["ratio"])}


def within_target(ratio: float, tolerance: float = LATENCY_TARGET) -> bool:
    return abs(ratio - 1.0) <= tolerance


def latency_figure(latency: dict) -> go.Figure:
    """Every timed forward pass of both models (ms), with the medians' ratio (:func:`latency_numbers`) in the title."""
    fig = go.Figure()
    for key, color in (("original", ORIGINAL_COLOR), ("merged", GROWN_COLOR)):
        fig.add_trace(go.Box(y=np.array(latency["seconds"][key]) * 1000,
                             name=f"{key} ({latency['params'][key]:,} params)",
                             boxpoints="all", marker_color=color))
    fig.update_layout(
        title=f"forward pass, batch {latency['batch_size']} x {latency['length']} tokens, "
              f"{latency['threads']} CPU thread(s): median merged / median original = "
              f"{latency_numbers(latency)['ratio']:.3f}",
        yaxis_title="latency (ms)", height=340, margin={"t": 50, "b": 40}, showlegend=False,
    )
    return fig
