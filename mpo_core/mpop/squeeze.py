"""Dimension squeezing (MPOP Algorithm 2, lines 4-5): which bond to cut next, and cutting it.

Every candidate move lowers one bond of one MPO layer by a step. Its cost is
the error it adds, estimated from the Schmidt values of the layer's *current*
tensors (Eq. (3): ``eps = sqrt(sum_{i > d'} lambda_i^2)``). In canonical form
a single cut bond makes Eq. (4) an equality, so the estimate is the true
Frobenius error of the move. After fine-tuning the tensors are no longer
canonical, so the spectra are recomputed (:meth:`MPOModule.to_mpo`) before
each choice.

The training loop around it (fine-tune, evaluate, stop by Delta) lives in
:mod:`mpo_core.mpop.strategy`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

from ..tensor.compression import count_params
from ..layers.mpo_module import MPOModule
from ..tensor.truncation_error import local_truncation_errors

BOND_CHOICES = ("central", "all")
ERROR_KINDS = ("relative", "absolute")


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

    def cost(self, error: str = "relative") -> float:
        return self.relative_error if error == "relative" else self.estimated_error

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


def candidate_bonds(module: MPOModule, bonds: str = "central") -> tuple[int, ...]:
    """Bond indices a squeeze may cut: the central tensor's two bonds, or all of them."""
    if bonds not in BOND_CHOICES:
        raise ValueError(f"bonds must be one of {BOND_CHOICES}, got {bonds!r}.")
    last = len(module.tensors) - 2
    if bonds == "all":
        return tuple(range(last + 1))
    return tuple(k for k in (module.center - 1, module.center) if 0 <= k <= last)


def layer_moves(name: str, module: MPOModule, step_size=1, bonds: str = "central") -> list[SqueezeMove]:
    """Every one-step cut of ``module``'s candidate bonds with its estimated error (one canonicalization)."""
    mpo = module.to_mpo()
    dims = module.bond_dims
    norm = mpo.norm
    params = count_params(module.shape, dims)
    moves = []
    for k in candidate_bonds(module, bonds):
        if dims[k] <= 1:
            continue
        new = list(dims)
        new[k] = step_down(dims[k], step_size)
        error = local_truncation_errors(mpo, new)[k]
        saved = params - count_params(module.shape, new)
        moves.append(SqueezeMove(name, k, dims[k], new[k], error, error / norm if norm > 0 else 0.0, saved))
    return moves


def all_moves(modules: Mapping[str, MPOModule], step_size=1, bonds: str = "central") -> list[SqueezeMove]:
    """Candidate moves of every layer (shared layers count once: pass each module once)."""
    moves = []
    for name, module in modules.items():
        moves.extend(layer_moves(name, module, step_size, bonds))
    return moves


def best_move(moves, error: str = "relative") -> SqueezeMove | None:
    """The move that adds the least estimated error (Algorithm 2, line 4); ties go to the first name."""
    if error not in ERROR_KINDS:
        raise ValueError(f"error must be one of {ERROR_KINDS}, got {error!r}.")
    moves = list(moves)
    if not moves:
        return None
    return min(moves, key=lambda m: (m.cost(error), -m.params_saved, m.name, m.bond))


def apply_move(module: MPOModule, move: SqueezeMove):
    """Cut ``module`` as ``move`` says (Algorithm 2, line 5); returns the :class:`Truncation`."""
    dims = list(module.bond_dims)
    if dims[move.bond] != move.before:
        raise ValueError(f"{move.name}: bond {move.bond} is {dims[move.bond]}, the move expects {move.before}.")
    dims[move.bond] = move.after
    return module.truncate_(dims)
