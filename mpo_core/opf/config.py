"""``OPFConfig``: the options of ``opf`` (over-parameterized fine-tuning, Gao et al., ACL 2023)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..model.matrix_groups import ATTENTION_GROUPS, FFN_GROUPS, GROUP_TABLE
from ..tensor.validation import check_choice, check_positive_int
from ..training.method_config import MethodConfig
from .growth import check_growth

OPF_GROUPS = (*ATTENTION_GROUPS, *FFN_GROUPS)
LINEAR_GROUPS = tuple(group for group, kind, _ in GROUP_TABLE if kind == "linear")
SELECTIONS = ("static", "dynamic")


@dataclass
class OPFConfig(MethodConfig):
    """Over-parameterize the top-N Fisher-scored matrices per group while training, merge back after.

    Attributes
    ----------
    growth: Parameter factor of each chosen matrix (>= 1; met as planned by
        :func:`~mpo_core.opf.growth.plan_growth_factors`).
    selection: ``"static"`` (choose once, at step 0) or ``"dynamic"`` (choose in ``stages``).
    top_n: Matrices chosen per group in all.
    stages: Equal parts of training that each start with a selection (dynamic only; static ignores it).
    groups: Matrix groups to choose from (``nn.Linear`` groups of :mod:`mpo_core.model.matrix_groups`).
    fisher_batches: Training batches per Fisher scoring (the reference used a whole epoch).
    """

    method: ClassVar[str] = "opf"
    growth: float = 4.0
    selection: str = "static"
    top_n: int = 2
    stages: int = 2
    groups: tuple[str, ...] = OPF_GROUPS
    fisher_batches: int = 16

    def __post_init__(self):
        self.growth = check_growth(self.growth)
        check_choice("opf: selection", self.selection, SELECTIONS)
        for name in ("top_n", "stages", "fisher_batches"):
            setattr(self, name, check_positive_int(f"opf: {name}", getattr(self, name)))
        if self.selection == "dynamic" and self.stages > self.top_n:
            raise ValueError(
                f"opf: dynamic selection adds at least one matrix per group and stage, so stages={self.stages} "
                f"needs top_n >= {self.stages} (got top_n={self.top_n})."
            )
        self.groups = (self.groups,) if isinstance(self.groups, str) else self.groups
        if not isinstance(self.groups, (list, tuple)) or not all(isinstance(g, str) for g in self.groups):
            raise ValueError(f"opf: groups must be a list of matrix group names from {LINEAR_GROUPS}, "
                             f"got {self.groups!r:.120}.")
        self.groups = tuple(self.groups)
        unknown = [g for g in self.groups if g not in LINEAR_GROUPS]
        if unknown or not self.groups:
            raise ValueError(f"opf: groups must be a non-empty selection of {LINEAR_GROUPS}, got {self.groups}.")
