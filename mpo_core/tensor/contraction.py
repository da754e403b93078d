"""Contracting an MPO: back to the matrix, through an input, or for a few rows.

Pure functions on lists of local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]`` and
an :class:`~mpo_core.tensor.shape.MPOShape`. Each has a flop estimate so that the
layers can choose the cheaper path for a given batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .chain_plan import ChainPlan, merge_group, plan_flops, plan_matmul
from .shape import MPOShape

Tensors = Sequence[torch.Tensor]


def _bonds(tensors: Tensors) -> list[int]:
    return [t.shape[0] for t in tensors] + [tensors[-1].shape[-1]]


def _left_block(tensors: Tensors, stop: int) -> torch.Tensor:
    """Contract ``T_0..T_{stop-1}`` into ``(a_0 ... a_{stop-1}, d_{stop-1})``."""
    block = tensors[0].reshape(-1, tensors[0].shape[-1])  # (a_0, d_0)
    for t in tensors[1:stop]:
        d_prev, i, j, d = t.shape
        block = (block @ t.reshape(d_prev, i * j * d)).reshape(-1, d)  # (A a_k, d_k)
    return block


def _right_block(tensors: Tensors, start: int) -> torch.Tensor:
    """Contract ``T_start..T_{n-1}`` into ``(d_{start-1}, a_start ... a_{n-1})``."""
    block = tensors[-1].reshape(tensors[-1].shape[0], -1)  # (d_{n-2}, a_{n-1})
    for t in reversed(tensors[start:-1]):
        d_prev, i, j, d = t.shape
        block = (t.reshape(d_prev * i * j, d) @ block).reshape(d_prev, -1)  # (d_{k-1}, a_k A)
    return block


def contract_to_tensor(tensors: Tensors, center: int) -> torch.Tensor:
    """Contract the chain into the flat tensor ``(a_0 a_1 ... a_{n-1})``.

    The two sides are contracted towards ``center`` first, so the large final
    products have the (small) bond dimensions as inner dimension.
    """
    core = tensors[center]
    d_left, i, j, d_right = core.shape
    core = core.reshape(d_left, i * j * d_right)
    if center > 0:
        core = (_left_block(tensors, center) @ core).reshape(-1, d_right)  # (A_L a_c, d_c)
    else:
        core = core.reshape(-1, d_right)
    if center < len(tensors) - 1:
        core = core @ _right_block(tensors, center + 1)  # (A_L a_c, A_R)
    return core.reshape(-1)


def contract_to_matrix(tensors: Tensors, shape: MPOShape, center: int | None = None) -> torch.Tensor:
    """Rebuild the ``(out_features, in_features)`` matrix of an MPO (Eq. (1)).

    Each side of the central tensor is merged with its output and input
    digits kept apart (``L[I_L, J_L, d]``, ``R[d', I_R, J_R]``: small blocks),
    then two products with the central tensor give ``(I_L, J_L, i_c, j_c,
    I_R, J_R)`` and one 6-way permute orders the matrix, instead of a
    2n-way permute of interleaved digits (about 10x slower for n = 5).
    """
    center = shape.center if center is None else center
    core = tensors[center]
    d_left, i_c, j_c, d_right = core.shape
    i_l, j_l, i_r, j_r = 1, 1, 1, 1
    core = core.reshape(d_left, i_c * j_c * d_right)
    if center > 0:
        left = merge_group(tensors[:center])  # (1, I_L, J_L, d_{c-1})
        i_l, j_l = left.shape[1:3]
        core = left.reshape(i_l * j_l, d_left) @ core  # (I_L J_L, i_c j_c d_c)
    core = core.reshape(-1, d_right)
    if center < len(tensors) - 1:
        right = merge_group(tensors[center + 1:])  # (d_c, I_R, J_R, 1)
        i_r, j_r = right.shape[1:3]
        core = core @ right.reshape(d_right, i_r * j_r)  # (I_L J_L i_c j_c, I_R J_R)
    matrix = core.reshape(i_l, j_l, i_c, j_c, i_r, j_r).permute(0, 2, 4, 1, 3, 5).reshape(shape.padded_shape)
    return matrix[: shape.out_features, : shape.in_features]


def reconstruction_flops(shape: MPOShape, bond_dims: Sequence[int], center: int | None = None) -> int:
    """Multiply-add count (x2) of :func:`contract_to_matrix`."""
    center = shape.center if center is None else center
    a, d = shape.local_dims, (1, *bond_dims, 1)
    flops, left = 0, a[0]
    for k in range(1, center):
        flops += 2 * left * d[k] * a[k] * d[k + 1]
        left *= a[k]
    left = left if center > 0 else 1
    if center > 0:
        flops += 2 * left * d[center] * a[center] * d[center + 1]
    right = a[-1]
    for k in range(len(a) - 2, center, -1):
        flops += 2 * d[k] * a[k] * d[k + 1] * right
        right *= a[k]
    if center < len(a) - 1:
        flops += 2 * left * a[center] * d[center + 1] * right
    return flops


def chain_matmul(x: torch.Tensor, tensors: Tensors, shape: MPOShape) -> torch.Tensor:
    """``x @ W.T`` for ``x`` of shape ``(..., in_features)`` without building ``W``.

    The unmerged chain, swept from whichever end costs fewer flops
    (:func:`~mpo_core.tensor.chain_plan.sweep_matmul`: one product and one
    permute per local tensor, tokens in cache-sized chunks).
    """
    return plan_matmul(x, tensors, shape, cheaper_chain(shape, _bonds(tensors)[1:-1], x.numel() // x.shape[-1]))


def cheaper_chain(shape: MPOShape, bond_dims: Sequence[int], batch: int) -> ChainPlan:
    """The unmerged chain's plan from the end that costs fewer flops for ``batch`` rows."""
    plans = (ChainPlan.chain(shape.n), ChainPlan.chain(shape.n, reverse=True))
    return min(plans, key=lambda p: plan_flops(max(batch, 1), shape, bond_dims, p))


def chain_flops(batch: int, shape: MPOShape, bond_dims: Sequence[int]) -> int:
    """Multiply-add count (x2) of :func:`chain_matmul` for ``batch`` input rows.

    From the cheaper end; from the last tensor it is ``sum_k 2 B J_<=k I_>=k d_{k-1} d_k``.
    """
    return plan_flops(batch, shape, bond_dims, cheaper_chain(shape, bond_dims, batch))


#: at most this many entries of per-row central slices are gathered at once by :func:`gather_rows`
BATCHED_SLICE_LIMIT = 1 << 24


def row_digits(rows: torch.Tensor, out_factors: Sequence[int]) -> list[torch.Tensor]:
    """Mixed-radix digits ``(i_0, ..., i_{n-1})`` of row indices (C order)."""
    digits, rest = [], rows
    for f in reversed(out_factors):
        digits.append(rest % f)
        rest = torch.div(rest, f, rounding_mode="floor")
    return digits[::-1]


def _left_rows(rows_digits, tensors, shape, center, like) -> torch.Tensor:
    """Per row, the left block ``T_0..T_{c-1}`` at the row's digits: ``(R, J_<c, d_{c-1})``."""
    num = rows_digits[0].shape[0]
    if center == 0:
        return torch.ones(num, 1, 1, dtype=like.dtype, device=like.device)
    d_left = tensors[center].shape[0]
    left = _left_block(tensors, center)  # (a_0..a_{c-1}, d_{c-1})
    left = left.reshape(*[f for k in range(center) for f in (shape.out_factors[k], shape.in_factors[k])], d_left)
    order = list(range(0, 2 * center, 2)) + list(range(1, 2 * center, 2)) + [2 * center]
    left = left.permute(order).reshape(math.prod(shape.out_factors[:center]), -1, d_left)
    index = torch.zeros_like(rows_digits[0])
    for k in range(center):
        index = index * shape.out_factors[k] + rows_digits[k]
    return left[index]


def _right_rows(rows_digits, tensors, shape, center, like) -> torch.Tensor:
    """Per row, the right block ``T_{c+1}..T_{n-1}`` at the row's digits: ``(R, d_c, J_>c)``."""
    n, num = shape.n, rows_digits[0].shape[0]
    if center == n - 1:
        return torch.ones(num, 1, 1, dtype=like.dtype, device=like.device)
    d_right = tensors[center].shape[-1]
    right = _right_block(tensors, center + 1)  # (d_c, a_{c+1}..a_{n-1})
    tail = [f for k in range(center + 1, n) for f in (shape.out_factors[k], shape.in_factors[k])]
    m = len(tail) // 2
    order = [0] + [1 + 2 * k for k in range(m)] + [2 + 2 * k for k in range(m)]
    right = right.reshape(d_right, *tail).permute(order).reshape(d_right, math.prod(shape.out_factors[center + 1 :]), -1)
    index = torch.zeros_like(rows_digits[0])
    for k in range(center + 1, n):
        index = index * shape.out_factors[k] + rows_digits[k]
    return right[:, index].permute(1, 0, 2)


def _core_first_from_right(shape: MPOShape, center: int, core_shape) -> bool:
    """Whether contracting the central slice with the right rows first is cheaper (fewer flops)."""
    d_left, _, j_c, d_right = core_shape
    j_left = math.prod(shape.in_factors[:center])
    j_right = math.prod(shape.in_factors[center + 1 :])
    left_first = j_left * d_left * j_c * d_right + j_left * j_c * d_right * j_right
    right_first = d_left * j_c * d_right * j_right + j_left * d_left * j_c * j_right
    return right_first < left_first


def gather_rows(rows: torch.Tensor, tensors: Tensors, shape: MPOShape, center: int | None = None) -> torch.Tensor:
    """Rows ``W[rows]`` of the MPO matrix, shape ``(len(rows), in_features)``.

    Left and right blocks are contracted once (they are small) and picked per
    row; the central tensor's slice ``C[:, i_c]`` is applied per group of rows
    sharing ``i_c``, contracted first with whichever side has fewer columns.
    """
    center = shape.center if center is None else center
    digits = row_digits(rows, shape.out_factors)
    core = tensors[center]  # (d_{c-1}, i_c, j_c, d_c)
    d_left, _, j_c, d_right = core.shape
    num = rows.shape[0]
    if num and num * d_left * j_c * d_right <= BATCHED_SLICE_LIMIT:
        # every row's central slice at once (the usual case for a lookup: the loop below would visit up to
        # one group per row when the central tensor holds the row index, e.g. an SVD-planned embedding);
        # a side whose output digits are all 1 is the same block for every row, so it is not copied per row
        slices = core.permute(1, 0, 2, 3)[digits[center]].reshape(num, d_left, j_c * d_right)  # (R, d_{c-1}, j_c d_c)
        if math.prod(shape.out_factors[:center]) == 1:
            lc = torch.matmul(_left_rows([d[:1] for d in digits], tensors, shape, center, core)[0], slices)
        else:
            lc = torch.bmm(_left_rows(digits, tensors, shape, center, core), slices)  # (R, J_<c, j_c d_c)
        lc = lc.reshape(num, -1, d_right)  # (R, J_<c j_c, d_c)
        if math.prod(shape.out_factors[center + 1:]) == 1:
            part = lc @ _right_rows([d[:1] for d in digits], tensors, shape, center, core)[0]  # (d_c, J_>c) shared
        else:
            part = torch.bmm(lc, _right_rows(digits, tensors, shape, center, core))  # (R, J_<c j_c, J_>c)
        return part.reshape(num, -1)[:, : shape.in_features]
    left = _left_rows(digits, tensors, shape, center, core)  # (R, J_<c, d_{c-1})
    right = _right_rows(digits, tensors, shape, center, core)  # (R, d_c, J_>c)
    j_left, j_right = left.shape[1], right.shape[2]
    if num == 0:  # no rows: an empty (0, in_features), still in the graph of every tensor (zero grads)
        return (left.sum() + core.sum() + right.sum()).mul(0).expand(0, shape.in_features)
    from_right = _core_first_from_right(shape, center, core.shape)
    out = core.new_empty(rows.shape[0], j_left, j_c, j_right)
    for value in torch.unique(digits[center]).tolist():
        sel = (digits[center] == value).nonzero(as_tuple=True)[0]
        slice_ = core[:, value]  # (d_{c-1}, j_c, d_c)
        if from_right:  # C R first: (d_{c-1} j_c, d_c) @ (d_c, R' J_>c)
            r = right[sel].permute(1, 0, 2).reshape(d_right, -1)
            cr = (slice_.reshape(-1, d_right) @ r).reshape(d_left, j_c, sel.shape[0], j_right)
            cr = cr.permute(2, 0, 1, 3).reshape(sel.shape[0], d_left, j_c * j_right)
            part = torch.bmm(left[sel], cr)  # (R', J_<c, j_c J_>c)
        else:  # L C first: (R' J_<c, d_{c-1}) @ (d_{c-1}, j_c d_c), then R
            lc = left[sel].reshape(-1, d_left) @ slice_.reshape(d_left, j_c * d_right)
            part = torch.bmm(lc.reshape(sel.shape[0], -1, d_right), right[sel])  # (R', J_<c j_c, J_>c)
        out.index_put_((sel,), part.reshape(sel.shape[0], j_left, j_c, j_right))  # in place: no copy per group
    return out.reshape(rows.shape[0], j_left * j_c * j_right)[:, : shape.in_features]  # rows may be empty


def gather_rows_flops(num_rows: int, shape: MPOShape, bond_dims: Sequence[int], center: int | None = None) -> int:
    """Multiply-add count (x2) of :func:`gather_rows` for ``num_rows`` distinct rows."""
    center = shape.center if center is None else center
    d = (1, *bond_dims, 1)
    j_left = math.prod(shape.in_factors[:center])
    j_upto = j_left * shape.in_factors[center]
    j_right = math.prod(shape.in_factors[center + 1 :])
    left_first = j_left * d[center] * shape.in_factors[center] * d[center + 1] + j_upto * d[center + 1] * j_right
    right_first = (d[center] * shape.in_factors[center] * d[center + 1] * j_right
                   + j_left * d[center] * shape.in_factors[center] * j_right)
    per_row = 2 * min(left_first, right_first)
    a = shape.local_dims
    blocks = sum(2 * math.prod(a[:k]) * d[k] * a[k] * d[k + 1] for k in range(1, center))
    blocks += sum(2 * d[k] * a[k] * d[k + 1] * math.prod(a[k + 1 :]) for k in range(center + 1, shape.n - 1))
    return num_rows * per_row + blocks
