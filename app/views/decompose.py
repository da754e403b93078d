"""Decompose page: a weight matrix into an MPO, with one live slider per bond.

Heavy work is cached: the matrix and its decomposition by (source, factors),
so a slider move never redoes the Algorithm 1 SVDs; the true error by the
bond dims as well. The fast numbers (Eq. (3)-(6) from the cached spectra)
render first; the true error fills its slots once computed.
"""
from __future__ import annotations

import streamlit as st

from app import decompose
from app.user_errors import USER_ERRORS, message as _message

SOURCE_LABELS = {"model": "Packaged model weight", "random": "Random matrix", "image": "Uploaded image"}


# --------------------------------------------------------------------------- caches
@st.cache_data(show_spinner=False)
def weight_shapes() -> dict[str, tuple[int, int]]:
    return decompose.model_weights()


@st.cache_resource(show_spinner="Loading the matrix…", max_entries=8)
def cached_matrix(source: decompose.MatrixSource):
    return decompose.load_matrix(source)


@st.cache_resource(show_spinner="Decomposing into an MPO (Algorithm 1)…", max_entries=8)
def cached_mpo(source: decompose.MatrixSource, out_factors: tuple[int, ...], in_factors: tuple[int, ...]):
    return decompose.decompose_matrix(cached_matrix(source), out_factors, in_factors)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_true_error(source, out_factors, in_factors, bond_dims: tuple[int, ...]) -> decompose.TrueError:
    mpo = cached_mpo(source, out_factors, in_factors)
    return decompose.true_error(cached_matrix(source), mpo, bond_dims, keep_reconstruction=source.kind == "image")


# --------------------------------------------------------------------------- controls
def model_controls() -> decompose.MatrixSource | None:
    try:
        shapes = weight_shapes()
    except USER_ERRORS as exc:
        st.sidebar.error(_message(exc))
        return None
    names = list(shapes)
    index = names.index(decompose.DEFAULT_WEIGHT) if decompose.DEFAULT_WEIGHT in names else 0
    name = st.sidebar.selectbox(
        "Weight matrix (packaged MiniLM, a 6-layer BERT)", names, index=index, key="weight",
        format_func=lambda w: f"{w}  ({shapes[w][0]}×{shapes[w][1]})",
    )
    return decompose.MatrixSource(kind="model", name=name)


def random_controls() -> decompose.MatrixSource:
    side = decompose.MAX_RANDOM_SIDE
    rows = st.sidebar.number_input("Rows (out_features)", 1, side, 256, key="random_rows")
    cols = st.sidebar.number_input("Columns (in_features)", 1, side, 192, key="random_cols")
    seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, 0, key="random_seed")
    decay = st.sidebar.slider(
        "Spectrum decay", 0.0, 3.0, 0.0, 0.1, key="random_decay",
        help="Singular values of the matrix ∝ (i+1)^−decay; 0 = plain Gaussian entries.",
    )
    return decompose.MatrixSource(kind="random", rows=int(rows), cols=int(cols), seed=int(seed), decay=float(decay))


