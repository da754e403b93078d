"""Baselines of Figure 2: truncated SVD, CPD and Tucker against the MPO.

Every method compresses the *same* tensorization of a weight ``W`` of shape
``(out_features, in_features)``: the n-way tensor of
:func:`~mpo_core.tensor.shape.tensorize` with local dimensions ``a_k = i_k * j_k``::

    W (out, in) --tensorize--> T (a_1, ..., a_n)

    method  model of T                                   parameters
    ------  -------------------------------------------  ------------------------------
    mpo     T_1[1,a_1,d_1] T_2[d_1,a_2,d_2] ... T_n      sum_k d_{k-1} a_k d_k  (Eq. (5))
    cpd     sum_r u_r^(1) o u_r^(2) o ... o u_r^(n)      R * sum_k a_k
    tucker  G[r_1..r_n] x_1 U_1 x_2 ... x_n U_n          prod_k r_k + sum_k a_k r_k
    svd     the mpo with n=2, planned as out_factors=    r * (out + in)
            (out, 1), in_factors=(1, in): T is W itself

Zero padding counts against every method: the compression ratio is always
``parameters / (out_features * in_features)``, and the error is
``||W - W'||_F`` on the original (unpadded) matrix, accumulated in float64.

Each ``*_approximation`` function returns an :class:`Approximation`. A point
that cannot be computed raises an :class:`InfeasibleError` (a ``ValueError``):
:class:`RatioTooSmallError` when the smallest model of the method is already
above the target ratio, :class:`MemoryBudgetError` (also a ``MemoryError``)
when the CPD working memory would exceed ``max_bytes``.
:func:`error_vs_ratio` catches these and records the point as skipped.

CPD and Tucker are computed by TensorLy (``parafac``: ALS; ``tucker``: HOOI),
on its PyTorch backend, in the matrix's dtype and on its device, with an SVD
initialization and a fixed ``random_state``, so results are deterministic.

References
----------
.. [1] Gao et al., "Compressing deep neural networks by matrix product
   operators", Phys. Rev. Research 2, 023300 (2020).
.. [2] Kolda and Bader, "Tensor Decompositions and Applications",
   SIAM Review 51(3), 455-500 (2009).
"""
from __future__ import annotations

import math
import numbers
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Callable, Sequence

import pandas as pd
import tensorly as tl
import torch
from tensorly.decomposition import parafac, tucker

from .decomposition import decompose
from .mpo import MPO
from .shape import MPOShape, matricize, plan_shape, svd_factors, tensorize
from .truncation import truncate
from .truncation_error import frobenius_error
from .validation import check_matrix

METHODS = ("mpo", "svd", "cpd", "tucker")
DEFAULT_N_VALUES = (3, 5, 7)
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_N_ITER_MAX = 100
DEFAULT_TOL = 1e-6
COLUMNS = (
    "method", "n", "target_ratio", "ranks", "num_params", "compression_ratio",
    "error", "relative_error", "error_bound", "seconds", "skipped_reason",
)

Progress = Callable[[int, int, str], None]


class InfeasibleError(ValueError):
    """A (method, n, ratio) point that cannot be computed; :func:`error_vs_ratio` skips it."""


class RatioTooSmallError(InfeasibleError):
    """Even the smallest model of the method (all ranks 1) is above the target ratio."""


class MemoryBudgetError(InfeasibleError, MemoryError):
    """The estimated working memory of the decomposition exceeds ``max_bytes``."""


#: CP-ALS attempts, in order: (init, l2_reg). Plain ALS from the SVD is the result wherever it stays finite; a
#: rank far above the tensor's own (a smooth matrix) makes its normal equations singular (non-finite values, or
#: torch's solver raising), and then a random start, then a tiny ridge on them, are tried (with a warning naming
#: the one used).
ALS_ATTEMPTS = (("svd", 0.0), ("random", 0.0), ("svd", 1e-6))


class DivergedError(InfeasibleError):
    """ALS gave non-finite values, or a singular system, in every attempt of :data:`ALS_ATTEMPTS`."""


