"""Back end of the "Compare methods" page: Figure 2 of MPOP (ACL 2021), cached on disk.

Reconstruction error against compression ratio (``rho``, Eq. (5)) for the MPO
at several ``n``, the truncated SVD, CPD and Tucker, all computed by
:func:`mpo_core.tensor.baselines.error_vs_ratio`. Plain Python (no ``streamlit``
import), so it is unit-tested directly. One figure is a set of *curves*, one
per ``(method, n)``; each curve is cached on its own, so adding a method, or a
computation stopped half-way, keeps what is already done::

    CompareSettings --curves()--> Curve("mpo", 3), Curve("mpo", 5), ..., Curve("cpd", 7)
                                     |
    curve_key(settings, curve, fingerprint)     hash of what the numbers depend on:
                                     |          the matrix (shape + checksum), method,
                                     v          n, ratios, and that method's options
    <cache>/<key>.csv    the rows of error_vs_ratio (COLUMNS), one per ratio
    <cache>/<key>.json   its settings, matrix, when and how long: written last,
                         so a curve without it was never finished and is ignored

Costs differ by orders of magnitude (the MPO and SVD curves of the 30522x384
word embedding take seconds, its CPD takes many minutes), so
:func:`plan_curves` estimates each missing curve: cheap ones are computed in
the page run (kept in memory), expensive ones wait for a "Compute" click and
run in a :class:`ComputeTask` thread that writes each curve as it finishes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from app import decompose
from mpo_core.tensor.baselines import (
    COLUMNS, DEFAULT_MAX_BYTES, DEFAULT_N_ITER_MAX, DEFAULT_N_VALUES, DEFAULT_TOL, METHODS, cpd_memory_bytes, cpd_rank,
    error_vs_ratio, param_budget, tucker_ranks,
)
from mpo_core.runs.atomic_write import atomic_write_json, atomic_write_text
from mpo_core.tensor.shape import plan_shape
from mpo_core.tensor.validation import check_choice, check_fraction, check_positive_int

ROOT = Path(__file__).resolve().parents[1]
CACHE_SUBDIR = "compare"
CACHE_VERSION = 1  # bump when the stored numbers would change meaning
DEFAULT_RATIOS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
# The page opens on the first rows of a matrix, as panel (a) of the stored Figure 2 run: the MPO and SVD
# curves then take about a second each, CPD minutes instead of hours.
DEFAULT_MAX_ROWS = 4096
N_CHOICES = tuple(range(2, 10))
MATRIX_KINDS = ("model", "random")  # an upload has no stable name to show beside a cached curve
# The server's cap on the CPD memory budget: whoever starts the dashboard sets it (this variable, in GiB), a
# page's user can only lower it. The page's input is bounded by it and CompareSettings refuses more.
CPD_MEMORY_CAP_ENV = "MPO_CPD_MEMORY_CAP_GIB"


def cpd_memory_cap(environ=None) -> int:
    """The server's cap on the CPD memory budget in bytes: ``$MPO_CPD_MEMORY_CAP_GIB``, else ``DEFAULT_MAX_BYTES``.

    Read from the server's environment (where ``streamlit run`` was started), never from a page.
    """
    text = (os.environ if environ is None else environ).get(CPD_MEMORY_CAP_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and 2**-10 <= gib <= 2**20):
        raise ValueError(f"{CPD_MEMORY_CAP_ENV} must be a number of GiB between 0.001 and 1048576 (the server's "
                         f"cap on the CPD memory budget), got {text[:40]!r}; fix it where the dashboard is started.")
    return int(gib * 2**30)
# A page run computes missing curves itself only while their estimate stays under this;
# read at call time (not bound as a default), so tests and deployments can change it.
LIVE_SECONDS = 3.0
# Work units (~flops, see _work) per second, per (method, n), for the estimates of plan_curves: measured by
# benchmarks/bench_compare_estimates.py on the packaged embedding (2-core CPU, torch's default threads;
# results/bench/compare_estimates_cpu.json). Curves this machine has computed replace them (measured_speeds).
WORK_PER_SECOND = {("svd", 2): 1.1e10, ("mpo", 3): 1.3e10, ("mpo", 5): 5.4e09, ("mpo", 7): 1.1e09,
                   ("tucker", 3): 1.9e09, ("tucker", 5): 1.8e09, ("tucker", 7): 1.7e09, ("cpd", 3): 4.7e10,
                   ("cpd", 5): 2e10}

Progress = Callable[[int, int, str], None]

METHOD_LABELS = {"mpo": "MPO", "svd": "SVD", "cpd": "CPD", "tucker": "Tucker"}
# One hue per method (MPO in the orange of the central tensor, as on the Decompose page);
# n is told apart by dash, marker and shade, so MPO n=3/5/7 read apart even in grey.
METHOD_COLORS = {
    "mpo": ("#f58518", "#c0600a", "#ffbf79", "#8a4306", "#f9a65a"),
    "svd": ("#333333",),
    "cpd": ("#4c78a8", "#2c5585", "#9ecae9", "#1b3a5c", "#72a1cf"),
    "tucker": ("#54a24b", "#367a2f", "#a6d99a", "#22501e", "#88c57d"),
}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "pentagon")
ERROR_COLUMNS = {
    "relative_error": "relative error ‖M − M′‖<sub>F</sub> / ‖M‖<sub>F</sub>",
    "error": "reconstruction error ‖M − M′‖<sub>F</sub> (Frobenius norm)",
}


class Cancelled(Exception):
    """Raised from the progress callback when a :class:`ComputeTask` is asked to stop."""


# --------------------------------------------------------------------------- settings
def parse_ratios(text: str) -> tuple[float, ...]:
    """``"0.05, 0.1 0.2"`` -> ``(0.05, 0.1, 0.2)``: target compression ratios in (0, 1]."""
    parts = [p for p in str(text).replace(";", ",").replace(",", " ").split() if p]
    if not parts:
        raise ValueError("no compression ratios given; write numbers in (0, 1] separated by commas, e.g. 0.1, 0.2.")
    ratios = []
    for part in parts:
        try:
            ratios.append(float(part))
        except ValueError:
            raise ValueError(f"ratio {part!r} is not a number; write numbers in (0, 1], e.g. 0.1, 0.2.") from None
    return tuple(ratios)


def format_ratios(ratios: Sequence[float]) -> str:
    return ", ".join(f"{r:g}" for r in ratios)


@dataclass(frozen=True)
class CompareSettings:
    """What one Figure 2 is computed from; frozen and hashable, so it keys the page caches."""

    source: decompose.MatrixSource = decompose.MatrixSource()  # the matrix: a packaged weight or a random one
    max_rows: int = 0  # keep only the first rows of the matrix (0 = all); makes CPD on the embedding feasible
    ratios: tuple[float, ...] = DEFAULT_RATIOS  # target compression ratios rho (Eq. 5), sorted on creation
    methods: tuple[str, ...] = METHODS  # a selection of "mpo", "svd", "cpd", "tucker"
    n_values: tuple[int, ...] = DEFAULT_N_VALUES  # local tensors n of the MPO, CPD and Tucker curves
    n_iter_max: int = DEFAULT_N_ITER_MAX  # CPD (ALS) / Tucker (HOOI) iterations
    tol: float = DEFAULT_TOL  # CPD / Tucker convergence tolerance
    random_state: int = 0  # CPD / Tucker seed (SVD initialization's random columns)
    max_bytes: int | None = None  # CPD memory budget; larger points are skipped, not run (None: the default,
    # DEFAULT_MAX_BYTES or the server's cap if lower); never above the server's cap, cpd_memory_cap()

    def __post_init__(self):
        if self.source.kind not in MATRIX_KINDS:
            raise ValueError(
                f"compare a packaged weight or a random matrix (kinds {MATRIX_KINDS}), not {self.source.kind!r}."
            )
        check_positive_int("max_rows (0 keeps every row)", self.max_rows, minimum=0)
        if not self.ratios:
            raise ValueError("ratios must be compression ratios in (0, 1], e.g. 0.1, 0.2; got none.")
        ratios = tuple(sorted({check_fraction("each compression ratio", r) for r in self.ratios}))
        methods = tuple(dict.fromkeys(self.methods))
        if not methods or any(m not in METHODS for m in methods):
            raise ValueError(f"methods must be a non-empty selection of {METHODS}, got {self.methods}.")
        n_values = tuple(sorted(set(self.n_values)))
        for n in n_values:
            check_choice("n values (local tensors)", check_positive_int("n values (local tensors)", n), N_CHOICES)
        if not n_values and set(methods) != {"svd"}:
            raise ValueError("no n selected; choose numbers of local tensors, e.g. 3, 5, 7 (or only the SVD).")
        check_positive_int("n_iter_max", self.n_iter_max)
        cap = cpd_memory_cap()
        max_bytes = min(DEFAULT_MAX_BYTES, cap) if self.max_bytes is None else self.max_bytes
        if not (self.tol >= 0 and isinstance(max_bytes, int) and max_bytes > 0):
            raise ValueError(f"tol must be >= 0 and max_bytes > 0, got tol={self.tol}, max_bytes={max_bytes}.")
        if max_bytes > cap:
            raise ValueError(f"the CPD memory budget is at most the server's cap of {cap / 2**30:.3g} GiB "
                             f"(set by {CPD_MEMORY_CAP_ENV} where the dashboard is started), got "
                             f"{max_bytes / 2**30:.3g} GiB; choose a smaller budget.")
        object.__setattr__(self, "max_bytes", max_bytes)
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "n_values", n_values)

    @property
    def label(self) -> str:
        rows = f", first {self.max_rows} rows" if self.max_rows else ""
        return f"{self.source.label}{rows}"

    def options(self, method: str) -> dict:
        """The iteration options a curve of ``method`` depends on (none for the MPO and SVD)."""
        if method == "cpd":
            return {"n_iter_max": self.n_iter_max, "tol": self.tol, "random_state": self.random_state,
                    "max_bytes": self.max_bytes}
        if method == "tucker":
            return {"n_iter_max": self.n_iter_max, "tol": self.tol, "random_state": self.random_state}
        return {}


@dataclass(frozen=True)
class Curve:
    """One curve of the figure: a method at one number of local tensors ``n`` (2 for the SVD)."""

    method: str
    n: int

    @property
    def label(self) -> str:
        return "SVD" if self.method == "svd" else f"{METHOD_LABELS[self.method]} n={self.n}"


def curves(settings: CompareSettings) -> tuple[Curve, ...]:
    """The curves of ``settings``: the SVD once, the others once per ``n`` (an n=2 MPO is the SVD)."""
    found: list[Curve] = []
    for method in settings.methods:
        for n in (2,) if method == "svd" else settings.n_values:
            curve = Curve("svd", 2) if method in ("svd", "mpo") and n == 2 else Curve(method, n)
            if curve not in found:
                found.append(curve)
    return tuple(found)


# --------------------------------------------------------------------------- matrix
def load_matrix(source: decompose.MatrixSource, max_rows: int = 0) -> torch.Tensor:
    """The float32 matrix of ``source`` (a packaged weight or a seeded random one), cropped to ``max_rows``."""
    matrix = decompose.load_matrix(source)
    if max_rows and max_rows < matrix.shape[0]:
        matrix = matrix[:max_rows].contiguous()  # (max_rows, in_features)
    return matrix


def fingerprint(matrix: torch.Tensor) -> str:
    """``"<rows>x<cols>-<dtype>-<sha256 prefix>"``: names the matrix's exact values, whatever its source."""
    data = np.ascontiguousarray(matrix.detach().cpu().numpy())
    digest = hashlib.sha256(data.data).hexdigest()[:20]
    rows, cols = data.shape
    return f"{rows}x{cols}-{data.dtype}-{digest}"


