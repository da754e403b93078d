"""OPF: over-parameterized fine-tuning (Gao et al., ACL 2023).

A small PLM trains with *more* parameters than it deploys with. Selected
matrices ``W`` (``nn.Linear``) become exact MPOs whose local tensors hold
``growth`` times ``W``'s entries (:mod:`mpo_core.opf.growth`); every parameter
trains, the MPO tensors included; :meth:`OPFStrategy.finish` contracts them
back (:func:`~mpo_core.model.surgery.merge_mpo`), so the fine-tuned model has its
original architecture, size and latency.

Which matrices: per group (query, key, value, attention_output, ffn_in,
ffn_out) the ``top_n`` with the largest Fisher scores on training batches
(:mod:`mpo_core.opf.fisher`). Scores need gradients on data, so the selection
runs inside training, at steps of :meth:`OPFStrategy.schedule`::

    static    step 0: score all, grow top_n per group ..................... end: merge
    dynamic   step 0: score, grow k  |  step T/s: re-score the rest, grow k  | ... end: merge
              (s stages of the T training steps, k = ceil(top_n / s), top_n per group in all)

Each growth swaps the dense weight for the new tensors *in the optimizer*,
within the weight's own param group (same lr, weight decay and schedule);
the reference code never gave the new tensors to the optimizer.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice

from torch import nn
from transformers import TrainerCallback

from ..model.mpo_config import MPOConfig
from ..model.parameter_count import parameter_summary
from ..model.surgery import apply_mpo, merge_mpo
from ..training.strategy import Strategy
from .config import LINEAR_GROUPS, OPF_GROUPS, SELECTIONS, OPFConfig
from .fisher import fisher_scores
from .growth import plan_growth_factors
from .selection import candidate_matrices, choose, schedule, still_dense

RESUME_ERROR = (
    "opf runs cannot be resumed: the model grows during training, so its checkpoints do not fit the dense "
    "model a resumed run starts from; start a new run instead."
)


def swap_in_optimizer(optimizer, old: nn.Parameter, new) -> None:
    """Replace ``old`` by the parameters ``new`` in the param group that holds ``old``.

    The new parameters join that group, so they get its learning rate,
    weight decay and schedule (``LambdaLR`` scales groups, not parameters,
    so a grown group stays consistent); ``old``'s state (Adam moments) is
    dropped. Works through wrappers that expose the wrapped optimizer's
    ``param_groups`` and ``state`` (accelerate's ``AcceleratedOptimizer``).
    """
    for group in optimizer.param_groups:
        if any(p is old for p in group["params"]):  # identity: `in` would compare tensors elementwise
            group["params"] = [p for p in group["params"] if p is not old] + list(new)
            optimizer.state.pop(old, None)
            return
    raise ValueError("the optimizer does not hold the replaced weight; was it frozen when the optimizer was built?")


@dataclass
class OPFStrategy(Strategy, OPFConfig):
    """Over-parameterize the top-N Fisher-scored matrices per group while training, merge back after.

    The options (growth, selection, top_n, stages, groups, fisher_batches) are
    :class:`~mpo_core.opf.config.OPFConfig`'s, checked there.
    """

    name: str = "opf"
    description: str = "over-parameterize the top-N Fisher-scored matrices per group as MPOs while training"
    uses_trainer_checkpoints: bool = field(default=False, init=False, repr=False)
    candidates: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # {name: group}, dense
    factors: dict = field(default_factory=dict, init=False, repr=False)  # {(I, J): (out_factors, in_factors)}
    chosen: dict[int, list[str]] = field(default_factory=dict, init=False, repr=False)  # {stage: names}
    matrix_growth: dict[str, float] = field(default_factory=dict, init=False, repr=False)  # measured
    total_params: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    progress: bool = field(default=True, init=False, repr=False)

    @property
    def num_stages(self) -> int:
        return self.stages if self.selection == "dynamic" else 1

    def prepare(self, model: nn.Module, progress: bool = True) -> nn.Module:
        """Check the model against the options and make every parameter trainable (no surgery yet)."""
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "opf grows the model during training, after the Trainer has wrapped it for distributed "
                "training; run OPF in a single process (no torchrun / accelerate launch)."
            )
        modules = dict(model.named_modules())
        self.candidates = candidate_matrices(model, self.groups)
        self._check_counts(model)
        shapes = {tuple(modules[n].weight.shape) for n in self.candidates}
        self.factors = {shape: plan_growth_factors(*shape, self.growth) for shape in sorted(shapes)}
        self.chosen, self.matrix_growth, self.replacements, self.progress = {}, {}, [], progress
        super().prepare(model)
        total = parameter_summary(model)["total_params"]
        self.total_params = {"before": total, "max": total}
        return model

    def _check_counts(self, model: nn.Module) -> None:
        if not self.candidates:
            raise ValueError(
                f"opf: {type(model).__name__} has no nn.Linear matrices of groups {self.groups}; supported are "
                "BERT-style encoders (BERT, ALBERT, DistilBERT, MobileBERT, MPNet)."
            )
        counts = Counter(self.candidates.values())
        for group in self.groups:
            if counts[group] < self.top_n:
                raise ValueError(
                    f"opf: top_n={self.top_n} but group {group!r} has only {counts[group]} matrices in this model; "
                    f"choose top_n <= {min(counts[g] for g in self.groups)} or leave the group out of groups."
                )

    def callbacks(self, run=None) -> list:
        return [OPFCallback(self, run)]

    def restore(self, model: nn.Module, run) -> None:
        raise ValueError(RESUME_ERROR)

    def schedule(self, max_steps: int) -> list[tuple[int, int]]:
        """``(step, matrices per group)`` of each stage in a run of ``max_steps`` steps (:func:`.selection.schedule`)."""
        return schedule(self.top_n, self.num_stages, max_steps)

    def grow(self, model, optimizer, batches, count: int, stage: int | None = None, step: int = 0,
             max_grad_norm: float | None = 1.0, run=None) -> list[str]:
        """One selection: score the still-dense candidates on ``batches``, grow the top ``count`` per group.

        ``optimizer`` (may be ``None`` before one exists) gets the new tensors
        in place of the replaced weights; ``run`` gets an ``opf_selection``
        record. ``stage`` defaults to the one after the last.
        """
        stage = max(self.chosen, default=-1) + 1 if stage is None else stage
        remaining = still_dense(self.candidates, (name for names in self.chosen.values() for name in names))
        scores = fisher_scores(model, batches, remaining, max_grad_norm, self.progress)
        names = choose(scores, remaining, count)
        before = parameter_summary(model)
        for name in names:
            self._over_parameterize(model, name, optimizer)
        after = parameter_summary(model)
        self.chosen[stage] = names
        self.total_params["max"] = max(self.total_params["max"], after["total_params"])
        if run is not None:
            run.append_metrics({
                "kind": "opf_selection", "step": step, "stage": stage, "chosen": names,
                "chosen_scores": {n: scores[n] for n in names}, "scores": scores,
                "growth": {n: self.matrix_growth[n] for n in names}, "params_before": before, "params_after": after,
            })
        return names

    def _over_parameterize(self, model: nn.Module, name: str, optimizer) -> None:
        old = model.get_submodule(name)
        group = self.candidates[name]
        config = MPOConfig(groups=(group,), factors={group: self.factors[tuple(old.weight.shape)]})
        [replacement] = apply_mpo(model, config, progress=False, names=[name])
        new = model.get_submodule(name)
        if old.bias is not None:
            new.bias = old.bias  # the same Parameter: its optimizer slot and state carry on
        if optimizer is not None:
            swap_in_optimizer(optimizer, old.weight, new.tensors)
        self.replacements.append(replacement)
        self.matrix_growth[name] = replacement.params_after / replacement.params_before

    def finish(self, model: nn.Module, run=None) -> None:
        """Contract every MPO back into ``nn.Linear``: the original architecture and size."""
        merged = merge_mpo(model)
        total = self.total_params["after_merge"] = parameter_summary(model)["total_params"]
        if run is not None:
            run.append_metrics({"kind": "opf_merge", "merged": merged, "total_params": total})

    def results(self) -> dict:
        totals = self.total_params
        return {"opf": {
            "growth": self.growth, "selection": self.selection, "top_n": self.top_n, "stages": self.num_stages,
            "chosen": [self.chosen.get(k, []) for k in range(self.num_stages)],
            "total_params_before": totals.get("before"), "max_total_params": totals.get("max"),
            "total_params_after_merge": totals.get("after_merge"), "matrix_growth": dict(self.matrix_growth),
        }}


class OPFCallback(TrainerCallback):
    """Runs an :class:`OPFStrategy`'s selections at their steps (Trainer events only, no loop of its own)."""

    def __init__(self, strategy: OPFStrategy, run=None):
        self.strategy = strategy
        self.run = run
        self.pending: list[tuple[int, int, int]] = []  # (stage, step, count), in step order

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            raise ValueError(RESUME_ERROR)
        self.pending = [(k, step, count) for k, (step, count) in enumerate(self.strategy.schedule(state.max_steps))]
        self._grow_due(args, state, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        self._grow_due(args, state, **kwargs)

    def _grow_due(self, args, state, model=None, optimizer=None, train_dataloader=None, **kwargs):
        while self.pending and self.pending[0][1] <= state.global_step:
            stage, _, count = self.pending.pop(0)
            if count:  # a stage after top_n is reached adds nothing (e.g. top_n=4, stages=3: 2, 2, 0)
                batches = islice(train_dataloader, self.strategy.fisher_batches)
                self.strategy.grow(model, optimizer, batches, count, stage, state.global_step,
                                   args.max_grad_norm, self.run)


def make_opf(**options) -> OPFStrategy:
    """``OPFStrategy(**options)``: an option OPF does not have is an error naming the ones it has."""
    return OPFStrategy(**OPFConfig.from_dict(options).options())
