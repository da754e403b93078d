"""Disk cache of full-bond decompositions, kept as spectra: reused across sessions, reruns and restarts.

What a page reads of a full-bond MPO without contracting it (bond dims,
Schmidt values, Eq. (3)-(6), the allocator's bond dims for a ratio) needs the
MPO's shape, the Schmidt values of every bond and the central pair's error
table (:attr:`mpo_core.MPO.center_row_tails`), not its tensors (~24M numbers
for all MiniLM matrices at one ``n``). One entry per matrix and settings::

    <cache>/decompositions/<key>.npz    Schmidt values per bond, the central pair's row tails: plain
                                        float64 arrays, read back with allow_pickle=False
    <cache>/decompositions/<key>.json   what the key stands for, shape, centre, tensor shapes, seconds;
                                        written last, so an entry without it is unfinished and ignored

Numbers derived from decompositions (the atlas' table at a ratio) are kept as
plain JSON beside them (:func:`save_json` / :func:`load_json`, in a folder of
their own). The key is a SHA-256 of the matrix's identity
(:func:`weight_identity`: the model's weight files by path, size and
modification time, and the tensor's name) and the settings (n, factors,
format version). Each folder is bounded (:data:`MAX_BYTES`): after each write
the least recently used entries beyond it go. Nothing is unpickled. Plain
Python, no ``streamlit`` import.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from mpo_core import MPO, MPOShape
from mpo_core.runs.atomic_write import atomic_write_bytes, atomic_write_json
from mpo_core.tensor.center_pair import PAIR_GRID

SUBDIR = "decompositions"
VERSION = 1  # bump when what is stored (or how the spectra are computed) changes meaning
MAX_BYTES = 256 * 2**20  # all MiniLM matrices at every n take ~20 MB
DTYPES = {str(d): d for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16)}


def folder(cache_root) -> Path:
    """``<cache root>/decompositions``: the root is the dashboard's cache folder (``--cache-dir``)."""
    return Path(cache_root) / SUBDIR


# --------------------------------------------------------------------------- keys
def weight_identity(name: str, model_path) -> dict:
    """The identity of a stored weight: the model's ``*.safetensors`` files (path, size, mtime) and its name.

    Reading the files' metadata costs microseconds; rewriting a file changes its size or mtime, hence the key.
    """
    files = sorted(Path(model_path).resolve().glob("*.safetensors"))
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return {"files": stats, "name": name}


