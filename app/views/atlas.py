"""Entropy atlas page: every weight matrix of the packaged MiniLM as an MPO, layer by layer.

The decompositions (one per matrix and ``n``) are read from the disk cache
under the dashboard's cache folder (:mod:`app.decomposition_cache`), or made
and stored there with a progress bar, then kept in a cache_resource store
for every session; the allocated bond dims per target ratio are cached as
data. Everything else is drawn from the table on each rerun. A first visit
paints the shipped snapshot of the default view, with the sidebar's controls
disabled, before the engine is imported.
"""
from __future__ import annotations

import time

import streamlit as st

from app import snapshot
from app.views import first_paint

N_LABEL = "Number of local tensors n"
RATIO_LABEL = "Target compression ratio ρ (Eq. 5)"
RATIO_RANGE = (0.01, 1.0, 0.01)  # min, max, step
COLOUR_LABEL = "Heatmap colour"
NOT_LIVE_YET = ("The controls go live once the engine has loaded and the atlas is read from the disk cache "
                "(about 5-10 s on a 2-core CPU); the first time on a server its 40 matrices are decomposed "
                "first, with a progress bar.")


def preview_controls(state: dict, box) -> None:
    """The sidebar of the snapshot's view, disabled, until the live controls replace it."""
    with box.container():
        st.header("Atlas")
        st.caption(NOT_LIVE_YET)
        st.select_slider(N_LABEL, state["n_choices"], state["n"], disabled=True, key="_preview_atlas_n")
        st.slider(RATIO_LABEL, *RATIO_RANGE[:2], state["ratio"], RATIO_RANGE[2], disabled=True,
                  key="_preview_atlas_ratio")
        st.radio(COLOUR_LABEL, state["quantity_labels"], disabled=True, key="_preview_atlas_quantity")


st.title("Entropy atlas")
st.caption(
    "Every weight matrix of the packaged MiniLM (a 6-layer BERT) as an MPO: entanglement entropy per bond "
    "(Eq. 6), full vs chosen bond dims at a target ratio (Eq. 2, 5), and where the central tensor's share "
    "of parameters sits (MPOP, ACL 2021)."
)
PREVIEW, CONTROLS = st.sidebar.empty(), st.sidebar.container()  # the disabled preview, emptied once these are live
if "atlas_n" not in st.session_state and (SNAPSHOT := snapshot.load("atlas")) and "n_choices" in SNAPSHOT["state"]:
    preview_controls(SNAPSHOT["state"], PREVIEW)
AREA = first_paint.first_paint("atlas", "atlas_n")  # the default view, before the engine is imported

# The engine (torch) imports while the shared imports finish in their thread; per-module import locks keep
# either from seeing the other's modules half-built.
import mpo_core  # noqa: E402
from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

import pandas as pd  # noqa: E402

from app import allowed_paths, atlas, cpu_threads  # noqa: E402
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
    """Atlases by ``(model path, cache folder, n)``; filled by :func:`load_atlas`, which can draw a progress bar."""
    return {}


def cache_root() -> str:
    """The dashboard's cache folder (``--cache-dir``, ``$MPO_CACHE_DIR`` or ``cache/``; README, "Folders")."""
    return str(allowed_paths.dashboard_roots().root("cache"))


def load_atlas(n: int) -> atlas.Atlas:
    """The atlas at ``n``: from this process, else from the disk cache, else decomposed (progress and time left)."""
    store, key = atlas_store(), (str(mpo_core.default_model_path()), cache_root(), n)
    if key not in store:
        first = atlas.FIRST_BUILD_SECONDS.get(n)
        bar = st.progress(0.0, text=f"Reading the n = {n} atlas from the disk cache, or decomposing every weight "
                                    f"matrix (Algorithm 1; about {first} s the first time on a 2-core CPU)…")
        start, sizes, done_size = time.perf_counter(), mpo_core.list_weight_matrices(), [0]
        total_size = sum(rows * cols for rows, cols in sizes.values())

        def progress(done: int, total: int, name: str) -> None:  # by entries: the word embedding is half the work
            done_size[0] += sizes[name][0] * sizes[name][1]
            left = (time.perf_counter() - start) / done_size[0] * (total_size - done_size[0])
            bar.progress(done_size[0] / total_size, text=f"{done}/{total} matrices ({name}); about {left:.0f} s left")

        with cpu_threads.free_cores():  # a second thread on a busy core made this 20x slower
            store[key] = atlas.build_atlas(n, progress=progress, cache_dir=key[1])
        bar.empty()
    return store[key]


@st.cache_data(show_spinner="Choosing bond dims for the target ratio (about 1-2 s; then kept on disk)…",
               max_entries=64)
