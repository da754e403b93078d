"""Decompose page: a weight matrix (or a picture) into an MPO, with one live slider per bond.

Opens with a plain explanation of what an MPO is and at the bonds of least
Eq. (4) error for the target ρ (0.3, or the Entropy atlas's ρ and n when the
atlas sent the matrix here). A first visit paints the shipped snapshot of
exactly that view (``app/snapshots/decompose.json``), with the sidebar's
controls shown disabled, before the engine is imported, then replaces both
with the live page.

Heavy work is cached: the matrix and its decomposition by (source, factors),
so a slider move never redoes the Algorithm 1 SVDs; the true error by the
bond dims as well. The fast numbers (Eq. (3)-(6) from the cached spectra)
render first; the true error fills its slots once computed.
"""
from __future__ import annotations

import streamlit as st

from app import snapshot
from app.views import first_paint

EXPLANATION = r"""
A **Matrix Product Operator (MPO)** writes one big matrix $M$ ($I \times J$) as a chain of $n$ small
tensors. Split the row index into digits $i_1 \dots i_n$ and the column index into $j_1 \dots j_n$
($I = \prod i_k$, $J = \prod j_k$); then every entry is a product of small matrices (Eq. 1):

$$M[i_1 \dots i_n,\; j_1 \dots j_n] = T_1[i_1, j_1]\; T_2[i_2, j_2] \cdots T_n[i_n, j_n]$$

where $T_k[i_k, j_k]$ is a $d_{k-1} \times d_k$ matrix. The $d_k$ are the **bond dimensions**, the links
of the chain drawn below; at their full size (Eq. 2) the chain is exact. The middle tensor, the
**central tensor** (orange), holds almost all the parameters: MPOP keeps it frozen as the model's core
knowledge. The small outer **auxiliary tensors** (blue) are what MPOP fine-tunes.
**Cutting a bond** from $d_k$ to $d'_k$ keeps its $d'_k$ largest singular values: the parameter count
drops (ratio ρ, Eq. 5), and the energy of the values thrown away is that bond's error (Eq. 3); the
bonds' errors add up to a bound on the whole error (Eq. 4). The page opens at the cut of least error
for the target ρ in the sidebar (0.3; the atlas's ρ for a matrix opened from the Entropy atlas); move
the bond sliders in the sidebar to see what each bond costs, or pick the sample picture to *see* it.
"""

# Labels shared by the disabled first-paint controls and the live ones.
SOURCE_LABELS = {"model": "Packaged model weight", "sample": "Sample picture (offline)",
                 "random": "Random matrix", "image": "Uploaded image"}
WEIGHT_LABEL = "Weight matrix (packaged MiniLM, a 6-layer BERT)"
BONDS_HEADER = "Bond dimensions d′ₖ"
TARGET_LABEL = "Target ρ of the optimal bonds"
N_LABEL = "Number of local tensors n"
OUT_LABEL, IN_LABEL = "Output factors i₁..iₙ (rows)", "Input factors j₁..jₙ (columns)"
NOT_LIVE_YET = ("The controls go live once the engine has loaded: about 5-10 s on a 2-core CPU, longer while "
                "other work keeps it busy.")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def bond_label(k: int, full: int) -> str:
    """``"d′₁ between T₁ and T₂ (full 18)"``: plain text, as it is also the slider's name for screen readers."""
    left, right = (str(i).translate(_SUBSCRIPT) for i in (k + 1, k + 2))
    return f"d′{left} between T{left} and T{right} (full {full})"


def weight_format(name: str, rows: int, cols: int) -> str:
    return f"{name}  ({rows}×{cols})"


def live(part: tuple):
    """The live container of a sidebar part ``(preview placeholder, container)``, its preview emptied."""
    preview, box = part
    preview.empty()
    return box


def first_visit() -> bool:
    """No widget of this page exists in the session yet, and no other page asked for a weight."""
    return "source" not in st.session_state and "open_weight" not in st.session_state


