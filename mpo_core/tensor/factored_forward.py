"""Applying a factored weight to a batch without rebuilding it: ``x -> x @ W.T`` (MPOP Table 2).

Each form of Table 2 models the same n-way tensorization of ``W`` (see
:func:`~mpo_core.tensor.shape.tensorize`): mode ``k`` is the pair ``(i_k, j_k)`` of
local dimension ``a_k = i_k * j_k``, so every factor below can be read as
``(i_k, j_k, rank)``. The input is pushed through the factors one mode at a
time; its state holds the output digits done so far, the input digits still
to do and the open rank indices::

    form    factors                                   state after mode k            cost per token
    ------  ----------------------------------------  ----------------------------  -----------------------------
    svd     left (out, r), right (r, in)              (B, r)                        r (in + out)
    mpo     T_k[d_{k-1}, i_k, j_k, d_k]               (B J_<k, j_k, I_>k, d_k)      sum_k J_<=k I_>=k d_{k-1} d_k
    cpd     U_k[(i_k j_k), R]                         (B, I_<=k, J_>k, R)           R sum_k I_<=k J_>=k
    tucker  G[r_1..r_n], U_k[(i_k j_k), r_k]          (B, I_<=k, J_>k, r_>k)        sum_k I_<=k J_>=k r_>=k

(``I_<=k = i_1 ... i_k``, ``J_>k = j_{k+1} ... j_n``, ``r_>=k = r_k ... r_n``.)
The SVD and the MPO are linear and quadratic in their rank; CP is linear in
``R`` but carries ``R`` copies of a partly transformed input; Tucker pays the
core ``prod_k r_k`` for every token. Each function has a flop count (multiply
and add counted as 2) and, where the state can grow large, its peak size per
token, so a caller can split a batch to bound memory.

Layouts are those of TensorLy (``parafac``/``tucker`` factors ``(a_k, rank)``,
``a_k`` index ``i_k * j_k_size + j_k``, CP weights folded in) and of
:class:`~mpo_core.tensor.mpo.MPO`. Zero padding of the tensorization is handled:
the input is padded and the output cut back.

References
----------
.. [1] Liu et al., "Enabling Lightweight Fine-tuning for Pre-trained Language
   Model Compression based on Matrix Product Operators", ACL 2021, Table 2.
.. [2] Kolda and Bader, "Tensor Decompositions and Applications",
   SIAM Review 51(3), 455-500 (2009).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .chain_plan import peak_state
from .contraction import chain_flops, chain_matmul, cheaper_chain
from .shape import MPOShape

Tensors = Sequence[torch.Tensor]


def dense_flops(batch: int, out_features: int, in_features: int) -> int:
    """Multiply-add count (x2) of ``x @ W.T`` for ``batch`` rows: the reference."""
    return 2 * batch * out_features * in_features


# --------------------------------------------------------------------------- SVD


def svd_matmul(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``x @ (left @ right).T`` as two thin products.

    Parameters
    ----------
    x:
        Input ``(..., in_features)``.
    left:
        ``(out_features, r)``, e.g. ``U diag(s)``.
    right:
        ``(r, in_features)``, e.g. ``V^T``.

    Returns
    -------
    torch.Tensor
        ``(..., out_features)``.
    """
    return (x @ right.T) @ left.T  # (..., r) -> (..., out)


def svd_flops(batch: int, out_features: int, in_features: int, rank: int) -> int:
    """Multiply-add count (x2) of :func:`svd_matmul`."""
    return 2 * batch * rank * (in_features + out_features)


# --------------------------------------------------------------------------- MPO


def mpo_matmul(x: torch.Tensor, tensors: Tensors, shape: MPOShape) -> torch.Tensor:
    """``x @ W.T`` through the MPO chain ``T_k[d_{k-1}, i_k, j_k, d_k]`` (Eq. (1)).

    The contraction itself is :func:`~mpo_core.tensor.contraction.chain_matmul`
    (the one the MPO layers use); it is named here beside the other forms.
    """
    return chain_matmul(x, tensors, shape)


