"""The one training engine: GLUE fine-tuning on transformers' ``Trainer``.

CPU, one GPU (bf16/fp16 autocast) and several GPUs (``torchrun`` /
``accelerate launch``) run the same code: ``Trainer`` handles devices and
distribution. Strategies decide what trains (and add callbacks); this module
only wires data, model, strategy and the run folder together.

A strategy that judges its own moves (``mpop``) asks for a held-out slice of
the training data (:meth:`Strategy.heldout_size`): it is split off the
training set before training, and is what the Trainer evaluates during
training (as ``eval_heldout_*``); the dev set is evaluated once, at the end,
for the report. A strategy may also set the learning rate per step
(:meth:`Strategy.lr_lambda`), which the Trainer then uses as its scheduler.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .fine_tune_config import FineTuneConfig
from ..data.evaluation_set import EvaluationSet, split_evaluation_slice, subset
from ..data.glue import get_task, hold_out, load_glue_split, tokenize_split
from ..data.metrics import compute_glue_metrics, predicted_classes
from ..model.parameter_variation import matrix_snapshot, relative_change
from ..model.parameter_count import count_parameters, parameter_summary
from ..model.sequence_classifier import load_sequence_classifier
from ..model.checkpoint import save_mpo_model
from ..runs.adapter import save_adapter
from ..runs.provenance import commit
from ..runs.run_folder import (ADAPTER, CHECKPOINTS, FINAL_MODEL, STOP_FILE, RunFolder, is_main_process,
                               is_write_failure, read_config)
from .strategies import get_strategy
from .strategy import HELDOUT
from ..model.surgery import mpo_modules
from .callbacks import (CompleteCheckpointCallback, DivergenceCallback, MetricsStreamCallback, ProgressCallback,
                        StopFileCallback)
from ..runs.progress_file import ProgressFile


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available; use device='auto' or 'cpu'.")
    return device


def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        if precision in ("bf16", "fp16") and device == "cpu":
            raise ValueError(f"precision={precision} needs a GPU here; use fp32 on the CPU.")
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def load_model_and_tokenizer(config: FineTuneConfig):
    """Tokenizer and sequence-classification model (local folder, hub name, or the packaged default)."""
    return load_sequence_classifier(config.task, config.model, config.num_hidden_layers)


def load_data(config: FineTuneConfig, tokenizer):
    """Tokenized train and dev splits (honest seeded subsets when asked)."""
    data = load_run_data(config, tokenizer)
    return data.train, data.dev


@dataclass
class RunData:
    """The tokenized splits of a run: train, the held-out slice of train (or ``None``), dev."""

    train: object
    heldout: object
    dev: object
    heldout_indices: list  # source positions (in the training file) of the held-out examples
    evaluation_slice: object = None  # the fixed slice of the training file scored with dev, or None
    evaluation_set: EvaluationSet | None = None  # what kept predictions align with
    train_texts: list = field(default_factory=list)  # the training examples' sentences (both texts of a pair)

    def sizes(self) -> dict:
        return {"num_train_examples": len(self.train), "num_heldout_examples": len(self.heldout or ()),
                "num_eval_examples": len(self.dev),
                **({"evaluation_set": self.evaluation_set.to_dict()} if self.evaluation_set else {})}


def load_run_data(config: FineTuneConfig, tokenizer, strategy=None) -> RunData:
    """Train and dev splits, and the training examples ``strategy`` holds out (seeded, disjoint from train)."""
    data_dir = None if config.hub_data else config.data_dir
    options = {"seed": config.seed, "hub": config.hub_data}
    part = None
    if config.evaluation_slice:  # the fixed slice out of the whole file first, then the run's draws from the rest
        whole = load_glue_split(config.task, "train", data_dir, **options)
        pool, part = split_evaluation_slice(whole, config.evaluation_slice)
        train = subset(pool, config.max_train_examples, config.seed)
    else:
        train = load_glue_split(config.task, "train", data_dir, max_examples=config.max_train_examples, **options)
    dev = load_glue_split(config.task, "dev", data_dir, max_examples=config.max_eval_examples, **options)
    size = (strategy.heldout_size(len(train)) if strategy is not None else 0) or config.heldout_examples
    if size >= len(train):
        raise ValueError(f"heldout_examples: cannot hold out {size} of the {len(train)} training examples "
                         f"and still train; give fewer.")
    train, heldout = hold_out(train, size, config.seed)

    def tokenize(split):
        return tokenize_split(split, tokenizer, config.max_length)

    evaluation = EvaluationSet(len(dev), tuple(part.indices) if part is not None else ())
    return RunData(tokenize(train), tokenize(heldout) if size else None, tokenize(dev), list(heldout.indices),
                   tokenize(part) if part is not None else None,
                   evaluation if (config.keep_predictions or part is not None) else None,
                   list(train.texts_a) + list(train.texts_b or []))


def training_arguments(config: FineTuneConfig, run: RunFolder, device: str, precision: str, overrides=None):
    """``TrainingArguments`` of a run; a strategy's ``overrides`` (e.g. its step count) win."""
    arguments = dict(
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, warmup_steps=config.warmup_steps,
        eval_strategy="steps", eval_steps=config.eval_steps,
        logging_steps=config.logging_steps, save_steps=config.save_steps, lr_scheduler_type=config.lr_scheduler_type,
        **({"lr_scheduler_kwargs": {"num_decay_steps": config.decay_steps, "decay_type": "linear"}}
           if config.decay_steps else {}),
    )
    arguments.update(overrides or {})
    return engine_arguments(run, config.seed, device, precision, **arguments)


