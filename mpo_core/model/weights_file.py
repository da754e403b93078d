"""Reading a ``*.safetensors`` file from someone else: checked before it is read, finite after.

A safetensors file is ``<8-byte little-endian header length N><N bytes of JSON header><data>``.
:func:`load_weights` checks that layout against the file's size (an empty,
truncated or random file, or a header that claims gigabytes, is refused before
anything is allocated), turns the library's own errors into ``ValueError``,
and refuses NaN or Inf values, naming the tensor. Nothing is unpickled.
"""
from __future__ import annotations

import struct
from pathlib import Path

import torch

from ..json_file import loads_bounded

MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own cap on the header


def check_safetensors_file(path: Path) -> dict:
    """The header of ``path`` (``{name: {dtype, shape, data_offsets}}``), its layout checked against the file size."""
    size = path.stat().st_size
    if size < 8:
        raise ValueError(f"{path} is not a safetensors file: {size} bytes, shorter than its 8-byte header length.")
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a valid safetensors file: its header claims {length} bytes, the file "
                             f"has {size - 8} after the length (truncated or not safetensors).")
        try:
            header = loads_bounded(f.read(length).decode("utf-8"), str(path))
        except (UnicodeDecodeError, ValueError):
            raise ValueError(f"{path} is not a valid safetensors file: its header is not JSON.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a valid safetensors file: its header is not a JSON object.")
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data):
            raise ValueError(f"{path}: tensor {name} lies outside the file (truncated or corrupt).")
    return header


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (CPU), refused with a ``ValueError`` when torn, corrupt or not finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    check_safetensors_file(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a valid safetensors file ({' '.join(str(exc).split())[:200]}).") from None
    check_finite(tensors, path)
    return tensors


def check_finite(tensors: dict[str, torch.Tensor], where) -> None:
    """Refuse NaN or Inf in any floating tensor, naming the first such tensor."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{where}: tensor {name} holds NaN or Inf values; refusing to load it.")


__all__ = ["check_finite", "check_safetensors_file", "load_weights"]
