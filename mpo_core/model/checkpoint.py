"""Saving and loading models with MPO layers (safetensors + a JSON of layer shapes).

``save_mpo_model`` writes the usual ``save_pretrained`` folder (config and
``model.safetensors``, whose tensors include every local tensor) plus
``mpo_layers.json`` with each MPO layer's factors and bond dims, so that
``load_mpo_model`` can rebuild the modules with the right (possibly
truncated) shapes before loading the weights. Nothing is unpickled: weights
are read with safetensors, a folder with code or an ``auto_map`` is refused, and
``trust_remote_code=False`` is passed. A run's saved
model is read back by :func:`mpo_core.runs.run_models.load_final_model`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..layers import MPOEmbedding, MPOLinear
from ..tensor.mpo import MPO
from ..tensor.shape import MPOShape
from .layer_record import check_layer_record
from .model_folder import check_config_bounds, check_model_folder, read_json_object
from .surgery import replace_module, mpo_modules
from .weights_file import load_weights

LAYERS_FILE = "mpo_layers.json"
MAX_LAYERS_BYTES = 16 << 20  # a few hundred bytes per MPO layer


def describe_layer(module: MPOLinear | MPOEmbedding) -> dict:
    s = module.shape
    entry = {
        "kind": "embedding" if isinstance(module, MPOEmbedding) else "linear",
        "group": getattr(module, "group", None),
        "out_features": s.out_features, "in_features": s.in_features,
        "out_factors": list(s.out_factors), "in_factors": list(s.in_factors),
        "bond_dims": list(module.bond_dims), "center": module.center,
        "forward_mode": module.forward_mode,
    }
    if isinstance(module, MPOLinear):
        entry["bias"] = module.bias is not None
    else:
        entry["padding_idx"] = module.padding_idx
    return entry


def save_mpo_model(model: nn.Module, path: str | Path) -> Path:
    """``model.save_pretrained(path)`` (safetensors) plus ``mpo_layers.json``.

    Raises
    ------
    TypeError
        For a module without ``save_pretrained`` (a bare layer: save its ``state_dict`` with safetensors).
    """
    if not callable(getattr(model, "save_pretrained", None)):
        raise TypeError(f"save_mpo_model saves a transformers model (with save_pretrained), got a "
                        f"{type(model).__name__}; save a bare layer's state_dict with safetensors.torch.save_file.")
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    layers = {name: describe_layer(m) for name, m in mpo_modules(model).items()}
    (path / LAYERS_FILE).write_text(json.dumps(layers, indent=1))  # after the weights: it marks a complete save
    return path


def _empty_module(entry: dict, dtype: torch.dtype) -> MPOLinear | MPOEmbedding:
    """An MPO layer of the recorded shapes, zero-filled (weights are loaded next)."""
    shape = MPOShape(entry["out_features"], entry["in_features"], tuple(entry["out_factors"]), tuple(entry["in_factors"]))
    bonds = (1, *entry["bond_dims"], 1)
    tensors = tuple(
        torch.zeros(bonds[k], i, j, bonds[k + 1], dtype=dtype)
        for k, (i, j) in enumerate(zip(shape.out_factors, shape.in_factors))
    )
    spectra = tuple(torch.zeros(d, dtype=torch.float64) for d in entry["bond_dims"])
    mpo = MPO(tensors, shape, spectra, entry["center"])
    if entry["kind"] == "embedding":
        module = MPOEmbedding(mpo, entry.get("padding_idx"), entry["forward_mode"])
    else:
        bias = torch.zeros(shape.out_features, dtype=dtype) if entry["bias"] else None
        module = MPOLinear(mpo, bias, entry["forward_mode"])
    module.group = entry.get("group")  # optional, like padding_idx: check_layer_record checked its type
    return module


def load_mpo_model(path: str | Path, model_class, base_config: dict | None = None, **config_overrides) -> nn.Module:
    """Rebuild a model saved by :func:`save_mpo_model`.

    The folder is checked first (no code, no pickles, :data:`~mpo_core.model.model_folder.MODEL_CAPS`),
    then every layer record against the module it replaces, before the model or a local tensor is built.

    Parameters
    ----------
    path:
        The saved folder.
    model_class:
        A ``transformers`` auto/model class, e.g. ``AutoModelForSequenceClassification``.
    base_config:
        The ``config.json`` of the model this one was made from, if known: layers at most its, same widths.

    Raises
    ------
    ValueError
        For a folder with code or pickles, a config or layer record out of bounds, weights that are torn,
        not finite, or do not match the model.
    """
    path = Path(path)
    layers_file = path / LAYERS_FILE
    if not layers_file.is_file():
        raise FileNotFoundError(f"{layers_file} is missing; was this folder written by save_mpo_model()?")
    check_model_folder(path)
    check_config_bounds({**read_json_object(path / "config.json"), **config_overrides}, path / "config.json",
                        base_config)
    records = read_json_object(layers_file, MAX_LAYERS_BYTES)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=False, **config_overrides)
    model = model_class.from_config(config)
    dtype = next(model.parameters()).dtype
    modules = dict(model.named_modules())
    for name in records:
        if name not in modules:
            raise ValueError(f"{name} from {LAYERS_FILE} is not a module of {type(model).__name__}.")
        check_layer_record(name, records[name], modules[name])
    for name, entry in records.items():
        replace_module(model, modules[name], _empty_module(entry, dtype))
    weights = {}
    for file in sorted(path.glob("*.safetensors")):
        weights.update(load_weights(file))
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise ValueError(f"checkpoint does not match the model: {' '.join(str(exc).split())[:300]}") from None
    missing = [k for k in missing if k not in _tied_keys(model)]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    return model.eval()


def _tied_keys(model: nn.Module) -> set[str]:
    """Parameter names that share storage with another (saved once by ``save_pretrained``)."""
    seen, tied = {}, set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        seen.setdefault(id(p), name)
    return tied

