"""Healing: a compressed model (the *student*) learns to reproduce its original (the *teacher*) on unlabeled text.

The student is a copy of the teacher whose matrices became MPO layers with
truncated bonds (:func:`~mpo_core.model.surgery.apply_mpo`); truncation moved
its outputs, and healing moves them back by distillation
(:mod:`~mpo_core.training.distillation`): hidden states layer by layer, the
mean-pooled sentence embedding, and for a task model its logits. The teacher
runs in eval mode without gradients, batch by batch as training goes.

Only MPO tensors train (:class:`HealStrategy`), and the run goes through the
one training engine (:func:`~mpo_core.training.fine_tune.engine_trainer`), so
it has what every run has: the run folder with ``config.json`` and the metrics
stream, Trainer checkpoints, the run lock, and a resume after a kill that ends
bit for bit where the uninterrupted run ends::

    <run_dir>/
        config.json       the HealConfig
        sentences.json    how many sentences, and their SHA-256 (a resume must get the same)
        metrics.jsonl     start/resume, train (every logging_steps), end
        checkpoints/      Trainer checkpoints (every save_steps)
        final_model/      the healed student (save_mpo_model) and the tokenizer
        results.json      written last
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..layers.mpo_module import MPOModule
from ..model.checkpoint import save_mpo_model
from ..model.parameter_count import count_parameters, parameter_summary
from ..model.surgery import mpo_modules
from ..runs.run_folder import FINAL_MODEL, STOP_FILE, RunFolder, is_main_process
from .callbacks import CompleteCheckpointCallback, DivergenceCallback, MetricsStreamCallback, StopFileCallback
from .distillation import distillation_terms, weighted_loss
from .fine_tune import (_versions, _write_config, check_resume_config, engine_arguments, engine_trainer,
                        resolve_device, resolve_precision)
from .healing_config import HealConfig
from .strategy import Strategy, _freeze_all

SENTENCES_FILE = "sentences.json"


@dataclass
class HealStrategy(Strategy):
    """Which tensors heal: ``variant="auxiliary"`` trains only the MPO layers' auxiliary tensors (every central
    tensor and every parameter outside MPO layers frozen); ``variant="all"`` trains every MPO tensor (everything
    outside MPO layers frozen). The model must already hold MPO layers; no surgery happens here."""

    name: str = "heal"
    description: str = "distil the teacher into the compressed student's MPO tensors"
    variant: str = "auxiliary"

    def prepare(self, model: nn.Module, progress: bool = True) -> nn.Module:
        layers = [m for m in model.modules() if isinstance(m, MPOModule)]
        if not layers:
            raise ValueError(f"the student ({type(model).__name__}) has no MPO layers: compress a copy of the teacher "
                             "first (apply_mpo(student, MPOConfig(compression_ratio=...))).")
        _freeze_all(model)
        for layer in layers:
            for tensor in (layer.auxiliary_tensors if self.variant == "auxiliary" else layer.tensors):
                tensor.requires_grad_(True)
        return model


def tokenize_sentences(tokenizer, sentences: Sequence[str], max_length: int) -> list[dict]:
    """One unpadded example (``input_ids``, ``attention_mask``, ...) per sentence; the collator pads each batch."""
    encoded = tokenizer(list(sentences), truncation=True, max_length=max_length)
    return [{key: encoded[key][i] for key in encoded} for i in range(len(sentences))]


def distillation_loss(teacher: nn.Module, config: HealConfig, terms_out: dict | None = None):
    """The engine's ``loss(model, inputs) -> (loss, student outputs)``: both models on the batch, then
    :func:`~mpo_core.training.distillation.weighted_loss` of the terms the outputs allow (the last batch's
    terms are put in ``terms_out`` when given)."""
    weights = {"hidden": config.hidden_weight, "cosine": config.cosine_weight, "logits": config.logits_weight}

    def loss(model, inputs):
        inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if model.training and not config.student_dropout:
            model.eval()  # no dropout (MPO layers act alike in both modes); the Trainer sets train() every step
        student = model(**inputs, output_hidden_states=True)
        with torch.no_grad():
            target = teacher(**inputs, output_hidden_states=True)
        terms = distillation_terms(student, target, inputs["attention_mask"], config.temperature)
        if terms_out is not None:
            terms_out.clear(), terms_out.update(terms)
        return weighted_loss(terms, weights), student

    return loss


@torch.no_grad()
def evaluate_distillation(student: nn.Module, teacher: nn.Module, tokenizer, sentences: Sequence[str],
                          config: HealConfig | None = None, *, batch_size: int = 64) -> dict[str, float]:
    """The distillation loss on ``sentences`` with both models in eval mode (no dropout): ``{"loss", term: value}``,
    each the mean over sentences. Both models are left in the mode they were in."""
    from transformers import DataCollatorWithPadding

    config = config or HealConfig()
    _check_sentences(sentences)
    examples, collate = tokenize_sentences(tokenizer, sentences, config.max_length), DataCollatorWithPadding(tokenizer)
    terms_out: dict = {}
    loss, device = distillation_loss(teacher, config, terms_out), next(student.parameters()).device
    modes = student.training, teacher.training
    student.eval(), teacher.eval()
    totals: dict[str, float] = {}
    try:
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[start:start + batch_size]).items()}
            value, _ = loss(student, batch)
            for name, term in {"loss": value, **terms_out}.items():
                totals[name] = totals.get(name, 0.0) + float(term) * batch["input_ids"].shape[0]
    finally:
        student.train(modes[0]), teacher.train(modes[1])
    return {name: total / len(examples) for name, total in totals.items()}


@dataclass
class HealResult:
    """What :func:`heal` returns: the healed student (the same object that was passed in) and the run's record."""

    student: nn.Module
    run_dir: Path
    global_step: int
    train_loss: float | None  # the last logged training loss
    steps_per_second: float | None  # optimizer steps this process trained, per second (None: none left to train)
    results: dict  # what results.json holds


