"""The fixed evaluation set of a task: the same examples for every run, so two runs can be compared pairwise.

A verdict between two fine-tuning rows is paired when both were scored on
the same examples (:mod:`~mpo_core.reproduction.paired_bootstrap`). The dev
set alone is small for SST-2 (872 sentences: one example is 0.11 points), so
a task's evaluation set may add a *slice of the training file*::

    evaluation set = the whole dev split  +  `size` training examples drawn with EVALUATION_SLICE_SEED

The slice's draw does not depend on any run's seed, so it is the same for
every run of the task; the slice is removed from the training file before a
run draws its training subset and held-out examples from what is left (the
*pool*), so no run trains on, or selects with, an example it is scored on.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .glue import GlueSplit, hold_out

#: the slice's seed: fixed for every run (not a run's seed), so every run of a task is scored on the same slice
EVALUATION_SLICE_SEED = 20_261_207


def split_evaluation_slice(train: GlueSplit, size: int) -> tuple[GlueSplit, GlueSplit]:
    """``(pool, slice)`` of a *whole* training split: ``size`` examples set aside for evaluation (see module)."""
    if train.num_available != len(train):
        raise ValueError(f"the evaluation slice is drawn from the whole training file ({train.num_available} "
                         f"examples), not from a subset of {len(train)}: load the split without max_examples.")
    if not 0 < size < len(train):
        raise ValueError(f"evaluation_slice must be 1..{len(train) - 1} (the training file has {len(train)} "
                         f"examples and some must stay to train on), got {size}.")
    return hold_out(train, size, EVALUATION_SLICE_SEED)


def subset(split: GlueSplit, size: int | None, seed: int) -> GlueSplit:
    """A seeded random ``size`` of ``split``'s examples (file order and source indices kept); all if ``None``."""
    if size is None or size >= len(split):
        return split
    return hold_out(split, size, seed)[1]


@dataclass(frozen=True)
class EvaluationSet:
    """What a run's kept predictions are aligned with: the dev examples (in file order), then the slice's."""

    dev_examples: int
    slice_indices: tuple[int, ...]  # source positions in the training file

    @property
    def size(self) -> int:
        return self.dev_examples + len(self.slice_indices)

    @property
    def digest(self) -> str:
        """SHA-256 of the set's definition: two runs' predictions pair only when their digests are equal."""
        text = json.dumps({"dev": self.dev_examples, "slice": list(self.slice_indices)})
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"dev_examples": self.dev_examples, "slice_examples": len(self.slice_indices),
                "slice_seed": EVALUATION_SLICE_SEED, "digest": self.digest}


__all__ = ["EVALUATION_SLICE_SEED", "EvaluationSet", "split_evaluation_slice", "subset"]
