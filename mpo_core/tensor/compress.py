"""One call from a matrix to a (possibly truncated) MPO."""
from __future__ import annotations

from typing import Sequence

import torch

from .decomposition import decompose
from .mpo import MPO
from .truncation import truncate


def compress_matrix(
    matrix: torch.Tensor,
    n: int | None = None,
    out_factors: Sequence[int] | None = None,
    in_factors: Sequence[int] | None = None,
    bond_dims: Sequence[int] | None = None,
    compression_ratio: float | None = None,
    max_error: float | None = None,
    relative: bool = False,
) -> MPO:
    """Decompose ``matrix`` (Algorithm 1) and, if a target is given, truncate it.

    Half-precision matrices are decomposed in float32 and cast back.
    """
    work = matrix.detach()
    if work.dtype in (torch.float16, torch.bfloat16):
        work = work.float()
    mpo = decompose(work, n=n, out_factors=out_factors, in_factors=in_factors)
    if any(x is not None for x in (bond_dims, compression_ratio, max_error)):
        mpo = truncate(
            mpo, bond_dims, compression_ratio=compression_ratio, max_error=max_error, relative=relative
        ).mpo
    return mpo.to(dtype=matrix.dtype)
