"""Back end of the dashboard: matrices, decomposition, live numbers and figures.

Plain Python over :mod:`mpo_core` (no ``streamlit`` import, so every function
here is unit-tested directly). The pages cache what is slow::

    load_matrix(source)                  disk / RNG / image      -> st.cache_resource
    decompose_matrix(matrix, i_k, j_k)   Algorithm 1 SVDs        -> st.cache_resource
    live_summary(mpo, bond_dims)         cached spectra only     -> every slider move
    true_error(matrix, mpo, bond_dims)   truncate + contract     -> st.cache_data

Notation of MPOP (Liu, Gao et al., ACL 2021): a matrix ``M`` (I x J) becomes the
chain ``T_1 .. T_n`` of local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]``
(Eq. (1)), with full bond dims ``d_k`` (Eq. (2)) cut to ``d'_k``::

        i_1         i_2         i_3         i_4         i_5
         |           |           |           |           |
       [T_1]--d'_1--[T_2]--d'_2--[ C ]--d'_3--[T_4]--d'_4--[T_5]
         |           |           |           |           |
        j_1         j_2         j_3         j_4         j_5
"""
from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image

import mpo_core
from mpo_core import MPO, MPOShape, ParameterSplit
from mpo_core.tensor.validation import check_choice, check_number, check_positive_int

from .memory_budget import check_decomposition, check_random_matrix

DEFAULT_WEIGHT = "embeddings.word_embeddings.weight"
DEFAULT_NUM_TENSORS = 5
# The page opens at the bonds of least Eq. (4) error for this ratio (exact DP allocator): compressed enough
# to show what a cut costs, exact enough to keep the matrix recognisable.
PRESET_RATIO = 0.3
# The offline sample picture: a photo scikit-learn ships (CC BY 2.0, danielbuechele on Flickr).
SAMPLE_IMAGE = "china.jpg"
SAMPLE_CREDIT = "“china.jpg”, shipped with scikit-learn (CC BY 2.0, danielbuechele on Flickr)"
# A relative error below this is float32 rounding of the contraction, not a cut: shown as ≈ 0.
FLOAT_NOISE = 1e-5
MAX_NUM_TENSORS = 9
# Largest typed factor i_k / j_k: above every matrix side here (30522 at most), so it refuses nothing useful
# (a factor beyond a side only adds zero padding), and keeps products of up to 9 factors far inside a float
# (a 400-digit factor overflowed the memory estimate).
MAX_FACTOR = 1_000_000
SOURCE_KINDS = ("model", "random", "image")
MAX_RANDOM_SIDE = 4096
MAX_IMAGE_SIDE = 1024  # uploads are shrunk (aspect kept) to at most this many pixels a side
# Decoding comes before shrinking: 50 megapixels decode to at most ~250 MB (RGBA plus grayscale).
# JPEGs decode at a reduced scale first, so only what is decoded counts.
MAX_IMAGE_PIXELS = 50_000_000

# Figure 1 of the paper: auxiliary tensors in blue, the central tensor in orange.
AUXILIARY_COLOR = "#4c78a8"
CENTRAL_COLOR = "#f58518"
FULL_COLOR = "#9d9d9d"
# Log axes labelled at decades only, as powers of ten (plotly's default also labels 2, 3, 5 between them);
# for axes that span few decades, see log_ticks.
LOG_AXIS = {"type": "log", "dtick": 1, "exponentformat": "power"}
BOND_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")


# --------------------------------------------------------------------------- matrices
@dataclass(frozen=True)
class MatrixSource:
    """Which matrix to decompose; frozen and hashable, so it keys the page caches.

    Only the fields of ``kind`` matter; leave the others at their defaults.
    """

    kind: str = "model"  # "model" | "random" | "image"
    name: str = DEFAULT_WEIGHT  # model: state-dict name; image: file name
    rows: int = 256  # random: out_features
    cols: int = 192  # random: in_features
    seed: int = 0  # random: torch.Generator seed
    decay: float = 0.0  # random: singular values (i + 1) ** -decay; 0 = plain Gaussian
    image: bytes = field(default=b"", repr=False)  # image: the uploaded file's bytes

    def __post_init__(self):
        check_choice("matrix source kind", self.kind, SOURCE_KINDS)
        for name in ("rows", "cols"):
            value = check_positive_int(f"random matrix {name}", getattr(self, name))
            if value > MAX_RANDOM_SIDE:
                raise ValueError(f"random matrix {name} must be at most {MAX_RANDOM_SIDE}, got {value!r}.")
        check_number("spectrum decay (0 = plain Gaussian)", self.decay, minimum=0, strict=False)
        if self.kind == "random":
            check_random_matrix(self.rows, self.cols, self.decay)
        if self.kind == "image" and not self.image:
            raise ValueError("no image bytes given; upload a PNG or JPEG file.")

    @property
    def label(self) -> str:
        if self.kind == "model":
            return self.name
        if self.kind == "random":
            return f"random {self.rows}x{self.cols} (seed {self.seed}, decay {self.decay:g})"
        return f"image {self.name}"