def preview_controls(state: dict, matrix_box, bonds_box, shape_box) -> None:
    """The sidebar of the snapshot's view, disabled, until the live controls replace it."""
    with matrix_box.container():
        st.header("Matrix")
        st.caption(NOT_LIVE_YET)
        st.radio("Source", list(SOURCE_LABELS.values()), disabled=True, key="_preview_source")
        st.selectbox(WEIGHT_LABEL, [weight_format(state["source"], *state["matrix_shape"])], disabled=True,
                     key="_preview_weight")
    with bonds_box.container():
        st.header(BONDS_HEADER)
        left, right = st.columns(2)
        left.button(f"ρ={state['preset_ratio']:g} best", disabled=True, key="_preview_preset")
        right.button("Full (exact)", disabled=True, key="_preview_full")
        for k, (d, full) in enumerate(zip(state["bond_dims"], state["full_bond_dims"])):
            st.slider(bond_label(k, full), 1, full, d, disabled=True, key=f"_preview_bond_{k}")
        st.number_input(TARGET_LABEL, value=state["preset_ratio"], format="%.3f", disabled=True,
                        key="_preview_target")
    with shape_box.container():
        st.header("Tensorization")
        st.number_input(N_LABEL, value=state["n"], disabled=True, key="_preview_n")
        st.text_input(OUT_LABEL, ",".join(map(str, state["out_factors"])), disabled=True, key="_preview_out")
        st.text_input(IN_LABEL, ",".join(map(str, state["in_factors"])), disabled=True, key="_preview_in")


st.title("Decompose a matrix into a Matrix Product Operator (MPO)")
with st.expander("What you are looking at", expanded=first_visit()):
    st.markdown(EXPLANATION)
# The sidebar in three parts (matrix, bonds right under it: what a visitor moves, tensorization), each a
# placeholder for its disabled preview on a first visit and the container its live controls go to.
MATRIX, BONDS, SHAPE = ((st.sidebar.empty(), st.sidebar.container()) for _ in range(3))
AREA = st.empty()  # the snapshot, then the live page
if first_visit() and (SNAPSHOT := snapshot.load("decompose")) is not None:
    with AREA.container():
        first_paint.show(SNAPSHOT)
    if "full_bond_dims" in SNAPSHOT["state"]:
        preview_controls(SNAPSHOT["state"], MATRIX[0], BONDS[0], SHAPE[0])

# The engine (torch, ~2.5 s cold) is imported only after the first paint, while the shared imports finish in
# their thread (per-module import locks keep either from seeing the other's modules half-built).
import mpo_core  # noqa: E402
from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

from app import allowed_paths, cpu_threads, decompose, decomposition_cache  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402


# --------------------------------------------------------------------------- caches
@st.cache_data(show_spinner=False)
def weight_shapes() -> dict[str, tuple[int, int]]:
    return decompose.model_weights()


@st.cache_resource(show_spinner="Loading the matrix…", max_entries=8)
def cached_matrix(source: decompose.MatrixSource):
    return decompose.load_matrix(source)


@st.cache_resource(show_spinner="Decomposing into an MPO (Algorithm 1): about 2 s for the packaged word embedding, "
                                "less for the other weights…", max_entries=8)
def cached_mpo(source: decompose.MatrixSource, out_factors: tuple[int, ...], in_factors: tuple[int, ...]):
    matrix = cached_matrix(source)
    with cpu_threads.free_cores():  # a second thread on a busy core slows the SVDs many times over
        return decompose.decompose_matrix(matrix, out_factors, in_factors)


def shipped_view(source: decompose.MatrixSource, out_factors, in_factors) -> dict | None:
    """The snapshot's numbers when this is the default view it was built for (checked by the snapshot test)."""
    shipped = snapshot.load("decompose")
    if shipped is None or source != decompose.MatrixSource():
        return None
    state = shipped["state"]
    if state["out_factors"] != list(out_factors) or state["in_factors"] != list(in_factors):
        return None
    return state


def disk_entry(source: decompose.MatrixSource, out_factors, in_factors) -> tuple | None:
    """``(folder, key)`` of a packaged weight's spectra in the disk cache shared with the Entropy atlas."""
    if source.kind != "model":
        return None
    try:
        root = allowed_paths.dashboard_roots().root("cache")
    except ValueError:  # an unusable cache folder: the page works without it
        return None
    key = decomposition_cache.weight_key(source.name, mpo_core.default_model_path(), len(out_factors), out_factors,
                                         in_factors)
    return decomposition_cache.folder(root), key


@st.cache_data(show_spinner="Choosing the bonds of least Eq. (4) error for the target ρ: about a second, or "
                            "minutes once for the word embedding at n = 4 or 6 (its central pair's error table, then "
                            "kept on disk)…", max_entries=32)
