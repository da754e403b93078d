"""Which matrices OPF grows, and when: the static / dynamic selection plan.

Candidates are the plain ``nn.Linear`` matrices of the OPF groups. A run of
``T`` steps in ``s`` stages (static: ``s = 1``) grows ``k = ceil(top_n / s)``
more matrices per group at each stage, the best-scored of those still dense::

    stage      0            1              ...   s-1
    step       0            T // s               (s-1) T // s
    grows      k per group  k per group          the rest up to top_n

:class:`~mpo_core.opf.strategy.OPFStrategy` runs this plan on fresh Fisher
scores at each stage (:func:`schedule`, :func:`still_dense`, :func:`choose`);
:func:`plan_selection` runs it on one set of scores, for a preview.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from torch import nn

from ..model.matrix_groups import find_matrices, layer_index
from ..tensor.shape import full_bond_dims, tensor_sizes
from .fisher import select_top
from .growth import plan_growth_factors


def candidate_matrices(model: nn.Module, groups: Sequence[str]) -> dict[str, str]:
    """``{name: group}`` of the plain ``nn.Linear`` matrices of ``groups`` (MPO layers are not grown again)."""
    modules = dict(model.named_modules())
    return {n: g for n, g in find_matrices(model, groups).items() if type(modules[n]) is nn.Linear}


def schedule(top_n: int, num_stages: int, max_steps: int) -> list[tuple[int, int]]:
    """``(step, matrices per group)`` of each stage in a run of ``max_steps`` steps."""
    per_stage = math.ceil(top_n / num_stages)
    done = [min(top_n, k * per_stage) for k in range(num_stages + 1)]
    return [(k * max_steps // num_stages, done[k + 1] - done[k]) for k in range(num_stages)]


def still_dense(candidates: Mapping[str, str], grown: Iterable[str]) -> dict[str, str]:
    """The candidates not grown yet (``{name: group}``, in the candidates' order)."""
    grown = set(grown)
    return {name: group for name, group in candidates.items() if name not in grown}


def choose(scores: Mapping[str, float], remaining: Mapping[str, str], count: int) -> list[str]:
    """The ``count`` best-scored matrices per group among ``remaining`` (ties by name)."""
    return select_top({name: scores[name] for name in remaining}, remaining, count)


def check_top_n(groups: Mapping[str, str], top_n: int) -> None:
    """``top_n`` matrices per group must exist among ``groups`` (``{name: group}``)."""
    fewest = min(Counter(groups.values()).values())
    if top_n > fewest:
        layers = max(layer_index(name) for name in groups) + 1
        raise ValueError(f"top_n={top_n} but the scored model has only {fewest} matrices per group "
                         f"({layers} layers); choose top_n <= {fewest} or score more layers.")


def grown_params(shape: Sequence[int], growth: float) -> int:
    """Entries of the full-bond MPO OPF puts in place of an ``I x J`` matrix (:func:`plan_growth_factors`)."""
    out_factors, in_factors = plan_growth_factors(*shape, growth)
    local = tuple(i * j for i, j in zip(out_factors, in_factors))
    return sum(tensor_sizes(local, full_bond_dims(local)))


@dataclass(frozen=True)
class SelectionStage:
    """One selection: at ``step``, the matrices grown, and #To once they are."""

    stage: int
    step: int
    chosen: tuple[str, ...]
    total_params: int  # #To after this stage's growth
    estimate: bool  # dynamic stages after the first re-score at their step; a plan uses step-0 scores


def plan_selection(scores: Mapping[str, float], groups: Mapping[str, str], shapes: Mapping[str, Sequence[int]],
                   total_params: int, top_n: int, num_stages: int, growth: float,
                   max_steps: int) -> list[SelectionStage]:
    """What an opf run grows, stage by stage, ranking every stage by ``scores`` (the step-0 scores).

    ``groups`` are the candidates (``{name: group}``), ``shapes`` their
    ``(I, J)`` and ``total_params`` the dense model's #To. A static run is
    planned exactly; a dynamic run re-scores at each later stage, so those
    stages are marked ``estimate``.
    """
    check_top_n(groups, top_n)
    grown, total, stages = [], total_params, []
    for stage, (step, count) in enumerate(schedule(top_n, num_stages, max_steps)):
        chosen = choose(scores, still_dense(groups, grown), count) if count else []
        total += sum(grown_params(shapes[n], growth) - math.prod(shapes[n]) for n in chosen)
        stages.append(SelectionStage(stage, step, tuple(chosen), total, estimate=stage > 0))
        grown += chosen
    return stages
