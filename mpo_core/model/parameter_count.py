"""Parameter accounting as in the papers' tables: #Pr (trainable) and #To (total).

Counts walk modules with ``isinstance`` (never regex on parameter names);
a module shared across layers (ALBERT) is counted once.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from torch import nn

from ..layers.mpo_module import MPOModule
from .matrix_groups import matrix_group


@dataclass
class GroupCount:
    """Parameters of one matrix group (e.g. all query matrices)."""

    total: int = 0
    trainable: int = 0
    central: int = 0  # MPO central tensors (0 for dense matrices)
    auxiliary: int = 0  # MPO auxiliary tensors
    matrices: int = 0


@dataclass
class ParameterCount:
    """Model-wide counts; ``groups`` splits the supported matrices, ``"other"`` holds the rest."""

    total: int = 0
    trainable: int = 0
    groups: dict[str, GroupCount] = field(default_factory=lambda: defaultdict(GroupCount))

    @property
    def total_millions(self) -> float:
        """#To in millions, as printed in the papers."""
        return self.total / 1e6

    @property
    def trainable_millions(self) -> float:
        """#Pr in millions."""
        return self.trainable / 1e6

    @property
    def trainable_share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def as_rows(self) -> list[dict]:
        """One dict per group, for a pandas table."""
        return [{"group": g, **vars(c)} for g, c in sorted(self.groups.items())]


def _add_module(count: ParameterCount, group: str, module: nn.Module, seen: set[int]) -> None:
    entry = count.groups[group]
    entry.matrices += 1
    for p in module.parameters(recurse=False):
        seen.add(id(p))
        entry.total += p.numel()
        entry.trainable += p.numel() if p.requires_grad else 0
    if isinstance(module, MPOModule):
        entry.central += module.central_tensor.numel()
        entry.auxiliary += sum(t.numel() for t in module.auxiliary_tensors)
        for p in module.tensors:
            seen.add(id(p))
            entry.total += p.numel()
            entry.trainable += p.numel() if p.requires_grad else 0


def count_parameters(model: nn.Module) -> ParameterCount:
    """#Pr and #To of ``model``, split per matrix group (biases go with their matrix)."""
    count, seen, modules = ParameterCount(), set(), set()
    for name, module in model.named_modules():
        group = matrix_group(name, module)
        if group is not None and id(module) not in modules:
            modules.add(id(module))
            _add_module(count, group, module, seen)
    other = count.groups["other"]
    for p in model.parameters():
        count.total += p.numel()
        count.trainable += p.numel() if p.requires_grad else 0
        if id(p) not in seen:
            other.total += p.numel()
            other.trainable += p.numel() if p.requires_grad else 0
    return count


def parameter_summary(model: nn.Module) -> dict:
    """``{"trainable_params": #Pr, "total_params": #To}`` for logs and run records."""
    count = count_parameters(model)
    return {"trainable_params": count.trainable, "total_params": count.total}
