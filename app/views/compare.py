"""Compare methods page: MPOP Figure 2, reconstruction error vs compression ratio.

The page opens on the stored full run of Figure 2 (``results/full/figure2``,
painted from its snapshot ``app/snapshots/compare.json`` before the engine is
imported), with the paper's two claims checked on its numbers. Below it, your
own curves: every curve (one per method and n) is read from the disk cache
when it is there, computed in the page run when it is cheap (kept in memory),
and otherwise offered behind a "Compute" button that runs it in a background
thread, with a progress bar; finished curves are written to the cache one by
one and drawn as they arrive. The numbers come from
:func:`mpo_core.tensor.baselines.error_vs_ratio` through :mod:`app.compare`.
"""
from __future__ import annotations

import streamlit as st

from app import snapshot
from app.views import first_paint

PAPER_NOTE = (
    "**What the paper reports** (MPOP, ACL 2021, Figure 2): on the word embedding of bert-base-uncased, "
    "(a) the MPO reaches a smaller reconstruction error than CPD at every compression ratio, and "
    "(b) the MPO curves for n = 3, 5, 7 lie close together (the paper then uses n = 5). Tucker is not in "
    "the paper's figure (its general form ran out of memory there). Here every method compresses the same "
    "tensorization (local dims aₖ = iₖ·jₖ) of a matrix of the packaged MiniLM, and the error is measured "
    "on the matrix itself."
)

st.title("Compare methods: MPO vs SVD, CPD and Tucker")
st.caption("Reconstruction error against compression ratio ρ (Eq. 5) for the MPO at several n, the "
           "truncated SVD, CPD and Tucker: Figure 2 of MPOP (ACL 2021), on a real weight of the packaged model.")
st.info(PAPER_NOTE)
if (STORED := snapshot.load("compare")) is not None:
    st.subheader("The stored run")
    first_paint.show(STORED, live=False)
st.subheader("Your own curves")
st.caption("Pick a matrix, methods and ratios in the sidebar. Curves already in the disk cache are read; of the "
           "others, the cheapest (a few seconds in all, by their estimated cost) are computed at once, and the rest "
           "wait for “Compute” below, each with its estimated time.")

# The engine (torch, ~2.5 s cold) is imported only after the stored run is on screen.
from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from app import allowed_paths, compare, decompose  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402

SOURCE_LABELS = {"model": "Packaged model weight", "random": "Random matrix"}
VALUE_LABELS = {
    "relative_error": "relative: ‖M − M′‖ / ‖M‖ (Frobenius)",
    "error": "absolute: ‖M − M′‖ (Frobenius)",
}


# --------------------------------------------------------------------------- caches
@st.cache_data(show_spinner=False)
def weight_shapes() -> dict[str, tuple[int, int]]:
    return decompose.model_weights()


@st.cache_resource(show_spinner="Loading the matrix…", max_entries=4)
def cached_matrix(source: decompose.MatrixSource, max_rows: int):
    return compare.load_matrix(source, max_rows)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_fingerprint(source: decompose.MatrixSource, max_rows: int) -> str:
    return compare.fingerprint(cached_matrix(source, max_rows))


@st.cache_data(show_spinner=False, max_entries=128)
def live_curve(key: str, _matrix, _settings: compare.CompareSettings, _curve: compare.Curve) -> pd.DataFrame:
    """A cheap curve, kept in memory only; ``key`` names the matrix values and every setting."""
    return compare.compute_curve(_matrix, _settings, _curve)


@st.cache_resource
def registry() -> compare.TaskRegistry:
    return compare.TaskRegistry()


