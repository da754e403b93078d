"""``mpop`` and ``mpop_dir``: MPOP's full method and its direct-truncation ablation.

``mpop`` (MPOP, Algorithm 2) runs inside one ``Trainer.train()`` as a callback:

1. lightweight fine-tuning (auxiliary tensors + head) for ``lfa_steps``;
2. evaluate the task metric ``p`` on the dev split;
3. repeat up to ``squeeze_steps`` times: cut the bond whose step adds the
   least estimated error (Eq. (3)-(4), :mod:`mpo_core.mpop.squeeze`), fine-tune
   the auxiliary tensors for ``tune_steps``, evaluate ``p~``; stop when
   ``|p - p~| > delta`` and go back to the last model within ``delta``.

Every event (baseline, cut, evaluated step, stop) goes to the run's metrics
stream with #Pr/#To. Each accepted step is saved to the run folder
(``squeeze_state.json`` + ``squeeze_accepted.safetensors``), so an
interrupted squeeze resumes from its last accepted step.

``mpop_dir`` truncates the freshly decomposed model straight to given
per-layer bond dims (e.g. an ``mpop`` run's final ones) and then fine-tunes
the auxiliary tensors: the ablation of MPOP Table 3.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from transformers import TrainerCallback

from ..data.glue import get_task
from ..layers.mpo_module import MPOModule
from ..model.parameter_count import parameter_summary
from ..model.surgery import mpo_modules
from ..runs.atomic_write import atomic_write_bytes
from ..runs.run_folder import RESULTS_FILE, is_main_process
from ..training.method_config import mpo_config_of
from ..training.strategy import MPOStrategy
from .config import STOP_ON, MPOPConfig, MPOPDirConfig
from .squeeze import all_moves, apply_move, best_move

STATE_FILE, WEIGHTS_FILE = "squeeze_state.json", "squeeze_accepted.safetensors"


@dataclass
class SqueezeState:
    """Where a squeeze stands (saved after every accepted step)."""

    phase: str = "lfa"  # "lfa" -> "tune" -> "done"
    baseline: float | None = None
    last_accepted: float | None = None
    steps_accepted: int = 0
    stop_reason: str | None = None
    history: list = field(default_factory=list)


def _inner(optimizer):
    return getattr(optimizer, "optimizer", optimizer)


def reset_optimizer_state(optimizer, params) -> None:
    """Forget the optimizer's moments for ``params`` (their shapes changed)."""
    if optimizer is None:
        return
    state = _inner(optimizer).state
    for p in params:
        state.pop(p, None)


def scale_learning_rate(optimizer, lr_scheduler, scale: float) -> None:
    """Multiply the learning rate of every group from now on (the scheduler's base rates too)."""
    scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]
    if optimizer is not None:
        for group in _inner(optimizer).param_groups:
            group["lr"] *= scale




@dataclass
class MPOPStrategy(MPOStrategy, MPOPConfig):
    """MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2).

    The options (delta, squeeze_steps, step_size, lfa_steps, tune_steps, bonds, error,
    metric, stop_on, tune_lr_scale) are :class:`~mpo_core.mpop.config.MPOPConfig`'s, checked there.
    """

    name: str = "mpop"
    description: str = "MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2)"
    lightweight: bool = True
    uses_trainer_checkpoints: bool = field(default=False, init=False, repr=False)
    state: SqueezeState = field(default_factory=SqueezeState, init=False, repr=False)

    def bind(self, config) -> None:
        if self.metric is None:
            self.metric = get_task(config.task).metric

    def training_overrides(self) -> dict:
        remaining = (self.squeeze_steps - self.state.steps_accepted) * self.tune_steps
        steps = remaining + (self.lfa_steps if self.state.phase == "lfa" else 0)
        return {"max_steps": max(steps, 1), "lr_scheduler_type": "constant_with_warmup",
                "eval_strategy": "no", "save_strategy": "no"}

    def callbacks(self, run=None) -> list:
        return [SqueezeCallback(self, run)]

    def restore(self, model: nn.Module, run) -> None:
        """Resume from the last accepted step saved in ``run`` (or from the start if none was)."""
        path = Path(run.path)
        if not (path / STATE_FILE).is_file():
            return
        state = SqueezeState(**json.loads((path / STATE_FILE).read_text()))
        if state.phase == "done":
            raise ValueError(f"the squeeze in {path} already finished ({state.stop_reason}); see its metrics stream.")
        load_parameters(model, path / WEIGHTS_FILE)
        self.state = state

    def results(self) -> dict:
        s = self.state
        return {"squeeze": {
            "metric": self.metric, "delta": self.delta, "baseline": s.baseline, "final": s.last_accepted,
            "steps_accepted": s.steps_accepted, "stop_reason": s.stop_reason, "step_size": self.step_size,
            "history": s.history,
        }}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter (shapes included): the last accepted model."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def load_parameters(model: nn.Module, source) -> None:
    """Put saved parameters (a snapshot or a safetensors file) back, shapes included."""
    if not isinstance(source, Mapping):
        from safetensors.torch import load_file

        source = load_file(str(source))
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(source))
    if missing:
        raise ValueError(f"saved squeeze state lacks parameters {missing[:3]}...; was it saved for another model?")
    for name, p in params.items():
        p.data = source[name].to(device=p.device, dtype=p.dtype).clone()
    for module in model.modules():
        if isinstance(module, MPOModule):
            module._cached_weight = None


