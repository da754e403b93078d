"""What compressing an encoder does to its output: sentence-embedding agreement and a zero-shot task.

The packaged MiniLM is a sentence encoder (mean pooling of the last hidden
states over the tokens). A compressed copy is judged against the original on
sentence pairs with human similarity scores (STS-B):

- **agreement**: cosine similarity between the original's and the compressed
  model's embedding of the same sentence (1 = unchanged direction);
- **zero-shot STS-B**: Spearman correlation between the gold scores and the
  cosine similarity of each pair's two embeddings, for both models, so a user
  sees what an error bound costs on a task without any fine-tuning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@torch.inference_mode()
def sentence_embeddings(model: nn.Module, tokenizer, sentences: Sequence[str], *, max_length: int = 128,
                        batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled last hidden states ``(len(sentences), hidden)`` (float32, padding left out).

    ``model`` is an encoder returning ``last_hidden_state`` (e.g. ``AutoModel``); it is
    run in eval mode and left in the mode it was in.
    """
    if not sentences:
        raise ValueError("no sentences to embed.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # batches of similar length pad less; the rows go back to the input order
    order = sorted(range(len(sentences)), key=lambda k: len(sentences[k]))
    parts = []
    try:
        for start in range(0, len(order), batch_size):
            texts = [sentences[k] for k in order[start:start + batch_size]]
            batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state.float()  # (batch, tokens, hidden)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
            parts.append((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))
    finally:
        model.train(was_training)
    sorted_embeddings = torch.cat(parts).cpu()
    out = torch.empty_like(sorted_embeddings)
    out[torch.tensor(order)] = sorted_embeddings
    return out


@dataclass(frozen=True)
class Agreement:
    """How the compressed model's sentence embeddings compare with the original's."""

    sentences: int  # sentences embedded by both models
    cosine_mean: float  # mean cosine(original, compressed) over the sentences
    cosine_min: float  # the worst sentence
    spearman_original: float | None  # zero-shot STS: Spearman(gold, cos(pair)) of the original; None without scores
    spearman_compressed: float | None  # the same for the compressed model
    #: cos(first, second) of each pair under the compressed model, in the pairs' order (for paired tests)
    pair_cosines: tuple[float, ...] = ()


def _pair_cosines(embeddings: torch.Tensor) -> torch.Tensor:
    """cos(first, second) per pair of :func:`pair_embeddings`' layout ``(2 * pairs, hidden)``."""
    half = embeddings.shape[0] // 2
    return torch.nn.functional.cosine_similarity(embeddings[:half], embeddings[half:], dim=1)


def _pair_spearman(embeddings: torch.Tensor, scores: Sequence[float]) -> float:
    from scipy.stats import spearmanr  # here, not at import: scipy.stats costs ~0.9 s the pages' first paint waits for

    value = spearmanr(_pair_cosines(embeddings).numpy(), list(scores)).statistic
    return float(value) if math.isfinite(value) else float("nan")


def embedding_agreement(original: nn.Module | torch.Tensor, compressed: nn.Module, tokenizer,
                        pairs: Sequence[tuple[str, str]], scores: Sequence[float] | None = None,
                        *, max_length: int = 128) -> Agreement:
    """Agreement of ``compressed`` with ``original`` on the sentences of ``pairs`` (and zero-shot STS with ``scores``).

    ``original`` may be the original model or its embeddings of the sentences, as returned
    by :func:`pair_embeddings` (computed once, reused for every compressed model).
    """
    if scores is not None and len(scores) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(scores)} scores.")
    reference = original if isinstance(original, torch.Tensor) else pair_embeddings(original, tokenizer, pairs,
                                                                                    max_length=max_length)
    ours = pair_embeddings(compressed, tokenizer, pairs, max_length=max_length)
    if reference.shape != ours.shape:
        raise ValueError(f"the original's embeddings have shape {tuple(reference.shape)}, the compressed "
                         f"model's {tuple(ours.shape)}: not the same sentences or hidden size.")
    cosine = torch.nn.functional.cosine_similarity(reference, ours, dim=1)
    return Agreement(
        sentences=int(cosine.numel()), cosine_mean=float(cosine.mean()), cosine_min=float(cosine.min()),
        spearman_original=None if scores is None else _pair_spearman(reference, scores),
        spearman_compressed=None if scores is None else _pair_spearman(ours, scores),
        pair_cosines=tuple(float(c) for c in _pair_cosines(ours)),
    )


def pair_embeddings(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], *,
                    max_length: int = 128) -> torch.Tensor:
    """Embeddings of every first sentence, then every second sentence: ``(2 * len(pairs), hidden)``."""
    if not pairs:
        raise ValueError("no sentence pairs given.")
    sentences = [a for a, _ in pairs] + [b for _, b in pairs]
    return sentence_embeddings(model, tokenizer, sentences, max_length=max_length)


def zero_shot_stsb(model: nn.Module, tokenizer, data_dir=None, reference: nn.Module | torch.Tensor | None = None,
                   max_pairs: int | None = None, *, max_length: int = 128) -> dict | None:
    """Zero-shot STS-B on the dev set (Spearman of gold scores and embedding cosines), or ``None`` without the file.

    With ``reference`` (the original model, or its :func:`pair_embeddings` of the same pairs)
    the original's score and the mean cosine to its embeddings are given too. ``pair_cosines``
    (each pair's cosine, in the dev file's order) lets two models be compared on the same pairs.
    """
    from ..data.glue import load_glue_split

    try:
        dev = load_glue_split("stsb", "dev", data_dir=data_dir)
    except (FileNotFoundError, OSError):
        return None
    pairs = list(zip(dev.texts_a, dev.texts_b))[:max_pairs]
    scores = list(dev.labels)[: len(pairs)]
    if reference is None:
        ours = pair_embeddings(model, tokenizer, pairs, max_length=max_length)
        return {"pairs": len(pairs), "spearman": _pair_spearman(ours, scores),
                "pair_cosines": [float(c) for c in _pair_cosines(ours)]}
    agreement = embedding_agreement(reference, model, tokenizer, pairs, scores, max_length=max_length)
    return {"pairs": len(pairs), "spearman_original": agreement.spearman_original,
            "spearman": agreement.spearman_compressed, "cosine_to_original": agreement.cosine_mean,
            "pair_cosines": list(agreement.pair_cosines)}


__all__ = ["Agreement", "embedding_agreement", "pair_embeddings", "sentence_embeddings", "zero_shot_stsb"]
