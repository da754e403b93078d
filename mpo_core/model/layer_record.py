"""One MPO layer's record (``mpo_layers.json`` of a checkpoint, ``mpo_layers`` of an adapter), checked.

A record says how to rebuild a layer: ``kind``, ``out_features``/``in_features``,
``out_factors``/``in_factors``, ``bond_dims``, ``center``, ``forward_mode`` and
``bias`` or ``padding_idx`` (written by :func:`mpo_core.model.checkpoint.describe_layer`).
Read from someone else's file, each field is checked for its type and against
the dense module it replaces before a single local tensor is allocated: the
factors multiply to at least the module's sizes (zero padding, Eq. (2)) but
not to more than twice them, and every bond is at most its Eq. (2) full bond.
"""
from __future__ import annotations

import math

from torch import nn

from ..layers.mpo_module import FORWARD_MODES

KINDS = ("linear", "embedding")
MAX_TENSORS = 16  # local tensors per MPO; the papers use 3 to 9


def _int(where: str, field: str, value, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{where}: {field} must be an integer {bounds}, got {value!r}.")
    return value


def _factors(where: str, field: str, value, features: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TENSORS:
        raise ValueError(f"{where}: {field} must be a list of 1 to {MAX_TENSORS} integers, got {str(value)[:80]}.")
    factors = tuple(_int(where, field, f, 1, features) for f in value)
    if not features <= math.prod(factors) <= 2 * features:
        raise ValueError(f"{where}: {field} {list(factors)} multiply to {math.prod(factors)}, which must be at least "
                         f"the layer's {features} and at most twice it.")
    return factors


def module_sizes(module: nn.Module) -> tuple[str, int, int]:
    """``(kind, out_features, in_features)`` of the dense module a record replaces (its weight's shape)."""
    if isinstance(module, nn.Embedding):
        return "embedding", module.num_embeddings, module.embedding_dim
    if isinstance(module, nn.Linear):
        return "linear", module.out_features, module.in_features
    raise ValueError(f"a {type(module).__name__} cannot hold an MPO layer (only nn.Linear and nn.Embedding).")


def check_layer_record(name: str, entry, module: nn.Module) -> dict:
    """``entry`` checked field by field against ``module`` (the dense layer it replaces); returns it.

    Raises
    ------
    ValueError
        Naming the layer and the field.
    """
    where = f"MPO layer {name}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: the record must be a JSON object, not {type(entry).__name__}.")
    kind, out_features, in_features = module_sizes(module)
    if entry.get("kind") not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {entry.get('kind')!r}.")
    if entry["kind"] != kind:
        raise ValueError(f"{where}: the record is an MPO {entry['kind']}, the model's layer an {kind}.")
    for field, size in (("out_features", out_features), ("in_features", in_features)):
        if entry.get(field) != size or isinstance(entry.get(field), bool):
            raise ValueError(f"{where}: {field} must be the layer's {size}, got {entry.get(field)!r}.")
    out_f = _factors(where, "out_factors", entry.get("out_factors"), out_features)
    in_f = _factors(where, "in_factors", entry.get("in_factors"), in_features)
    if len(out_f) != len(in_f):
        raise ValueError(f"{where}: out_factors and in_factors must have the same length "
                         f"({len(out_f)} vs {len(in_f)}).")
    _check_bonds(where, entry.get("bond_dims"), [i * j for i, j in zip(out_f, in_f)])
    _int(where, "center", entry.get("center"), 0, len(out_f) - 1)
    if entry.get("forward_mode") not in FORWARD_MODES:
        raise ValueError(f"{where}: forward_mode must be one of {FORWARD_MODES}, got {entry.get('forward_mode')!r}.")
    if not isinstance(entry.get("group"), (str, type(None))):
        raise ValueError(f"{where}: group must be a string or null, got {entry.get('group')!r}.")
    if kind == "linear" and not isinstance(entry.get("bias"), bool):
        raise ValueError(f"{where}: bias must be true or false, got {entry.get('bias')!r}.")
    if kind == "embedding" and entry.get("padding_idx") is not None:
        _int(where, "padding_idx", entry["padding_idx"], 0, out_features - 1)
    return entry


def _check_bonds(where: str, bonds, local_dims: list[int]) -> None:
    """``n - 1`` positive ints, each at most its Eq. (2) full bond ``min(prod left, prod right)``."""
    if not isinstance(bonds, list) or len(bonds) != len(local_dims) - 1:
        raise ValueError(f"{where}: bond_dims must be a list of {len(local_dims) - 1} integers, got {str(bonds)[:80]}.")
    for k, bond in enumerate(bonds):
        full = min(math.prod(local_dims[:k + 1]), math.prod(local_dims[k + 1:]))
        _int(where, f"bond_dims[{k}]", bond, 1, full)


__all__ = ["KINDS", "check_layer_record", "module_sizes"]
