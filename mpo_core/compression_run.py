"""One call from a pre-trained encoder to a compressed one: calibrate, compress, heal, judge, save.

``python -m mpo_core compress`` and the Compress page run :func:`compress`::

    model --calibration sentences--> X^T X per matrix, token counts       (model/calibration.py)
          --auto only-------------> output sensitivity per matrix         (model/output_sensitivity.py)
          --compress_model--------> MPO layers, one budget                 (model/calibrated_compression.py)
          --heal (optional)-------> distilled from the original            (training/healing.py)
          --zero-shot STS-B-------> Spearman of the original and the compressed model (dev, when present)
          --out DIR---------------> mpo_model/ (MPO checkpoint), merged_model/ (plain transformers), report.json

The calibration sentences come from a GLUE task's *train* file or a text file,
never from a dev set; the zero-shot score uses the STS-B dev set only to report.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .model.calibrated_compression import CALIBRATED, ENCODER_GROUPS, CompressionConfig, compress_model
from .model.calibration import calibration_stats
from .model.calibration_sentences import calibration_sentences
from .model.checkpoint import save_mpo_model
from .model.embedding_agreement import zero_shot_stsb
from .model.output_sensitivity import measured_sensitivity
from .model.surgery import merge_mpo

@dataclass
class CompressResult:
    """What :func:`compress` did: the compressed model and its report (``report`` is also ``report.json``)."""

    model: nn.Module
    report: dict


def load_encoder(model: str | None = None):
    """``(AutoModel, AutoTokenizer)`` of a local folder (checked: no code, safetensors) or a hub name."""
    from transformers import AutoModel, AutoTokenizer

    from .model.model_folder import check_model_folder
    from .model.pretrained import default_model_path

    path = str(model or default_model_path())
    if Path(path).exists():
        check_model_folder(path)
    encoder = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return encoder.eval(), tokenizer


def compress(model: nn.Module | str | None = None, config: CompressionConfig | None = None, *, tokenizer=None,
             calibration: str = "stsb", calibration_size: int = 512, data_dir=None, heal_steps: int = 0,
             heal_variant: str = "all", heal_size: int = 4096, out: str | Path | None = None, merged: bool = False,
             zero_shot: bool = True, cache_dir=None, progress: bool = True, heal_options: dict | None = None
             ) -> CompressResult:
    """Compress a pre-trained encoder (module docstring); the model given is not modified.

    Parameters
    ----------
    model:
        A model, a local folder or a hub name (default: the packaged MiniLM).
    config:
        Method and size (:class:`~mpo_core.model.calibrated_compression.CompressionConfig`).
    calibration, calibration_size:
        A GLUE task name (its train file) or a text file, and how many sentences to draw.
    heal_steps, heal_variant, heal_size:
        Distillation steps after compression (0: none), what trains (``"all"`` MPO tensors or
        ``"auxiliary"`` ones), and how many sentences of the calibration source it draws (another
        draw than the calibration's; all of them when the source has fewer).
    out, merged:
        Folder for ``mpo_model/``, ``report.json`` and, with ``merged``, ``merged_model/``.
    """
    from .data.glue import default_glue_dir

    config = config or CompressionConfig(size=0.5)
    data_dir = data_dir or default_glue_dir()
    start = time.perf_counter()
    if model is None or isinstance(model, (str, Path)):
        model, loaded_tokenizer = load_encoder(None if model is None else str(model))
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise ValueError("give the tokenizer of the model (or a model folder, which has one).")
    if out is not None:  # a folder that cannot be written fails now, not after the work
        Path(out).mkdir(parents=True, exist_ok=True)
    teacher = model
    student = copy.deepcopy(model).eval()
    timings = {}
    needs_data = config.method in CALIBRATED or heal_steps > 0
    stats = sentences = None
    if needs_data or config.method in ("mpo", "svd"):
        t = time.perf_counter()
        groups = tuple(dict.fromkeys((*config.groups, *ENCODER_GROUPS)))
        stats = calibration_stats(teacher, tokenizer, calibration, num_sentences=calibration_size, groups=groups,
                                  data_dir=data_dir, cache_dir=cache_dir, progress=progress)
        sentences = calibration_sentences(calibration, calibration_size, data_dir=data_dir)
        timings["calibration"] = time.perf_counter() - t
    sensitivity = None
    if config.method == "auto":
        t = time.perf_counter()
        sensitivity = measured_sensitivity(teacher, tokenizer, stats, sentences, config, progress)
        timings["sensitivity"] = time.perf_counter() - t
    report = compress_model(student, config, stats, sensitivity=sensitivity, progress=progress)
    timings["compression"] = report.seconds
    result = report.to_dict()
    reference = _reference(teacher, tokenizer, data_dir) if zero_shot else None
    if zero_shot:
        t = time.perf_counter()
        result["zero_shot_before_healing"] = _zero_shot(reference, student, tokenizer, data_dir)
        timings["zero_shot"] = time.perf_counter() - t
    if heal_steps:
        from .training.healing import heal
        from .training.healing_config import HealConfig

        import tempfile

        t = time.perf_counter()
        heal_config = HealConfig(steps=heal_steps, variant=heal_variant,
                                 **{"warmup_steps": min(20, heal_steps // 10), **(heal_options or {})})
        heal_sentences = _heal_sentences(calibration, heal_size, data_dir)
        with tempfile.TemporaryDirectory() as scratch:  # without --out the healing run is not kept
            heal_dir = Path(out) / "healing" if out is not None else Path(scratch) / "healing"
            healed = heal(student, teacher, tokenizer, heal_sentences, heal_config, heal_dir, progress=progress)
        result["heal_sentences"] = len(heal_sentences)
        result["healing"] = {"global_step": int(healed.global_step), "train_loss": float(healed.train_loss),
                             "steps_per_second": float(healed.steps_per_second),
                             "run_dir": str(heal_dir) if out is not None else None,
                             "config": heal_config.to_dict()}
        timings["healing"] = time.perf_counter() - t
        if zero_shot:
            result["zero_shot"] = _zero_shot(reference, student, tokenizer, data_dir)
    elif zero_shot:
        result["zero_shot"] = result["zero_shot_before_healing"]
    result["sensitivity"] = sensitivity
    result["calibration"] = None if stats is None else {"source": str(calibration), "sentences": calibration_size,
                                                          "key": stats.key}
    result["timings"] = timings
    result["seconds"] = time.perf_counter() - start
    if out is not None:
        _save(student, result, Path(out), merged)
    return CompressResult(student, result)


def _heal_sentences(source, size: int, data_dir) -> list[str]:
    """``size`` sentences of ``source`` (seed 1: not the calibration draw), or all it has when it has fewer."""
    return calibration_sentences(source, size, seed=1, data_dir=data_dir, at_most=True)


def _reference(teacher, tokenizer, data_dir):
    """The original model's embeddings of the STS-B dev pairs (computed once), or ``None`` without the file."""
    from .data.glue import load_glue_split
    from .model.embedding_agreement import pair_embeddings

    try:
        dev = load_glue_split("stsb", "dev", data_dir=data_dir)
    except (FileNotFoundError, OSError):
        return None
    return pair_embeddings(teacher, tokenizer, list(zip(dev.texts_a, dev.texts_b)))


def _zero_shot(reference, student, tokenizer, data_dir):
    if reference is None:
        return None
    return zero_shot_stsb(student, tokenizer, data_dir, reference=reference)


def _save(student: nn.Module, result: dict, out: Path, merged: bool) -> None:
    from .runs.atomic_write import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    save_mpo_model(student, out / "mpo_model")
    if merged:
        dense = copy.deepcopy(student)
        merge_mpo(dense)
        dense.save_pretrained(out / "merged_model", safe_serialization=True)
    atomic_write_json(out / "report.json", result, indent=1, default=str)


__all__ = ["CompressResult", "compress", "load_encoder"]