def engine_arguments(run: RunFolder, seed: int, device: str, precision: str, **options):
    """``TrainingArguments`` every run of the engine shares (checkpoints in the run folder, seeded, no reporting),
    updated with a run's ``options`` (steps, batch size, learning rate, intervals, ...)."""
    from transformers import TrainingArguments

    arguments = dict(
        output_dir=str(run.path / CHECKPOINTS),
        logging_strategy="steps", logging_first_step=True,
        save_strategy="steps", save_total_limit=2,
        seed=seed, data_seed=seed, report_to="none",
        use_cpu=device == "cpu", bf16=precision == "bf16", fp16=precision == "fp16",
        dataloader_num_workers=0,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN: DivergenceCallback stops the run
    )
    arguments.update(options)
    return TrainingArguments(**arguments)


class CheckpointWriteError(OSError):
    """A Trainer checkpoint could not be written (a full disk, most often); the run stays resumable."""


def engine_trainer(strategy, loss=None, **kwargs):
    """transformers' ``Trainer``, whose scheduler is the strategy's :meth:`~Strategy.lr_lambda` when it has one.

    ``loss``, when given, replaces the model's own loss: ``loss(model, inputs) -> (loss, outputs)`` (healing's
    distillation loss, which needs the teacher's outputs on the batch).
    """
    from torch.optim.lr_scheduler import LambdaLR
    from transformers import Trainer
    from transformers.trainer_callback import DefaultFlowCallback

    class EngineFlowCallback(DefaultFlowCallback):
        """transformers' flow, without its extra evaluation at the last step when that step is off the ``eval_steps``
        grid: :func:`fine_tune` evaluates after training anyway (dev, and the held-out slice), so that evaluation
        doubled each run's final one. A strategy that needs an evaluation there (``mpop`` judging its last cut)
        asks for it in its own callback, which runs after this one."""

        def on_step_end(self, args, state, control, **kwargs):
            control = super().on_step_end(args, state, control, **kwargs)
            if state.global_step >= state.max_steps and state.eval_steps and state.global_step % state.eval_steps:
                control.should_evaluate = False
            return control

    class EngineTrainer(Trainer):
        def __init__(self, **trainer_kwargs):
            super().__init__(**trainer_kwargs)
            # GLUE heads return their batch's mean loss and ignore ``num_items_in_batch``; were it passed, the
            # Trainer would multiply the loss by the number of processes (torchrun: doubled losses, grads, clipping)
            self.model_accepts_loss_kwargs = False
            handlers = self.callback_handler.callbacks  # in place: the flow callback keeps its place, first
            handlers[:] = [EngineFlowCallback() if type(c) is DefaultFlowCallback else c for c in handlers]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if loss is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            value, outputs = loss(model, inputs)
            return (value, outputs) if return_outputs else value

        def _run_epoch(self, *args, **kwargs):
            # resumed from the checkpoint of the last step: the Trainer would take one step past max_steps before
            # its flow callback looks; nothing is left to train, only what follows training (its end, the reports)
            if self.state.global_step >= self.state.max_steps > 0:
                self.control.should_training_stop = True
                return None
            return super()._run_epoch(*args, **kwargs)

        def _save_checkpoint(self, model, trial):
            try:
                return super()._save_checkpoint(model, trial)
            except Exception as exc:
                if not is_write_failure(exc):
                    raise
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise CheckpointWriteError(
                    f"could not write checkpoint-{self.state.global_step} to {self.args.output_dir} ({detail}); "
                    "free disk space, then resume the run (--resume): the incomplete checkpoint is discarded."
                ) from exc

        def create_scheduler(self, num_training_steps, optimizer=None):
            factor = strategy.lr_lambda(self.args) if self.lr_scheduler is None else None
            if factor is not None:
                self.lr_scheduler = LambdaLR(optimizer if optimizer is not None else self.optimizer, factor)
                self._created_lr_scheduler = True  # as the Trainer marks its own: rebuilt by a next train()
            return super().create_scheduler(num_training_steps, optimizer)

    return EngineTrainer(**kwargs)


