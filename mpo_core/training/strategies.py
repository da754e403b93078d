"""Fine-tuning strategies: each decides which parameters train (and, later, how bonds change).

A strategy never owns a training loop. ``prepare(model)`` performs the
surgery it needs and sets ``requires_grad`` by walking modules with
``isinstance``; the one training engine then optimizes whatever is trainable.

====================  =====================================================
``full``              fine-tune everything (baseline)
``last_k``            only the last k encoder layers + head (MPOP Table 5)
``mpo_full``          full-bond MPO everywhere, all tensors train (Table 3)
``mpo_full_lfa``      full-bond MPO, only auxiliary tensors + head train
``mpo_lfa``           truncated MPO (bond dims or ratio), auxiliary + head
``mpop``              LFA, then dimension squeezing (MPOP Algorithm 2;
                      :mod:`mpo_core.mpop.strategy`)
``mpop_dir``          truncate straight to given per-layer bonds, then LFA
``opf``               over-parameterized fine-tuning: Fisher-selected
                      matrices become larger lossless MPOs while training,
                      merged back to dense at the end (:mod:`mpo_core.opf.strategy`)
====================  =====================================================

Hooks, all optional: :meth:`Strategy.bind` (see the run config),
:meth:`~Strategy.prepare`, :meth:`~Strategy.callbacks` (Trainer callbacks that
change bonds or selections during training), :meth:`~Strategy.training_overrides`,
:meth:`~Strategy.restore` (resume without Trainer checkpoints),
:meth:`~Strategy.finish` (after training) and :meth:`~Strategy.results`.

"Head" is what the task adds on top of the pre-trained encoder (classifier,
pre-classifier) plus the pooler that feeds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..layers.mpo_module import MPOModule
from ..model.matrix_groups import layer_index, matrix_group
from ..model.mpo_config import MPOConfig
from ..model.surgery import Replacement, apply_mpo


def head_modules(model: nn.Module) -> list[nn.Module]:
    """Task head (modules outside the base model) and the pooler."""
    base = getattr(model, "base_model", model)
    inside = {id(m) for m in base.modules()} if base is not model else set()
    head = [m for m in model.children() if id(m) not in inside]
    head += [m for name, m in base.named_modules() if matrix_group(name, m) == "pooler"]
    return head


def _set_trainable(modules, trainable: bool = True) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(trainable)


def _freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _index_at_least(index: int | None, first: int) -> bool:
    return index is not None and index >= first


def num_encoder_layers(model: nn.Module) -> int:
    indices = [layer_index(name) for name, _ in model.named_modules()]
    indices = [i for i in indices if i is not None]
    if not indices:
        raise ValueError(f"{type(model).__name__} has no numbered encoder layers (…layer.N…); last_k needs them.")
    return max(indices) + 1


@dataclass
class Strategy:
    """Base class: a name, a description and :meth:`prepare`."""

    name: str = "full"
    description: str = "fine-tune every parameter (baseline)"
    replacements: list[Replacement] = field(default_factory=list, repr=False)

    def prepare(self, model: nn.Module, progress: bool = True) -> nn.Module:
        """Do the surgery this strategy needs and mark the trainable parameters (in place)."""
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def bind(self, config) -> None:
        """See the run's :class:`~mpo_core.training.fine_tune_config.FineTuneConfig` (e.g. its task's metric)."""

    def callbacks(self, run=None) -> list:
        """Trainer callbacks the strategy needs (bond changes, matrix selection); ``run`` is the run folder."""
        return []

    def training_overrides(self) -> dict:
        """``TrainingArguments`` the strategy needs to set (e.g. the number of steps squeezing takes)."""
        return {}

    #: Whether an interrupted run resumes from the Trainer's checkpoints (else :meth:`restore` does it).
    uses_trainer_checkpoints: bool = field(default=True, init=False, repr=False)

    def restore(self, model: nn.Module, run) -> None:
        """Bring a prepared model back to the state saved in ``run`` (resuming without Trainer checkpoints)."""

    def finish(self, model: nn.Module, run=None) -> None:
        """Called once after training, before the final evaluation (e.g. contract MPOs back to dense)."""

    def results(self) -> dict:
        """Extra entries for the run's ``results.json``."""
        return {}