@dataclass(frozen=True)
class Approximation:
    """One compressed approximation of a matrix: its size and its error.

    Attributes
    ----------
    method:
        ``"mpo"``, ``"svd"``, ``"cpd"`` or ``"tucker"``.
    n:
        Number of tensor modes (local tensors); 2 for ``"svd"``.
    target_ratio:
        The compression ratio asked for.
    ranks:
        MPO/SVD: bond dims ``d'_k``; CPD: ``(R,)``; Tucker: ``(r_1, ..., r_n)``.
    num_params:
        Parameters of the compressed model (CPD weights folded into the factors).
    compression_ratio:
        Actual ratio ``num_params / (out_features * in_features)``, at most ``target_ratio``.
    error:
        ``||W - W'||_F`` on the original matrix (float64).
    relative_error:
        ``error / ||W||_F``.
    seconds:
        Wall-clock time to compute the approximation.
    error_bound:
        Eq. (4) bound ``sqrt(sum_k eps_k^2) >= error`` (MPO and SVD only, else ``None``).
    """

    method: str
    n: int
    target_ratio: float
    ranks: tuple[int, ...]
    num_params: int
    compression_ratio: float
    error: float
    relative_error: float
    seconds: float
    error_bound: float | None = None


# --------------------------------------------------------------------------- checks


def _check_ratio(compression_ratio: float) -> float:
    if isinstance(compression_ratio, bool) or not isinstance(compression_ratio, numbers.Real):
        raise TypeError(f"compression_ratio must be a number, got {compression_ratio!r}.")
    if not (compression_ratio > 0 and math.isfinite(compression_ratio)):
        raise ValueError(
            f"compression_ratio must be a finite number > 0 (parameters kept / matrix entries), "
            f"got {compression_ratio}; e.g. 0.1 keeps 10% of the parameters."
        )
    return float(compression_ratio)


def _check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty selection of {METHODS}, got {methods}.")
    return methods


def _resolve_shape(matrix: torch.Tensor, shape_or_n: MPOShape | int) -> MPOShape:
    """The tensorization of ``matrix``: a planned shape for an int ``n``, else the given one."""
    rows, cols = matrix.shape
    if not isinstance(shape_or_n, MPOShape):
        return plan_shape(rows, cols, n=shape_or_n)
    if (shape_or_n.out_features, shape_or_n.in_features) != (rows, cols):
        raise ValueError(
            f"shape is planned for {shape_or_n.out_features}x{shape_or_n.in_features} but the "
            f"matrix is {rows}x{cols}; plan a shape for this matrix (or pass n)."
        )
    return shape_or_n


def param_budget(shape: MPOShape, compression_ratio: float) -> int:
    """Largest parameter count allowed by ``compression_ratio`` (Eq. (5) denominator)."""
    return math.floor(compression_ratio * shape.num_matrix_params)


def _too_small(method: str, shape: MPOShape, ratio: float, smallest: int) -> RatioTooSmallError:
    return RatioTooSmallError(
        f"compression_ratio {ratio} allows {param_budget(shape, ratio)} parameters, but the "
        f"smallest {method} model (all ranks 1, n={shape.n}) has {smallest} "
        f"(ratio {smallest / shape.num_matrix_params:.4g}); ask for a larger ratio."
    )


# --------------------------------------------------------------------------- result


def _result(method, shape, target, ranks, num_params, matrix, approx, start, error_bound=None):
    """Measure ``approx`` against ``matrix`` (float64) and pack an :class:`Approximation`."""
    seconds = time.perf_counter() - start
    error = frobenius_error(matrix, approx)
    norm = float(matrix.double().norm())
    return Approximation(
        method=method,
        n=shape.n,
        target_ratio=target,
        ranks=tuple(int(r) for r in ranks),
        num_params=int(num_params),
        compression_ratio=num_params / shape.num_matrix_params,
        error=error,
        relative_error=error / norm if norm > 0 else 0.0,
        seconds=seconds,
        error_bound=error_bound,
    )


