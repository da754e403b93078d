"""Back end of the "Compress a model" page: plan, build and export an MPO-compressed model.

Plain Python over :mod:`mpo_core` (no ``streamlit`` import). Three steps of
very different cost, cached separately by the page::

    matrix_spectra(model, n)        one SVD chain per matrix (~7 s)     -> st.cache_resource, once per n
    plan_table(entries, request)    allocated d'_k per matrix (~0.5 s)  -> st.cache_data, per slider move
    build_compressed_model(...)     MPOConfig + apply_mpo (~20 s)       -> on "Build and measure", then on disk
    model_effect(...)               embed 200 STS-B pairs (~7 s)        -> on "Build and measure", then on disk
    export_zip(model, merged)       save_mpo_model / merge_mpo + save   -> after a build (0.2-1 s)

(times on one core of a 2-core machine whose other core is busy). A built
model and its measured effect are kept on disk by :mod:`app.built_model_cache`,
so a second visit with the same settings reads them back in about a second.
The long steps report their progress through an :class:`app.pace.Pace`, with
matrices in increasing cost, so the pace is measured before the word embedding.

:func:`model_effect` is what the compression does to the model, beside the
bound: the compressed encoder's sentence embeddings against the original's and
zero-shot STS-B (see :mod:`mpo_core.model.embedding_agreement`).

The plan reads the same decomposition and the same allocator
(:func:`mpo_core.bond_dims_for_ratio`) that :func:`mpo_core.apply_mpo` runs,
so its bond dims and sizes are those of the model that is built.
"""
from __future__ import annotations

import copy
import inspect
import io
import json
import math
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
from torch import nn

import mpo_core
from mpo_core import MPOConfig, Replacement
from mpo_core.data.glue import load_glue_split
from mpo_core.model.embedding_agreement import Agreement, embedding_agreement, pair_embeddings, sentence_embeddings
from mpo_core.model.matrix_groups import DEFAULT_GROUPS, GROUPS, find_matrices, layer_index
from mpo_core.model.model_folder import check_model_folder
from mpo_core.tensor.validation import check_num_tensors, check_number

from . import decomposition_cache
from .atlas import GROUP_LABELS, AtlasEntry, chosen_bond_dims, spectra_norm
from .decomposition_cache import spectra_only
from .pace import Pace

DEFAULT_RATIO = 0.3
EXPORT_FORMATS = {
    "mpo": "MPO layers (safetensors + mpo_layers.json; load with mpo_core.load_mpo_model)",
    "merged": "Merged dense model (plain transformers, safetensors; original size)",
}
PLAN_FILE = "compression.json"  # written into the zip beside the model
STS_PAIRS = 200  # STS-B dev pairs the model's effect is measured on (~3 s per model on a 2-core CPU)

ProgressFn = Callable[[int, int, str], None]  # (done, total, module name)
# Prior paces of the long steps (before a step's own items are timed), measured on one core of the project's
# 2-core machine with its other core busy: work units (see matrix_work) or batches per second.
SPECTRA_UNITS_PER_SECOND = 1.3e9  # full-bond decompositions of every matrix: ~8.8e9 units in 6.6 s
BUILD_UNITS_PER_SECOND = 4.3e8  # apply_mpo (decompose + truncate) of the default request: ~8.6e9 units in 20 s
EMBED_BATCHES_PER_SECOND = 1.0  # sentence_embeddings' batches of 64 STS-B sentences through MiniLM


def matrix_work(shape: Sequence[int]) -> float:
    """Relative cost of decomposing a ``rows x cols`` matrix: ``rows * cols * min(rows, cols)`` (SVD-like)."""
    rows, cols = int(shape[0]), int(shape[1])
    return float(rows * cols * min(rows, cols))


def _by_cost(model: nn.Module, names) -> dict[str, float]:
    """``{module name: matrix_work}``, cheapest first (the pace is measured before the word embedding)."""
    modules = dict(model.named_modules())
    costs = {name: matrix_work(modules[name].weight.shape) for name in names}
    return dict(sorted(costs.items(), key=lambda item: item[1]))


