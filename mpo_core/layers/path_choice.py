"""Which contraction plan an MPO layer runs: flops first, timed micro-runs where flops cannot tell.

Every :class:`~mpo_core.tensor.chain_plan.ChainPlan` gives the same ``x W^T``;
their costs differ with the shapes, the bonds, the number of tokens, whether
gradients flow and whether merged tensors are kept between calls. Flops alone
choose wrongly: the dense matmul runs at the machine's peak, a sweep of small
products at 30-80% of it, and a product with a small inner dimension lower
still. So the choice is calibrated on the machine it runs on:

1. every plan is costed in flops (the sweep, plus merging unless the merged
   tensors are kept), and plans within :data:`AMBIGUOUS` x the cheapest are
   candidates;
2. one candidate, or a problem too small to time (:data:`TIMING_MIN_FLOPS`):
   the cheapest by flops is taken;
3. otherwise each candidate is timed on random input of the real size, in the
   real mode (forward only, or forward + backward with the layer's trainable
   tensors), and the fastest wins.

Choices are cached per process, keyed by device, dtype, shape, bonds, the
token count rounded to a power of two, and the mode; a layer whose bonds
change (dimension squeezing) gets a new choice. ``MPO_PATH_CHOICE=flops``
turns timing off (deterministic choices, e.g. to compare runs bit for bit).

The random input of the timed runs comes from a generator of its own
(:data:`TIMING_SEED`), never from torch's global one: a choice made in the
middle of training (a resumed run meets its shapes again) must not shift the
random stream the training step draws from (dropout), or a resumed run would
not reproduce an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..tensor.chain_plan import ChainPlan, all_plans, merge_flops, merge_plan, plan_flops, plan_matmul, sweep_matmul
from ..tensor.contraction import contract_to_matrix, reconstruction_flops
from ..tensor.shape import MPOShape

AMBIGUOUS = 3.0  # plans within this factor of the cheapest by flops are timed
MAX_TIMED = 4  # at most this many candidates are timed
TIMING_MIN_FLOPS = 2e7  # below this a call takes well under a millisecond: timing would measure overheads
REPEATS = 5  # timed rounds after one warm-up round; each candidate's fastest counts
SWEEP_EFFICIENCY = 0.5  # share of the dense matmul's throughput a sweep reaches, for the flop ranking only
TIMING_SEED = 0  # seed of the timing input's own generator (the global RNG is the training's)


@dataclass(frozen=True)
class PathKey:
    """What a choice depends on."""

    device: str
    dtype: torch.dtype
    shape: MPOShape
    bond_dims: tuple[int, ...]
    center: int
    token_bucket: int  # tokens rounded to a power of two
    training: bool  # forward + backward, the trainable tensors as given
    trainable: tuple[bool, ...]
    merged_kept: bool  # merged tensors kept between calls (inference with a cache): merging costs nothing


@dataclass(frozen=True)
class PathChoice:
    """A plan and how it was chosen (``"flops"`` or ``"timed"``, with the seconds per candidate)."""

    plan: ChainPlan
    how: str
    seconds: tuple[tuple[str, float], ...] = ()


_CHOICES: dict[PathKey, PathChoice] = {}


def clear_choices() -> None:
    """Forget every cached choice (e.g. after the machine's load changed)."""
    _CHOICES.clear()


def cached_choices() -> dict[PathKey, PathChoice]:
    """The choices made so far in this process."""
    return dict(_CHOICES)


def token_bucket(tokens: int) -> int:
    """``tokens`` rounded to the nearest power of two (at least 1)."""
    return 1 << max(0, round(math.log2(max(tokens, 1))))


def plan_cost_flops(shape: MPOShape, bond_dims: Sequence[int], center: int, plan: ChainPlan, tokens: int,
                    merged_kept: bool) -> float:
    """Flops of a plan, a sweep counted at :data:`SWEEP_EFFICIENCY` of the dense matmul's rate."""
    sweep = plan_flops(tokens, shape, bond_dims, plan)
    if merged_kept:
        merge = 0
    elif plan.is_dense:  # the layer rebuilds the matrix from the central tensor outwards
        merge = reconstruction_flops(shape, bond_dims, center)
    else:
        merge = merge_flops(shape, bond_dims, plan)
    return (sweep if plan.is_dense else sweep / SWEEP_EFFICIENCY) + merge


def candidates(shape: MPOShape, bond_dims: Sequence[int], center: int, tokens: int,
               merged_kept: bool) -> list[ChainPlan]:
    """Plans within :data:`AMBIGUOUS` x the cheapest by flops, cheapest first (at most :data:`MAX_TIMED`)."""
    costs = sorted((plan_cost_flops(shape, bond_dims, center, p, tokens, merged_kept), i, p)
                   for i, p in enumerate(all_plans(shape.n)))
    best = costs[0][0]
    return [p for cost, _, p in costs if cost <= AMBIGUOUS * best][:MAX_TIMED]


def choose_plan(tensors: Sequence[torch.Tensor], shape: MPOShape, center: int, tokens: int, training: bool,
                merged_kept: bool) -> PathChoice:
    """The plan to run ``tokens`` rows through the MPO ``tensors`` (cached; see the module docstring)."""
    like = tensors[0]
    bond_dims = tuple(t.shape[-1] for t in tensors[:-1])
    key = PathKey(str(like.device), like.dtype, shape, bond_dims, center, token_bucket(tokens), training,
                  tuple(t.requires_grad for t in tensors), merged_kept)
    choice = _CHOICES.get(key)
    if choice is None:
        choice = _CHOICES[key] = _choose(tensors, shape, center, key, tokens)
    return choice


def _choose(tensors, shape: MPOShape, center: int, key: PathKey, tokens: int) -> PathChoice:
    plans = candidates(shape, key.bond_dims, center, tokens, key.merged_kept)
    dense_flops = 2 * tokens * shape.out_features * shape.in_features
    if len(plans) == 1 or dense_flops < TIMING_MIN_FLOPS or os.environ.get("MPO_PATH_CHOICE") == "flops":
        return PathChoice(plans[0], "flops")
    times = _time_plans(tensors, shape, center, plans, tokens, key)
    best = min(range(len(plans)), key=times.__getitem__)
    return PathChoice(plans[best], "timed", tuple((str(p), t) for p, t in zip(plans, times)))


def _time_plans(tensors, shape: MPOShape, center: int, plans, tokens: int, key: PathKey) -> list[float]:
    """Per plan, its fastest of :data:`REPEATS` runs on random input in the key's mode.

    Rounds interleave the plans (one run of each per round, after a warm-up round), so a change in the
    machine's load during the measurement reaches every candidate alike.
    """
    like = tensors[0]
    generator = torch.Generator(device=like.device).manual_seed(TIMING_SEED)
    x = torch.randn(tokens, shape.in_features, generator=generator, device=like.device, dtype=like.dtype,
                    requires_grad=key.training)  # (tokens, in)
    params = [t.detach().clone().requires_grad_(t.requires_grad and key.training) for t in tensors]
    runs = [_runner(x, params, shape, center, plan, key) for plan in plans]
    for run in runs:
        run()
    best = [math.inf] * len(runs)
    for _ in range(REPEATS):
        for i, run in enumerate(runs):
            _sync(like)
            start = time.perf_counter()
            run()
            _sync(like)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _runner(x: torch.Tensor, params, shape: MPOShape, center: int, plan: ChainPlan, key: PathKey):
    """One call of the layer's forward (and backward when training) along ``plan``, as the layer runs it."""
    if key.merged_kept:  # inference with kept merged tensors: only the sweep (or the one matmul) is paid
        with torch.no_grad():
            if plan.is_dense:
                weight = contract_to_matrix(params, shape, center)
                return torch.no_grad()(lambda: x @ weight.T)
            merged = merge_plan(params, plan)
        return torch.no_grad()(lambda: sweep_matmul(x, merged, shape, plan))

    def run():
        with torch.set_grad_enabled(key.training):
            if plan.is_dense:
                y = x @ contract_to_matrix(params, shape, center).T
            else:
                y = plan_matmul(x, params, shape, plan)
            if key.training:
                y.backward(torch.ones_like(y))
    return run


def _sync(like: torch.Tensor) -> None:
    if like.device.type == "cuda":
        torch.cuda.synchronize(like.device)


__all__ = ["AMBIGUOUS", "MAX_TIMED", "PathChoice", "PathKey", "TIMING_MIN_FLOPS", "cached_choices", "candidates",
           "choose_plan", "clear_choices", "plan_cost_flops", "token_bucket"]
