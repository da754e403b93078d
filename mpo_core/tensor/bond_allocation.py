"""Bond allocation: the bond dims with the least Eq. (4) bound for a parameter budget, over all bonds jointly.

The problem is a chain. With local dims ``a_k = i_k j_k`` (tensors ``k = 0..n-1``)
and bonds ``D_0 = 1, D_1 .. D_{n-1}, D_n = 1``::

    error(D)  = sum_{k=1}^{n-1} tail_k(D_k),   tail_k(d) = sum_{i > d} lambda_{k,i}^2     (Eq. (4), squared)
    params(D) = sum_{k=0}^{n-1} D_k a_k D_{k+1}                                           (Eq. (5), numerator)

over *consistent* dims: ``1 <= D_k <= d_k`` and every bond at most what its
neighbours can carry (``D_{k+1} <= D_k a_k`` and ``D_k <= a_k D_{k+1}``). That
loses nothing: a wider bond holds only zeros after truncation
(:func:`~mpo_core.tensor.compression.clip_bond_dims`), so its parameters are
those of the consistent dims and the honest bound is theirs.

The error is a sum over bonds and the parameter count a sum over neighbouring
pairs, so an exact solution is a dynamic program along the chain whose state
is the current bond's value and whose value is the *Pareto front* of
(parameters so far, error so far): a pair is kept unless another with no more
parameters has no more error. Points that cannot meet the target even with
every later bond at 1 (budget), or whose error already exceeds it (error
target), are dropped on the way. The front at the last bond answers both
questions exactly:

* :func:`bound_optimal_bond_dims` with ``max_params``: least Eq. (4) bound within the budget;
* with ``max_sq_error``: fewest parameters whose bound stays within it.

Eq. (4) over-counts where the two bonds of the central tensor are both cut
(their errors overlap), so for a budget :func:`optimal_bond_dims` then
re-chooses that pair for its exact sequential error
(:mod:`~mpo_core.tensor.center_pair`) and keeps whichever certifies the lower
bound. The greedy it replaces (lower the bond whose next value costs least
per saved parameter) is kept as :func:`greedy_bond_dims` for comparison; it
is Eq. (4)-optimal on the word embedding at ratio 0.2, (18, 90, 448, 14), but
runs bond 2 to its maximum, true error 0.857 where the refined pair reaches 0.837.

Cost on one CPU thread (30522 x 384 word embedding, n = 5, full bonds
18, 504, 448, 14): the DP 0.1-0.3 s, the pair table once per MPO ~0.9 s; an
attention or FFN matrix ~25 ms in all.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .center_pair import row_tails
from .compression import count_params
from .mpo import MPO

ALLOCATORS = ("optimal", "greedy")


class _Front:
    """Pareto points of one DP stage: parameters, error, this bond's value, back-pointer."""

    def __init__(self, params, error, value, back):
        self.params, self.error, self.value, self.back = params, error, value, back