def model_weights(model_path=None) -> dict[str, tuple[int, int]]:
    """Every 2-D weight of the packaged model (or ``model_path``): name -> (rows, cols)."""
    return mpo_core.list_weight_matrices(model_path)


def random_matrix(rows: int, cols: int, seed: int = 0, decay: float = 0.0) -> torch.Tensor:
    """A seeded float32 random matrix; ``decay > 0`` gives it singular values ``(i + 1) ** -decay``.

    The decay is that of the matrix's own SVD; the bond spectra of its MPO
    (the unfoldings of Eq. (3)) inherit only part of it, which is worth seeing.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if decay == 0:
        return (torch.randn(rows, cols, generator=gen, dtype=torch.float64) / math.sqrt(cols)).float()
    rank = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, rank, generator=gen, dtype=torch.float64))  # (rows, r)
    v, _ = torch.linalg.qr(torch.randn(cols, rank, generator=gen, dtype=torch.float64))  # (cols, r)
    sigma = torch.arange(1, rank + 1, dtype=torch.float64) ** -float(decay)
    return ((u * sigma) @ v.T).float()  # (rows, cols)


def _open_image(data: bytes, max_side: int = MAX_IMAGE_SIDE) -> Image.Image:
    """The image in ``data``, its header read and nothing decoded (a JPEG set to decode at reduced scale).

    Pillow's decompression-bomb warning is left to :func:`image_matrix`'s stricter pixel cap.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:  # over twice Pillow's limit: not even its size is read
            raise ValueError(f"the image is far too large ({exc}); the dashboard decodes at most "
                             f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: shrink it before uploading.") from None
        except OSError as exc:
            raise ValueError(f"could not read the upload as an image ({exc}); upload a PNG or JPEG file.") from None
    img.draft("L", (max_side, max_side))  # JPEG: decode at reduced size, much faster
    return img


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of the image in ``data``, from its header (nothing decoded)."""
    return _open_image(data, max_side=1 << 30).size  # no draft reduction: the upload's own size


def image_matrix(data: bytes, max_side: int = MAX_IMAGE_SIDE, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Grayscale float32 matrix in [0, 1] of an image file, shrunk to ``max_side`` pixels.

    Images that would decode to more than ``max_pixels`` are refused before decoding.
    """
    img = _open_image(data, max_side)
    width, height = img.size  # after draft: what will actually be decoded
    if width * height > max_pixels:
        raise ValueError(
            f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the dashboard decodes "
            f"at most {max_pixels / 1e6:.0f} megapixels (it shows at most {max_side} pixels a side anyway): "
            "shrink it before uploading."
        )
    try:
        gray = img.convert("L")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"could not read the upload as an image ({exc}); upload a PNG or JPEG file.") from None
    gray.thumbnail((max_side, max_side))  # only ever shrinks, keeps the aspect ratio
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)  # (height, width)


