"""Tables and plotly figures of a run's metrics stream (no streamlit import).

Squeeze runs (MPOP Algorithm 2) log ``kind: "squeeze"`` records: a
``baseline`` (metric ``p`` after lightweight fine-tuning), then per step a
``cut`` (matrix, bond ``d -> d'``, Eq. (3) error) and a judged ``step``
(``p~``, accepted), and a ``stop``. Training logs (``kind: "train"``) carry
the loss; every record carries #Pr / #To.
"""
from __future__ import annotations

import math
import time

import pandas as pd
import plotly.graph_objects as go

from mpo_core.model.matrix_groups import GROUP_TABLE, layer_index
from mpo_core.runs.progress_file import time_left
from mpo_core.runs.run_folder import METRICS_FILE, read_metrics

ACCEPTED_COLOR, REJECTED_COLOR, BASELINE_COLOR = "#54a24b", "#e45756", "#9d9d9d"
DENSE_COLOR, TARGET_COLOR = "#4c78a8", "#e45756"

#: readable names of the matrix groups (legends, captions)
GROUP_NAMES = {"word_embedding": "word embedding", "query": "query", "key": "key", "value": "value",
               "attention_output": "attention out", "ffn_in": "FFN in", "ffn_out": "FFN out", "pooler": "pooler"}


def matrix_label(matrix: str) -> str:
    """``bert.encoder.layer.3.output.dense`` -> ``layer 3 FFN out``; the word embedding by its name."""
    group = next((g for g, _, tails in GROUP_TABLE if any(matrix == t or matrix.endswith("." + t) for t in tails)),
                 None)
    name = GROUP_NAMES.get(group, matrix.rsplit(".", 2)[-2] if "." in matrix else matrix)
    layer = layer_index(matrix)
    return name if layer is None else f"layer {layer} {name}"


def bond_label(matrix: str, bond: int) -> str:
    """A legend entry: the matrix, then which of its bonds (``bond k`` of its chain, counted from 1)."""
    return f"{matrix_label(matrix)}, bond {int(bond) + 1}"


#: the last frames read per run, keyed by its metrics file's size and mtime: a page polling a live run every second
#: parses the stream again only when it has grown
_FRAMES: dict = {}


def squeeze_frames(run_path) -> dict[str, pd.DataFrame]:
    """``steps`` (judged squeeze steps), ``cuts``, ``train`` (loss per step) and ``baseline`` of one run."""
    from pathlib import Path

    try:
        stat = (Path(run_path) / METRICS_FILE).stat()
        key = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    cached = _FRAMES.get(str(run_path))
    if key is not None and cached is not None and cached[0] == key:
        return {name: frame.copy() for name, frame in cached[1].items()}
    frames = _read_frames(run_path)
    if key is not None:
        if len(_FRAMES) > 64:
            _FRAMES.clear()
        _FRAMES[str(run_path)] = (key, frames)
    return {name: frame.copy() for name, frame in frames.items()}


