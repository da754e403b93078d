"""Truncating an MPO's bonds by an SVD sweep from its canonical form.

:func:`truncate` cuts bond k to ``d'_k`` and returns exactly the matrix that
Algorithm 1 run with those bond dims on the original matrix gives
(:func:`~mpo_core.tensor.decomposition.sequential_svd`), but it works on the local
tensors only:

* left of the center, bond k's right side has Gram ``diag(lambda_k^2)``
  (Schmidt basis), so the left singular vectors of the unfolding are those of
  the small ``T_k diag(lambda_k)``;
* at the center's right bond the right side is an isometry, so the kept
  right singular subspace comes from the ``d_c x d_c`` Gram of the center;
* further right the left side's Gram is diagonal and propagated.

The result is canonicalized again, so its own spectra are exact and it can be
truncated further. Targets: explicit ``bond_dims``, a ``compression_ratio``
(Eq. (5)) or a ``max_error`` (bound of Eq. (4)); the last two choose bond dims
with :mod:`~mpo_core.tensor.bond_allocation` (``allocator="optimal"``: the
exact Eq. (4) optimum over all bonds, its central pair then re-chosen for the
exact sequential error) or, for comparison, the previous greedy
(``allocator="greedy"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .bond_allocation import ALLOCATORS, greedy_bond_dims, optimal_bond_dims
from .canonical import canonicalize
from .compression import check_bond_dims
from .linalg import gram, left_singular_vectors, top_eigh
from .mpo import MPO
from .truncation_error import local_truncation_errors
from .validation import check_choice, check_number


@dataclass(frozen=True, eq=False)
class Truncation:
    """Result of :func:`truncate`.

    Attributes
    ----------
    mpo:
        The truncated MPO (canonical, own spectra).
    requested_bond_dims:
        The ``d'_k`` asked for (the MPO's bonds may be smaller: see
        :func:`~mpo_core.tensor.compression.clip_bond_dims`).
    discarded_singular_values:
        Per bond, the original Schmidt values beyond ``d'_k``.
    local_errors:
        Eq. (3) ``eps_k`` (Frobenius form).
    error_bound:
        Eq. (4) ``sqrt(sum eps_k^2) >= ||M - M'||_F``.
    """

    mpo: MPO
    requested_bond_dims: tuple[int, ...]
    discarded_singular_values: tuple[torch.Tensor, ...]
    local_errors: tuple[float, ...]
    error_bound: float


def _sweep(mpo: MPO, dims: Sequence[int]) -> list[torch.Tensor]:
    """Left-to-right truncation sweep; returns the (non-canonical) truncated chain."""
    chain = [t.detach() for t in mpo.tensors]
    n, c = mpo.n, mpo.center
    for k in range(c):  # bonds left of the center
        d_prev, i, j, d = chain[k].shape
        x = chain[k].reshape(d_prev * i * j, d)
        keep = min(dims[k], x.shape[0], d)
        lam = mpo.singular_values[k][:d].to(device=x.device, dtype=x.dtype)
        u = left_singular_vectors(x * lam, keep)  # (d_{k-1} a_k, d'_k)
        chain[k] = u.reshape(d_prev, i, j, keep)
        nxt = chain[k + 1]
        chain[k + 1] = ((u.T @ x) @ nxt.reshape(d, -1)).reshape(keep, *nxt.shape[1:])
    weights = None  # sqrt of the left Gram's diagonal at the current bond
    for k in range(c, n - 1):  # the center's right bond and beyond
        t = chain[k]
        d_prev, i, j, d = t.shape
        y = t if weights is None else t * weights.to(t.dtype)[:, None, None, None]
        y = y.reshape(d_prev * i * j, d)
        keep = min(dims[k], y.shape[0], d)
        eigvals, basis = top_eigh(gram(y, "cols"), keep)
        basis = basis.to(t.dtype)
        chain[k] = (t.reshape(-1, d) @ basis).reshape(d_prev, i, j, keep)
        nxt = chain[k + 1]
        chain[k + 1] = (basis.T @ nxt.reshape(d, -1)).reshape(keep, *nxt.shape[1:])
        weights = eigvals.sqrt()
    return chain


def truncate_to(mpo: MPO, bond_dims: Sequence[int]) -> Truncation:
    """Truncate ``mpo`` to the given per-bond dims (each in ``1..full``)."""
    dims = check_bond_dims(mpo.shape, bond_dims)
    if mpo.bond_dims != mpo.full_bond_dims:
        dims = tuple(min(d, b) for d, b in zip(dims, mpo.bond_dims))
    if dims == mpo.bond_dims:  # nothing to cut: the MPO is already canonical
        truncated = mpo
    else:
        tensors, values = canonicalize(_sweep(mpo, dims), mpo.center)
        truncated = MPO(tensors, mpo.shape, values, mpo.center)
    errors = local_truncation_errors(mpo, tuple(min(d, f) for d, f in zip(dims, mpo.full_bond_dims)))
    discarded = tuple(s[d:] for s, d in zip(mpo.singular_values, dims))
    bound = sum(e * e for e in errors) ** 0.5
    return Truncation(truncated, dims, discarded, errors, bound)


def bond_dims_for_ratio(mpo: MPO, compression_ratio: float, allocator: str = "optimal") -> tuple[int, ...]:
    """Bond dims whose Eq. (5) ratio is at most ``compression_ratio``, with the least error (or all ones)."""
    compression_ratio = check_number("compression_ratio (the Eq. (5) target)", compression_ratio, minimum=0)
    budget = compression_ratio * mpo.shape.num_matrix_params
    if check_choice("allocator", allocator, ALLOCATORS) == "greedy":
        return greedy_bond_dims(mpo, lambda params, added, cost: params <= budget)
    return optimal_bond_dims(mpo, max_params=budget)


def bond_dims_for_error(mpo: MPO, max_error: float, relative: bool = False,
                        allocator: str = "optimal") -> tuple[int, ...]:
    """Bond dims with the fewest parameters whose Eq. (4) bound stays at most ``max_error``.

    With ``relative=True`` the target is ``max_error * ||M||_F``. The optimal
    allocator is the exact Eq. (4) optimum here (no central-pair refinement),
    so the :class:`Truncation`'s ``error_bound`` meets the target.
    """
    if not max_error >= 0:
        raise ValueError(f"max_error must be >= 0, got {max_error}.")
    target_sq = (max_error * (mpo.norm if relative else 1.0)) ** 2
    if check_choice("allocator", allocator, ALLOCATORS) == "greedy":
        return greedy_bond_dims(mpo, lambda params, added, cost: added + cost > target_sq)
    return optimal_bond_dims(mpo, max_sq_error=target_sq, refine_center=False)


def truncate(
    mpo: MPO,
    bond_dims: Sequence[int] | None = None,
    *,
    compression_ratio: float | None = None,
    max_error: float | None = None,
    relative: bool = False,
    allocator: str = "optimal",
) -> Truncation:
    """Truncate an MPO to bond dims, to a compression ratio, or to an error bound.

    Parameters
    ----------
    mpo:
        A canonical MPO (from :func:`~mpo_core.tensor.decomposition.decompose`).
    bond_dims:
        ``d'_1..d'_{n-1}``, each in ``1..d_k``.
    compression_ratio:
        Target Eq. (5) ratio: the bond dims with the least error within it.
    max_error:
        Target bound on ``||M - M'||_F``, relative to ``||M||_F`` when
        ``relative``: the fewest parameters within it.
    allocator:
        How a ratio or error target picks bond dims: ``"optimal"``
        (:func:`~mpo_core.tensor.bond_allocation.optimal_bond_dims`) or
        ``"greedy"`` (the previous allocator, for comparison).

    Returns
    -------
    Truncation
        The new MPO, what was discarded, and the error bound.
    """
    given = [x is not None for x in (bond_dims, compression_ratio, max_error)]
    if sum(given) != 1:
        raise ValueError("give exactly one of bond_dims, compression_ratio or max_error.")
    if compression_ratio is not None:
        bond_dims = bond_dims_for_ratio(mpo, compression_ratio, allocator)
    elif max_error is not None:
        bond_dims = bond_dims_for_error(mpo, max_error, relative, allocator)
    return truncate_to(mpo, bond_dims)