# --------------------------------------------------------------------------- cache keys
def _hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def curve_settings(settings: CompareSettings, curve: Curve, matrix_fingerprint: str) -> dict:
    """Everything the numbers of one curve depend on (JSON-able); its hash is :func:`curve_key`."""
    return {
        "version": CACHE_VERSION, "matrix": matrix_fingerprint, "method": curve.method, "n": curve.n,
        "ratios": list(settings.ratios), "options": settings.options(curve.method),
    }


def curve_key(settings: CompareSettings, curve: Curve, matrix_fingerprint: str) -> str:
    """Stable cache key of one curve: the same numbers, the same key, in any process."""
    return f"{curve.method}-n{curve.n}-{_hash(curve_settings(settings, curve, matrix_fingerprint))}"


def cache_key(settings: CompareSettings, matrix_fingerprint: str) -> str:
    """Stable key of a whole figure: the keys of its curves (the matrix's name does not matter, its values do)."""
    return _hash({"curves": [curve_key(settings, c, matrix_fingerprint) for c in curves(settings)]})


def cache_dir() -> Path:
    """``$MPO_CACHE_DIR/compare``, or ``<repo>/cache/compare`` without that variable."""
    root = os.environ.get("MPO_CACHE_DIR") or str(ROOT / "cache")
    return Path(root) / CACHE_SUBDIR