def cached_table(model: str, cache: str, n: int, ratio: float, _atlas: atlas.Atlas) -> pd.DataFrame:
    with cpu_threads.free_cores():
        return atlas.atlas_table(_atlas, ratio, cache_dir=cache)


# --------------------------------------------------------------------------- controls
def controls() -> tuple[int, float, str]:
    PREVIEW.empty()
    box = CONTROLS
    box.header("Atlas")
    n = box.select_slider(
        N_LABEL, atlas.NUM_TENSOR_CHOICES, atlas.DEFAULT_NUM_TENSORS, key="atlas_n",
        help="The papers use n = 5; every matrix is decomposed once per n and kept in the disk cache (the first "
             "time: " + ", ".join(f"n = {k} about {v} s" for k, v in atlas.FIRST_BUILD_SECONDS.items()) + ").",
    )
    ratio = box.slider(
        RATIO_LABEL, *RATIO_RANGE[:2], atlas.DEFAULT_RATIO, RATIO_RANGE[2], key="atlas_ratio",
        help="MPO parameters / matrix entries per matrix; the chosen d′ₖ are those of "
        "mpo_core.bond_dims_for_ratio (the least error within the ratio, over all bonds jointly).",
    )
    quantity = box.radio(
        COLOUR_LABEL, list(atlas.QUANTITIES), format_func=atlas.QUANTITY_LABELS.get, key="atlas_quantity",
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


def open_in_decompose(name: str, n: int, ratio: float) -> None:
    """Ask the Decompose page for this weight at this n and ρ (it reads and clears the request)."""
    st.session_state["open_weight"], st.session_state["open_n"], st.session_state["open_ratio"] = name, n, ratio


def show_selected(book: atlas.Atlas, table: pd.DataFrame, names: list[str], ratio: float) -> None:
    st.subheader("One matrix")
    left, right = st.columns([3, 1])
    name = left.selectbox(
        "Matrix", names, key="atlas_weight",
        format_func=lambda w: f"{w}  ({table.at[w, 'shape']})",
    )
    right.write("")  # align the button with the selectbox
    if right.button("Open in Decompose", key="open_in_decompose", type="primary",
                    help=f"Opens this weight on the Decompose page at n = {book.n} and ρ = {ratio:g}: the same "
                         "d′ₖ and Eq. (4) bound, and the true error of that cut."):
        open_in_decompose(name, book.n, ratio)
        st.switch_page("views/decompose.py")
    row = table.loc[name]
    dims = st.columns(2)  # bond dims side by side, wide enough for n = 7's six numbers
    dims[0].metric("full dₖ (Eq. 2)", row["full d_k (Eq. 2)"])
    dims[1].metric("chosen d′ₖ", row["chosen d'_k"], help=f"The least Eq. (4) error within ρ = {ratio:g} (Eq. 5).")
    cols = st.columns(3)
    cols[0].metric("S at C (nats, Eq. 6)", f"{row['S at C (nats)']:.3f}", help="Mean entropy of the central tensor's bonds.")
    bound = row["relative error bound (Eq. 4)"]
    cols[1].metric("Error bound, relative (Eq. 4)", atlas.percent(bound),
                   help="√(Σ ε_k²) / ‖M‖_F at d′ₖ, as the Decompose page's 'Bound, relative'.")
    share = row["central share at d'"]
    cols[2].metric("Central share at d′", f"{100 * share:.1f} %",
                   help=f"At full bonds: {100 * row['central share, full d']:.1f} %.")
    note = atlas.bound_note(bound)
    if note:
        st.caption(note)
    st.plotly_chart(atlas.entropy_profile_figure(book, table, name), key="atlas_profile")


def main() -> None:
    n, ratio, quantity = controls()
    try:
        book = load_atlas(n)
        table = cached_table(str(mpo_core.default_model_path()), cache_root(), n, ratio, book)
    except USER_ERRORS as exc:
        AREA.empty()
        st.error(_message(exc))
        return
    AREA.empty()
    show_overview(book, table)
    names = atlas.ordered_names(table)
    follow_click(table)
    st.caption("Click a cell of the heatmap to select its matrix (shown under the table).")
    st.plotly_chart(
        atlas.heatmap_figure(table, quantity, highlight=st.session_state.get("atlas_weight", names[0])),
        key="atlas_heatmap", on_select="rerun", selection_mode="points",
    )
    st.subheader("Outside the encoder layers")
    st.dataframe(atlas.outside_layers(table).drop(columns="layer"), column_config=TABLE_FORMATS)
    show_selected(book, table, names, ratio)
    with st.expander("All matrices", expanded=False):
        st.dataframe(table, column_config=TABLE_FORMATS)


main()