# --------------------------------------------------------------------------- request
@dataclass(frozen=True)
class CompressionRequest:
    """What to compress and how much; frozen and hashable, so it keys the page caches."""

    groups: tuple[str, ...] = DEFAULT_GROUPS  # matrix groups of mpo_core.model.matrix_groups
    ratio: float = DEFAULT_RATIO  # Eq. (5) target per matrix
    n: int = 5  # local tensors per MPO
    layers: tuple[int, ...] | None = None  # encoder layers (None = all); embeddings/pooler are not in layers

    def __post_init__(self):
        groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        if not groups:
            raise ValueError(f"choose at least one matrix group of {GROUPS}.")
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"unknown matrix groups {unknown}; choose among {GROUPS}.")
        check_number("the target compression ratio", self.ratio, minimum=0)
        check_num_tensors(self.n)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "ratio", float(self.ratio))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(sorted({int(i) for i in self.layers})))

    def mpo_config(self) -> MPOConfig:
        """The :class:`mpo_core.MPOConfig` of this request."""
        return MPOConfig(groups=self.groups, n=self.n, compression_ratio=self.ratio, layers=self.layers)


# --------------------------------------------------------------------------- model
def load_base_model(model_path=None, num_hidden_layers: int | None = None) -> nn.Module:
    """The pre-trained encoder (``AutoModel``, eval mode) of the packaged MiniLM or ``model_path``."""
    from transformers import AutoModel

    path = str(model_path or mpo_core.default_model_path())
    check_model_folder(path)  # before transformers sees it: no code, no pickles, sizes within caps
    overrides = {} if num_hidden_layers is None else {"num_hidden_layers": int(num_hidden_layers)}
    try:
        return AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True, **overrides).eval()
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not load a model from {path!r} ({exc}).") from None


def available_groups(model: nn.Module) -> tuple[str, ...]:
    """The matrix groups the model has, in the order of ``mpo_core.model.matrix_groups.GROUPS``."""
    present = set(find_matrices(model).values())
    return tuple(g for g in GROUPS if g in present)


def num_layers(model: nn.Module) -> int:
    """How many encoder layers hold matrices (0 if none are numbered)."""
    indices = [layer_index(name) for name in find_matrices(model)]
    return max((i for i in indices if i is not None), default=-1) + 1


def _reading_order(item: tuple[str, str]) -> tuple:
    """Embeddings, then layer by layer in the groups' order (query, key, value, ..., FFN out), then the rest
    (pooler): the loaded model's own order, which a weight skeleton (file order, alphabetical) does not keep."""
    name, group = item
    layer = layer_index(name)
    place = 0 if group == "word_embedding" else 1 if layer is not None else 2
    return place, layer if layer is not None else 0, GROUPS.index(group), name


def selected_matrices(model: nn.Module, request: CompressionRequest) -> dict[str, str]:
    """``{module name: group}`` that :func:`mpo_core.apply_mpo` replaces for this request, in reading order."""
    selected = {}
    for name, group in sorted(find_matrices(model, request.groups).items(), key=_reading_order):
        index = layer_index(name)
        if request.layers is None or index is None or index in request.layers:
            selected[name] = group
    if not selected:
        raise ValueError(
            f"no matrices of groups {request.groups} in layers {request.layers}; "
            "choose more groups or layers."
        )
    return selected


def spectra_pace(model: nn.Module) -> Pace:
    """A :class:`Pace` over :func:`matrix_spectra` of ``model``."""
    return Pace(sum(_by_cost(model, find_matrices(model)).values()), SPECTRA_UNITS_PER_SECOND)


