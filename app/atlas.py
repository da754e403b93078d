"""Back end of the Entropy atlas: every weight matrix of a model as an MPO, side by side.

Plain Python over :mod:`mpo_core` (no ``streamlit`` import). Each 2-D weight
of the packaged MiniLM is decomposed once per ``n`` (Algorithm 1, full bonds);
from the bond spectra alone the atlas then reads, per matrix,

* the entanglement entropy ``S_k`` of every bond (Eq. (6), nats),
* the full bond dims ``d_k`` (Eq. (2)) and the bond dims ``d'_k`` the allocator
  of :func:`mpo_core.bond_dims_for_ratio` keeps for a target ratio (Eq. (5)),
* the relative error bound of that cut (Eq. (4)),
* how the parameters split between the central tensor ``C`` and the
  auxiliary tensors.

What is slow is cached::

    build_atlas(n, cache_dir)        40 SVD chains and the central pairs' error   -> on disk (app.decomposition_cache,
                                     tables (~8 s at n = 5 on a busy 2-core CPU,     read back in ~0.5 s),
                                     minutes at n = 4 or 6)                          then st.cache_resource
    atlas_table(atlas, rho, cache)   allocated bond dims per matrix (~1-2 s)       -> on disk (JSON), st.cache_data
    figures                          from the table                                -> every rerun
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

import mpo_core
from app import decomposition_cache
from app.decomposition_cache import spectra_only  # the atlas' MPOs: spectra, no tensors
from mpo_core import MPO
from mpo_core.model.matrix_groups import EXCLUDED_COMPONENTS, GROUP_TABLE, layer_index
from mpo_core.tensor.validation import check_choice, check_num_tensors, check_number

DEFAULT_NUM_TENSORS = 5
NUM_TENSOR_CHOICES = (3, 4, 5, 6, 7)
DEFAULT_RATIO = 0.2
# Seconds a first build takes (nothing on disk yet), measured on the 2-core CPU with its other core busy: at
# n = 4 and 6 the word embedding's central pair (1944-2688 wide) makes its error table the slow part.
FIRST_BUILD_SECONDS = {3: 10, 4: 180, 5: 15, 6: 60, 7: 15}

# Rows of the heatmap, top to bottom: the six matrices of one encoder layer.
ENCODER_GROUPS = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
GROUP_LABELS = {
    "query": "query W<sub>Q</sub>",
    "key": "key W<sub>K</sub>",
    "value": "value W<sub>V</sub>",
    "attention_output": "attention output W<sub>O</sub>",
    "ffn_in": "FFN in W<sub>1</sub>",
    "ffn_out": "FFN out W<sub>2</sub>",
    "word_embedding": "word embedding",
    "position_embedding": "position embedding",
    "token_type_embedding": "token-type embedding",
    "pooler": "pooler",
    "other": "other",
}
# Embedding tables that are no group of mpo_core.model.matrix_groups (the surgery leaves them dense).
EXTRA_EMBEDDINGS = {"position_embeddings": "position_embedding", "token_type_embeddings": "token_type_embedding"}

ProgressFn = Callable[[int, int, str], None]  # (done, total, weight name)


# --------------------------------------------------------------------------- quantities
@dataclass(frozen=True)
class Quantity:
    """One value per matrix that the heatmap can colour by."""

    column: str  # column of atlas_table
    title: str  # colour-bar and figure title, with units
    number_format: str  # d3 format of the cell labels


QUANTITIES = {
    "central_entropy": Quantity(
        "S at C (nats)", "entanglement entropy at the central tensor's bonds, mean of S<sub>c</sub>, S<sub>c+1</sub> "
        "(nats, Eq. 6)", ".2f",
    ),
    "max_entropy": Quantity("max S_k (nats)", "largest bond entropy max<sub>k</sub> S<sub>k</sub> (nats, Eq. 6)", ".2f"),
    "central_share": Quantity(
        "central share at d'", "central tensor's share of the MPO parameters at the chosen d'<sub>k</sub>", ".0%",
    ),
    "bond_ratio": Quantity("Σd'/Σd", "chosen over full bond dims, Σ<sub>k</sub> d'<sub>k</sub> / Σ<sub>k</sub> d<sub>k</sub>", ".2f"),
    "error_bound": Quantity(
        "relative error bound (Eq. 4)", "relative error bound √(Σ ε<sub>k</sub>²) / ‖M‖<sub>F</sub> at d'<sub>k</sub> (Eq. 4)",
        ".0%",
    ),
}
QUANTITY_LABELS = {
    "central_entropy": "Entropy at the central tensor (Eq. 6)",
    "max_entropy": "Largest bond entropy (Eq. 6)",
    "central_share": "Central tensor's share of parameters",
    "bond_ratio": "Chosen / full bond dims",
    "error_bound": "Relative error bound at d′ (Eq. 4)",
}


# --------------------------------------------------------------------------- decomposition
def weight_group(name: str) -> str:
    """The role of a state-dict weight (``...attention.self.query.weight`` -> ``"query"``).

    Same table as :func:`mpo_core.model.matrix_groups.matrix_group`, read from the
    name alone (the kind of module is told by its ``embeddings`` suffix), so
    the atlas needs no model object; the position and token-type tables get
    roles of their own.
    """
    module = name.removesuffix(".weight")
    last = module.rsplit(".", 1)[-1]
    if last in EXTRA_EMBEDDINGS:
        return EXTRA_EMBEDDINGS[last]
    if any(c in EXCLUDED_COMPONENTS for c in module.split(".")):
        return "other"
    kind = "embedding" if last.endswith("embeddings") else "linear"
    for group, group_kind, tails in GROUP_TABLE:
        if kind == group_kind and any(module == t or module.endswith("." + t) for t in tails):
            return group
    return "other"


def spectra_norm(mpo: MPO) -> float:
    """``||M||_F`` from the Schmidt values of any bond (their squares sum to it squared)."""
    return math.sqrt(float((mpo.singular_values[0].double() ** 2).sum()))


@dataclass(frozen=True)
class AtlasEntry:
    """One weight matrix of the atlas."""

    name: str  # state-dict name, e.g. "encoder.layer.0.attention.self.query.weight"
    group: str  # role: "query", ..., "word_embedding", "position_embedding", "pooler"
    layer: int | None  # encoder layer, None outside the layers
    mpo: MPO  # full-bond MPO, spectra only (see spectra_only)
    norm: float  # ||M||_F
    key: str | None = None  # its app.decomposition_cache key (None when built without the disk cache)


@dataclass(frozen=True)
class Atlas:
    """All weight matrices of one model decomposed with the same ``n``."""

    n: int
    entries: tuple[AtlasEntry, ...]
    seconds: float  # wall time to build it (decompositions, or reading them from the disk cache)
    from_cache: int = 0  # how many entries were read from the disk cache instead of decomposed

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def entry(self, name: str) -> AtlasEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no matrix named {name!r} in the atlas; choose one of {self.names[:3]}...")


def _decompose(name: str, model_path, shape) -> MPO:
    return spectra_only(mpo_core.decompose(mpo_core.load_weight_matrix(name, model_path), shape=shape))


def _spectra(name: str, n: int, model_path, rows: int, cols: int, cache_dir) -> tuple[MPO, str | None, bool]:
    """``(spectra-only MPO, cache key, read from the disk cache?)`` of one weight: planned shape, full bonds."""
    shape = mpo_core.plan_shape(rows, cols, n=n)
    if cache_dir is None:
        return _decompose(name, model_path, shape), None, False
    where = decomposition_cache.folder(cache_dir)
    key = decomposition_cache.weight_key(name, model_path or mpo_core.default_model_path(), n, shape.out_factors,
                                         shape.in_factors)
    mpo = decomposition_cache.load(where, key)
    if mpo is not None:
        return mpo, key, True
    mpo = _decompose(name, model_path, shape)
    try:
        decomposition_cache.save(where, key, mpo, {"weight": name, "n": n})
    except OSError:  # a read-only or full cache folder costs the next visit time, not this one its atlas
        pass
    return mpo, key, False


def build_atlas(
    n: int = DEFAULT_NUM_TENSORS,
    model_path=None,
    names: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    cache_dir=None,
) -> Atlas:
    """Decompose every 2-D weight of the model (or just ``names``) into an ``n``-tensor MPO.

    ``progress(done, total, name)`` is called after each matrix. With ``cache_dir`` (the dashboard's cache
    folder) each decomposition is read from :mod:`app.decomposition_cache` when there, and stored when not.
    """
    check_num_tensors(n)
    shapes = mpo_core.list_weight_matrices(model_path)
    names = list(shapes) if names is None else list(names)
    unknown = [w for w in names if w not in shapes]
    if unknown:
        raise KeyError(f"no weight named {unknown[0]!r} in the model; see mpo_core.list_weight_matrices().")
    entries, loaded, start = [], 0, time.perf_counter()
    for done, name in enumerate(names, 1):
        mpo, key, cached = _spectra(name, n, model_path, *shapes[name], cache_dir)
        loaded += cached
        entries.append(AtlasEntry(name, weight_group(name), layer_index(name), mpo, spectra_norm(mpo), key))
        if progress is not None:
            progress(done, len(names), name)
    return Atlas(n, tuple(entries), time.perf_counter() - start, loaded)


# --------------------------------------------------------------------------- table
def _dims(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def central_bonds(mpo: MPO) -> tuple[int, ...]:
    """Indices (0-based) of the bonds of the central tensor: ``c - 1`` and ``c``, where they exist."""
    return tuple(k for k in (mpo.center - 1, mpo.center) if 0 <= k < mpo.n - 1)


def chosen_bond_dims(entry: AtlasEntry, ratio: float) -> tuple[int, ...]:
    """``d'_k`` for a target Eq. (5) ratio: the allocation of :func:`mpo_core.bond_dims_for_ratio`, clipped.

    Clipping (:func:`mpo_core.clip_bond_dims`) gives the bonds a truncated MPO
    really has, as :func:`mpo_core.apply_mpo` builds it.
    """
    return mpo_core.clip_bond_dims(entry.mpo.shape, mpo_core.bond_dims_for_ratio(entry.mpo, ratio))


def matrix_row(entry: AtlasEntry, ratio: float) -> dict:
    """Every atlas number of one matrix at the target ratio."""
    mpo, shape = entry.mpo, entry.mpo.shape
    full, chosen = shape.full_bond_dims, chosen_bond_dims(entry, ratio)
    entropies = mpo_core.entanglement_entropy(mpo)
    split_full = mpo_core.parameter_split(shape, full, mpo.center)
    split = mpo_core.parameter_split(shape, chosen, mpo.center)
    bound = mpo_core.truncation_error_bound(mpo, chosen)
    return {
        "name": entry.name,
        "group": entry.group,
        "layer": entry.layer,
        "shape": f"{shape.out_features}×{shape.in_features}",
        "i_k": _dims(shape.out_factors),
        "j_k": _dims(shape.in_factors),
        "full d_k (Eq. 2)": _dims(full),
        "chosen d'_k": _dims(chosen),
        "S_k (Eq. 6, nats)": ", ".join(f"{s:.2f}" for s in entropies),
        QUANTITIES["central_entropy"].column: float(np.mean([entropies[k] for k in central_bonds(mpo)])),
        QUANTITIES["max_entropy"].column: max(entropies),
        "ln max d_k (nats)": math.log(max(full)),
        QUANTITIES["bond_ratio"].column: sum(chosen) / sum(full),
        "ρ at d' (Eq. 5)": split.compression_ratio,
        QUANTITIES["error_bound"].column: bound / entry.norm if entry.norm > 0 else 0.0,
        "central params at d'": split.central,
        "auxiliary params at d'": split.auxiliary,
        QUANTITIES["central_share"].column: split.central / split.total,
        "central share, full d": split_full.central / split_full.total,
        "dense params": shape.num_matrix_params,
    }


TABLE_SUBDIR = "atlas"  # tables by ratio, beside the decompositions in the cache folder
TABLE_VERSION = 1  # bump when a column's meaning changes


def table_key(atlas: Atlas, ratio: float) -> str | None:
    """Disk-cache key of the table at ``ratio``: its decompositions' keys; ``None`` if one has none."""
    keys = [e.key for e in atlas.entries]
    if None in keys:
        return None
    return decomposition_cache.entry_key({"decompositions": keys}, {"atlas_table": TABLE_VERSION, "ratio": ratio})


