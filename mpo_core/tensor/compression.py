"""Parameter counts and the compression ratio of Eq. (5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .shape import MPOShape, tensor_sizes


def check_bond_dims(shape: MPOShape, bond_dims: Sequence[int]) -> tuple[int, ...]:
    """Validate requested bond dims: n-1 ints with ``1 <= d'_k <= d_k`` (Eq. (2))."""
    full = shape.full_bond_dims
    try:
        dims = tuple(bond_dims)
    except TypeError:
        raise TypeError(f"bond_dims must be a sequence of {len(full)} ints, got {bond_dims!r}.") from None
    if len(dims) != len(full):
        raise ValueError(
            f"bond_dims needs {len(full)} values (one per inner bond of an n={shape.n} MPO), "
            f"got {len(dims)}: {dims}."
        )
    for k, (d, f) in enumerate(zip(dims, full)):
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"bond_dims[{k}] must be an int, got {d!r}.")
        if not 1 <= d <= f:
            raise ValueError(
                f"bond_dims[{k}] = {d} is outside 1..{f} (the full bond dimension of Eq. (2)); "
                f"choose values between 1 and {full}."
            )
    return dims


def clip_bond_dims(shape: MPOShape, bond_dims: Sequence[int]) -> tuple[int, ...]:
    """Effective bond dims: each bond at most what its neighbours can carry.

    ``d'_k <= d'_{k-1} * a_k`` and ``d'_k <= a_{k+1} * d'_{k+1}``; wider bonds
    would only hold zero singular values, so a truncated MPO has these dims.
    """
    return _clip(shape, check_bond_dims(shape, bond_dims))


def _clip(shape: MPOShape, bond_dims: Sequence[int]) -> tuple[int, ...]:
    a = shape.local_dims
    dims = [min(d, f) for d, f in zip(bond_dims, shape.full_bond_dims)]
    for k in range(len(dims)):
        dims[k] = min(dims[k], (dims[k - 1] if k else 1) * a[k])
    for k in range(len(dims) - 1, -1, -1):
        dims[k] = min(dims[k], a[k + 1] * (dims[k + 1] if k + 1 < len(dims) else 1))
    return tuple(dims)


def num_params(shape: MPOShape, bond_dims: Sequence[int]) -> int:
    """``sum_k d'_{k-1} i_k j_k d'_k``: the numerator of Eq. (5)."""
    return count_params(shape, check_bond_dims(shape, bond_dims))


def count_params(shape: MPOShape, bond_dims: Sequence[int]) -> int:
    """:func:`num_params` without validation, for inner loops over valid dims."""
    return sum(tensor_sizes(shape.local_dims, _clip(shape, bond_dims)))


def compression_ratio(shape: MPOShape, bond_dims: Sequence[int]) -> float:
    """Eq. (5): MPO parameters over the entries of the original matrix.

    The paper divides by ``prod_k i_k j_k``; we divide by
    ``out_features * in_features`` so that zero padding counts against the MPO
    (the two agree when no padding is needed). ``rho > 1`` means the MPO is
    larger than the matrix (as at full bonds).
    """
    return num_params(shape, bond_dims) / shape.num_matrix_params


@dataclass(frozen=True)
class ParameterSplit:
    """Parameter counts of an MPO, split as in MPOP's lightweight fine-tuning."""

    central: int
    auxiliary: int
    matrix: int

    @property
    def total(self) -> int:
        return self.central + self.auxiliary

    @property
    def auxiliary_share(self) -> float:
        return self.auxiliary / self.total

    @property
    def compression_ratio(self) -> float:
        return self.total / self.matrix


def parameter_split(shape: MPOShape, bond_dims: Sequence[int], center: int | None = None) -> ParameterSplit:
    """Central vs auxiliary parameter counts for the given (clipped) bond dims."""
    center = shape.center if center is None else center
    sizes = tensor_sizes(shape.local_dims, clip_bond_dims(shape, bond_dims))
    return ParameterSplit(sizes[center], sum(sizes) - sizes[center], shape.num_matrix_params)