# --------------------------------------------------------------------------- disk cache
TEXT_COLUMNS = ("method", "ranks", "skipped_reason")
FRAME_DTYPES = {
    "method": str, "n": int, "target_ratio": float, "ranks": str, "num_params": "Int64",
    "compression_ratio": float, "error": float, "relative_error": float, "error_bound": float,
    "seconds": float, "skipped_reason": str,
}


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`error_vs_ratio` with one dtype per column, the same fresh or read back from CSV.

    ``ranks`` become text like ``"18,504,8"``; a computed point has ``skipped_reason == ""``.
    """
    frame = frame.loc[:, list(COLUMNS)].copy()
    frame["ranks"] = [r if isinstance(r, str) else "" if r is None or r != r else ",".join(map(str, r))
                      for r in frame["ranks"]]
    frame["skipped_reason"] = frame["skipped_reason"].fillna("")
    for column in ("error", "relative_error", "error_bound", "compression_ratio", "seconds", "num_params"):
        frame[column] = pd.to_numeric(frame[column])
    return frame.astype(FRAME_DTYPES).reset_index(drop=True)


def _paths(folder, key: str) -> tuple[Path, Path]:
    return Path(folder) / f"{key}.csv", Path(folder) / f"{key}.json"


def save_curve(folder, key: str, frame: pd.DataFrame, meta: dict) -> None:
    """Store one finished curve: its rows (CSV), then its settings (JSON), each atomically.

    The JSON is written last and marks the curve complete: a crash in between
    leaves a CSV that :func:`load_curve` ignores and the next save replaces.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = _paths(folder, key)
    atomic_write_text(csv_path, tidy(frame).to_csv(index=False))
    atomic_write_json(json_path, meta, indent=1, sort_keys=True)


