"""``HealConfig``: the options of one healing run (distilling the original model into its compressed copy)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from ..tensor.validation import check_choice, check_number, check_positive_int

#: what trains while healing: the MPO layers' auxiliary tensors only, or every MPO tensor
VARIANTS = ("auxiliary", "all")
DEVICES = ("auto", "cpu", "cuda")
#: the largest seed: NumPy's legacy seeding (which the Trainer's set_seed calls) takes 32 bits
MAX_SEED = 2**32 - 1


@dataclass
class HealConfig:
    """One healing run: the compressed student learns to reproduce the teacher on unlabeled sentences.

    The default budget (200 steps of 32 sentences, 64 tokens) fits 10 minutes on one CPU thread for the
    packaged 6-layer MiniLM (its encoder's attention and FFN matrices as MPOs, n=5, compression_ratio=0.5):
    0.71-1.08 steps/s for either variant on a shared 2-core machine: the default run took 270 s (auxiliary)
    and 282 s (all) and raised the zero-shot STS-B Spearman from 0.716 (compressed) to 0.834 / 0.841 (the
    original has 0.867). The learning rate 5e-4 healed better than 1e-4 in 100 steps for both variants
    (0.828 / 0.837 against 0.809 / 0.824).

    Attributes
    ----------
    variant: ``"auxiliary"``: only the MPO layers' auxiliary tensors train (central tensors and
        everything else frozen: MPOP's lightweight fine-tuning applied to healing); ``"all"``: every
        MPO tensor trains (everything that is not an MPO layer stays frozen).
    steps: Optimizer steps.
    batch_size: Sentences per step.
    learning_rate: AdamW's peak learning rate.
    warmup_steps: Linear warmup from 0, then linear decay to 0 at ``steps``.
    weight_decay: AdamW's decoupled weight decay.
    max_length: Tokens per sentence (longer ones are truncated).
    seed: Seed of the data order and of the student's dropout (the Trainer's seeded RNG).
    hidden_weight: Weight of the per-layer hidden-state MSE (padding excluded, mean over layers).
    cosine_weight: Weight of ``1 - cos`` between the mean-pooled sentence embeddings (encoders).
    logits_weight: Weight of ``KL(teacher || student)`` on the logits (task models with ``logits``).
    temperature: Softening temperature of the logits' KL (the loss is scaled by ``temperature**2``).
    student_dropout: Whether the student's dropout is on while it heals. Off by default: the teacher (eval mode)
        is deterministic, and the student's dropout noise would dominate the loss it learns from (on a tiny BERT,
        a training loss of 0.13 with dropout against 0.00025 without). When on, it draws from the Trainer's RNG.
    logging_steps, save_steps: Metrics-stream and checkpoint intervals (steps).
    device: ``"auto"`` (GPU when present), ``"cpu"`` or ``"cuda"``.
    """

    variant: str = "auxiliary"
    steps: int = 200
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_length: int = 64
    seed: int = 0
    hidden_weight: float = 1.0
    cosine_weight: float = 1.0
    logits_weight: float = 1.0
    temperature: float = 2.0
    student_dropout: bool = False
    logging_steps: int = 10
    save_steps: int = 50
    device: str = "auto"

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        for name in ("steps", "batch_size", "max_length", "logging_steps", "save_steps"):
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        self.warmup_steps = check_positive_int("warmup_steps", self.warmup_steps, minimum=0)
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be fewer than steps ({self.steps}); "
                             "give fewer warmup steps or more steps.")
        self.seed = check_positive_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        self.learning_rate = check_number("learning_rate", self.learning_rate, minimum=0)
        self.temperature = check_number("temperature", self.temperature, minimum=0)
        for name in ("weight_decay", "hidden_weight", "cosine_weight", "logits_weight"):
            setattr(self, name, check_number(name, getattr(self, name), minimum=0, strict=False))
        if not (self.hidden_weight or self.cosine_weight or self.logits_weight):
            raise ValueError("hidden_weight, cosine_weight and logits_weight are all 0: nothing to learn; "
                             "give at least one a positive weight.")
        if not isinstance(self.student_dropout, bool):
            raise ValueError(f"student_dropout must be true or false, got {self.student_dropout!r}.")
        check_choice("device", self.device, DEVICES)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "HealConfig":
        """The inverse of :meth:`to_dict` (e.g. a run's ``config.json``); unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a HealConfig must be a JSON object of its fields, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown HealConfig fields {unknown}; known are {sorted(cls.__dataclass_fields__)}.")
        return cls(**data)