def atlas_table(atlas: Atlas, ratio: float, cache_dir=None) -> pd.DataFrame:
    """One row per matrix (index: state-dict name), in the atlas' order.

    With ``cache_dir`` the rows (allocated bond dims and all, ~1 s) are read from, or stored in,
    ``<cache_dir>/atlas`` as JSON.
    """
    check_number("the target compression ratio", ratio, minimum=0)
    key = table_key(atlas, ratio) if cache_dir is not None else None
    where = Path(cache_dir) / TABLE_SUBDIR if key is not None else None
    rows = decomposition_cache.load_json(where, key) if key is not None else None
    if not isinstance(rows, list) or [r.get("name") for r in rows if isinstance(r, dict)] != atlas.names:
        rows = [matrix_row(e, ratio) for e in atlas.entries]
        if key is not None:
            try:
                decomposition_cache.save_json(where, key, rows)
            except OSError:
                pass
    table = pd.DataFrame(rows).set_index("name")
    table["layer"] = table["layer"].astype("Int64")
    return table


def layered(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the heatmap: the six encoder matrices of each layer."""
    return table[table["layer"].notna() & table["group"].isin(ENCODER_GROUPS)]


def time_help(atlas: Atlas) -> str:
    """Where the atlas' decompositions came from: the disk cache, this visit, or both."""
    total = len(atlas.entries)
    if atlas.from_cache == total:
        return "All matrices read from the disk cache (decomposed on an earlier visit; full bonds, this n)."
    made = "All matrices" if atlas.from_cache == 0 else f"{total - atlas.from_cache} of {total} matrices"
    return f"{made} decomposed now (full bonds, this n) and stored in the disk cache for the next visit."


def overview_rows(atlas: Atlas, table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The page's four headline numbers as ``(label, value, help)``."""
    dense, central, auxiliary = (int(table[c].sum()) for c in ("dense params", "central params at d'",
                                                               "auxiliary params at d'"))
    return [
        ("Weight matrices", str(len(table)), ""),
        (TIME_LABEL, f"{atlas.seconds:.1f} s", time_help(atlas)),
        ("All matrices: ρ at d′ (Eq. 5)", f"{(central + auxiliary) / dense:.4f}",
         "Σ MPO parameters at the chosen d′ₖ / Σ matrix entries."),
        ("Central tensors' share at d′", f"{100 * central / (central + auxiliary):.1f} %", ""),
    ]


TIME_LABEL = "Time to build (CPU)"  # machine-dependent: not part of the page's snapshot


def percent(fraction: float) -> str:
    """``0.887 -> "88.7 %"``: three significant digits, as the Decompose page writes its errors."""
    return f"{100 * fraction:.3g} %"


BOUND_OVER_NOTE = (
    "The Eq. (4) bound passes 100 % here because it adds every bond's discarded energy as if each cut were made "
    "alone, which over-counts at deep cuts; Open in Decompose measures the true error of this cut."
)


def bound_note(relative_bound: float) -> str | None:
    """A sentence for the page when a relative Eq. (4) bound is over 100 % (else ``None``)."""
    return BOUND_OVER_NOTE if relative_bound > 1 else None


def ordered_names(table: pd.DataFrame) -> list[str]:
    """Weights layer by layer (query, key, value, attention output, FFN in, FFN out), then the others."""
    rows = layered(table)
    order = sorted(rows.index, key=lambda w: (rows.at[w, "layer"], ENCODER_GROUPS.index(rows.at[w, "group"])))
    return order + [w for w in table.index if w not in rows.index]


def outside_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Matrices outside the encoder layers (embeddings, pooler), shown beside the heatmap."""
    return table.drop(index=layered(table).index)


# --------------------------------------------------------------------------- heatmap
# Titles start below the row of plotly's toolbar (and Streamlit's fullscreen button), whatever the width.
TITLE_UNDER_TOOLBAR = {"x": 0, "xref": "paper", "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 34}}
TOP_MARGIN = 90

def heatmap_grid(table: pd.DataFrame, quantity: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(values, names)``: matrix type x layer grids of a quantity and of the weight names."""
    column = QUANTITIES[quantity].column
    rows = layered(table).reset_index()
    groups = [g for g in ENCODER_GROUPS if g in set(rows["group"])]
    values = rows.pivot(index="group", columns="layer", values=column).reindex(groups)
    names = rows.pivot(index="group", columns="layer", values="name").reindex(groups)
    return values, names


def heatmap_figure(table: pd.DataFrame, quantity: str, highlight: str | None = None) -> go.Figure:
    """Matrix type (rows) x encoder layer (columns), coloured by ``quantity``; ``highlight`` outlines one matrix.

    An invisible marker sits on every cell: plotly heatmaps cannot be
    point-selected, markers can, so a click selects the cell's matrix
    (read back with :func:`selected_weight`).
    """
    check_choice("quantity", quantity, QUANTITIES)
    spec = QUANTITIES[quantity]
    values, names = heatmap_grid(table, quantity)
    x = [f"layer {int(layer)}" for layer in values.columns]
    y = [GROUP_LABELS[g] for g in values.index]
    fig = go.Figure()
    fig.add_heatmap(
        z=values.to_numpy(dtype=float), x=x, y=y, colorscale="Viridis", hoverinfo="skip",
        texttemplate=f"%{{z:{spec.number_format}}}", colorbar={"title": {"text": spec.column, "side": "right"}},
    )
    cells = [(xi, yi, names.iat[r, c]) for r, yi in enumerate(y) for c, xi in enumerate(x)]
    fig.add_scatter(
        x=[c[0] for c in cells], y=[c[1] for c in cells], customdata=[c[2] for c in cells],
        mode="markers", marker={"size": 30, "opacity": 0, "symbol": "square"}, showlegend=False,
        selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}},
        hovertemplate="%{customdata}<br>%{y}, %{x}<extra></extra>", name="matrices",
    )
    outlined = [c for c in cells if c[2] == highlight]
    if outlined:
        fig.add_scatter(
            x=[outlined[0][0]], y=[outlined[0][1]], mode="markers", hoverinfo="skip", showlegend=False,
            marker={"size": 34, "symbol": "square-open", "color": "#e45756", "line": {"width": 3}},
            name="selected matrix",
        )
    fig.update_layout(
        title={"text": spec.title, **TITLE_UNDER_TOOLBAR},
        xaxis_title="encoder layer", yaxis={"title": "matrix type", "autorange": "reversed"},
        height=110 + 60 * len(y), margin={"t": TOP_MARGIN},
    )
    return fig


