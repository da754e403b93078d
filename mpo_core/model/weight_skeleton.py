"""A model's layout without its weights or its code: a module tree on the meta device, read from file headers.

Planning a compression needs each matrix's name, role and shape and the model's
parameter count, not the weights, and not ``transformers``' modeling code,
whose first import costs seconds (about 3.4 s for BERT on this machine: it pulls
in ``torch._dynamo`` and ``torch.distributed``). :func:`weight_skeleton` reads
the ``*.safetensors`` headers of a model folder and builds a tree of
``nn.Module`` whose names and shapes are the stored tensors', so
:func:`~mpo_core.model.matrix_groups.find_matrices` and
:func:`~mpo_core.model.parameter_count.count_parameters` read it as they read the
loaded model::

    "<m>.weight", 2-D, <m> ending in "embeddings"   ->  nn.Embedding at <m>
    "<m>.weight", 2-D, otherwise                    ->  nn.Linear at <m> (with "<m>.bias" if stored)
    any other floating tensor                       ->  a parameter at its path
    integer tensors (position ids)                  ->  a buffer (not a parameter, as in the model)

Everything lives on the meta device: nothing is allocated, nothing computed. The
names are the files' names, which are the loaded ``AutoModel``'s for a model
saved from its base class (the packaged MiniLM); a checkpoint saved with a
task head carries its prefix (``bert.``) here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from .pretrained import _weight_files, default_model_path

#: safetensors dtype names of the tensors the skeleton holds as buffers, not parameters
INTEGER_DTYPES = frozenset({"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"})


def stored_tensors(model_path: Path | str | None = None) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, safetensors dtype)}`` of every tensor in the model folder's files (headers only)."""
    path = default_model_path() if model_path is None else Path(model_path)
    tensors = {}
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                piece = f.get_slice(name)
                tensors[name] = (tuple(int(s) for s in piece.get_shape()), str(piece.get_dtype()))
    return tensors


def _module_at(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split(".") if path else ():
        if part not in module._modules:
            module.add_module(part, nn.Module())
        module = module._modules[part]
    return module


def _split(name: str) -> tuple[str, str]:
    owner, _, leaf = name.rpartition(".")
    return owner, leaf


def _meta(shape) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, device="meta"))


def _linear(shape: tuple[int, int], bias: bool) -> nn.Linear:
    """An ``nn.Linear`` holding meta tensors, built without its initialisation: a random init, even on the
    meta device, imports ``torch._dynamo`` (about 4 s the first time)."""
    module = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(module)
    module.out_features, module.in_features = shape
    module.weight = _meta(shape)
    module.bias = _meta((shape[0],)) if bias else None
    return module


def weight_skeleton(model_path: Path | str | None = None) -> nn.Module:
    """The model folder's module tree on the meta device (see the module docstring); no weight is read."""
    tensors = stored_tensors(model_path)
    root = nn.Module()
    placed = set()
    for name, (shape, _) in tensors.items():  # matrices first: they become Linear/Embedding modules
        owner, leaf = _split(name)
        if leaf != "weight" or len(shape) != 2 or not owner:
            continue
        parent_path, child = _split(owner)
        if child.endswith("embeddings"):
            module = nn.Embedding(shape[0], shape[1], _weight=_meta(shape))  # given a weight: no initialisation
        else:
            bias = tensors.get(f"{owner}.bias")
            has_bias = bias is not None and bias[0] == (shape[0],)
            module = _linear(shape, has_bias)
            if has_bias:
                placed.add(f"{owner}.bias")
        parent = _module_at(root, parent_path)
        earlier = parent._modules.get(child)  # made as a plain holder for a deeper name ("<m>.x.weight")
        for key, sub in ({} if earlier is None else earlier._modules).items():
            module.add_module(key, sub)
        parent.add_module(child, module)
        placed.add(name)
    for name, (shape, dtype) in tensors.items():
        if name in placed:
            continue
        owner, leaf = _split(name)
        holder = _module_at(root, owner)
        if dtype in INTEGER_DTYPES:
            holder.register_buffer(leaf, torch.empty(shape, dtype=torch.int64, device="meta"), persistent=True)
        else:
            holder.register_parameter(leaf, _meta(shape))
    return root
