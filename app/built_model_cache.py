"""Disk cache of the Compress page's built models and what they do, reused across sessions, reruns and restarts.

Building a compressed MiniLM decomposes every chosen matrix again (about 20 s
on one busy core, minutes on a loaded machine) and measuring it embeds 400
STS-B sentences (~7 s); the result depends only on the model's weights and
the request. One entry per model and settings, under the dashboard's cache
folder (``--cache-dir`` / ``$MPO_CACHE_DIR``, :mod:`app.allowed_paths`)::

    <cache>/compress/<key>/model/          mpo_core.save_mpo_model: config, safetensors, mpo_layers.json
    <cache>/compress/<key>/built.json      what the key stands for, the surgery's report, seconds: written
                                           last, so an entry without it is unfinished and ignored
    <cache>/compress/<key>/effect-<s>.json the embedding agreement on STS-B sample ``s`` (file, size, seed)

The key is a SHA-256 of the base model's exact weights (:func:`folder_fingerprint`:
the bytes of its weight files and config, read without loading the model, about
0.2 s for MiniLM), the request's ``MPOConfig`` and the torch version. Nothing is
unpickled: the model is read back by :func:`mpo_core.load_mpo_model` (no code,
no pickles, its layer records checked), the JSON files within bounds. The
folder is bounded (:data:`MAX_BYTES`): after each write the least recently
used entries beyond it go. Plain Python, no ``streamlit`` import.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

import mpo_core
from mpo_core import Replacement
from mpo_core.data.glue import glue_file
from mpo_core.json_file import read_json_bounded
from mpo_core.model.embedding_agreement import Agreement
from mpo_core.model.surgery import mpo_modules
from mpo_core.runs.atomic_write import atomic_write_json

SUBDIR = "compress"
VERSION = 2  # bump when what is stored changes meaning (2: the base model keyed by its files)
MAX_BYTES = 512 * 2**20  # a MiniLM compressed at rho = 0.3 takes ~28 MB
MAX_JSON_BYTES = 1 << 20
BUILT, MODEL = "built.json", "model"


def folder(cache_root) -> Path:
    """``<cache root>/compress``: the root is the dashboard's cache folder."""
    return Path(cache_root) / SUBDIR


