"""Entanglement entropy of each bond: Eq. (6).

``S_k = - sum_j v_j ln v_j`` with ``v_j = lambda_j^2 / sum_i lambda_i^2``: the
squared Schmidt values normalized to sum to 1, i.e. the eigenvalues of the
reduced density matrix ``rho = M M^T / ||M||_F^2`` of the unfolding at bond
k (von Neumann entropy, natural log, Calabrese & Cardy 2004). The paper's
"normalized SVD eigenvalues" are read this way; ``squared=False`` normalizes
the singular values themselves instead. ``0 <= S_k <= ln d_k``, and
``S_k = 0`` exactly when the unfolding has rank 1.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .compression import check_bond_dims
from .mpo import MPO


def entropy_of_spectrum(singular_values: torch.Tensor, squared: bool = True) -> float:
    """Eq. (6) for one bond's singular values (zeros contribute nothing)."""
    s = singular_values.double().clamp_min(0)
    weights = s * s if squared else s
    total = weights.sum()
    if total <= 0:
        return 0.0
    v = weights / total
    v = v[v > 0]
    return float((-(v * v.log()).sum()).clamp_min(0)) + 0.0  # + 0.0 turns -0.0 into 0.0


def entanglement_entropy(
    mpo: MPO, bond_dims: Sequence[int] | None = None, squared: bool = True
) -> tuple[float, ...]:
    """Eq. (6) per bond of ``mpo``.

    With ``bond_dims`` the entropy of the kept Schmidt values
    ``lambda_{k,1..d'_k}`` is returned: exact for one truncated bond, an
    estimate from the cached spectra otherwise (truncate and read the new
    MPO's spectra for exact values).
    """
    dims = mpo.bond_dims if bond_dims is None else check_bond_dims(mpo.shape, bond_dims)
    return tuple(entropy_of_spectrum(s[:d], squared) for s, d in zip(mpo.singular_values, dims))