def mpo_flops(batch: int, shape: MPOShape, bond_dims: Sequence[int]) -> int:
    """Multiply-add count (x2) of :func:`mpo_matmul`: ``sum_k 2 B J_<=k I_>=k d_{k-1} d_k``."""
    return chain_flops(batch, shape, bond_dims)


def mpo_peak_elements(shape: MPOShape, bond_dims: Sequence[int]) -> int:
    """Largest state of :func:`mpo_matmul` per token (the padded input included)."""
    return peak_state(shape, bond_dims, cheaper_chain(shape, bond_dims, 1))


# --------------------------------------------------------------------------- shared


def _padded_input(x: torch.Tensor, shape: MPOShape) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``x`` as ``(B, J)`` with zero padding to ``J = prod j_k``, and its leading dims."""
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])  # (B, in)
    padded_in = shape.padded_shape[1]
    if padded_in != shape.in_features:
        x = torch.nn.functional.pad(x, (0, padded_in - shape.in_features))  # (B, J)
    return x, tuple(lead)


def _output(y: torch.Tensor, shape: MPOShape, lead: tuple[int, ...]) -> torch.Tensor:
    """``(B, I)`` back to ``(..., out_features)`` (padding rows cut)."""
    return y[:, : shape.out_features].reshape(*lead, shape.out_features)


def _check_factors(factors: Tensors, shape: MPOShape, name: str) -> None:
    if len(factors) != shape.n:
        raise ValueError(f"{name} needs one factor per mode (n={shape.n}), got {len(factors)}.")
    for k, (factor, a) in enumerate(zip(factors, shape.local_dims)):
        if factor.dim() != 2 or factor.shape[0] != a:
            raise ValueError(
                f"{name} factor {k} has shape {tuple(factor.shape)}; expected (a_k={a}, rank) for "
                f"local dims {shape.local_dims} (the tensorization of this shape)."
            )


def _outer_inner(shape: MPOShape, k: int) -> tuple[int, int]:
    """``(I_<k, J_>k)``: output digits done before mode k, input digits left after it."""
    return math.prod(shape.out_factors[:k]), math.prod(shape.in_factors[k + 1:])


# --------------------------------------------------------------------------- CP


def cp_matmul(x: torch.Tensor, factors: Tensors, shape: MPOShape) -> torch.Tensor:
    """``x @ W.T`` for ``W`` the CP model ``sum_r u_r^(1) o ... o u_r^(n)`` of its tensorization.

    Parameters
    ----------
    x:
        Input ``(..., in_features)``.
    factors:
        ``U_k`` of shape ``(a_k, R)`` (TensorLy's ``parafac`` factors, weights folded in).
    shape:
        The tensorization (factors ``i_k``, ``j_k``; padding).

    Returns
    -------
    torch.Tensor
        ``(..., out_features)``. Peak state per token: :func:`cp_peak_elements`.
    """
    _check_factors(factors, shape, "cp_matmul")
    x, lead = _padded_input(x, shape)
    batch, n = x.shape[0], shape.n
    state = x.reshape(batch, 1, shape.in_factors[0], -1)  # (B, I_<1 = 1, j_1, J_>1)
    for k, factor in enumerate(factors):
        u = factor.reshape(shape.out_factors[k], shape.in_factors[k], -1)  # (i_k, j_k, R)
        if k == 0:
            state = torch.einsum("bpjq,ijr->bpiqr", state, u)  # (B, I_<=1, J_>1, R)
        elif k < n - 1:
            state = torch.einsum("bpjqr,ijr->bpiqr", state, u)  # (B, I_<=k, J_>k, R)
        else:
            state = torch.einsum("bpjqr,ijr->bpiq", state, u)  # (B, I, 1): the sum over r
        if k < n - 1:
            outer, inner = math.prod(shape.out_factors[: k + 1]), math.prod(shape.in_factors[k + 2:])
            state = state.reshape(batch, outer, shape.in_factors[k + 1], inner, -1)  # (B, I_<=k, j_k+1, J_>k+1, R)
    return _output(state.reshape(batch, -1), shape, lead)


def cp_flops(batch: int, shape: MPOShape, rank: int) -> int:
    """Multiply-add count (x2) of :func:`cp_matmul`: ``2 B R sum_k I_<=k J_>=k``."""
    total = 0
    for k in range(shape.n):
        outer, inner = _outer_inner(shape, k)
        total += outer * shape.out_factors[k] * shape.in_factors[k] * inner
    return 2 * batch * rank * total


def cp_peak_elements(shape: MPOShape, rank: int) -> int:
    """Largest state of :func:`cp_matmul` per token: ``R max_k I_<=k J_>k``."""
    return rank * max(math.prod(shape.out_factors[: k + 1]) * math.prod(shape.in_factors[k + 1:])
                      for k in range(shape.n))


# --------------------------------------------------------------------------- Tucker


def tucker_matmul(x: torch.Tensor, core: torch.Tensor, factors: Tensors, shape: MPOShape) -> torch.Tensor:
    """``x @ W.T`` for ``W`` the Tucker model ``G x_1 U_1 ... x_n U_n`` of its tensorization.

    The core is merged into the first factor (``(i_1, j_1, r_2..r_n)``, batch
    independent); mode k then sums ``j_k`` and ``r_k`` at once, so the state
    holds only the ranks still open.

    Parameters
    ----------
    x:
        Input ``(..., in_features)``.
    core:
        ``G`` of shape ``(r_1, ..., r_n)``.
    factors:
        ``U_k`` of shape ``(a_k, r_k)`` (TensorLy's ``tucker`` layout).
    shape:
        The tensorization.

    Returns
    -------
    torch.Tensor
        ``(..., out_features)``. Peak state per token: :func:`tucker_peak_elements`.
    """
    _check_factors(factors, shape, "tucker_matmul")
    if tuple(core.shape) != tuple(f.shape[1] for f in factors):
        raise ValueError(f"core shape {tuple(core.shape)} does not match the factor ranks "
                         f"{tuple(f.shape[1] for f in factors)}.")
    x, lead = _padded_input(x, shape)
    batch, i, j = x.shape[0], shape.out_factors, shape.in_factors
    first = (factors[0] @ core.reshape(core.shape[0], -1)).reshape(i[0], j[0], -1)  # (i_1, j_1, r_>1)
    state = x.reshape(batch, j[0], -1)  # (B, j_1, J_>1)
    state = torch.einsum("bjq,ijs->biqs", state, first)  # (B, I_<=1, J_>1, r_>1)
    for k in range(1, shape.n):
        outer, inner = math.prod(i[:k]), math.prod(j[k + 1:])
        r_k = factors[k].shape[1]
        state = state.reshape(batch, outer, j[k], inner, r_k, -1)  # (B, I_<k, j_k, J_>k, r_k, r_>k)
        u = factors[k].reshape(i[k], j[k], r_k)  # (i_k, j_k, r_k)
        state = torch.einsum("bpjqrs,ijr->bpiqs", state, u)  # (B, I_<=k, J_>k, r_>k)
    return _output(state.reshape(batch, -1), shape, lead)


def tucker_flops(batch: int, shape: MPOShape, ranks: Sequence[int]) -> int:
    """Multiply-add count (x2) of :func:`tucker_matmul`, the core merge included."""
    total = shape.local_dims[0] * math.prod(ranks)  # G into U_1
    for k in range(shape.n):
        outer, inner = _outer_inner(shape, k)
        summed = math.prod(ranks[1:]) if k == 0 else math.prod(ranks[k:])  # r_>1 kept; then r_k summed, r_>k kept
        total += batch * outer * shape.out_factors[k] * shape.in_factors[k] * inner * summed
    return 2 * total


def tucker_peak_elements(shape: MPOShape, ranks: Sequence[int]) -> int:
    """Largest state of :func:`tucker_matmul` per token: ``max_k I_<=k J_>k r_>k``."""
    return max(math.prod(shape.out_factors[: k + 1]) * math.prod(shape.in_factors[k + 1:]) * math.prod(ranks[k + 1:])
               for k in range(shape.n))
