"""What MPO layers share: the local tensors as parameters, central vs auxiliary."""
from __future__ import annotations

import torch
from torch import nn

from ..tensor.canonical import canonicalize
from ..tensor.chain_plan import ChainPlan, merge_plan
from ..tensor.contraction import contract_to_matrix
from ..tensor.mpo import MPO
from ..tensor.truncation import Truncation, truncate

FORWARD_MODES = ("auto", "dense", "chain")
# Without autograd (evaluation, inference): "fast" keeps what a forward rebuilt (the dense matrix, a plan's
# merged tensors) until the tensors change; "compact" keeps nothing larger than the MPO's own tensors, so a
# compressed model holds its compressed size (the dense path then rebuilds its matrix per call).
INFERENCE_MEMORY = ("fast", "compact")


class MPOModule(nn.Module):
    """Base class: holds ``tensors`` (an ``nn.ParameterList``) and the MPO shape."""

    def __init__(self, mpo: MPO, forward_mode: str = "auto"):
        super().__init__()
        if forward_mode not in FORWARD_MODES:
            raise ValueError(f"forward_mode must be one of {FORWARD_MODES}, got {forward_mode!r}.")
        self.shape = mpo.shape
        self.center = mpo.center
        self.forward_mode = forward_mode
        self.tensors = nn.ParameterList(nn.Parameter(t.detach().clone()) for t in mpo.tensors)
        self.inference_memory = "fast"
        self._cached_weight: tuple[tuple, torch.Tensor] | None = None
        self._cached_merged: tuple[ChainPlan, tuple, list[torch.Tensor]] | None = None

    @property
    def central_tensor(self) -> nn.Parameter:
        """The central tensor (most parameters; frozen in lightweight fine-tuning)."""
        return self.tensors[self.center]

    @property
    def auxiliary_tensors(self) -> list[nn.Parameter]:
        """All local tensors but the central one."""
        return [t for k, t in enumerate(self.tensors) if k != self.center]

    def freeze_central(self, frozen: bool = True) -> "MPOModule":
        """Stop (or resume) gradient updates of the central tensor."""
        self.central_tensor.requires_grad_(not frozen)
        return self

    @property
    def bond_dims(self) -> tuple[int, ...]:
        return tuple(t.shape[-1] for t in self.tensors[:-1])

    @property
    def weight(self) -> torch.Tensor:
        """The full matrix, rebuilt from the local tensors (differentiable)."""
        return contract_to_matrix(list(self.tensors), self.shape, self.center)

    def dense_weight(self) -> torch.Tensor:
        """:attr:`weight` for the forward pass; without autograd it is cached.

        Evaluation and inference rebuild the matrix once, not per batch. The
        cache key holds each tensor's identity and in-place version counter,
        so an optimizer step (or any edit) invalidates it.
        """
        if torch.is_grad_enabled() or self.inference_memory != "fast":
            self._cached_weight = None
            return self.weight
        if not self.has_cached_weight():
            self._cached_weight = (self._cache_key(), self.weight)
        return self._cached_weight[1]

    def merged_tensors(self, plan: ChainPlan) -> list[torch.Tensor]:
        """The plan's merged tensors (:func:`~mpo_core.tensor.chain_plan.merge_plan`); kept like :meth:`dense_weight`.

        With ``inference_memory="compact"`` they are kept only when no larger than the MPO's own tensors.
        """
        if torch.is_grad_enabled():
            self._cached_merged = None
            return merge_plan(list(self.tensors), plan)
        key = self._cache_key()
        if self._cached_merged is not None and self._cached_merged[:2] == (plan, key):
            return self._cached_merged[2]
        merged = merge_plan(list(self.tensors), plan)
        small = sum(t.numel() for t in merged) <= sum(t.numel() for t in self.tensors)
        self._cached_merged = (plan, key, merged) if self.inference_memory == "fast" or small else None
        return merged

    def set_inference_memory(self, mode: str) -> "MPOModule":
        """``"fast"`` or ``"compact"`` (see :data:`INFERENCE_MEMORY`); dropping what compact would not keep."""
        if mode not in INFERENCE_MEMORY:
            raise ValueError(f"inference_memory must be one of {INFERENCE_MEMORY}, got {mode!r}.")
        self.inference_memory = mode
        if mode == "compact":
            self._cached_weight = None
            if self._cached_merged is not None and sum(t.numel() for t in self._cached_merged[2]) > sum(
                    t.numel() for t in self.tensors):
                self._cached_merged = None
        return self

    def _cache_key(self) -> tuple:
        return tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in self.tensors)

    def has_cached_weight(self) -> bool:
        """Whether a rebuilt matrix is cached and still matches the tensors."""
        return self._cached_weight is not None and self._cached_weight[0] == self._cache_key()

    def to_mpo(self) -> MPO:
        """The current tensors as a canonical :class:`~mpo_core.tensor.mpo.MPO` (spectra recomputed)."""
        tensors, values = canonicalize(list(self.tensors), self.center)
        return MPO(tensors, self.shape, values, self.center)

    def load_tensors_(self, tensors) -> "MPOModule":
        """Replace the local tensors' values in place, shapes included.

        The ``nn.Parameter`` objects (and their ``requires_grad``) stay, so
        references held elsewhere (an optimizer) remain valid; optimizer
        state of a tensor whose shape changed must be reset by the caller.
        """
        tensors = list(tensors)
        if len(tensors) != len(self.tensors):
            raise ValueError(f"expected {len(self.tensors)} local tensors, got {len(tensors)}.")
        for param, value in zip(self.tensors, tensors):
            param.data = value.detach().to(device=param.device, dtype=param.dtype).clone()
        self._cached_weight = None
        self._cached_merged = None
        return self

    def truncate_(self, bond_dims) -> Truncation:
        """Cut the bonds to ``bond_dims`` in place (dimension squeezing's step).

        The current tensors (trained or not) are brought to canonical form,
        so the cut is the optimal one for the matrix they represent now, and
        the returned :class:`~mpo_core.tensor.truncation.Truncation` bounds its error.
        """
        result = truncate(self.to_mpo(), bond_dims)
        self.load_tensors_(result.mpo.tensors)
        return result

    def extra_repr(self) -> str:
        s = self.shape
        return (
            f"{s.out_features}x{s.in_features}, out_factors={s.out_factors}, in_factors={s.in_factors}, "
            f"bond_dims={self.bond_dims}, center={self.center}, forward_mode={self.forward_mode!r}"
        )


def set_inference_memory(model: nn.Module, mode: str) -> int:
    """Set ``inference_memory`` (``"fast"`` / ``"compact"``) on every MPO layer of ``model``; how many there are."""
    layers = [m for m in model.modules() if isinstance(m, MPOModule)]
    for layer in layers:
        layer.set_inference_memory(mode)
    return len(layers)
