"""Memory budget of the dashboard: what a request would allocate, estimated before allocating.

Anyone with the page can type sizes, and a typed size can cost far more than
it looks: output factors ``20,20,20,20,20`` zero-pad the 30522x384 word
embedding to 3.2e6 x 384 = 1.2e9 entries (measured: 45 s and 5.3 GB, then an
allocation error). The pages therefore estimate from integers alone and refuse
a request above :data:`MEMORY_CAP_BYTES`, with a message naming the estimate
and the cap, before any tensor exists.

The estimates are upper bounds of the peak memory of this code (float32 on
the CPU), calibrated by measuring peak RSS:

* a random matrix (:func:`app.decompose.random_matrix`): the float64 draws
  and their float32 copy; with a spectrum decay also the two float64 QR
  factors, their inputs and the scaled factor;
* a decomposition (:func:`mpo_core.decompose`, Algorithm 1): per entry of
  the zero-padded matrix its padded and permuted copies, the float64 copy,
  Gram matrix and product of :func:`mpo_core.tensor.linalg.wide_svd`
  (:data:`DECOMPOSE_BYTES_PER_PADDED_ENTRY`), plus the float32 entries of
  the full-bond MPO (Eq. (2)).

Measured peak (increase of RSS) against the estimate: the 30522x384 word
embedding at n = 5, 249 MiB (estimate 526 MiB); a random 4096x4096 at n = 2,
667 MiB (800 MiB), and drawing it with decay 1, 668 MiB (736 MiB); a 256x192
matrix zero-padded to 100000x192, 300 MiB (838 MiB). The cap admits every
packaged weight and every random matrix the widgets allow, at planned factors.
"""
from __future__ import annotations

from mpo_core import MPOShape
from mpo_core.tensor.shape import tensor_sizes

MEMORY_CAP_BYTES = 1 << 30  # 1 GiB per request: one page run on a shared machine, several tabs at once
DECOMPOSE_BYTES_PER_PADDED_ENTRY = 40
OVERHEAD_BYTES = 32 << 20  # LAPACK workspaces and allocator slack, what dominates small matrices
FLOAT32, FLOAT64 = 4, 8


def format_bytes(count: int) -> str:
    """``1536 -> '1.5 KiB'``, binary units up to TiB, then a power of ten."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            break
        count /= 1024
    return f"{count:.3g} {unit}" if count < 1e4 else f"{count:.2e} {unit}"


def random_matrix_bytes(rows: int, cols: int, decay: float = 0.0) -> int:
    """Peak bytes of drawing a ``rows x cols`` random matrix (with ``decay > 0``: a prescribed spectrum)."""
    entries = rows * cols
    if decay == 0:
        return OVERHEAD_BYTES + (FLOAT64 + FLOAT32) * entries + FLOAT64 * entries // 2  # draws, copy, slack
    rank = min(rows, cols)
    factors = 2 * FLOAT64 * (rows + cols) * rank  # Gaussian inputs and Q of both QRs
    return OVERHEAD_BYTES + factors + (FLOAT64 + FLOAT32) * entries  # (U sigma) V^T in float64, then float32


def decomposition_bytes(shape: MPOShape) -> int:
    """Peak bytes of the exact decomposition of a matrix tensorized as ``shape`` (padding included)."""
    rows, cols = shape.padded_shape
    mpo_entries = sum(tensor_sizes(shape.local_dims, shape.full_bond_dims))
    return OVERHEAD_BYTES + DECOMPOSE_BYTES_PER_PADDED_ENTRY * rows * cols + FLOAT32 * mpo_entries


def check_memory(what: str, estimate: int, cap: int = MEMORY_CAP_BYTES, hint: str = "choose smaller sizes") -> int:
    """``estimate`` if within ``cap``; else ``ValueError`` naming both (``what`` would need it; ``hint``: what to do)."""
    if estimate > cap:
        raise ValueError(
            f"{what} would need about {format_bytes(estimate)} of memory, over the dashboard's cap of "
            f"{format_bytes(cap)} per request: {hint}."
        )
    return estimate


def check_decomposition(shape: MPOShape, cap: int = MEMORY_CAP_BYTES) -> MPOShape:
    """``shape`` if decomposing along it fits ``cap``; else ``ValueError`` saying what to change."""
    rows, cols = shape.padded_shape
    padding = ""
    if shape.is_padded:
        share = rows * cols / max(shape.num_matrix_params, 1)
        padding = f", zero-padded to {rows}x{cols} ({share:.3g}x its entries)"
    what = (f"Decomposing the {shape.out_features}x{shape.in_features} matrix with factors "
            f"i = ({','.join(map(str, shape.out_factors))}), j = ({','.join(map(str, shape.in_factors))}){padding}")
    hint = ("choose factors whose products are close to the matrix's rows and columns "
            "('Re-plan factors' does), or a smaller matrix")
    check_memory(what, decomposition_bytes(shape), cap, hint)
    return shape


def check_random_matrix(rows: int, cols: int, decay: float = 0.0, cap: int = MEMORY_CAP_BYTES) -> None:
    """``ValueError`` if drawing the random matrix would exceed ``cap``."""
    kind = "with a spectrum decay" if decay else "of Gaussian entries"
    check_memory(f"A random {rows}x{cols} matrix {kind}", random_matrix_bytes(rows, cols, decay), cap,
                 "choose fewer rows or columns")

