"""``MPOLinear``: an ``nn.Linear`` whose weight is an MPO."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..tensor.compress import compress_matrix
from ..tensor.contraction import chain_flops, chain_matmul, reconstruction_flops
from ..tensor.mpo import MPO
from .mpo_module import MPOModule


class MPOLinear(MPOModule):
    """``y = x W^T + b`` with ``W`` held as local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]``.

    Two forward paths give the same result: rebuild ``W`` then one dense
    matmul (``"dense"``), or push ``x`` through the chain (``"chain"``);
    ``"auto"`` picks the one with fewer flops for the batch at hand.
    """

    def __init__(self, mpo: MPO, bias: torch.Tensor | None = None, forward_mode: str = "auto"):
        super().__init__(mpo, forward_mode)
        self.in_features = mpo.shape.in_features
        self.out_features = mpo.shape.out_features
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(bias.detach().clone())

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        n: int | None = None,
        out_factors=None,
        in_factors=None,
        bond_dims=None,
        compression_ratio: float | None = None,
        max_error: float | None = None,
        relative: bool = False,
        forward_mode: str = "auto",
    ) -> "MPOLinear":
        """Decompose ``linear.weight`` (on its device, in its dtype) into an MPO layer.

        Without a truncation target the MPO is exact (full bonds, Eq. (2)).
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}.")
        mpo = compress_matrix(
            linear.weight, n, out_factors, in_factors, bond_dims, compression_ratio, max_error, relative
        )
        return cls(mpo, linear.bias, forward_mode)

    def to_linear(self) -> nn.Linear:
        """Contract back into a plain ``nn.Linear`` (same device and dtype)."""
        weight = self.weight.detach()
        linear = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None,
            device=weight.device, dtype=weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def uses_chain(self, batch: int) -> bool:
        """Whether the chain path is cheaper than rebuild-then-dense for ``batch`` rows."""
        if self.forward_mode != "auto":
            return self.forward_mode == "chain"
        dims = self.bond_dims
        dense = reconstruction_flops(self.shape, dims, self.center) + 2 * batch * self.in_features * self.out_features
        return chain_flops(batch, self.shape, dims) < dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected input with last dim {self.in_features}, got {tuple(x.shape)}.")
        tensors = list(self.tensors)
        if self.uses_chain(x.numel() // self.in_features):
            y = chain_matmul(x, tensors, self.shape)
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.dense_weight(), self.bias)