def sample_image() -> bytes:
    """The bytes of the offline sample picture (found on disk without importing scikit-learn)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sample picture comes with scikit-learn, which is not installed.")
    return (Path(spec.submodule_search_locations[0]) / "datasets" / "images" / SAMPLE_IMAGE).read_bytes()


def sample_source() -> MatrixSource:
    return MatrixSource(kind="image", name=f"{SAMPLE_IMAGE} (sample)", image=sample_image())


def load_matrix(source: MatrixSource) -> torch.Tensor:
    """The float32 matrix a :class:`MatrixSource` names."""
    if source.kind == "model":
        return mpo_core.load_weight_matrix(source.name)
    if source.kind == "random":
        return random_matrix(source.rows, source.cols, source.seed, source.decay)
    return image_matrix(source.image)


# --------------------------------------------------------------------------- shape
def parse_factors(text: str, name: str = "factors") -> tuple[int, ...]:
    """``"6,7,13,8,7"`` (commas, spaces, ``x`` or ``*`` between) -> ``(6, 7, 13, 8, 7)``."""
    parts = [p for p in re.split(r"[\s,x×*]+", str(text).strip()) if p]
    if not parts:
        raise ValueError(f"{name} are empty; write positive integers separated by commas, e.g. 6,7,13,8,7.")
    for part in parts:
        if not (part.isascii() and part.isdigit()) or not part.strip("0"):  # ASCII digits, not all zeros
            shown = repr(part) if len(part) <= 20 else f"{part[:8]!r}… ({len(part)} characters)"
            raise ValueError(
                f"{name}: {shown} is not a positive integer; write positive integers "
                "separated by commas, e.g. 6,7,13,8,7."
            )
        digits = part.lstrip("0")
        if len(digits) > len(str(MAX_FACTOR)) or int(digits) > MAX_FACTOR:  # length first: int() of 5000 digits fails
            shown = digits if len(digits) <= 12 else f"{digits[:6]}…{digits[-3:]} ({len(digits)} digits)"
            raise ValueError(
                f"{name}: {shown} is too large; each factor is at most {MAX_FACTOR:,}. The factors' product "
                "only needs to reach the matrix's side (anything beyond is zero padding), e.g. 6,7,13,8,7."
            )
    return tuple(int(p) for p in parts)


def format_factors(factors: Sequence[int]) -> str:
    return ",".join(str(f) for f in factors)


def plan(rows: int, cols: int, n: int, out_text: str | None = None, in_text: str | None = None) -> MPOShape:
    """The :class:`~mpo_core.MPOShape` of a ``rows x cols`` matrix.

    Factors left as ``None`` are planned by :func:`mpo_core.plan_shape`; typed
    ones are parsed and must number exactly ``n``. A shape whose decomposition
    would exceed the memory budget (:mod:`app.memory_budget`) is refused here,
    before anything is allocated.
    """
    typed = {}
    for key, text, label in (("out_factors", out_text, "output factors i_k"), ("in_factors", in_text, "input factors j_k")):
        if text is None:
            continue
        factors = parse_factors(text, label)
        if len(factors) != n:
            raise ValueError(f"{len(factors)} {label} given but n = {n} local tensors; give {n} factors or change n.")
        typed[key] = factors
    try:
        return check_decomposition(mpo_core.plan_shape(rows, cols, n=n, **typed))
    except OverflowError:  # sizes past a float: kept out by MAX_FACTOR, named here should anything else get there
        raise ValueError(f"these factors are too large to estimate the memory of their decomposition; each is at "
                         f"most {MAX_FACTOR:,} and their product only needs to reach the matrix's side.") from None


def describe_shape(shape: MPOShape) -> str:
    """One line on the tensorization: factors, padding, centre."""
    rows, cols = shape.padded_shape
    padding = f", zero-padded to {rows}x{cols}" if shape.is_padded else ""
    return (
        f"{shape.out_features}x{shape.in_features}{padding}; "
        f"i = ({format_factors(shape.out_factors)}), j = ({format_factors(shape.in_factors)}), "
        f"full bond dims d = ({format_factors(shape.full_bond_dims)}) by Eq. (2); "
        f"central tensor T_{shape.center + 1}."
    )


def decompose_matrix(matrix: torch.Tensor, out_factors: Sequence[int], in_factors: Sequence[int]) -> MPO:
    """Exact MPO of ``matrix`` (Algorithm 1, full bonds, mixed-canonical); refused above the memory budget."""
    rows, cols = matrix.shape
    shape = check_decomposition(mpo_core.plan_shape(rows, cols, out_factors=tuple(out_factors), in_factors=tuple(in_factors)))
    return mpo_core.decompose(matrix, shape=shape)


# --------------------------------------------------------------------------- live numbers
@dataclass(frozen=True)
class LiveSummary:
    """Everything the bond sliders change, from the cached spectra only (no SVD, no matrix)."""

    bond_dims: tuple[int, ...]  # d'_k as chosen
    effective_bond_dims: tuple[int, ...]  # d'_k after clip_bond_dims (what a truncation yields)
    compression_ratio: float  # rho, Eq. (5)
    local_errors: tuple[float, ...]  # eps_k, Eq. (3)
    error_bound: float  # sqrt(sum eps_k^2) >= ||M - M'||_F, Eq. (4)
    relative_error_bound: float  # error_bound / ||M||_F
    entropies: tuple[float, ...]  # S_k of the kept lambda_k,1..d'_k, Eq. (6)
    full_entropies: tuple[float, ...]  # S_k at full d_k
    split: ParameterSplit  # central vs auxiliary at d'_k
    full_split: ParameterSplit  # ... at full d_k


def _relative(value: float, norm: float) -> float:
    return value / norm if norm > 0 else 0.0


def live_summary(mpo: MPO, bond_dims: Sequence[int]) -> LiveSummary:
    """The fast figures for slider bond dims ``d'_1..d'_{n-1}`` (microseconds)."""
    dims = tuple(int(d) for d in bond_dims)
    shape = mpo.shape
    bound = mpo_core.truncation_error_bound(mpo, dims)
    effective = mpo_core.clip_bond_dims(shape, dims)
    return LiveSummary(
        bond_dims=dims,
        effective_bond_dims=effective,
        compression_ratio=mpo_core.compression_ratio(shape, dims),
        local_errors=mpo_core.local_truncation_errors(mpo, dims),
        error_bound=bound,
        relative_error_bound=_relative(bound, mpo.norm),
        entropies=mpo_core.entanglement_entropy(mpo, effective),  # what a truncation keeps (<= ln d'_k)
        full_entropies=mpo_core.entanglement_entropy(mpo),
        split=mpo_core.parameter_split(shape, dims, mpo.center),
        full_split=mpo_core.parameter_split(shape, mpo.full_bond_dims, mpo.center),
    )


@dataclass(frozen=True)
class TrueError:
    """The recomputed error of cutting the bonds to ``d'_k`` (truncate, contract, compare)."""

    bond_dims: tuple[int, ...]  # bonds of the truncated MPO
    absolute: float  # ||M - M'||_F
    relative: float  # ||M - M'||_F / ||M||_F
    entropies: tuple[float, ...]  # exact Eq. (6) of the truncated MPO (its own spectra)
    reconstruction: np.ndarray | None = None  # M' (float32), when asked for


