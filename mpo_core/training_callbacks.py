"""Trainer callbacks of the training engine (no forks of the loop)."""
from __future__ import annotations

from transformers import TrainerCallback

from .parameter_count import parameter_summary
from .run_folder import RunFolder


class MetricsStreamCallback(TrainerCallback):
    """Append every log and evaluation to the run's ``metrics.jsonl``, with #Pr/#To."""

    def __init__(self, run: RunFolder, model):
        self.run = run
        self.model = model

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            kind = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            self.run.append_metrics({"kind": kind, "step": state.global_step, "epoch": state.epoch, **logs, **parameter_summary(self.model)})
