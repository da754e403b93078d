"""The two models of a run folder: the one it started from and the one it saved at the end.

::

    <run>/config.json   --load_initial_model-->  pre-trained model, classifier head seeded as the run seeded it
    <run>/final_model/  --load_final_model---->  the fine-tuned model (MPO layers rebuilt), eval mode

Both are sequence classifiers in eval mode on the CPU. The config is read as a
plain dict, so this needs nothing from the training engine.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..model.checkpoint import load_mpo_model
from ..model.model_folder import is_local, read_json_object
from ..model.pretrained import default_model_path
from ..model.sequence_classifier import load_sequence_classifier
from .run_folder import CONFIG_FILE, FINAL_MODEL, read_config


def load_initial_model(run_path: str | Path) -> nn.Module:
    """The pre-trained model ``<run_path>`` started from (same model, task, layers and seeded head), eval mode."""
    config = read_config(run_path)
    model, _ = load_sequence_classifier(config["task"], config.get("model"), config.get("num_hidden_layers"),
                                        seed=config.get("seed", 0))
    return model.eval()


def load_final_model(run_path: str | Path) -> nn.Module:
    """The model a fine-tuning run saved in ``<run_path>/final_model`` (sequence classification, eval mode).

    Its ``config.json`` may not ask for more layers, or other widths, than the base model the run
    records (checked before anything is built), nor for more than the stated caps.
    """
    from transformers import AutoModelForSequenceClassification

    path = Path(run_path) / FINAL_MODEL
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: the run has not finished, or was run with save_model=False.")
    return load_mpo_model(path, AutoModelForSequenceClassification, base_config=_base_config(run_path))


def _base_config(run_path) -> dict | None:
    """The ``config.json`` of the run's base model when it is a folder here (``None``: a hub name, or not recorded)."""
    if not (Path(run_path) / CONFIG_FILE).is_file():
        return None
    config = read_config(run_path)
    base = config.get("model") if isinstance(config, dict) else None
    file = Path(str(base or default_model_path())) / "config.json"
    return read_json_object(file) if is_local(file.parent) and file.is_file() else None
