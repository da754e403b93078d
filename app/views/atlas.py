"""Entropy atlas page: every weight matrix of the packaged MiniLM as an MPO, layer by layer.

The decompositions (one per matrix and ``n``) are kept in a cache_resource
store, filled outside any cached function so the first visit can show a
progress bar; the allocated bond dims per target ratio are cached as data.
Everything else is drawn from the table on each rerun.
"""
from __future__ import annotations

import streamlit as st

from app.views import first_paint

st.title("Entropy atlas")
st.caption(
    "Every weight matrix of the packaged MiniLM (a 6-layer BERT) as an MPO: entanglement entropy per bond "
    "(Eq. 6), full vs chosen bond dims at a target ratio (Eq. 2, 5), and where the central tensor's share "
    "of parameters sits (MPOP, ACL 2021)."
)
AREA = first_paint.first_paint("atlas", "atlas_n")  # the default view, before the engine is imported

from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

import pandas as pd  # noqa: E402

import mpo_core  # noqa: E402
from app import atlas  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402

TABLE_FORMATS = {
    "S at C (nats)": st.column_config.NumberColumn(format="%.3f"),
    "max S_k (nats)": st.column_config.NumberColumn(format="%.3f"),
    "ln max d_k (nats)": st.column_config.NumberColumn(format="%.3f"),
    "Σd'/Σd": st.column_config.NumberColumn(format="%.3f"),
    "ρ at d' (Eq. 5)": st.column_config.NumberColumn(format="%.4f"),
    "relative error bound (Eq. 4)": st.column_config.NumberColumn(format="percent"),
    "central share at d'": st.column_config.NumberColumn(format="percent"),
    "central share, full d": st.column_config.NumberColumn(format="percent"),
}


# --------------------------------------------------------------------------- caches
@st.cache_resource(show_spinner=False)
def atlas_store() -> dict:
    """Atlases by ``(model path, n)``; filled by :func:`load_atlas`, which can draw a progress bar."""
    return {}


def load_atlas(n: int) -> atlas.Atlas:
    store, key = atlas_store(), (str(mpo_core.default_model_path()), n)
    if key not in store:
        bar = st.progress(0.0, text=f"Decomposing every weight matrix into an n = {n} MPO (Algorithm 1)…")

        def progress(done: int, total: int, name: str) -> None:
            bar.progress(done / total, text=f"Decomposed {done}/{total}: {name}")

        store[key] = atlas.build_atlas(n, progress=progress)
        bar.empty()
    return store[key]


@st.cache_data(show_spinner="Choosing bond dims for the target ratio…", max_entries=64)
def cached_table(model: str, n: int, ratio: float, _atlas: atlas.Atlas) -> pd.DataFrame:
    return atlas.atlas_table(_atlas, ratio)


# --------------------------------------------------------------------------- controls
def controls() -> tuple[int, float, str]:
    st.sidebar.header("Atlas")
    n = st.sidebar.select_slider(
        "Number of local tensors n", atlas.NUM_TENSOR_CHOICES, atlas.DEFAULT_NUM_TENSORS, key="atlas_n",
        help="The papers use n = 5; every matrix is decomposed once per n (cached).",
    )
    ratio = st.sidebar.slider(
        "Target compression ratio ρ (Eq. 5)", 0.01, 1.0, atlas.DEFAULT_RATIO, 0.01, key="atlas_ratio",
        help="MPO parameters / matrix entries per matrix; the chosen d′ₖ are those of "
        "mpo_core.bond_dims_for_ratio (the least error within the ratio, over all bonds jointly).",
    )
    quantity = st.sidebar.radio(
        "Heatmap colour", list(atlas.QUANTITIES), format_func=atlas.QUANTITY_LABELS.get, key="atlas_quantity",
    )
    return int(n), float(ratio), quantity


def follow_click(table: pd.DataFrame) -> None:
    """A newly clicked heatmap cell selects its matrix (read before the heatmap and selectbox are drawn)."""
    try:
        points = list(st.session_state.get("atlas_heatmap")["selection"]["points"])
    except (KeyError, TypeError):
        points = []
    name = atlas.selected_weight(points, table)
    if name is not None and name != st.session_state.get("_atlas_clicked"):
        st.session_state["atlas_weight"] = name
    st.session_state["_atlas_clicked"] = name


# --------------------------------------------------------------------------- display
def show_overview(book: atlas.Atlas, table: pd.DataFrame) -> None:
    rows = atlas.overview_rows(book, table)
    for col, (label, value, help_text) in zip(st.columns(len(rows)), rows):
        col.metric(label, value, help=help_text or None)


def show_selected(book: atlas.Atlas, table: pd.DataFrame, names: list[str]) -> None:
    st.subheader("One matrix")
    left, right = st.columns([3, 1])
    name = left.selectbox(
        "Matrix", names, key="atlas_weight",
        format_func=lambda w: f"{w}  ({table.at[w, 'shape']})",
    )
    right.write("")  # align the button with the selectbox
    if right.button("Open in Decompose", key="open_in_decompose", type="primary",
                    help="Opens this weight on the Decompose page (its own n and bond sliders, full bonds)."):
        st.session_state["open_weight"] = name
        st.switch_page("views/decompose.py")
    row = table.loc[name]
    cols = st.columns(5)
    cols[0].metric("full dₖ (Eq. 2)", row["full d_k (Eq. 2)"])
    cols[1].metric("chosen d′ₖ", row["chosen d'_k"])
    cols[2].metric("S at C (nats, Eq. 6)", f"{row['S at C (nats)']:.3f}", help="Mean entropy of the central tensor's bonds.")
    cols[3].metric("Error bound (Eq. 4)", f"{100 * row['relative error bound (Eq. 4)']:.1f} %",
                   help="Relative: √(Σ ε_k²) / ‖M‖_F at d′ₖ; a bound summed over bonds, so it may pass 100 %.")
    share = row["central share at d'"]
    cols[4].metric("Central share at d′", f"{100 * share:.1f} %",
                   help=f"At full bonds: {100 * row['central share, full d']:.1f} %.")
    st.plotly_chart(atlas.entropy_profile_figure(book, table, name), key="atlas_profile")


def main() -> None:
    n, ratio, quantity = controls()
    try:
        book = load_atlas(n)
        table = cached_table(str(mpo_core.default_model_path()), n, ratio, book)
    except USER_ERRORS as exc:
        AREA.empty()
        st.error(_message(exc))
        return
    AREA.empty()
    show_overview(book, table)
    names = atlas.ordered_names(table)
    follow_click(table)
    st.plotly_chart(
        atlas.heatmap_figure(table, quantity, highlight=st.session_state.get("atlas_weight", names[0])),
        key="atlas_heatmap", on_select="rerun", selection_mode="points",
    )
    st.subheader("Outside the encoder layers")
    st.dataframe(atlas.outside_layers(table).drop(columns="layer"), column_config=TABLE_FORMATS)
    show_selected(book, table, names)
    with st.expander("All matrices", expanded=False):
        st.dataframe(table, column_config=TABLE_FORMATS)


main()
