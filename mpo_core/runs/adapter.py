"""Task adapters: ship what lightweight fine-tuning trained, not the whole model.

An LFA run changes only the auxiliary tensors and the head; the central
tensors are the base model's decomposition, which anyone holding the base
model can recompute. An adapter folder follows peft's file names::

    adapter_config.json          base model, task, strategy, every MPO layer's factors / bonds / center,
                                 the trained tensor names, and a fingerprint of each frozen central tensor
    adapter_model.safetensors    the trained tensors (auxiliary tensors, head, biases: whatever had
                                 requires_grad), by their names in the model

:func:`load_adapter` loads the base model, decomposes the recorded matrices
with the recorded factors (truncating to the recorded bonds), checks that the
recomputed central tensors match the fingerprints, and loads the tensors.
Decompositions are reproducible up to rounding because singular vectors have
a fixed sign (:func:`~mpo_core.tensor.linalg.sign_fixed`); bitwise equality
across machines is not to be had from floating-point LAPACK/cuSOLVER, so the
fingerprint (norm and three seeded random-sign projections, compared to a
relative 1e-4; a SHA-256 of the bytes is kept for the record) is what must
match. A different base model, other factors or a sign flip of a single
bond vector changes a projection by far more than that.

Only strategies whose frozen tensors are the base model's make adapters:
``mpop`` truncates trained tensors (its central tensors are no longer the
base's) and ``opf`` merges back to dense; save their whole model instead.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from safetensors.torch import save
from torch import nn

from ..layers import MPOEmbedding, MPOLinear
from ..layers.mpo_module import MPOModule
from ..model.checkpoint import describe_layer
from ..model.layer_record import check_layer_record
from ..model.model_folder import check_model_folder, check_num_hidden_layers, read_json_object
from ..model.pretrained import default_model_path
from ..model.sequence_classifier import load_sequence_classifier
from ..model.surgery import mpo_modules, replace_module
from ..model.weights_file import load_weights
from .atomic_write import atomic_write_bytes, atomic_write_json

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_TYPE = "mpo_core-lfa"
FORMAT_VERSION = 1
FINGERPRINT_RTOL = 1e-4
NOT_ADAPTABLE = ("mpop", "opf")  # strategies whose frozen tensors are not the base model's
MAX_CONFIG_BYTES = 64 << 20  # a few hundred bytes per layer and fingerprint


def fingerprint(tensor: torch.Tensor) -> dict:
    """Shape, norm, three seeded random-sign projections (divided by the norm) and a SHA-256 of the bytes."""
    t = tensor.detach().to("cpu", torch.float64).reshape(-1)
    norm = float(t.norm())
    projections = []
    for seed in range(3):
        signs = torch.randint(0, 2, t.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int8)
        projections.append(float((t * (2.0 * signs - 1)).sum()) / norm if norm else 0.0)
    digest = hashlib.sha256(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()
    return {"shape": list(tensor.shape), "norm": norm, "projections": projections, "sha256": digest}


def fingerprints_match(recorded: dict, actual: dict, rtol: float = FINGERPRINT_RTOL) -> bool:
    """Same shape, norm within ``rtol`` and every projection within ``rtol`` (projections are O(1))."""
    if recorded["shape"] != actual["shape"]:
        return False
    if not math.isclose(recorded["norm"], actual["norm"], rel_tol=rtol, abs_tol=1e-12):
        return False
    return all(abs(a - b) <= rtol for a, b in zip(recorded["projections"], actual["projections"]))


def save_adapter(model: nn.Module, directory: str | Path, *, base_model: str | None = None, task: str | None = None,
                 num_hidden_layers: int | None = None, strategy: str | None = None) -> Path:
    """Write the tensors that train (``requires_grad``) and how to rebuild the rest from the base model.

    Parameters
    ----------
    model:
        A fine-tuned model with MPO layers whose frozen tensors are the base model's decomposition.
    directory:
        Where ``adapter_config.json`` and ``adapter_model.safetensors`` go (created).
    base_model:
        The base model's folder or hub name (``None``: the packaged MiniLM).
    task, num_hidden_layers, strategy:
        Recorded so that :func:`load_adapter` rebuilds the same classifier.
    """
    if strategy in NOT_ADAPTABLE:
        raise ValueError(f"{strategy} runs cannot be saved as adapters: "
                         + ("squeezing truncates trained tensors, so the central tensors are no longer the base "
                            "model's" if strategy == "mpop" else "the model is merged back to dense")
                         + "; save the whole model instead.")
    trained = {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("the model has no trainable tensors: nothing to save as an adapter.")
    layers, frozen = {}, {}
    for name, module in mpo_modules(model).items():
        layers[name] = describe_layer(module)
        for k, tensor in enumerate(module.tensors):
            if not tensor.requires_grad:
                frozen[f"{name}.tensors.{k}"] = fingerprint(tensor)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS_FILE, save(trained))
    config = {"adapter_type": ADAPTER_TYPE, "format_version": FORMAT_VERSION,
              "base_model_name_or_path": None if base_model is None else str(base_model), "task": task,
              "num_hidden_layers": num_hidden_layers, "strategy": strategy, "mpo_layers": layers,
              "trained": sorted(trained), "frozen_fingerprints": frozen,
              "trained_params": sum(t.numel() for t in trained.values())}
    atomic_write_json(directory / CONFIG_FILE, config)  # last: its presence marks a complete adapter
    return directory


def read_adapter_config(directory: str | Path) -> dict:
    """The adapter's ``adapter_config.json``, checked for its type, version and every field's type.

    The layer records are checked against the base model's modules later, by :func:`load_adapter`.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not an adapter folder written by save_adapter().")
    config = read_json_object(path, MAX_CONFIG_BYTES)
    if config.get("adapter_type") != ADAPTER_TYPE:
        raise ValueError(f"{path} is not an mpo_core LFA adapter (adapter_type {config.get('adapter_type')!r}).")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {config.get('format_version')!r}; this version reads "
                         f"{FORMAT_VERSION}.")
    _check_fields(config, path)
    return config