def true_error(matrix: torch.Tensor, mpo: MPO, bond_dims: Sequence[int], keep_reconstruction: bool = False) -> TrueError:
    """Truncate ``mpo`` to ``bond_dims`` and measure ``||M - M'||_F`` on the matrix itself."""
    truncated = mpo_core.truncate(mpo, tuple(int(d) for d in bond_dims)).mpo
    approx = truncated.to_matrix()  # (out_features, in_features)
    absolute = mpo_core.frobenius_error(matrix, approx)
    return TrueError(
        bond_dims=truncated.bond_dims,
        absolute=absolute,
        relative=_relative(absolute, mpo.norm),
        entropies=mpo_core.entanglement_entropy(truncated),
        reconstruction=approx.float().numpy().copy() if keep_reconstruction else None,
    )


def preset_bond_dims(mpo: MPO, ratio: float = PRESET_RATIO) -> tuple[int, ...]:
    """The bonds the page opens at: least Eq. (4) bound with ρ <= ``ratio`` (full bonds if those are smaller)."""
    if mpo_core.compression_ratio(mpo.shape, mpo.full_bond_dims) <= ratio:
        return tuple(mpo.full_bond_dims)
    return mpo_core.bond_dims_for_ratio(mpo, ratio)


def _percent(x: float) -> str:
    return f"{100 * x:.3g} %"


BOUND_HELP = (
    "√(Σ ε_k²) ≥ ‖M − M′‖_F, from the cached spectra. The bound adds the bonds' errors as if each were cut "
    "from the exact matrix, so at hard cuts it can exceed ‖M‖ (over 100 %), while the true error of a "
    "truncation stays below it."
)


BOUND_OVER_NOTE = (
    "The Eq. (4) bound passes 100 % here because it adds every bond's discarded energy as if each cut were made "
    "alone, which over-counts at deep cuts; the true error is measured on the matrix itself."
)


def bound_note(relative_bound: float) -> str | None:
    """A sentence for the page when the relative Eq. (4) bound is over 100 % (else ``None``)."""
    return BOUND_OVER_NOTE if relative_bound > 1 else None


