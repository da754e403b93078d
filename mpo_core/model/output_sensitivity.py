"""How much a matrix's output error moves the model's output: one factor per matrix, measured.

The data-aware error of a matrix (:mod:`~mpo_core.tensor.whitening`) is the
error of *its* output on real inputs. Matrices deeper in the network, or whose
outputs pass a LayerNorm or a softmax, turn the same output error into more
or less change of the model's output. :func:`output_sensitivity` measures it:
for each matrix ``m`` it adds a perturbation ``x dW_m^T`` to that matrix's
output alone (every other matrix exact) and returns

    c_m = sum over real tokens ||Y' - Y||^2  /  sum over real tokens ||x dW_m^T||^2

with ``Y`` the last hidden states, so ``c_m * ||X (W - W')^T||^2`` estimates
what compressing ``m`` costs at the output. ``dW_m`` is the error a
compression would make (e.g. ``W - W'`` of the same share for every matrix,
the shape of error the budget will trade), or random (isotropic) without one.
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .matrix_groups import find_matrices

#: sentences the output sensitivity of ``auto`` is measured on (the first of the calibration sentences)
SENSITIVITY_SENTENCES = 64


def _real_tokens(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden[mask.bool()]  # (tokens, hidden)


@torch.inference_mode()
def output_sensitivity(model: nn.Module, tokenizer, sentences: Sequence[str],
                       perturbations: Mapping[str, torch.Tensor], *, max_length: int = 128,
                       batch_size: int = 32, progress: bool = True) -> dict[str, float]:
    """``{matrix name: c_m}`` (module docstring) over ``sentences``.

    Parameters
    ----------
    model:
        A dense encoder returning ``last_hidden_state``.
    perturbations:
        ``{name: dW}`` with ``dW`` shaped like the matrix's weight; names from
        :func:`~mpo_core.model.matrix_groups.find_matrices` (linear layers, or an embedding, whose
        perturbation is added to the rows of the tokens looked up).
    """
    if not sentences:
        raise ValueError("no sentences to measure the output sensitivity on.")
    modules = dict(model.named_modules())
    known = find_matrices(model)
    for name, delta in perturbations.items():
        if name not in known or not isinstance(modules[name], (nn.Linear, nn.Embedding)):
            raise ValueError(f"{name} is not a dense matrix (linear layer or embedding) of this model.")
        if tuple(delta.shape) != tuple(modules[name].weight.shape):
            raise ValueError(f"the perturbation of {name} is {tuple(delta.shape)}, its weight "
                             f"{tuple(modules[name].weight.shape)}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = [tokenizer(list(sentences[s:s + batch_size]), padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt").to(device) for s in range(0, len(sentences), batch_size)]
    try:
        reference = [model(**b).last_hidden_state.float() for b in batches]
        result = {}
        for name, delta in tqdm(perturbations.items(), desc="output sensitivity", disable=not progress,
                                unit="matrix"):
            injected = [0.0]
            delta = delta.to(device=device, dtype=modules[name].weight.dtype)
            mask_holder = {}

            def hook(module, inputs, output, delta=delta):
                if isinstance(module, nn.Embedding):  # the input is token ids: the perturbation's rows
                    extra = nn.functional.embedding(inputs[0], delta)  # (batch, tokens, dim)
                else:
                    extra = inputs[0] @ delta.T  # (batch, tokens, out)
                injected[0] += float(_real_tokens(extra, mask_holder["mask"]).double().square().sum())
                return output + extra

            handle = modules[name].register_forward_hook(hook)
            moved = 0.0
            try:
                for b, ref in zip(batches, reference):
                    mask_holder["mask"] = b["attention_mask"]
                    out = model(**b).last_hidden_state.float()
                    moved += float(_real_tokens(out - ref, b["attention_mask"]).double().square().sum())
            finally:
                handle.remove()
            result[name] = moved / injected[0] if injected[0] > 0 else 0.0
    finally:
        model.train(was_training)
    return result


def measured_sensitivity(model: nn.Module, tokenizer, calibration, sentences, config,
                         progress: bool = True) -> dict[str, float]:
    """Output sensitivity of every linear matrix, probed with the error of the uniform whitened SVD at the same share.

    The error a compression makes has a direction (the whitened SVD's, for the share the
    budget averages to); probing with it measures what the budget will trade.
    """
    from .calibrated_compression import CompressionConfig, compress_model

    probe = copy.deepcopy(model)
    share = _average_share(model, config)
    uniform = CompressionConfig(method="svd_whitened", size=share, groups=config.groups, damping=config.damping,
                                embedding_floor=config.embedding_floor)
    compress_model(probe, uniform, calibration, progress=False)
    ours, theirs = dict(model.named_modules()), dict(probe.named_modules())
    perturbations = {name: ours[name].weight.detach() - theirs[name].weight.detach()
                     for name in find_matrices(model, config.groups) if hasattr(theirs[name], "tensors")}
    return output_sensitivity(model, tokenizer, list(sentences)[:SENSITIVITY_SENTENCES], perturbations,
                              progress=progress)


def _average_share(model: nn.Module, config) -> float:
    """The kept share of the chosen matrices that ``config``'s size amounts to."""
    if config.size is not None:
        return config.size
    modules = dict(model.named_modules())
    dense = sum(modules[n].weight.numel() for n in find_matrices(model, config.groups))
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return max(1e-3, min(1.0, (config.model_size * total - (total - dense)) / dense))


__all__ = ["SENSITIVITY_SENTENCES", "measured_sensitivity", "output_sensitivity"]