def cached_preset(source, out_factors, in_factors, ratio: float) -> tuple[int, ...]:
    """The optimal bonds for ``ratio``; for the default view the snapshot's (the allocator takes ~2 s there).

    A packaged weight's spectra come from the disk cache when the atlas (or an earlier visit) left them there:
    the same numbers the atlas chose its bonds from, without recomputing the central pair's error table.
    """
    view = shipped_view(source, out_factors, in_factors)
    if view is not None and view["preset_ratio"] == ratio:
        return tuple(view["bond_dims"])
    entry = disk_entry(source, out_factors, in_factors)
    spectra = decomposition_cache.load(*entry) if entry else None
    mpo = cached_mpo(source, out_factors, in_factors) if spectra is None else spectra
    with cpu_threads.free_cores():
        preset = decompose.preset_bond_dims(mpo, ratio)  # computes (and keeps on the MPO) the pair's error table
    if spectra is None and entry:
        try:
            decomposition_cache.save(*entry, decomposition_cache.spectra_only(mpo), {"weight": source.name})
        except OSError:
            pass
    return preset


@st.cache_data(show_spinner=False, max_entries=32)
def cached_true_error(source, out_factors, in_factors, bond_dims: tuple[int, ...]) -> decompose.TrueError:
    view = shipped_view(source, out_factors, in_factors)
    if view is not None and list(bond_dims) == view["bond_dims"]:
        exact = view["true_error"]
        return decompose.TrueError(tuple(exact["bond_dims"]), exact["absolute"], exact["relative"],
                                   tuple(exact["entropies"]))
    mpo, matrix = cached_mpo(source, out_factors, in_factors), cached_matrix(source)
    with cpu_threads.free_cores():
        return decompose.true_error(matrix, mpo, bond_dims, keep_reconstruction=source.kind == "image")


# --------------------------------------------------------------------------- controls
# Widgets whose value the page (or the atlas) also sets take it from Session State only, never from a
# default argument as well (Streamlit warns about a widget given both).
def model_controls(box) -> decompose.MatrixSource | None:
    try:
        shapes = weight_shapes()
    except USER_ERRORS as exc:
        box.error(_message(exc))
        return None
    names = list(shapes)
    if st.session_state.get("weight") not in shapes:
        st.session_state["weight"] = decompose.DEFAULT_WEIGHT if decompose.DEFAULT_WEIGHT in shapes else names[0]
    name = box.selectbox(WEIGHT_LABEL, names, key="weight", format_func=lambda w: weight_format(w, *shapes[w]))
    return decompose.MatrixSource(kind="model", name=name)


def random_controls(box) -> decompose.MatrixSource:
    side = decompose.MAX_RANDOM_SIDE
    rows = box.number_input("Rows (out_features)", 1, side, 256, key="random_rows")
    cols = box.number_input("Columns (in_features)", 1, side, 192, key="random_cols")
    seed = box.number_input("Seed", 0, 2**31 - 1, 0, key="random_seed")
    decay = box.slider(
        "Spectrum decay", 0.0, 3.0, 0.0, 0.1, key="random_decay",
        help="Singular values of the matrix ∝ (i+1)^−decay; 0 = plain Gaussian entries.",
    )
    return decompose.MatrixSource(kind="random", rows=int(rows), cols=int(cols), seed=int(seed), decay=float(decay))


def image_controls(box) -> decompose.MatrixSource | None:
    upload = box.file_uploader(
        "Image (converted to grayscale)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], key="image",
        help=f"Shrunk to at most {decompose.MAX_IMAGE_SIDE} pixels a side; each pixel is one matrix entry in [0, 1]. "
             f"At most {decompose.MAX_IMAGE_PIXELS // 10**6} megapixels (decoded) and "
             f"{st.get_option('server.maxUploadSize')} MB.",
    )
    if upload is None:
        st.info("Upload an image in the sidebar to decompose it as a matrix.")
        return None
    return decompose.MatrixSource(kind="image", name=upload.name, image=upload.getvalue())