@contextmanager
def _tensorly_torch():
    """TensorLy on its PyTorch backend (torch in, torch out), thread-locally.

    Silences TensorLy's notice that the SVD initialization clips ``rank > a_k``
    (it then fills the extra columns from ``random_state``, as intended).
    """
    with tl.backend_context("pytorch"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
        yield


# --------------------------------------------------------------------------- CPD


def cpd_rank(shape: MPOShape, compression_ratio: float) -> int:
    """``R = floor(ratio * out * in / sum_k a_k)``: the largest CP rank within the ratio (may be 0)."""
    return param_budget(shape, compression_ratio) // sum(shape.local_dims)


def cpd_memory_bytes(local_dims: Sequence[int], rank: int, itemsize: int = 4) -> int:
    """Estimated peak working memory of TensorLy's CP-ALS (``parafac``) in bytes.

    Per mode update ALS forms the Khatri-Rao product of the other factors,
    ``(prod_{m != k} a_m, R)`` (largest for the smallest mode; counted twice:
    it is built from a partial product), and solves an ``(R, R)`` system from
    Hadamard products of Gram matrices (about three ``(R, R)`` buffers); the
    tensor and its unfolding/reconstruction add about three tensor copies.
    """
    total = math.prod(local_dims)
    khatri_rao = (total // min(local_dims)) * rank
    return itemsize * (2 * khatri_rao + 3 * rank * rank + 3 * total)


def _check_memory(shape: MPOShape, rank: int, itemsize: int, max_bytes: int) -> None:
    need = cpd_memory_bytes(shape.local_dims, rank, itemsize)
    if need > max_bytes:
        raise MemoryBudgetError(
            f"CPD of rank {rank} on a {shape.local_dims} tensor needs about {need / 2**30:.2f} GiB "
            f"(Khatri-Rao product and (R, R) normal equations), over max_bytes = "
            f"{max_bytes / 2**30:.2f} GiB; lower the ratio, use a smaller n, or raise max_bytes."
        )


def cpd_approximation(
    matrix: torch.Tensor,
    shape: MPOShape | int,
    compression_ratio: float,
    *,
    n_iter_max: int = DEFAULT_N_ITER_MAX,
    tol: float = DEFAULT_TOL,
    random_state: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Approximation:
    """CP decomposition (TensorLy ``parafac``, ALS) of the MPO tensorization of ``matrix``.

    Parameters
    ----------
    matrix:
        2-D float32/float64 tensor ``(out_features, in_features)``.
    shape:
        The tensorization: an :class:`~mpo_core.tensor.shape.MPOShape`, or ``n`` to plan one.
    compression_ratio:
        Target ratio; the CP rank is ``R = floor(ratio * out * in / sum_k a_k)``.
    n_iter_max, tol:
        ALS iterations and convergence tolerance (change of relative error).
    random_state:
        Seed of the SVD initialization's random columns (used when ``R > a_k``), and of the random
        initialization of the fallback (:data:`ALS_ATTEMPTS`).
    max_bytes:
        Memory budget; see :func:`cpd_memory_bytes`.

    Returns
    -------
    Approximation
        With ``ranks = (R,)`` and ``num_params = R * sum_k a_k``.

    Raises
    ------
    RatioTooSmallError
        If ``R < 1``.
    MemoryBudgetError
        If the estimated ALS memory exceeds ``max_bytes`` (nothing is allocated).
    DivergedError
        If ALS gives non-finite values in every attempt of :data:`ALS_ATTEMPTS` (a fallback that
        succeeds is announced with a warning).
    """
    check_matrix(matrix)
    ratio = _check_ratio(compression_ratio)
    shape = _resolve_shape(matrix, shape)
    rank = cpd_rank(shape, ratio)
    if rank < 1:
        raise _too_small("cpd", shape, ratio, sum(shape.local_dims))
    _check_memory(shape, rank, matrix.element_size(), max_bytes)
    start = time.perf_counter()
    tensor = tensorize(matrix.detach(), shape)  # (a_1, ..., a_n)
    with _tensorly_torch():
        for init, ridge in ALS_ATTEMPTS:  # plain ALS from SVD first; the others only when it diverged
            try:
                cp = parafac(tensor, rank, n_iter_max=n_iter_max, tol=tol, init=init, random_state=random_state,
                             l2_reg=ridge)
            except torch.linalg.LinAlgError:  # the normal equations went singular (torch raises, numpy gives nan)
                continue
            approx = matricize(tl.cp_to_tensor(cp), shape)  # (out, in)
            if torch.isfinite(approx).all():
                if (init, ridge) != ALS_ATTEMPTS[0]:
                    warnings.warn(f"cpd: plain ALS of rank {rank} diverged (non-finite values); this point is "
                                  f"ALS with init={init!r}, l2_reg={ridge:g}.", stacklevel=2)
                break
        else:
            raise DivergedError(f"cpd: ALS of rank {rank} on the {tuple(shape.local_dims)} tensorization gave "
                                f"non-finite values or a singular system with every attempt {ALS_ATTEMPTS}.")
    return _result("cpd", shape, ratio, (rank,), rank * sum(shape.local_dims), matrix, approx, start)


# --------------------------------------------------------------------------- Tucker


def tucker_num_params(local_dims: Sequence[int], ranks: Sequence[int]) -> int:
    """``prod_k r_k + sum_k a_k r_k``: core plus factor matrices."""
    return math.prod(ranks) + sum(a * r for a, r in zip(local_dims, ranks))


def valid_tucker_ranks(ranks: Sequence[int]) -> tuple[int, ...]:
    """Clip each ``r_k`` to at most ``prod_{m != k} r_m``, the rank of the core's k-th unfolding.

    Wider ranks would only add parameters that carry nothing (the Tucker
    analogue of :func:`~mpo_core.tensor.compression.clip_bond_dims`).
    """
    ranks, total = list(ranks), math.prod(ranks)
    while any(r * r > total for r in ranks):  # r_k > total / r_k
        ranks = [min(r, total // r) for r in ranks]
        total = math.prod(ranks)
    return tuple(ranks)


def scaled_tucker_ranks(local_dims: Sequence[int], scale: float) -> tuple[int, ...]:
    """``r_k = round(scale * a_k)`` in ``1..a_k``, clipped by :func:`valid_tucker_ranks`."""
    return valid_tucker_ranks([min(a, max(1, round(scale * a))) for a in local_dims])


def tucker_ranks(local_dims: Sequence[int], budget: int) -> tuple[int, ...] | None:
    """Valid Tucker ranks, roughly proportional to ``a_k``, filling ``budget`` parameters.

    Bisection on the scale of :func:`scaled_tucker_ranks` (the parameter
    count grows with the scale), then single ranks are raised, lowest
    ``r_k / a_k`` first, while they stay valid and within budget: the core
    ``prod_k r_k`` makes the proportional steps coarse for large n.
    ``None`` if even ranks ``(1, ..., 1)`` are over budget.
    """

    def fits(scale: float) -> bool:
        return tucker_num_params(local_dims, scaled_tucker_ranks(local_dims, scale)) <= budget

    if not fits(0.0):
        return None
    low, high = 0.0, 1.0
    if fits(high):
        return scaled_tucker_ranks(local_dims, high)
    for _ in range(60):  # invariant: fits(low) and not fits(high)
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return _raise_single_ranks(local_dims, scaled_tucker_ranks(local_dims, low), budget)


def _raise_single_ranks(local_dims: Sequence[int], ranks: tuple[int, ...], budget: int) -> tuple[int, ...]:
    """Greedy top-up: until no single rank can be raised validly within ``budget``."""
    while True:
        raised = [ranks[:k] + (r + 1,) + ranks[k + 1:] for k, r in enumerate(ranks)]
        options = [
            k for k, new in enumerate(raised)
            if new[k] <= local_dims[k] and valid_tucker_ranks(new) == new
            and tucker_num_params(local_dims, new) <= budget
        ]
        if not options:
            return ranks
        ranks = raised[min(options, key=lambda k: ranks[k] / local_dims[k])]


def tucker_approximation(
    matrix: torch.Tensor,
    shape: MPOShape | int,
    compression_ratio: float,
    *,
    n_iter_max: int = DEFAULT_N_ITER_MAX,
    tol: float = DEFAULT_TOL,
    random_state: int = 0,
) -> Approximation:
    """Tucker decomposition (TensorLy ``tucker``, HOOI) of the MPO tensorization of ``matrix``.

    Parameters
    ----------
    matrix:
        2-D float32/float64 tensor ``(out_features, in_features)``.
    shape:
        The tensorization: an :class:`~mpo_core.tensor.shape.MPOShape`, or ``n`` to plan one.
    compression_ratio:
        Target ratio; ranks from :func:`tucker_ranks`.
    n_iter_max, tol, random_state:
        Passed to ``tucker`` (SVD initialization).

    Returns
    -------
    Approximation
        With ``ranks = (r_1, ..., r_n)``.

    Raises
    ------
    RatioTooSmallError
        If even ranks ``(1, ..., 1)`` exceed the target.
    """
    check_matrix(matrix)
    ratio = _check_ratio(compression_ratio)
    shape = _resolve_shape(matrix, shape)
    ranks = tucker_ranks(shape.local_dims, param_budget(shape, ratio))
    if ranks is None:
        raise _too_small("tucker", shape, ratio, tucker_num_params(shape.local_dims, [1] * shape.n))
    start = time.perf_counter()
    tensor = tensorize(matrix.detach(), shape)  # (a_1, ..., a_n)
    with _tensorly_torch():
        core_factors = tucker(
            tensor, list(ranks), n_iter_max=n_iter_max, tol=tol, init="svd", random_state=random_state
        )
        approx = matricize(tl.tucker_to_tensor(core_factors), shape)  # (out, in)
    params = tucker_num_params(shape.local_dims, ranks)
    return _result("tucker", shape, ratio, ranks, params, matrix, approx, start)


# --------------------------------------------------------------------------- MPO and SVD


def _is_svd_shape(shape: MPOShape) -> bool:
    """Whether the MPO of ``shape`` is the truncated SVD (factors ``(out, 1)``, ``(1, in)``)."""
    return (shape.out_factors, shape.in_factors) == svd_factors(shape.out_features, shape.in_features)


def mpo_approximation(
    matrix: torch.Tensor,
    shape_or_n: MPOShape | int,
    compression_ratio: float,
    *,
    mpo: MPO | None = None,
) -> Approximation:
    """MPO decomposition (Algorithm 1) truncated to ``compression_ratio`` (Eq. (5)).

    Parameters
    ----------
    matrix:
        2-D float32/float64 tensor ``(out_features, in_features)``.
    shape_or_n:
        An :class:`~mpo_core.tensor.shape.MPOShape`, or ``n`` to plan one; the
        planned ``n=2`` shape is the truncated SVD, reported as ``"svd"``.
    compression_ratio:
        Target ratio; bond dims from :func:`~mpo_core.tensor.truncation.truncate`.
    mpo:
        Optional exact decomposition of ``matrix`` to reuse (truncation is
        cheap, the decomposition is not); ``seconds`` then counts the truncation only.

    Returns
    -------
    Approximation
        With ``ranks`` = the truncated bond dims, the true error of the
        contracted MPO and the Eq. (4) ``error_bound``.

    Raises
    ------
    RatioTooSmallError
        If bond dims ``(1, ..., 1)`` exceed the target.
    """
    check_matrix(matrix)
    ratio = _check_ratio(compression_ratio)
    shape = _resolve_shape(matrix, shape_or_n)
    start = time.perf_counter()
    if mpo is None:
        mpo = decompose(matrix.detach(), shape=shape)
    elif mpo.shape != shape:
        raise ValueError(f"mpo has shape {mpo.shape}, not the requested {shape}; decompose this matrix with it.")
    method = "svd" if _is_svd_shape(shape) else "mpo"
    cut = truncate(mpo, compression_ratio=ratio)
    truncated = cut.mpo
    if truncated.num_params > param_budget(shape, ratio):  # even bond dims 1 exceed the budget
        raise _too_small(method, shape, ratio, truncated.num_params)
    approx = truncated.to_matrix()  # (out, in)
    return _result(
        method, shape, ratio, truncated.bond_dims, truncated.num_params, matrix, approx, start, cut.error_bound
    )


def svd_approximation(matrix: torch.Tensor, compression_ratio: float) -> Approximation:
    """Truncated SVD to ``compression_ratio``: :func:`mpo_approximation` with n=2."""
    return mpo_approximation(matrix, 2, compression_ratio)


# --------------------------------------------------------------------------- Figure 2


def _curves(methods: tuple[str, ...], n_values: tuple[int, ...]) -> list[tuple[str, int]]:
    """The (method, n) curves: SVD once (n=2), the others once per n (an n=2 MPO is the SVD)."""
    curves = []
    for method in methods:
        for n in (2,) if method == "svd" else n_values:
            curve = ("svd", 2) if (method, n) == ("mpo", 2) else (method, n)
            if curve not in curves:
                curves.append(curve)
    return curves


def _curve(matrix: torch.Tensor, method: str, n: int, options: dict) -> Callable[[float], Approximation]:
    """``ratio -> Approximation`` along one curve; an MPO is decomposed once, here."""
    if method == "cpd":
        return partial(cpd_approximation, matrix, _resolve_shape(matrix, n), **options)
    if method == "tucker":
        options = {k: v for k, v in options.items() if k != "max_bytes"}
        return partial(tucker_approximation, matrix, _resolve_shape(matrix, n), **options)
    start = time.perf_counter()
    shape = _resolve_shape(matrix, n)
    mpo = decompose(matrix.detach(), shape=shape)
    setup = time.perf_counter() - start

    def truncated(ratio: float) -> Approximation:
        point = mpo_approximation(matrix, shape, ratio, mpo=mpo)
        return replace(point, seconds=point.seconds + setup)  # each point pays the decomposition

    return truncated


def _row(point_at: Callable[[float], Approximation], method: str, n: int, ratio: float) -> dict:
    """One table row; an infeasible point becomes a row with ``skipped_reason`` and no numbers."""
    try:
        return {**asdict(point_at(ratio)), "skipped_reason": None}
    except InfeasibleError as exc:
        row = dict.fromkeys(COLUMNS)
        row.update(method=method, n=n, target_ratio=ratio, skipped_reason=str(exc))
        return row


def error_vs_ratio(
    matrix: torch.Tensor,
    ratios: Sequence[float],
    methods: Sequence[str] = METHODS,
    n_values: Sequence[int] = DEFAULT_N_VALUES,
    *,
    progress: Progress | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    n_iter_max: int = DEFAULT_N_ITER_MAX,
    tol: float = DEFAULT_TOL,
    random_state: int = 0,
) -> pd.DataFrame:
    """Reconstruction error against compression ratio for every method: Figure 2.

    Curves: ``"mpo"`` for each ``n`` in ``n_values``, ``"svd"`` once (n=2),
    ``"cpd"`` and ``"tucker"`` on the MPO tensorization for each ``n``
    (with ``n=2``, the planned shape, all three work on the matrix itself and
    the MPO is the SVD).
    Infeasible points (ratio below the smallest model, CPD over ``max_bytes``)
    are rows with ``skipped_reason`` set and the numeric columns missing.

    Parameters
    ----------
    matrix:
        2-D float32/float64 tensor ``(out_features, in_features)``.
    ratios:
        Target compression ratios (each > 0).
    methods:
        A selection of :data:`METHODS`.
    n_values:
        Numbers of modes (each >= 2) for the MPO, CPD and Tucker curves.
    progress:
        Optional ``progress(done, total, label)``, called after each point.
    max_bytes:
        CPD memory budget (see :func:`cpd_memory_bytes`).
    n_iter_max, tol, random_state:
        CPD / Tucker iteration options.

    Returns
    -------
    pandas.DataFrame
        One row per (method, n, ratio), curve by curve, with columns
        :data:`COLUMNS`; ``seconds`` of an MPO/SVD point includes the
        decomposition it shares with the rest of its curve.
    """
    check_matrix(matrix)
    ratios = tuple(_check_ratio(r) for r in ratios)
    if not ratios:
        raise ValueError("ratios is empty; give at least one target compression ratio, e.g. (0.1, 0.2).")
    methods, n_values = _check_methods(methods), tuple(n_values)
    if not n_values and set(methods) != {"svd"}:
        raise ValueError("n_values is empty; give the numbers of modes to try, e.g. (3, 5, 7).")
    for n in n_values:
        plan_shape(*matrix.shape, n=n)  # validates n (an int >= 2) before any work
    options = dict(max_bytes=max_bytes, n_iter_max=n_iter_max, tol=tol, random_state=random_state)
    curves = _curves(methods, n_values)
    total, rows = len(curves) * len(ratios), []
    for method, n in curves:
        point_at = _curve(matrix, method, n, options)
        for ratio in ratios:
            rows.append(_row(point_at, method, n, ratio))
            if progress is not None:
                progress(len(rows), total, f"{method} n={n} ratio={ratio:g}")
    return pd.DataFrame(rows, columns=list(COLUMNS))