# --------------------------------------------------------------------------- controls
def source_controls() -> tuple[decompose.MatrixSource, int] | None:
    st.sidebar.header("Matrix")
    kind = st.sidebar.radio("Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get, key="cmp_source")
    if kind == "random":
        side = decompose.MAX_RANDOM_SIDE
        rows = st.sidebar.number_input("Rows (out_features)", 1, side, 256, key="cmp_random_rows")
        cols = st.sidebar.number_input("Columns (in_features)", 1, side, 192, key="cmp_random_cols")
        seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, 0, key="cmp_random_seed")
        decay = st.sidebar.slider("Spectrum decay", 0.0, 3.0, 1.0, 0.1, key="cmp_random_decay",
                                  help="Singular values of the matrix ∝ (i+1)^−decay; 0 = plain Gaussian entries.")
        source = decompose.MatrixSource(kind="random", rows=int(rows), cols=int(cols), seed=int(seed), decay=float(decay))
    else:
        try:
            shapes = weight_shapes()
        except USER_ERRORS as exc:
            st.error(_message(exc))
            return None
        names = list(shapes)
        index = names.index(decompose.DEFAULT_WEIGHT) if decompose.DEFAULT_WEIGHT in names else 0
        name = st.sidebar.selectbox(
            "Weight matrix (packaged MiniLM, a 6-layer BERT)", names, index=index, key="cmp_weight",
            format_func=lambda w: f"{w}  ({shapes[w][0]}×{shapes[w][1]})",
        )
        source = decompose.MatrixSource(kind="model", name=name)
    max_rows = st.sidebar.number_input(
        "Keep the first rows only (0 = all)", 0, 10**6, compare.DEFAULT_MAX_ROWS, step=256, key="cmp_max_rows",
        help="CPD of all 30522 rows of the word embedding takes hours on a CPU; "
             "its first few thousand rows (tokens) give the same comparison in minutes.",
    )
    return source, int(max_rows)


def method_controls() -> dict:
    st.sidebar.header("Methods")
    methods = st.sidebar.multiselect("Methods", list(compare.METHOD_LABELS), default=list(compare.METHOD_LABELS),
                                     format_func=compare.METHOD_LABELS.get, key="cmp_methods")
    n_values = st.sidebar.multiselect(
        "Local tensors n (MPO, CPD, Tucker)", list(compare.N_CHOICES), default=[3, 5, 7], key="cmp_n",
        help="Figure 2(b) of the paper compares n = 3, 5, 7. An n = 2 MPO is the truncated SVD.",
    )
    ratios = st.sidebar.text_input(
        "Target compression ratios ρ (Eq. 5)", compare.format_ratios(compare.DEFAULT_RATIOS), key="cmp_ratios",
        help="Numbers in (0, 1]: parameters kept / matrix entries.",
    )
    with st.sidebar.expander("CPD / Tucker options"):
        n_iter_max = st.number_input("Iterations (ALS / HOOI)", 1, 10000, compare.DEFAULT_N_ITER_MAX, key="cmp_iter")
        tol = st.number_input("Tolerance", 0.0, 1.0, compare.DEFAULT_TOL, format="%.0e", key="cmp_tol")
        seed = st.number_input("Random state", 0, 2**31 - 1, 0, key="cmp_seed")
        cap = compare.cpd_memory_cap()  # set where the server starts; a bad value is shown as an error
        cap_gib = cap / 2**30  # the server's cap: this input can lower the budget, never raise it
        gib = st.number_input("CPD memory budget (GiB)", min(0.1, cap_gib), cap_gib,
                              min(compare.DEFAULT_MAX_BYTES, cap) / 2**30, step=0.5, key="cmp_gib",
                              help=f"CPD points that would need more are skipped, not run. At most "
                                   f"{cap_gib:.3g} GiB: the server's cap ({compare.CPD_MEMORY_CAP_ENV}).")
    return dict(methods=tuple(methods), n_values=tuple(int(n) for n in n_values), ratios=ratios,
                n_iter_max=int(n_iter_max), tol=float(tol), random_state=int(seed), max_bytes=int(gib * 2**30))