def folder_fingerprint(model_path) -> str:
    """SHA-256 of a model folder's ``config.json`` and ``*.safetensors`` files, their names and bytes.

    Any change of any stored weight changes it; no model is loaded (the page's first paint needs no
    ``transformers`` modeling code). Raises ``FileNotFoundError`` without weight files.
    """
    path = Path(model_path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {path}; give the folder of a saved model.")
    digest = hashlib.sha256()
    for file in [path / "config.json", *files]:
        digest.update(f"{file.name}\0".encode())
        if file.is_file():
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()


def entry_key(model_fingerprint: str, config: dict) -> str:
    """The same base weights and ``MPOConfig`` (as a dict) give the same key in any process."""
    payload = {"version": VERSION, "model": model_fingerprint, "config": config, "torch": torch.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def sample_key(data_dir, size: int, seed: int) -> str:
    """Key of an STS-B sample: the dev file (path, size, mtime), how many pairs and the seed.

    Raises ``FileNotFoundError`` (from :func:`mpo_core.data.glue.glue_file`) without the file.
    """
    path = glue_file("stsb", "dev", data_dir).resolve()
    stat = path.stat()
    payload = [str(path), stat.st_size, stat.st_mtime_ns, int(size), int(seed)]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def _entry(where, key: str) -> Path:
    if not (len(key) == 32 and all(c in "0123456789abcdef" for c in key)):  # the key names a folder: hex only
        raise ValueError(f"not a cache key: {key!r}; make one with entry_key().")
    return Path(where) / key


def _effect_file(entry: Path, sample: str) -> Path:
    if not (len(sample) == 16 and all(c in "0123456789abcdef" for c in sample)):
        raise ValueError(f"not a sample key: {sample!r}; make one with sample_key().")
    return entry / f"effect-{sample}.json"


# --------------------------------------------------------------------------- built models
def save(where, key: str, model: nn.Module, report: list[Replacement], seconds: float, about: dict) -> None:
    """Store a built model under ``key``: written beside, then moved in whole (a concurrent twin keeps its own)."""
    entry = _entry(where, key)
    staging = Path(where) / f".staging-{key}-{uuid.uuid4().hex[:8]}"
    try:
        mpo_core.save_mpo_model(model, staging / MODEL)
        record = {"version": VERSION, "key": key, "about": about, "created": time.time(), "seconds": seconds,
                  "report": [asdict(r) for r in report]}
        atomic_write_json(staging / BUILT, record, indent=1, sort_keys=True)
        try:
            staging.rename(entry)
        except OSError:  # another session stored the same model first: keep theirs
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prune(where)


def load(where, key: str, base_config: dict) -> tuple[nn.Module, list[Replacement], dict] | None:
    """``(model, report, record)`` stored under ``key``, or ``None`` (absent, unfinished, foreign or damaged).

    ``base_config`` is the base model's ``config.json`` (the stored one may not exceed it).
    """
    entry = _entry(where, key)
    try:
        record = read_json_bounded(entry / BUILT, MAX_JSON_BYTES)
        if record.get("version") != VERSION or record.get("key") != key:
            return None
        report = [Replacement(r["name"], r["group"], tuple(r["shape"]), tuple(r["bond_dims"]),
                              int(r["params_before"]), int(r["params_after"])) for r in record["report"]]
        from transformers import AutoModel

        model = mpo_core.load_mpo_model(entry / MODEL, AutoModel, base_config=base_config)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    built = {name: tuple(m.bond_dims) for name, m in mpo_modules(model).items()}
    if built != {r.name: r.bond_dims for r in report}:  # the weights must be the report's
        return None
    _touch(entry / BUILT)
    return model, report, record


# --------------------------------------------------------------------------- measured effects
def save_effect(where, key: str, sample: str, effect: Agreement) -> None:
    """Store what the model of ``key`` does on STS-B sample ``sample`` (after the model itself)."""
    entry = _entry(where, key)
    if (entry / BUILT).is_file():
        atomic_write_json(_effect_file(entry, sample), asdict(effect), indent=None)


def load_effect(where, key: str, sample: str) -> Agreement | None:
    """The stored effect of the model of ``key`` on sample ``sample``, or ``None``."""
    try:
        values = read_json_bounded(_effect_file(_entry(where, key), sample), MAX_JSON_BYTES)
        effect = Agreement(**{**values, "pair_cosines": tuple(float(c) for c in values.get("pair_cosines", ()))})
        floats = (effect.cosine_mean, effect.cosine_min, effect.spearman_original, effect.spearman_compressed)
        if not isinstance(effect.sentences, int) or not all(isinstance(v, (int, float)) for v in floats):
            return None
        return effect
    except (OSError, ValueError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------- bounds
def _touch(path: Path) -> None:
    """Mark an entry as used now (the pruning drops the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune(where, max_bytes: int = MAX_BYTES) -> list[str]:
    """Delete the least recently used entries until the folder holds at most ``max_bytes``; returns their keys.

    An entry without ``built.json`` (an interrupted write) counts as least recently used.
    """
    entries = {}
    for entry in Path(where).iterdir() if Path(where).is_dir() else ():
        if not entry.is_dir() or entry.name.startswith(".staging-"):
            continue
        try:
            used = (entry / BUILT).stat().st_mtime if (entry / BUILT).is_file() else 0.0
            entries[entry.name] = (used, _size(entry))
        except OSError:
            continue
    total, removed = sum(size for _, size in entries.values()), []
    for key, (_, size) in sorted(entries.items(), key=lambda item: item[1][0]):
        if total <= max_bytes:
            break
        (Path(where) / key / BUILT).unlink(missing_ok=True)  # the marker first: a half-removed entry is unfinished
        shutil.rmtree(Path(where) / key, ignore_errors=True)
        total -= size
        removed.append(key)
    return removed


__all__ = ["MAX_BYTES", "entry_key", "folder", "load", "load_effect", "prune", "sample_key", "save", "save_effect"]
