"""Parameter variation after fine-tuning: MPOP Table 1.

For each of the paper's groups (word embedding, feed-forward, self-attention)
the share of weights whose absolute change ``|w_after - w_before|`` falls in
the bins ``(0, 1e-4]``, ``(1e-4, 1e-3]`` and ``(1e-3, inf)``, plus
histogram data of ``log10 |dw|`` for plots. Unchanged weights (``dw = 0``,
e.g. embedding rows of tokens never seen) are counted in the first bin and
reported separately. MPO layers are compared through their rebuilt matrices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .matrix_groups import PAPER_GROUPS, find_matrices, paper_group

BIN_EDGES = (1e-4, 1e-3)
BIN_LABELS = ("(0,1e-4]", "(1e-4,1e-3]", "(1e-3,inf)")
# MPOP Table 1: BERT fine-tuned on SST-2.
PAPER_TABLE1 = {
    "word_embedding": (0.66, 0.26, 0.09),
    "ffn": (0.09, 0.64, 0.27),
    "attention": (0.09, 0.64, 0.27),
}


@dataclass
class GroupVariation:
    """Variation statistics of one paper group."""

    group: str
    count: int
    shares: tuple[float, float, float]  # per BIN_LABELS
    unchanged_share: float
    histogram_counts: np.ndarray  # over log10 |dw| of changed weights
    histogram_edges: np.ndarray


def _weights(model: nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    modules = dict(model.named_modules())
    found = {}
    for name, group in find_matrices(model).items():
        coarse = paper_group(group)
        if coarse is not None:
            found[name] = (coarse, modules[name].weight.detach())
    return found


def parameter_variation(before: nn.Module, after: nn.Module, bins: int = 60) -> dict[str, GroupVariation]:
    """Table 1 statistics for two versions of one model (before / after fine-tuning).

    Parameters
    ----------
    before, after:
        The same architecture; matrices are matched by module name.
    bins:
        Number of histogram bins over ``log10 |dw|`` (range -10 .. 1).
    """
    old, new = _weights(before), _weights(after)
    missing = sorted(set(old) ^ set(new))
    if missing:
        raise ValueError(f"before and after differ in their matrices ({missing[:3]} ...); compare one model's two versions.")
    if not new:
        raise ValueError("no word-embedding, feed-forward or self-attention matrices found to compare.")
    deltas: dict[str, list[np.ndarray]] = {g: [] for g in PAPER_GROUPS}
    for name, (group, weight) in new.items():
        delta = (weight.double().cpu() - old[name][1].double().cpu()).abs()
        deltas[group].append(delta.reshape(-1).numpy())
    edges = np.linspace(-10, 1, bins + 1)
    result = {}
    for group, parts in deltas.items():
        if not parts:
            continue
        delta = np.concatenate(parts)
        first = np.count_nonzero(delta <= BIN_EDGES[0])
        second = np.count_nonzero((delta > BIN_EDGES[0]) & (delta <= BIN_EDGES[1]))
        third = delta.size - first - second
        changed = delta[delta > 0]
        counts, _ = np.histogram(np.log10(changed), bins=edges) if changed.size else (np.zeros(bins, int), edges)
        result[group] = GroupVariation(
            group, int(delta.size), (first / delta.size, second / delta.size, third / delta.size),
            1 - changed.size / delta.size, counts, edges,
        )
    return result


def variation_table(variation: dict[str, GroupVariation]):
    """A pandas table: our shares next to the paper's Table 1."""
    import pandas as pd

    rows = []
    for group, stats in variation.items():
        row = {"group": PAPER_GROUPS[group], "weights": stats.count}
        row.update({f"ours {label}": share for label, share in zip(BIN_LABELS, stats.shares)})
        row.update({f"paper {label}": share for label, share in zip(BIN_LABELS, PAPER_TABLE1[group])})
        row["unchanged"] = stats.unchanged_share
        rows.append(row)
    return pd.DataFrame(rows)


def matrix_snapshot(model: nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """``{module name: (paper group, a copy of its weight)}`` of the word-embedding, FFN and attention matrices."""
    return {name: (group, weight.clone()) for name, (group, weight) in _weights(model).items()}


def relative_change(before: dict[str, tuple[str, torch.Tensor]], after: nn.Module) -> dict[str, float]:
    """Per paper group, how far fine-tuning moved its matrices: ``||W_after - W_before||_F / ||W_before||_F``.

    ``before`` is a :func:`matrix_snapshot` taken before any surgery; ``after``
    is the trained model, its MPO layers compared through their rebuilt
    matrices (module names survive the surgery). Sums of squares run over the
    group's matrices, so a group's number weighs each entry once.
    """
    modules = dict(after.named_modules())
    missing = sorted(set(before) - set(modules))
    if missing:
        raise ValueError(f"the trained model lacks matrices {missing[:3]} of the snapshot; is it the same model?")
    moved, size = {}, {}
    with torch.no_grad():
        for name, (group, weight) in before.items():
            now = modules[name].weight.detach().to(weight.device, torch.float64)
            moved[group] = moved.get(group, 0.0) + float(((now - weight.double()) ** 2).sum())
            size[group] = size.get(group, 0.0) + float((weight.double() ** 2).sum())
    return {group: (moved[group] / size[group]) ** 0.5 if size[group] else 0.0 for group in moved}
