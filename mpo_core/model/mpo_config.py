"""``MPOConfig``: which matrices of a model become MPOs, and how."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..layers.mpo_module import FORWARD_MODES
from .matrix_groups import DEFAULT_GROUPS, GROUPS
from ..tensor.validation import check_choice, check_num_tensors, check_number, check_positive_ints


@dataclass
class MPOConfig:
    """Declarative description of an MPO surgery (see :func:`~mpo_core.model.surgery.apply_mpo`).

    Attributes
    ----------
    groups:
        Matrix groups to decompose; any of ``mpo_core.model.matrix_groups.GROUPS``.
    n:
        Number of local tensors per MPO (the papers use 5).
    factors:
        Optional explicit ``(out_factors, in_factors)`` per group (else planned).
    bond_dims:
        Optional truncated bond dims per group (else full bonds, lossless).
    compression_ratio:
        Optional Eq. (5) target, one float for all groups or one per group.
    layers:
        Encoder layer indices whose matrices are decomposed (``None`` = all);
        matrices outside the layers (word embedding, pooler) are unaffected.
    forward_mode:
        ``"auto"`` (cheaper path per batch), ``"dense"`` or ``"chain"``.
    """

    groups: tuple[str, ...] = DEFAULT_GROUPS
    n: int = 5
    factors: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    bond_dims: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    compression_ratio: float | Mapping[str, float] | None = None
    layers: tuple[int, ...] | None = None
    forward_mode: str = "auto"

    def __post_init__(self):
        self.groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown or not self.groups:
            raise ValueError(f"groups must be a non-empty selection of {GROUPS}, got {self.groups}.")
        check_num_tensors(self.n)
        for name in ("factors", "bond_dims"):
            extra = [g for g in getattr(self, name) if g not in self.groups]
            if extra:
                raise ValueError(f"{name} given for {extra}, which are not in groups {self.groups}.")
        self.factors = {g: (check_positive_ints(o, "out_factors"), check_positive_ints(i, "in_factors"))
                        for g, (o, i) in dict(self.factors).items()}
        self.bond_dims = {g: check_positive_ints(d, f"bond_dims[{g!r}]") for g, d in dict(self.bond_dims).items()}
        self._check_ratios()
        if self.layers is not None:
            self.layers = tuple(sorted(set(int(i) for i in self.layers)))
            if any(i < 0 for i in self.layers):
                raise ValueError(f"layers must be non-negative indices, got {self.layers}.")
        check_choice("forward_mode", self.forward_mode, FORWARD_MODES)

    def _check_ratios(self) -> None:
        ratios = self.compression_ratio
        if ratios is None:
            return
        if not isinstance(ratios, Mapping):
            ratios = {g: ratios for g in self.groups}
        for group, ratio in ratios.items():
            if group not in self.groups:
                raise ValueError(f"compression_ratio given for {group!r}, which is not in groups {self.groups}.")
            check_number(f"compression_ratio for {group!r}", ratio, minimum=0)
            if group in self.bond_dims:
                raise ValueError(f"give either bond_dims or compression_ratio for {group!r}, not both.")
        self.compression_ratio = dict(ratios)

    def target(self, group: str) -> dict:
        """Keyword arguments for ``from_linear``/``from_embedding`` for one group."""
        kwargs = {"n": self.n, "forward_mode": self.forward_mode}
        if group in self.factors:
            kwargs["out_factors"], kwargs["in_factors"] = self.factors[group]
            kwargs["n"] = len(kwargs["out_factors"])
        if group in self.bond_dims:
            kwargs["bond_dims"] = self.bond_dims[group]
        elif self.compression_ratio and group in self.compression_ratio:
            kwargs["compression_ratio"] = self.compression_ratio[group]
        return kwargs

    def to_dict(self) -> dict:
        """JSON-ready form (saved next to an MPO model)."""
        return {
            "groups": list(self.groups), "n": self.n,
            "factors": {g: [list(o), list(i)] for g, (o, i) in self.factors.items()},
            "bond_dims": {g: list(d) for g, d in self.bond_dims.items()},
            "compression_ratio": self.compression_ratio,
            "layers": None if self.layers is None else list(self.layers),
            "forward_mode": self.forward_mode,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "MPOConfig":
        return cls(**{k: v for k, v in data.items()})