class SqueezeCallback(TrainerCallback):
    """Algorithm 2 on the Trainer: cuts, evaluations and the Delta test at step ends."""

    def __init__(self, strategy: MPOPStrategy, run=None):
        self.strategy = strategy
        self.run = run
        self.accepted: dict[str, torch.Tensor] | None = None
        self.first_step = 0
        self.eval_at: int | None = None
        self.pending = None
        self.lr_scaled = False

    @property
    def state(self) -> SqueezeState:
        return self.strategy.state

    def _log(self, event: str, model, **record) -> None:
        if self.run is not None:
            self.run.append_metrics({"kind": "squeeze", "event": event, **record, **parameter_summary(model)})

    def _save(self, model) -> None:
        """Keep the accepted model in memory and in the run folder (for resuming)."""
        self.accepted = snapshot(model)
        if self.run is None or not is_main_process():
            return
        from safetensors.torch import save

        weights = save({k: v.contiguous().cpu() for k, v in self.accepted.items()})
        atomic_write_bytes(Path(self.run.path) / WEIGHTS_FILE, weights)
        self.run.write_json(STATE_FILE, asdict(self.state))

    def _enter_squeeze(self, optimizer, lr_scheduler) -> None:
        if not self.lr_scaled:
            scale_learning_rate(optimizer, lr_scheduler, self.strategy.tune_lr_scale)
            self.lr_scaled = True

    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if args.world_size > 1:
            raise ValueError("mpop changes tensor shapes during training; run it on one device (no torchrun/DDP).")
        self.first_step = state.global_step
        if self.state.phase == "lfa":
            self.eval_at = self.first_step + self.strategy.lfa_steps
        else:  # resumed after an accepted step: the model is that step's, cut again
            self.accepted = snapshot(model)
            self._enter_squeeze(optimizer, lr_scheduler)
            self._cut(model, optimizer, state, control)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.eval_at is not None and state.global_step >= self.eval_at:
            control.should_evaluate = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, model=None, optimizer=None, lr_scheduler=None,
                    **kwargs):
        if self.eval_at is None or state.global_step < self.eval_at:
            return control  # an evaluation someone else asked for
        self.eval_at = None
        key = f"eval_{self.strategy.metric}"
        if key not in metrics:
            raise ValueError(f"squeezing watches {key!r}, but the evaluation gave {sorted(metrics)}.")
        value = float(metrics[key])
        if self.state.phase == "lfa":
            self.state.baseline = self.state.last_accepted = value
            self.state.phase = "tune"
            self._log("baseline", model, step=state.global_step, metric=self.strategy.metric, p=value)
            self._save(model)
            self._enter_squeeze(optimizer, lr_scheduler)
            self._cut(model, optimizer, state, control)
        else:
            self._judge(value, model, optimizer, state, control)
        return control

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        """Training stopped from outside (a stop button, the step limit): never keep an unjudged cut."""
        if self.state.phase == "done":
            return control
        if self.state.phase == "lfa":
            reason = "training ended during lightweight fine-tuning, before squeezing"
        else:
            load_parameters(model, self.accepted)
            reason = "training ended before the last cut was evaluated; it was undone"
        self._stop(model, control, reason)
        return control

    def _within(self, value: float) -> bool:
        change = self.state.baseline - value
        return (abs(change) if self.strategy.stop_on == "change" else change) <= self.strategy.delta

    def _judge(self, value, model, optimizer, state, control) -> None:
        move, s = self.pending, self.state
        accepted = self._within(value)
        record = {"squeeze_step": s.steps_accepted + 1, "step": state.global_step, **move,
                  "metric": self.strategy.metric, "p": s.baseline, "p_tilde": value, "accepted": accepted}
        if accepted:
            s.steps_accepted += 1
            s.last_accepted = value
        s.history.append(record)
        self._log("step", model, **record)
        if not accepted:
            load_parameters(model, self.accepted)
            reset_optimizer_state(optimizer, model.parameters())
            self._stop(model, control, f"|p - p~| = {abs(s.baseline - value):.4g} > delta = {self.strategy.delta}")
            return
        if s.steps_accepted >= self.strategy.squeeze_steps:
            self._stop(model, control, "step budget spent")
            return
        self._save(model)
        self._cut(model, optimizer, state, control)

    def _cut(self, model, optimizer, state, control) -> None:
        modules = mpo_modules(model)
        move = best_move(all_moves(modules, self.strategy.step_size, self.strategy.bonds), self.strategy.error)
        if move is None:
            self._stop(model, control, "every candidate bond is 1")
            return
        module = modules[move.name]
        truncation = apply_move(module, move)
        reset_optimizer_state(optimizer, module.tensors)
        move_record = move.to_dict()
        self.pending = {"matrix": move_record.pop("name"), **move_record, "error_bound": truncation.error_bound}
        self._log("cut", model, step=state.global_step, **self.pending)
        self.eval_at = state.global_step + self.strategy.tune_steps

    def _stop(self, model, control, reason: str) -> None:
        self.state.phase = "done"
        self.state.stop_reason = reason
        self.eval_at = None
        control.should_training_stop = True
        self._save(model)
        self._log("stop", model, reason=reason, steps_accepted=self.state.steps_accepted,
                  p=self.state.baseline, final=self.state.last_accepted)