def _metrics_function(task: str):
    def compute(prediction):
        scores = compute_glue_metrics(task, prediction.predictions, prediction.label_ids)
        classes = predicted_classes(task, prediction.predictions)  # 1: a constant prediction, learned nothing
        return {k: v for k, v in scores.items() if k != "main_name"} | (
            {} if classes is None else {"predicted_classes": classes})

    return compute


def _versions() -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def fine_tune(config: FineTuneConfig, resume: bool = False, callbacks=(), progress: ProgressFile | None = None,
              threads=None) -> dict:
    """Fine-tune ``config.model`` on ``config.task`` with ``config.strategy``; returns the results record.

    Everything goes to ``<runs_dir>/<run_name>``: config, metrics stream,
    checkpoints and ``results.json``. With ``resume=True`` an interrupted run
    continues from its last checkpoint. ``callbacks`` are extra
    ``TrainerCallback`` objects (e.g. a dashboard's stop button). ``progress``
    (a :class:`~mpo_core.runs.progress_file.ProgressFile`) gets every phase from
    the first second, and the training steps; ``threads`` (a
    :class:`~mpo_core.runs.thread_budget.ThreadBudget`) is updated after every step.
    """
    from transformers import DataCollatorWithPadding

    progress = progress if progress is not None else ProgressFile(None)
    if threads is not None:
        from ..runs.thread_budget import thread_callback

        callbacks = (*callbacks, thread_callback(threads))
    callbacks = (*callbacks, ProgressCallback(progress, threads))

    run_path = Path(config.runs_dir) / config.run_name
    if is_main_process():
        RunFolder.check(run_path, resume)
    if resume:
        check_resume_config(config, run_path)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    progress.phase("loading the model")
    model, tokenizer = load_model_and_tokenizer(config)
    strategy = get_strategy(config.strategy, config.strategy_options)
    progress.phase("reading the data")
    data = load_run_data(config, tokenizer, strategy)  # bad input fails here, before a run folder exists
    strategy.bind(config)
    strategy.bind_training_texts(data.train_texts)
    pretrained = matrix_snapshot(model)  # before the surgery: how far training moves each group, at the end
    progress.phase(f"preparing the model ({strategy.name})")
    strategy.prepare(model)
    run = RunFolder(run_path, resume=resume)
    with run:  # held by this process until it is done, however it ends
        checkpoint = None
        if not resume:
            _write_config(run, config)
        else:
            checkpoint, rewind = _resume_point(strategy, model, run)
            run.rewind_metrics(rewind)  # what came after the resume point is done again: logged once
        if run.writer:  # a resumed run was asked to stop before, not now
            (run.path / STOP_FILE).unlink(missing_ok=True)
        divergence = DivergenceCallback(run)
        trainer = engine_trainer(
            strategy, model=model, args=training_arguments(config, run, device, precision, strategy.training_overrides()),
            train_dataset=data.train, eval_dataset={HELDOUT: data.heldout} if data.heldout is not None else data.dev,
            processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=_metrics_function(config.task),
            # the completion mark after the strategy's callbacks: what they add to a checkpoint (mpop's squeeze
            # state) is in it before it counts
            callbacks=[MetricsStreamCallback(run, model), StopFileCallback(run), divergence, *strategy.callbacks(run),
                       CompleteCheckpointCallback(run), *callbacks],
        )
        resumed = resume and run.metrics_lines() > 0  # else nothing was kept: the run starts over
        run.append_metrics({"kind": "resume" if resumed else "start", "device": device, "precision": precision,
                            **({"checkpoint": checkpoint.name if checkpoint else None} if resumed else {}),
                            **data.sizes(), **parameter_summary(model)})
        start = time.perf_counter()
        if strategy.steps_left():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
        strategy.finish(trainer.model, run)
        seconds = time.perf_counter() - start
        history = list(trainer.state.log_history)  # the evaluations during training, before the final ones
        progress.phase("evaluating on the dev set", examples=len(data.dev))
        final = trainer.evaluate(eval_dataset=data.dev)  # the report: always the dev set
        heldout = None if data.heldout is None else trainer.evaluate(eval_dataset=data.heldout,
                                                                     metric_key_prefix=f"eval_{HELDOUT}")
        if config.save_model and run.writer:
            with run.final_write(FINAL_MODEL) as folder:  # a full disk: one message, the run stays resumable
                save_mpo_model(trainer.model, folder)
                tokenizer.save_pretrained(folder)
        if config.save_adapter and run.writer:
            with run.final_write(ADAPTER) as folder:
                save_adapter(trainer.model, folder, base_model=config.model, task=config.task,
                             num_hidden_layers=config.num_hidden_layers, strategy=config.strategy)
        results = _results(config, trainer.model, final, seconds, device, precision, data)
        if data.evaluation_set is not None:
            results.update(_evaluation_results(config, trainer, data))
        results.update(_heldout_results(config, heldout), curve=learning_curve(history, config.task),
                       global_step=run.step(trainer.state.global_step), diverged=divergence.step, weight_change=relative_change(pretrained, trainer.model))
        results.update(strategy.results())
        with run.final_write("results.json"):
            run.write_json("results.json", results)
        progress.phase("done")
        run.append_metrics({"kind": "end", **{k: v for k, v in results.items() if np.isscalar(v)}})
        return results