def matrix_spectra(model: nn.Module, n: int, progress: ProgressFn | None = None, pace: Pace | None = None,
                   cache_dir=None, model_path=None) -> dict[str, AtlasEntry]:
    """Decompose every supported matrix of ``model`` once (full bonds) and keep its spectra.

    ``model`` may be the loaded model or its :func:`~mpo_core.model.weight_skeleton.weight_skeleton`, whose
    matrices are read from ``model_path`` (default: the packaged MiniLM) when they are decomposed.
    With ``cache_dir`` (the dashboard's cache folder) and ``model_path`` (the folder ``model`` was loaded
    from), each matrix's spectra are read from :mod:`app.decomposition_cache` when there (the Entropy
    atlas stores the same entries: same weight files, name and settings) and stored when not.
    ``progress(done, total, name)`` is called for each matrix in the model's order once all are in hand;
    ``pace`` (:func:`spectra_pace`) follows each decomposition from its start, the matrices read from disk
    taken off its total. Entries are in the model's order.
    """
    check_num_tensors(n)
    modules = dict(model.named_modules())
    matrices = find_matrices(model)
    mpos = {name: _cached_spectra(name, modules[name].weight.shape, n, cache_dir, model_path) for name in matrices}
    costs = _by_cost(model, [name for name, mpo in mpos.items() if mpo is None])
    if pace is not None:
        pace.discount(sum(_by_cost(model, [name for name in matrices if name not in costs]).values()))
    for name in pace.steps(costs) if pace is not None else costs:
        weight = modules[name].weight
        if weight.is_meta:  # a weight skeleton (mpo_core.model.weight_skeleton): the matrix is read from its file
            weight = mpo_core.load_weight_matrix(f"{name}.weight", model_path or mpo_core.default_model_path())
        mpos[name] = spectra_only(mpo_core.decompose(weight.detach(), n=n))
        _store_spectra(name, mpos[name], n, cache_dir, model_path)
    entries = {}
    for done, name in enumerate(matrices, 1):
        entries[name] = AtlasEntry(name, matrices[name], layer_index(name), mpos[name], spectra_norm(mpos[name]))
        if progress is not None:
            progress(done, len(matrices), name)
    return entries


def _spectra_key(name: str, shape, n: int, model_path) -> str:
    """The :mod:`app.decomposition_cache` key of a module's weight: its file identity, n and planned factors."""
    planned = mpo_core.plan_shape(int(shape[0]), int(shape[1]), n=n)
    identity = decomposition_cache.weight_identity(f"{name}.weight", model_path)
    return decomposition_cache.entry_key(identity, {"n": n, "out_factors": list(planned.out_factors),
                                                    "in_factors": list(planned.in_factors)})


def _cached_spectra(name: str, shape, n: int, cache_dir, model_path):
    if cache_dir is None or model_path is None:
        return None
    return decomposition_cache.load(decomposition_cache.folder(cache_dir), _spectra_key(name, shape, n, model_path))


def _store_spectra(name: str, mpo, n: int, cache_dir, model_path) -> None:
    if cache_dir is None or model_path is None:
        return
    key = _spectra_key(name, (mpo.shape.out_features, mpo.shape.in_features), n, model_path)
    try:
        decomposition_cache.save(decomposition_cache.folder(cache_dir), key, mpo, {"weight": f"{name}.weight", "n": n})
    except OSError:  # a read-only or full cache folder costs the next visit time, not this one its plan
        pass