def _pareto(params: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both parameters and error."""
    order = np.lexsort((error, params))
    best_before = np.minimum.accumulate(error[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = error[order][1:] < best_before[:-1]
    return order[keep]


def _fronts(a: Sequence[int], tails: list[np.ndarray], limits: Sequence[int],
            max_params: float, max_sq_error: float) -> list[_Front]:
    """Forward pass: the Pareto front per stage (stage m holds bonds 1..m+1 chosen)."""
    n = len(a)
    rest_min = [sum(a[k] for k in range(m, n)) for m in range(n + 1)]  # params of tensors m.. with D = 1
    values = np.arange(1, limits[0] + 1)
    params = values * a[0] * 1.0  # tensor 0: 1 x a_0 x D_1
    error = tails[0][values]
    keep = (params + values * a[1] + rest_min[2] <= max_params) & (error <= max_sq_error)
    keep &= values <= a[0]
    fronts = [_Front(params[keep], error[keep], values[keep], np.full(int(keep.sum()), -1))]
    for m in range(1, n - 1):  # choose D_{m+1} given D_m (tensor m: D_m x a_m x D_{m+1})
        prev = fronts[-1]
        parts = []
        for x in range(1, limits[m] + 1):
            ok = (x <= prev.value * a[m]) & (prev.value <= a[m] * x)
            idx = np.nonzero(ok)[0]
            if not len(idx):
                continue
            p = prev.params[idx] + prev.value[idx] * a[m] * x
            e = prev.error[idx] + tails[m][x]
            feasible = (p + x * a[m + 1] + rest_min[m + 2] <= max_params) & (e <= max_sq_error)
            idx, p, e = idx[feasible], p[feasible], e[feasible]
            if not len(idx):
                continue
            best = _pareto(p, e)
            parts.append((p[best], e[best], np.full(len(best), x), idx[best]))
        if not parts:
            return fronts + [_Front(np.empty(0), np.empty(0), np.empty(0, dtype=int), np.empty(0, dtype=int))]
        fronts.append(_Front(*(np.concatenate(col) for col in zip(*parts))))
    return fronts


def _backtrack(fronts: list[_Front], point: int) -> tuple[int, ...]:
    dims = []
    for front in reversed(fronts):
        dims.append(int(front.value[point]))
        point = int(front.back[point])
    return tuple(reversed(dims))


def bound_optimal_bond_dims(mpo: MPO, *, max_params: float | None = None,
                            max_sq_error: float | None = None) -> tuple[int, ...]:
    """The exact minimizer of the Eq. (4) bound (module docstring): give exactly one target.

    Parameters
    ----------
    mpo:
        A canonical MPO; its current bond dims are the upper limits.
    max_params:
        Parameter budget (Eq. (5) numerator): the dims with the least Eq. (4)
        bound among those within it (all ones if none is).
    max_sq_error:
        Largest allowed squared Eq. (4) bound: the dims with the fewest
        parameters among those within it.

    Returns
    -------
    tuple of int
        Consistent bond dims ``D_1..D_{n-1}``.
    """
    if (max_params is None) == (max_sq_error is None):
        raise ValueError("give exactly one of max_params or max_sq_error.")
    shape, limits = mpo.shape, list(mpo.bond_dims)
    if max_params is not None and count_params(shape, limits) <= max_params:
        return tuple(mpo.bond_dims)
    a = shape.local_dims
    tails = list(mpo.tail_energies)  # tail[k][d], d = 0..D_k
    fronts = _fronts(a, tails, limits, math.inf if max_params is None else max_params,
                     math.inf if max_sq_error is None else max_sq_error * (1 + 1e-12))
    last = fronts[-1]
    if len(fronts) < len(limits) or not len(last.params):
        return (1,) * len(limits)
    total = np.where(last.value <= a[-1], last.params + last.value * a[-1], np.inf)  # tensor n-1: D x a x 1
    if max_params is not None:
        ok = np.nonzero(total <= max_params)[0]
        pick = ok[np.lexsort((total[ok], last.error[ok]))[0]] if len(ok) else None
    else:
        ok = np.nonzero(last.error <= max_sq_error * (1 + 1e-12))[0]
        pick = ok[np.lexsort((last.error[ok], total[ok]))[0]] if len(ok) else None
    return (1,) * len(limits) if pick is None else _backtrack(fronts, int(pick))


def greedy_bond_dims(mpo: MPO, done: Callable[[int, float, float], bool]) -> tuple[int, ...]:
    """The previous allocator: lower bonds one step at a time, cheapest squared error per saved parameter first.

    ``done(params, added_sq_error, next_cost)`` is asked before each step with
    the current parameter count, the squared error added so far (Eq. (4)) and
    the squared error the next step would add; the greedy stops when it says so
    or when every bond is 1. Kept for comparison (``allocator="greedy"``).
    """
    shape = mpo.shape
    dims = list(mpo.bond_dims)
    energy = [(s.double() ** 2).tolist() for s in mpo.singular_values]
    params = count_params(shape, dims)
    added = 0.0
    while True:
        best = None
        for k, d in enumerate(dims):
            if d <= 1:
                continue
            trial = dims.copy()
            trial[k] -= 1
            saved = params - count_params(shape, trial)
            cost = energy[k][d - 1] if d - 1 < len(energy[k]) else 0.0
            score = cost / saved if saved > 0 else float("inf")
            if best is None or score < best[0]:
                best = (score, k, saved, cost)
        if best is None or done(params, added, best[3]):
            return tuple(dims)
        _, k, saved, cost = best
        dims[k] -= 1
        params -= saved
        added += cost


# --------------------------------------------------------------------------- the central pair, exactly
#
# Eq. (4) treats the errors of the central tensor's two bonds as orthogonal;
# they overlap, and their exact sequential error is tabulated by
# :mod:`~mpo_core.tensor.center_pair`. With the bonds left of the pair uncut
# it stays a valid bound (later cuts add at most their tails) and is the true
# error when only the pair is cut. A balanced pair is then cheaper than running
# one bond to its end: on the 30522 x 384 embedding at ratio 0.2 Eq. (4)'s
# optimum (18, 90, 448, 14) has true error 0.857, the refined pair's
# (18, 169, 244, 14) 0.837.


def _pair(mpo: MPO) -> tuple[int, int] | None:
    c = mpo.center
    return (c - 1, c) if 0 < c < mpo.n - 1 else None


def sequential_bound(mpo: MPO, bond_dims: Sequence[int]) -> float:
    """Eq. (4) with the central pair's term made exact (see above): ``<=`` Eq. (4).

    A valid bound on ``||M - M'||_F`` when no bond left of the central pair is
    cut (else Eq. (4) is returned); the true error when only the pair is cut.
    """
    dims = tuple(bond_dims)
    tails = mpo.tail_energies
    eq4 = sum(float(t[min(d, len(t) - 1)]) for t, d in zip(tails, dims))
    pair = _pair(mpo)
    if pair is None or any(dims[k] < mpo.bond_dims[k] for k in range(pair[0])):
        return math.sqrt(eq4)
    left, right = pair
    x, y = dims[left], dims[right]
    tau = mpo.center_row_tails.get(x)
    if tau is None:
        tau = row_tails(mpo.central_tensor, mpo.singular_values[mpo.center], [x])[x]
    exact = eq4 - float(tails[right][y]) + float(tau[min(y, len(tau) - 1)])  # the pair: tail_l(x) + tau_x(y)
    return math.sqrt(max(exact, 0.0))


class _PairProblem:
    """The central pair's choices with every other bond fixed at ``dims``."""

    def __init__(self, mpo: MPO, dims: Sequence[int]):
        self.left, self.right = _pair(mpo)
        a, n, c = mpo.shape.local_dims, mpo.n, mpo.center
        self.a_prev, self.a_c, self.a_next = a[c - 1], a[c], a[c + 1]
        self.before = dims[self.left - 1] if self.left > 0 else 1        # bond left of the pair
        self.after = dims[self.right + 1] if self.right + 1 < n - 1 else 1  # bond right of the pair
        self.in_left, self.in_right = self.before * a[c - 1], a[c + 1] * self.after  # params per unit of x, y
        chain = [1, *dims, 1]
        self.fixed = sum(chain[k] * a[k] * chain[k + 1] for k in range(n) if k not in (c - 1, c, c + 1))
        tails = mpo.tail_energies
        self.rest = sum(float(tails[k][d]) for k, d in enumerate(dims) if k not in (self.left, self.right))
        self.tail_left = tails[self.left]
        self.limit_x = min(mpo.bond_dims[self.left], self.in_left)
        self.limit_y = min(mpo.bond_dims[self.right], self.in_right)

    def consistent(self, x: int) -> bool:
        """Tensor c-1 carries x: x <= D_before a_{c-1} and D_before <= a_{c-1} x."""
        return x <= self.limit_x and self.before <= self.a_prev * x

    def params(self, x: int, y: int) -> float:
        return self.fixed + self.in_left * x + x * self.a_c * y + y * self.in_right

    def y_range(self, x: int) -> tuple[int, int]:
        """Consistent right-bond values for left value x: x <= a_c y, y <= x a_c, after <= a_{c+1} y."""
        return max(1, -(-x // self.a_c), -(-self.after // self.a_next)), min(self.limit_y, x * self.a_c)

    def for_budget(self, x: int, tau: np.ndarray, budget: float):
        """``(squared error, y)`` of the widest y within ``budget`` (None if none fits)."""
        low, high = self.y_range(x)
        room = budget - self.fixed - self.in_left * x
        y = min(high, int(room // (x * self.a_c + self.in_right))) if room > 0 else 0
        return None if y < low else (float(self.tail_left[x]) + float(tau[y]) + self.rest, y)

    def for_error(self, x: int, tau: np.ndarray, max_sq: float):
        """``(params, y)`` of the narrowest y whose squared error is within ``max_sq`` (None if none is)."""
        low, high = self.y_range(x)
        ok = np.nonzero(float(self.tail_left[x]) + self.rest + tau[low:high + 1] <= max_sq)[0]
        return None if not len(ok) else (self.params(x, low + int(ok[0])), low + int(ok[0]))


def _refine_pair(mpo: MPO, dims: tuple[int, ...], max_params=None, max_sq_error=None) -> tuple[int, ...]:
    """Re-choose the central pair on :func:`~.center_pair.pair_grid` for its exact error, the other bonds as ``dims`` chose them.

    Kept only if it beats ``dims``' certified bound (its sequential bound when
    its left value is on the grid, else Eq. (4)).
    """
    pair = _pair(mpo)
    if pair is None or any(dims[k] < mpo.bond_dims[k] for k in range(pair[0])):
        return dims
    problem = _PairProblem(mpo, dims)
    table = mpo.center_row_tails
    if max_params is not None:
        scored = [(r[0], x, r[1]) for x, tau in table.items()
                  if problem.consistent(x) and (r := problem.for_budget(x, tau, max_params)) is not None]
        current = sequential_bound(mpo, dims) ** 2 if dims[problem.left] in table else \
            sum(float(t[d]) for t, d in zip(mpo.tail_energies, dims))
    else:
        max_sq = max_sq_error * (1 + 1e-12)
        scored = [(r[0], x, r[1]) for x, tau in table.items()
                  if problem.consistent(x) and (r := problem.for_error(x, tau, max_sq)) is not None]
        current = count_params(mpo.shape, dims)
    if not scored:
        return dims
    value, x, y = min(scored)
    if value >= current:
        return dims  # the pair as it is already does as well
    out = list(dims)
    out[problem.left], out[problem.right] = x, y
    return tuple(out)


def optimal_bond_dims(mpo: MPO, *, max_params: float | None = None, max_sq_error: float | None = None,
                      refine_center: bool = True) -> tuple[int, ...]:
    """Bond dims for a parameter budget (least error) or an error target (fewest parameters).

    First the exact minimizer of Eq. (4) (:func:`bound_optimal_bond_dims`);
    then, with ``refine_center``, the central pair is re-chosen for its exact
    sequential error (:func:`sequential_bound`) with the other bonds kept,
    and the better of the two is returned: the certified bound
    (:func:`sequential_bound`) of the result is never above the Eq. (4)
    optimum, hence never above the old greedy's bound.
    """
    dims = bound_optimal_bond_dims(mpo, max_params=max_params, max_sq_error=max_sq_error)
    if not refine_center:
        return dims
    return _refine_pair(mpo, dims, max_params=max_params, max_sq_error=max_sq_error)


def pareto_front(mpo: MPO) -> tuple[np.ndarray, np.ndarray]:
    """Every Pareto-optimal ``(parameters, squared Eq. (4) bound)`` of ``mpo``'s bond dims, by parameters.

    The last stage of the dynamic program of :func:`bound_optimal_bond_dims`
    without a target: what each parameter count can buy at best. Used to spread
    a budget over many matrices (:mod:`~mpo_core.tensor.budget_allocation`);
    the dims of a point are then :func:`bound_optimal_bond_dims` with its
    parameter count as the budget.
    """
    shape, limits = mpo.shape, list(mpo.bond_dims)
    a = shape.local_dims
    fronts = _fronts(a, list(mpo.tail_energies), limits, math.inf, math.inf)
    last = fronts[-1]
    total = np.where(last.value <= a[-1], last.params + last.value * a[-1], np.inf)
    ok = np.isfinite(total)
    params, error = total[ok], last.error[ok]
    best = _pareto(params, error)
    best = best[np.argsort(params[best], kind="stable")]
    return params[best].astype(np.int64), error[best]