def image_controls() -> decompose.MatrixSource | None:
    upload = st.sidebar.file_uploader(
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
    """Honour another page's request (the Entropy atlas) to open a weight: select it before the widgets exist."""
    name = st.session_state.pop("open_weight", None)
    if name is not None:
        st.session_state["source"], st.session_state["weight"] = "model", name


def source_controls() -> decompose.MatrixSource | None:
    st.sidebar.header("Matrix")
    kind = st.sidebar.radio("Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get, key="source")
    if kind == "model":
        return model_controls()
    if kind == "random":
        return random_controls()
    return image_controls()


def _replan(out_text: str, in_text: str) -> None:
    st.session_state["out_factors"], st.session_state["in_factors"] = out_text, in_text


def shape_controls(rows: int, cols: int):
    """n and the factors i_k / j_k (planned, editable); ``None`` after showing an error."""
    st.sidebar.header("Tensorization")
    n = int(st.sidebar.number_input(
        "Number of local tensors n", 2, decompose.MAX_NUM_TENSORS, decompose.DEFAULT_NUM_TENSORS, key="n",
        help="The papers use n = 5 (Figure 2b compares 3, 5, 7).",
    ))
    planned = decompose.plan(rows, cols, n)
    planned_text = decompose.format_factors(planned.out_factors), decompose.format_factors(planned.in_factors)
    # A new matrix size or n gets freshly planned factors; otherwise the user's edits stay.
    if st.session_state.get("_planned_for") != (rows, cols, n) or "out_factors" not in st.session_state:
        _replan(*planned_text)
        st.session_state["_planned_for"] = (rows, cols, n)
    out_text = st.sidebar.text_input(
        "Output factors i₁..iₙ (rows)", key="out_factors",
        help=f"n positive integers whose product is at least {rows} (extra rows are zero padding).",
    )
    in_text = st.sidebar.text_input(
        "Input factors j₁..jₙ (columns)", key="in_factors",
        help=f"n positive integers whose product is at least {cols} (extra columns are zero padding).",
    )
    st.sidebar.button("Re-plan factors", key="replan", on_click=_replan, args=planned_text)
    try:
        return decompose.plan(rows, cols, n, out_text, in_text)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return None


def _reset_bonds() -> None:
    for key in [k for k in st.session_state if str(k).startswith("bond_")]:
        del st.session_state[key]


def bond_sliders(full_dims: tuple[int, ...]) -> tuple[int, ...]:
    """One slider per bond, 1..d_k (Eq. (2)), default full; reset when the full dims change."""
    if st.session_state.get("_bonds_for") != full_dims:
        _reset_bonds()
        st.session_state["_bonds_for"] = full_dims
    st.sidebar.header("Bond dimensions d′ₖ")
    st.sidebar.button("Reset to full bonds", key="reset_bonds", on_click=_reset_bonds)
    dims = []
    for k, full in enumerate(full_dims):
        label = f"$d'_{{{k + 1}}}$, bond $T_{{{k + 1}}}$–$T_{{{k + 2}}}$ (full $d_{{{k + 1}}} = {full}$)"
        if full == 1:  # a slider needs min < max; nothing to cut here
            st.sidebar.caption(f"{label}: fixed at 1")
            dims.append(1)
        else:
            dims.append(st.sidebar.slider(label, 1, full, full, key=f"bond_{k}"))
    return tuple(dims)


# --------------------------------------------------------------------------- display
def _percent(x: float) -> str:
    return f"{100 * x:.3g} %"


def show_fast_metrics(summary: decompose.LiveSummary):
    """Metrics from the cached spectra; returns the two empty slots for the true error."""
    cols = st.columns(5)
    cols[0].metric(
        "Compression ratio ρ (Eq. 5)", f"{summary.compression_ratio:.4f}",
        help="MPO parameters / matrix entries; ρ > 1 means the MPO is larger than the matrix.",
    )
    cols[1].metric("Error bound (Eq. 4)", f"{summary.error_bound:.4g}", help="√(Σ ε_k²) ≥ ‖M − M′‖_F, from the cached spectra.")
    cols[2].metric("Error bound, relative", _percent(summary.relative_error_bound), help="Eq. (4) bound / ‖M‖_F.")
    slots = cols[3].empty(), cols[4].empty()
    slots[0].metric("True error ‖M − M′‖_F", "…")
    slots[1].metric("True error, relative", "…")
    split = summary.split
    cols = st.columns(5)
    cols[0].metric("Params, central tensor", f"{split.central:,}")
    cols[1].metric("Params, auxiliary tensors", f"{split.auxiliary:,}", help=f"{_percent(split.auxiliary_share)} of the MPO.")
    cols[2].metric("Params, MPO total", f"{split.total:,}")
    cols[3].metric("Params, dense matrix", f"{split.matrix:,}")
    if summary.effective_bond_dims != summary.bond_dims:
        cols[4].metric("Effective d′ₖ", ",".join(map(str, summary.effective_bond_dims)), help="Bonds clipped by their neighbours.")
    return slots


def show_true_error(slots, exact: decompose.TrueError) -> None:
    slots[0].metric("True error ‖M − M′‖_F", f"{exact.absolute:.4g}", help="Recomputed: truncate, contract, compare.")
    slots[1].metric("True error, relative", _percent(exact.relative))


def show_image_size(source: decompose.MatrixSource, matrix) -> None:
    width, height = decompose.image_size(source.image)
    if (height, width) != tuple(matrix.shape):
        st.caption(f"The upload is {width}×{height} pixels; it is decomposed shrunk to {matrix.shape[1]}×"
                   f"{matrix.shape[0]} (at most {decompose.MAX_IMAGE_SIDE} pixels a side).")


def show_image(matrix, exact: decompose.TrueError) -> None:
    left, right = st.columns(2)
    left.image(matrix.numpy(), caption="original (grayscale)", clamp=True)
    right.image(exact.reconstruction, caption="MPO reconstruction at d′ₖ", clamp=True)


def main() -> None:
    st.title("Decompose a matrix into an MPO")
    st.caption("Move the bond-dimension sliders in the sidebar over a real BERT weight matrix (MPOP, ACL 2021).")
    open_requested_weight()
    try:
        source = source_controls()  # a random matrix over the memory budget is refused here
        if source is None:
            return
        matrix = cached_matrix(source)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return
    if source.kind == "image":
        show_image_size(source, matrix)
    try:
        shape = shape_controls(*matrix.shape)
        if shape is None:
            return
        mpo = cached_mpo(source, shape.out_factors, shape.in_factors)
        dims = bond_sliders(mpo.full_bond_dims)
        summary = decompose.live_summary(mpo, dims)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return
    st.caption(f"**{source.label}**: {decompose.describe_shape(shape)}")
    slots = show_fast_metrics(summary)
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
    show_true_error(slots, exact)
    entropy_slot.plotly_chart(decompose.entropy_figure(summary, exact.entropies), key="entropy_exact")
    table_slot.dataframe(decompose.bond_table(mpo, summary, exact))
    if exact.reconstruction is not None:
        show_image(matrix, exact)


main()
