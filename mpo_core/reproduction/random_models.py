"""Randomly initialised models of the other supported architectures, saved as local model folders.

Offline there are no pre-trained DistilBERT / MobileBERT / ALBERT / MPNet
weights, so Table 4's other rows run the same method on *random* weights of
each architecture (clearly marked as such): this shows the surgery, #Pr/#To
and training work per architecture, not the paper's accuracies. Each folder
holds the base model (``save_pretrained``, safetensors) and the packaged
MiniLM's uncased WordPiece tokenizer (vocabulary 30522), so ``fine_tune``
loads it like any model folder; with a hub name online, pass that instead.
"""
from __future__ import annotations

from pathlib import Path

import torch

# Small widths keep CPU runs short; every config uses the 30522-token uncased vocabulary.
CONFIGS = {
    "distilbert": ("DistilBertConfig", dict(dim=256, n_layers=2, n_heads=4, hidden_dim=1024)),
    "mobilebert": ("MobileBertConfig", dict(embedding_size=128, hidden_size=256, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=512, intra_bottleneck_size=128)),
    "albert": ("AlbertConfig", dict(embedding_size=128, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=1024)),
    "mpnet": ("MPNetConfig", dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=1024)),
}
LABELS = {"distilbert": "DistilBERT (random weights)", "mobilebert": "MobileBERT (random weights)",
          "albert": "ALBERT (random weights)", "mpnet": "MPNet (random weights)"}


def random_model_folder(arch: str, folder: str | Path, seed: int = 0) -> Path:
    """Write (once) a seeded random ``arch`` model with the packaged tokenizer into ``folder``; returns it."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    from ..model.pretrained import default_model_path

    if arch not in CONFIGS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(CONFIGS)}.")
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    config_class, options = CONFIGS[arch]
    config = getattr(transformers, config_class)(vocab_size=30522, **options)
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(default_model_path(), trust_remote_code=False).save_pretrained(folder)
    return folder
