"""Back end of the Compress page's calibrated methods: compress with calibration data, and the stored frontier.

Plain Python over :mod:`mpo_core` (no ``streamlit`` import). The page runs, on
"Compress and measure", the phases of :func:`mpo_core.compression_run.compress`
one by one so that each can report progress::

    calibration   X^T X per matrix on N sentences (cached on disk)     calibration_stats
    sensitivity   auto only: how much each matrix's error moves the output   measured_sensitivity
    compression   compress_model: one budget, structure per matrix          compress_model
    zero-shot     the page's STS-B sample, original vs compressed           app.compress.model_effect

and reads the stored zero-shot frontier (``results/<mode>/zero_shot_frontier``)
to draw the user's result beside every method's.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import plotly.graph_objects as go
from torch import nn

from mpo_core.data.glue import GLUE_TASKS, glue_file
from mpo_core.model.calibrated_compression import (CALIBRATED, ENCODER_GROUPS, METHODS, CompressionConfig,
                                                   compress_model)
from mpo_core.model.calibration import calibration_stats
from mpo_core.model.calibration_sentences import MAX_CALIBRATION_SENTENCES, calibration_sentences
from mpo_core.model.output_sensitivity import measured_sensitivity
from mpo_core.reproduction.results_store import Results, load_results, regenerate_command
from mpo_core.tensor.validation import is_int

#: the stored frontier's experiment, :data:`mpo_core.reproduction.zero_shot_frontier.NAME` (named here: importing
#: that module pulls in the training stack, ~2 s the Compress page's first paint would wait for)
FRONTIER = "zero_shot_frontier"

#: one line per method, as the page offers them ("mpo" is the page's plain plan-and-build flow)
METHOD_LABELS = {
    "mpo": "Plain MPO: bond dims by ratio, same share per matrix (Algorithm 1)",
    "svd": "Plain SVD: truncated SVD (an MPO with n = 2), same share per matrix",
    "svd_whitened": "Whitened SVD (SVD-LLM): least output error on calibration data at each rank",
    "mpo_kronecker": "MPO, Kronecker-whitened: MPO truncated in the calibration data's metric",
    "mpo_calibrated": "Calibrated MPO: the plain MPO refined by ALS with the full XᵀX of the calibration data",
    "auto": "Auto: structure and size per matrix under one budget, weighted by measured output sensitivity",
}
assert set(METHOD_LABELS) == set(METHODS)
PHASES = ("calibration", "sensitivity", "compression", "zero-shot")
DEFAULT_SENTENCES = 512
DEFAULT_SHARE = 0.5
SMALL_NOTE = "small mode: CI-sized, not the experiment (2 encoder layers, 100 dev pairs)."
#: stored modes in the order the page prefers them
FRONTIER_MODES = ("full", "small")

PhaseFn = Callable[[str, float, str], None]  # (phase, fraction of the whole run done, text)


# --------------------------------------------------------------------------- request
@dataclass(frozen=True)
class CalibratedRequest:
    """One compression by a :data:`~mpo_core.model.calibrated_compression.METHODS` method; hashable."""

    method: str = "mpo_calibrated"  # one of METHODS
    size: float = DEFAULT_SHARE  # kept share of the chosen matrices' parameters
    groups: tuple[str, ...] = ENCODER_GROUPS  # matrix groups to compress
    n: int = 5  # local tensors of the MPO methods (svd* use 2, auto chooses among 2, 3, 5)
    calibration: str = "stsb"  # a GLUE task (its train file) or a text file
    sentences: int = DEFAULT_SENTENCES  # calibration sentences drawn

    def __post_init__(self):
        object.__setattr__(self, "groups", (self.groups,) if isinstance(self.groups, str) else tuple(self.groups))
        if not is_int(self.sentences) or not 1 <= self.sentences <= MAX_CALIBRATION_SENTENCES:
            raise ValueError(f"the number of calibration sentences must be in 1..{MAX_CALIBRATION_SENTENCES}, "
                             f"got {self.sentences!r}.")
        self.config()  # method, size, groups and n checked with CompressionConfig's messages

    @property
    def calibrated(self) -> bool:
        return self.method in CALIBRATED

    def config(self) -> CompressionConfig:
        return CompressionConfig(method=self.method, size=float(self.size), groups=self.groups, n=int(self.n))


def calibration_sources(data_dir) -> list[str]:
    """The GLUE tasks whose train file is in ``data_dir`` (STS-B first: the frontier's calibration)."""
    found = []
    for name in sorted(GLUE_TASKS, key=lambda t: t != "stsb"):
        try:
            glue_file(name, "train", data_dir)
        except (OSError, ValueError):
            continue
        found.append(name)
    return found


# --------------------------------------------------------------------------- run
@dataclass
class CalibratedResult:
    """The compressed model and what :func:`compress_model` reported (``report.to_dict()``)."""

    model: nn.Module
    report: dict
    seconds: dict = field(default_factory=dict)  # per phase


def compress_calibrated(base: nn.Module, tokenizer, request: CalibratedRequest, *, data_dir, cache_dir=None,
                        phase: PhaseFn | None = None) -> CalibratedResult:
    """A compressed copy of ``base`` (``base`` is untouched) by ``request``'s method.

    ``phase(name, done, text)`` is called as each phase starts, ``done`` being the share of the
    run behind it (the zero-shot phase, the last 15 %, is the page's). Raises ``ValueError`` for
    a missing or too small calibration source.
    """
    import time

    say = phase or (lambda *_: None)
    config, stats, sensitivity, seconds = request.config(), None, None, {}
    if request.calibrated:
        say("calibration", 0.0, f"Calibration: XᵀX of every matrix on {request.sentences} sentences of "
                                f"{request.calibration} (cached after the first time)…")
        t = time.perf_counter()
        groups = tuple(dict.fromkeys((*config.groups, *ENCODER_GROUPS)))
        stats = calibration_stats(base, tokenizer, request.calibration, num_sentences=request.sentences,
                                  groups=groups, data_dir=data_dir, cache_dir=cache_dir, progress=False)
        seconds["calibration"] = time.perf_counter() - t
    if request.method == "auto":
        say("sensitivity", 0.25, "Sensitivity: how much each matrix's error moves the model's output…")
        t = time.perf_counter()
        sentences = calibration_sentences(request.calibration, request.sentences, data_dir=data_dir)
        sensitivity = measured_sensitivity(base, tokenizer, stats, sentences, config, progress=False)
        seconds["sensitivity"] = time.perf_counter() - t
    say("compression", 0.5, f"Compression: {METHOD_LABELS[request.method].split(':')[0]} at kept share "
                            f"{request.size:g}…")
    model = copy.deepcopy(base)
    report = compress_model(model, config, stats, sensitivity=sensitivity, progress=False)
    seconds["compression"] = report.seconds
    say("zero-shot", 0.85, "Zero-shot STS-B: both models embed the sample…")
    return CalibratedResult(model.eval(), report.to_dict(), seconds)


def result_rows(report: dict, effect=None) -> list[tuple[str, str, str]]:
    """The headline numbers of a run, ``(label, value, help)``."""
    rows = [
        ("Kept share", f"{report['kept_share']:.3f}",
         f"Parameters of the {len(report['matrices'])} compressed matrices after / before."),
        ("#To after", f"{report['model_params_after'] / 1e6:.2f}M",
         f"Whole model: {report['model_share']:.3f} of the dense model's {report['model_params_before'] / 1e6:.2f}M."),
        ("Summed squared error", f"{report['summed_squared_error']:.3g}",
         "Σ over matrices of the output error on the calibration tokens, ‖X (W − W′)ᵀ‖²_F (0 without calibration)."),
    ]
    if effect is not None:
        rows += [("STS-B, dense", f"{effect.spearman_original:.3f}",
                  f"Zero-shot STS-B Spearman on the page's {effect.sentences // 2} dev pairs, the original model."),
                 ("STS-B, compressed", f"{effect.spearman_compressed:.3f}",
                  f"The compressed model on the same pairs; embedding agreement (cos) {effect.cosine_mean:.3f}.")]
    return rows


# --------------------------------------------------------------------------- where the budget went
def structure_label(n: int) -> str:
    return {0: "dense", 2: "SVD"}.get(int(n), f"MPO n={int(n)}")


def _structures(counts: dict) -> str:
    return ", ".join(f"{structure_label(int(n))}: {k}" for n, k in sorted(counts.items(), key=lambda x: -int(x[0])))


def budget_table(report: dict) -> pd.DataFrame:
    """The report's ``by_group`` rows: groups first, then layers, with the structures each got."""
    rows = []
    for key, row in report["by_group"].items():
        kind, name = key.split(":", 1)
        rows.append({"where": f"{kind} {name}" if kind == "layer" and name != "None" else
                     ("outside the layers" if kind == "layer" else name), "kind": kind,
                     "kept share": row["kept_share"], "params": row["params"], "dense params": row["dense_params"],
                     "structures": _structures(row["structures"])})
    table = pd.DataFrame(rows, columns=["where", "kind", "kept share", "params", "dense params", "structures"])
    return table.sort_values("kind", kind="stable", key=lambda k: k != "group").reset_index(drop=True)


def matrix_table(report: dict) -> pd.DataFrame:
    """One row per compressed matrix: structure, bond dims, size and error (index: module name)."""
    rows = [{"matrix": m["name"], "group": m["group"], "layer": m["layer"], "structure": structure_label(m["structure"]),
             "bond dims": ",".join(str(d) for d in m["bond_dims"]), "params": m["params"],
             "kept share": m["params"] / m["dense_params"],
             "relative output error": (m["error"] / m["reference"]) if m["error"] is not None and m["reference"]
             else None}
            for m in report["matrices"]]
    table = pd.DataFrame(rows).set_index("matrix")
    table["layer"] = table["layer"].astype("Int64")
    return table


# --------------------------------------------------------------------------- the stored frontier
def load_frontier() -> Results | None:
    """The stored zero-shot frontier: full mode when there, else small mode, else ``None``."""
    for mode in FRONTIER_MODES:
        results = load_results(FRONTIER, mode)
        if results is not None:
            return results
    return None


def frontier_caption(results: Results | None) -> str:
    """The provenance line under the chart, or how to make the frontier."""
    if results is None:
        return (f"No stored zero-shot frontier yet: make it with `{regenerate_command(FRONTIER, 'full')}` "
                f"(or `--mode small` for a CI-sized one in minutes).")
    note = f" — {SMALL_NOTE}" if results.mode == "small" else ""
    return results.describe() + note


def _base_row(row: str) -> str:
    return row.removesuffix("+heal")


PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac")


def frontier_figure(table: pd.DataFrame | None, user: tuple[float, float] | None = None,
                    chosen_share: float | None = None, user_label: str = "your model",
                    user_dense: float | None = None) -> go.Figure:
    """Zero-shot Spearman vs kept share: a line per stored row (healed dashed), dense, baseline, the user's point.

    ``table``: the frontier's rows (only ``size_kind == "encoder"`` are drawn); ``user``:
    ``(kept share, Spearman)`` of the user's model; ``chosen_share``: a dotted line at the share chosen;
    ``user_dense``: the dense model's score on the user's sample (its pairs are not the frontier's).
    """
    fig = go.Figure()
    encoder = table[table["size_kind"] == "encoder"] if table is not None else pd.DataFrame(columns=["row"])
    colors = {row: PALETTE[k % len(PALETTE)] for k, row in enumerate(dict.fromkeys(map(_base_row, encoder["row"])))}
    for row, points in encoder.groupby("row", sort=False):
        points = points.sort_values("kept_share")
        healed = bool(points["healed"].iloc[0])
        fig.add_scatter(x=points["kept_share"], y=points["spearman"], mode="lines+markers", name=row,
                        line={"color": colors[_base_row(row)], "dash": "dash" if healed else "solid"},
                        hovertemplate=f"{row}<br>kept share %{{x:.3f}}<br>Spearman %{{y:.3f}}<extra></extra>")
    if len(encoder):
        dense = float(encoder["spearman_dense"].iloc[0])
        fig.add_scatter(x=[0, 1], y=[dense, dense], mode="lines", name=f"dense ({dense:.3f})",
                        line={"color": "#555", "dash": "dot", "width": 1}, hoverinfo="skip")
        base = encoder[encoder["baseline"].notna()]
        if len(base):
            fig.add_scatter(x=base["size"], y=base["baseline"], mode="markers", name="issue's baseline",
                            marker={"color": [colors[_base_row(r)] for r in base["row"]], "size": 8,
                                    "symbol": "circle-open"}, opacity=0.45, text=base["row"],
                            hovertemplate="baseline %{text}<br>share %{x:.2f}: %{y:.3f}<extra></extra>")
    if chosen_share is not None:
        fig.add_vline(x=chosen_share, line={"color": "#d62728", "dash": "dot", "width": 1})
    if user_dense is not None:
        fig.add_scatter(x=[0, 1], y=[user_dense, user_dense], mode="lines", name=f"dense, your sample ({user_dense:.3f})",
                        line={"color": "#d62728", "dash": "dot", "width": 1}, opacity=0.6, hoverinfo="skip")
    if user is not None:
        fig.add_scatter(x=[user[0]], y=[user[1]], mode="markers", name=user_label,
                        marker={"color": "#d62728", "size": 16, "symbol": "star", "line": {"color": "black", "width": 1}},
                        hovertemplate=f"{user_label}<br>kept share %{{x:.3f}}<br>Spearman %{{y:.3f}}<extra></extra>")
    fig.update_layout(title="Zero-shot STS-B vs kept share of the 36 encoder matrices (stored frontier)",
                      xaxis_title="kept share of the compressed matrices' parameters", yaxis_title="Spearman (STS-B dev)",
                      xaxis={"range": [0, 1.02]}, legend={"orientation": "v"}, height=460)
    return fig


__all__ = ["CalibratedRequest", "CalibratedResult", "METHOD_LABELS", "PHASES", "budget_table", "calibration_sources",
           "compress_calibrated", "frontier_caption", "frontier_figure", "load_frontier", "matrix_table",
           "result_rows"]
