"""Compressing a whole model with its calibration data: every matrix, one budget, one call.

:func:`compress_model` replaces the chosen matrices of a model by MPO layers, in
place, by one of these methods:

================  ===========================================================================
``mpo``           plain MPO truncation (Algorithm 1 + the exact bond allocator), same share per matrix
``svd``           plain truncated SVD (the MPO with ``n = 2``), same share per matrix
``svd_whitened``  SVD-LLM's whitened SVD: least output error at each rank, same share per matrix
``mpo_kronecker`` MPO truncated in the Kronecker-whitened metric, same share per matrix
``mpo_calibrated``the plain MPO refined by ALS with the full ``X^T X``, same share per matrix
``auto``          structure (``n`` in ``structures``) and size chosen per matrix: the summed output
                  error is minimised under one parameter budget (a multiple-choice knapsack over each
                  matrix's options: the whitened SVD's every rank, measured MPO points), the chosen
                  MPOs then refined by ALS
================  ===========================================================================

The data-aware error of a matrix is ``||X (W - W')^T||_F`` on the calibration
tokens (:mod:`~mpo_core.tensor.whitening`); for the word embedding, whose
input is a one-hot token, it is the token-count-weighted row error (the counts
plus a floor per row, so tokens the calibration never saw keep some weight),
which enters the MPO exactly for ``n = 2`` and through an outer-product fit over
the row digits otherwise (:func:`~mpo_core.tensor.calibrated_truncation.whiten_rows`;
no ALS for the embedding: its weight is on the rows, not a second moment of inputs).
The floor is the Good-Turing estimate unless given: the unseen tokens together
get the share of new text that tokens seen once had in the calibration
(``floor = #rows seen once / #rows never seen``), so the weights stay in the
same units as the linear layers' errors (squared output error summed over tokens).

Errors of different matrices are comparable because each is an output error on
the same tokens (``weighting="output"``); ``weighting="relative"`` divides each
by its layer's output energy ``||X W^T||^2`` instead.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..layers import MPOEmbedding, MPOLinear
from ..tensor.bond_allocation import optimal_bond_dims
from ..tensor.budget_allocation import allocate_budget
from ..tensor.als_refinement import refine
from ..tensor.calibrated_truncation import calibrated_truncate, whiten, whiten_rows
from ..tensor.compress import compress_matrix
from ..tensor.decomposition import decompose
from ..tensor.truncation import truncate
from ..tensor.shape import plan_shape
from ..tensor.truncation import truncate_to
from ..tensor.validation import check_choice
from ..tensor.whitening import DEFAULT_DAMPING, damped, whitened_error
from .matrix_groups import ATTENTION_GROUPS, FFN_GROUPS, find_matrices, layer_index
from .surgery import replace_module

METHODS = ("mpo", "svd", "svd_whitened", "mpo_kronecker", "mpo_calibrated", "auto")
CALIBRATED = ("svd_whitened", "mpo_kronecker", "mpo_calibrated", "auto")
ENCODER_GROUPS = (*ATTENTION_GROUPS, *FFN_GROUPS)
WEIGHTINGS = ("output", "relative")
#: kept shares at which an ``n >= 3`` structure is offered to ``auto`` (each point's true error is measured)
STRUCTURE_SHARES = (0.03, 0.1, 0.2, 0.35, 0.5, 0.7)  # below any budget asked for in practice: always a choice


@dataclass
class CompressionConfig:
    """How :func:`compress_model` compresses a model.

    Attributes
    ----------
    method:
        One of ``METHODS`` (module docstring).
    size:
        Kept share of the chosen matrices' parameters (0 < size <= 1).
    model_size:
        Instead of ``size``: the whole model's parameters (#To) as a share of the dense model's.
    groups:
        Matrix groups to compress (default: the encoder's attention and FFN matrices;
        add ``"word_embedding"`` to include it).
    n:
        Local tensors of the MPO methods (``svd*`` use 2).
    structures:
        ``auto``: the values of ``n`` each matrix may take (2 is the SVD).
    sweeps:
        ALS sweeps of ``mpo_calibrated`` and of ``auto``'s MPOs with ``n >= 3``.
    damping:
        ``X^T X + damping * mean(diag) I`` is what is whitened.
    weighting:
        How ``auto`` compares errors of different matrices: ``"output"`` or ``"relative"``.
    embedding_floor:
        Pseudo-count added to every token's count in the word embedding's row weights
        (``None``: the Good-Turing estimate of the module docstring).
    """

    method: str = "mpo_calibrated"
    size: float | None = None
    model_size: float | None = None
    groups: tuple[str, ...] = ENCODER_GROUPS
    n: int = 5
    structures: tuple[int, ...] = (2, 3, 5)
    sweeps: int = 2
    damping: float = DEFAULT_DAMPING
    weighting: str = "output"
    embedding_floor: float | None = None

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        check_choice("weighting", self.weighting, WEIGHTINGS)
        if (self.size is None) == (self.model_size is None):
            raise ValueError("give exactly one of size (kept share of the chosen matrices) or model_size "
                             "(the whole model's parameters as a share of the dense model's).")
        for name in ("size", "model_size"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ValueError(f"{name} must be a share in (0, 1], got {value!r}.")
        self.groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 2 <= self.n <= 12:
            raise ValueError(f"n must be an integer in 2..12, got {self.n!r}.")
        self.structures = tuple(self.structures)
        if not self.structures or any(isinstance(s, bool) or not isinstance(s, int) or not 2 <= s <= 12
                                      for s in self.structures):
            raise ValueError(f"structures must be integers in 2..12, got {self.structures!r}.")
        if isinstance(self.sweeps, bool) or not isinstance(self.sweeps, int) or not 0 <= self.sweeps <= 20:
            raise ValueError(f"sweeps must be an integer in 0..20, got {self.sweeps!r}.")
        if not (isinstance(self.damping, (int, float)) and 0 <= self.damping <= 1):
            raise ValueError(f"damping must be in [0, 1], got {self.damping!r}.")
        if self.embedding_floor is not None and not (isinstance(self.embedding_floor, (int, float))
                                                     and self.embedding_floor > 0):
            raise ValueError(f"embedding_floor must be > 0 (or None for Good-Turing), got {self.embedding_floor!r}.")

    @property
    def method_n(self) -> int:
        return 2 if self.method.startswith("svd") else self.n


@dataclass
class MatrixReport:
    """What happened to one matrix."""

    name: str
    group: str
    layer: int | None
    shape: tuple[int, int]
    structure: int  # n: 2 is the SVD, 0 kept dense
    bond_dims: tuple[int, ...]
    params: int
    dense_params: int
    error: float | None  # data-aware error on the calibration tokens (None without calibration)
    reference: float | None  # ||X W^T||_F, so error / reference is relative
    plain_error: float  # ||W - W'||_F
    seconds: float

    @property
    def relative_error(self) -> float | None:
        return None if self.error is None or not self.reference else self.error / self.reference


@dataclass
class CompressionReport:
    """Result of :func:`compress_model`: per matrix, and the totals."""

    config: dict
    matrices: list[MatrixReport]
    model_params_before: int
    model_params_after: int
    budget: int
    seconds: float
    unspent: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def params_before(self) -> int:
        return sum(m.dense_params for m in self.matrices)

    @property
    def params_after(self) -> int:
        return sum(m.params for m in self.matrices)

    def by_group(self) -> dict[str, dict]:
        """Parameters kept per group and per layer: where the budget went."""
        out: dict[str, dict] = {}
        for m in self.matrices:
            for key in (f"group:{m.group}", f"layer:{m.layer}"):
                row = out.setdefault(key, {"params": 0, "dense_params": 0, "structures": {}})
                row["params"] += m.params
                row["dense_params"] += m.dense_params
                row["structures"][str(m.structure)] = row["structures"].get(str(m.structure), 0) + 1
        for row in out.values():
            row["kept_share"] = row["params"] / row["dense_params"] if row["dense_params"] else 0.0
        return out

    def to_dict(self) -> dict:
        return {
            "config": self.config, "seconds": self.seconds, "budget": self.budget, "unspent": self.unspent,
            "model_params_before": self.model_params_before, "model_params_after": self.model_params_after,
            "matrix_params_before": self.params_before, "matrix_params_after": self.params_after,
            "kept_share": self.params_after / self.params_before if self.params_before else 0.0,
            "model_share": self.model_params_after / self.model_params_before,
            "summed_squared_error": sum((m.error or 0.0) ** 2 for m in self.matrices),
            "by_group": self.by_group(), "matrices": [asdict(m) for m in self.matrices], **self.extra,
        }


@dataclass
class _Target:
    name: str
    group: str
    module: nn.Module
    weight: torch.Tensor  # (out, in) as the MPO sees it
    sigma: torch.Tensor | None  # X^T X, for a linear layer
    rows: torch.Tensor | None  # row weights (token counts + floor), for the word embedding
    counts: torch.Tensor | None  # token counts alone, for reporting


def good_turing_floor(counts: torch.Tensor) -> float:
    """The pseudo-count per never-seen row that gives them the Good-Turing share of new tokens.

    Tokens seen once make up ``N_1 / N`` of the calibration; that is the estimate of the share of
    new text made of tokens not seen, spread here over the rows never seen: ``N_1 / #unseen``.
    """
    unseen = int((counts == 0).sum())
    singletons = int((counts == 1).sum())
    if unseen == 0:
        return 1e-3
    return max(singletons, 1) / unseen


def _targets(model: nn.Module, config: CompressionConfig, calibration) -> list[_Target]:
    modules = dict(model.named_modules())
    found = find_matrices(model, config.groups)
    if not found:
        raise ValueError(f"{type(model).__name__} has no matrices of groups {config.groups}.")
    needs_data = config.method in CALIBRATED
    moments: Mapping = getattr(calibration, "second_moments", {}) if calibration is not None else {}
    counts: Mapping = getattr(calibration, "token_counts", {}) if calibration is not None else {}
    if needs_data and calibration is None:
        raise ValueError(f"method {config.method!r} needs calibration statistics (X^T X per matrix); "
                         "collect them first, or use method 'mpo' or 'svd'.")
    targets = []
    for name, group in found.items():
        module = modules[name]
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            raise ValueError(f"{name} is already an MPO layer; compress the dense model.")
        weight = module.weight.detach()
        sigma = rows = count = None
        if isinstance(module, nn.Embedding):
            count = counts.get(name)
            if count is not None:
                count = count.double()
                rows = count + (good_turing_floor(count) if config.embedding_floor is None else config.embedding_floor)
        else:
            sigma = moments.get(name)
        if needs_data and sigma is None and rows is None:
            raise ValueError(f"the calibration statistics have nothing for {name}; collect them for the "
                             f"groups {config.groups}.")
        targets.append(_Target(name, group, module, weight, sigma, rows, count))
    return targets


def _error_of(target: _Target, approximation: torch.Tensor) -> tuple[float | None, float | None]:
    """Data-aware error and reference of an approximation (token counts alone for the embedding)."""
    w = target.weight
    if target.sigma is not None:
        sigma = target.sigma.to(w.device)
        return whitened_error(w, approximation, sigma), whitened_error(w, torch.zeros_like(w), sigma)
    if target.counts is not None:
        delta = (w.double() - approximation.double()).square().sum(1)
        ref = w.double().square().sum(1)
        counts = target.counts.to(w.device)
        return float((delta * counts).sum().sqrt()), float((ref * counts).sum().sqrt())
    return None, None


def _stage1(target: _Target, shape, config: CompressionConfig):
    if target.rows is not None:
        return whiten_rows(target.weight, target.rows, shape)
    return whiten(target.weight, target.sigma, shape, config.damping)


def _compress_one(target: _Target, config: CompressionConfig, n: int, max_params: float,
                  whitened=None):
    """The MPO of one matrix for ``max_params`` parameters by the config's method (structure ``n``).

    ``mpo_calibrated`` (and ``auto``'s MPOs) start ALS from the plain truncation with its exact bond
    allocation: measured on MiniLM, that start ends lower than the Kronecker-whitened one in 6 of 8
    cases (the Kronecker fit of ``X^T X`` is poor: relative error 0.8-0.9, outlier channels), and it
    skips the whitening.
    """
    w = target.weight
    refine_mpo = config.method in ("mpo_calibrated", "auto") and n >= 3 and target.sigma is not None
    if config.method in ("mpo", "svd") or refine_mpo:
        mpo = compress_matrix(w, n=n, compression_ratio=max_params / w.numel())
        if refine_mpo and config.sweeps:
            mpo = refine(mpo, w, damped(target.sigma, config.damping), sweeps=config.sweeps).mpo
        return mpo
    shape = whitened.shape if whitened is not None else plan_shape(*w.shape, n=n)
    kwargs = dict(row_weights=target.rows) if target.rows is not None else dict(second_moment=target.sigma)
    result = calibrated_truncate(w, shape=shape, max_params=max_params, damping=config.damping,
                                 whitened=whitened or _stage1(target, shape, config), **kwargs)
    return result.mpo


def _options(target: _Target, config: CompressionConfig, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, list]:
    """Every option of one matrix for ``auto``: ``(params, squared error, (n, whitened, params))``.

    One option keeps the matrix dense (error 0); no option has more parameters than that.
    """
    w = target.weight
    params, errors, labels = [w.numel()], [0.0], [(0, None, w.numel())]
    if config.weighting == "relative":
        ref = _error_of(target, torch.zeros_like(w))[1] or 1.0
        scale = scale / ref ** 2
    for n in config.structures:
        shape = plan_shape(*w.shape, n=n)
        whitened = _stage1(target, shape, config) if n == 2 or target.rows is not None else None
        full = decompose(w.detach().float(), shape=shape) if whitened is None else None
        if n == 2:  # the whitened SVD: its spectrum gives the exact (damped) error of every rank
            p, e = whitened.front()
            e, p = e[p < w.numel()], p[p < w.numel()]
            params.extend(p.tolist())
            errors.extend((e * scale).tolist())
            labels.extend((n, whitened, int(x)) for x in p)
            continue
        for share in STRUCTURE_SHARES:  # a few measured points of the plain truncation (ALS then lowers them)
            if target.rows is not None:
                dims = optimal_bond_dims(whitened.mpo, max_params=share * w.numel())
                mpo = whitened.unwhitened(truncate_to(whitened.mpo, dims).mpo)
            else:
                mpo = truncate(full, compression_ratio=share).mpo
            if mpo.num_params >= w.numel():
                continue
            error = _damped_error(target, mpo.to_matrix(), config)
            params.append(mpo.num_params)
            errors.append(error ** 2 * scale)
            labels.append((n, None, mpo.num_params))
    return np.asarray(params, dtype=np.int64), np.asarray(errors), labels


def _damped_error(target: _Target, approximation: torch.Tensor, config: CompressionConfig) -> float:
    """The error in the metric the whitened SVD's spectrum measures (damped ``X^T X``, or the row weights)."""
    w = target.weight
    if target.rows is not None:
        delta = (w.double() - approximation.double()).square().sum(1)
        return float((delta * target.rows.to(w.device)).sum().sqrt())
    return whitened_error(w, approximation, damped(target.sigma, config.damping).to(w.device))


def _replace(model: nn.Module, target: _Target, mpo) -> None:
    module = target.module
    if isinstance(module, nn.Embedding):
        new = MPOEmbedding(mpo.to(dtype=module.weight.dtype), module.padding_idx)
    else:
        new = MPOLinear(mpo.to(dtype=module.weight.dtype), module.bias)
    new.group = target.group
    replace_module(model, module, new)


def _model_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def compress_model(model: nn.Module, config: CompressionConfig, calibration=None, *,
                   sensitivity: Mapping[str, float] | None = None, progress: bool = True) -> CompressionReport:
    """Compress ``model``'s chosen matrices in place (module docstring); returns what was done.

    Parameters
    ----------
    model:
        A dense Hugging Face encoder (or task model).
    config:
        Method, size and options.
    calibration:
        Calibration statistics with ``second_moments`` (``{matrix name: X^T X}``) and, for the word
        embedding, ``token_counts`` (``{name: counts}``): a
        :class:`~mpo_core.model.calibration.CalibrationStats`. Needed by the calibrated methods;
        with it the plain methods report data-aware errors too.
    sensitivity:
        ``auto`` only: a factor per matrix name multiplying its errors (how much a unit of its output
        error moves the model's output, :func:`~mpo_core.model.output_sensitivity.output_sensitivity`).
    """
    start = time.perf_counter()
    targets = _targets(model, config, calibration)
    before = _model_params(model)
    dense = sum(t.weight.numel() for t in targets)
    budget = config.size * dense if config.size is not None else config.model_size * before - (before - dense)
    if budget <= 0:
        raise ValueError(f"a model size of {config.model_size} leaves no parameters for the chosen matrices "
                         f"({before - dense:,} parameters lie outside them); choose a larger model_size.")
    choice = {}
    unspent = 0
    if config.method == "auto":
        factors = {t.name: 1.0 if sensitivity is None else float(sensitivity[t.name]) for t in targets}
        options = [_options(t, config, factors[t.name])
                   for t in tqdm(targets, desc="options per matrix", disable=not progress)]
        allocation = allocate_budget([(p, e) for p, e, _ in options], budget)
        choice = {t.name: options[k][2][allocation.choice[k]] for k, t in enumerate(targets)}
        unspent = allocation.unspent
    matrices = []
    for target in tqdm(targets, desc=f"compressing ({config.method})", disable=not progress, unit="matrix"):
        t0 = time.perf_counter()
        if target.name in choice and choice[target.name][0] == 0:  # kept dense
            matrices.append(MatrixReport(
                name=target.name, group=target.group, layer=layer_index(target.name),
                shape=tuple(target.weight.shape), structure=0, bond_dims=(), params=target.weight.numel(),
                dense_params=target.weight.numel(), error=0.0, reference=_error_of(target, 0 * target.weight)[1],
                plain_error=0.0, seconds=time.perf_counter() - t0))
            continue
        if target.name in choice:
            n, whitened, max_params = choice[target.name]
            mpo = _compress_one(target, config, n, max_params, whitened)
        else:
            n = config.method_n
            mpo = _compress_one(target, config, n, budget * target.weight.numel() / dense)
        approximation = mpo.to_matrix()
        error, reference = _error_of(target, approximation)
        matrices.append(MatrixReport(
            name=target.name, group=target.group, layer=layer_index(target.name), shape=tuple(target.weight.shape),
            structure=mpo.n, bond_dims=mpo.bond_dims, params=mpo.num_params, dense_params=target.weight.numel(),
            error=error, reference=reference,
            plain_error=float((target.weight.double() - approximation.double()).norm()),
            seconds=time.perf_counter() - t0,
        ))
        _replace(model, target, mpo)
    if config.method != "auto":
        unspent = int(budget - sum(m.params for m in matrices))
    return CompressionReport(
        config=asdict(config), matrices=matrices, model_params_before=before,
        model_params_after=_model_params(model), budget=int(budget), seconds=time.perf_counter() - start,
        unspent=unspent,
    )


__all__ = ["CompressionConfig", "CompressionReport", "MatrixReport", "METHODS", "compress_model", "good_turing_floor"]
