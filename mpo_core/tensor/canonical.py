"""Bringing any chain of local tensors into mixed-canonical form with Schmidt bases.

Used after a truncation sweep and for MPOs whose tensors were changed by
fine-tuning (their spectra must be recomputed before squeezing).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .linalg import gram, top_eigh


def _positive_qr(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QR with ``diag(R) >= 0``: unique for a full-rank ``x``, whatever sign convention the library has."""
    q, r = torch.linalg.qr(x)
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs, signs[:, None] * r


def _left_orthonormalize(tensors: list[torch.Tensor], center: int) -> None:
    """QR sweep ``0 -> center``: every tensor left of the center becomes an isometry."""
    for k in range(center):
        d_prev, i, j, d = tensors[k].shape
        q, r = _positive_qr(tensors[k].reshape(d_prev * i * j, d))
        tensors[k] = q.reshape(d_prev, i, j, -1)
        nxt = tensors[k + 1]
        tensors[k + 1] = (r @ nxt.reshape(d, -1)).reshape(r.shape[0], *nxt.shape[1:])


def _right_orthonormalize(tensors: list[torch.Tensor], center: int) -> None:
    """QR sweep ``n-1 -> center``: every tensor right of the center becomes a co-isometry."""
    for k in range(len(tensors) - 1, center, -1):
        d_prev, i, j, d = tensors[k].shape
        q, r = _positive_qr(tensors[k].reshape(d_prev, i * j * d).T)
        tensors[k] = q.T.reshape(-1, i, j, d)
        prev = tensors[k - 1]
        tensors[k - 1] = (prev.reshape(-1, d_prev) @ r.T).reshape(*prev.shape[:-1], r.shape[0])


def _has_redundant_bonds(chain: list[torch.Tensor]) -> bool:
    """Whether some bond is wider than ``d_{k-1} a_k`` or ``a_{k+1} d_{k+1}``."""
    for left, right in zip(chain[:-1], chain[1:]):
        d = left.shape[-1]
        if d > left.shape[0] * left.shape[1] * left.shape[2] or d > right.shape[1] * right.shape[2] * right.shape[3]:
            return True
    return False


def _rotate_bond(tensors: list[torch.Tensor], k: int, basis: torch.Tensor) -> None:
    """Change the basis of bond k: ``T_k <- T_k V`` and ``T_{k+1} <- V^T T_{k+1}``."""
    basis = basis.to(tensors[k].dtype)
    left, right = tensors[k], tensors[k + 1]
    tensors[k] = (left.reshape(-1, left.shape[-1]) @ basis).reshape(*left.shape[:-1], -1)
    tensors[k + 1] = (basis.T @ right.reshape(right.shape[0], -1)).reshape(-1, *right.shape[1:])


def _schmidt_gauge(tensors: list[torch.Tensor], center: int) -> list[torch.Tensor]:
    """Rotate every bond of an orthonormalized chain into its Schmidt basis.

    With the left part isometric, bond k's Schmidt values are the square roots
    of the eigenvalues of the Gram matrix of everything to its right (and
    symmetrically on the right side). The Grams are propagated outwards from
    the center, so only the central tensor is touched at its full size.
    """
    n = len(tensors)
    values: list[torch.Tensor] = [None] * (n - 1)
    core = tensors[center]
    right_gram = gram(core.reshape(core.shape[0], -1), "rows")  # (d_{c-1}, d_{c-1})
    for k in range(center - 1, -1, -1):
        eigvals, basis = top_eigh(right_gram, right_gram.shape[0])
        _rotate_bond(tensors, k, basis)
        values[k] = eigvals.sqrt().cpu()
        t = tensors[k].double()  # (d_{k-1}, i, j, d_k)
        weighted = (t * eigvals.to(t.device)).reshape(t.shape[0], -1)
        right_gram = weighted @ t.reshape(t.shape[0], -1).T
    core = tensors[center]
    left_gram = gram(core.reshape(-1, core.shape[-1]), "cols")  # (d_c, d_c)
    for k in range(center, n - 1):
        eigvals, basis = top_eigh(left_gram, left_gram.shape[0])
        _rotate_bond(tensors, k, basis)
        values[k] = eigvals.sqrt().cpu()
        t = tensors[k + 1].double()  # (d_k, i, j, d_{k+1})
        weighted = (t * eigvals.to(t.device)[:, None, None, None]).reshape(-1, t.shape[-1])
        left_gram = weighted.T @ t.reshape(-1, t.shape[-1])
    return values


def canonicalize(tensors: Sequence[torch.Tensor], center: int):
    """Mixed-canonical form around ``center`` with every bond in its Schmidt basis.

    Parameters
    ----------
    tensors:
        Local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]`` (not modified).
    center:
        Index of the tensor that keeps the norm.

    Returns
    -------
    (tensors, singular_values):
        New tensors representing the same matrix, and per bond the Schmidt
        values (float64, CPU, descending). Bonds wider than the rank allowed
        by their neighbours shrink (QR keeps ``min(rows, cols)`` columns).
    """
    chain = [t.detach() for t in tensors]
    if _has_redundant_bonds(chain):
        # Full sweeps both ways shrink every bond to what its neighbours can
        # carry (a QR keeps min(rows, cols) columns); the matrix is unchanged.
        _left_orthonormalize(chain, len(chain) - 1)
        _right_orthonormalize(chain, 0)
    _left_orthonormalize(chain, center)
    _right_orthonormalize(chain, center)
    values = _schmidt_gauge(chain, center)
    return tuple(chain), tuple(values)
