"""The central tensor's two bonds cut together: their exact error table ``tau[x][y]``.

Eq. (4) adds the squared tails of every cut bond as if their errors were
orthogonal. For the two bonds of the central tensor C (shape
``D_l x i x j x D_r``, mixed-canonical) the truncation sweep's error is known
exactly: cutting the left bond to x keeps the first x rows of C (Schmidt
basis), then cutting the right bond to y keeps the top y singular values of
those rows unfolded as ``(x i j, D_r)``::

    err^2(x, y) = tail_left(x) + tau_x(y),   tau_x(y) = sum_{m > y} mu_m(G_x),   G_x = C[:x]^T C[:x]

Since the rows' spectrum interlaces the full one, ``tau_x(y) <= tail_right(y)``:
never above Eq. (4). Used by :mod:`~mpo_core.tensor.bond_allocation`; cached on
the MPO as :attr:`~mpo_core.tensor.mpo.MPO.center_row_tails`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PAIR_GRID = 64  # left-bond values of the central pair tabulated (all of them for D_l <= 64)


def pair_grid(left_bond: int) -> list[int]:
    """The left-bond values the pair is scored at: all up to ``PAIR_GRID``, else evenly spaced ones."""
    if left_bond <= PAIR_GRID:
        return list(range(1, left_bond + 1))
    return sorted(set(np.linspace(1, left_bond, PAIR_GRID).round().astype(int).tolist()))


def _tails(gram: torch.Tensor) -> np.ndarray:
    mu = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0).numpy()
    return np.append(np.cumsum(mu[::-1])[::-1], 0.0)  # (D_r + 1,)


def row_tails(central_tensor: torch.Tensor, right_singular_values: torch.Tensor,
              xs: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """``tau[x][y]`` (y = 0..D_r) for each x in ``xs`` (default: :func:`pair_grid`).

    ``G_x = sum_{r < x} C_r^T C_r`` is built in one pass. In Schmidt basis the
    whole Gram is ``diag(lambda_right^2)`` (C's columns are orthogonal), so the
    upper half of the values is built down from it and the lower half up from
    zero: each row is touched once.
    """
    center = central_tensor.detach().double().cpu()
    rows = center.reshape(center.shape[0], -1, center.shape[-1])  # (D_l, i j, D_r)
    height, width = rows.shape[0], rows.shape[-1]
    xs = sorted(set(pair_grid(height) if xs is None else xs))
    full = torch.zeros(width, dtype=torch.float64)
    values = right_singular_values.double().cpu()[:width]
    full[: len(values)] = values ** 2
    out = {}
    gram, at = torch.zeros(width, width, dtype=torch.float64), 0
    for x in [x for x in xs if x <= height // 2]:  # up from zero rows
        block = rows[at:x].reshape(-1, width)  # (added rows x i j, D_r)
        gram, at = gram + block.T @ block, x
        out[x] = _tails(gram)
    gram, at = torch.diag(full), height
    for x in reversed([x for x in xs if x > height // 2]):  # down from all rows
        block = rows[x:at].reshape(-1, width)
        gram, at = gram - block.T @ block, x
        out[x] = _tails(gram)
    return out
