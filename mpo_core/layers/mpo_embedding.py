"""``MPOEmbedding``: an ``nn.Embedding`` whose table is an MPO."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..tensor.compress import compress_matrix
from ..tensor.contraction import gather_rows, gather_rows_flops, reconstruction_flops
from ..tensor.mpo import MPO
from .mpo_module import MPOModule


class MPOEmbedding(MPOModule):
    """Embedding table ``(num_embeddings, embedding_dim)`` held as an MPO.

    A lookup of few distinct ids contracts only their rows (the table is
    never built); for many ids the table is rebuilt once (``"auto"`` picks by
    flop count, ``"chain"`` forces rows, ``"dense"`` forces the table).
    """

    def __init__(self, mpo: MPO, padding_idx: int | None = None, forward_mode: str = "auto"):
        super().__init__(mpo, forward_mode)
        self.num_embeddings = mpo.shape.out_features
        self.embedding_dim = mpo.shape.in_features
        if padding_idx is not None and not -self.num_embeddings <= padding_idx < self.num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is outside the table of {self.num_embeddings} rows.")
        if padding_idx is not None and padding_idx < 0:
            padding_idx += self.num_embeddings
        self.padding_idx = padding_idx

    @classmethod
    def from_embedding(
        cls,
        embedding: nn.Embedding,
        n: int | None = None,
        out_factors=None,
        in_factors=None,
        bond_dims=None,
        compression_ratio: float | None = None,
        max_error: float | None = None,
        relative: bool = False,
        forward_mode: str = "auto",
    ) -> "MPOEmbedding":
        """Decompose ``embedding.weight`` into an MPO embedding (exact without a target)."""
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"from_embedding needs an nn.Embedding, got {type(embedding).__name__}.")
        if embedding.max_norm is not None or embedding.sparse or embedding.scale_grad_by_freq:
            raise ValueError(
                "MPOEmbedding supports plain embeddings only (max_norm=None, sparse=False, "
                "scale_grad_by_freq=False); these options act on rows of a dense table."
            )
        mpo = compress_matrix(
            embedding.weight, n, out_factors, in_factors, bond_dims, compression_ratio, max_error, relative
        )
        return cls(mpo, embedding.padding_idx, forward_mode)

    def to_embedding(self) -> nn.Embedding:
        """Contract back into a plain ``nn.Embedding`` (same device and dtype)."""
        weight = self.weight.detach()
        return nn.Embedding.from_pretrained(weight.clone(), freeze=False, padding_idx=self.padding_idx)

    def uses_rows(self, num_ids: int) -> bool:
        """Whether contracting ``num_ids`` rows is cheaper than rebuilding the table."""
        if self.forward_mode != "auto":
            return self.forward_mode == "chain"
        dims = self.bond_dims
        return gather_rows_flops(num_ids, self.shape, dims, self.center) < reconstruction_flops(
            self.shape, dims, self.center
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"embedding ids must be int64/int32, got {ids.dtype}.")
        tensors = list(self.tensors)
        flat = ids.reshape(-1).long()
        unique, inverse = torch.unique(flat, return_inverse=True)
        cached = not torch.is_grad_enabled() and self.has_cached_weight()
        if cached or not self.uses_rows(unique.numel()):
            return F.embedding(ids, self.dense_weight(), self.padding_idx)  # without autograd the table is cached
        if unique.numel() and (unique[0] < 0 or unique[-1] >= self.num_embeddings):
            raise IndexError(f"embedding ids must be in 0..{self.num_embeddings - 1}.")
        rows = gather_rows(unique, tensors, self.shape, self.center)
        if self.padding_idx is not None:  # as F.embedding: no gradient through the padding row
            rows = torch.where((unique == self.padding_idx)[:, None], rows.detach(), rows)
        return rows[inverse].reshape(*ids.shape, self.embedding_dim)
