"""The pre-trained model a GLUE run starts from: a sequence classifier and its tokenizer.

One place builds it, from plain arguments, so that the trainer
(:func:`mpo_core.training.fine_tune.load_model_and_tokenizer`) and whoever
reloads a run's starting point (:func:`mpo_core.runs.run_models.load_initial_model`)
get the very same model::

    model folder / hub name / packaged MiniLM  --AutoConfig(num_labels of the task, num_hidden_layers)-->
    AutoModelForSequenceClassification (head seeded by ``seed``) + AutoTokenizer
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.glue import get_task
from .model_folder import check_model_folder, check_num_hidden_layers
from .pretrained import default_model_path


def load_sequence_classifier(task: str, model: str | Path | None = None, num_hidden_layers: int | None = None,
                             seed: int | None = None):
    """Sequence-classification model and tokenizer for GLUE ``task``.

    Parameters
    ----------
    task:
        GLUE task name; sets ``num_labels`` and, for classification, the label names.
    model:
        A local model folder or hub name; ``None``: the packaged MiniLM.
    num_hidden_layers:
        Keep only the first encoder layers (``None``: all); more than the model has is refused.
    seed:
        ``torch.manual_seed(seed)`` right before loading, so the new classifier
        head is the one a run of this seed starts from (``None``: the global RNG as it is).

    Returns
    -------
    tuple
        ``(model, tokenizer)``.

    Raises
    ------
    ValueError
        For a folder with custom code, an ``auto_map`` or only pickled weights (refused before
        ``transformers`` reads it), ``num_hidden_layers`` out of ``[1, the model's]``, or a model that does not load.
    """
    source = str(model or default_model_path())
    glue_task = get_task(task)
    check_model_folder(source)  # before transformers sees the folder: no code, no pickles, sizes within caps
    if num_hidden_layers is not None:
        check_num_hidden_layers(num_hidden_layers, None, source)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    overrides = {"num_labels": glue_task.num_labels}
    try:
        layers = getattr(AutoConfig.from_pretrained(source, trust_remote_code=False), "num_hidden_layers", None)
    except (OSError, ValueError) as exc:
        raise _not_a_model(source, exc) from None
    if num_hidden_layers is not None:  # never more layers than the model has: extra ones would be random
        check_num_hidden_layers(num_hidden_layers, layers, source)
        overrides["num_hidden_layers"] = num_hidden_layers
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model_config = AutoConfig.from_pretrained(source, trust_remote_code=False, **overrides)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        classifier = AutoModelForSequenceClassification.from_pretrained(source, config=model_config,
                                                                        use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _not_a_model(source, exc) from None
    if not glue_task.is_regression:
        classifier.config.id2label = dict(glue_task.id2label)
        classifier.config.label2id = dict(glue_task.label2id)
    return classifier, tokenizer


def _not_a_model(source: str, exc: Exception) -> ValueError:
    return ValueError(f"could not load a model from {source!r}: is it a model folder or hub name? ({exc})")
