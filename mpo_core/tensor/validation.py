"""Input checks shared by the decomposition functions.

Every check raises ``ValueError`` or ``TypeError`` with a message that says
what to do, so that the dashboard and the command line can show it as is.
"""
from __future__ import annotations

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64)
MIN_LOCAL_TENSORS = 2


def check_matrix(matrix: torch.Tensor, name: str = "matrix") -> torch.Tensor:
    """Check that ``matrix`` is a finite 2-D float32/float64 torch tensor."""
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(matrix).__name__}; "
            "convert it with torch.as_tensor(...)."
        )
    if matrix.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D (out_features, in_features), got shape {tuple(matrix.shape)}; "
            "reshape it to a matrix first."
        )
    if matrix.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {matrix.dtype}; MPO decomposition supports float32 and float64. "
            "Cast it with .float() or .double()."
        )
    if matrix.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(matrix.shape)}); give a non-empty matrix.")
    if not bool(torch.isfinite(matrix).all()):
        bad = int((~torch.isfinite(matrix)).sum())
        raise ValueError(
            f"{name} has {bad} NaN/Inf entries; clean or replace them (e.g. torch.nan_to_num) first."
        )
    return matrix


def check_num_tensors(n: int) -> int:
    """Check the number of local tensors ``n`` (an int, at least 2)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"the number of local tensors n must be an int, got {n!r}.")
    if n < MIN_LOCAL_TENSORS:
        raise ValueError(
            f"the number of local tensors n must be at least {MIN_LOCAL_TENSORS}, got {n}; "
            "the papers use n=5 (n=2 with factors (I,1),(1,J) is the truncated SVD)."
        )
    return n


def check_positive_ints(values, name: str) -> tuple[int, ...]:
    """Check a sequence of positive ints and return it as a tuple."""
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}.") from None
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must contain positive ints, got {items}.")
    return items
