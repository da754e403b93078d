"""Which weight matrices of a Hugging Face encoder play which role.

Declared as data: a group is found by module type plus the tail of the
module's dotted name, so one table covers BERT, ALBERT, DistilBERT,
MobileBERT and MPNet (and models that reuse their naming).
"""
from __future__ import annotations

import re

from torch import nn

from ..layers import MPOEmbedding, MPOLinear

LINEAR_TYPES = (nn.Linear, MPOLinear)
EMBEDDING_TYPES = (nn.Embedding, MPOEmbedding)

# (group, module kind, name tails). Order matters: the first match wins, so
# "attention.output.dense" is an attention matrix before "output.dense" is FFN.
GROUP_TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("word_embedding", "embedding", ("word_embeddings",)),
    ("query", "linear", ("query", "q_lin", "attn.q")),
    ("key", "linear", ("key", "k_lin", "attn.k")),
    ("value", "linear", ("value", "v_lin", "attn.v")),
    ("attention_output", "linear", ("attention.output.dense", "attention.out_lin", "attention.dense", "attn.o")),
    ("ffn_in", "linear", ("intermediate.dense", "ffn.lin1", "ffn")),
    ("ffn_out", "linear", ("output.dense", "ffn.lin2", "ffn_output")),
    ("pooler", "linear", ("pooler.dense", "pooler")),
)
GROUPS = tuple(group for group, _, _ in GROUP_TABLE)
ATTENTION_GROUPS = ("query", "key", "value", "attention_output")
FFN_GROUPS = ("ffn_in", "ffn_out")
DEFAULT_GROUPS = ("word_embedding", *ATTENTION_GROUPS, *FFN_GROUPS)
# The three groups of the paper's Table 1.
PAPER_GROUPS = {"word_embedding": "Word embedding", "ffn": "Feed-forward", "attention": "Self-attention"}

# Name components that mark projections outside the paper's groups
# (MobileBERT's bottlenecks: "bottleneck.attention.dense" is not an attention output).
EXCLUDED_COMPONENTS = ("bottleneck",)

_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers)\.(\d+)\.")


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, LINEAR_TYPES):
        return "linear"
    if isinstance(module, EMBEDDING_TYPES):
        return "embedding"
    return None


def matrix_group(name: str, module: nn.Module) -> str | None:
    """The group of a module (``"query"``, ``"ffn_in"``, ...) or ``None`` if it is none of them."""
    kind = _kind(module)
    if kind is None or any(c in EXCLUDED_COMPONENTS for c in name.split(".")):
        return None
    for group, group_kind, tails in GROUP_TABLE:
        if kind == group_kind and any(name == t or name.endswith("." + t) for t in tails):
            return group
    return None


def layer_index(name: str) -> int | None:
    """The encoder layer a module belongs to (``...layer.3.attention...`` -> 3), if any."""
    match = _LAYER_INDEX.search(name)
    return int(match.group(1)) if match else None


def paper_group(group: str | None) -> str | None:
    """Table 1's coarse group: ``"word_embedding"``, ``"attention"`` or ``"ffn"``."""
    if group == "word_embedding":
        return group
    if group in ATTENTION_GROUPS:
        return "attention"
    if group in FFN_GROUPS:
        return "ffn"
    return None


def find_matrices(model: nn.Module, groups=GROUPS) -> dict[str, str]:
    """``{module name: group}`` of the supported matrices, each shared module once."""
    found, seen = {}, set()
    for name, module in model.named_modules():
        group = matrix_group(name, module)
        if group in groups and id(module) not in seen:
            seen.add(id(module))
            found[name] = group
    return found