# --------------------------------------------------------------------------- plan
def _dims(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def plan_row(entry: AtlasEntry, ratio: float) -> dict:
    """Bond dims, ratio (Eq. 5), bound (Eq. 4) and central/auxiliary sizes of one matrix at ``ratio``."""
    mpo, shape = entry.mpo, entry.mpo.shape
    chosen = chosen_bond_dims(entry, ratio)
    split = mpo_core.parameter_split(shape, chosen, mpo.center)
    bound = mpo_core.truncation_error_bound(mpo, chosen)
    return {
        "matrix": entry.name,
        "group": entry.group,
        "layer": entry.layer,
        "shape": f"{shape.out_features}×{shape.in_features}",
        "full d_k (Eq. 2)": _dims(shape.full_bond_dims),
        "chosen d'_k": _dims(chosen),
        "ρ (Eq. 5)": split.compression_ratio,
        "relative error bound (Eq. 4)": bound / entry.norm if entry.norm > 0 else 0.0,
        "central params": split.central,
        "auxiliary params": split.auxiliary,
        "MPO params": split.total,
        "dense params": split.matrix,
    }


PLAN_SUBDIR = "compress-plans"  # plan rows by request, beside the decompositions in the cache folder
PLAN_VERSION = 1  # bump when a column's meaning changes


def plan_key(model: nn.Module, names, request: CompressionRequest, model_path) -> str:
    """Disk-cache key of a plan: the decompositions' keys of its matrices (in order) and the ratio."""
    modules = dict(model.named_modules())
    keys = [_spectra_key(name, modules[name].weight.shape, request.n, model_path) for name in names]
    return decomposition_cache.entry_key({"decompositions": keys},
                                         {"compress_plan": PLAN_VERSION, "ratio": request.ratio})


def plan_table(model: nn.Module, entries: dict[str, AtlasEntry], request: CompressionRequest,
               cache_dir=None, model_path=None) -> pd.DataFrame:
    """One row per matrix the request compresses (index: module name).

    With ``cache_dir`` and ``model_path`` (as :func:`matrix_spectra`'s) the rows (the allocated bond dims
    above all: ~1 s for the default request) are read from, or stored in, ``<cache_dir>/compress-plans``.
    """
    names = selected_matrices(model, request)
    missing = [name for name in names if name not in entries]
    if missing:
        raise KeyError(f"no spectra for {missing[0]!r}; decompose the model with matrix_spectra first.")
    if any(entries[name].mpo.n != request.n for name in names):
        raise ValueError(f"the spectra were computed for another n than n = {request.n}; recompute them.")
    cached = cache_dir is not None and model_path is not None
    where = Path(cache_dir) / PLAN_SUBDIR if cached else None
    key = plan_key(model, names, request, model_path) if cached else None
    rows = decomposition_cache.load_json(where, key) if cached else None
    if not isinstance(rows, list) or [r.get("matrix") for r in rows if isinstance(r, dict)] != list(names):
        rows = [plan_row(entries[name], request.ratio) for name in names]
        if cached:
            try:
                decomposition_cache.save_json(where, key, rows)
            except OSError:  # a read-only or full cache folder costs the next visit time, not this one its plan
                pass
    table = pd.DataFrame(rows).set_index("matrix")
    table["layer"] = table["layer"].astype("Int64")
    return table


@dataclass(frozen=True)
class SizeTotals:
    """#To of the whole model before and after compression (biases, norms, heads included)."""

    before: int  # #To of the dense model
    after: int  # #To with the planned MPOs
    matrices_before: int  # entries of the compressed matrices
    matrices_after: int  # their MPO parameters

    @property
    def model_ratio(self) -> float:
        return self.after / self.before

    @property
    def matrices_ratio(self) -> float:
        """Eq. (5) over the compressed matrices together."""
        return self.matrices_after / self.matrices_before


def size_totals(model: nn.Module, table: pd.DataFrame) -> SizeTotals:
    """Totals before/after from the plan: every other parameter of the model is kept as is."""
    before = mpo_core.count_parameters(model).total
    dense, mpo = int(table["dense params"].sum()), int(table["MPO params"].sum())
    return SizeTotals(before, before - dense + mpo, dense, mpo)


def totals_rows(totals: SizeTotals, table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The page's five headline numbers as ``(label, value, help)``."""
    return [
        ("#To before", f"{totals.before / 1e6:.2f}M", "All parameters of the dense model."),
        ("#To after", f"{totals.after / 1e6:.2f}M", "With the chosen matrices as MPOs."),
        ("Model size ratio", f"{totals.model_ratio:.4f}", "#To after / #To before."),
        ("ρ, chosen matrices (Eq. 5)", f"{totals.matrices_ratio:.4f}",
         f"{len(table)} matrices: Σ MPO parameters / Σ matrix entries."),
        ("Max. error bound (Eq. 4)", f"{100 * table['relative error bound (Eq. 4)'].max():.1f} %",
         "Largest √(Σ ε_k²) / ‖W‖_F over the chosen matrices; a bound summed over bonds, so it may pass 100 %."),
    ]


def group_figure(table: pd.DataFrame) -> go.Figure:
    """Dense vs MPO parameters (central and auxiliary) per matrix group, in millions."""
    sums = table.groupby("group", sort=False)[["dense params", "central params", "auxiliary params"]].sum() / 1e6
    labels = [GROUP_LABELS.get(g, g) for g in sums.index]
    fig = go.Figure()
    fig.add_bar(x=labels, y=sums["dense params"], name="dense matrices", marker_color="#9d9d9d", offsetgroup="dense")
    fig.add_bar(x=labels, y=sums["central params"], name="central tensors C", marker_color="#f58518", offsetgroup="mpo")
    fig.add_bar(x=labels, y=sums["auxiliary params"], name="auxiliary tensors", marker_color="#4c78a8",
                offsetgroup="mpo", base=sums["central params"])
    fig.update_layout(
        title="Parameters per matrix group: dense vs MPO at the chosen d'<sub>k</sub> (numerator of Eq. 5)",
        yaxis_title="parameters (millions)", xaxis_title="matrix group", barmode="group",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


# --------------------------------------------------------------------------- build and export
def build_pace(base: nn.Module, request: CompressionRequest) -> Pace:
    """A :class:`Pace` over :func:`build_compressed_model` of ``request``."""
    return Pace(sum(_by_cost(base, selected_matrices(base, request)).values()), BUILD_UNITS_PER_SECOND)


def build_compressed_model(
    base: nn.Module, request: CompressionRequest, progress: ProgressFn | None = None, pace: Pace | None = None,
) -> tuple[nn.Module, list[Replacement]]:
    """A compressed copy of ``base`` (``base`` is untouched): ``MPOConfig`` + ``apply_mpo``, one matrix at a time.

    Matrices go cheapest first; ``progress(done, total, name)`` is called after each, ``pace``
    (:func:`build_pace`) follows each from its start. The report is in the model's order.
    """
    names = selected_matrices(base, request)
    costs = _by_cost(base, names)
    model, config, report = copy.deepcopy(base), request.mpo_config(), {}
    for done, name in enumerate(pace.steps(costs) if pace is not None else costs, 1):
        (report[name],) = mpo_core.apply_mpo(model, config, progress=False, names=[name])
        if progress is not None:
            progress(done, len(names), name)
    return model.eval(), [report[name] for name in names]


def report_matches_plan(report: Sequence[Replacement], table: pd.DataFrame) -> bool:
    """Whether the built model has exactly the planned matrices, bond dims and sizes."""
    built = {r.name: (_dims(r.bond_dims), r.params_after) for r in report}
    planned = {name: (row["chosen d'_k"], int(row["MPO params"])) for name, row in table.iterrows()}
    return built == planned


def export_zip(model: nn.Module, merged: bool, request: CompressionRequest, tokenizer_path=None) -> bytes:
    """A zip of the compressed model (MPO layers) or of its merged dense copy, with tokenizer and plan.

    ``model`` is left as it is (merging works on a copy). Weights are stored
    uncompressed in the zip: float tensors barely deflate.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        if merged:
            saved = copy.deepcopy(model)
            mpo_core.merge_mpo(saved)
            saved.save_pretrained(folder, safe_serialization=True)
        else:
            saved = model
            mpo_core.save_mpo_model(model, folder)
        if tokenizer_path is not None:
            from transformers import AutoTokenizer

            check_model_folder(tokenizer_path)
            AutoTokenizer.from_pretrained(str(tokenizer_path), trust_remote_code=False).save_pretrained(folder)
        plan = {"format": "merged" if merged else "mpo", "mpo_config": request.mpo_config().to_dict(),
                "total_params": mpo_core.count_parameters(saved).total}
        (folder / PLAN_FILE).write_text(json.dumps(plan, indent=1))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                stored = zipfile.ZIP_STORED if file.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                archive.write(file, file.relative_to(folder).as_posix(), compress_type=stored)
    return buffer.getvalue()


def zip_file_name(request: CompressionRequest, merged: bool) -> str:
    kind = "merged" if merged else "mpo"
    return f"minilm-{kind}-rho{request.ratio:.2f}-n{request.n}.zip"


# --------------------------------------------------------------------------- effect on the model
@dataclass(frozen=True)
class EffectSample:
    """Sentence pairs with gold similarity scores, and the original model's embeddings of them."""

    pairs: tuple[tuple[str, str], ...]
    scores: tuple[float, ...]
    source: str  # the file they came from
    reference: object  # torch.Tensor (2 * pairs, hidden): the original's embeddings (see pair_embeddings)


def effect_sample(base: nn.Module, tokenizer, data_dir, size: int = STS_PAIRS, seed: int = 0) -> EffectSample:
    """A seeded sample of ``size`` STS-B dev pairs from ``data_dir``, embedded by the original ``base``.

    Raises ``FileNotFoundError`` / ``ValueError`` (with the path) when the GLUE folder has no STS-B dev file.
    """
    split = load_glue_split("stsb", "dev", data_dir, max_examples=size, seed=seed)
    pairs = tuple(zip(split.texts_a, split.texts_b))
    return EffectSample(pairs, tuple(float(v) for v in split.labels), split.source,
                        pair_embeddings(base, tokenizer, pairs))


def embedding_batches(pairs: int) -> int:
    """Forward passes :func:`pair_embeddings` makes for ``pairs`` sentence pairs (its batches of sentences)."""
    batch = inspect.signature(sentence_embeddings).parameters["batch_size"].default
    return math.ceil(2 * int(pairs) / batch)


def embed_pace(pairs: int = STS_PAIRS) -> Pace:
    """A :class:`Pace` over embedding ``pairs`` sentence pairs, one item per batch (see :func:`app.pace.forward_steps`)."""
    return Pace(embedding_batches(pairs), EMBED_BATCHES_PER_SECOND)


def model_effect(model: nn.Module, tokenizer, sample: EffectSample) -> Agreement:
    """How the compressed ``model``'s sentence embeddings and zero-shot STS-B compare with the original's."""
    return embedding_agreement(sample.reference, model, tokenizer, sample.pairs, sample.scores)


def effect_rows(effect: Agreement) -> list[tuple[str, str, str]]:
    """Three numbers for the page, ``(label, value, help)``: agreement, STS-B original, STS-B compressed."""
    return [
        ("Embedding agreement (cos)", f"{effect.cosine_mean:.3f}",
         f"Mean cosine between the original's and the compressed model's sentence embedding (mean pooling, "
         f"as the packaged MiniLM was trained) over {effect.sentences} STS-B sentences; the worst sentence: "
         f"{effect.cosine_min:.3f}. 1 = the same direction, 0 = unrelated."),
        ("STS-B Spearman, original", f"{effect.spearman_original:.3f}",
         "Zero-shot STS-B on the sample: Spearman correlation between the gold similarity scores and the cosine "
         "of each pair's two embeddings, for the original model (no fine-tuning)."),
        ("STS-B Spearman, compressed", f"{effect.spearman_compressed:.3f}",
         "The same for the compressed model, before any fine-tuning: what the error bound costs on a task. "
         "MPOP recovers it by fine-tuning the auxiliary tensors (Squeeze training page)."),
    ]


def effect_note(effect: Agreement) -> str:
    """What the three numbers of :func:`effect_rows` say together, in words, from their values."""
    cos, worst = effect.cosine_mean, effect.cosine_min
    measured = f"mean cosine {cos:.3f}, worst sentence {worst:.3f}; 1 = the same direction, 0 = unrelated"
    if cos >= 0.9:
        agree = f"the compressed encoder's embeddings point almost where the original's do ({measured})"
    elif cos >= 0.5:
        agree = f"the compressed encoder's embeddings have moved but stay close to the original's ({measured})"
    else:
        agree = (f"the compressed encoder's embeddings point elsewhere than the original's ({measured}): they "
                 "cannot replace the original's vectors, e.g. in a search index built with the original")
    text = f"**Embedding agreement** compares each sentence's embedding by the two models: {agree}."
    if effect.spearman_original is None or effect.spearman_compressed is None or not effect.spearman_original:
        return text
    kept = effect.spearman_compressed / effect.spearman_original
    scores = (f"Spearman {effect.spearman_compressed:.3f} against the original's {effect.spearman_original:.3f} "
              f"({100 * kept:.0f} % of it), before any fine-tuning")
    if cos < 0.5:
        text += (" **Zero-shot STS-B** compares sentences with each other under one model, so it can hold up when "
                 f"the agreement does not: the compressed model still ranks the pairs with {scores}.")
    else:
        text += f" **Zero-shot STS-B**: the compressed model ranks the pairs with {scores}."
    if kept < 0.95:
        text += " Fine-tuning the auxiliary tensors (Squeeze training page) recovers part of the gap."
    return text
