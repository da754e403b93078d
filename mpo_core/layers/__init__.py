"""Torch modules whose weights are MPOs."""
from .mpo_embedding import MPOEmbedding
from .mpo_linear import MPOLinear

__all__ = ["MPOLinear", "MPOEmbedding"]