def load_meta(folder, key: str) -> dict | None:
    """The settings JSON of a finished cached curve, or ``None`` (absent, unfinished or unreadable)."""
    csv_path, json_path = _paths(folder, key)
    if not (json_path.is_file() and csv_path.is_file()):
        return None
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_curve(folder, key: str) -> pd.DataFrame | None:
    """The rows of a finished cached curve, or ``None``."""
    if load_meta(folder, key) is None:
        return None
    try:
        numbers = [c for c in COLUMNS if c not in TEXT_COLUMNS]
        frame = pd.read_csv(  # floats round-trip exactly; an empty text cell stays "", an empty number is NaN
            _paths(folder, key)[0], keep_default_na=False, dtype=dict.fromkeys(TEXT_COLUMNS, str),
            na_values=dict.fromkeys(numbers, [""]),
        )
        return tidy(frame)
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None


# --------------------------------------------------------------------------- computing
def compute_curve(
    matrix: torch.Tensor, settings: CompareSettings, curve: Curve, progress: Progress | None = None
) -> pd.DataFrame:
    """The rows of one curve, one per ratio (infeasible points have ``skipped_reason``)."""
    frame = error_vs_ratio(
        matrix, settings.ratios, methods=(curve.method,), n_values=(curve.n,), progress=progress,
        **{"random_state": settings.random_state, **settings.options(curve.method)},
    )
    return tidy(frame)


def _meta(settings: CompareSettings, curve: Curve, matrix_fingerprint: str, seconds: float,
          matrix_shape: tuple[int, int]) -> dict:
    return {
        **curve_settings(settings, curve, matrix_fingerprint),
        "label": curve.label, "matrix_label": settings.label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "compute_seconds": round(seconds, 3),
        "work": _work(curve, plan_shape(*matrix_shape, n=curve.n), settings), "torch": torch.__version__,
    }


@dataclass(frozen=True)
class Comparison:
    """The rows of every curve of a figure, with where each curve came from."""

    frame: pd.DataFrame  # tidy rows of every curve, curve by curve
    loaded: tuple[Curve, ...]  # read from the disk cache
    computed: tuple[Curve, ...]  # computed now (and written to the cache)


def compute_or_load(
    settings: CompareSettings,
    progress: Progress | None = None,
    *,
    matrix: torch.Tensor | None = None,
    folder=None,
    only: Sequence[Curve] | None = None,
) -> Comparison:
    """Every curve of ``settings`` from the disk cache, computing and saving the missing ones.

    Parameters
    ----------
    settings:
        The figure to produce.
    progress:
        Optional ``progress(done, total, label)`` over all points of all curves;
        a cached curve counts as done at once. Raising from it (``Cancelled``)
        stops the work: curves finished before stay cached, the current one is lost.
    matrix:
        The matrix of ``settings`` if already loaded (else :func:`load_matrix`).
    folder:
        Cache folder (default :func:`cache_dir`).
    only:
        Restrict to these curves (default all of :func:`curves`).
    """
    matrix = load_matrix(settings.source, settings.max_rows) if matrix is None else matrix
    folder = cache_dir() if folder is None else Path(folder)
    matrix_print = fingerprint(matrix)
    todo = curves(settings) if only is None else tuple(only)
    per_curve, total = len(settings.ratios), len(todo) * len(settings.ratios)
    frames, loaded, computed = [], [], []
    for index, curve in enumerate(todo):
        offset, key = index * per_curve, curve_key(settings, curve, matrix_print)
        frame = load_curve(folder, key)
        if frame is None:
            start = time.perf_counter()
            inner = None if progress is None else (lambda d, _t, label, o=offset: progress(o + d, total, label))
            frame = compute_curve(matrix, settings, curve, inner)
            save_curve(folder, key, frame, _meta(settings, curve, matrix_print, time.perf_counter() - start,
                                                        tuple(matrix.shape)))
            computed.append(curve)
        else:
            loaded.append(curve)
            if progress is not None:
                progress(offset + per_curve, total, f"{curve.label}: from the cache")
        frames.append(frame)
    return Comparison(pd.concat(frames, ignore_index=True), tuple(loaded), tuple(computed))


