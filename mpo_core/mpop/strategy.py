"""``mpop`` and ``mpop_dir``: MPOP's full method and its direct-truncation ablation.

``mpop`` (MPOP, Algorithm 2) runs inside one ``Trainer.train()`` as a callback:

1. lightweight fine-tuning (auxiliary tensors + head) for ``lfa_steps``, on
   the run's own schedule over exactly those steps (:mod:`mpo_core.mpop.schedule`);
2. evaluate the task metric ``p`` on a held-out slice of the *training* data
   (``heldout_examples``, seeded, never trained on; the dev set is only
   evaluated at the end, for the report);
3. repeat up to ``squeeze_steps`` times: cut the bond whose cut adds the least
   estimated error per parameter removed (Eq. (3)-(4), :mod:`mpo_core.mpop.squeeze`),
   each cut removing ``step_size`` of the dense model, fine-tune the auxiliary
   tensors for ``tune_steps`` at ``tune_lr_scale`` x the rate, evaluate ``p~``;
   stop when ``|p - p~| > delta`` (and go back to the last model within
   ``delta``), when #To reaches ``target_size`` x the dense model's, or when
   the budget is spent.

The dense model's size is counted before the MPO surgery. Every event
(baseline, cut, evaluated step, stop) goes to the run's metrics stream with
#Pr/#To; the stop says why. Each accepted step is saved to the run folder
(``squeeze_accepted.safetensors``) and the run takes a Trainer checkpoint
there (besides every ``save_steps``), the squeeze state inside it
(``squeeze_checkpoint.safetensors``): an interrupted squeeze resumes from its
last checkpoint bit for bit, the recorded cuts applied to the freshly prepared
model before the Trainer loads the weights, optimizer, scheduler and RNG states.

``mpop_dir`` truncates the freshly decomposed model straight to given
per-layer bond dims (e.g. an ``mpop`` run's final ones) and then fine-tunes
the auxiliary tensors: the ablation of MPOP Table 3.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data.glue import get_task
from ..json_file import loads_bounded, read_json_bounded
from ..layers.mpo_module import MPOModule
from ..model.parameter_count import count_parameters, parameter_summary
from ..model.surgery import mpo_modules
from ..runs.atomic_write import atomic_write_bytes
from ..runs.run_folder import RESULTS_FILE, is_main_process, read_json_object
from ..tensor.validation import check_positive_ints
from ..training.method_config import mpo_config_of
from ..training.strategy import HELDOUT, MPOStrategy
from .config import MPOPConfig, MPOPDirConfig
from .schedule import phased_factor, scheduler_factor
from .squeeze import DataMetric, all_moves, apply_move, best_move

#: training sentences the data-aware squeeze (``error="data"``) measures cuts on
CALIBRATION_SENTENCES = 256

#: the last accepted model, its squeeze state in the file's metadata: one file, committed by one rename
ACCEPTED_FILE = "squeeze_accepted.safetensors"
STATE_FILE = "squeeze_state.json"  # older versions kept the state beside the weights; still read
WEIGHTS_FILE = ACCEPTED_FILE
#: in each Trainer checkpoint: the squeeze state then, and the last accepted model where it differs from the current
CHECKPOINT_FILE = "squeeze_checkpoint.safetensors"
#: in the metadata of an accepted file of a run that takes Trainer checkpoints (older runs resumed from the file)
EXACT_RESUME = "trainer_checkpoints"


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


#: mpop's refusal under torchrun / accelerate launch: DDP cannot follow a model whose tensors change shape
ONE_PROCESS_ONLY = "mpop changes tensor shapes during training; run it on one device (no torchrun/DDP)."


@dataclass
class MPOPStrategy(MPOStrategy, MPOPConfig):
    """MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2).

    The options (delta, squeeze_steps, step_size, step_unit, target_size, ...) are
    :class:`~mpo_core.mpop.config.MPOPConfig`'s, checked there.
    """

    name: str = "mpop"
    description: str = "MPOP: lightweight fine-tuning, then dimension squeezing (Algorithm 2)"
    lightweight: bool = True
    uses_trainer_checkpoints: bool = field(default=True, init=False, repr=False)
    state: SqueezeState = field(default_factory=SqueezeState, init=False, repr=False)
    dense_params: int | None = field(default=None, init=False, repr=False)  # #To before the surgery
    mpo_params: int | None = field(default=None, init=False, repr=False)  # #To of the full-bond MPO model
    schedule: list | None = field(default=None, init=False, repr=False)  # each phase's learning rate
    #: resumed from an accepted file (a run of an older version): the Trainer's steps start at that step
    restarted: bool = field(default=False, init=False, repr=False)
    #: resumed from a Trainer checkpoint: its squeeze callback's state, taken over at the training's begin
    resumed: dict | None = field(default=None, init=False, repr=False)
    #: ``error="data"``: the calibration data cuts are measured on (collected in :meth:`prepare`)
    data_metric: DataMetric | None = field(default=None, init=False, repr=False)
    #: where the calibration sentences and the tokenizer come from (set by :meth:`bind`)
    source: dict | None = field(default=None, init=False, repr=False)

    def bind(self, config) -> None:
        if self.metric is None:
            self.metric = get_task(config.task).metric
        self.source = {"task": config.task, "data_dir": config.data_dir, "model": config.model,
                       "max_length": config.max_length}

    def prepare(self, model, progress=True):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # refused here, before the run folder is made
            raise ValueError(ONE_PROCESS_ONLY)
        self.dense_params = count_parameters(model).total
        super().prepare(model, progress)
        self.mpo_params = count_parameters(model).total
        if self.error == "data":
            self.data_metric = self.calibrate(model, progress)
        return model

    def calibrate(self, model, progress: bool = True) -> DataMetric:
        """``X^T X`` of every MPO layer's inputs (token counts for the word embedding) on the task's training
        sentences (:data:`CALIBRATION_SENTENCES`, drawn with seed 0; never the dev set), on the full-bond model."""
        from transformers import AutoTokenizer

        from ..data.glue import default_glue_dir
        from ..model.calibrated_compression import good_turing_floor
        from ..model.calibration import collect_calibration
        from ..model.calibration_sentences import calibration_sentences
        from ..model.pretrained import default_model_path

        if self.source is None:
            raise ValueError("mpop with error='data' needs the run's task and model (bind the run config first).")
        tokenizer = AutoTokenizer.from_pretrained(str(self.source["model"] or default_model_path()),
                                                  trust_remote_code=False)
        sentences = calibration_sentences(self.source["task"], CALIBRATION_SENTENCES, seed=0, at_most=True,
                                          data_dir=self.source["data_dir"] or default_glue_dir())
        groups = tuple(dict.fromkeys(m.group for m in mpo_modules(model).values() if hasattr(m, "group")))
        stats = collect_calibration(model, tokenizer, sentences, groups=groups or None,
                                    max_length=self.source["max_length"], progress=progress)
        rows = {name: counts + good_turing_floor(counts) for name, counts in stats.token_counts.items()}
        return DataMetric(stats.second_moments, rows)

    def heldout_size(self, num_train: int) -> int:
        """``heldout_examples``, at most a quarter of the ``num_train`` training examples."""
        if not self.heldout_examples:
            return 0
        if num_train < 4:
            raise ValueError(f"mpop: holding out examples to judge cuts needs at least 4 training examples, "
                             f"got {num_train}; give more, or heldout_examples=0 to judge on the dev set.")
        return min(self.heldout_examples, num_train // 4)

    @property
    def eval_key(self) -> str:
        """The metric squeezing judges by: on the held-out slice (or, with ``heldout_examples=0``, dev)."""
        return f"eval_{HELDOUT}_{self.metric}" if self.heldout_examples else f"eval_{self.metric}"

    @property
    def target_params(self) -> int | None:
        if self.target_size is None or self.dense_params is None:
            return None
        return math.floor(self.target_size * self.dense_params)

    def params_per_cut(self, total: int) -> int | None:
        """What the next cut must remove: ``step_size`` of the dense model (at most what the target leaves).

        ``None`` for the per-bond step (``step_unit="bond"``).
        """
        if self.step_unit == "bond":
            return None
        need = max(1, math.ceil(self.step_size * self.dense_params))
        target = self.target_params
        return need if target is None else max(1, min(need, total - target))

    def lr_lambda(self, args):
        """LFA on the run's scheduler over exactly ``lfa_steps``, then a constant ``tune_lr_scale`` (resumed: at once)."""
        kind = self.lfa_scheduler or getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
        warmup = args.get_warmup_steps(self.lfa_steps)
        lfa = scheduler_factor(kind, warmup, self.lfa_steps, args.lr_scheduler_kwargs)
        self.schedule = [
            {"phase": "lfa", "lr_scheduler_type": kind, "steps": self.lfa_steps, "warmup_steps": warmup,
             "peak_learning_rate": args.learning_rate},
            {"phase": "squeeze", "lr_scheduler_type": "constant", "steps": self.squeeze_steps * self.tune_steps,
             "learning_rate": args.learning_rate * self.tune_lr_scale},
        ]
        return phased_factor(lfa, 0 if self.restarted else self.lfa_steps, self.tune_lr_scale)

    def training_overrides(self) -> dict:
        """The steps of the whole squeeze (of what is left, restarted at an accepted step); evaluations on demand."""
        accepted = self.state.steps_accepted if self.restarted else 0
        steps = (self.squeeze_steps - accepted) * self.tune_steps + (0 if self.restarted else self.lfa_steps)
        return {"max_steps": max(steps, 1), "eval_strategy": "no"}

    def callbacks(self, run=None) -> list:
        return [SqueezeCallback(self, run)]

    def resume(self, model: nn.Module, run) -> tuple:
        """Where an interrupted squeeze continues: ``(Trainer checkpoint or None, metrics lines to keep)``.

        A finished squeeze (killed in its reports) takes its final model from the
        accepted file, as does a run of an older version (no Trainer checkpoints,
        not bit for bit). Else the last complete Trainer checkpoint: the model gets
        its bond dims here, the Trainer loads it, and the callback takes over the
        squeeze state (:meth:`SqueezeCallback.on_train_begin`). Without one the run starts over.
        """
        saved = read_accepted_state(run.path)
        finished = saved is not None and saved["state"].get("phase") == "done"
        checkpoint = None if finished else run.last_checkpoint()
        if checkpoint is not None and (checkpoint / CHECKPOINT_FILE).is_file():
            self.resumed = read_checkpoint_state(checkpoint)
            self.state = SqueezeState(**self.resumed["state"])
            modules = mpo_modules(model)
            for name, dims in self.resumed["bond_dims"].items():
                if tuple(dims) != modules[name].bond_dims:
                    modules[name].truncate_(tuple(dims))  # the shapes; the Trainer loads the values
            return checkpoint, run.resume_point(checkpoint)
        if finished or (saved is not None and not saved["exact"]):
            return None, self.restore(model, run)
        return None, 0

    def restore(self, model: nn.Module, run) -> int:
        """Resume from the last accepted step saved in ``run`` (or from the start if none was).

        Returns how many metrics lines the run had then (what comes after is done
        again); the run's records number their steps on from that step.
        """
        saved = read_accepted_state(run.path)
        if saved is None:
            return 0
        state, lines, step = saved["state"], saved["metrics_lines"], saved["step"]
        state = SqueezeState(**state)  # "done": killed after the squeeze ended; only the reports are left
        load_parameters(model, Path(run.path) / ACCEPTED_FILE)
        self.state = state
        self.restarted = True
        run.step_offset = step
        return lines if lines is not None else run.metrics_lines()

    def steps_left(self) -> bool:
        return self.state.phase != "done"

    def results(self) -> dict:
        s = self.state
        return {"squeeze": {
            "metric": self.metric, "judged_on": HELDOUT if self.heldout_examples else "dev", "delta": self.delta,
            "baseline": s.baseline, "final": s.last_accepted, "steps_accepted": s.steps_accepted,
            "stop_reason": s.stop_reason, "step_size": self.step_size, "step_unit": self.step_unit,
            "rank": self.rank, "bonds": self.bonds, "target_size": self.target_size,
            "dense_params": self.dense_params, "target_params": self.target_params, "mpo_params": self.mpo_params,
            "schedule": self.schedule, "history": s.history,
        }}


