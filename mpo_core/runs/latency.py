"""Forward-pass latency of a model against a reference (e.g. a merged run model vs the original).

One statistic everywhere: after ``warmup`` passes of each, the two models
run ``repeats`` times on the same inputs under ``torch.inference_mode``,
interleaved, alternating which goes first (so drift of a busy machine hits
both alike)::

    repeat r:   reference, model   (r even)      model, reference   (r odd)
    ratio     = median_r  t_model(r) / t_reference(r)     (neighbours in time: drift cancels)
    median_ms = each model's own median, in milliseconds

On a GPU each pass is synchronized before its clock stops.
"""
from __future__ import annotations

import statistics
import time
from typing import Mapping

import torch
from torch import nn

from ..tensor.validation import check_positive_int


def random_token_batch(model_config, batch_size: int, length: int, seed: int = 0) -> dict:
    """Token ids without padding: a dense encoder's time depends on the shape, not the words."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, model_config.vocab_size, (batch_size, length), generator=gen)  # (B, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(model_config, "type_vocab_size", 0):
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def _timed_pass(model: nn.Module, inputs: Mapping, cuda: bool) -> float:
    start = time.perf_counter()
    model(**inputs)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _on_cuda(models) -> bool:
    return any(p.is_cuda for m in models for p in m.parameters())


def compare_latency(model: nn.Module, reference: nn.Module, inputs: Mapping, warmup: int = 3, repeats: int = 21,
                    names: tuple[str, str] = ("merged", "original")) -> dict:
    """Time ``model`` against ``reference`` on ``inputs`` (see the module docstring for the statistic).

    Returns
    -------
    dict
        ``seconds`` (every pass, per name), ``median_ms`` (per name), ``ratio``
        (median of the paired ratios model / reference), ``warmup``, ``repeats``.
    """
    repeats = check_positive_int("latency: repeats", repeats)
    warmup = check_positive_int("latency: warmup", warmup, minimum=0)
    name, reference_name = names
    models = {reference_name: reference, name: model}
    cuda = _on_cuda(models.values())
    times = {key: [] for key in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                _timed_pass(m, inputs, cuda)
        for r in range(repeats):
            for key in (list(models) if r % 2 == 0 else list(models)[::-1]):
                times[key].append(_timed_pass(models[key], inputs, cuda))
    pairs = [t / o for t, o in zip(times[name], times[reference_name])]
    return {"seconds": times, "median_ms": {key: 1000 * statistics.median(v) for key, v in times.items()},
            "ratio": statistics.median(pairs), "warmup": warmup, "repeats": repeats}
