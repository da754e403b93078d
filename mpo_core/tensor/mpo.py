"""The :class:`MPO` value: local tensors in mixed-canonical form plus their spectra.

A matrix ``W[i_1..i_n, j_1..j_n]`` (rows = outputs) as a chain of n local
tensors (Eq. (1)), here n = 5 with the central tensor at ``c = 2``::

         i_1         i_2          i_3          i_4         i_5        (out_factors, rows)
          |           |            |            |           |
    1 -- T_0 --d_1-- T_1 --d_2-- [T_2] --d_3-- T_3 --d_4-- T_4 -- 1
          |           |            |            |           |
         j_1         j_2          j_3          j_4         j_5        (in_factors, columns)

      auxiliary    auxiliary    central      auxiliary   auxiliary

    T_k has shape (d_{k-1}, i_k, j_k, d_k); d_0 = d_n = 1. Full bonds (Eq. (2))
    d_k = min(prod_{m<=k} i_m j_m, prod_{m>k} i_m j_m) make the chain exact;
    cutting a bond to d'_k < d_k drops its smallest Schmidt values
    (error Eq. (3)-(4)) and shrinks the two tensors beside it (ratio Eq. (5)).
    The central tensor holds most parameters; the auxiliary ones are small,
    which is why MPOP fine-tunes only them.

Invariants (established by :func:`~mpo_core.tensor.decomposition.decompose`,
:func:`~mpo_core.tensor.canonical.canonicalize` and
:func:`~mpo_core.tensor.truncation.truncate`), with ``c`` the central tensor::

    T_0 .. T_{c-1}   left-orthonormal   (sum over d_{k-1}, i, j of T T = identity)
    T_{c+1} .. T_n-1 right-orthonormal  (sum over i, j, d_k of T T = identity)
    every bond basis is its Schmidt basis, ``singular_values[k]`` descending

so the singular values of the matrix unfolded at bond k
``M[i_1 j_1 .. i_k j_k, i_{k+1} j_{k+1} .. i_n j_n]`` are cached per bond
(Eq. (3), (6)), and a truncation can be done by a sweep on the small tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .center_pair import row_tails
from .contraction import contract_to_matrix
from .shape import MPOShape


@dataclass(frozen=True, eq=False)
class MPO:
    """A matrix as a chain of local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]`` (Eq. (1)).

    Attributes
    ----------
    tensors:
        The n local tensors, ``tensors[center]`` is the central tensor.
    shape:
        The tensorization (factors, padding) of the matrix.
    singular_values:
        Per inner bond, the Schmidt values (float64, CPU, descending).
    center:
        Index of the central tensor.
    """

    tensors: tuple[torch.Tensor, ...]
    shape: MPOShape
    singular_values: tuple[torch.Tensor, ...]
    center: int

    @property
    def n(self) -> int:
        return len(self.tensors)

    @property
    def bond_dims(self) -> tuple[int, ...]:
        """Current inner bond dimensions ``d_1 .. d_{n-1}``."""
        return tuple(t.shape[-1] for t in self.tensors[:-1])

    @property
    def full_bond_dims(self) -> tuple[int, ...]:
        """Eq. (2) bond dimensions of the exact MPO of this shape."""
        return self.shape.full_bond_dims

    @property
    def central_tensor(self) -> torch.Tensor:
        return self.tensors[self.center]

    @property
    def auxiliary_tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(t for k, t in enumerate(self.tensors) if k != self.center)

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def num_params(self) -> int:
        return sum(t.numel() for t in self.tensors)

    @cached_property
    def tail_energies(self) -> tuple[np.ndarray, ...]:
        """``tail[k][d] = sum_{i >= d} lambda_{k,i}^2``, for microsecond error bounds."""
        tails = []
        for s in self.singular_values:
            sq = s.double().cpu().numpy() ** 2
            tails.append(np.concatenate([np.cumsum(sq[::-1])[::-1], [0.0]]))
        return tuple(tails)

    @cached_property
    def center_row_tails(self) -> dict:
        """``tau[x][y]`` of the central pair (:func:`~mpo_core.tensor.center_pair.row_tails`), computed
        on first use; copy it along when the tensors are replaced by placeholders."""
        return row_tails(self.central_tensor, self.singular_values[self.center])

    @cached_property
    def norm(self) -> float:
        """Frobenius norm of the represented matrix (from the central tensor)."""
        return float(self.central_tensor.double().norm())

    def to_matrix(self) -> torch.Tensor:
        """Contract back to the ``(out_features, in_features)`` matrix."""
        return contract_to_matrix(self.tensors, self.shape, self.center)

    def to(self, device=None, dtype=None) -> "MPO":
        """A copy with tensors moved/cast (spectra stay on the CPU in float64)."""
        tensors = tuple(t.to(device=device, dtype=dtype) for t in self.tensors)
        return MPO(tensors, self.shape, self.singular_values, self.center)

    def __repr__(self) -> str:
        return (
            f"MPO({self.shape.out_features}x{self.shape.in_features}, n={self.n}, "
            f"out_factors={self.shape.out_factors}, in_factors={self.shape.in_factors}, "
            f"bond_dims={self.bond_dims}, center={self.center}, dtype={self.dtype})"
        )
