"""Fisher scores of a pre-trained model on GLUE training batches: what OPF would rank at step 0.

::

    FisherRequest (task, layers, B batches x size, seed)
        --load_sequence_classifier(seed)-->  the model an opf run of this seed starts from
        --training_batches-->                the first B batches of a seeded training subset
        --fisher_scores-->                   FisherScores: F(W), group and (I, J) of every candidate, #To

with ``F(W) = 1/B sum_b mean_ij (g_b)_ij^2`` (:mod:`mpo_core.opf.fisher`).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data.glue import get_task, glue_file, load_glue_split, tokenize_split
from ..model.matrix_groups import layer_index
from ..model.parameter_count import count_parameters
from ..model.sequence_classifier import load_sequence_classifier
from ..tensor.validation import check_number, check_positive_int
from .fisher import fisher_scores
from .selection import candidate_matrices
from .config import OPF_GROUPS

MAX_LAYERS = 6  # the packaged MiniLM
MAX_LENGTH = 512  # its max_position_embeddings
#: tokens of one batch (``batch_size * max_length``): activations and gradients of one step stay under ~1 GiB
MAX_BATCH_TOKENS = 1 << 16
#: examples scored in all (``num_batches * batch_size``): more than any GLUE task's training set
MAX_EXAMPLES = 1 << 20


@dataclass(frozen=True)
class FisherRequest:
    """Which scores to compute: packaged MiniLM, ``num_batches`` x ``batch_size`` training examples of ``task``."""

    task: str = "sst2"
    data_dir: str | None = None  # a GLUE folder; None: $GLUE_DIR
    num_hidden_layers: int = MAX_LAYERS
    num_batches: int = 4
    batch_size: int = 16
    max_length: int = 64
    seed: int = 0  # seeds the classifier head and the example subset, as a run of this seed
    max_grad_norm: float = 1.0  # clipped as in training (the Trainer's default)

    def __post_init__(self):
        object.__setattr__(self, "task", get_task(self.task).name)
        for name in ("num_batches", "batch_size"):
            check_positive_int(f"Fisher scores: {name}", getattr(self, name))
        check_positive_int("Fisher scores: num_hidden_layers", self.num_hidden_layers, maximum=MAX_LAYERS)
        check_positive_int("Fisher scores: max_length", self.max_length, maximum=MAX_LENGTH)
        check_positive_int("Fisher scores: seed", self.seed, minimum=0)
        check_number("Fisher scores: max_grad_norm", self.max_grad_norm, minimum=0)
        if self.batch_size * self.max_length > MAX_BATCH_TOKENS:
            raise ValueError(f"Fisher scores: batch_size x max_length = {self.batch_size} x {self.max_length} tokens "
                             f"per batch, more than the {MAX_BATCH_TOKENS} a batch may hold; lower either.")
        if self.num_batches * self.batch_size > MAX_EXAMPLES:
            raise ValueError(f"Fisher scores: num_batches x batch_size = {self.num_batches} x {self.batch_size} "
                             f"examples, more than the {MAX_EXAMPLES} scored at most; lower either.")

    @property
    def cache_name(self) -> str:
        """File name of these scores (the data folder enters through a short hash)."""
        where = str(Path(self.data_dir).expanduser().resolve()) if self.data_dir else os.environ.get("GLUE_DIR", "")
        folder = hashlib.sha1(where.encode()).hexdigest()[:8]
        return (f"fisher-{self.task}-L{self.num_hidden_layers}-{self.num_batches}x{self.batch_size}"
                f"-len{self.max_length}-seed{self.seed}-clip{self.max_grad_norm:g}-{folder}.json")


@dataclass(frozen=True)
class FisherScores:
    """``F(W)`` of every candidate matrix of one model, with what a selection plan needs to count parameters."""

    scores: dict  # {module name: F(W)}
    groups: dict  # {module name: OPF group}
    shapes: dict  # {module name: (out_features I, in_features J)}
    total_params: int  # #To of the dense model
    source: str  # where the scores come from, for captions

    @property
    def num_layers(self) -> int:
        return max(layer_index(name) for name in self.scores) + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FisherScores":
        return cls(scores=dict(data["scores"]), groups=dict(data["groups"]),
                   shapes={k: tuple(v) for k, v in data["shapes"].items()},
                   total_params=int(data["total_params"]), source=data["source"])


def training_batches(request: FisherRequest, tokenizer) -> list[dict]:
    """The first ``num_batches`` batches of a seeded training subset, padded per batch as the Trainer does."""
    from transformers import DataCollatorWithPadding

    size = request.num_batches * request.batch_size
    split = load_glue_split(request.task, "train", request.data_dir, max_examples=size, seed=request.seed)
    data = tokenize_split(split, tokenizer, request.max_length)
    rows, collate = [data[k] for k in range(len(data))], DataCollatorWithPadding(tokenizer)
    return [collate(rows[k:k + request.batch_size]) for k in range(0, len(rows), request.batch_size)]


def compute_fisher(request: FisherRequest) -> FisherScores:
    """Score every candidate matrix of the pre-trained model (classifier head seeded as in a run)."""
    glue_file(request.task, "train", request.data_dir)  # missing data: its message, before loading anything
    model, tokenizer = load_sequence_classifier(request.task, None, request.num_hidden_layers, seed=request.seed)
    groups = candidate_matrices(model, OPF_GROUPS)
    scores = fisher_scores(model, training_batches(request, tokenizer), groups, request.max_grad_norm)
    shapes = {name: tuple(model.get_submodule(name).weight.shape) for name in groups}
    source = (f"{get_task(request.task).display_name}: {request.num_batches} training batches of "
              f"{request.batch_size} (max {request.max_length} tokens), {request.num_hidden_layers} layers")
    return FisherScores(scores, groups, shapes, count_parameters(model).total, source)