@dataclass
class LastK(Strategy):
    name: str = "last_k"
    description: str = "fine-tune only the last k encoder layers and the head (MPOP Table 5)"
    k: int = 1

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"last_k needs k >= 1 layers to train, got {self.k!r}.")

    def prepare(self, model, progress=True):
        total = num_encoder_layers(model)
        if self.k > total:
            raise ValueError(f"last_k: k={self.k} but the model has only {total} encoder layers.")
        _freeze_all(model)
        first = total - self.k
        _set_trainable(m for name, m in model.named_modules() if _index_at_least(layer_index(name), first))
        _set_trainable(head_modules(model))
        return model


@dataclass
class MPOStrategy(Strategy):
    """MPO surgery, then either every tensor trains or only auxiliary tensors + head (LFA)."""

    name: str = "mpo_full"
    description: str = "full-bond MPO for the configured matrices; all tensors train"
    mpo_config: MPOConfig = field(default_factory=MPOConfig)
    lightweight: bool = False

    def prepare(self, model, progress=True):
        self.replacements = apply_mpo(model, self.mpo_config, progress=progress)
        if not self.lightweight:
            return super().prepare(model)
        _freeze_all(model)
        for module in model.modules():
            if isinstance(module, MPOModule):
                for tensor in module.auxiliary_tensors:
                    tensor.requires_grad_(True)
        _set_trainable(head_modules(model))
        return model


def _lfa_config(mpo_config: MPOConfig | None, bond_dims=None, compression_ratio=None) -> MPOConfig:
    config = mpo_config or MPOConfig()
    if bond_dims is None and compression_ratio is None and not (config.bond_dims or config.compression_ratio):
        raise ValueError("mpo_lfa needs a truncation: give bond_dims or compression_ratio (or set them in mpo_config).")
    if bond_dims is not None or compression_ratio is not None:
        data = config.to_dict()
        data["bond_dims"] = bond_dims or {}
        data["compression_ratio"] = compression_ratio
        config = MPOConfig.from_dict(data)
    return config


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "full": lambda **kw: Strategy(),
    "last_k": lambda k=1, **kw: LastK(k=k),
    "mpo_full": lambda mpo_config=None, **kw: MPOStrategy(mpo_config=_full_bonds(mpo_config)),
    "mpo_full_lfa": lambda mpo_config=None, **kw: MPOStrategy(
        name="mpo_full_lfa", description="full-bond MPO; only auxiliary tensors and the head train",
        mpo_config=_full_bonds(mpo_config), lightweight=True),
    "mpo_lfa": lambda mpo_config=None, bond_dims=None, compression_ratio=None, **kw: MPOStrategy(
        name="mpo_lfa", description="truncated MPO; only auxiliary tensors and the head train",
        mpo_config=_lfa_config(mpo_config, bond_dims, compression_ratio), lightweight=True),
}


def _lazy(module: str, factory: str) -> Callable[..., Strategy]:
    """A factory living in a module that imports this one (squeezing, OPF)."""
    def make(**options) -> Strategy:
        import importlib

        return getattr(importlib.import_module(f"mpo_core.{module}"), factory)(**options)

    return make


STRATEGIES.update({
    "mpop": _lazy("mpop.strategy", "make_mpop"),
    "mpop_dir": _lazy("mpop.strategy", "make_mpop_dir"),
    "opf": _lazy("opf.strategy", "make_opf"),
})


def _full_bonds(mpo_config: MPOConfig | None) -> MPOConfig:
    config = mpo_config or MPOConfig()
    if config.bond_dims or config.compression_ratio:
        raise ValueError("mpo_full strategies keep full bonds; use mpo_lfa for a truncated MPO.")
    return config


def get_strategy(name: str, **options) -> Strategy:
    """A strategy by name, e.g. ``get_strategy("last_k", k=3)`` or ``get_strategy("mpo_lfa", compression_ratio=0.3)``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}.")
    if isinstance(options.get("mpo_config"), dict):  # as read back from a run's config.json
        options = {**options, "mpo_config": MPOConfig.from_dict(options["mpo_config"])}
    return STRATEGIES[name](**options)