def selected_weight(points: Sequence[dict], table: pd.DataFrame) -> str | None:
    """The weight a plotly selection (``event.selection.points``) points at, if any.

    Reads the marker's ``customdata`` (the weight name) or, failing that, its
    cell ``(x, y)`` labels.
    """
    for point in points or ():
        name = point.get("customdata")
        if isinstance(name, (list, tuple)):
            name = name[0] if name else None
        if name in table.index:
            return name
        rows = layered(table)
        for weight, row in rows.iterrows():
            if point.get("x") == f"layer {row['layer']}" and point.get("y") == GROUP_LABELS[row["group"]]:
                return weight
    return None


# --------------------------------------------------------------------------- entropy profile
def entropy_profile_figure(atlas: Atlas, table: pd.DataFrame, name: str) -> go.Figure:
    """``S_k`` across the bonds of one matrix (Eq. (6)), with ``ln d_k`` and the same type in other layers."""
    entry = atlas.entry(name)
    mpo = entry.mpo
    chosen = tuple(int(d) for d in table.at[name, "chosen d'_k"].split(","))
    bonds = [f"k={k + 1}" for k in range(mpo.n - 1)]
    fig = go.Figure()
    others = [e for e in atlas.entries if e.group == entry.group and e.name != name] if entry.layer is not None else []
    for i, other in enumerate(others):
        fig.add_scatter(
            x=bonds, y=mpo_core.entanglement_entropy(other.mpo), mode="lines", line={"color": "#c7c7c7", "width": 1},
            name=f"{GROUP_LABELS[entry.group]}, other layers", legendgroup="others", showlegend=i == 0,
            hovertext=other.name, hoverinfo="text+y",
        )
    fig.add_scatter(
        x=bonds, y=[math.log(d) for d in mpo.shape.full_bond_dims], mode="lines+markers",
        line={"color": "black", "dash": "dot"}, name="ln d<sub>k</sub> (maximum, full bonds)",
    )
    fig.add_scatter(
        x=bonds, y=mpo_core.entanglement_entropy(mpo), mode="lines+markers", line={"color": "#4c78a8", "width": 3},
        name="S<sub>k</sub>, full d<sub>k</sub>",
    )
    fig.add_scatter(
        x=bonds, y=mpo_core.entanglement_entropy(mpo, chosen), mode="lines+markers",
        line={"color": "#f58518", "dash": "dash"}, name="S<sub>k</sub> of the kept λ<sub>k,1..d'k</sub>",
    )
    fig.update_layout(
        title={"text": f"Entropy profile of {name}, Eq. (6)", **TITLE_UNDER_TOOLBAR}, margin={"t": TOP_MARGIN},
        xaxis_title="bond k (between T<sub>k</sub> and T<sub>k+1</sub>)",
        yaxis_title="S<sub>k</sub> (nats)",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
