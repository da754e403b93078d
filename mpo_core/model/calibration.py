"""Calibration statistics: what each weight matrix of an encoder sees on real sentences.

One pass of the original model over a few hundred sentences gives, for every
matrix ``W`` (``y = x W^T``) that compression touches, the second moment of its
inputs over the real (non-padding) tokens, and for the word embedding how often
each token id is looked up::

    sentences --tokenizer--> batch (B, T) + attention_mask (B, T)
        forward pre-hook on each Linear/MPOLinear:  X = x[mask]    (N, in)
            second_moments[name] += X^T X                            (in, in), float64
        forward pre-hook on the word Embedding:     ids[mask]       (N,)
            token_counts[name]   += bincount(ids, minlength=vocab)  (vocab,), float64

``X^T X`` turns a weight error ``E`` into the output error it causes on this
data, ``||X E^T||_F^2 = tr(E X^T X E^T)``, which is what data-aware truncation
minimises. Matrices fed the very same tensor (query, key and value of one layer)
share one product per batch, computed once.

:func:`calibration_stats` wraps sentences + statistics in a disk cache (one
safetensors file of tensors, each symmetric moment as its packed upper
triangle, and one JSON of metadata per key), so a second run
with the same model, data and options reads them back instead of running the
model.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..data.glue import cut_texts
from ..json_file import read_json_bounded
from ..tensor.second_moment import add_blocks_, pack_upper, symmetric_from_upper, unpack_upper, upper_gram_blocks
from ..tensor.validation import is_int
from .calibration_sentences import calibration_sentences
from .matrix_groups import EMBEDDING_TYPES, GROUPS, LINEAR_TYPES, find_matrices
from .weights_file import load_weights

#: the widest matrix input accepted: its (in, in) float64 moment is 2 GiB at this size
MAX_CALIBRATION_FEATURES = 16384
#: the largest vocabulary counted
MAX_CALIBRATION_VOCAB = 10_000_000
MAX_BATCH_SIZE = 4096
CACHE_ENV = "MPO_CACHE_DIR"
#: bump when the cached layout or the statistics' meaning changes (old entries then miss)
CACHE_FORMAT = 1
MAX_CACHE_JSON_BYTES = 1 << 20
#: dtype of each batch's product X^T X (summed in float64 whatever this is; see collect_calibration)
PRODUCT_DTYPE = torch.float32


@dataclass(frozen=True)
class CalibrationStats:
    """Second moments of each matrix's inputs and token counts of the word embedding.

    Attributes
    ----------
    second_moments : dict of str to Tensor
        Module name -> ``X^T X`` (``(in_features, in_features)``, float64, CPU) summed over
        the real tokens. Matrices fed the same input (query/key/value) hold the same tensor.
    num_tokens : dict of str to int
        Module name -> the number of rows summed (real tokens; batch rows for a pooler;
        looked-up ids for an embedding).
    token_counts : dict of str to Tensor
        Embedding name -> ``(num_embeddings,)`` float64 count of each id over the real tokens.
    num_sentences : int
        Sentences the model ran over.
    max_length : int
        Tokens per sentence at most (special tokens included).
    key : str
        The cache key (empty when not computed through :func:`calibration_stats`).
    metadata : dict
        What the key was made of (source, seed, groups, ...), for the record.
    """

    second_moments: dict[str, torch.Tensor]
    num_tokens: dict[str, int]
    token_counts: dict[str, torch.Tensor]
    num_sentences: int
    max_length: int
    key: str = ""
    metadata: dict = field(default_factory=dict)

    def covariance(self, name: str) -> torch.Tensor:
        """The mean second moment ``X^T X / N`` of matrix ``name`` (uncentred, float64)."""
        if name not in self.second_moments:
            raise KeyError(f"no calibration statistics for {name!r}; known: {sorted(self.second_moments)[:8]} ...")
        return self.second_moments[name] / max(self.num_tokens[name], 1)


class _Collector:
    """The forward pre-hooks' shared state: the batch's mask, this forward's products, the running sums."""

    def __init__(self, linears: dict[str, nn.Module], embeddings: dict[str, nn.Module]):
        self.mask: torch.Tensor | None = None  # (B, T) bool, set before each forward (set_batch)
        self.real: torch.Tensor | None = None  # (N,) flat positions of the real tokens
        self.products: dict[int, tuple[weakref.ref, list, int, list[str]]] = {}
        self.sums: dict[tuple[str, ...], tuple[torch.Tensor, int]] = {}
        self.token_counts = {name: None for name in embeddings}
        self.num_ids = {name: 0 for name in embeddings}
        self.sizes = {name: m.num_embeddings for name, m in embeddings.items()}
        self.handles = [m.register_forward_pre_hook(self._linear_hook(name)) for name, m in linears.items()]
        self.handles += [m.register_forward_pre_hook(self._embedding_hook(name)) for name, m in embeddings.items()]

    def set_batch(self, attention_mask: torch.Tensor) -> None:
        self.mask = attention_mask.bool()  # (B, T)
        self.real = self.mask.reshape(-1).nonzero().squeeze(1)  # (N,), once per batch, not per matrix

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The real tokens' rows ``(N, in)`` of an input ``(B, T, in)``; every row of any other shape."""
        if x.dim() == 3 and self.mask is not None and x.shape[:2] == self.mask.shape:
            return x.reshape(-1, x.shape[-1]).index_select(0, self.real)  # (N, in)
        return x.reshape(-1, x.shape[-1])

    def _linear_hook(self, name: str):
        def hook(module, args):
            x = args[0]
            seen = self.products.get(id(x))
            if seen is not None and seen[0]() is x:  # query/key/value: the same tensor, one product
                seen[3].append(name)
                return
            if seen is not None:  # that tensor is gone and its id reused: its product is complete
                self._add(seen)
            rows = self.rows(x).to(PRODUCT_DTYPE)  # (N, in)
            product = upper_gram_blocks(rows)  # the upper blocks of (in, in); summed in float64
            self.products[id(x)] = (weakref.ref(x), product, rows.shape[0], [name])  # no strong ref: x may go
        return hook

    def _embedding_hook(self, name: str):
        def hook(module, args):
            ids = args[0]
            ids = ids[self.mask] if self.mask is not None and ids.shape == self.mask.shape else ids.reshape(-1)
            counts = torch.bincount(ids, minlength=self.sizes[name]).double()
            previous = self.token_counts[name]
            self.token_counts[name] = counts if previous is None else previous + counts
            self.num_ids[name] += ids.numel()
        return hook

    def end_forward(self) -> None:
        """Add this forward's products to the running sums, keyed by the matrices that shared each."""
        for entry in self.products.values():
            self._add(entry)
        self.products.clear()

    def _add(self, entry) -> None:
        _, blocks, count, names = entry
        key = tuple(names)
        if key not in self.sums:
            n = blocks[0][1].shape[1]
            self.sums[key] = (blocks[0][1].new_zeros(n, n, dtype=torch.float64), 0)
        total, tokens = self.sums[key]
        self.sums[key] = (add_blocks_(total, blocks), tokens + count)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def collect_calibration(model: nn.Module, tokenizer, sentences: Sequence[str], *, groups: Sequence[str] | None = None,
                        max_length: int = 128, batch_size: int = 32, progress: bool = True) -> CalibrationStats:
    """Run ``model`` once over ``sentences`` and sum each matrix's input second moment ``X^T X``.

    Padding tokens are left out (the batch's attention mask picks the rows), so the
    result does not depend on how sentences are batched. Sentences are batched in order
    of length (less padding to run); each is first cut to ``max_length * 32`` characters.

    Each batch's product is taken in float32 (its upper blocks only,
    :mod:`~mpo_core.tensor.second_moment`) and added into float64 sums. Measured on the
    packaged 6-layer MiniLM, one thread, 512 STS-B sentences, on a shared 2-core machine
    at its quietest: the forward alone 3.4 s; with the statistics 5.9 s with float32
    products against 8.5 s with float64 ones (under load: 7.3 s against 9.4 s of CPU).
    The 1536-wide FFN-output products cost about as much as the forward. A batch holds
    at most ``batch_size * max_length`` rows, over which a float32 product loses about
    1e-6 relative; the float64 sums keep that from growing with the number of batches.

    Parameters
    ----------
    model : nn.Module
        An encoder (``AutoModel``) or a task model; run in eval mode under
        ``torch.inference_mode`` and returned to its mode afterwards.
    tokenizer : transformers tokenizer
    sentences : sequence of str
    groups : sequence of str, optional
        Matrix groups (:data:`~mpo_core.model.matrix_groups.GROUPS`); default all of them,
        the word embedding included.
    max_length : int
        Tokens per sentence at most, special tokens included.
    batch_size : int
        Sentences per forward.
    progress : bool
        Show a tqdm bar over the batches.

    Returns
    -------
    CalibrationStats

    Raises
    ------
    ValueError
        No sentences, bad options, an unknown group, no matrix of those groups, or a
        matrix wider than ``MAX_CALIBRATION_FEATURES`` (before anything is allocated).
    """
    from tqdm.auto import tqdm

    groups = _check_groups(groups)
    _check_collect_options(sentences, tokenizer, max_length, batch_size)
    linears, embeddings = _calibrated_modules(model, groups)
    texts = cut_texts(sentences, max_length)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch with little padding
    device = next(model.parameters()).device
    collector, was_training = _Collector(linears, embeddings), model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="calibration", disable=not progress):
                batch = tokenizer([texts[i] for i in order[start:start + batch_size]], padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt").to(device)
                collector.set_batch(batch["attention_mask"])
                model(**batch)
                collector.end_forward()
    finally:
        collector.remove()
        model.train(was_training)
    return _stats(collector, linears, len(texts), max_length)


def _stats(collector: _Collector, linears, num_sentences: int, max_length: int) -> CalibrationStats:
    """The running sums as CPU tensors outside inference mode, one tensor per group of sharing matrices."""
    moments, tokens = {}, {}
    per_name: dict[str, list[tuple[str, ...]]] = {}
    for key in collector.sums:
        for name in key:
            per_name.setdefault(name, []).append(key)
    shared = {key: symmetric_from_upper(total).cpu() for key, (total, _) in collector.sums.items()}
    for name, module in linears.items():
        keys = per_name.get(name, [])
        if not keys:
            raise ValueError(f"{name} received no input in the calibration pass; is it used by the model's forward?")
        moments[name] = shared[keys[0]] if len(keys) == 1 else sum(shared[k] for k in keys)
        tokens[name] = sum(collector.sums[k][1] for k in keys)
    counts = {name: c.cpu().clone() for name, c in collector.token_counts.items() if c is not None}
    tokens.update({name: collector.num_ids[name] for name in counts})
    return CalibrationStats(moments, tokens, counts, num_sentences, max_length)


def _check_groups(groups) -> tuple[str, ...]:
    groups = GROUPS if groups is None else tuple(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ValueError(f"unknown matrix groups {unknown}; choose from {list(GROUPS)}.")
    return groups


def _check_collect_options(sentences, tokenizer, max_length, batch_size) -> None:
    if isinstance(sentences, str) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("give calibration sentences as a non-empty list of strings.")
    longest = getattr(tokenizer, "model_max_length", 512)
    if not (is_int(max_length) and 2 < max_length <= min(longest, 1 << 16)):
        raise ValueError(f"max_length must be an int from 3 to the model's {longest} positions, got {max_length!r}.")
    if not (is_int(batch_size) and 1 <= batch_size <= MAX_BATCH_SIZE):
        raise ValueError(f"batch_size must be an int from 1 to {MAX_BATCH_SIZE}, got {batch_size!r}.")


def _calibrated_modules(model: nn.Module, groups) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """``(linears, embeddings)`` of the groups, their sizes checked before anything is allocated."""
    modules = dict(model.named_modules())
    found = find_matrices(model, groups)
    linears = {n: modules[n] for n in found if isinstance(modules[n], LINEAR_TYPES)}
    embeddings = {n: modules[n] for n in found if isinstance(modules[n], EMBEDDING_TYPES)}
    if not linears and not embeddings:
        raise ValueError(f"the model has no matrix of the groups {list(groups)}; is it a BERT-style encoder?")
    for name, module in linears.items():
        if module.in_features > MAX_CALIBRATION_FEATURES:
            raise ValueError(f"{name} takes {module.in_features} input features, more than the "
                             f"{MAX_CALIBRATION_FEATURES} calibrated (its float64 moment would not fit); "
                             "leave its group out of groups=.")
    for name, module in embeddings.items():
        if module.num_embeddings > MAX_CALIBRATION_VOCAB:
            raise ValueError(f"{name} has {module.num_embeddings} rows, more than the {MAX_CALIBRATION_VOCAB} "
                             "counted; leave word_embedding out of groups=.")
    return linears, embeddings


# --- the disk cache ------------------------------------------------------------------------


def calibration_stats(model: nn.Module, tokenizer, source: str | os.PathLike, *, num_sentences: int = 512,
                      max_length: int = 128, seed: int = 0, groups: Sequence[str] | None = None,
                      cache_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                      model_key: str | None = None, batch_size: int = 32,
                      progress: bool = True) -> CalibrationStats:
    """Calibration statistics of ``model`` on ``num_sentences`` of ``source``, read from the cache when there.

    The cache key hashes the model (``model_key`` when given, else its config and a
    fingerprint of its weights), the tokenizer, the source and the exact sentences
    drawn, ``num_sentences``, ``max_length``, ``seed`` and ``groups``. A cache entry
    that is unreadable, torn, or does not fit the model is recomputed, with a warning.
    For the packaged MiniLM and 512 STS-B sentences (one thread): 7.4 s cold, 0.7 s
    from the cache (a 65 MiB entry).

    Parameters
    ----------
    model, tokenizer
        As for :func:`collect_calibration`.
    source : str or path
        A GLUE task name or a text file (:func:`~.calibration_sentences.calibration_sentences`).
    num_sentences, seed, data_dir
        Passed to :func:`~.calibration_sentences.calibration_sentences`.
    max_length, groups, batch_size, progress
        Passed to :func:`collect_calibration` (``batch_size`` does not change the result,
        so it is not in the key).
    cache_dir : path, optional
        Default ``$MPO_CACHE_DIR/calibration``, else ``<repository>/cache/calibration``.
    model_key : str, optional
        Names the model's weights for the key (e.g. a checkpoint path and step), instead
        of fingerprinting them.

    Returns
    -------
    CalibrationStats
        With ``key`` and ``metadata`` set.
    """
    groups = _check_groups(groups)
    sentences = calibration_sentences(source, num_sentences, seed, data_dir)
    _check_collect_options(sentences, tokenizer, max_length, batch_size)
    metadata = {
        "format": CACHE_FORMAT, "model": model_key if model_key is not None else model_fingerprint(model),
        "tokenizer": _tokenizer_fingerprint(tokenizer, sentences, max_length), "source": str(source),
        "sentences": _digest("\0".join(sentences).encode("utf-8")), "num_sentences": num_sentences,
        "max_length": max_length, "seed": seed, "groups": sorted(groups),
    }
    key = _digest(json.dumps(metadata, sort_keys=True).encode("utf-8"))
    folder = Path(cache_dir) if cache_dir is not None else default_calibration_dir()
    cached = _read_cache(folder, key, model, groups)
    if cached is not None:
        return cached
    stats = collect_calibration(model, tokenizer, sentences, groups=groups, max_length=max_length,
                                batch_size=batch_size, progress=progress)
    stats = CalibrationStats(stats.second_moments, stats.num_tokens, stats.token_counts, stats.num_sentences,
                             stats.max_length, key, metadata)
    _write_cache(folder, stats)
    return stats


def default_calibration_dir() -> Path:
    """``$MPO_CACHE_DIR/calibration``, or ``<repository>/cache/calibration`` without that variable."""
    root = os.environ.get(CACHE_ENV) or str(Path(__file__).resolve().parents[2] / "cache")
    return Path(root) / "calibration"


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the model's class, config and every parameter's name, shape, dtype and bytes.

    Any change of any weight changes it. Hashing the bytes (about 0.1 s for MiniLM's
    90 MB) is exact and does not depend on thread counts, as float sums would.
    """
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode("utf-8"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            digest.update(f"{name}{tuple(parameter.shape)}{parameter.dtype}".encode())
            digest.update(parameter.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    return digest.hexdigest()


def _tokenizer_fingerprint(tokenizer, sentences: Sequence[str], max_length: int) -> str:
    """The tokenizer's class and size, and the ids it gives the sentences: what the statistics depend on."""
    ids = tokenizer(cut_texts(sentences, max_length), truncation=True, max_length=max_length)
    flat = json.dumps(ids["input_ids"], separators=(",", ":")).encode()
    return f"{type(tokenizer).__name__}:{len(tokenizer)}:{_digest(flat)}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_paths(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"{key[:32]}.safetensors", folder / f"{key[:32]}.json"


def _write_cache(folder: Path, stats: CalibrationStats) -> None:
    """Tensors first, then the JSON that points at them (the JSON is the entry's commit mark)."""
    from safetensors.torch import save

    tensors, moments, stored = {}, {}, {}
    for name, moment in stats.second_moments.items():  # a tensor shared by query/key/value is stored once
        if id(moment) not in stored:
            stored[id(moment)] = f"moment.{len(stored)}"
            tensors[stored[id(moment)]] = pack_upper(moment)  # symmetric: half of it is enough
        moments[name] = stored[id(moment)]
    counts = {name: f"counts.{i}" for i, name in enumerate(stats.token_counts)}
    tensors.update({counts[name]: c for name, c in stats.token_counts.items()})
    record = {"key": stats.key, "metadata": stats.metadata, "num_sentences": stats.num_sentences,
              "max_length": stats.max_length, "num_tokens": stats.num_tokens, "second_moments": moments,
              "token_counts": counts}
    tensors_path, record_path = _cache_paths(folder, stats.key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = save(tensors, metadata={"key": stats.key})
        record["tensors_sha256"] = _digest(data)
        _atomic_write(tensors_path, data)
        _atomic_write(record_path, json.dumps(record, indent=1).encode("utf-8"))
    except OSError as exc:
        warnings.warn(f"could not write the calibration cache in {folder} ({exc}); the statistics are "
                      "computed again next time.", stacklevel=3)


def _atomic_write(path: Path, data: bytes) -> None:
    """A temporary file beside ``path``, fsynced, renamed over it (``runs.atomic_write`` is a floor above)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(folder: Path, key: str, model: nn.Module, groups) -> CalibrationStats | None:
    """The cached statistics of ``key``, or ``None`` (with a warning when an entry is there but unusable)."""
    tensors_path, record_path = _cache_paths(folder, key)
    if not record_path.is_file():
        return None
    try:
        return _load_entry(tensors_path, record_path, key, model, groups)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"ignoring the calibration cache entry {record_path} ({exc}); computing it again.",
                      stacklevel=3)
        return None


def _load_entry(tensors_path: Path, record_path: Path, key: str, model: nn.Module, groups) -> CalibrationStats:
    record = read_json_bounded(record_path, MAX_CACHE_JSON_BYTES)
    if not isinstance(record, dict) or record.get("key") != key:
        raise ValueError("it belongs to another key")
    if _digest(tensors_path.read_bytes()) != record.get("tensors_sha256"):
        raise ValueError(f"{tensors_path.name} is not the file the entry was written with")
    tensors = load_weights(tensors_path)
    linears, embeddings = _calibrated_modules(model, groups)
    counts = {name: tensors[record["token_counts"][name]] for name in embeddings}
    tokens = {name: record["num_tokens"][name] for name in (*linears, *embeddings)}
    moments, unpacked = {}, {}
    for name, module in linears.items():
        stored, n = record["second_moments"][name], module.in_features
        if stored not in unpacked:
            _check_tensor(name, tensors[stored], (n * (n + 1) // 2,))
            unpacked[stored] = unpack_upper(tensors[stored], n)
        moments[name] = unpacked[stored]
        _check_tensor(name, moments[name], (n, n))  # one stored tensor shared by matrices of other widths
    for name, module in embeddings.items():
        _check_tensor(name, counts[name], (module.num_embeddings,))
    if not all(is_int(n) and n >= 0 for n in (*tokens.values(), record["num_sentences"], record["max_length"])):
        raise ValueError("its token or sentence numbers are not non-negative ints")
    if not isinstance(record["metadata"], dict):
        raise ValueError("its metadata is not a JSON object")
    return CalibrationStats(moments, tokens, counts, record["num_sentences"], record["max_length"], key,
                            record["metadata"])


def _check_tensor(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tensor.dtype != torch.float64 or tuple(tensor.shape) != shape:
        raise ValueError(f"{name} is {tensor.dtype} {tuple(tensor.shape)}, not float64 {shape} as the model needs")


__all__ = ["CalibrationStats", "calibration_stats", "collect_calibration", "default_calibration_dir", "model_fingerprint"]
