"""Algorithm 1 of MPOP: MPO decomposition of a matrix by sequential SVDs.

Two entry points:

* :func:`decompose` — the exact (full bond, Eq. (2)) decomposition in
  mixed-canonical form. The SVDs of Algorithm 1 are run from both ends
  towards the central tensor (the same SVDs, ordered so that each unfolding
  is wide), which yields the canonical form and every bond's Schmidt values
  directly (the "Normalization" step of Algorithm 1).
* :func:`sequential_svd` — Algorithm 1 verbatim, left to right, optionally
  truncating bond k to ``bond_dims[k]``. It is the reference that
  :func:`~mpo_core.tensor.truncation.truncate` reproduces without touching the matrix.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .linalg import sign_fixed, wide_svd
from .mpo import MPO
from .shape import MPOShape, plan_shape, tensorize
from .validation import check_matrix


def _resolve_shape(matrix, n, out_factors, in_factors, shape) -> MPOShape:
    rows, cols = matrix.shape
    if shape is None:
        return plan_shape(rows, cols, n=n, out_factors=out_factors, in_factors=in_factors)
    if (shape.out_features, shape.in_features) != (rows, cols):
        raise ValueError(
            f"shape is planned for {shape.out_features}x{shape.in_features} but the matrix is "
            f"{rows}x{cols}; plan a shape for this matrix."
        )
    return shape


def _split_left(rest: torch.Tensor, rows: int):
    """One left step: ``rest (rows, cols) -> U (rows, d), rest' (d, cols)``."""
    if rest.shape[0] <= rest.shape[1]:
        return wide_svd(rest)
    u, s, vh = torch.linalg.svd(rest, full_matrices=False)
    u, signs = sign_fixed(u)
    return u, s.double(), (s * signs).to(rest.dtype)[:, None] * vh


def decompose(
    matrix: torch.Tensor,
    n: int | None = None,
    out_factors: Sequence[int] | None = None,
    in_factors: Sequence[int] | None = None,
    shape: MPOShape | None = None,
) -> MPO:
    """Exact MPO decomposition (Algorithm 1, Eq. (1)-(2)) in mixed-canonical form.

    Parameters
    ----------
    matrix:
        2-D float32/float64 tensor ``(out_features, in_features)``, any device.
    n:
        Number of local tensors (default 5, or the length of explicit factors;
        ``n=2`` alone is the truncated SVD).
    out_factors, in_factors:
        Optional explicit factors (else planned by :func:`~mpo_core.tensor.shape.plan_shape`).
    shape:
        A ready :class:`~mpo_core.tensor.shape.MPOShape` (overrides ``n`` and factors).

    Returns
    -------
    MPO
        Full-bond MPO whose contraction equals ``matrix`` to rounding.
    """
    check_matrix(matrix)
    shape = _resolve_shape(matrix, n, out_factors, in_factors, shape)
    n, c = shape.n, shape.center
    dims = list(zip(shape.out_factors, shape.in_factors))
    local = shape.local_dims
    tensors: list[torch.Tensor] = [None] * n
    values: list[torch.Tensor] = [None] * (n - 1)
    rest = tensorize(matrix, shape).reshape(local[0], -1)  # (a_0, a_1 .. a_{n-1})
    d_prev = 1
    for k in range(c):  # left of the center: rest is (d_{k-1} a_k, a_{k+1}..)
        u, s, rest = _split_left(rest, rest.shape[0])
        tensors[k] = u.reshape(d_prev, *dims[k], -1)
        values[k] = s.cpu()
        d_prev = u.shape[1]
        rest = rest.reshape(d_prev * local[k + 1], -1)
    rest = rest.reshape(-1, local[-1])  # (d_{c-1} a_c .. a_{n-2}, a_{n-1})
    d_next = 1
    for k in range(n - 1, c, -1):  # right of the center, on the transposed unfolding
        u, s, rest_t = _split_left(rest.T, rest.shape[1])  # u: (a_k d_k, d_{k-1})
        tensors[k] = u.T.reshape(-1, *dims[k], d_next)
        values[k - 1] = s.cpu()
        d_next = u.shape[1]
        rest = rest_t.T.reshape(-1, local[k - 1] * d_next)
    tensors[c] = rest.reshape(d_prev, *dims[c], d_next)
    return MPO(tuple(tensors), shape, tuple(values), c)


def sequential_svd(
    matrix: torch.Tensor,
    bond_dims: Sequence[int] | None = None,
    n: int | None = None,
    out_factors: Sequence[int] | None = None,
    in_factors: Sequence[int] | None = None,
    shape: MPOShape | None = None,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Algorithm 1 verbatim: left-to-right SVDs, truncating bond k to ``bond_dims[k]``.

    Returns ``(tensors, singular_values)`` with ``tensors[0..n-2]`` left-orthonormal
    and ``tensors[n-1]`` carrying the norm; ``singular_values[k]`` are those of
    step k before truncation. Slow (full LAPACK SVDs); used as the reference
    for truncation and for teaching.
    """
    check_matrix(matrix)
    shape = _resolve_shape(matrix, n, out_factors, in_factors, shape)
    n = shape.n
    bond_dims = shape.full_bond_dims if bond_dims is None else tuple(bond_dims)
    rest = tensorize(matrix, shape).reshape(shape.local_dims[0], -1)
    tensors, values, d_prev = [], [], 1
    for k in range(n - 1):
        u, s, vh = torch.linalg.svd(rest, full_matrices=False)  # line 3
        keep = min(bond_dims[k], s.shape[0])
        tensors.append(u[:, :keep].reshape(d_prev, shape.out_factors[k], shape.in_factors[k], keep))
        values.append(s.double().cpu())
        rest = s[:keep, None] * vh[:keep]  # line 6: M := lambda V^T
        d_prev = keep
        rest = rest.reshape(d_prev * shape.local_dims[k + 1], -1)
    tensors.append(rest.reshape(d_prev, shape.out_factors[-1], shape.in_factors[-1], 1))  # line 8
    return tuple(tensors), tuple(values)