# --------------------------------------------------------------------------- live or on demand
def _work(curve: Curve, shape, settings: CompareSettings) -> float:
    """Rough work units (~flops) of one curve; points that will be skipped cost nothing."""
    rows, cols = shape.out_features, shape.in_features
    if curve.method in ("mpo", "svd"):  # one decomposition (sequential SVDs), then a contraction per ratio
        return (2 + len(settings.ratios)) * rows * cols * min(rows, cols)
    size = math.prod(shape.local_dims)
    if curve.method == "cpd":  # ALS, every iteration (tol rarely stops it early on real weights), per mode:
        ranks = [cpd_rank(shape, r) for r in settings.ratios]  # MTTKRP, Khatri-Rao product, Gram matrices, solve
        ranks = [r for r in ranks if r >= 1 and cpd_memory_bytes(shape.local_dims, r) <= settings.max_bytes]
        dims = shape.local_dims
        return settings.n_iter_max * sum(
            2 * size * r + size / d * r + r * r * sum(dims) + r ** 3 for r in ranks for d in dims)
    # Tucker (HOOI): SVD initialization of every unfolding, then per mode a contraction and an SVD;
    # it converges in few sweeps, so at most 10 are counted.
    sweeps, total = min(settings.n_iter_max, 10), 0.0
    for ratio in settings.ratios:
        ranks = tucker_ranks(shape.local_dims, param_budget(shape, ratio))
        if ranks is not None:
            total += size * sum(shape.local_dims) + sweeps * shape.n * 2 * size * max(ranks)
    return total