def settings_controls() -> compare.CompareSettings | None:
    """The figure's settings from the sidebar; ``None`` after showing why they are unusable."""
    try:
        chosen = source_controls()  # a random matrix over the memory budget is refused here
    except USER_ERRORS as exc:
        st.error(_message(exc))
        chosen = None
    try:
        options = method_controls()
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return None
    if chosen is None:
        return None
    try:
        ratios = compare.parse_ratios(options.pop("ratios"))
        return compare.CompareSettings(source=chosen[0], max_rows=chosen[1], ratios=ratios, **options)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return None


# --------------------------------------------------------------------------- computing
def compute_live(plans, matrix, settings) -> dict[str, pd.DataFrame]:
    """The cheap curves, in this run, with a progress bar the first time."""
    live = [p for p in plans if p.live]
    frames = {}
    bar = st.progress(0.0) if live else None
    for index, plan in enumerate(live):
        bar.progress(index / len(live), text=f"Computing {plan.curve.label} ({index + 1} of {len(live)})…")
        frames[plan.key] = live_curve(plan.key, matrix, settings, plan.curve)
    if bar is not None:
        bar.empty()
    return frames


@st.fragment(run_every=1.0)
def task_progress(task_key: str, curves_seen: int) -> None:
    """Progress of the background task; the whole page reruns when a curve is written or the task ends."""
    task = registry().get(task_key)
    if task is None:
        return
    if not task.running or task.curves_done > curves_seen:
        st.rerun(scope="app")
    elapsed = compare.format_seconds(time.time() - task.started)
    remaining = task.remaining_seconds()
    left = "" if remaining is None else f", about {compare.format_seconds(remaining)} left at the pace so far"
    st.progress(task.fraction, text=f"Computing in the background: {task.done} of {task.total} points, "
                                    f"{task.curves_done} of {len(task.only)} curves ({task.label}; "
                                    f"{elapsed} so far{left})")
    if task.cancelled:
        st.caption("Stopping after the point being computed…")
    elif st.button("Stop", key="stop_compute", help="Curves already finished stay in the cache."):
        task.cancel()
        st.rerun(scope="fragment")


def on_demand(waiting, matrix, settings, folder: str, task_key: str) -> None:
    """The expensive missing curves: a running task's progress, or what they cost and a Compute button."""
    tasks = registry()
    task = tasks.get(task_key)
    if task is not None and task.running:
        task_progress(task_key, task.curves_done)
        return
    if task is not None and task.error:
        (st.info if task.cancelled else st.error)(
            f"The last computation ended early ({task.error}); its {task.curves_done} finished curve(s) are kept."
        )
    total = sum(p.seconds for p in waiting)
    costs = ", ".join(f"{p.curve.label} (~{compare.format_seconds(p.seconds)})" for p in waiting)
    bases = "; ".join(dict.fromkeys(p.basis for p in waiting))
    st.info(
        f"{len(waiting)} curve(s) are not in the cache yet: {costs}. Estimate: "
        f"{compare.format_seconds(total)} (speed per method and n from: {bases}; within ~2.5x on other matrix "
        "sizes). "
        f"They run in the background (the page stays usable) and are saved to {folder}, one curve at a time."
    )
    if total > 600:
        st.caption("To make it faster: keep only the first rows of the matrix, lower the CPD iterations, "
                   "or drop the largest n or ratios.")
    if st.button("Compute", key="compute", type="primary"):
        order = sorted(waiting, key=lambda p: p.seconds)  # quick curves show up first
        tasks.start(task_key, compare.ComputeTask(settings, matrix, Path(folder), tuple(p.curve for p in order),
                                                  estimates=tuple(p.seconds for p in order)))
        st.rerun()


# --------------------------------------------------------------------------- display
def show_sources(plans, folder: str) -> None:
    cached = [p for p in plans if p.cached]
    live = [p for p in plans if p.live]
    if cached:
        st.caption(compare.describe_cache_summary([p.meta for p in cached], len(plans)))
    parts = [f"{len(cached)} from the disk cache"] * bool(cached)
    parts += [f"{len(live)} computed now (cheap, in memory)"] * bool(live)
    with st.expander(f"Where the curves come from: {', '.join(parts) or 'none yet'}"):
        st.caption(f"Cache folder: {folder}")
        for plan in cached:
            st.caption(compare.describe_cached(plan.meta))
        for plan in live:
            st.caption(f"**{plan.curve.label}**: computed in this page run (estimate "
                       f"{compare.format_seconds(plan.seconds)}), kept in memory.")


