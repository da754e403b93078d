"""Data-aware error of a compressed matrix, and the whitened SVD that minimises it.

A linear layer sees inputs ``x`` (the rows of ``X``, one per token). Replacing
``W`` (``out x in``) by ``W'`` changes its outputs by ``(W - W') x``, so the
error that matters is the *output* error on real inputs::

    L(W') = ||X (W - W')^T||_F^2 = tr((W - W') Sigma (W - W')^T),    Sigma = X^T X  (in x in)

Plain truncation minimises ``||W - W'||_F``, i.e. ``Sigma = I``. With a
whitening factor ``S`` (``S S^T = Sigma``) the error is ``||(W - W') S||_F``,
and the best rank-r ``W'`` is the truncated SVD of ``W S`` multiplied back by
``S^{-1}`` (Eckart-Young in the whitened space): the whitened SVD of SVD-LLM,
whose discarded singular values *are* the loss ("truncation-aware"). ASVD's
diagonal activation scaling (:func:`scaled_svd`) is the cheaper variant whose
discarded values bound nothing; it is kept as a baseline.

``Sigma`` is damped before it is factored, ``Sigma + delta I`` with
``delta = damping * mean(diag Sigma)``, so that directions no token visited stay
defined (their columns are then kept as plain truncation would). Errors are
always reported on the undamped ``Sigma``.

References
----------
.. [1] Wang et al., "SVD-LLM: Truncation-aware Singular Value Decomposition
   for Large Language Model Compression", ICLR 2025.
.. [2] Yuan et al., "ASVD: Activation-aware Singular Value Decomposition for
   Compressing Large Language Models", arXiv 2312.05821.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .validation import check_matrix

#: default ``delta / mean(diag Sigma)`` of the damping
DEFAULT_DAMPING = 1e-3


def check_second_moment(second_moment: torch.Tensor, in_features: int) -> torch.Tensor:
    """``Sigma`` as a float64 symmetric ``(in, in)`` tensor with a finite, non-negative diagonal."""
    if not isinstance(second_moment, torch.Tensor) or second_moment.dim() != 2:
        raise ValueError("the second moment X^T X must be a 2-D tensor (in_features x in_features).")
    if tuple(second_moment.shape) != (in_features, in_features):
        raise ValueError(f"the second moment X^T X is {tuple(second_moment.shape)} but the matrix has "
                         f"{in_features} inputs; collect it for this matrix.")
    sigma = second_moment.double()
    if not torch.isfinite(sigma).all() or (torch.diagonal(sigma) < 0).any():
        raise ValueError("the second moment X^T X has non-finite entries or a negative diagonal.")
    return (sigma + sigma.T) / 2


def damped(second_moment: torch.Tensor, damping: float = DEFAULT_DAMPING) -> torch.Tensor:
    """``Sigma + delta I`` with ``delta = damping * mean(diag Sigma)`` (identity for an all-zero ``Sigma``)."""
    if not damping >= 0:
        raise ValueError(f"damping must be >= 0, got {damping}.")
    sigma = second_moment.double()
    scale = float(torch.diagonal(sigma).mean())
    eye = torch.eye(sigma.shape[0], dtype=sigma.dtype, device=sigma.device)
    if scale <= 0:
        return eye
    return sigma + max(damping, 1e-12) * scale * eye


def whitening_factor(second_moment: torch.Tensor, damping: float = DEFAULT_DAMPING) -> torch.Tensor:
    """Lower-triangular ``S`` with ``S S^T = Sigma + delta I`` (float64)."""
    sigma = damped(second_moment, damping)
    factor, info = torch.linalg.cholesky_ex(sigma)
    if int(info) != 0:  # numerically indefinite: lift the spectrum's floor and retry once
        floor = float(torch.linalg.eigvalsh(sigma).min())
        factor = torch.linalg.cholesky(sigma + (abs(floor) + 1e-12 * float(torch.diagonal(sigma).mean())) * 2
                                       * torch.eye(sigma.shape[0], dtype=sigma.dtype, device=sigma.device))
    return factor


def whitened_error(matrix: torch.Tensor, approximation: torch.Tensor, second_moment: torch.Tensor) -> float:
    """``sqrt(tr((W - W') Sigma (W - W')^T))`` = ``||X (W - W')^T||_F``, in float64."""
    delta = matrix.double() - approximation.double().to(matrix.device)  # (out, in)
    sigma = second_moment.double().to(matrix.device)
    return float(((delta @ sigma) * delta).sum().clamp_min(0).sqrt())


@dataclass(frozen=True, eq=False)
class LowRank:
    """A rank-r approximation ``W' = left @ right`` and what it costs.

    Attributes
    ----------
    left, right:
        ``(out, r)`` and ``(r, in)`` factors, in the matrix's dtype.
    singular_values:
        All singular values of the (whitened) matrix that was truncated (float64, CPU).
    error:
        The data-aware error ``||X (W - W')^T||_F`` on the undamped ``Sigma``.
    """

    left: torch.Tensor
    right: torch.Tensor
    singular_values: torch.Tensor
    error: float

    @property
    def rank(self) -> int:
        return self.left.shape[1]

    def to_matrix(self) -> torch.Tensor:
        return self.left @ self.right


def _check_rank(rank: int, matrix: torch.Tensor) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(matrix.shape):
        raise ValueError(f"rank must be an integer in 1..{min(matrix.shape)}, got {rank!r}.")
    return rank


def whitened_svd(matrix: torch.Tensor, second_moment: torch.Tensor, rank: int,
                 damping: float = DEFAULT_DAMPING) -> LowRank:
    """The rank-r ``W'`` with the least data-aware error (the closed form of the module docstring).

    ``W S = U Lambda V^T``, ``W' = (U_r Lambda_r) (V_r^T S^{-1})``; with ``damping = 0``
    and a definite ``Sigma`` the error is exactly ``sqrt(sum_{k > r} lambda_k^2)``.
    """
    check_matrix(matrix)
    rank = _check_rank(rank, matrix)
    sigma = check_second_moment(second_moment, matrix.shape[1])
    factor = whitening_factor(sigma, damping).to(matrix.device)  # (in, in), lower
    u, s, vh = torch.linalg.svd(matrix.double() @ factor, full_matrices=False)
    left = u[:, :rank] * s[:rank]  # (out, r)
    # right = V_r^T S^{-1}: solve right @ S = V_r^T, i.e. S^T right^T = V_r
    right = torch.linalg.solve_triangular(factor.T, vh[:rank].T, upper=True).T  # (r, in)
    error = whitened_error(matrix, left @ right, sigma.to(matrix.device))
    return LowRank(left.to(matrix.dtype), right.to(matrix.dtype), s.cpu(), error)


def scaled_svd(matrix: torch.Tensor, second_moment: torch.Tensor, rank: int, alpha: float = 0.5) -> LowRank:
    """ASVD: truncate ``W diag(s)`` with ``s_j = Sigma_jj^(alpha / 2)`` (activation magnitude), then undo ``diag(s)``.

    Only the diagonal of ``Sigma`` is used (the mean squared activation per input
    channel), so the truncation is not optimal for the data-aware error; the
    error reported is still the data-aware one.
    """
    check_matrix(matrix)
    rank = _check_rank(rank, matrix)
    sigma = check_second_moment(second_moment, matrix.shape[1])
    diag = torch.diagonal(sigma).clamp_min(0)
    floor = 1e-6 * float(diag.mean()) if float(diag.mean()) > 0 else 1.0
    scale = (diag + floor) ** (alpha / 2)  # (in,)
    u, s, vh = torch.linalg.svd(matrix.double() * scale, full_matrices=False)
    left = u[:, :rank] * s[:rank]
    right = vh[:rank] / scale
    error = whitened_error(matrix, left @ right, sigma.to(matrix.device))
    return LowRank(left.to(matrix.dtype), right.to(matrix.dtype), s.cpu(), error)


__all__ = ["DEFAULT_DAMPING", "LowRank", "check_second_moment", "damped", "scaled_svd", "whitened_error",
           "whitened_svd", "whitening_factor"]