def _write_config(run: RunFolder, config: FineTuneConfig) -> None:
    """The run's ``config.json``; if it cannot be written (disk full), the new folder goes again: a rerun can start."""
    try:
        run.write_json("config.json", config.to_dict())
    except BaseException:
        run.abandon()
        raise


#: options a resumed run may change: where it runs, not what it computes
RESUME_MAY_DIFFER = ("device", "runs_dir")


def check_resume_config(config, run_path: Path) -> None:
    """A resumed run continues with the run's own ``config.json``; a differing option is an error naming it.

    ``config`` is the run's typed config (:class:`FineTuneConfig`, :class:`~.healing_config.HealConfig`):
    the stored one is read back with its class's ``from_dict``.
    """
    stored = type(config).from_dict(read_config(run_path)).to_dict()
    given = config.to_dict()
    differ = [f"{key} (the run has {stored.get(key)!r}, given {given.get(key)!r})"
              for key in sorted(set(stored) | set(given))
              if key not in RESUME_MAY_DIFFER and _normal(key, stored.get(key)) != _normal(key, given.get(key))]
    if differ:
        raise ValueError(f"cannot resume {run_path} with other options: {'; '.join(differ)}. "
                         "Resume with the run's own config.json (--resume --run-name NAME, nothing else).")


#: options that name a file or folder: one folder spelled two ways (``glue`` / ``./glue/``) is the same option
PATH_OPTIONS = ("model", "data_dir")