def show_skipped(frame: pd.DataFrame) -> None:
    """Why points are missing, in view (one line per curve), and each point's full message below, unfolded on demand."""
    gaps = compare.skipped(frame)
    if gaps.empty:
        return
    st.markdown("\n".join(f"- {note}" for note in compare.skipped_notes(frame)))
    with st.expander(f"The full message of each of the {len(gaps)} skipped point(s)"):
        st.markdown("\n".join(f"- **{row['curve']}**, ρ = {row['target ρ']:g}: {row['reason']}"
                               for _, row in gaps.iterrows()))


def show_results(frame: pd.DataFrame, settings: compare.CompareSettings, key: str, waiting: bool) -> None:
    if not (frame["skipped_reason"] == "").any():
        if not waiting:
            st.warning("No point of these curves can be computed (see why below): raise the ratios or the CPD "
                       "memory budget.")
        show_skipped(frame)
        return
    left, right = st.columns([3, 1])
    value = right.radio("Error", list(VALUE_LABELS), format_func=VALUE_LABELS.get, key="cmp_value")
    log_y = right.checkbox("Log scale (error)", key="cmp_log")
    title = f"Reconstruction error vs compression ratio: {settings.label}"
    left.plotly_chart(compare.error_figure(frame, value, log_y, title), key="figure")
    for n, wins, count in compare.mpo_vs_cpd(frame):
        st.caption(f"Our numbers, n = {n}: the MPO error is below the CPD error at {wins} of {count} target ratios.")
    st.subheader("Error at the chosen ratios")
    st.dataframe(compare.ratio_display_table(frame, value), key="ratio_table")  # a skipped cell says why
    show_skipped(frame)
    with st.expander("Every point"):
        st.dataframe(frame, hide_index=True)
    st.download_button("Download the points (CSV)", frame.to_csv(index=False), file_name=f"figure2-{key}.csv",
                       mime="text/csv", key="download")


def main() -> None:
    roots = allowed_paths.dashboard_roots()
    typed = st.sidebar.text_input("Cache folder", str(Path(roots.cache) / compare.CACHE_SUBDIR), key="cache_dir")
    try:
        folder = roots.check("cache", typed)
    except ValueError as exc:
        st.error(_message(exc))
        return
    settings = settings_controls()
    if settings is None:
        return
    try:
        matrix = cached_matrix(settings.source, settings.max_rows)
        fingerprint = cached_fingerprint(settings.source, settings.max_rows)
        plans = compare.plan_curves(settings, tuple(matrix.shape), fingerprint, folder)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return
    rows, cols = matrix.shape
    st.caption(f"**{settings.label}**: {rows}×{cols} ({rows * cols:,} entries).")
    try:
        frames = {p.key: p.frame for p in plans if p.cached}
        frames.update(compute_live(plans, matrix, settings))
    except USER_ERRORS as exc:
        st.error(_message(exc))
        return
    key = compare.cache_key(settings, fingerprint)
    task_key = f"{folder}|{key}"
    waiting = compare.pending(plans)
    if waiting:
        on_demand(waiting, matrix, settings, folder, task_key)
    else:
        registry().discard(task_key)
    others = [t for t in registry().running() if t is not registry().get(task_key)]
    if others:
        st.caption(f"{len(others)} other background computation(s) running on this server "
                   "(other settings or browser tabs); they share its CPU.")
    available = [frames[p.key] for p in plans if frames.get(p.key) is not None]
    if not available:
        return
    show_sources(plans, folder)
    show_results(pd.concat(available, ignore_index=True), settings, key, bool(waiting))


main()
