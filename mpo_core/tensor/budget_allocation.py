"""One parameter budget spread over many matrices: a multiple-choice knapsack over their Pareto fronts.

Each matrix ``m`` offers a front of options ``(params_{m,p}, error_{m,p})``
(its bond dims, and when several structures are offered, their fronts merged:
``n = 2`` is the SVD). Choosing one option per matrix to

    minimise  sum_m error_{m, p_m}      subject to  sum_m params_{m, p_m} <= budget

is a multiple-choice knapsack. :func:`allocate_budget` solves it by dynamic
programming over the budget counted in *grains* of ``g`` parameters, each
option's cost rounded **up** to whole grains, so the answer never spends more
than the budget; with ``g = 1`` (budgets up to ``resolution`` parameters) it is
the exact optimum, otherwise the exact optimum of the rounded problem, which
can leave at most ``g`` parameters per matrix unspent (reported as ``unspent``).
Cost: ``O(matrices x grains x options)`` numpy work, well under a second for
the 36 matrices of a 6-layer encoder at the default resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .bond_allocation import _pareto

#: grains the budget is counted in (a budget of more parameters is rounded to grains of budget / resolution)
DEFAULT_RESOLUTION = 4096


@dataclass(frozen=True)
class Allocation:
    """Result of :func:`allocate_budget`.

    Attributes
    ----------
    choice:
        Per front, the index of the chosen option.
    params:
        Parameters of the chosen options, summed (never above the budget).
    error:
        Their errors, summed.
    grain:
        Parameters per grain of the dynamic program (1 = exact).
    unspent:
        ``budget - params``.
    """

    choice: tuple[int, ...]
    params: int
    error: float
    grain: int
    unspent: int


def _check_front(k: int, params, errors) -> tuple[np.ndarray, np.ndarray]:
    params = np.asarray(params, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.float64)
    if params.ndim != 1 or params.shape != errors.shape or not len(params):
        raise ValueError(f"front {k} must be two non-empty 1-D arrays of equal length (params, errors).")
    if (params < 0).any() or not np.isfinite(errors).all():
        raise ValueError(f"front {k} has negative parameter counts or non-finite errors.")
    return params, errors


def allocate_budget(fronts: Sequence[tuple[Sequence[int], Sequence[float]]], budget: float, *,
                    resolution: int = DEFAULT_RESOLUTION) -> Allocation:
    """The option per front with the least summed error whose parameters fit ``budget`` (module docstring).

    Parameters
    ----------
    fronts:
        Per matrix, ``(params, errors)``: its options (any order; dominated ones are fine).
    budget:
        Total parameters allowed.
    resolution:
        Grains of the dynamic program; the exact problem is solved when ``budget <= resolution``.

    Raises
    ------
    ValueError
        If even the cheapest option of every front does not fit the budget.
    """
    if not fronts:
        raise ValueError("no fronts to allocate a budget over.")
    checked = [_check_front(k, p, e) for k, (p, e) in enumerate(fronts)]
    cheapest = sum(int(p.min()) for p, _ in checked)
    if not budget >= cheapest:
        raise ValueError(f"a budget of {budget:,.0f} parameters is below the {cheapest:,} of the smallest option "
                         "of every matrix; allow more parameters.")
    grain = max(1, math.ceil(budget / resolution))
    grains = int(budget // grain)
    best = np.zeros(grains + 1)  # best[b]: least error so far with cost <= b grains
    picks = []
    for params, errors in checked:
        cost = -(-params // grain)  # ceil
        new = np.full(grains + 1, np.inf)
        arg = np.full(grains + 1, -1, dtype=np.int64)
        for p in _pareto(cost, errors):  # each option worth trying, cheapest first
            c = int(cost[p])
            if c > grains:
                break
            candidate = best[: grains + 1 - c] + errors[p]
            better = candidate < new[c:]
            new[c:][better] = candidate[better]
            arg[c:][better] = p
        best = new
        picks.append(arg)
    if not np.isfinite(best[grains]):
        raise ValueError(f"no choice of options fits a budget of {budget:,.0f} parameters at grain {grain}; "
                         "allow more parameters.")
    choice, b = [], grains
    for (params, _), arg in zip(reversed(checked), reversed(picks)):
        p = int(arg[b])
        choice.append(p)
        b -= int(-(-params[p] // grain))
    choice.reverse()
    used = sum(int(p[c]) for (p, _), c in zip(checked, choice))
    total = float(sum(e[c] for (_, e), c in zip(checked, choice)))
    return Allocation(tuple(choice), used, total, grain, int(budget - used))


__all__ = ["Allocation", "DEFAULT_RESOLUTION", "allocate_budget"]
