"""Tables and plotly figures of a run's metrics stream (no streamlit import).

Squeeze runs (MPOP Algorithm 2) log ``kind: "squeeze"`` records: a
``baseline`` (metric ``p`` after lightweight fine-tuning), then per step a
``cut`` (matrix, bond ``d -> d'``, Eq. (3) error) and a judged ``step``
(``p~``, accepted), and a ``stop``. Training logs (``kind: "train"``) carry
the loss; every record carries #Pr / #To.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mpo_core.runs.run_folder import read_metrics

ACCEPTED_COLOR, REJECTED_COLOR, BASELINE_COLOR = "#54a24b", "#e45756", "#9d9d9d"


def squeeze_frames(run_path) -> dict[str, pd.DataFrame]:
    """``steps`` (judged squeeze steps), ``cuts``, ``train`` (loss per step) and ``baseline`` of one run."""
    records = read_metrics(run_path)
    squeeze = [r for r in records if r.get("kind") == "squeeze"]
    frame = lambda rows: pd.DataFrame(rows) if rows else pd.DataFrame()  # noqa: E731
    return {
        "baseline": frame([r for r in squeeze if r["event"] == "baseline"]),
        "cuts": frame([r for r in squeeze if r["event"] == "cut"]),
        "steps": frame([r for r in squeeze if r["event"] == "step"]),
        "stop": frame([r for r in squeeze if r["event"] == "stop"]),
        "train": frame([{"step": r["step"], "loss": r["loss"], "trainable_params": r.get("trainable_params"),
                         "total_params": r.get("total_params")}
                        for r in records if r.get("kind") == "train" and "loss" in r]),
    }


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, height=300, xaxis_visible=False, yaxis_visible=False)
    return fig


def metric_figure(frames: dict, delta: float | None = None, name: str = "") -> go.Figure:
    """``p~`` per squeeze step (accepted green, rejected red) against the pre-squeeze ``p`` +- delta."""
    steps, baseline = frames["steps"], frames["baseline"]
    title = f"metric after each squeeze step {name}".strip()
    if baseline.empty:
        return _empty(title, "waiting for lightweight fine-tuning to finish (p is measured then)")
    p = float(baseline["p"].iloc[0])
    metric = baseline["metric"].iloc[0]
    judged_on = baseline["judged_on"].iloc[0] if "judged_on" in baseline else "dev"  # older runs judged on dev
    judged_on = {"heldout": "held-out"}.get(judged_on, judged_on)
    fig = go.Figure()
    if not steps.empty:
        colors = [ACCEPTED_COLOR if a else REJECTED_COLOR for a in steps["accepted"]]
        fig.add_trace(go.Scatter(x=steps["squeeze_step"], y=steps["p_tilde"], mode="lines+markers", name="p~",
                                 marker={"color": colors, "size": 9}, line={"color": "#4c78a8"},
                                 customdata=steps[["matrix", "before", "after"]],
                                 hovertemplate="step %{x}: p~ = %{y:.4f}<br>%{customdata[0]}<br>"
                                               "bond %{customdata[1]} → %{customdata[2]}<extra></extra>"))
    fig.add_hline(y=p, line_dash="dash", line_color=BASELINE_COLOR, annotation_text="p (before squeezing)")
    if delta:
        fig.add_hrect(y0=p - delta, y1=p + delta, fillcolor=BASELINE_COLOR, opacity=0.15, line_width=0)
    fig.update_layout(title=title, xaxis_title="squeeze step", yaxis_title=f"{judged_on} {metric} (p~)", height=320,
                      margin={"t": 50, "b": 40})
    return fig


def loss_figure(frames: dict) -> go.Figure:
    train = frames["train"]
    if train.empty:
        return _empty("training loss", "no training log yet")
    fig = go.Figure(go.Scatter(x=train["step"], y=train["loss"], mode="lines", name="loss"))
    for step in frames["cuts"].get("step", []):
        fig.add_vline(x=step, line_color="#f58518", opacity=0.3)
    fig.update_layout(title="training loss (orange: cuts)", xaxis_title="training step", yaxis_title="loss",
                      height=320, margin={"t": 50, "b": 40})
    return fig


def size_figure(frames: dict) -> go.Figure:
    """#Pr (trainable) and #To (total) in millions as squeezing proceeds."""
    rows = pd.concat([frames["baseline"], frames["cuts"]], ignore_index=True) if not frames["baseline"].empty else None
    if rows is None or rows.empty:
        return _empty("#Pr / #To", "no squeeze step yet")
    x = list(range(len(rows)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=rows["total_params"] / 1e6, mode="lines+markers", name="#To (total)"))
    fig.add_trace(go.Scatter(x=x, y=rows["trainable_params"] / 1e6, mode="lines+markers", name="#Pr (trainable)"))
    fig.update_layout(title="parameters as squeezing proceeds", xaxis_title="cuts made",
                      yaxis_title="parameters (millions)", height=320, margin={"t": 50, "b": 40})
    return fig


def bond_figure(frames: dict) -> go.Figure:
    """The cut bond of every matrix that was squeezed, after each cut (``d'`` per matrix and bond)."""
    cuts = frames["cuts"]
    if cuts.empty:
        return _empty("bond dimensions", "no cut yet")
    fig = go.Figure()
    for (matrix, bond), group in cuts.groupby(["matrix", "bond"], sort=False):
        label = f"{matrix.removeprefix('bert.').removeprefix('encoder.')} d_{bond + 1}"
        x = [group.index[0]] + list(group.index + 1)
        y = [group["before"].iloc[0]] + list(group["after"])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label, line_shape="hv"))
    fig.update_layout(title="bond dimension d' of each squeezed matrix", xaxis_title="cuts made",
                      yaxis_title="bond dimension", height=320, margin={"t": 50, "b": 40})
    return fig


def squeeze_summary(frames: dict) -> dict:
    """Headline numbers: p, last accepted p~, accepted steps, #Pr/#To now, stop reason."""
    steps, baseline, stop = frames["steps"], frames["baseline"], frames["stop"]
    accepted = steps[steps["accepted"]] if not steps.empty else steps
    latest = next((f for f in (stop, frames["cuts"], baseline) if not f.empty), None)  # a stop may undo a cut
    last = latest.iloc[-1] if latest is not None else None
    return {
        "p": float(baseline["p"].iloc[0]) if not baseline.empty else None,
        "p_tilde": float(accepted["p_tilde"].iloc[-1]) if not accepted.empty else None,
        "accepted": int(len(accepted)),
        "trainable_params": int(last["trainable_params"]) if last is not None else None,
        "total_params": int(last["total_params"]) if last is not None else None,
        "stop_reason": stop["reason"].iloc[-1] if not stop.empty else None,
        # classes the model predicted on the examples p was measured on; 1: it has not learned (constant output)
        "predicted_classes": (int(baseline["predicted_classes"].iloc[0])
                              if not baseline.empty and "predicted_classes" in baseline
                              and pd.notna(baseline["predicted_classes"].iloc[0]) else None),
    }


def not_learned_message(summary: dict) -> str | None:
    """A warning when the run's p comes from a constant prediction (squeezing it shows nothing)."""
    if summary.get("predicted_classes") != 1:
        return None
    return (f"This run has not learned: after lightweight fine-tuning it predicts one class for every held-out "
            f"example, so p = {summary['p']:.4f} is the majority-class share and cuts cannot lower it. "
            "Train longer, with more layers or another learning rate before squeezing.")