def read_accepted_state(run_path: str | Path) -> dict | None:
    """What an mpop run saved at its last accepted step: ``{"state", "step", "metrics_lines"}``, or ``None``.

    ``metrics_lines`` is ``None`` for a run of an older version (state in its own JSON file);
    ``exact`` says whether the run took Trainer checkpoints (and resumes from them).
    """
    path = Path(run_path) / ACCEPTED_FILE
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        saved = file.metadata() or {}
    if "squeeze_state" in saved:
        return {"state": loads_bounded(saved["squeeze_state"], f"{path} (squeeze_state)"), "step": int(saved["step"]),
                "metrics_lines": int(saved["metrics_lines"]), "exact": EXACT_RESUME in saved}
    legacy = Path(run_path) / STATE_FILE
    return ({"state": read_json_bounded(legacy), "step": 0, "metrics_lines": None, "exact": False}
            if legacy.is_file() else None)


def read_checkpoint_state(checkpoint: str | Path) -> dict:
    """The squeeze state saved in a Trainer checkpoint: ``{"state", "eval_at", "pending", "bond_dims", "accepted"}``.

    ``accepted``: the last accepted model's parameters that differ from the checkpoint's (``None`` before the baseline).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(checkpoint) / CHECKPOINT_FILE
    with safe_open(str(path), framework="pt") as file:
        saved = loads_bounded((file.metadata() or {})["squeeze"], f"{path} (squeeze)")
    saved["accepted"] = load_file(str(path)) if saved.pop("has_accepted") else None
    return saved


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
    """Algorithm 2 on the Trainer: cuts, evaluations and the stop tests at step ends."""

    def __init__(self, strategy: MPOPStrategy, run=None):
        self.strategy = strategy
        self.run = run
        self.accepted: dict[str, torch.Tensor] | None = None
        self.first_step = 0
        self.eval_at: int | None = None
        self.pending = None
        self.global_step = 0  # the Trainer's, at the last step end

    @property
    def step(self) -> int:
        """The run's step now (the Trainer's, numbered on after a resume)."""
        return self.global_step + (self.run.step_offset if self.run is not None else 0)

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

        metadata = {"squeeze_state": json.dumps(asdict(self.state), default=float), "step": str(self.step),
                    "metrics_lines": str(self.run.metrics_lines()), EXACT_RESUME: "1"}
        weights = save({k: v.contiguous().cpu() for k, v in self.accepted.items()}, metadata=metadata)
        atomic_write_bytes(Path(self.run.path) / ACCEPTED_FILE, weights)  # weights and state in one rename

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if args.world_size > 1:
            raise ValueError(ONE_PROCESS_ONLY)
        self.first_step = self.global_step = state.global_step
        if self.strategy.resumed is not None:  # from a Trainer checkpoint: go on exactly where it was taken
            self._take_over(self.strategy.resumed, model)
            self.strategy.resumed = None
        elif self.state.phase == "lfa":
            self.eval_at = self.first_step + self.strategy.lfa_steps
        else:  # resumed after an accepted step: the model is that step's, cut again
            self.accepted = snapshot(model)
            self._cut(model, optimizer, state, control)
        return control

    def _take_over(self, saved: dict, model) -> None:
        """The callback's state in the checkpoint the Trainer resumed from (the model is that checkpoint's)."""
        self.eval_at, self.pending = saved["eval_at"], saved["pending"]
        if saved["accepted"] is not None:
            self.accepted = {**snapshot(model), **saved["accepted"]}

    def on_save(self, args, state, control, model=None, **kwargs):
        """Put the squeeze state into the Trainer's checkpoint (before the engine marks it complete)."""
        if self.run is None or not is_main_process():
            return control
        from safetensors.torch import save

        current = dict(model.named_parameters())
        changed = {} if self.accepted is None else {  # the accepted model where it is not the current one
            name: t.contiguous().cpu() for name, t in self.accepted.items()
            if t.shape != current[name].shape or not torch.equal(t, current[name])}
        squeeze = {"state": asdict(self.state), "eval_at": self.eval_at, "pending": self.pending,
                   "has_accepted": self.accepted is not None,
                   "bond_dims": {name: list(m.bond_dims) for name, m in mpo_modules(model).items()}}
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        atomic_write_bytes(folder / CHECKPOINT_FILE, save(changed, metadata={"squeeze": json.dumps(squeeze, default=float)}))
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.global_step = state.global_step
        if self.eval_at is not None and state.global_step >= self.eval_at:
            control.should_evaluate = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, model=None, optimizer=None, **kwargs):
        if self.eval_at is None or state.global_step < self.eval_at:
            return control  # an evaluation someone else asked for (the final one on dev)
        self.eval_at = None
        key = self.strategy.eval_key
        if key not in metrics:
            raise ValueError(f"squeezing watches {key!r}, but the evaluation gave {sorted(metrics)}.")
        value = float(metrics[key])
        # 1 = the same class for every example: a model that has learned nothing (a fact the page flags)
        classes = next((int(v) for k, v in metrics.items() if k.endswith("predicted_classes")), None)
        if self.state.phase == "lfa":
            self.state.baseline = self.state.last_accepted = value
            self.state.phase = "tune"
            self._log("baseline", model, step=self.step, metric=self.strategy.metric, p=value,
                      judged_on=self._judged_on, dense_params=self.strategy.dense_params,
                      target_params=self.strategy.target_params,
                      **({} if classes is None else {"predicted_classes": classes}))
            self._save(model)
            self._cut(model, optimizer, state, control)
        else:
            self._judge(value, model, optimizer, state, control)
        if self.state.phase != "done":  # a checkpoint at each accepted step (and its next cut): resumed from there
            control.should_save = True
        return control

    @property
    def _judged_on(self) -> str:
        return HELDOUT if self.strategy.heldout_examples else "dev"

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        """Training stopped from outside (a stop button, the step limit): never keep an unjudged cut."""
        if self.state.phase == "done":
            return control
        if self.state.phase == "lfa":
            reason = "training ended during lightweight fine-tuning, before squeezing"
        else:
            load_parameters(model, self.accepted)
            reason = "training ended before the last cut was evaluated; it was undone"
        self._stop(model, control, reason, final=True)
        return control

    def _rules(self, value: float) -> dict:
        """Whether ``p~ = value`` is within delta of the baseline under each stop rule."""
        change, delta = self.state.baseline - value, self.strategy.delta
        return {"within_change": abs(change) <= delta, "within_drop": change <= delta}

    def _within(self, value: float) -> bool:
        if self.strategy.stop_on == "never":
            return True
        return self._rules(value)[f"within_{self.strategy.stop_on}"]

    def _target_reached(self, model) -> str | None:
        """The stop reason once #To is at the target size, else ``None``."""
        target, total = self.strategy.target_params, parameter_summary(model)["total_params"]
        if target is None or total > target:
            return None
        return (f"target size reached: #To {total} <= {self.strategy.target_size} x dense "
                f"{self.strategy.dense_params} = {target}")

    def _judge(self, value, model, optimizer, state, control) -> None:
        move, s = self.pending, self.state
        accepted = self._within(value)
        record = {"squeeze_step": s.steps_accepted + 1, "step": self.step, **move,
                  "metric": self.strategy.metric, "judged_on": self._judged_on, "p": s.baseline,
                  "p_tilde": value, **self._rules(value), "accepted": accepted}
        if accepted:
            s.steps_accepted += 1
            s.last_accepted = value
            record["total_params"] = parameter_summary(model)["total_params"]
        s.history.append(record)
        self._log("step", model, **record)
        if not accepted:
            load_parameters(model, self.accepted)
            reset_optimizer_state(optimizer, model.parameters())
            self._stop(model, control, f"|p - p~| = {abs(s.baseline - value):.4g} > delta = {self.strategy.delta}",
                       final=True)
            return
        reason = self._target_reached(model)
        if reason is None and s.steps_accepted >= self.strategy.squeeze_steps:
            self._stop(model, control, "step budget spent", final=True)
            return
        if reason is not None:
            self._stop(model, control, reason)
            return
        self._save(model)
        self._cut(model, optimizer, state, control)

    def _cut(self, model, optimizer, state, control) -> None:
        reason = self._target_reached(model)
        if reason is not None:  # e.g. a target above the full-bond MPO's size
            self._stop(model, control, reason)
            return
        strategy, modules = self.strategy, mpo_modules(model)
        need = strategy.params_per_cut(parameter_summary(model)["total_params"])
        moves = all_moves(modules, strategy.step_size, strategy.bonds, params_to_remove=need, data=strategy.data_metric)
        move = best_move(moves, strategy.error, strategy.rank)
        if move is None:
            self._stop(model, control, "every candidate bond is 1" if need is None
                       else f"no candidate bond can remove {need} more parameters")
            return
        module = modules[move.name]
        truncation = apply_move(module, move)
        reset_optimizer_state(optimizer, module.tensors)
        move_record = move.to_dict()
        self.pending = {"matrix": move_record.pop("name"), **move_record, "error_bound": truncation.error_bound,
                        "params_to_remove": need}
        self._log("cut", model, step=self.step, **self.pending)
        self.eval_at = state.global_step + strategy.tune_steps

    def _stop(self, model, control, reason: str, final: bool = False) -> None:
        self.state.phase = "done"
        self.state.stop_reason = reason
        self.eval_at = None
        # fill_budget: a squeeze that ends early (target reached, nothing left to cut) tunes on for the steps
        # left; a rejected cut or a spent budget ends the run as in the paper
        control.should_training_stop = final or not self.strategy.fill_budget
        self._log("stop", model, reason=reason, steps_accepted=self.state.steps_accepted,
                  p=self.state.baseline, final=self.state.last_accepted)
        self._save(model)  # after the record: a run resumed from here keeps it


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
    results = read_json_object(file)  # bounded; a torn, deep or non-object file: ValueError naming it
    dims = results.get("bond_dims") or {}
    if not dims:
        raise ValueError(f"{file} records no MPO bond dims: was it an MPO run?")
    if not isinstance(dims, dict):
        raise ValueError(f"{file}: bond_dims must be a JSON object from layer name to a list of positive ints, "
                         f"got {type(dims).__name__}.")
    dims = {name: check_positive_ints(d, f"{file}: bond_dims[{name!r}]") for name, d in dims.items()}
    mpo_config = results
    for key in ("config", "strategy_options", "mpo_config"):  # results["config"]["strategy_options"]["mpo_config"]
        mpo_config = mpo_config.get(key) if isinstance(mpo_config, dict) else None
    if mpo_config is not None and not isinstance(mpo_config, dict):
        raise ValueError(f"{file}: config.strategy_options.mpo_config must be a JSON object, "
                         f"got {type(mpo_config).__name__}.")
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