def speed(curve: Curve, measured: dict | None = None) -> tuple[float, str]:
    """Work units per second for ``curve`` and where the figure comes from.

    The first that exists: a curve of the same method and n computed on this machine
    (``measured``, see :func:`measured_speeds`), the benchmark's figure for the method and n,
    the benchmark's median for the method.
    """
    key = (curve.method, curve.n)
    if measured and key in measured:
        return measured[key], "measured on this machine"
    if key in WORK_PER_SECOND:
        return WORK_PER_SECOND[key], "benchmark, 2-core CPU"
    same = sorted(v for (method, _n), v in WORK_PER_SECOND.items() if method == curve.method)
    return same[len(same) // 2], "benchmark, 2-core CPU, other n"


def estimate_seconds(settings: CompareSettings, curve: Curve, matrix_shape: tuple[int, int],
                     measured: dict | None = None) -> float:
    """Seconds one curve is expected to take: its work units over the measured speed (see :func:`speed`)."""
    shape = plan_shape(*matrix_shape, n=curve.n)
    return _work(curve, shape, settings) / speed(curve, measured)[0]


def measured_speeds(folder, min_seconds: float = 1.0) -> dict[tuple[str, int], float]:
    """``{(method, n): work units per second}`` of the curves computed on this machine (median per key).

    Read from the cache's JSON files (each finished curve records its work units and
    seconds); curves under ``min_seconds`` are left out (their time is mostly overhead).
    """
    found: dict[tuple[str, int], list[float]] = {}
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else ():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            work, seconds, key = float(meta["work"]), float(meta["compute_seconds"]), (meta["method"], int(meta["n"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if seconds >= min_seconds and work > 0:
            found.setdefault(key, []).append(work / seconds)
    return {key: sorted(v)[len(v) // 2] for key, v in found.items()}


@dataclass(frozen=True)
class CurvePlan:
    """What the page does with one curve: read it, compute it now, or offer to compute it."""

    curve: Curve
    key: str
    meta: dict | None  # the cached curve's settings JSON; None when not (readably) on disk
    seconds: float  # estimate of computing it (see estimate_seconds)
    basis: str = ""  # where the estimate's speed comes from (see speed)
    live: bool = False  # not cached and cheap: computed in the page run
    frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # the cached rows

    @property
    def cached(self) -> bool:
        return self.meta is not None


def plan_curves(settings: CompareSettings, matrix_shape, matrix_fingerprint: str, folder,
                live_seconds: float | None = None) -> tuple[CurvePlan, ...]:
    """Each curve of ``settings``: cached on disk (read here: a few small files), live (cheap), or on demand.

    Curves count as live, cheapest first, while their estimates add up to
    ``live_seconds`` (default :data:`LIVE_SECONDS`), so one page run stays short.
    A cached curve whose CSV cannot be read counts as missing (recomputing overwrites it).
    """
    budget = LIVE_SECONDS if live_seconds is None else live_seconds
    rows, cols = matrix_shape
    measured = measured_speeds(folder)
    plans = []
    for curve in curves(settings):
        key = curve_key(settings, curve, matrix_fingerprint)
        frame = load_curve(folder, key)
        meta = load_meta(folder, key) if frame is not None else None
        seconds = estimate_seconds(settings, curve, (rows, cols), measured)
        plans.append(CurvePlan(curve, key, meta, seconds, speed(curve, measured)[1], frame=frame))
    spent = 0.0
    for plan in sorted((p for p in plans if not p.cached), key=lambda p: p.seconds):
        if spent + plan.seconds > budget:
            break
        spent += plan.seconds
        plans[plans.index(plan)] = replace(plan, live=True)
    return tuple(plans)


def pending(plans: Sequence[CurvePlan]) -> tuple[CurvePlan, ...]:
    """The curves that wait for a "Compute" click."""
    return tuple(p for p in plans if not p.cached and not p.live)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_cached(meta: dict) -> str:
    """``"cached 2025-01-01 12:00 UTC (took 3 s); ratios ...; options ..."`` for a caption."""
    created = meta.get("created", "?").replace("T", " ").replace("+00:00", " UTC")
    options = ", ".join(f"{k}={v}" for k, v in sorted(meta.get("options", {}).items()))
    return (
        f"**{meta.get('label', '?')}**: cached {created} (took {format_seconds(meta.get('compute_seconds', 0))}); "
        f"matrix {meta.get('matrix', '?')}; ratios {format_ratios(meta.get('ratios', []))}"
        + (f"; {options}" if options else "")
    )


def describe_cache_summary(metas: Sequence[dict], curve_count: int) -> str:
    """One line over the cached curves of a figure: how many, when, on which settings."""
    created = sorted(m.get("created", "?").replace("T", " ").replace("+00:00", " UTC") for m in metas)
    when = created[0] if created[0] == created[-1] else f"{created[0]} to {created[-1]}"
    ratios = " | ".join(format_ratios(r) for r in sorted({tuple(m.get("ratios", ())) for m in metas}))
    return (f"{len(metas)} of {curve_count} curves from the disk cache, cached {when}; "
            f"matrix {metas[0].get('matrix')}, ratios {ratios} (each curve's settings below).")


# --------------------------------------------------------------------------- background task
@dataclass
class ComputeTask:
    """:func:`compute_or_load` of some curves in a daemon thread, polled by the page.

    The thread touches no page state: it writes finished curves to the cache
    folder and its own counters here, which any page run can read.
    """

    settings: CompareSettings
    matrix: torch.Tensor = field(repr=False)
    folder: Path
    only: tuple[Curve, ...]
    done: int = 0  # points finished (cached curves included)
    total: int = 0
    label: str = "starting"
    curves_done: int = 0  # curves finished and written
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    estimates: tuple[float, ...] = ()  # estimated seconds of each curve of ``only`` (see estimate_seconds)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> "ComputeTask":
        self.total = len(self.only) * len(self.settings.ratios)
        self._thread = threading.Thread(target=self._run, name="compare-compute", daemon=True)
        self._thread.start()
        return self

    def _progress(self, done: int, label: str) -> None:
        self.done, self.label = done, label
        if self._cancel.is_set():
            raise Cancelled("stopped on request")

    def _run(self) -> None:
        per_curve = len(self.settings.ratios)
        try:
            for index, curve in enumerate(self.only):  # one at a time: each shows up as soon as it is written
                self._progress(index * per_curve, f"{curve.label} started")
                offset = index * per_curve
                compute_or_load(
                    self.settings, lambda done, _total, label: self._progress(offset + done, f"finished {label}"),
                    matrix=self.matrix, folder=self.folder, only=(curve,),
                )
                self.curves_done = index + 1
        except Cancelled as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of dying silently in a thread
            self.error = f"{type(exc).__name__}: {exc}"
        self.finished = time.time()

    def cancel(self) -> None:
        """Stop after the point being computed (a CPD point cannot be interrupted)."""
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 0.0

    def remaining_seconds(self, now: float | None = None) -> float | None:
        """Seconds still to go: the estimates of the unfinished work, scaled by the pace measured so far.

        ``None`` without estimates. Before a few seconds of work the estimates are used as they are.
        """
        if len(self.estimates) != len(self.only) or not self.total:
            return None
        per_curve = self.total / len(self.only)
        current = min(int(self.done // per_curve), len(self.only) - 1)
        estimated_done = sum(self.estimates[:current]) + (self.done / per_curve - current) * self.estimates[current]
        spent = (time.time() if now is None else now) - self.started
        pace = spent / estimated_done if estimated_done > 0 and spent >= 2.0 else 1.0
        return max(sum(self.estimates) - estimated_done, 0.0) * pace

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class TaskRegistry:
    """The page's background tasks by key (one per figure), shared by every session of the server."""

    def __init__(self):
        self._tasks: dict[str, ComputeTask] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> ComputeTask | None:
        return self._tasks.get(key)

    def start(self, key: str, task: ComputeTask) -> ComputeTask:
        """Start ``task`` under ``key``, unless a task under that key is still running (that one is returned)."""
        with self._lock:
            current = self._tasks.get(key)
            if current is not None and current.running:
                return current
            self._tasks[key] = task.start()
            return task

    def discard(self, key: str) -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and not task.running:
                del self._tasks[key]

    def running(self) -> list[ComputeTask]:
        return [t for t in self._tasks.values() if t.running]


# --------------------------------------------------------------------------- figure and tables
def _style(curve: Curve, n_values: Sequence[int]) -> dict:
    """Colour by method; dash, marker and shade by the position of ``n`` among the chosen values."""
    rank = list(n_values).index(curve.n) if curve.n in n_values else 0
    colors = METHOD_COLORS[curve.method]
    color = colors[rank % len(colors)]
    return {
        "line": {"color": color, "dash": DASHES[rank % len(DASHES)], "width": 2.5 if curve.method == "mpo" else 1.8},
        "marker": {"symbol": SYMBOLS[rank % len(SYMBOLS)], "size": 8, "color": color},
    }


def frame_curves(frame: pd.DataFrame) -> list[Curve]:
    """The curves present in a tidy frame, in order of first appearance."""
    pairs = frame[["method", "n"]].drop_duplicates().itertuples(index=False)
    return [Curve(str(m), int(n)) for m, n in pairs]


def error_figure(frame: pd.DataFrame, value: str = "relative_error", log_y: bool = False, title: str = "") -> go.Figure:
    """Figure 2: error against the achieved compression ratio ``rho`` (Eq. (5)), one trace per (method, n)."""
    check_choice("value", value, ERROR_COLUMNS)
    done = frame[frame["skipped_reason"] == ""]
    n_values = sorted({int(n) for m, n in zip(done["method"], done["n"]) if m != "svd"})
    fig = go.Figure()
    for curve in frame_curves(done):
        points = done[(done["method"] == curve.method) & (done["n"] == curve.n)].sort_values("compression_ratio")
        fig.add_scatter(
            x=points["compression_ratio"], y=points[value], mode="lines+markers", name=curve.label,
            customdata=points[["target_ratio", "ranks", "num_params", "seconds"]].astype(str).to_numpy(),
            hovertemplate=(
                f"{curve.label}<br>ρ = %{{x:.4f}} (target %{{customdata[0]}})<br>error = %{{y:.4g}}<br>"
                "ranks %{customdata[1]}, %{customdata[2]} parameters<br>%{customdata[3]} s<extra></extra>"
            ),
            **_style(curve, n_values),
        )
    fig.update_layout(
        title=title or "Reconstruction error vs compression ratio (MPOP Figure 2)",
        xaxis_title="compression ratio ρ = parameters / matrix entries (Eq. 5)",
        yaxis={"title": ERROR_COLUMNS[value] + (" (log scale)" if log_y else ""), "type": "log" if log_y else "linear"},
        legend={"title": "method"}, hovermode="closest",
    )
    return fig


def ratio_table(frame: pd.DataFrame, value: str = "relative_error") -> pd.DataFrame:
    """``value`` at each target ratio (rows) for each curve (columns); skipped points are empty."""
    order = [c.label for c in frame_curves(frame)]
    labels = [Curve(m, int(n)).label for m, n in zip(frame["method"], frame["n"])]
    table = frame.assign(curve=labels, value=frame[value].where(frame["skipped_reason"] == ""))
    table = table.pivot_table(index="target_ratio", columns="curve", values="value", aggfunc="first", dropna=False)
    table = table.reindex(columns=order).astype(float)  # a curve skipped at every ratio: NaN, not None
    table.index.name = "target ρ"
    table.columns.name = None
    return table


def short_reason(reason: str) -> str:
    """A skipped point's reason in a few words, for a table cell: ``"skipped: needs 3.90 GiB"``.

    Reads the messages of :mod:`mpo_core.tensor.baselines`' ``InfeasibleError`` s; any other reason
    gives a plain ``"skipped"`` (the full text stays in :func:`skipped`).
    """
    if need := re.search(r"needs about ([\d.]+ GiB)", reason):
        return f"skipped: needs {need.group(1)}"
    if smallest := re.search(r"smallest \w+ model .*\(ratio ([^)]+)\)", reason):
        return f"skipped: smallest is ρ {smallest.group(1)}"
    if "non-finite" in reason or "singular" in reason:
        return "skipped: ALS diverged"
    return "skipped"


def _curve_labels(frame: pd.DataFrame) -> list[str]:
    return [Curve(m, int(n)).label for m, n in zip(frame["method"], frame["n"])]


def ratio_display_table(frame: pd.DataFrame, value: str = "relative_error", digits: int = 4) -> pd.DataFrame:
    """:func:`ratio_table` as text: each number with ``digits`` decimals, each skipped cell with its short reason."""
    numbers = ratio_table(frame, value)
    why = dict(zip(zip(frame["target_ratio"], _curve_labels(frame)), frame["skipped_reason"]))
    text = numbers.astype(object)
    for curve in numbers.columns:
        text[curve] = [f"{v:.{digits}f}" if v == v else short_reason(why.get((ratio, curve)) or "")
                       for ratio, v in numbers[curve].items()]
    return text


GIB_NEEDED = re.compile(r"needs about ([\d.]+) GiB")


def skipped_notes(frame: pd.DataFrame) -> list[str]:
    """One line per curve with skipped points: at which ratios, and why in a few words (e.g. the GiB needed)."""
    counts = pd.Series(_curve_labels(frame)).value_counts()
    notes = []
    for curve, rows in skipped(frame).groupby("curve", sort=False):
        where = "every ratio" if len(rows) == counts[curve] else "ρ = " + format_ratios(rows["target ρ"])
        needs = [float(m.group(1)) for r in rows["reason"] if (m := GIB_NEEDED.search(r))]
        if needs and len(needs) == len(rows):
            budget = re.search(r"max_bytes = ([\d.]+ GiB)", rows["reason"].iloc[0])
            span = f"{min(needs):.2f}" if min(needs) == max(needs) else f"{min(needs):.2f} to {max(needs):.2f}"
            why = (f"needs {span} GiB of memory, over the CPD memory budget of {budget.group(1) if budget else '?'} "
                   "(CPD / Tucker options in the sidebar; a smaller n or ratio needs less)")
        else:
            why = "; ".join(dict.fromkeys(short_reason(r).removeprefix("skipped: ") for r in rows["reason"]))
        notes.append(f"**{curve}**: skipped at {where}: {why}.")
    return notes


def skipped(frame: pd.DataFrame) -> pd.DataFrame:
    """The points that could not be computed, with why (ratio too small, CPD over its memory budget)."""
    rows = frame[frame["skipped_reason"] != ""]
    return pd.DataFrame({
        "curve": [Curve(m, int(n)).label for m, n in zip(rows["method"], rows["n"])],
        "target ρ": rows["target_ratio"].to_numpy(), "reason": rows["skipped_reason"].to_numpy(),
    })


def mpo_vs_cpd(frame: pd.DataFrame) -> list[tuple[int, int, int]]:
    """Per ``n`` with both curves: ``(n, ratios where the MPO error < the CPD error, ratios compared)``.

    The paper's Figure 2(a) claim, checked on our own numbers at equal target ratios.
    """
    done = frame[frame["skipped_reason"] == ""]
    result = []
    for n in sorted(set(done["n"])):
        mpo = done[(done["method"] == "mpo") & (done["n"] == n)].set_index("target_ratio")["error"]
        cpd = done[(done["method"] == "cpd") & (done["n"] == n)].set_index("target_ratio")["error"]
        common = mpo.index.intersection(cpd.index)
        if len(common):
            result.append((int(n), int((mpo[common] < cpd[common]).sum()), len(common)))
    return result