def metric_rows(summary: LiveSummary, exact: TrueError | None = None) -> list[tuple[str, str, str]]:
    """The page's numbers as ``(label, value, help)`` rows: five error figures, then the parameter split.

    Without ``exact`` the true error shows as "…" (it fills in once computed). A true error below
    :data:`FLOAT_NOISE` of ‖M‖ is float32 rounding of the contraction and shows as "≈ 0".
    """
    if exact is None:
        true_abs = true_rel = "…"
        true_help = "Recomputed: truncate, contract, compare (fills in once computed)."
    elif exact.relative < FLOAT_NOISE:
        true_abs = true_rel = "≈ 0"
        true_help = (f"{exact.absolute:.2g} ({_percent(exact.relative)}): float32 rounding of the contraction; "
                     "nothing was cut.")
    else:
        true_abs, true_rel = f"{exact.absolute:.4g}", _percent(exact.relative)
        true_help = "Recomputed: truncate, contract, compare."
    split = summary.split
    rows = [
        ("Ratio ρ (Eq. 5)", f"{summary.compression_ratio:.4f}",
         "MPO parameters / matrix entries; ρ > 1 means the MPO is larger than the matrix."),
        ("Error bound (Eq. 4)", f"{summary.error_bound:.4g}", BOUND_HELP),
        ("Bound, relative", _percent(summary.relative_error_bound), "Eq. (4) bound / ‖M‖_F. " + BOUND_HELP),
        ("True error ‖M − M′‖", true_abs, true_help),
        ("True error, relative", true_rel, "‖M − M′‖_F / ‖M‖_F. " + true_help),
        ("Params, central tensor", f"{split.central:,}", "The middle tensor C: frozen in MPOP's fine-tuning."),
        ("Params, auxiliary", f"{split.auxiliary:,}",
         f"{_percent(split.auxiliary_share)} of the MPO: the outer tensors MPOP fine-tunes."),
        ("Params, MPO total", f"{split.total:,}", ""),
        ("Params, dense matrix", f"{split.matrix:,}", ""),
    ]
    if summary.effective_bond_dims != summary.bond_dims:
        rows.append(("Effective d′ₖ", ",".join(map(str, summary.effective_bond_dims)),
                     "A bond can be no larger than the product of the legs on either side: these were clipped."))
    return rows


def error_image(matrix: torch.Tensor, reconstruction: np.ndarray) -> np.ndarray:
    """|M − M′| scaled to [0, 1] by its largest entry (all zeros stay black)."""
    diff = np.abs(matrix.float().numpy() - reconstruction)
    top = float(diff.max()) if diff.size else 0.0
    return diff / top if top > 0 else diff


def bond_table(mpo: MPO, summary: LiveSummary, exact: TrueError | None = None) -> pd.DataFrame:
    """Per bond: dims, local error and entropies, for a table under the figures."""
    table = pd.DataFrame(
        {
            "bond k": range(1, mpo.n),
            "full d_k (Eq. 2)": mpo.full_bond_dims,
            "chosen d'_k": summary.bond_dims,
            "effective d'_k": summary.effective_bond_dims,
            "eps_k (Eq. 3)": summary.local_errors,
            "S_k full (Eq. 6)": summary.full_entropies,
            "S_k kept, from spectra": summary.entropies,
        }
    )
    if exact is not None:
        table["S_k after truncation (exact)"] = exact.entropies
    return table.set_index("bond k")


# --------------------------------------------------------------------------- figures
def _tick_text(value: float, plain: bool) -> str:
    """``0.05``, ``20`` as written when ``plain``; else ``2·10⁵``-style (plotly's own log labels are powers only)."""
    if plain:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10**exponent)
    power = f"10<sup>{exponent}</sup>".replace("-", "−")
    return power if mantissa == 1 else f"{mantissa}·{power}"