def heal(student: nn.Module, teacher: nn.Module, tokenizer, sentences: Sequence[str], config: HealConfig,
         run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> HealResult:
    """Distil ``teacher`` into the compressed ``student`` on ``sentences``, in place; a run of the one engine.

    Parameters
    ----------
    student
        A copy of ``teacher`` with MPO layers (``apply_mpo`` with truncated bonds). What trains is
        ``config.variant``'s (:class:`HealStrategy`); every other parameter stays bit-identical, and is left
        with ``requires_grad=False``.
    teacher
        The original model; set to eval mode and moved to the run's device, never changed otherwise.
    tokenizer, sentences
        The tokenizer of both models and unlabeled sentences (a list of str).
    config
        :class:`~mpo_core.training.healing_config.HealConfig`.
    run_dir
        The run folder (created; it must not exist unless ``resume``).
    resume
        Continue the interrupted run in ``run_dir`` from its last complete checkpoint. Pass the student as it was
        built for the first start (the same compression); ``config`` and ``sentences`` must be the run's own.
    progress
        Show the Trainer's progress bar.

    Raises
    ------
    ValueError
        For bad inputs (no sentences, a student without MPO layers or sharing parameters with the teacher,
        a resume with another config or other sentences), before anything is written.
    """
    from transformers import DataCollatorWithPadding

    if not isinstance(config, HealConfig):
        raise ValueError(f"config must be a HealConfig, got {type(config).__name__}.")
    _check_models(student, teacher)
    digest = _check_sentences(sentences)
    run_path = Path(run_dir)
    if is_main_process():
        RunFolder.check(run_path, resume)
    if resume:
        check_resume_config(config, run_path)
        _check_same_sentences(run_path, digest)
    device, strategy = resolve_device(config.device), HealStrategy(variant=config.variant)
    precision = resolve_precision("auto", device)
    strategy.prepare(student)
    teacher.eval().to(device)
    examples = tokenize_sentences(tokenizer, sentences, config.max_length)
    run = RunFolder(run_path, resume=resume)
    with run:
        checkpoint = None
        if not resume:
            _write_config(run, config)
            run.write_json(SENTENCES_FILE, digest)
        else:
            run.discard_incomplete_checkpoints()
            checkpoint, rewind = strategy.resume(student, run)
            run.rewind_metrics(rewind)
        if run.writer:
            (run.path / STOP_FILE).unlink(missing_ok=True)
        divergence = DivergenceCallback(run)
        trainer = engine_trainer(
            strategy, loss=distillation_loss(teacher, config), model=student,
            args=_arguments(config, run, device, precision, progress), train_dataset=examples,
            processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[MetricsStreamCallback(run, student), StopFileCallback(run), divergence,
                       CompleteCheckpointCallback(run)],
        )
        resumed = resume and run.metrics_lines() > 0
        run.append_metrics({"kind": "resume" if resumed else "start", "device": device, "precision": precision,
                            **({"checkpoint": checkpoint.name if checkpoint else None} if resumed else {}),
                            "num_sentences": len(examples), "variant": config.variant, **parameter_summary(student)})
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
        seconds = time.perf_counter() - start
        trained = trainer.state.global_step - (int(checkpoint.name.split("-")[1]) if checkpoint else 0)
        if run.writer:
            with run.final_write(FINAL_MODEL) as folder:
                save_mpo_model(trainer.model, folder)
                tokenizer.save_pretrained(folder)
        results = _results(config, trainer, seconds, trained, device, precision, len(examples), divergence.step)
        with run.final_write("results.json"):
            run.write_json("results.json", results)
        run.append_metrics({"kind": "end", **{k: v for k, v in results.items() if isinstance(v, (int, float))}})
    return HealResult(trainer.model, run_path, results["global_step"], results["train_loss"],
                      results["steps_per_second"], results)


def _arguments(config: HealConfig, run: RunFolder, device: str, precision: str, progress: bool):
    """The engine's ``TrainingArguments`` of a healing run: AdamW, linear warmup then linear decay, no evaluation."""
    return engine_arguments(
        run, config.seed, device, precision,
        max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, warmup_steps=config.warmup_steps,
        lr_scheduler_type="linear", optim="adamw_torch", eval_strategy="no",
        logging_steps=config.logging_steps, save_steps=config.save_steps,
        remove_unused_columns=False, disable_tqdm=not progress,
    )


def _check_models(student: nn.Module, teacher: nn.Module) -> None:
    if not isinstance(student, nn.Module) or not isinstance(teacher, nn.Module):
        raise ValueError(f"student and teacher must be torch modules, got {type(student).__name__} and "
                         f"{type(teacher).__name__}.")
    if {id(p) for p in student.parameters()} & {id(p) for p in teacher.parameters()}:
        raise ValueError("the student shares parameters with the teacher (healing would change the teacher): "
                         "compress a copy, e.g. student = copy.deepcopy(teacher); apply_mpo(student, ...).")


def _check_sentences(sentences) -> dict:
    """``sentences`` is a non-empty list of str; their count and SHA-256 (what a resume must get again)."""
    if isinstance(sentences, str) or not isinstance(sentences, Sequence) or not sentences:
        raise ValueError("sentences must be a non-empty list of str (unlabeled sentences to heal on).")
    bad = next((i for i, s in enumerate(sentences) if not isinstance(s, str)), None)
    if bad is not None:
        raise ValueError(f"sentences must be str; sentence {bad} is a {type(sentences[bad]).__name__}.")
    digest = hashlib.sha256(json.dumps(list(sentences)).encode()).hexdigest()
    return {"sentences": len(sentences), "sha256": digest}


def _check_same_sentences(run_path: Path, digest: dict) -> None:
    from ..runs.run_folder import read_json_object

    stored = read_json_object(run_path / SENTENCES_FILE)
    if stored != digest:
        raise ValueError(f"cannot resume {run_path} with other sentences (the run has {stored.get('sentences')}, "
                         f"sha256 {str(stored.get('sha256'))[:12]}…; given {digest['sentences']}, sha256 "
                         f"{digest['sha256'][:12]}…): resume with the run's own sentences.")


def _results(config: HealConfig, trainer, seconds: float, trained: int, device: str, precision: str,
             num_sentences: int, diverged: int | None) -> dict:
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    count = count_parameters(trainer.model)
    return {
        "kind": "heal", "variant": config.variant, "global_step": trainer.state.global_step,
        "train_loss": losses[-1] if losses else None, "diverged": diverged,
        "steps_trained_here": trained, "wall_seconds": seconds,
        "steps_per_second": trained / seconds if trained and seconds > 0 else None,
        "trainable_params": count.trainable, "total_params": count.total, "num_sentences": num_sentences,
        "bond_dims": {name: list(m.bond_dims) for name, m in mpo_modules(trainer.model).items()},
        "device": device, "precision": precision, "seed": config.seed, "versions": _versions(),
        "config": config.to_dict(),
    }
