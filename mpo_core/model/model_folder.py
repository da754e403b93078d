"""The one gate a model folder passes before anything of ``transformers`` touches it.

A folder from someone else may carry code (an ``auto_map`` in ``config.json``
or ``tokenizer_config.json``, or ``*.py`` files that ``transformers`` would
import), pickled weights (``pytorch_model.bin``: unpickling runs code), or a
``config.json`` asking for a model of any size. :func:`check_model_folder`
refuses all three with a ``ValueError`` a user can act on, before anything is
imported or allocated; every loader in ``mpo_core`` and ``app`` calls it, then
loads with ``trust_remote_code=False`` (which is what protects hub names, that
are not folders here)::

    folder --check_model_folder--> no code, safetensors weights, config.json within MODEL_CAPS
           --AutoConfig/AutoTokenizer/AutoModel*.from_pretrained(trust_remote_code=False)--> model
"""
from __future__ import annotations

from pathlib import Path

from ..json_file import read_json_bounded

CONFIG_FILES = ("config.json", "tokenizer_config.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_CONFIG_BYTES = 4 << 20  # a model's config.json is a few kB; the tokenizer's, with added tokens, rarely 1 MB
#: stated caps on what a config.json may ask for: about 16x the largest BERT-size model this toolkit targets
MODEL_CAPS = {"num_hidden_layers": 128, "hidden_size": 8192, "intermediate_size": 32768, "vocab_size": 500_000,
              "max_position_embeddings": 65536, "num_attention_heads": 256}
#: the same sizes under other architectures' names (DistilBERT)
ALIASES = {"n_layers": "num_hidden_layers", "dim": "hidden_size", "hidden_dim": "intermediate_size",
           "n_heads": "num_attention_heads"}


def is_local(source: str | Path) -> bool:
    """Whether ``source`` names a folder here (else it is a hub name, which ``trust_remote_code=False`` guards)."""
    return Path(source).expanduser().is_dir()


def check_model_folder(source: str | Path) -> None:
    """Refuse a local folder with code, an ``auto_map``, pickled-only weights or an oversized ``config.json``.

    A hub name or a path that does not exist passes (``from_pretrained`` says what is missing).

    Raises
    ------
    ValueError
        Naming the folder and what in it is refused.
    """
    if not is_local(source):
        return
    folder = Path(source).expanduser()
    code = sorted(p.name for p in folder.glob("*.py"))
    if code:
        raise ValueError(f"{folder} holds Python code ({', '.join(code[:3])}); model folders with custom code are "
                         "refused (no code from a model folder ever runs).")
    for name in CONFIG_FILES:
        config = read_json_object(folder / name) if (folder / name).is_file() else {}
        if "auto_map" in config:
            raise ValueError(f"{folder / name} has an auto_map (custom code); model folders with custom code are "
                             "refused (no code from a model folder ever runs).")
    weights = [p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES or p.suffix == ".safetensors"]
    if weights and not any(p.suffix == ".safetensors" for p in weights):
        raise ValueError(f"{folder} has only pickled weights ({', '.join(sorted(p.name for p in weights)[:3])}); "
                         "pickles can run code, so only *.safetensors weights are loaded: convert the model with "
                         "save_pretrained(safe_serialization=True).")
    if (folder / "config.json").is_file():
        check_config_bounds(read_json_object(folder / "config.json"), folder / "config.json")


def read_json_object(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
    """A JSON object from ``path`` through :func:`~mpo_core.json_file.read_json_bounded`.

    Refused (``ValueError`` naming ``path``) when larger than ``max_bytes``, too deeply nested, torn, not UTF-8,
    not JSON or not an object.
    """
    value = read_json_bounded(path, max_bytes)
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(value).__name__}.")
    return value


def config_sizes(config: dict) -> dict:
    """The capped sizes a ``config.json`` states, under their BERT names."""
    return {ALIASES.get(k, k): v for k, v in config.items() if ALIASES.get(k, k) in MODEL_CAPS}


def check_config_bounds(config: dict, where, base: dict | None = None) -> None:
    """Every size in ``config`` a positive int within :data:`MODEL_CAPS`, and layers within ``base``'s.

    ``base`` is the config of the model this one was fine-tuned from; its
    hidden and vocabulary sizes must then be the same.
    """
    sizes = config_sizes(config)
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MODEL_CAPS[name]:
            raise ValueError(f"{where}: {name} must be an integer in [1, {MODEL_CAPS[name]}], got {value!r}.")
    for name, value in config_sizes(base or {}).items():
        if name == "num_hidden_layers" and sizes.get(name, 0) > value:
            raise ValueError(f"{where}: num_hidden_layers {sizes[name]} is more than the base model's {value}.")
        if name in ("hidden_size", "vocab_size") and name in sizes and sizes[name] != value:
            raise ValueError(f"{where}: {name} {sizes[name]} differs from the base model's {value}.")


def check_num_hidden_layers(value, base_layers: int | None, source) -> None:
    """``value`` an int in ``[1, base_layers]`` (the layers a model is cut to: never more than it has)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"num_hidden_layers must be a positive integer, got {value!r}.")
    if base_layers is not None and value > base_layers:
        raise ValueError(f"num_hidden_layers {value} is more than the {base_layers} layers of the model {source}; "
                         f"choose at most {base_layers}.")


__all__ = ["MODEL_CAPS", "check_config_bounds", "check_model_folder", "check_num_hidden_layers", "is_local",
           "read_json_object"]
