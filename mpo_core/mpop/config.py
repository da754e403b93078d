"""``MPOPConfig`` and ``MPOPDirConfig``: the options of ``mpop`` (MPOP, Algorithm 2) and its ablation ``mpop_dir``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ..tensor.validation import check_choice, check_fraction, check_number, check_positive_int, check_positive_ints
from ..training.method_config import MPOMethodConfig, mpo_config_of
from .squeeze import BOND_CHOICES, ERROR_KINDS, RANKS, check_step_size

STOP_ON = ("change", "drop", "never")
STEP_UNITS = ("model", "bond")
#: The options of mpop before ``rank``/``step_unit``/``target_size``/``heldout_examples``/``lfa_scheduler``
#: existed, and the values that reproduce what those runs did (see :meth:`MPOPConfig.from_dict`).
FIRST_OPTIONS = ("mpo_config", "delta", "squeeze_steps", "step_size", "lfa_steps", "tune_steps", "bonds", "error",
                 "metric", "stop_on", "tune_lr_scale")
FIRST_BEHAVIOUR = {"rank": "error", "step_unit": "bond", "target_size": None, "heldout_examples": 0,
                   "lfa_scheduler": "constant_with_warmup"}


@dataclass
class MPOPConfig(MPOMethodConfig):
    """MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2).

    Attributes
    ----------
    mpo_config: Which matrices become MPOs (full bonds: squeezing cuts them).
    delta: Largest allowed ``|p - p~|`` (metric units, e.g. 0.01 = 1 accuracy point).
    squeeze_steps: Step budget ``iter`` of Algorithm 2 (accepted cuts at most).
    step_size: How much one cut removes. ``step_unit="model"``: a fraction in (0, 1) of the *dense*
        model's parameters (each candidate bond gets the smallest cut that removes that many; the
        last cut before ``target_size`` only what is left). ``step_unit="bond"``: an int, or a
        fraction in (0, 1) of the bond.
    step_unit: ``"model"`` (default: a run reaches a size in a bounded number of cuts, about
        ``(1.07 - target_size) / step_size`` from the full-bond MPO) or ``"bond"`` (the first
        implementation's per-bond step, which let cuts of 4 of 96 remove 0.1 % of the model).
    target_size: Stop once #To <= ``target_size`` x the dense model's #To (a fraction in (0, 1];
        ``None``: no size target, only delta and the step budget stop).
    lfa_steps: Lightweight fine-tuning steps before the first cut.
    tune_steps: Auxiliary-tensor fine-tuning steps after each cut.
    bonds: ``"all"`` (default) or ``"central"`` (the central tensor's two bonds). With the
        per-parameter rank every bond competes on one scale, and with a model step a bond too small
        to give a step drops out by itself, so no bond needs excluding by hand.
    rank: ``"per_param"`` (default: least added squared error per parameter removed) or
        ``"error"`` (least added error; see :mod:`mpo_core.mpop.squeeze`).
    error: Compare cuts by ``"relative"`` (``/||W||_F``) or ``"absolute"`` error.
    metric: Metric ``p`` (``None`` = the task's paper metric).
    stop_on: ``"change"`` (``|p - p~| > delta``, the paper) or ``"drop"`` (only ``p - p~ > delta``;
        for loss-like metrics where lower is better use ``"change"``), or ``"never"``: squeeze to
        ``target_size`` (or the budget) whatever ``p~`` does, and only *record* at each step whether
        either rule would have stopped there (``within_change``/``within_drop``), so one run shows
        the accuracy of a given size and where each delta rule stops (the frontier's use).
    heldout_examples: Judge ``p`` and ``p~`` on this many training examples, held out (seeded) from
        training; at most a quarter of the training set, so small runs still train. 0 = judge on the
        dev set (the first implementation; then the dev score chose the model it reports).
    lfa_scheduler: Schedule of the LFA phase over exactly ``lfa_steps`` (with the run's warmup):
        ``None`` = the run's ``lr_scheduler_type``, so p is measured where an ``mpo_full_lfa`` run of
        ``lfa_steps`` ends. Squeezing then trains at a constant ``tune_lr_scale`` x the learning rate.
    fill_budget: Once squeezing stops at ``target_size`` (or finds no bond to cut) before its step budget is
        spent, keep tuning the auxiliary tensors at the squeezing rate for the steps left, so the run takes
        exactly ``lfa_steps + squeeze_steps x tune_steps`` steps, as many as the rows it is compared with.
    tune_lr_scale: Learning rate while squeezing, as a fraction of the run's. The few steps
        after a cut only repair it; at the full rate their own noise can move the metric by more
        than delta (MPOP's reference code also trains auxiliary tensors at a smaller rate).
    """

    method: ClassVar[str] = "mpop"
    delta: float = 0.01
    squeeze_steps: int = 20
    step_size: int | float = 0.02
    step_unit: str = "model"
    target_size: float | None = None
    lfa_steps: int = 100
    tune_steps: int = 20
    bonds: str = "all"
    rank: str = "per_param"
    error: str = "relative"
    metric: str | None = None
    stop_on: str = "change"
    heldout_examples: int = 256
    lfa_scheduler: str | None = None
    tune_lr_scale: float = 0.1
    fill_budget: bool = False

    def __post_init__(self):
        super().__post_init__()
        self.delta = check_number("mpop: delta (largest allowed metric change)", self.delta, minimum=0)
        for name in ("squeeze_steps", "lfa_steps", "tune_steps"):
            setattr(self, name, check_positive_int(f"mpop: {name}", getattr(self, name)))
        check_choice("mpop: step_unit", self.step_unit, STEP_UNITS)
        if self.step_unit == "model":
            self.step_size = check_fraction("mpop: step_size (share of the dense model one cut removes, "
                                            "step_unit='model'; for a bond step use step_unit='bond')",
                                            self.step_size, inclusive_high=False)
        else:
            self.step_size = check_step_size(self.step_size)
        if self.target_size is not None:
            self.target_size = check_fraction("mpop: target_size (#To / dense #To)", self.target_size)
        check_choice("mpop: bonds", self.bonds, BOND_CHOICES)
        check_choice("mpop: rank", self.rank, RANKS)
        check_choice("mpop: error", self.error, ERROR_KINDS)
        check_choice("mpop: stop_on", self.stop_on, STOP_ON)
        self.heldout_examples = check_positive_int("mpop: heldout_examples", self.heldout_examples, minimum=0)
        if self.lfa_scheduler is not None:
            from transformers import SchedulerType

            check_choice("mpop: lfa_scheduler", self.lfa_scheduler, [t.value for t in SchedulerType])
        self.tune_lr_scale = check_fraction("mpop: tune_lr_scale", self.tune_lr_scale)
        if not isinstance(self.fill_budget, bool):
            raise ValueError(f"mpop: fill_budget must be true or false, got {self.fill_budget!r}.")
        if self.truncated:
            raise ValueError("mpop starts from full bonds and squeezes them; do not give bond_dims/compression_ratio.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MPOPConfig":
        """The inverse of :meth:`to_dict`; a run's record from before the size-reaching options keeps its meaning.

        A ``config.json`` stores every option, so a record holding exactly the first
        options (:data:`FIRST_OPTIONS`) was written before ``rank``, ``step_unit``,
        ``target_size``, ``heldout_examples`` and ``lfa_scheduler`` existed: it gets
        the values that did what that run did (:data:`FIRST_BEHAVIOUR`), not today's defaults.
        """
        data = dict(data or {})
        if set(data) == set(FIRST_OPTIONS):
            data.update(FIRST_BEHAVIOUR)
        return super().from_dict(data)


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
            if not isinstance(self.bond_dims_from, (str, os.PathLike)):
                raise ValueError(f"mpop_dir: bond_dims_from must be the path of a finished mpop run folder (a string), "
                                 f"got {type(self.bond_dims_from).__name__}.")
            self.bond_dims_from = str(self.bond_dims_from)
        else:
            if not isinstance(self.layer_bond_dims, Mapping) or not all(isinstance(k, str) for k in self.layer_bond_dims):
                raise ValueError("mpop_dir: layer_bond_dims must be a JSON object / dict from layer name to a list of "
                                 f"positive ints, got {type(self.layer_bond_dims).__name__}.")
            self.layer_bond_dims = {name: check_positive_ints(dims, f"mpop_dir: layer_bond_dims[{name!r}]")
                                    for name, dims in self.layer_bond_dims.items()}

    @property
    def truncated(self) -> bool:
        return self.layer_bond_dims is not None or self.bond_dims_from is not None
