"""Dimension squeezing (MPOP Algorithm 2, lines 4-5): which bond to cut next, and cutting it.

Every candidate move lowers one bond of one MPO layer. Its cost is the error
it adds, estimated from the Schmidt values of the layer's *current* tensors
(Eq. (3): ``eps = sqrt(sum_{i > d'} lambda_i^2)``). In canonical form a single
cut bond makes Eq. (4) an equality, so the estimate is the true Frobenius
error of the move. After fine-tuning the tensors are no longer canonical, so
the spectra are recomputed (:meth:`MPOModule.to_mpo`) before each choice.

How far a move cuts (the step):

- ``params_to_remove=N`` (the ``"model"`` step of :class:`~mpo_core.mpop.config.MPOPConfig`):
  the smallest cut of the bond that removes at least ``N`` parameters; a bond
  that cannot remove ``N`` even at ``d' = 1`` offers no move. With ``N`` a
  fixed share of the model, a run reaches a size in a bounded number of cuts.
- otherwise ``step_size`` per bond (the ``"bond"`` step): ``d - step_size``
  (int) or ``d * (1 - step_size)`` (fraction).

Which move wins (``rank``):

- ``"per_param"``: least added *squared* error per parameter removed,
  ``eps^2 / params_saved``. Squared errors of cuts add up (Eq. (4) sums
  ``eps_k^2``), so this is the marginal price of each parameter: the greedy
  rule of a knapsack that spends the least error for the size it buys. A big
  cheap cut of the word embedding beats a tiny cut of an attention matrix
  that costs a little less in total but far more per parameter.
- ``"error"``: least added error alone (the first implementation; it keeps
  picking the smallest cuts, so a run barely shrinks).

``error="relative"`` divides ``eps`` by ``||W||_F`` so that matrices of
different scale compare; ``"absolute"`` keeps ``||W - W'||_F``; ``"data"``
measures what the cut does to the layer's *output* on calibration tokens
(:class:`DataMetric`): ``||X (W - W')^T||_F`` from ``X^T X`` for a linear layer,
the token-count-weighted row error for the word embedding (the same error
:mod:`~mpo_core.model.calibrated_compression` spends its budget by). The
Eq. (3) spectra rank the plain Frobenius error, which on MiniLM makes every cut
a cut of the word embedding: most of its rows are tokens no sentence uses.

The training loop around it (fine-tune, evaluate, stop by Delta or size)
lives in :mod:`mpo_core.mpop.strategy`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

from ..tensor.compression import count_params
from ..layers.mpo_module import MPOModule
from ..tensor.truncation import truncate_to
from ..tensor.truncation_error import local_truncation_errors

BOND_CHOICES = ("central", "all")
ERROR_KINDS = ("relative", "absolute", "data")
RANKS = ("per_param", "error")


@dataclass(frozen=True)
class SqueezeMove:
    """Lower bond ``bond`` of layer ``name`` from ``before`` to ``after``.

    ``estimated_error`` is Eq. (3) for this cut, ``||W - W'||_F``;
    ``relative_error`` divides it by ``||W||_F``; ``params_saved`` is the
    drop in the layer's parameter count.
    """

    name: str
    bond: int
    before: int
    after: int
    estimated_error: float
    relative_error: float
    params_saved: int

    def error(self, error: str = "relative") -> float:
        return self.relative_error if error == "relative" else self.estimated_error  # "data": measured so

    def cost(self, error: str = "relative", rank: str = "per_param") -> float:
        """What :func:`best_move` minimizes: the error, or the squared error per parameter saved."""
        value = self.error(error)
        if rank == "error":
            return value
        return value * value / self.params_saved if self.params_saved > 0 else math.inf

    def to_dict(self) -> dict:
        return asdict(self)


def step_down(bond: int, step_size: int | float) -> int:
    """The bond after one squeezing step: ``bond - step_size`` (int) or ``bond * (1 - step_size)`` (fraction)."""
    if isinstance(step_size, float) and step_size < 1:
        cut = max(1, math.floor(bond * step_size))
    else:
        cut = int(step_size)
    return max(1, bond - cut)


def check_step_size(step_size) -> int | float:
    """A bond step: an int >= 1, or a fraction in (0, 1) of the current bond."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise ValueError(f"step_size must be an int >= 1 or a fraction in (0, 1), got {step_size!r}.")
    if isinstance(step_size, float) and step_size.is_integer() and step_size >= 1:
        step_size = int(step_size)
    if isinstance(step_size, int) and step_size >= 1:
        return step_size
    if isinstance(step_size, float) and 0 < step_size < 1:
        return step_size
    raise ValueError(f"step_size must be an int >= 1 or a fraction in (0, 1), got {step_size!r}.")


def candidate_bonds(module: MPOModule, bonds: str = "all") -> tuple[int, ...]:
    """Bond indices a squeeze may cut: all of them, or the central tensor's two bonds."""
    if bonds not in BOND_CHOICES:
        raise ValueError(f"bonds must be one of {BOND_CHOICES}, got {bonds!r}.")
    last = len(module.tensors) - 2
    if bonds == "all":
        return tuple(range(last + 1))
    return tuple(k for k in (module.center - 1, module.center) if 0 <= k <= last)


