"""Model surgery: swap a model's matrices for MPO layers, and contract them back.

Surgery is declared as data, as in peft: a mapping from torch module type to
the MPO layer that wraps it, plus one ``replace_module`` that rewires every parent
that references a module (so ALBERT's cross-layer sharing survives: one
shared matrix becomes one shared MPO module).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from tqdm.auto import tqdm

from ..layers import MPOEmbedding, MPOLinear
from .matrix_groups import find_matrices, layer_index
from .mpo_config import MPOConfig

TO_MPO = {nn.Linear: MPOLinear.from_linear, nn.Embedding: MPOEmbedding.from_embedding}
TO_DENSE = {MPOLinear: MPOLinear.to_linear, MPOEmbedding: MPOEmbedding.to_embedding}


@dataclass(frozen=True)
class Replacement:
    """One matrix replaced by :func:`apply_mpo`."""

    name: str
    group: str
    shape: tuple[int, int]
    bond_dims: tuple[int, ...]
    params_before: int
    params_after: int


def replace_module(model: nn.Module, old: nn.Module, new: nn.Module) -> int:
    """Point every attribute that holds ``old`` at ``new``; returns how many were rewired."""
    count = 0
    for parent in model.modules():
        for child_name, child in list(parent.named_children()):
            if child is old:
                setattr(parent, child_name, new)
                count += 1
    return count


def _selected(name: str, config: MPOConfig) -> bool:
    index = layer_index(name)
    return config.layers is None or index is None or index in config.layers


def apply_mpo(
    model: nn.Module, config: MPOConfig | None = None, progress: bool = True, names=None,
) -> list[Replacement]:
    """Replace the configured matrices of ``model`` by MPO layers, in place.

    Full bonds (no ``bond_dims``/``compression_ratio``) are lossless: the
    model's outputs do not change beyond rounding. ``names`` restricts the
    surgery to these module names (e.g. the matrices OPF selected). Returns
    what was replaced.

    Raises
    ------
    ValueError
        If the model has none of the configured matrices.
    """
    config = config or MPOConfig()
    targets = {name: group for name, group in find_matrices(model, config.groups).items() if _selected(name, config)}
    if names is not None:
        unknown = sorted(set(names) - set(targets))
        if unknown:
            raise ValueError(f"not supported matrices of groups {config.groups}: {unknown}.")
        targets = {name: group for name, group in targets.items() if name in set(names)}
    modules = dict(model.named_modules())
    pending = {n: g for n, g in targets.items() if type(modules[n]) in TO_MPO}
    if not targets:
        raise ValueError(
            f"{type(model).__name__} has no supported matrices for groups {config.groups}"
            + (f" in layers {config.layers}" if config.layers is not None else "")
            + "; supported are BERT-style encoders (BERT, ALBERT, DistilBERT, MobileBERT, MPNet)."
        )
    report = []
    for name, group in tqdm(pending.items(), desc="MPO decomposition", disable=not progress, unit="matrix"):
        old = modules[name]
        new = TO_MPO[type(old)](old, **config.target(group))
        new.group = group
        replace_module(model, old, new)
        report.append(Replacement(
            name, group, tuple(old.weight.shape), new.bond_dims,
            old.weight.numel(), sum(t.numel() for t in new.tensors),
        ))
    return report


def merge_mpo(model: nn.Module) -> int:
    """Contract every MPO layer back into ``nn.Linear``/``nn.Embedding``, in place.

    The merged model has the original architecture and size and saves/loads
    with plain ``transformers``. Returns the number of modules merged.
    """
    mpo_modules = {id(m): m for m in model.modules() if type(m) in TO_DENSE}
    for module in mpo_modules.values():
        replace_module(model, module, TO_DENSE[type(module)](module))
    return len(mpo_modules)


def mpo_modules(model: nn.Module) -> dict[str, MPOLinear | MPOEmbedding]:
    """``{name: module}`` of the MPO layers in ``model`` (shared ones once)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (MPOLinear, MPOEmbedding))}
