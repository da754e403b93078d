"""Tiny random configs of the supported architectures (no download)."""
import torch
from transformers import (
    AlbertConfig, AlbertForSequenceClassification, BertConfig, BertForSequenceClassification,
    DistilBertConfig, DistilBertForSequenceClassification, MobileBertConfig, MobileBertForSequenceClassification,
    MPNetConfig, MPNetForSequenceClassification,
)

LAYERS = 2
TINY = {
    "bert": (BertForSequenceClassification, BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=48)),
    "albert": (AlbertForSequenceClassification, AlbertConfig(
        vocab_size=120, embedding_size=16, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
        intermediate_size=48)),
    "distilbert": (DistilBertForSequenceClassification, DistilBertConfig(
        vocab_size=120, dim=32, n_layers=LAYERS, n_heads=4, hidden_dim=48)),
    "mobilebert": (MobileBertForSequenceClassification, MobileBertConfig(
        vocab_size=120, embedding_size=16, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
        intermediate_size=48, intra_bottleneck_size=16, num_feedforward_networks=2)),
    "mpnet": (MPNetForSequenceClassification, MPNetConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=48)),
}


def tiny_model(arch: str, seed: int = 0):
    cls, config = TINY[arch]
    torch.manual_seed(seed)
    config.num_labels = 3
    return cls(config).eval()


def tiny_inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 120, (2, 9), generator=gen), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
