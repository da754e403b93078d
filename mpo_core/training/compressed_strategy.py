"""``compressed``: a task model compressed by the calibrated compressor, then fine-tuned (issue 26's rows).

Before training, the model is compressed in place by
:func:`~mpo_core.model.calibrated_compression.compress_model` to the whole
model's #To ``model_size`` x dense (word embedding included), calibrated on the
run's *own training sentences* (``calibration_sentences`` of them, drawn with
seed 0: never dev, the fixed evaluation slice or the held-out examples). Then
``trains="auxiliary"`` fine-tunes the MPO layers' auxiliary tensors and the
head (every central tensor and every other parameter frozen: MPOP's
lightweight fine-tuning on a calibrated model), ``trains="all"`` every
parameter. ``auto`` measures each matrix's output sensitivity on the same
sentences (the encoder's last hidden states).

Compression is deterministic (one thread), so a resumed run compresses to the
same structure before its checkpoint's weights are loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..model.calibrated_compression import ENCODER_GROUPS, CompressionConfig, compress_model
from .method_config import CompressedConfig
from .strategy import Strategy, train_auxiliary_and_head

CALIBRATION_SEED = 0


@dataclass
class CompressedStrategy(Strategy, CompressedConfig):
    """See the module docstring."""

    name: str = "compressed"
    description: str = "calibrated compression of the whole model, then fine-tuning"
    source: dict | None = field(default=None, init=False, repr=False)
    sentences: list | None = field(default=None, init=False, repr=False)
    report: dict | None = field(default=None, init=False, repr=False)

    def bind(self, config) -> None:
        self.source = {"model": config.model, "max_length": config.max_length}

    def bind_training_texts(self, texts) -> None:
        if not texts:
            raise ValueError("compressed: the run has no training sentences to calibrate on.")
        order = np.random.default_rng(CALIBRATION_SEED).permutation(len(texts))[: self.calibration_sentences]
        self.sentences = [texts[i] for i in sorted(order.tolist())]

    def compression_config(self) -> CompressionConfig:
        return CompressionConfig(method=self.compression, model_size=self.model_size,
                                 groups=(*ENCODER_GROUPS, "word_embedding"))

    def prepare(self, model: nn.Module, progress: bool = True) -> nn.Module:
        from transformers import AutoTokenizer

        from ..model.calibration import collect_calibration
        from ..model.output_sensitivity import measured_sensitivity
        from ..model.pretrained import default_model_path

        if self.sentences is None or self.source is None:
            raise ValueError("compressed: bind the run config and its training sentences before prepare.")
        encoder = getattr(model, model.base_model_prefix, model)  # the sensitivity reads the encoder's outputs
        tokenizer = AutoTokenizer.from_pretrained(str(self.source["model"] or default_model_path()),
                                                  trust_remote_code=False)
        config = self.compression_config()
        stats = None
        if config.method not in ("mpo", "svd"):
            stats = collect_calibration(encoder, tokenizer, self.sentences, groups=config.groups,
                                        max_length=self.source["max_length"], progress=progress)
        sensitivity = None
        if config.method == "auto":
            sensitivity = measured_sensitivity(encoder, tokenizer, stats, self.sentences, config, progress=progress)
        self.report = compress_model(encoder, config, stats, sensitivity=sensitivity, progress=progress).to_dict()
        if self.trains == "all":
            return super().prepare(model)
        return train_auxiliary_and_head(model)

    def results(self) -> dict:
        if self.report is None:
            return {}
        keep = ("model_params_before", "model_params_after", "model_share", "kept_share", "by_group", "seconds")
        return {"compression": {k: self.report.get(k) for k in keep},
                "structures": {m["name"]: m["structure"] for m in self.report.get("matrices", [])}}


__all__ = ["CompressedStrategy"]
