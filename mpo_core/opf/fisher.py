"""Fisher-information scores of weight matrices: which matrices OPF over-parameterizes.

The empirical Fisher information of a parameter is the expected squared
gradient of the loss. OPF scores a whole matrix ``W`` by its mean over the
entries, averaged over ``B`` training batches, with the gradient ``g_b``
taken after clipping the global norm as in training::

    F(W) = 1/B  sum_b  mean_ij (g_b)_ij^2,      g_b = grad_W L_b * min(1, c / ||grad L_b||)

and picks the top-N matrices of each group (query, key, ...).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from ..tensor.validation import check_positive_int


def _weights(model: nn.Module, names) -> dict[str, nn.Parameter]:
    modules = dict(model.named_modules())
    weights = {}
    for name in names:
        weight = getattr(modules.get(name), "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.dim() != 2:
            raise ValueError(f"{name!r} is not a module of the model with a 2-D weight parameter.")
        if not weight.requires_grad:
            raise ValueError(f"the weight of {name!r} is frozen; Fisher scores need its gradient (requires_grad).")
        weights[name] = weight
    if not weights:
        raise ValueError("fisher_scores needs at least one matrix name.")
    return weights


@contextmanager
def _scoring_mode(model: nn.Module):
    """Dropout off and no gradients in or out: modes and ``.grad`` are put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    model.zero_grad(set_to_none=True)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for p, grad in grads:
            p.grad = grad


def _loss(model: nn.Module, batch: Mapping, device: torch.device) -> torch.Tensor:
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    loss = getattr(model(**batch), "loss", None)
    if loss is None:
        raise ValueError("the model returned no loss: Fisher scores need batches with labels.")
    return loss


def fisher_scores(
    model: nn.Module,
    batches: Iterable[Mapping],
    names,
    max_grad_norm: float | None = 1.0,
    progress: bool = False,
) -> dict[str, float]:
    """Mean squared clipped gradient of each named matrix's weight, averaged over ``batches``.

    Parameters
    ----------
    model:
        A model whose ``forward(**batch)`` returns an output with ``.loss``.
    batches:
        Dicts of tensors (as a ``Trainer`` dataloader yields); moved to the model's device.
    names:
        Module names (e.g. from :func:`~mpo_core.model.matrix_groups.find_matrices`) with a trainable ``weight``.
    max_grad_norm:
        The global gradient norm is clipped to this over all trainable
        parameters before reading the gradients (``None`` or ``0``: no clipping).
    progress:
        Show a progress bar over batches.

    Returns
    -------
    dict
        ``{name: F(W)}``. The model's weights, train/eval modes and ``.grad`` are left as they were.
    """
    weights = _weights(model, names)
    trainable = [p for p in model.parameters() if p.requires_grad]
    device = next(iter(weights.values())).device
    total, count = torch.zeros(len(weights), dtype=torch.float64, device=device), 0
    with _scoring_mode(model):
        for batch in tqdm(batches, desc="Fisher scores", disable=not progress, unit="batch"):
            _loss(model, batch, device).backward()
            if (max_grad_norm or 0) > 0:  # as the Trainer: no clipping for None or 0
                nn.utils.clip_grad_norm_(trainable, max_grad_norm)
            total += torch.stack([  # (num_matrices,)
                w.grad.double().pow(2).mean() if w.grad is not None else w.new_zeros((), dtype=torch.float64)
                for w in weights.values()
            ])
            model.zero_grad(set_to_none=True)
            count += 1
    if not count:
        raise ValueError("fisher_scores got no batches; give at least one batch of training data.")
    return dict(zip(weights, (total / count).tolist()))


def select_top(scores: Mapping[str, float], groups: Mapping[str, str], per_group: int) -> list[str]:
    """The ``per_group`` highest-scoring names of each group (all, if a group has fewer).

    Ties are broken by name, so the choice is deterministic. Groups come in
    the order of ``groups``, names within a group by decreasing score.
    """
    check_positive_int("per_group", per_group)
    unknown = sorted(set(scores) - set(groups))
    if unknown:
        raise ValueError(f"scores for names without a group: {unknown}.")
    bad = sorted(name for name, score in scores.items() if not math.isfinite(score))
    if bad:
        raise ValueError(f"non-finite Fisher scores for {bad}; check the loss and gradients for NaN/Inf.")
    chosen = []
    for group in dict.fromkeys(groups.values()):
        ranked = sorted((name for name in scores if groups[name] == group), key=lambda name: (-scores[name], name))
        chosen += ranked[:per_group]
    return chosen
