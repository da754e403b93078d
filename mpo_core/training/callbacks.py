"""Trainer callbacks of the training engine (no forks of the loop)."""
from __future__ import annotations

import math
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..model.parameter_count import parameter_summary
from ..runs.run_folder import RunFolder


class MetricsStreamCallback(TrainerCallback):
    """Append every log and evaluation to the run's ``metrics.jsonl``, with #Pr/#To."""

    def __init__(self, run: RunFolder, model):
        self.run = run
        self.model = model

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            kind = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            self.run.append_metrics({"kind": kind, "step": self.run.step(state.global_step), "epoch": state.epoch, **logs, **parameter_summary(self.model)})


class StopFileCallback(TrainerCallback):
    """End training cleanly once the run folder holds a ``STOP`` file (e.g. from a dashboard's stop button).

    The Trainer then finishes as after its last step: strategies' end-of-training
    hooks run, the final evaluation and ``results.json`` are written. Under
    torchrun every rank stops at the same step: rank 0 looks at the file and
    the others learn its answer (one tiny ``all_reduce`` per step), else a rank
    that saw the file a step earlier would leave the others waiting in a collective.
    """

    def __init__(self, run: RunFolder):
        self.run = run

    def _requested(self, args) -> bool:
        requested = self.run.stop_requested() if self.run.writer else False
        if args.world_size <= 1:
            return requested
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return requested
        flag = torch.tensor([1.0 if requested else 0.0], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested(args) and not control.should_training_stop:
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.run.append_metrics({"kind": "stop_requested", "step": self.run.step(state.global_step)})
        return control


class CompleteCheckpointCallback(TrainerCallback):
    """Mark each Trainer checkpoint whole once the Trainer has written all of it (``complete.json``).

    ``on_save`` runs after the Trainer's last checkpoint file, so a run killed
    while saving leaves a checkpoint without the mark, which resuming skips.
    """

    def __init__(self, run: RunFolder):
        self.run = run

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                self.run.mark_checkpoint_complete(folder, state.global_step)
        return control


class DivergenceCallback(TrainerCallback):
    """Stop training once the training loss is not finite (NaN/Inf: e.g. a learning rate far too high).

    ``step`` is then the step it was seen at; the run still writes its results
    (with ``diverged`` set), and the command line exits with an error.
    """

    def __init__(self, run: RunFolder):
        self.run = run
        self.step: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and self.step is None:
            self.step = self.run.step(state.global_step)
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.run.append_metrics({"kind": "diverged", "step": self.step})
        return control


class ProgressCallback(TrainerCallback):
    """Training steps ``n of N`` to a :class:`~mpo_core.runs.progress_file.ProgressFile` (a watcher's progress bar)."""

    def __init__(self, progress, threads=None):
        self.progress = progress
        self.threads = threads  # a ThreadBudget, reported beside the steps

    def _threads(self) -> dict:
        return {} if self.threads is None else {"threads": self.threads.threads}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress.phase("training", done=state.global_step, total=state.max_steps, unit="steps",
                                **self._threads())
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress.advance(state.global_step, total=state.max_steps, **self._threads())
        return control