def _check_fields(config: dict, path: Path) -> None:
    """Types of the adapter's fields; what they must match (the base model's layers and modules) comes later."""
    for field in ("task", "base_model_name_or_path", "strategy"):
        if not isinstance(config.get(field), (str, type(None))) or (field == "task" and not config.get(field)):
            raise ValueError(f"{path}: {field} must be a string, got {config.get(field)!r}.")
    if config.get("num_hidden_layers") is not None:
        try:
            check_num_hidden_layers(config["num_hidden_layers"], None, "")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    for field, kind in (("mpo_layers", dict), ("trained", list), ("frozen_fingerprints", dict)):
        if not isinstance(config.get(field), kind) or not config[field]:
            raise ValueError(f"{path}: {field} must be a non-empty JSON {'object' if kind is dict else 'list'}, "
                             f"got {str(config.get(field))[:80]}; an adapter without them cannot be checked "
                             "against its base model.")
    if not all(isinstance(name, str) for name in config["trained"]):
        raise ValueError(f"{path}: trained must list tensor names (strings).")
    for name, want in config["frozen_fingerprints"].items():
        if not _is_fingerprint(want):
            raise ValueError(f"{path}: the fingerprint of {name} must be an object with a shape (integers), a finite "
                             "norm and three finite projections.")


def _is_fingerprint(value) -> bool:
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    return (isinstance(value, dict) and isinstance(value.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value["shape"])
            and number(value.get("norm")) and isinstance(value.get("projections"), list)
            and len(value["projections"]) == 3 and all(number(x) for x in value["projections"]))


def load_adapter(directory: str | Path, base: str | Path | None = None) -> nn.Module:
    """The fine-tuned model rebuilt from its base model and the adapter in ``directory`` (eval mode).

    Parameters
    ----------
    directory:
        A folder written by :func:`save_adapter`.
    base:
        The base model's folder or hub name (``None``: the one recorded, else the packaged MiniLM).

    Raises
    ------
    ValueError
        When the adapter's config is mistyped or out of bounds (its layers checked against the base model's
        before anything is decomposed), its base folder holds code or pickles, a recomputed central tensor does
        not match its fingerprint (another base model, other weights), or the adapter's tensors are torn,
        not finite or do not fit the model.
    """
    directory = Path(directory)
    config = read_adapter_config(directory)
    source = base if base is not None else config.get("base_model_name_or_path")
    check_model_folder(source or default_model_path())  # before transformers sees it: the base may be hostile too
    if not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{directory / WEIGHTS_FILE} is missing: the adapter folder is incomplete.")
    tensors = load_weights(directory / WEIGHTS_FILE)  # torn, corrupt or not finite: refused before the base loads
    model, _ = load_sequence_classifier(config["task"], source, config.get("num_hidden_layers"), seed=0)
    modules = dict(model.named_modules())
    for name, entry in config["mpo_layers"].items():
        if name not in modules:
            raise ValueError(f"{name} of the adapter is not a module of the base model {source or 'MiniLM'}.")
        check_layer_record(name, entry, modules[name])
    for name, entry in config["mpo_layers"].items():
        replace_module(model, modules[name], _rebuild(modules[name], entry))
    _check_frozen(model, config["frozen_fingerprints"], source)
    _load_trained(model, tensors, directory / WEIGHTS_FILE, config["trained"])
    return model.eval()


