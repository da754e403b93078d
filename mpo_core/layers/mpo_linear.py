"""``MPOLinear``: an ``nn.Linear`` whose weight is an MPO."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..tensor.chain_plan import ChainPlan, plan_flops, sweep_matmul
from ..tensor.compress import compress_matrix
from ..tensor.mpo import MPO
from .mpo_module import MPOModule
from .path_choice import PathChoice, choose_plan


class MPOLinear(MPOModule):
    """``y = x W^T + b`` with ``W`` held as local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]``.

    Every contraction plan (:mod:`~mpo_core.tensor.chain_plan`) gives the same
    result: rebuild ``W`` then one dense matmul (``"dense"``), push ``x``
    through the unmerged chain (``"chain"``), or merge some neighbouring
    tensors first; ``"auto"`` picks the fastest for the batch at hand on this
    machine (:mod:`~mpo_core.layers.path_choice`).
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

    def path_for(self, tokens: int) -> PathChoice:
        """The contraction plan a forward of ``tokens`` rows runs now (the grad mode counts)."""
        n = self.shape.n
        if self.forward_mode == "dense":
            return PathChoice(ChainPlan.dense(n), "forward_mode")
        if self.forward_mode == "chain":
            plans = (ChainPlan.chain(n), ChainPlan.chain(n, reverse=True))
            cheaper = min(plans, key=lambda p: plan_flops(tokens, self.shape, self.bond_dims, p))
            return PathChoice(cheaper, "forward_mode")
        training = torch.is_grad_enabled() and any(t.requires_grad for t in self.tensors)
        kept = not torch.is_grad_enabled() and self.inference_memory == "fast"
        return choose_plan(list(self.tensors), self.shape, self.center, tokens, training, kept)

    def uses_chain(self, batch: int) -> bool:
        """Whether a forward of ``batch`` rows goes through the chain rather than the rebuilt matrix."""
        return not self.path_for(batch).plan.is_dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected input with last dim {self.in_features}, got {tuple(x.shape)}.")
        plan = self.path_for(x.numel() // self.in_features).plan
        if plan.is_dense:
            return F.linear(x, self.dense_weight(), self.bias)
        y = sweep_matmul(x, self.merged_tensors(plan), self.shape, plan)  # (..., out_features)
        return y if self.bias is None else y + self.bias
