"""``MPOConfig``: which matrices of a model become MPOs, and how."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..layers.mpo_module import FORWARD_MODES
from .matrix_groups import DEFAULT_GROUPS, GROUPS
from ..tensor.validation import (check_choice, check_num_tensors, check_number,
                                 check_positive_ints, is_int)


#: the most local tensors of a compressing MPO: 2**12 exceeds any matrix dimension, more only adds factors of 1
MAX_TENSORS = 12


@dataclass
class MPOConfig:
    """Declarative description of an MPO surgery (see :func:`~mpo_core.model.surgery.apply_mpo`).

    Attributes
    ----------
    groups:
        Matrix groups to decompose; any of ``mpo_core.model.matrix_groups.GROUPS``.
    n:
        Number of local tensors per MPO (the papers use 5; at most ``MAX_TENSORS`` = 12).
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
        self.groups = (self.groups,) if isinstance(self.groups, str) else self.groups
        if not isinstance(self.groups, (list, tuple)) or not all(isinstance(g, str) for g in self.groups):
            raise ValueError(f"groups must be a list of matrix group names from {GROUPS}, got {self.groups!r}.")
        self.groups = tuple(self.groups)
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown or not self.groups:
            raise ValueError(f"groups must be a non-empty selection of {GROUPS}, got {self.groups}.")
        check_num_tensors(self.n, MAX_TENSORS)
        for name in ("factors", "bond_dims"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a JSON object / dict from group name to {FORMS[name]}, "
                                 f"got {type(getattr(self, name)).__name__}.")
            extra = [g for g in getattr(self, name) if g not in self.groups]
            if extra:
                raise ValueError(f"{name} given for {extra}, which are not in groups {self.groups}.")
        self.factors = {g: _check_factor_pair(g, pair) for g, pair in dict(self.factors).items()}
        self.bond_dims = {g: _check_bond_dims(g, d) for g, d in dict(self.bond_dims).items()}
        self._check_ratios()
        if self.layers is not None:
            if not isinstance(self.layers, (list, tuple)) or not all(is_int(i) and i >= 0 for i in self.layers):
                raise ValueError(f"layers must be a list of non-negative encoder layer indices (or null for all), "
                                 f"got {self.layers!r}.")
            self.layers = tuple(sorted(set(int(i) for i in self.layers)))
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


#: what each per-group field holds, for messages
FORMS = {"factors": "[out_factors, in_factors] (two lists of n positive ints)",
         "bond_dims": "a list of n - 1 positive ints"}


def _check_factor_pair(group: str, pair) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``factors[group]``: two lists of positive ints of one length n (2 to ``MAX_TENSORS``)."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(f"factors[{group!r}] must be {FORMS['factors']}, got {pair!r:.120}.")
    out_f = check_positive_ints(pair[0], f"factors[{group!r}] out_factors")
    in_f = check_positive_ints(pair[1], f"factors[{group!r}] in_factors")
    if len(out_f) != len(in_f):
        raise ValueError(f"factors[{group!r}]: out_factors {out_f} and in_factors {in_f} must have the same "
                         "length n (one pair per local tensor).")
    check_num_tensors(len(out_f), MAX_TENSORS)
    return out_f, in_f


def _check_bond_dims(group: str, dims) -> tuple[int, ...]:
    """``bond_dims[group]``: 1 to ``MAX_TENSORS - 1`` positive ints (their upper bounds need the matrix)."""
    dims = check_positive_ints(dims, f"bond_dims[{group!r}]")
    if not 1 <= len(dims) < MAX_TENSORS:
        raise ValueError(f"bond_dims[{group!r}] must be {FORMS['bond_dims']} (n at most {MAX_TENSORS}), "
                         f"got {len(dims)} values.")
    return dims
