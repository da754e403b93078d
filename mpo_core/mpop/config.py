"""``MPOPConfig`` and ``MPOPDirConfig``: the options of ``mpop`` (MPOP, Algorithm 2) and its ablation ``mpop_dir``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..tensor.validation import check_choice, check_fraction, check_number, check_positive_int
from ..training.method_config import MPOMethodConfig, mpo_config_of
from .squeeze import BOND_CHOICES, ERROR_KINDS, check_step_size

STOP_ON = ("change", "drop")


@dataclass
class MPOPConfig(MPOMethodConfig):
    """MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2).

    Attributes
    ----------
    mpo_config: Which matrices become MPOs (full bonds: squeezing cuts them).
    delta: Largest allowed ``|p - p~|`` (metric units, e.g. 0.01 = 1 accuracy point).
    squeeze_steps: Step budget ``iter`` of Algorithm 2.
    step_size: Bond cut per step: an int, or a fraction in (0, 1) of the bond.
    lfa_steps: Lightweight fine-tuning steps before the first cut.
    tune_steps: Auxiliary-tensor fine-tuning steps after each cut.
    bonds: ``"central"`` (the central tensor's two bonds) or ``"all"``.
    error: Compare cuts by ``"relative"`` (``/||W||_F``) or ``"absolute"`` error.
    metric: Metric ``p`` (``None`` = the task's paper metric).
    stop_on: ``"change"`` (``|p - p~| > delta``, the paper) or ``"drop"`` (only ``p - p~ > delta``;
        for loss-like metrics where lower is better use ``"change"``).
    tune_lr_scale: Learning rate while squeezing, as a fraction of the run's. The few steps
        after a cut only repair it; at the full rate their own noise can move the metric by more
        than delta (MPOP's reference code also trains auxiliary tensors at a smaller rate).
    """

    method: ClassVar[str] = "mpop"
    delta: float = 0.01
    squeeze_steps: int = 20
    step_size: int | float = 8
    lfa_steps: int = 100
    tune_steps: int = 20
    bonds: str = "central"
    error: str = "relative"
    metric: str | None = None
    stop_on: str = "change"
    tune_lr_scale: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        self.delta = check_number("mpop: delta (largest allowed metric change)", self.delta, minimum=0)
        for name in ("squeeze_steps", "lfa_steps", "tune_steps"):
            setattr(self, name, check_positive_int(f"mpop: {name}", getattr(self, name)))
        self.step_size = check_step_size(self.step_size)
        check_choice("mpop: bonds", self.bonds, BOND_CHOICES)
        check_choice("mpop: error", self.error, ERROR_KINDS)
        check_choice("mpop: stop_on", self.stop_on, STOP_ON)
        self.tune_lr_scale = check_fraction("mpop: tune_lr_scale", self.tune_lr_scale)
        if self.truncated:
            raise ValueError("mpop starts from full bonds and squeezes them; do not give bond_dims/compression_ratio.")


@dataclass
class MPOPDirConfig(MPOMethodConfig):
    """``mpop_dir``: truncate straight to given per-layer bond dims, then lightweight fine-tuning.

    Attributes
    ----------
    mpo_config: Which matrices become MPOs (``None``: the one of the ``bond_dims_from`` run).
    bond_dims_from: A finished ``mpop`` run folder (or its ``results.json``) whose final bonds to use.
    layer_bond_dims: ``{layer name: bond dims}`` given directly instead.
    """

    method: ClassVar[str] = "mpop_dir"
    mpo_config: object = None
    bond_dims_from: str | None = None
    layer_bond_dims: dict | None = None

    def __post_init__(self):
        if self.mpo_config is not None:
            self.mpo_config = mpo_config_of(self.mpo_config)
        if (self.bond_dims_from is None) == (self.layer_bond_dims is None):
            raise ValueError("mpop_dir needs exactly one of bond_dims_from (an mpop run) or layer_bond_dims.")
        if self.bond_dims_from is not None:
            self.bond_dims_from = str(self.bond_dims_from)
        else:
            self.layer_bond_dims = {name: tuple(int(d) for d in dims) for name, dims in self.layer_bond_dims.items()}

    @property
    def truncated(self) -> bool:
        return self.layer_bond_dims is not None or self.bond_dims_from is not None