def _normal(key: str, value):
    if key in PATH_OPTIONS and isinstance(value, str) and value:
        return str(Path(value).expanduser().resolve())
    if key == "strategy_options" and isinstance(value, dict) and isinstance(value.get("bond_dims_from"), str):
        value = {**value, "bond_dims_from": str(Path(value["bond_dims_from"]).expanduser().resolve())}
    return json.loads(json.dumps(value, default=str))


def _resume_point(strategy, model, run: RunFolder):
    """Where a resumed run continues: ``(Trainer checkpoint or None, metrics lines to keep)``.

    Half-written checkpoints (a kill while saving) are deleted first; then the
    strategy chooses (:meth:`~mpo_core.training.strategy.Strategy.resume`).
    """
    run.discard_incomplete_checkpoints()
    return strategy.resume(model, run)


def _heldout_results(config, heldout: dict | None) -> dict:
    """The task metric on the held-out training examples at the end (``None`` without a held-out slice)."""
    if heldout is None:
        return {"heldout_score": None}
    prefix = f"eval_{HELDOUT}_"
    return {"heldout_score": heldout.get(f"{prefix}{get_task(config.task).metric}"),
            "heldout_eval": {k.removeprefix(prefix): v for k, v in heldout.items()}}


def _evaluation_results(config, trainer, data: RunData) -> dict:
    """The final model on the fixed evaluation set (dev, then the slice): its score and, if kept, every prediction.

    Predictions are class ids (classification) or scores rounded to 4 decimals (STS-B), in the order of
    :class:`~mpo_core.data.evaluation_set.EvaluationSet`; ``predicted_classes`` counts distinct classes
    over the whole set (1 = one class for every example: the run learned nothing).
    """
    task = get_task(config.task)
    parts = [data.dev] + ([data.evaluation_slice] if data.evaluation_slice is not None else [])
    outputs = [trainer.predict(part, metric_key_prefix="predict") for part in parts]
    logits = np.concatenate([np.asarray(o.predictions) for o in outputs])  # (N, C) or (N, 1)
    labels = np.concatenate([np.asarray(o.label_ids) for o in outputs])
    scores = compute_glue_metrics(task, logits, labels)
    values = (logits.reshape(-1) if task.is_regression else logits.argmax(axis=1))
    out = {"evaluation_score": scores.get(task.metric), "evaluation_eval": scores,
           "evaluation_predicted_classes": predicted_classes(task, logits)}
    if config.keep_predictions:
        out["predictions"] = ([round(float(v), 4) for v in values] if task.is_regression
                              else [int(v) for v in values])
    return out


def learning_curve(log_history: list, task: str) -> list[dict]:
    """The task metric at every evaluation during training: ``[{"step", "split", "score"}]``.

    ``split`` is ``"dev"`` (runs without a held-out slice evaluate dev every
    ``eval_steps``) or ``"heldout"``. The final evaluations after training are not in it.
    """
    metric = get_task(task).metric
    keys = {f"eval_{metric}": "dev", f"eval_{HELDOUT}_{metric}": HELDOUT}
    return [{"step": entry["step"], "split": split, "score": entry[key]}
            for entry in log_history for key, split in keys.items() if key in entry and "step" in entry]


def _results(config, model, final, seconds, device, precision, data: RunData) -> dict:
    task = get_task(config.task)
    count = count_parameters(model)
    return {
        "run_name": config.run_name, "task": task.name, "strategy": config.strategy,
        "metric": task.metric, "score": final.get(f"eval_{task.metric}"),
        "eval": {k.removeprefix("eval_"): v for k, v in final.items()},
        "trainable_params": count.trainable, "total_params": count.total,
        "trainable_millions": count.trainable_millions, "total_millions": count.total_millions,
        "bond_dims": {name: list(m.bond_dims) for name, m in mpo_modules(model).items()},
        **data.sizes(), "heldout_indices": data.heldout_indices,
        "wall_seconds": seconds, "device": device, "precision": precision,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "seed": config.seed, "versions": _versions(), "commit": commit(), "config": config.to_dict(),
    }
