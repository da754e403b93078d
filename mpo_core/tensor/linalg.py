"""Small linear-algebra kernels used by the decomposition and the sweeps.

Float32 inputs get their spectra from a float64 Gram matrix: faster than a
float32 SVD on the wide unfoldings of Algorithm 1, and more accurate
(singular values to about 1e-8 of the largest instead of 1e-7). Float64
inputs use LAPACK's SVD directly.

Singular and eigenvectors come with a fixed sign (:func:`sign_fixed`): the
entry of largest magnitude of each is positive. LAPACK, cuSOLVER and other
builds otherwise pick signs as they like, so the same matrix would give
differently signed local tensors on another machine; with the convention a
decomposition is reproducible up to rounding (a task adapter relies on it).
"""
from __future__ import annotations

import torch


def sign_fixed(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(vectors * signs, signs)``: each column flipped so its largest-magnitude entry is positive."""
    if vectors.numel() == 0:
        return vectors, vectors.new_ones(vectors.shape[-1])
    rows = vectors.abs().argmax(dim=0)  # (columns,)
    signs = torch.sign(vectors.gather(0, rows[None]).squeeze(0))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return vectors * signs, signs


def wide_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact SVD ``x = U @ (S Vh)`` of a matrix with ``rows <= cols``.

    Returns ``(U, s, M)`` with ``U`` square orthogonal ``(m, m)``, ``s`` the
    singular values in descending order (float64) and ``M = U.T @ x = diag(s) Vh``.
    No division by singular values happens, so ``U @ M == x`` to rounding
    even when ``x`` is rank deficient.
    """
    if x.shape[0] > x.shape[1]:
        raise ValueError(f"wide_svd needs rows <= cols, got {tuple(x.shape)}")
    if x.dtype == torch.float64:
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        u, signs = sign_fixed(u)
        return u, s, (s * signs)[:, None] * vh
    x64 = x.double()
    eigvals, eigvecs = torch.linalg.eigh(x64 @ x64.T)
    s = eigvals.flip(0).clamp_min(0).sqrt()
    u = sign_fixed(eigvecs.flip(1))[0].to(x.dtype)
    return u, s, u.T @ x


def left_singular_vectors(y: torch.Tensor, rank: int) -> torch.Tensor:
    """Top-``rank`` left singular vectors of ``y`` (any shape), computed in float64."""
    y64 = y.double()
    if y.shape[0] <= y.shape[1]:
        eigvals, eigvecs = torch.linalg.eigh(y64 @ y64.T)
        return sign_fixed(eigvecs.flip(1)[:, :rank])[0].to(y.dtype)
    u, _, _ = torch.linalg.svd(y64, full_matrices=False)
    return sign_fixed(u[:, :rank])[0].to(y.dtype)


def top_eigh(gram: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest ``rank`` eigenpairs of a symmetric PSD matrix, descending; values clamped at 0."""
    eigvals, eigvecs = torch.linalg.eigh(gram)
    return eigvals.flip(0)[:rank].clamp_min(0), sign_fixed(eigvecs.flip(1)[:, :rank])[0]


def gram(x: torch.Tensor, side: str) -> torch.Tensor:
    """Float64 Gram matrix: ``x.T @ x`` (``side='cols'``) or ``x @ x.T`` (``side='rows'``)."""
    x64 = x.double()
    return x64.T @ x64 if side == "cols" else x64 @ x64.T