def _rebuild(dense: nn.Module, entry: dict) -> MPOModule:
    """The base module decomposed with the recorded factors, truncated to the recorded bonds."""
    options = dict(out_factors=tuple(entry["out_factors"]), in_factors=tuple(entry["in_factors"]),
                   forward_mode=entry["forward_mode"])
    build = MPOEmbedding.from_embedding if entry["kind"] == "embedding" else MPOLinear.from_linear
    module = build(dense, **options)
    if tuple(module.bond_dims) != tuple(entry["bond_dims"]):
        module.truncate_(tuple(entry["bond_dims"]))
    if module.center != entry["center"]:
        raise ValueError(f"the recorded center {entry['center']} differs from the decomposition's {module.center}.")
    module.group = entry.get("group")  # optional: check_layer_record checked its type
    module.freeze_central(True)
    return module


def _check_frozen(model: nn.Module, recorded: dict, source) -> None:
    params = dict(model.named_parameters())
    for name, want in recorded.items():
        if name not in params:
            raise ValueError(f"the adapter's frozen tensor {name} is not in the rebuilt model.")
        got = fingerprint(params[name])
        if list(want["shape"]) != list(got["shape"]):
            raise ValueError(f"the adapter's frozen tensor {name} has shape {want['shape']}, the rebuilt model's "
                             f"{got['shape']}: the adapter was made from another base model; load it with the base "
                             "it was made from (base=...).")
        if not fingerprints_match(want, got):
            raise ValueError(
                f"the base model {source or '(packaged MiniLM)'} does not reproduce the adapter's frozen tensor "
                f"{name} (norm {got['norm']:.6g} vs {want['norm']:.6g}, projections {got['projections'][0]:.4f} vs "
                f"{want['projections'][0]:.4f}): the adapter was trained on another base model or weights; "
                "load it with the base it was made from (base=...).")


def _load_trained(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path, names: list[str]) -> None:
    params = dict(model.named_parameters())
    if sorted(tensors) != sorted(names):
        raise ValueError(f"{path} holds other tensors than its config lists ({len(tensors)} vs {len(names)}).")
    for name, value in tensors.items():
        if name not in params:
            raise ValueError(f"the adapter's tensor {name} is not a parameter of the rebuilt model.")
        if tuple(params[name].shape) != tuple(value.shape):
            raise ValueError(f"the adapter's {name} has shape {tuple(value.shape)}, the model's "
                             f"{tuple(params[name].shape)}.")
        with torch.no_grad():
            params[name].copy_(value)


def evaluate_adapter(directory: str | Path, data_dir: str | Path | None = None, *, task: str | None = None,
                     base: str | Path | None = None, max_eval_examples: int | None = None, max_length: int = 128,
                     batch_size: int = 128, seed: int = 0, progress: bool = True) -> dict:
    """Load an adapter onto its base model and score it on the task's dev set (the paper metric and the rest).

    ``task`` must agree with the adapter's (``None``: the adapter's). Returns the metrics, the number of
    dev examples, the adapter's size in bytes and its trained parameter count.
    """
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from ..data.glue import load_glue_split, tokenize_split
    from ..data.metrics import compute_glue_metrics

    config = read_adapter_config(directory)
    if task is not None and task != config["task"]:
        raise ValueError(f"the adapter was trained on {config['task']!r}, not {task!r}.")
    model = load_adapter(directory, base)
    source = base if base is not None else config.get("base_model_name_or_path")
    tokenizer = AutoTokenizer.from_pretrained(str(source or default_model_path()), trust_remote_code=False)
    split = load_glue_split(config["task"], "dev", data_dir, max_examples=max_eval_examples, seed=seed)
    dataset = tokenize_split(split, tokenizer, max_length)
    collate = DataCollatorWithPadding(tokenizer)
    features = [{k: dataset[i][k] for k in dataset.column_names} for i in range(len(dataset))]
    logits, labels = [], []
    batches = range(0, len(features), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="dev", unit="batch")
    with torch.inference_mode():
        for start in batches:
            batch = collate(features[start:start + batch_size])
            labels.append(batch.pop("labels"))
            logits.append(model(**batch).logits)
    scores = compute_glue_metrics(config["task"], torch.cat(logits).float().numpy(), torch.cat(labels).numpy())
    size = sum(f.stat().st_size for f in Path(directory).iterdir() if f.is_file())
    return {"task": config["task"], **scores, "num_eval_examples": len(features), "adapter_bytes": size,
            "trained_params": config.get("trained_params")}


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "evaluate_adapter", "fingerprint", "fingerprints_match", "load_adapter",
           "read_adapter_config", "save_adapter"]
