"""Calibrated MPO truncation: the bond dims and tensors that keep the layer's *output* on real inputs.

Plain truncation (:mod:`~mpo_core.tensor.truncation`) minimises ``||W - W'||_F``.
Here the target is the data-aware error ``||X (W - W')^T||_F``
(:mod:`~mpo_core.tensor.whitening`), in two stages:

1. **Kronecker whitening** (structure kept). ``Sigma = X^T X`` is replaced by its
   nearest Kronecker product over the input digits
   (:func:`~mpo_core.tensor.kronecker.nearest_kronecker`),
   ``Sigma ~ c Sigma_1 (x) .. (x) Sigma_n``; ``S_k = chol(Sigma_k)`` is put on
   tensor k's input leg, which whitens the whole matrix::

        W S  with  S = sqrt(c) S_1 (x) .. (x) S_n:      T_k[d, i_k, j_k, d']  ->  sum_j T_k[d, i_k, j, d'] S_k[j, j_k]

   The whitened matrix is decomposed (Algorithm 1), its bonds are chosen by the
   exact allocator (:mod:`~mpo_core.tensor.bond_allocation`) on the *whitened*
   spectra, so Eq. (3)-(4) hold in the Kronecker metric, truncated, and each
   input leg is multiplied back by ``S_k^{-1}``. Exact when ``Sigma`` is a
   Kronecker product; for ``n = 2`` planned as the SVD (input factors ``(1, in)``)
   it *is* the whitened SVD of SVD-LLM, since ``Sigma_2 = Sigma``.
2. **ALS refinement** (exact metric, optional): sweeps of
   :func:`~mpo_core.tensor.als_refinement.refine` with the full ``Sigma`` at the
   bond dims of stage 1; the error never increases.

The result is in mixed-canonical form with its own (plain-metric) spectra, like
any MPO of the engine, so layers, squeezing and the dashboard use it unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .als_refinement import DEFAULT_CG_STEPS, refine
from .bond_allocation import optimal_bond_dims, pareto_front
from .canonical import canonicalize
from .decomposition import decompose
from .kronecker import nearest_kronecker, nearest_outer_product
from .mpo import MPO
from .shape import MPOShape, plan_shape
from .truncation import truncate_to
from .validation import check_matrix
from .whitening import DEFAULT_DAMPING, check_second_moment, damped, whitened_error


@dataclass(frozen=True, eq=False)
class WhitenedMPO:
    """The full-bond MPO of ``W S`` (Kronecker-whitened) and the per-leg factors that undo it.

    Attributes
    ----------
    mpo:
        Exact MPO of the whitened (column-padded) matrix; its spectra are the whitened ones.
    shape:
        The tensorization of the original matrix.
    inverse_factors:
        ``S_k^{-1}`` per tensor (``j_k x j_k``, float64), for a second moment of the inputs.
    row_scales:
        Instead, ``sqrt(w_k)`` per tensor (``i_k``, float64), for weights on the rows (:func:`whiten_rows`).
    """

    mpo: MPO
    shape: MPOShape
    inverse_factors: tuple[torch.Tensor, ...] | None = None
    row_scales: tuple[torch.Tensor, ...] | None = None

    def front(self) -> tuple[np.ndarray, np.ndarray]:
        """Pareto front ``(parameters, squared Eq. (4) bound in the Kronecker metric)`` of this matrix."""
        return pareto_front(self.mpo)

    def unwhitened(self, whitened: MPO) -> MPO:
        """Multiply each input leg of a (truncated) whitened MPO by ``S_k^{-1}`` and re-canonicalize."""
        tensors = []
        for k, t in enumerate(whitened.tensors):
            t = t.double()
            if self.inverse_factors is not None:
                t = torch.einsum("aijb,jk->aikb", t, self.inverse_factors[k].to(t.device))
            if self.row_scales is not None:
                t = t / self.row_scales[k].to(t.device)[None, :, None, None]
            tensors.append(t)
        tensors, values = canonicalize(tensors, whitened.center)
        return MPO(tuple(tensors), self.shape, values, whitened.center)


@dataclass(frozen=True, eq=False)
class CalibratedTruncation:
    """Result of :func:`calibrated_truncate`.

    Attributes
    ----------
    mpo:
        The compressed MPO (canonical, own spectra, the matrix's dtype).
    error:
        Data-aware error ``||X (W - W')^T||_F`` on the undamped ``Sigma``.
    reference:
        ``||X W^T||_F``, so that ``error / reference`` is the relative output error.
    plain_error:
        ``||W - W'||_F``.
    kronecker_bound:
        Eq. (4) bound of stage 1 in the Kronecker metric (before refinement).
    refinement_errors:
        Data-aware error (damped ``Sigma``) before and after each ALS sweep; empty without refinement.
    """

    mpo: MPO
    error: float
    reference: float
    plain_error: float
    kronecker_bound: float
    refinement_errors: tuple[float, ...] = ()

    @property
    def relative_error(self) -> float:
        return self.error / self.reference if self.reference > 0 else 0.0

    @property
    def num_params(self) -> int:
        return self.mpo.num_params


def _padded_second_moment(sigma: torch.Tensor, shape: MPOShape) -> torch.Tensor:
    """``Sigma`` on the padded input index: padded directions get the mean diagonal (no input ever reaches them)."""
    padded = shape.padded_shape[1]
    if padded == sigma.shape[0]:
        return sigma
    out = torch.zeros(padded, padded, dtype=sigma.dtype, device=sigma.device)
    out[: sigma.shape[0], : sigma.shape[0]] = sigma
    fill = float(torch.diagonal(sigma).mean()) if sigma.numel() else 1.0
    idx = torch.arange(sigma.shape[0], padded, device=sigma.device)
    out[idx, idx] = fill if fill > 0 else 1.0
    return out


def whiten(matrix: torch.Tensor, second_moment: torch.Tensor, shape: MPOShape,
           damping: float = DEFAULT_DAMPING) -> WhitenedMPO:
    """Stage 1 before truncation: the full-bond MPO of the Kronecker-whitened matrix."""
    check_matrix(matrix)
    sigma = _padded_second_moment(check_second_moment(second_moment, matrix.shape[1]), shape)
    scale, factors = nearest_kronecker(sigma, shape.in_factors)
    chol, inverse = [], []
    for k, factor in enumerate(factors):
        s = torch.linalg.cholesky(damped(factor, damping))  # (j_k, j_k), lower
        if k == 0:
            s = s * math.sqrt(max(scale, 1e-300))
        chol.append(s)
        inverse.append(torch.linalg.solve_triangular(s, torch.eye(s.shape[0], dtype=s.dtype, device=s.device),
                                                     upper=False))
    rows, cols = shape.padded_shape
    w = torch.nn.functional.pad(matrix.detach().double(), (0, cols - matrix.shape[1]))  # (out, J)
    t = w.reshape(matrix.shape[0], *shape.in_factors)  # (out, j_1..j_n)
    for k, s in enumerate(chol):
        t = torch.movedim(torch.tensordot(t, s.to(t.device), dims=([k + 1], [0])), -1, k + 1)
    whitened_shape = MPOShape(shape.out_features, cols, shape.out_factors, shape.in_factors)
    mpo = decompose(t.reshape(matrix.shape[0], cols), shape=whitened_shape)
    return WhitenedMPO(mpo, shape, tuple(inverse))


def whiten_rows(matrix: torch.Tensor, row_weights: torch.Tensor, shape: MPOShape) -> WhitenedMPO:
    """Stage 1 for a weight per *row* (the word embedding: a one-hot input's ``X^T X`` is diagonal, the token counts).

    The error is ``sum_r w_r ||W_r - W'_r||^2``. The weights are fitted by an outer
    product over the output digits (:func:`~mpo_core.tensor.kronecker.nearest_outer_product`)
    and ``sqrt(w_k)`` scales tensor k's output leg: exact for ``n = 2`` planned as the SVD
    (output factors ``(rows, 1)``), where it is the row-weighted SVD; for more tensors the
    weights enter through that fit, and so through the allocation. ``row_weights`` must be
    positive (floor rows no token reached). Padded rows get the mean weight.
    """
    check_matrix(matrix)
    weights = row_weights.double()
    if weights.shape != (matrix.shape[0],):
        raise ValueError(f"{tuple(weights.shape)} row weights for a matrix of {matrix.shape[0]} rows.")
    padded_rows, cols = shape.padded_shape
    if padded_rows > weights.numel():
        weights = torch.cat([weights, weights.mean().expand(padded_rows - weights.numel())])
    vectors = nearest_outer_product(weights, shape.out_factors)
    scales = tuple(v.sqrt() for v in vectors)
    w = torch.nn.functional.pad(matrix.detach().double(), (0, 0, 0, padded_rows - matrix.shape[0]))
    t = w.reshape(*shape.out_factors, matrix.shape[1])  # (i_1..i_n, in)
    for k, scale in enumerate(scales):
        view = [1] * (shape.n + 1)
        view[k] = -1
        t = t * scale.to(t.device).reshape(view)
    whitened_shape = MPOShape(padded_rows, shape.in_features, shape.out_factors, shape.in_factors)
    mpo = decompose(t.reshape(padded_rows, matrix.shape[1]), shape=whitened_shape)
    return WhitenedMPO(mpo, shape, row_scales=scales)


def row_weighted_error(matrix: torch.Tensor, approximation: torch.Tensor, row_weights: torch.Tensor) -> float:
    """``sqrt(sum_r w_r ||W_r - W'_r||^2)`` in float64."""
    delta = matrix.double() - approximation.double().to(matrix.device)
    return float((delta.square().sum(1) * row_weights.double().to(matrix.device)).sum().clamp_min(0).sqrt())


def calibrated_truncate(matrix: torch.Tensor, second_moment: torch.Tensor | None = None, *,
                        row_weights: torch.Tensor | None = None, n: int | None = None,
                        shape: MPOShape | None = None, max_params: float | None = None,
                        compression_ratio: float | None = None, bond_dims=None, sweeps: int = 0,
                        cg_steps: int = DEFAULT_CG_STEPS, damping: float = DEFAULT_DAMPING,
                        whitened: WhitenedMPO | None = None) -> CalibratedTruncation:
    """Compress ``matrix`` for the least output error on the inputs summarised by ``second_moment``.

    Parameters
    ----------
    matrix:
        ``W`` (``out x in``).
    second_moment:
        ``Sigma = X^T X`` (``in x in``), e.g. from calibration sentences.
    row_weights:
        Instead of ``second_moment``, a positive weight per row (:func:`whiten_rows`; no ALS).
    n, shape:
        The tensorization (default 5 tensors, planned; ``n = 2`` is the SVD).
    max_params, compression_ratio, bond_dims:
        Exactly one target: a parameter budget, the Eq. (5) ratio ``max_params / (out * in)``,
        or explicit bond dims.
    sweeps, cg_steps:
        ALS refinement with the full ``Sigma`` (0 sweeps: the Kronecker stage only).
    damping:
        ``Sigma + damping * mean(diag) I`` is what is whitened and refined.
    whitened:
        Stage 1 computed before (:func:`whiten`), to try several targets cheaply.
    """
    check_matrix(matrix)
    if (second_moment is None) == (row_weights is None):
        raise ValueError("give exactly one of second_moment (inputs) or row_weights (rows).")
    if row_weights is not None and sweeps:
        raise ValueError("ALS sweeps refine for a second moment of the inputs; with row weights use sweeps=0.")
    shape = shape or (whitened.shape if whitened is not None else plan_shape(*matrix.shape, n=n))
    targets = [x is not None for x in (max_params, compression_ratio, bond_dims)]
    if sum(targets) != 1:
        raise ValueError("give exactly one of max_params, compression_ratio or bond_dims.")
    if compression_ratio is not None:
        if not compression_ratio > 0:
            raise ValueError(f"compression_ratio must be > 0, got {compression_ratio}.")
        max_params = compression_ratio * shape.num_matrix_params
    if row_weights is not None:
        whitened = whitened or whiten_rows(matrix, row_weights, shape)
        sigma = None
    else:
        sigma = check_second_moment(second_moment, matrix.shape[1])
        whitened = whitened or whiten(matrix, sigma, shape, damping)
    if bond_dims is None:
        bond_dims = optimal_bond_dims(whitened.mpo, max_params=max_params)
    cut = truncate_to(whitened.mpo, bond_dims)
    mpo = whitened.unwhitened(cut.mpo)
    refinement_errors: tuple[float, ...] = ()
    if sweeps:
        refined = refine(mpo.to(dtype=matrix.dtype), matrix, damped(sigma, damping), sweeps=sweeps, cg_steps=cg_steps)
        mpo, refinement_errors = refined.mpo, refined.errors
    approximation = mpo.to_matrix()
    if sigma is None:
        error = row_weighted_error(matrix, approximation, row_weights)
        reference = row_weighted_error(matrix, torch.zeros_like(matrix), row_weights)
    else:
        sigma = sigma.to(matrix.device)
        error = whitened_error(matrix, approximation, sigma)
        reference = float(((matrix.double() @ sigma) * matrix.double()).sum().clamp_min(0).sqrt())
    return CalibratedTruncation(
        mpo=mpo.to(dtype=matrix.dtype), error=error, reference=reference,
        plain_error=float((matrix.double() - approximation.double()).norm()),
        kronecker_bound=cut.error_bound, refinement_errors=refinement_errors,
    )


__all__ = ["CalibratedTruncation", "WhitenedMPO", "calibrated_truncate", "row_weighted_error", "whiten",
           "whiten_rows"]