def _read_frames(run_path) -> dict[str, pd.DataFrame]:
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
    sizes = reference_sizes(frames)
    if sizes["dense_params"]:
        fig.add_hline(y=sizes["dense_params"] / 1e6, line_dash="dash", line_color=DENSE_COLOR,
                      annotation_text=f"dense {sizes['dense_params'] / 1e6:.2f}M", annotation_position="top left")
    if sizes["target_params"]:
        fig.add_hline(y=sizes["target_params"] / 1e6, line_dash="dot", line_color=TARGET_COLOR,
                      annotation_text=f"target {sizes['target_params'] / 1e6:.2f}M", annotation_position="bottom left")
    fig.update_layout(title="parameters as squeezing proceeds", xaxis_title="cuts made",
                      yaxis_title="parameters (millions)", height=320, margin={"t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def reference_sizes(frames: dict) -> dict:
    """The dense model's #To and the target #To, as the run logged them with its baseline (older runs: ``None``)."""
    baseline = frames["baseline"]
    value = lambda key: (int(baseline[key].iloc[0]) if not baseline.empty and key in baseline  # noqa: E731
                         and pd.notna(baseline[key].iloc[0]) else None)
    return {"dense_params": value("dense_params"), "target_params": value("target_params")}


def bond_figure(frames: dict) -> go.Figure:
    """The cut bond of every matrix that was squeezed, after each cut (``d'`` per matrix and bond)."""
    cuts = frames["cuts"]
    if cuts.empty:
        return _empty("bond dimensions", "no cut yet")
    fig = go.Figure()
    for (matrix, bond), group in cuts.groupby(["matrix", "bond"], sort=False):
        label = bond_label(matrix, bond)
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


# --- progress of a running squeeze (the page's progress bar) ---------------------------------------------------------

#: where each phase before training sits on the bar (training fills 0.08 .. 0.95, the dev evaluation the rest)
PHASE_FRACTIONS = {None: 0.0, "loading the model": 0.02, "reading the data": 0.04, "preparing the model": 0.06,
                   "training": 0.08, "evaluating on the dev set": 0.96, "done": 1.0}
TRAINING_SHARE = 0.88


def _phase_key(phase: str | None) -> str | None:
    return next((k for k in PHASE_FRACTIONS if k is not None and phase is not None and phase.startswith(k)), None)


def squeeze_stage(frames: dict, options: dict) -> str:
    """Where Algorithm 2 stands, from the run's squeeze events: LFA, the cut being repaired, or stopped."""
    if frames["baseline"].empty:
        return f"lightweight fine-tuning ({options.get('lfa_steps', '?')} steps), then p is measured"
    if not frames["stop"].empty:
        return "squeezing stopped; finishing"
    cuts, judged = len(frames["cuts"]), len(frames["steps"])
    if cuts > judged:
        matrix = frames["cuts"]["matrix"].iloc[-1]
        return f"cut {cuts} ({matrix_label(matrix)}): {options.get('tune_steps', '?')} repair steps, then p̃ is judged"
    return f"squeezing: {cuts} cut(s) judged, choosing the next"


def progress_view(status: str, job_started: float | None, progress: dict | None, frames: dict, options: dict,
                  now: float | None = None) -> dict:
    """The run's progress bar: ``{"fraction", "text", "seconds_left"}`` from its job, progress file and events.

    ``seconds_left`` comes from the measured pace of the training steps so far (an upper bound for a squeeze,
    which stops at its target size or on Δ before its step budget).
    """
    now = time.time() if now is None else now
    elapsed = None if job_started is None else max(0.0, now - job_started)
    clock = "" if elapsed is None else f" · {elapsed:.0f} s so far"
    phase = (progress or {}).get("phase")
    key = _phase_key(phase)
    if status in ("finished", "stopped", "failed"):
        fraction = 1.0 if status == "finished" else PHASE_FRACTIONS.get(key, 0.0)
        finished_in = ""
        if progress and isinstance(progress.get("updated"), (int, float)) and job_started:
            finished_in = f" in {max(0.0, progress['updated'] - job_started):.0f} s"
        return {"fraction": fraction, "text": f"{status}{finished_in}", "seconds_left": 0.0}
    if progress is None:
        return {"fraction": 0.0, "text": f"starting Python and loading torch{clock}", "seconds_left": None}
    if key == "training":
        done, total = progress.get("done") or 0, progress.get("total") or 0
        left = time_left(progress, now)
        fraction = PHASE_FRACTIONS["training"] + TRAINING_SHARE * (done / total if total else 0.0)
        threads = f" · {progress['threads']} thread(s)" if progress.get("threads") else ""
        eta = "" if left is None else f" · at most {math.ceil(left / 5) * 5:.0f} s left"
        text = f"{squeeze_stage(frames, options)} · step {done} of {total}{eta}{clock}{threads}"
        return {"fraction": min(fraction, 0.95), "text": text, "seconds_left": left}
    return {"fraction": PHASE_FRACTIONS.get(key, 0.0), "text": f"{phase}{clock}", "seconds_left": None}


def watch_signature(status: str, frames: dict) -> tuple:
    """What the page's charts show: it redraws only when this changes (a status, a squeeze event, 10 more logged
    training steps), not on every poll."""
    return (status, *(len(frames[k]) for k in ("baseline", "cuts", "steps", "stop")), len(frames["train"]) // 10)


# --- the scores on the run card ----------------------------------------------------------------------------------

METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                "spearmanr": "Spearman", "combined": "combined"}


def dev_score(results: dict | None, metric: str | None = None) -> dict:
    """The run's final dev score for its card: ``{"label", "value"}`` (``value`` ``None`` until the run ends;
    ``metric``: the task's, for the label before then)."""
    metric = (results or {}).get("metric") or metric or "score"
    value = (results or {}).get("score")
    return {"label": f"dev {METRIC_NAMES.get(metric, metric)}", "value": None if value is None else float(value)}


def _half_width(p: float, n: int | None) -> float | None:
    """The 95 % normal half-width of an accuracy ``p`` measured on ``n`` examples."""
    if not n or p is None or not 0 <= p <= 1:
        return None
    return 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)


def score_note(summary: dict, results: dict | None, options: dict) -> str | None:
    """One line on the card: what held-out p and the dev score each measure, and why they differ."""
    if summary.get("p") is None:
        return None
    heldout_n = (results or {}).get("num_heldout_examples") or options.get("heldout_examples")
    text = (f"Held-out p and p̃ are measured on {heldout_n or 'the'} training examples held out from training; "
            "they judge every cut (|p − p̃| ≤ Δ).")
    dev = dev_score(results)
    if dev["value"] is None:
        return text + " The dev score is measured once the run ends."
    dev_n = results.get("num_eval_examples")
    text += (f" The {dev['label']} is measured once, at the end, on {dev_n} GLUE dev examples that chose "
             "nothing: other sentences, another sample")
    p_last = summary.get("p_tilde") if summary.get("p_tilde") is not None else summary.get("p")
    widths = [_half_width(p_last, heldout_n), _half_width(dev["value"], dev_n)]
    if results.get("metric") == "accuracy" and all(w is not None for w in widths):
        text += f" (95 % intervals ±{widths[0]:.2f} and ±{widths[1]:.2f} at these sizes)"
    return text + "."


# --- the demo's defaults and how long they take ------------------------------------------------------------------

#: the Squeeze page's default run (see the comment at app/views/squeeze.py's form)
DEMO = {"layers": 6, "train": 800, "heldout": 128, "dev": 200, "max_length": 32, "delta": 0.1, "steps": 12,
        "step_size": 0.02, "target": 0.9, "lfa": 30, "tune": 8, "lr": 1e-3}
#: the matrices the demo squeezes: the encoder's (the word embedding stays dense)
DEMO_GROUPS = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
#: the default run's wall time from Start to results on this project's 2-core CPU, measured with
#: benchmarks/bench_squeeze_demo.py on 2026-12-07: idle (two threads), and with another process keeping one core
#: busy (one thread, chosen by --threads auto); with four busy processes it took 305 s on 0.39 cores
DEMO_SECONDS = {"idle": 76, "one_core_busy": 118}


def expected_duration_text(settings: dict = DEMO) -> str:
    """What the form says beside Start: the measured time of the defaults."""
    idle, busy = DEMO_SECONDS["idle"], DEMO_SECONDS["one_core_busy"]
    if idle is None:
        return "The defaults take a few minutes on a 2-core CPU."
    return (f"With these defaults a run takes about {_minutes(idle)} on an idle 2-core CPU and {_minutes(busy)} "
            "while another process keeps one core busy (measured); more steps, layers or tokens take longer.")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