def smallest_cut(shape, dims, bond: int, params_to_remove: int) -> int | None:
    """The largest new dim of ``bond`` whose cut removes at least ``params_to_remove`` parameters.

    ``None`` when even ``d' = 1`` removes fewer. The saving only grows as the
    bond shrinks (neighbours are clipped too, Eq. (2)), so a bisection finds it.
    """
    params = count_params(shape, dims)

    def saved(d: int) -> int:
        return params - count_params(shape, dims[:bond] + (d,) + dims[bond + 1:])

    low, high = 1, dims[bond] - 1  # the answer, if any, lies in low..high
    if high < low or saved(low) < params_to_remove:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if saved(middle) >= params_to_remove:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True, eq=False)
class DataMetric:
    """The calibration data a data-aware squeeze measures cuts on (``error="data"``).

    ``second_moments``: ``{linear layer name: X^T X}``; ``row_weights``: ``{embedding name: counts + floor}``;
    ``weights``: an optional factor per name (e.g. a measured output sensitivity) on the squared error.
    """

    second_moments: Mapping[str, "torch.Tensor"]
    row_weights: Mapping[str, "torch.Tensor"]
    weights: Mapping[str, float] | None = None

    def error(self, name: str, before, after) -> tuple[float, float]:
        """``(||X (W - W')^T||, ||X W^T||)`` of replacing matrix ``before`` by ``after`` (weighted)."""
        delta = before.double() - after.double()
        if name in self.second_moments:
            sigma = self.second_moments[name].double().to(delta.device)
            error = float(((delta @ sigma) * delta).sum().clamp_min(0).sqrt())
            reference = float(((before.double() @ sigma) * before.double()).sum().clamp_min(0).sqrt())
        elif name in self.row_weights:
            rows = self.row_weights[name].double().to(delta.device)
            error = float((delta.square().sum(1) * rows).sum().sqrt())
            reference = float((before.double().square().sum(1) * rows).sum().sqrt())
        else:
            raise ValueError(f"the calibration data has nothing for {name}; collect it for every MPO layer.")
        factor = 1.0 if self.weights is None else math.sqrt(max(float(self.weights.get(name, 1.0)), 0.0))
        return error * factor, reference


def layer_moves(name: str, module: MPOModule, step_size=1, bonds: str = "all",
                params_to_remove: int | None = None, data: DataMetric | None = None) -> list[SqueezeMove]:
    """Every candidate cut of ``module`` with its estimated error (one canonicalization).

    ``params_to_remove`` (if given) sets each bond's cut to the smallest that
    removes that many parameters; else each bond steps down by ``step_size``.
    With ``data`` each cut's error is measured on the calibration data instead
    (the cut is made on a copy and the output error computed: a few ms per cut).
    """
    mpo = module.to_mpo()
    dims = tuple(module.bond_dims)
    norm = mpo.norm
    params = count_params(module.shape, dims)
    before = mpo.to_matrix() if data is not None else None
    moves = []
    for k in candidate_bonds(module, bonds):
        if dims[k] <= 1:
            continue
        after = (step_down(dims[k], step_size) if params_to_remove is None
                 else smallest_cut(module.shape, dims, k, params_to_remove))
        if after is None:
            continue
        new = dims[:k] + (after,) + dims[k + 1:]
        saved = params - count_params(module.shape, new)
        if data is None:
            error = local_truncation_errors(mpo, new)[k]
            moves.append(SqueezeMove(name, k, dims[k], after, error, error / norm if norm > 0 else 0.0, saved))
        else:
            error, reference = data.error(name, before, truncate_to(mpo, new).mpo.to_matrix())
            moves.append(SqueezeMove(name, k, dims[k], after, error, error / reference if reference > 0 else 0.0,
                                     saved))
    return moves


def all_moves(modules: Mapping[str, MPOModule], step_size=1, bonds: str = "all",
              params_to_remove: int | None = None, data: DataMetric | None = None) -> list[SqueezeMove]:
    """Candidate moves of every layer (shared layers count once: pass each module once)."""
    moves = []
    for name, module in modules.items():
        moves.extend(layer_moves(name, module, step_size, bonds, params_to_remove, data))
    return moves


def best_move(moves, error: str = "relative", rank: str = "per_param") -> SqueezeMove | None:
    """The cheapest move by ``rank`` (Algorithm 2, line 4); ties go to the bigger saving, then the first name."""
    if error not in ERROR_KINDS:
        raise ValueError(f"error must be one of {ERROR_KINDS}, got {error!r}.")
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, got {rank!r}.")
    moves = list(moves)
    if not moves:
        return None
    return min(moves, key=lambda m: (m.cost(error, rank), -m.params_saved, m.name, m.bond))


def apply_move(module: MPOModule, move: SqueezeMove):
    """Cut ``module`` as ``move`` says (Algorithm 2, line 5); returns the :class:`Truncation`."""
    dims = list(module.bond_dims)
    if dims[move.bond] != move.before:
        raise ValueError(f"{move.name}: bond {move.bond} is {dims[move.bond]}, the move expects {move.before}.")
    dims[move.bond] = move.after
    return module.truncate_(dims)
