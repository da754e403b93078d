"""Contraction plans for ``x -> x W^T`` through an MPO chain, and the contraction that runs one.

A plan groups neighbouring local tensors and fixes a direction::

    T_0 -- T_1 -- T_2 -- T_3 -- T_4          the chain, T_k[d_{k-1}, i_k, j_k, d_k]
    [T_0 -- T_1] -- T_2 -- [T_3 -- T_4]     groups ((0, 2), (2, 3), (3, 5)): each group is merged
                                            into one tensor G[d, I_g, J_g, d'] (batch independent)

The merged chain is then applied to the input one group at a time, from the
last group to the first (``reverse=False``) or from the first to the last
(``reverse=True``, done as the same sweep on the mirrored chain). One group
holding the whole chain is the dense path: rebuild ``W``, one matmul. Every
plan gives the same numbers; they differ in cost.

One step of the sweep is one matrix product followed by one permute: the
state holds, per token, the output digits done so far ``O``, the input digits
still to do ``J_<k`` and the open bond ``d_k``, laid out so that the two
contracted indices are last::

    state (O, b J_<k, j_k d_k) @ G_k (j_k d_k, i_k d_{k-1})  ->  (O, b J_<k-1, j_{k-1}, i_k, d_{k-1})
    permute i_k to the front                                   ->  (i_k O, b J_<k-1, j_{k-1} d_{k-1})

Tokens go through in chunks whose largest state fits a cache-sized workspace
(:data:`CHUNK_ELEMENTS`): the products then run at a good share of the dense
matmul's throughput even when their inner dimension ``j_k d_k`` is small, and
the permutes stay in cache. Step shapes (:func:`plan_steps`) let a caller
cost a plan; :func:`plan_flops` counts its multiply-adds.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .shape import MPOShape

Tensors = Sequence[torch.Tensor]
# Largest state (elements) of one chunk of tokens: 512 KiB in float32, measured best on this project's CPU
# (2^15..2^20 tried on a 4096x4096 n = 3 chain: 2^17-2^18 ran 1.5-1.7x faster than 2^15 or 2^20).
CHUNK_ELEMENTS = 1 << 17


@dataclass(frozen=True)
class ChainPlan:
    """Which neighbouring tensors are merged, and the direction of the sweep.

    Attributes
    ----------
    groups:
        ``(start, stop)`` ranges covering ``0..n`` in order; a group's tensors are merged first.
    reverse:
        ``False``: the sweep starts at the last group (the input's last digits); ``True``: at the first.
    """

    groups: tuple[tuple[int, int], ...]
    reverse: bool = False

    def __post_init__(self):
        groups = tuple((int(a), int(b)) for a, b in self.groups)
        if not groups or groups[0][0] != 0 or any(a >= b for a, b in groups) or any(
                b != a2 for (_, b), (a2, _) in zip(groups, groups[1:])):
            raise ValueError(f"groups must be consecutive non-empty ranges from 0, got {self.groups}.")
        object.__setattr__(self, "groups", groups)
        if len(groups) == 1:
            object.__setattr__(self, "reverse", False)  # one group: the direction means nothing

    @property
    def n(self) -> int:
        """Number of local tensors the plan covers."""
        return self.groups[-1][1]

    @property
    def is_dense(self) -> bool:
        """The whole chain merged: rebuild the matrix, one matmul."""
        return len(self.groups) == 1

    @classmethod
    def chain(cls, n: int, reverse: bool = False) -> "ChainPlan":
        """No merging: one step per local tensor."""
        return cls(tuple((k, k + 1) for k in range(n)), reverse)

    @classmethod
    def dense(cls, n: int) -> "ChainPlan":
        """Everything merged: the rebuilt matrix."""
        return cls(((0, n),))

    def __str__(self) -> str:
        if self.is_dense:
            return "dense"
        body = "|".join(",".join(str(k) for k in range(a, b)) for a, b in self.groups)
        return ("<-" if self.reverse else "->") + body


def all_plans(n: int) -> list[ChainPlan]:
    """Every grouping of ``n`` tensors into neighbouring groups, in both directions (dense once)."""
    plans = []
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0, *(k + 1 for k, cut in enumerate(cuts) if cut), n]
        groups = tuple(zip(bounds[:-1], bounds[1:]))
        plans.extend(dict.fromkeys(ChainPlan(groups, reverse) for reverse in (False, True)))
    return plans


@dataclass(frozen=True)
class GroupedShape:
    """The chain as the plan's sweep sees it: merged factors and bonds, mirrored when ``reverse``."""

    out_factors: tuple[int, ...]
    in_factors: tuple[int, ...]
    bonds: tuple[int, ...]  # (1, d_1, ..., d_{m-1}, 1) between the m merged tensors

    @property
    def m(self) -> int:
        return len(self.out_factors)


def grouped_shape(shape: MPOShape, bond_dims: Sequence[int], plan: ChainPlan) -> GroupedShape:
    """Merged factors of each group and the bonds between groups, in sweep order."""
    d = (1, *bond_dims, 1)
    out_f = tuple(math.prod(shape.out_factors[a:b]) for a, b in plan.groups)
    in_f = tuple(math.prod(shape.in_factors[a:b]) for a, b in plan.groups)
    bonds = tuple(d[a] for a, _ in plan.groups) + (1,)
    if plan.reverse:
        out_f, in_f, bonds = out_f[::-1], in_f[::-1], bonds[::-1]
    return GroupedShape(out_f, in_f, bonds)


@dataclass(frozen=True)
class Step:
    """One product of the sweep, per token: ``rows`` x ``inner`` times ``inner`` x ``cols``."""

    rows: int  # rows of the state per token: O * J_<k
    inner: int  # j_k d_k
    cols: int  # i_k d_{k-1}
    permuted: bool  # whether the product is followed by a permute of its output

    def flops(self, tokens: int) -> int:
        return 2 * tokens * self.rows * self.inner * self.cols


def plan_steps(shape: MPOShape, bond_dims: Sequence[int], plan: ChainPlan) -> list[Step]:
    """The sweep's products, per token, in the order they run (see the module docstring)."""
    return _steps(grouped_shape(shape, bond_dims, plan))


def merge_flops(shape: MPOShape, bond_dims: Sequence[int], plan: ChainPlan) -> int:
    """Multiply-adds (x2) to merge the plan's groups (batch independent; 0 without merging)."""
    d, a = (1, *bond_dims, 1), shape.local_dims
    flops = 0
    for start, stop in plan.groups:
        size = d[start] * a[start]  # rows of the merged part so far, without its right bond
        for k in range(start + 1, stop):
            flops += 2 * size * d[k] * a[k] * d[k + 1]
            size *= a[k]
    return flops


def plan_flops(batch: int, shape: MPOShape, bond_dims: Sequence[int], plan: ChainPlan) -> int:
    """Multiply-adds (x2) of the sweep for ``batch`` tokens (merging not included)."""
    return sum(step.flops(batch) for step in plan_steps(shape, bond_dims, plan))


def peak_state(shape: MPOShape, bond_dims: Sequence[int], plan: ChainPlan) -> int:
    """Largest state of the sweep per token (elements), the padded input included."""
    return max(shape.padded_shape[1], *(step.rows * step.cols for step in plan_steps(shape, bond_dims, plan)))


# --------------------------------------------------------------------------- merging


def merge_group(tensors: Tensors) -> torch.Tensor:
    """Neighbouring local tensors as one: ``(d, i_a..i_b, j_a..j_b, d')`` (C order within each side)."""
    merged = tensors[0]
    for t in tensors[1:]:
        d, i, j, e = merged.shape
        _, i2, j2, e2 = t.shape
        merged = (merged.reshape(d * i * j, e) @ t.reshape(e, i2 * j2 * e2)).reshape(d, i, j, i2, j2, e2)
        merged = merged.permute(0, 1, 3, 2, 4, 5).reshape(d, i * i2, j * j2, e2)  # (d, I i2, J j2, e2)
    return merged


def merge_plan(tensors: Tensors, plan: ChainPlan) -> list[torch.Tensor]:
    """The plan's merged tensors, in chain order (differentiable)."""
    if plan.n != len(tensors):
        raise ValueError(f"plan covers {plan.n} tensors, the chain has {len(tensors)}.")
    return [merge_group(tensors[a:b]) for a, b in plan.groups]


def step_matrices(merged: Tensors, reverse: bool) -> list[torch.Tensor]:
    """Each merged tensor as the sweep's right factor ``(j d_right, i d_left)``, in sweep order.

    ``reverse`` mirrors the chain (each tensor's two bonds swap), so one sweep serves both directions.
    """
    if reverse:
        merged = [t.permute(3, 1, 2, 0) for t in reversed(merged)]
    return [t.permute(2, 3, 1, 0).reshape(t.shape[2] * t.shape[3], t.shape[1] * t.shape[0]) for t in merged]


# --------------------------------------------------------------------------- the sweep


def _digits_reversed(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """``(B, prod factors)`` with its mixed-radix digits in reverse order (a mirrored chain's layout)."""
    if len(factors) == 1:
        return x
    m = len(factors)
    return x.reshape(x.shape[0], *factors).permute(0, *range(m, 0, -1)).reshape(x.shape[0], math.prod(factors))


def _sweep(x: torch.Tensor, matrices: Sequence[torch.Tensor], g: GroupedShape, out: torch.Tensor | None):
    """Push ``x`` (b, J) through the step matrices: ``(b, I)`` (written into ``out`` when given)."""
    b, m = x.shape[0], g.m
    state, done = x.reshape(-1, g.in_factors[-1]), 1  # (O = 1, b J_<m-1, j_{m-1} d_{m-1} = j_{m-1})
    for k in range(m - 1, -1, -1):
        z = state @ matrices[k]  # (O, b J_<k, i_k d_{k-1})
        if k == 0:
            break
        rest = b * math.prod(g.in_factors[:k - 1])  # sizes spelled out: b may be 0 (an empty batch)
        z = z.view(done, rest, g.in_factors[k - 1], g.out_factors[k], g.bonds[k])  # (O, b J_<k-1, j_{k-1}, i_k, d)
        state = z.permute(3, 0, 1, 2, 4).reshape(-1, g.in_factors[k - 1] * g.bonds[k])  # (i_k O, ..., j d)
        done *= g.out_factors[k]
    z = z.view(done, b, g.out_factors[0])  # (I_>0, b, i_0)
    if out is None:
        return z.permute(1, 2, 0).reshape(b, g.out_factors[0] * done)  # (b, i_0 I_>0)
    out.view(b, g.out_factors[0], done).copy_(z.permute(1, 2, 0))
    return out


def sweep_matmul(x: torch.Tensor, merged: Tensors, shape: MPOShape, plan: ChainPlan,
                 chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``x @ W^T`` through merged tensors (:func:`merge_plan`) following ``plan``.

    Parameters
    ----------
    x:
        ``(..., in_features)``.
    merged:
        The plan's merged tensors in chain order.
    shape:
        The MPO's tensorization (padding handled here).
    plan:
        The grouping and direction ``merged`` was made for.
    chunk_elements:
        Largest state of one chunk of tokens; tokens go through in chunks of that size.

    Returns
    -------
    torch.Tensor
        ``(..., out_features)``.
    """
    lead, in_features = x.shape[:-1], x.shape[-1]
    if in_features != shape.in_features:
        raise ValueError(f"expected input with last dim {shape.in_features}, got {tuple(x.shape)}.")
    g = GroupedShape(tuple(t.shape[1] for t in merged), tuple(t.shape[2] for t in merged),
                     (1, *(t.shape[-1] for t in merged[:-1]), 1))
    if len(merged) != len(plan.groups) or (math.prod(g.out_factors), math.prod(g.in_factors)) != shape.padded_shape:
        raise ValueError(f"merged tensors {[tuple(t.shape) for t in merged]} do not fit plan {plan} of {shape}.")
    x = x.reshape(-1, in_features)  # (B, in)
    if shape.padded_shape[1] != in_features:
        x = torch.nn.functional.pad(x, (0, shape.padded_shape[1] - in_features))  # (B, J)
    if plan.is_dense:
        y = x @ merged[0].reshape(shape.padded_shape).T  # (B, I): the rebuilt matrix, one matmul
    else:
        if plan.reverse:
            x = _digits_reversed(x, g.in_factors)
            g = GroupedShape(g.out_factors[::-1], g.in_factors[::-1], g.bonds[::-1])
        y = _chunked(x, step_matrices(merged, plan.reverse), g, chunk_elements)
        if plan.reverse:
            y = _digits_reversed(y, g.out_factors)
    return y[:, : shape.out_features].reshape(*lead, shape.out_features)


def _steps(g: GroupedShape) -> list[Step]:
    """The sweep's products for a grouped shape in sweep order (see :func:`plan_steps`)."""
    return [Step(math.prod(g.in_factors[:k]) * math.prod(g.out_factors[k + 1:]), g.in_factors[k] * g.bonds[k + 1],
                 g.out_factors[k] * g.bonds[k], k > 0) for k in range(g.m - 1, -1, -1)]


def _chunked(x: torch.Tensor, matrices: Sequence[torch.Tensor], g: GroupedShape, chunk_elements: int):
    """:func:`_sweep` over chunks of tokens whose largest state is at most ``chunk_elements``."""
    batch = x.shape[0]
    per_token = max(x.shape[1], *(s.rows * s.cols for s in _steps(g)))
    chunk = max(1, chunk_elements // per_token)
    if chunk >= batch:
        return _sweep(x, matrices, g, None)
    if torch.is_grad_enabled() and (x.requires_grad or any(m.requires_grad for m in matrices)):
        return torch.cat([_sweep(x[s:s + chunk], matrices, g, None) for s in range(0, batch, chunk)])
    y = x.new_empty(batch, math.prod(g.out_factors))
    for s in range(0, batch, chunk):
        _sweep(x[s:s + chunk], matrices, g, y[s:s + chunk])
    return y


def plan_matmul(x: torch.Tensor, tensors: Tensors, shape: MPOShape, plan: ChainPlan,
                chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``x @ W^T`` following ``plan``: merge its groups, then sweep (see :func:`sweep_matmul`)."""
    return sweep_matmul(x, merge_plan(tensors, plan), shape, plan, chunk_elements)


__all__ = ["CHUNK_ELEMENTS", "ChainPlan", "GroupedShape", "Step", "all_plans", "grouped_shape", "merge_flops",
           "merge_group", "merge_plan", "peak_state", "plan_flops", "plan_matmul", "plan_steps", "step_matrices",
           "sweep_matmul"]