def entry_key(identity: dict, settings: dict) -> str:
    """Stable key of one decomposition: the same matrix and settings give the same key in any process."""
    payload = {"version": VERSION, "pair_grid": PAIR_GRID, "matrix": identity, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def weight_key(name: str, model_path, n: int, out_factors, in_factors) -> str:
    """The key of a model weight's decomposition into ``n`` tensors with these factors (atlas and Decompose alike)."""
    return entry_key(weight_identity(name, model_path),
                     {"n": int(n), "out_factors": [int(f) for f in out_factors], "in_factors": [int(f) for f in in_factors]})


def _is_key(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _paths(where, key: str) -> tuple[Path, Path]:
    if not _is_key(key):  # the key names files: hex only
        raise ValueError(f"not a cache key: {key!r}; make one with entry_key().")
    return Path(where) / f"{key}.npz", Path(where) / f"{key}.json"


# --------------------------------------------------------------------------- spectra-only MPOs
def spectra_mpo(shape: MPOShape, tensor_shapes, singular_values, center: int, dtype: torch.dtype,
                row_tails: dict) -> MPO:
    """An MPO of zero-stride placeholder tensors with real spectra and the central pair's row tails.

    Do not contract it: its tensors are all zeros (its norm comes from the Schmidt values).
    """
    placeholder = torch.zeros((), dtype=dtype)
    tensors = tuple(placeholder.expand(tuple(s)) for s in tensor_shapes)
    mpo = MPO(tensors, shape, tuple(singular_values), center)
    mpo.__dict__["center_row_tails"] = row_tails  # a cached_property: set, not recomputed from zeros
    return mpo


def spectra_only(mpo: MPO) -> MPO:
    """The same MPO with its local tensors replaced by zero-stride placeholders of the same shapes.

    The central pair's row tails are computed here, from the real tensors, and carried over.
    """
    return spectra_mpo(mpo.shape, [t.shape for t in mpo.tensors], mpo.singular_values, mpo.center, mpo.dtype,
                       mpo.center_row_tails)


# --------------------------------------------------------------------------- disk
def save(where, key: str, mpo: MPO, about: dict | None = None) -> None:
    """Store ``mpo``'s spectra under ``key`` (arrays first, the JSON that marks them complete last); then prune."""
    npz_path, json_path = _paths(where, key)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    tails = mpo.center_row_tails
    arrays = {f"s{k}": s.double().cpu().numpy() for k, s in enumerate(mpo.singular_values)}
    arrays.update({f"tail{x}": np.asarray(v, dtype=np.float64) for x, v in tails.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(npz_path, buffer.getvalue())
    shape = mpo.shape
    meta = {
        "version": VERSION, "key": key, "about": about or {}, "created": time.time(),
        "out_features": shape.out_features, "in_features": shape.in_features,
        "out_factors": list(shape.out_factors), "in_factors": list(shape.in_factors),
        "center": mpo.center, "dtype": str(mpo.dtype), "tensor_shapes": [list(t.shape) for t in mpo.tensors],
        "tail_rows": sorted(int(x) for x in tails),
    }
    atomic_write_json(json_path, meta, indent=1, sort_keys=True)
    prune(where)


def _float_vector(arrays, name: str) -> np.ndarray:
    value = arrays[name]
    if value.dtype != np.float64 or value.ndim != 1:
        raise ValueError(f"{name} is not a float64 vector")
    return value


def load(where, key: str) -> MPO | None:
    """The spectra-only MPO stored under ``key``, or ``None`` (absent, unfinished, foreign or damaged)."""
    npz_path, json_path = _paths(where, key)
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        if meta.get("version") != VERSION or meta.get("key") != key or meta.get("dtype") not in DTYPES:
            return None
        shape = MPOShape(int(meta["out_features"]), int(meta["in_features"]),
                         tuple(int(f) for f in meta["out_factors"]), tuple(int(f) for f in meta["in_factors"]))
        tensor_shapes = [tuple(int(d) for d in s) for s in meta["tensor_shapes"]]
        if len(tensor_shapes) != shape.n or [s[1:3] for s in tensor_shapes] != list(zip(shape.out_factors,
                                                                                          shape.in_factors)):
            return None
        with np.load(npz_path, allow_pickle=False) as arrays:  # numbers only: nothing in the file is executed
            values = [torch.from_numpy(_float_vector(arrays, f"s{k}").copy()) for k in range(shape.n - 1)]
            tails = {int(x): _float_vector(arrays, f"tail{int(x)}").copy() for x in meta["tail_rows"]}
        if [v.numel() for v in values] != [s[-1] for s in tensor_shapes[:-1]]:
            return None
        mpo = spectra_mpo(shape, tensor_shapes, values, int(meta["center"]), DTYPES[meta["dtype"]], tails)
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile):
        return None
    _touch(json_path)
    return mpo


def save_json(where, key: str, data) -> None:
    """Store JSON-able ``data`` under ``key`` (one file, written atomically); then prune."""
    json_path = _paths(where, key)[1]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, {"version": VERSION, "key": key, "data": data}, indent=None)
    prune(where)


def load_json(where, key: str):
    """The data :func:`save_json` stored under ``key``, or ``None`` (absent, foreign or damaged)."""
    json_path = _paths(where, key)[1]
    try:
        stored = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("version") != VERSION or stored.get("key") != key:
        return None
    _touch(json_path)
    return stored.get("data")


def _touch(path: Path) -> None:
    """Mark an entry as used now (the pruning drops the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(where, max_bytes: int = MAX_BYTES) -> list[str]:
    """Delete the least recently used entries until the folder holds at most ``max_bytes``; returns their keys.

    An entry is a key's ``.json`` and, for a decomposition, its ``.npz``; leftovers of interrupted writes (an
    ``.npz`` without its ``.json``) count as least recently used. Other files in the folder are left alone.
    """
    where = Path(where)
    entries: dict[str, list] = {}  # key -> [last used, bytes]
    for path in list(where.glob("*.json")) + list(where.glob("*.npz")):
        if not _is_key(path.stem):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        entry = entries.setdefault(path.stem, [0.0, 0])
        entry[1] += stat.st_size
        if path.suffix == ".json":
            entry[0] = stat.st_mtime
    total, removed = sum(size for _, size in entries.values()), []
    for key, (_, size) in sorted(entries.items(), key=lambda item: item[1][0]):
        if total <= max_bytes:
            break
        for suffix in (".json", ".npz"):  # the marker first: a half-removed entry is an unfinished one
            (where / f"{key}{suffix}").unlink(missing_ok=True)
        total -= size
        removed.append(key)
    return removed
