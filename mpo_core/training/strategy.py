"""The ``Strategy`` base class and the built-in strategies ``full``, ``last_k``, ``mpo_full(_lfa)``, ``mpo_lfa``.

Each decides which parameters train (and, for MPOP/OPF, how bonds change).

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
                      :mod:`mpo_core.mpop`)
``mpop_dir``          truncate straight to given per-layer bonds, then LFA
``opf``               over-parameterized fine-tuning: Fisher-selected
                      matrices become larger lossless MPOs while training,
                      merged back to dense at the end (:mod:`mpo_core.opf`)
====================  =====================================================

The registry of these names is :mod:`mpo_core.training.strategies`; each
strategy's options are a typed config (:mod:`mpo_core.training.method_config`,
:mod:`mpo_core.mpop.config`, :mod:`mpo_core.opf.config`) that the strategy
class inherits, so ``LastK(k=0)`` fails in the same words as ``--k 0``.

Hooks, all optional: :meth:`Strategy.bind` (see the run config),
:meth:`~Strategy.prepare`, :meth:`~Strategy.callbacks` (Trainer callbacks that
change bonds or selections during training), :meth:`~Strategy.training_overrides`,
:meth:`~Strategy.heldout_size` (training examples to hold out for the strategy's
own decisions), :meth:`~Strategy.lr_lambda` (a per-step learning-rate factor
when phases need their own schedules), :meth:`~Strategy.restore` (resume without
Trainer checkpoints),
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
from ..model.surgery import Replacement, apply_mpo
from .method_config import LastKConfig, MPOMethodConfig

#: Name of the held-out training slice among the Trainer's evaluation sets: its metrics are ``eval_heldout_*``.
HELDOUT = "heldout"


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


def train_auxiliary_and_head(model: nn.Module) -> nn.Module:
    """MPOP's lightweight fine-tuning: only the MPO layers' auxiliary tensors and the task head train."""
    _freeze_all(model)
    for module in model.modules():
        if isinstance(module, MPOModule):
            for tensor in module.auxiliary_tensors:
                tensor.requires_grad_(True)
    _set_trainable(head_modules(model))
    return model


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

    def bind_training_texts(self, texts: list[str]) -> None:
        """See the run's training sentences (both texts of a pair; never dev, held-out or evaluation examples),
        e.g. to calibrate a compression on them."""

    def callbacks(self, run=None) -> list:
        """Trainer callbacks the strategy needs (bond changes, matrix selection); ``run`` is the run folder."""
        return []

    def training_overrides(self) -> dict:
        """``TrainingArguments`` the strategy needs to set (e.g. the number of steps squeezing takes)."""
        return {}

    def heldout_size(self, num_train: int) -> int:
        """Training examples to hold out (seeded, never trained on) for the strategy's own decisions.

        The engine evaluates on them, as the ``"heldout"`` set (:data:`HELDOUT`), whenever training
        asks for an evaluation; the dev set is then only evaluated at the end, for the report.
        """
        return 0

    def lr_lambda(self, args) -> Callable[[int], float] | None:
        """The learning rate's factor at each optimizer step (a ``LambdaLR`` lambda over ``args.learning_rate``).

        ``None``: the schedule ``TrainingArguments`` describe. Strategies whose phases need different
        schedules (MPOP: LFA, then squeezing) return one; ``args`` are the run's ``TrainingArguments``.
        """
        return None

    #: Whether an interrupted run resumes from the Trainer's checkpoints (else :meth:`restore` does it).
    uses_trainer_checkpoints: bool = field(default=True, init=False, repr=False)

    def restore(self, model: nn.Module, run) -> None:
        """Bring a prepared model back to the state saved in ``run`` (resuming without Trainer checkpoints)."""

    def resume(self, model: nn.Module, run) -> tuple:
        """Where an interrupted run continues: ``(Trainer checkpoint or None, metrics lines to keep)``.

        The last complete Trainer checkpoint (``None``: from the start), or for a
        strategy without them, what :meth:`restore` brought back. A strategy that
        changes the model's shapes (``mpop``) brings the prepared model to the
        checkpoint's shapes here, before the Trainer loads it.
        """
        if not self.uses_trainer_checkpoints:
            return None, self.restore(model, run) or 0
        checkpoint = run.last_checkpoint()
        return checkpoint, run.resume_point(checkpoint)

    def steps_left(self) -> bool:
        """Whether training has steps left (``False``: a resumed run that had finished them; only its reports)."""
        return True

    def finish(self, model: nn.Module, run=None) -> None:
        """Called once after training, before the final evaluation (e.g. contract MPOs back to dense)."""

    def results(self) -> dict:
        """Extra entries for the run's ``results.json``."""
        return {}


@dataclass
class LastK(Strategy, LastKConfig):
    name: str = "last_k"
    description: str = "fine-tune only the last k encoder layers and the head (MPOP Table 5)"

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
class MPOStrategy(Strategy, MPOMethodConfig):
    """MPO surgery (``mpo_config``), then either every tensor trains or only auxiliary tensors + head (LFA)."""

    name: str = "mpo_full"
    description: str = "full-bond MPO for the configured matrices; all tensors train"
    lightweight: bool = False

    def prepare(self, model, progress=True):
        self.replacements = apply_mpo(model, self.mpo_config, progress=progress)
        if not self.lightweight:
            return super().prepare(model)
        return train_auxiliary_and_head(model)
