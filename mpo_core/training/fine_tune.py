"""The one training engine: GLUE fine-tuning on transformers' ``Trainer``.

CPU, one GPU (bf16/fp16 autocast) and several GPUs (``torchrun`` /
``accelerate launch``) run the same code: ``Trainer`` handles devices and
distribution. Strategies decide what trains (and add callbacks); this module
only wires data, model, strategy and the run folder together.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from .fine_tune_config import FineTuneConfig
from ..data.glue import get_task, load_glue_split, tokenize_split
from ..data.metrics import compute_glue_metrics
from ..model.parameter_count import count_parameters, parameter_summary
from ..model.sequence_classifier import load_sequence_classifier
from ..model.checkpoint import save_mpo_model
from ..runs.run_folder import CHECKPOINTS, FINAL_MODEL, STOP_FILE, RunFolder, is_main_process
from .strategies import get_strategy
from ..model.surgery import mpo_modules
from .callbacks import MetricsStreamCallback, StopFileCallback


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
    data_dir = None if config.hub_data else config.data_dir
    options = {"seed": config.seed, "hub": config.hub_data}
    train = load_glue_split(config.task, "train", data_dir, max_examples=config.max_train_examples, **options)
    dev = load_glue_split(config.task, "dev", data_dir, max_examples=config.max_eval_examples, **options)
    return tokenize_split(train, tokenizer, config.max_length), tokenize_split(dev, tokenizer, config.max_length)


def training_arguments(config: FineTuneConfig, run: RunFolder, device: str, precision: str, overrides=None):
    """``TrainingArguments`` of a run; a strategy's ``overrides`` (e.g. its step count) win."""
    from transformers import TrainingArguments

    arguments = dict(
        output_dir=str(run.path / CHECKPOINTS),
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, warmup_steps=config.warmup_steps,
        eval_strategy="steps", eval_steps=config.eval_steps,
        logging_strategy="steps", logging_steps=config.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        seed=config.seed, data_seed=config.seed, report_to="none",
        use_cpu=device == "cpu", bf16=precision == "bf16", fp16=precision == "fp16",
        dataloader_num_workers=0, lr_scheduler_type=config.lr_scheduler_type,
    )
    arguments.update(overrides or {})
    return TrainingArguments(**arguments)


def _metrics_function(task: str):
    def compute(prediction):
        scores = compute_glue_metrics(task, prediction.predictions, prediction.label_ids)
        return {k: v for k, v in scores.items() if k != "main_name"}

    return compute


def _versions() -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def fine_tune(config: FineTuneConfig, resume: bool = False, callbacks=()) -> dict:
    """Fine-tune ``config.model`` on ``config.task`` with ``config.strategy``; returns the results record.

    Everything goes to ``<runs_dir>/<run_name>``: config, metrics stream,
    checkpoints and ``results.json``. With ``resume=True`` an interrupted run
    continues from its last checkpoint. ``callbacks`` are extra
    ``TrainerCallback`` objects (e.g. a dashboard's stop button).
    """
    from transformers import DataCollatorWithPadding, Trainer

    run_path = Path(config.runs_dir) / config.run_name
    if is_main_process():
        RunFolder.check(run_path, resume)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(config)
    train, dev = load_data(config, tokenizer)  # bad input fails here, before a run folder exists
    strategy = get_strategy(config.strategy, config.strategy_options)
    strategy.bind(config)
    strategy.prepare(model)
    run = RunFolder(run_path, resume=resume)
    if not resume:
        run.write_json("config.json", config.to_dict())
    elif not strategy.uses_trainer_checkpoints:
        strategy.restore(model, run)
    if run.writer:  # a resumed run was asked to stop before, not now
        (run.path / STOP_FILE).unlink(missing_ok=True)
    trainer = Trainer(
        model=model, args=training_arguments(config, run, device, precision, strategy.training_overrides()),
        train_dataset=train, eval_dataset=dev, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=_metrics_function(config.task),
        callbacks=[MetricsStreamCallback(run, model), StopFileCallback(run), *strategy.callbacks(run), *callbacks],
    )
    run.append_metrics({"kind": "start", "device": device, "precision": precision, **parameter_summary(model)})
    start = time.perf_counter()
    from_checkpoint = resume and strategy.uses_trainer_checkpoints and run.has_checkpoint()
    trainer.train(resume_from_checkpoint=True if from_checkpoint else None)
    strategy.finish(trainer.model, run)
    seconds = time.perf_counter() - start
    final = trainer.evaluate()
    if config.save_model and run.writer:
        save_mpo_model(trainer.model, run.path / FINAL_MODEL)
        tokenizer.save_pretrained(run.path / FINAL_MODEL)
    results = _results(config, trainer.model, final, seconds, device, precision, len(train), len(dev))
    results.update(strategy.results())
    run.write_json("results.json", results)
    run.append_metrics({"kind": "end", **{k: v for k, v in results.items() if np.isscalar(v)}})
    return results


def _results(config, model, final, seconds, device, precision, num_train, num_dev) -> dict:
    task = get_task(config.task)
    count = count_parameters(model)
    return {
        "run_name": config.run_name, "task": task.name, "strategy": config.strategy,
        "metric": task.metric, "score": final.get(f"eval_{task.metric}"),
        "eval": {k.removeprefix("eval_"): v for k, v in final.items()},
        "trainable_params": count.trainable, "total_params": count.total,
        "trainable_millions": count.trainable_millions, "total_millions": count.total_millions,
        "bond_dims": {name: list(m.bond_dims) for name, m in mpo_modules(model).items()},
        "num_train_examples": num_train, "num_eval_examples": num_dev,
        "wall_seconds": seconds, "device": device, "precision": precision,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "seed": config.seed, "versions": _versions(), "config": config.to_dict(),
    }