def open_requested_weight() -> None:
    """Honour the Entropy atlas's request to open a weight at its n and ρ: set them before the widgets exist.

    The bonds then open at the atlas's d′ₖ (the least Eq. (4) error for that ρ), with freshly planned factors.
    """
    name = st.session_state.pop("open_weight", None)
    ratio, n = st.session_state.pop("open_ratio", None), st.session_state.pop("open_n", None)
    if name is None:
        return
    st.session_state["source"], st.session_state["weight"] = "model", name
    if ratio is not None:
        st.session_state["preset_ratio"] = float(ratio)
    if n is not None:
        st.session_state["n"] = int(n)
    for stale in ("_bonds_for", "_planned_for"):  # re-plan the factors, re-open the bonds at the preset
        st.session_state.pop(stale, None)


def source_controls(box) -> decompose.MatrixSource | None:
    box.header("Matrix")
    kind = box.radio("Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get, key="source")
    if kind == "model":
        return model_controls(box)
    if kind == "sample":
        box.caption(decompose.SAMPLE_CREDIT + "; each pixel is one matrix entry.")
        return decompose.sample_source()
    if kind == "random":
        return random_controls(box)
    return image_controls(box)


FACTOR_CHARS = 100  # n <= 9 factors of at most 7 digits, with separators, fit easily


def _replan(out_text: str, in_text: str) -> None:
    st.session_state["out_factors"], st.session_state["in_factors"] = out_text, in_text


def shape_controls(box, rows: int, cols: int):
    """n and the factors i_k / j_k (planned, editable); ``None`` after showing an error."""
    box.header("Tensorization")
    st.session_state.setdefault("n", decompose.DEFAULT_NUM_TENSORS)
    n = int(box.number_input(N_LABEL, 2, decompose.MAX_NUM_TENSORS, key="n",
                             help="The papers use n = 5 (Figure 2b compares 3, 5, 7)."))
    planned = decompose.plan(rows, cols, n)
    planned_text = decompose.format_factors(planned.out_factors), decompose.format_factors(planned.in_factors)
    # A new matrix size or n gets freshly planned factors; otherwise the user's edits stay.
    if st.session_state.get("_planned_for") != (rows, cols, n) or "out_factors" not in st.session_state:
        _replan(*planned_text)
        st.session_state["_planned_for"] = (rows, cols, n)
    out_text = box.text_input(
        OUT_LABEL, key="out_factors", max_chars=FACTOR_CHARS,
        help=f"n positive integers whose product is at least {rows} (extra rows are zero padding).",
    )
    in_text = box.text_input(
        IN_LABEL, key="in_factors", max_chars=FACTOR_CHARS,
        help=f"n positive integers whose product is at least {cols} (extra columns are zero padding).",
    )
    box.button("Re-plan factors", key="replan", on_click=_replan, args=planned_text)
    try:
        return decompose.plan(rows, cols, n, out_text, in_text)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return None


def _set_bonds(dims: tuple[int, ...]) -> None:
    for k, d in enumerate(dims):
        st.session_state[f"bond_{k}"] = int(d)


def preset_ratio() -> float:
    """The target ρ of the optimal bonds (the number input's, set from Session State only)."""
    return float(st.session_state.setdefault("preset_ratio", decompose.PRESET_RATIO))


def bond_sliders(box, mpo, preset: tuple[int, ...]) -> tuple[int, ...]:
    """One slider per bond, 1..d_k (Eq. (2)), opening at ``preset``; back to it when the full dims change."""
    full_dims = tuple(mpo.full_bond_dims)
    if st.session_state.get("_bonds_for") != full_dims:
        _set_bonds(preset)
        st.session_state["_bonds_for"] = full_dims
    for k, d in enumerate(preset):  # a slider not drawn in the last run (another page) lost its state
        st.session_state.setdefault(f"bond_{k}", int(d))
    box.header(BONDS_HEADER)
    ratio = preset_ratio()
    left, right = box.columns(2)
    left.button(f"ρ={ratio:g} best", key="preset_bonds", on_click=_set_bonds, args=(preset,),
                help=f"The bonds of least Eq. (4) error with ρ <= {ratio:g} (exact allocator; the target is "
                     "set below the sliders).")
    right.button("Full (exact)", key="reset_bonds", on_click=_set_bonds, args=(full_dims,),
                 help="Every bond at its full d_k (Eq. 2): the MPO equals the matrix.")
    dims = []
    for k, full in enumerate(full_dims):
        label = bond_label(k, full)
        if full == 1:  # a slider needs min < max; nothing to cut here
            box.caption(f"{label}: fixed at 1")
            dims.append(1)
        else:
            dims.append(box.slider(label, 1, full, key=f"bond_{k}"))
    box.number_input(TARGET_LABEL, 0.001, 1.0, step=0.05, format="%.3f", key="preset_ratio",
                     help="Then press the button above to apply it.")
    return tuple(dims)


# --------------------------------------------------------------------------- display
def show_metrics(rows) -> None:
    for start in range(0, len(rows), 5):
        cols = st.columns(5)
        for col, (label, value, help_text) in zip(cols, rows[start:start + 5]):
            col.metric(label, value, help=help_text or None)


def show_image_size(source: decompose.MatrixSource, matrix) -> None:
    width, height = decompose.image_size(source.image)
    if (height, width) != tuple(matrix.shape):
        st.caption(f"The picture is {width}×{height} pixels; it is decomposed shrunk to {matrix.shape[1]}×"
                   f"{matrix.shape[0]} (at most {decompose.MAX_IMAGE_SIDE} pixels a side).")


def show_image(matrix, exact: decompose.TrueError) -> None:
    cols = st.columns(3)
    cols[0].image(matrix.numpy(), caption="original (grayscale)", clamp=True)
    cols[1].image(exact.reconstruction, caption=f"MPO at d′ = {','.join(map(str, exact.bond_dims))}", clamp=True)
    cols[2].image(decompose.error_image(matrix, exact.reconstruction),
                  caption="|original − MPO|, brightest = largest error", clamp=True)


def show_numbers(summary, exact=None) -> None:
    show_metrics(decompose.metric_rows(summary, exact))
    note = decompose.bound_note(summary.relative_error_bound)
    if note:
        st.caption(note)


def clear(*slots) -> None:
    """Empty the page's slots a run leaves unused (the snapshot, a disabled preview) after a message."""
    for slot in slots:
        slot.empty()


def live_page() -> None:
    open_requested_weight()
    try:
        source = source_controls(live(MATRIX))  # a random matrix over the memory budget is refused here
        if source is None:
            clear(AREA, BONDS[0], SHAPE[0])
            return
        matrix = cached_matrix(source)
    except USER_ERRORS as exc:
        clear(BONDS[0], SHAPE[0])
        AREA.error(_message(exc))
        return
    try:
        shape = shape_controls(live(SHAPE), *matrix.shape)
        if shape is None:
            clear(AREA, BONDS[0])
            return
        mpo = cached_mpo(source, shape.out_factors, shape.in_factors)
        preset = cached_preset(source, shape.out_factors, shape.in_factors, preset_ratio())
        dims = bond_sliders(live(BONDS), mpo, preset)  # right under the source: what a visitor moves
        summary = decompose.live_summary(mpo, dims)
    except USER_ERRORS as exc:
        BONDS[0].empty()
        AREA.error(_message(exc))
        return
    AREA.empty()  # the snapshot goes; the live page takes its place
    with st.container():
        st.caption(f"**{source.label}**: {decompose.describe_shape(shape)}")
        if source.kind == "image":
            show_image_size(source, matrix)
        metrics_slot = st.empty()
        with metrics_slot.container():
            show_numbers(summary)
        image_slot = st.empty()
        st.plotly_chart(decompose.chain_figure(mpo, dims), key="chain")
        spectra, entropy, params = st.tabs(["Spectra (Eq. 3)", "Entropy (Eq. 6)", "Parameters (Eq. 5)"])
        spectra.plotly_chart(decompose.spectra_figure(mpo, dims), key="spectra")
        entropy_slot = entropy.empty()
        entropy_slot.plotly_chart(decompose.entropy_figure(summary), key="entropy_fast")
        params.plotly_chart(decompose.parameter_figure(summary), key="params")
        table_slot = st.empty()
        table_slot.dataframe(decompose.bond_table(mpo, summary))
        try:
            with st.spinner("Truncating and contracting for the true error…"):
                exact = cached_true_error(source, shape.out_factors, shape.in_factors, dims)
        except USER_ERRORS as exc:
            st.error(_message(exc))
            return
        with metrics_slot.container():
            show_numbers(summary, exact)
        entropy_slot.plotly_chart(decompose.entropy_figure(summary, exact.entropies), key="entropy_exact")
        table_slot.dataframe(decompose.bond_table(mpo, summary, exact))
        if exact.reconstruction is not None:
            with image_slot.container():
                show_image(matrix, exact)


live_page()