@dataclass
class DirectTruncationStrategy(MPOStrategy):
    """``mpop_dir``: truncate each layer straight to given bond dims, then lightweight fine-tuning."""

    name: str = "mpop_dir"
    description: str = "truncate directly to given per-layer bond dims (e.g. an mpop run's), then LFA"
    lightweight: bool = True
    layer_bond_dims: dict = field(default_factory=dict)

    def prepare(self, model, progress=True):
        super().prepare(model, progress)
        modules = mpo_modules(model)
        unknown = sorted(set(self.layer_bond_dims) - set(modules))
        if unknown:
            raise ValueError(f"mpop_dir: no MPO layer named {unknown[:3]} in this model (layers: {sorted(modules)[:3]}...).")
        for name, dims in self.layer_bond_dims.items():
            module = modules[name]
            if len(dims) != len(module.bond_dims):
                raise ValueError(f"mpop_dir: {name} has {len(module.bond_dims)} bonds, got {list(dims)}.")
            if any(d > b for d, b in zip(dims, module.bond_dims)):
                raise ValueError(f"mpop_dir: {name} bonds {list(dims)} exceed the full bonds {list(module.bond_dims)}.")
            module.truncate_(tuple(int(d) for d in dims))
        return model


def make_mpop(**options) -> MPOPStrategy:
    """``MPOPStrategy(**options)``: an option MPOP does not have is an error naming the ones it has."""
    return MPOPStrategy(**MPOPConfig.from_dict(options).options())


def bond_dims_of_run(source: str | Path) -> tuple[dict, dict | None]:
    """Per-layer final bond dims (and the MPO config) of a finished run folder or its ``results.json``."""
    path = Path(source)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no {RESULTS_FILE} at {path}: give a finished mpop run folder or its results file.")
    results = json.loads(file.read_text())
    dims = results.get("bond_dims") or {}
    if not dims:
        raise ValueError(f"{file} records no MPO bond dims: was it an MPO run?")
    mpo_config = results.get("config", {}).get("strategy_options", {}).get("mpo_config")
    return dims, mpo_config


def make_mpop_dir(config: MPOPDirConfig | None = None, **options) -> DirectTruncationStrategy:
    """``mpop_dir`` with dims given directly (``layer_bond_dims``) or read from a run (``bond_dims_from``)."""
    config = config if config is not None else MPOPDirConfig.from_dict(options)
    mpo_config, layer_bond_dims = config.mpo_config, config.layer_bond_dims
    if config.bond_dims_from is not None:
        layer_bond_dims, run_config = bond_dims_of_run(config.bond_dims_from)
        mpo_config = mpo_config if mpo_config is not None else run_config
    return DirectTruncationStrategy(mpo_config=mpo_config_of(mpo_config),
                                    layer_bond_dims={k: tuple(v) for k, v in layer_bond_dims.items()})