def log_ticks(low: float, high: float) -> dict:
    """``tickvals`` / ``ticktext`` for a log axis over ``[low, high]``.

    At 1, 2, 5 of each decade when the data span up to three decades, at each decade up to six, at every
    other one beyond; numbers written out between 0.001 and 10⁵, powers of ten otherwise (one style per axis).
    ``{}`` (plotly's defaults) without a positive range.
    """
    if not (0 < low <= high < math.inf):
        return {}
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    span = last - first
    steps, every = ((1, 2, 5), 1) if span <= 3 else ((1,), 1 if span <= 6 else 2)
    values = [m * 10.0**e for e in range(first, last + 1) if (e - first) % every == 0 for m in steps]
    if sum(low <= v <= high for v in values) < 3:  # within about a decade: every digit
        values = [m * 10.0**e for e in range(first, last + 1) for m in range(1, 10)]
    inside = [v for v in values if low / 1.5 <= v <= high * 1.5]  # plotly pads the range a little
    plain = all(1e-3 <= v < 1e5 for v in inside)
    return {"tickvals": inside, "ticktext": [_tick_text(v, plain) for v in inside]}


def _bond_labels(count: int) -> list[str]:
    return [f"k={k + 1}" for k in range(count)]


def entropy_figure(summary: LiveSummary, exact_entropies: Sequence[float] | None = None) -> go.Figure:
    """Bars of ``S_k`` (Eq. (6)) per bond: full ``d_k`` vs chosen ``d'_k``, with ``ln d'_k``."""
    bonds = _bond_labels(len(summary.bond_dims))
    fig = go.Figure()
    fig.add_bar(x=bonds, y=summary.full_entropies, name="full d<sub>k</sub>", marker_color=FULL_COLOR)
    fig.add_bar(x=bonds, y=summary.entropies, name="kept λ<sub>k,1..d'k</sub>", marker_color=AUXILIARY_COLOR)
    if exact_entropies is not None:
        fig.add_bar(x=bonds, y=list(exact_entropies), name="after truncation (exact)", marker_color=CENTRAL_COLOR)
    fig.add_scatter(
        x=bonds,
        y=[math.log(d) for d in summary.effective_bond_dims],
        mode="markers",
        marker={"symbol": "line-ew-open", "size": 28, "line": {"width": 2}, "color": "black"},
        name="ln d'<sub>k</sub> (maximum)",
    )
    fig.update_layout(
        title="Entanglement entropy per bond, Eq. (6)",
        barmode="group",
        xaxis_title="bond k (between T<sub>k</sub> and T<sub>k+1</sub>)",
        yaxis_title="S<sub>k</sub> (nats), Eq. (6)",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def spectra_figure(mpo: MPO, bond_dims: Sequence[int]) -> go.Figure:
    """Schmidt values of every bond (log-log), dashed at the chosen ``d'_k``: the rest is discarded (Eq. (3))."""
    fig = go.Figure()
    positive = [s[s > 0].double().numpy() for s in mpo.singular_values]
    low = min((p.min() for p in positive if p.size), default=1e-12)
    high = max((p.max() for p in positive if p.size), default=1.0)
    for k, (s, d) in enumerate(zip(mpo.singular_values, bond_dims)):
        color = BOND_COLORS[k % len(BOND_COLORS)]
        values = s.double().numpy()
        values = np.where(values > 0, values, np.nan)  # log axis: zeros are not drawn
        fig.add_scatter(
            x=np.arange(1, values.size + 1),
            y=values,
            mode="lines",
            line={"color": color},
            name=f"bond {k + 1}: d'={d} of {values.size}",
            legendgroup=str(k),
        )
        fig.add_scatter(  # the cut: a trace, not a shape, so it sits right on the log axes
            x=[d, d], y=[low, high], mode="lines", line={"color": color, "dash": "dash", "width": 1},
            legendgroup=str(k), showlegend=False, hoverinfo="skip",
        )
    longest = max((s.numel() for s in mpo.singular_values), default=1)
    fig.update_layout(
        title="Singular-value spectra per bond, Eq. (3): dashed at d'<sub>k</sub>, values right of it are cut",
        xaxis={"title": "index i (log scale)", "type": "log", **log_ticks(1, longest)},
        yaxis={"title": "Schmidt values λ<sub>k,i</sub> (log scale)", "type": "log", **log_ticks(low, high)},
    )
    return fig


def parameter_figure(summary: LiveSummary) -> go.Figure:
    """Central vs auxiliary parameters (numerator of Eq. (5)) at full and chosen bonds, with the dense matrix."""
    groups = ["central tensor C", "auxiliary tensors", "total"]
    full, chosen = summary.full_split, summary.split
    fig = go.Figure()
    for name, split, color in (("full d<sub>k</sub>", full, FULL_COLOR), ("chosen d'<sub>k</sub>", chosen, CENTRAL_COLOR)):
        counts = [split.central, split.auxiliary, split.total]
        fig.add_bar(x=groups, y=counts, name=name, marker_color=color, text=[f"{c:,}" for c in counts])
    fig.add_bar(x=["total"], y=[chosen.matrix], name="dense matrix", marker_color=AUXILIARY_COLOR, text=[f"{chosen.matrix:,}"])
    fig.update_layout(
        title=f"Parameters: central vs auxiliary (Eq. (5): ρ = {chosen.compression_ratio:.4f})",
        barmode="group",
        yaxis={"title": "parameters (count, log scale)", **LOG_AXIS},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _link_label(k: int, chosen: int, effective: int, full: int) -> str:
    label = f"d'<sub>{k + 1}</sub>={chosen} [{full}]"
    return label if effective == chosen else f"{label} → {effective}"


def chain_figure(mpo: MPO, bond_dims: Sequence[int]) -> go.Figure:
    """The MPO chain at a glance (Eq. (1)): boxes T_k, legs i_k/j_k, links d'_k [d_k]."""
    shape, n, center = mpo.shape, mpo.n, mpo.center
    dims = tuple(int(d) for d in bond_dims)
    effective = mpo_core.clip_bond_dims(shape, dims)
    bonds = (1, *effective, 1)
    gap, half = 3.0, 0.7  # box centres 3 apart, boxes 1.4 wide
    widest = max(math.log(max(shape.full_bond_dims)), 1.0)
    fig = go.Figure()
    for k in range(n - 1):  # links first, so the boxes cover their ends
        x0, x1 = k * gap + half, (k + 1) * gap - half
        width = 1 + 5 * math.log(max(effective[k], 1)) / widest  # thicker = wider bond
        fig.add_shape(type="line", x0=x0, x1=x1, y0=0, y1=0, line={"width": width, "color": "#555"})
        fig.add_annotation(
            x=(x0 + x1) / 2, y=0.32, showarrow=False, font={"size": 12},
            text=_link_label(k, dims[k], effective[k], shape.full_bond_dims[k]),
        )
    hover = []
    for k in range(n):
        x = k * gap
        color = CENTRAL_COLOR if k == center else AUXILIARY_COLOR
        fig.add_shape(type="line", x0=x, x1=x, y0=0.5, y1=1.1, line={"color": "#555"})  # i_k leg
        fig.add_shape(type="line", x0=x, x1=x, y0=-0.5, y1=-1.1, line={"color": "#555"})  # j_k leg
        fig.add_shape(type="rect", x0=x - half, x1=x + half, y0=-0.5, y1=0.5, fillcolor=color, line={"color": "#333"})
        name = f"T<sub>{k + 1}</sub>" + (" = C" if k == center else "")
        fig.add_annotation(x=x, y=0, text=f"<b>{name}</b>", showarrow=False, font={"color": "white", "size": 14})
        fig.add_annotation(x=x, y=1.3, text=f"i<sub>{k + 1}</sub>={shape.out_factors[k]}", showarrow=False)
        fig.add_annotation(x=x, y=-1.3, text=f"j<sub>{k + 1}</sub>={shape.in_factors[k]}", showarrow=False)
        size = (bonds[k], shape.out_factors[k], shape.in_factors[k], bonds[k + 1])
        role = "central" if k == center else "auxiliary"
        hover.append(f"T_{k + 1} ({role}): [d'_{k}, i_{k + 1}, j_{k + 1}, d'_{k + 1}] = {list(size)}, {math.prod(size):,} params")
    fig.add_scatter(  # invisible markers carry the hover text of each box
        x=[k * gap for k in range(n)], y=[0] * n, mode="markers", marker={"size": 40, "opacity": 0},
        hovertext=hover, hoverinfo="text", showlegend=False,
    )
    fig.update_xaxes(visible=False, range=[-gap / 2, (n - 1) * gap + gap / 2])
    fig.update_yaxes(visible=False, range=[-1.7, 1.7])
    fig.update_layout(
        title="MPO chain, Eq. (1): T<sub>k</sub>[d'<sub>k-1</sub>, i<sub>k</sub>, j<sub>k</sub>, d'<sub>k</sub>]; "
        "central tensor in orange, full d<sub>k</sub> (Eq. (2)) in brackets",
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig
