"""Compress a model page: choose a method, matrices and a size; read the plan or run it; download the model.

Plain MPO (the default method) plans per slider move and builds on a click; the
other methods (plain SVD, the calibrated ones and auto, :mod:`app.calibrated`)
run calibration, sensitivity, compression and zero-shot STS-B on a click, with
a progress bar per phase. Both show the stored zero-shot frontier beside the
user's choice.

The packaged model and its per-matrix spectra are cached resources (the
spectra once per n, with a progress bar the first time); the plan per slider
move is cached data. Building the model (MPOConfig + apply_mpo) and measuring
what it does (sentence embeddings and zero-shot STS-B against the original)
happen on "Build the model and measure", in a worker thread whose progress
(item n of N, time left at the measured pace) the page redraws four times a
second; the built model and its effect go to the disk cache
(:mod:`app.built_model_cache`), so the same settings show them at once on the
next visit. The zip of the built model follows.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import streamlit as st

from app.views import first_paint

st.title("Compress a model")
st.caption(
    "Choose a method, matrix groups and a size for the packaged MiniLM. Plain MPO (the default): each chosen "
    "matrix becomes an MPO cut to the bond dims d′ₖ with the least error within a target ratio (Eq. 5); read the "
    "plan, then download the compressed model (MPO layers) or its merged dense copy (MPOP, ACL 2021). The other "
    "methods use calibration sentences to keep what the model's outputs need; each result lands beside the stored "
    "zero-shot frontier of every method."
)
AREA = first_paint.first_paint("compress", "compress_method")  # the default plan, before the engine is imported

from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

import pandas as pd  # noqa: E402

import mpo_core  # noqa: E402
from mpo_core.model.embedding_agreement import Agreement  # noqa: E402
from app import allowed_paths, built_model_cache as built_cache, calibrated as cal, compress as mc, snapshot  # noqa: E402
from app.pace import Pace, format_seconds, forward_steps  # noqa: E402
from mpo_core.model.weight_skeleton import weight_skeleton  # noqa: E402
from app.atlas import GROUP_LABELS, NUM_TENSOR_CHOICES  # noqa: E402
from mpo_core.data.glue import GLUE_TASKS  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402

TABLE_FORMATS = {
    "ρ (Eq. 5)": st.column_config.NumberColumn(format="%.4f"),
    "relative error bound (Eq. 4)": st.column_config.NumberColumn(format="percent"),
}


def _plain(group: str) -> str:
    return GROUP_LABELS.get(group, group).replace("<sub>", "").replace("</sub>", "")


# --------------------------------------------------------------------------- caches
@st.cache_resource(show_spinner="Loading the packaged MiniLM (about 5 s, once per server)…")
def base_model():
    """The loaded encoder: for a build, a measurement or a calibrated method, not for the plan."""
    return mc.load_base_model()


@st.cache_resource(show_spinner=False)
def layout():
    """The packaged model's matrices, roles, shapes and #To without its weights or transformers' modeling code
    (:func:`mpo_core.model.weight_skeleton.weight_skeleton`, milliseconds): what the plan reads, so a visit
    whose spectra are on disk is live before the model would have loaded (~3.4 s of imports)."""
    return weight_skeleton()


@st.cache_resource(show_spinner=False)
def base_fingerprint() -> str:
    """The disk cache's key of the base model: the SHA-256 of its weight files and config (~0.2 s), read
    without loading the model."""
    return built_cache.folder_fingerprint(mpo_core.default_model_path())


@st.cache_resource(show_spinner=False)
def spectra_store() -> dict:
    """Spectra of every matrix by n; filled by :func:`load_spectra`, which draws a progress bar."""
    return {}


@st.cache_resource(show_spinner=False)
def sample_store() -> dict:
    """The STS-B sample and the original's embeddings of it, by GLUE folder; filled by :func:`effect_sample`."""
    return {}


def follow(bar, pace: Pace, step: str, work):
    """``work()`` in a worker thread, the bar redrawn from ``pace`` every 0.25 s; its result (or its exception).

    If the page run is stopped meanwhile (a rerun, another page), the worker still finishes, and a build
    still lands in the disk cache.
    """
    result = {}

    def run():
        try:
            result["value"] = work()
        except BaseException as exc:  # handed to the page thread
            result["error"] = exc

    thread = threading.Thread(target=run, name="compress-work", daemon=True)
    thread.start()
    while thread.is_alive():
        text = f"{step}: {pace.label}" if pace.label else step
        bar.progress(pace.fraction(), text=f"{text[:1].upper()}{text[1:]} — {format_seconds(pace.seconds_left())} left")
        thread.join(0.25)
    if "error" in result:
        raise result["error"]
    return result["value"]


def load_spectra(n: int) -> dict:
    store = spectra_store()
    if n not in store:
        base = layout()
        bar = st.progress(0.0, text=f"Decomposing every matrix into an n = {n} MPO (Algorithm 1)…")
        pace = mc.spectra_pace(base)
        cache = allowed_paths.dashboard_roots().root("cache")  # shared with the Entropy atlas: same entries
        store[n] = follow(bar, pace, f"Decomposing every matrix into an n = {n} MPO (Algorithm 1, once per n; "
                                     "then kept on disk)",
                          lambda: mc.matrix_spectra(base, n, pace=pace, cache_dir=cache,
                                                    model_path=mpo_core.default_model_path()))
        bar.empty()
    return store[n]


@st.cache_data(show_spinner="Choosing bond dims for the target ratio…", max_entries=64)
def cached_plan(request: mc.CompressionRequest, _spectra: dict) -> pd.DataFrame:
    return mc.plan_table(layout(), _spectra, request, cache_dir=allowed_paths.dashboard_roots().root("cache"),
                         model_path=mpo_core.default_model_path())


# --------------------------------------------------------------------------- controls
def method_control() -> str:
    method = st.sidebar.selectbox(
        "Method", list(cal.METHOD_LABELS), key="compress_method", format_func=lambda m: cal.METHOD_LABELS[m].split(":")[0],
        help="\n".join(f"- **{label.split(':')[0]}**:{label.split(':', 1)[1]}" for label in cal.METHOD_LABELS.values()),
    )
    st.sidebar.caption(_explanation(method))
    return method


def _explanation(method: str) -> str:
    """The method's one-line explanation, as a sentence."""
    text = cal.METHOD_LABELS[method].split(":", 1)[1].strip()
    return text[:1].upper() + text[1:]


def calibration_controls(glue_dir: str) -> tuple[str, int]:
    """Calibration source (a GLUE task's train file or a text file in the GLUE folder) and sentence count."""
    st.sidebar.subheader("Calibration data")
    sources = cal.calibration_sources(glue_dir)
    source = st.sidebar.selectbox(
        "Source", [*sources, "text file"], key="compress_calibration",
        format_func=lambda s: s if s == "text file" else f"{GLUE_TASKS[s].display_name} (train file)",
        help="A GLUE task's train file (dev sets only report), or a UTF-8 text file, one sentence a line.",
    )
    if source == "text file":
        typed = st.sidebar.text_input("Text file (inside the GLUE folder)", key="compress_calibration_file",
                                      help=f"Confined to {glue_dir} (see app/allowed_paths.py).")
        if not typed.strip():
            raise ValueError(f"type the path of a UTF-8 text file inside {glue_dir} (one sentence a line), "
                             "or choose a GLUE task as the calibration source.")
        source = allowed_paths.dashboard_roots().check("glue", typed)
    count = st.sidebar.number_input(
        "Sentences", 1, 100_000, cal.DEFAULT_SENTENCES, 64, key="compress_sentences",
        help="Drawn at random (seed 0); 512 is the experiment's. Fewer run faster; cached on disk after the first run.",
    )
    return source, int(count)


def calibrated_controls(method: str, groups: tuple[str, ...]) -> cal.CalibratedRequest | None:
    """The other methods' controls; their groups default to the frontier's 36 encoder matrices."""
    auto = method == "auto"
    offered = list(groups)
    chosen = st.sidebar.pills(  # every chosen group in view (a multiselect box hid the last ones)
        "Matrix groups", offered, selection_mode="multi", default=[g for g in offered if g in cal.ENCODER_GROUPS],
        key="compress_auto_groups" if auto else "compress_cal_groups", format_func=_plain,
        help="Default: the attention and FFN matrices, as the stored frontier."
        + (" Auto measures every chosen matrix's output sensitivity, the word embedding's too." if auto else ""),
    )
    n = 5
    if method in ("mpo_kronecker", "mpo_calibrated"):
        n = st.sidebar.select_slider("Number of local tensors n", NUM_TENSOR_CHOICES, 5, key="compress_n")
    size = st.sidebar.slider(
        "Kept share of the chosen matrices' parameters", 0.05, 1.0, cal.DEFAULT_SHARE, 0.01, key="compress_share",
        help="One budget for all chosen matrices: the same share each, or (auto) split where it costs least.",
    )
    source, count = "stsb", cal.DEFAULT_SENTENCES
    if method in cal.CALIBRATED:
        source, count = calibration_controls(allowed_paths.dashboard_roots().glue)
    if not chosen:
        st.info("Choose at least one matrix group in the sidebar.")
        return None
    return cal.CalibratedRequest(method=method, size=float(size), groups=tuple(chosen), n=int(n), calibration=source,
                                 sentences=count)


def controls(model) -> mc.CompressionRequest | cal.CalibratedRequest | None:
    st.sidebar.header("What to compress")
    method = method_control()
    groups = mc.available_groups(model)
    if method != "mpo":
        return calibrated_controls(method, groups)
    chosen = st.sidebar.pills(  # every chosen group in view (a multiselect box hid "FFN out")
        "Matrix groups", groups, selection_mode="multi", default=[g for g in groups if g in mc.DEFAULT_GROUPS],
        key="compress_groups", format_func=_plain,
        help="The groups of mpo_core.model.matrix_groups (highlighted: chosen); the pooler is left dense by default.",
    )
    layers = list(range(mc.num_layers(model)))
    kept = st.sidebar.multiselect(
        "Encoder layers", layers, default=layers, key="compress_layers",
        help="Matrices outside the layers (word embedding, pooler) follow their group only.",
    )
    ratio = st.sidebar.slider(
        "Target compression ratio ρ per matrix (Eq. 5)", 0.02, 1.0, mc.DEFAULT_RATIO, 0.01, key="compress_ratio",
        help="MPO parameters / matrix entries; each matrix gets the d′ₖ of mpo_core.bond_dims_for_ratio "
        "(the least error within the ratio).",
    )
    n = st.sidebar.select_slider("Number of local tensors n", NUM_TENSOR_CHOICES, 5, key="compress_n")
    if not chosen:
        st.info("Choose at least one matrix group in the sidebar.")
        return None
    return mc.CompressionRequest(
        groups=tuple(chosen), ratio=float(ratio), n=int(n), layers=None if kept == layers else tuple(kept),
    )


# --------------------------------------------------------------------------- display
@st.cache_resource(show_spinner=False)
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)


def effect_sample(glue_dir: str, bar, step: str = "") -> mc.EffectSample:
    """The STS-B sample of ``glue_dir`` embedded by the original model: once per server, with progress."""
    store = sample_store()
    if glue_dir not in store:
        base, tok, pace = base_model(), tokenizer(), mc.embed_pace()

        def embed() -> mc.EffectSample:
            with forward_steps(base, pace, mc.embedding_batches(mc.STS_PAIRS), "original model"):
                return mc.effect_sample(base, tok, glue_dir)

        store[glue_dir] = follow(bar, pace, f"{step}embedding {mc.STS_PAIRS} STS-B pairs with the original model "
                                            "(once per server)", embed)
    return store[glue_dir]


def steps(*names: str) -> dict[str, str]:
    """``{name: "Step k of n, "}`` for the steps that will run, in order."""
    return {name: f"Step {k} of {len(names)}, " for k, name in enumerate(names, 1)}


def cache_place(request: mc.CompressionRequest) -> tuple[Path, str]:
    """The disk cache's folder (under the dashboard's cache root) and this request's key there."""
    where = built_cache.folder(allowed_paths.dashboard_roots().root("cache"))
    return where, built_cache.entry_key(base_fingerprint(), request.mpo_config().to_dict())


def sample_key(glue_dir: str) -> str | None:
    try:
        return built_cache.sample_key(glue_dir, mc.STS_PAIRS, seed=0)
    except (OSError, ValueError):  # no STS-B dev file: nothing measured, nothing to look up
        return None


def session_record(request, table, model, report, seconds: float, source: str) -> dict:
    """What the page keeps of a built model for this session.

    ``seconds``: the build (source ``"built"``: with the measurement, this visit's) or, read from the disk
    (``"disk"``), the stored model's build on an earlier visit.
    """
    return {"request": request, "model": model, "total_params": mpo_core.count_parameters(model).total,
            "matches_plan": mc.report_matches_plan(report, table), "effect": None, "effect_error": None,
            "seconds": seconds, "source": source}


def from_disk(request: mc.CompressionRequest, table: pd.DataFrame, glue_dir: str) -> dict | None:
    """The built model and its measured effect from the disk cache (about a second), or ``None`` without both."""
    where, key = cache_place(request)
    sample = sample_key(glue_dir)
    effect = None if sample is None else built_cache.load_effect(where, key, sample)
    stored = built_cache.load(where, key, base_model().config.to_dict()) if effect is not None else None
    if stored is None:
        return None
    model, report, meta = stored
    built = session_record(request, table, model, report, float(meta.get("seconds", 0.0)), "disk")
    built["effect"] = effect
    return built


def build_and_measure(request: mc.CompressionRequest, table: pd.DataFrame, glue_dir: str) -> None:
    """Build the compressed model (or read it from disk), measure its effect, keep both for this session."""
    where, key = cache_place(request)
    base, start = base_model(), time.perf_counter()
    bar = st.progress(0.0, text="Looking for this model in the disk cache…")
    stored = built_cache.load(where, key, base.config.to_dict())
    sample = sample_key(glue_dir)
    effect = None if sample is None else built_cache.load_effect(where, key, sample)
    step = steps(*["build"] * (stored is None), *["original"] * (effect is None and glue_dir not in sample_store()),
                 *["measure"] * (effect is None))
    if stored is None:
        pace = mc.build_pace(base, request)

        def build():
            model, report = mc.build_compressed_model(base, request, pace=pace)
            try:  # stored by the worker: a build whose page run was stopped still serves the next visit
                built_cache.save(where, key, model, report, time.perf_counter() - start,
                                 {"groups": list(request.groups), "ratio": request.ratio, "n": request.n})
            except OSError:  # a read-only or full cache folder costs the next visit time, not this one its model
                pass
            return model, report

        model, report = follow(bar, pace, f"{step['build']}building the compressed model (MPOConfig + apply_mpo)",
                               build)
        built = session_record(request, table, model, report, time.perf_counter() - start, "built")
    else:
        model, report, meta = stored
        built = session_record(request, table, model, report, float(meta.get("seconds", 0.0)), "disk")
    built["effect"] = effect
    if built["effect"] is None:
        try:
            reference, tok, pace = effect_sample(glue_dir, bar, step.get("original", "")), tokenizer(), mc.embed_pace()

            def measure():
                with forward_steps(model, pace, mc.embedding_batches(mc.STS_PAIRS), "compressed model"):
                    return mc.model_effect(model, tok, reference)

            built["effect"] = follow(bar, pace, f"{step['measure']}embedding {mc.STS_PAIRS} STS-B pairs with the "
                                                "compressed model", measure)
            built_cache.save_effect(where, key, sample, built["effect"])
        except (OSError, ValueError) as exc:  # no STS-B data: the model is still built and can be downloaded
            built["effect_error"] = str(exc)
    if built["source"] == "built":
        built["seconds"] = time.perf_counter() - start
    bar.empty()
    st.session_state["compress_built"] = built
    st.session_state.pop("compress_zip", None)


def show_rows(rows) -> None:
    """``(label, value, help)`` rows as metrics side by side."""
    for col, (label, value, help_text) in zip(st.columns(len(rows)), rows):
        col.metric(label, value, help=help_text or None)


def show_effect(request: mc.CompressionRequest, table: pd.DataFrame, glue_dir: str) -> dict | None:
    """What the compression does to the model; returns the built model's record when it is for ``request``."""
    st.subheader("What it does to the model")
    st.caption(
        "The error bound says how far each matrix moves; this says what the model does with it. The compressed "
        f"encoder and the original embed {mc.STS_PAIRS} sentence pairs of the STS-B dev set (mean pooling, as "
        "MiniLM was trained): how well their embeddings agree, and how well each ranks the pairs by similarity "
        "without any fine-tuning (zero-shot Spearman with the gold scores)."
    )
    if st.button("Build the model and measure", key="compress_build", type="primary",
                 help="apply_mpo on a copy of the model, then both models embed the sample; the built model and "
                      "its numbers are kept on disk for the next visit."):
        try:
            build_and_measure(request, table, glue_dir)
        except USER_ERRORS as exc:
            st.error(_message(exc))
            return None
    built = st.session_state.get("compress_built")
    if built is None or built["request"] != request:
        try:
            disk = from_disk(request, table, glue_dir)  # built on an earlier visit: live at once
        except USER_ERRORS:
            disk = None
        if disk is not None:
            st.session_state["compress_built"] = built = disk
            st.session_state.pop("compress_zip", None)
    if built is not None and built["request"] == request:
        if built["effect"] is not None:
            show_rows(mc.effect_rows(built["effect"]))
            st.markdown(mc.effect_note(built["effect"]))
        else:
            st.warning(f"The model is built, but its effect was not measured: {built['effect_error']}")
        st.caption(f"Built and measured in {built['seconds']:.1f} s on this server; kept in the disk cache." if
                   built["source"] == "built" else
                   f"Read from the disk cache: built on an earlier visit (that build took {built['seconds']:.1f} s).")
        return built
    st.caption(build_estimate(request, glue_dir))
    snap = snapshot.load("compress")
    stored = (snap or {}).get("state", {})
    if stored.get("effect") and stored.get("request") == [list(request.groups), request.ratio, request.n,
                                                          request.layers]:
        effect = Agreement(**stored["effect"])
        show_rows(mc.effect_rows(effect))
        st.markdown(mc.effect_note(effect))
        st.caption(f"{snapshot.stored(snap)} Press the button to build the model and measure it again.")
    elif built is not None:
        st.info("The settings changed since the model was built: press “Build the model and measure” again.")
    else:
        st.caption("Press the button to build the model: the download follows.")
    return None


def build_estimate(request: mc.CompressionRequest, glue_dir: str) -> str:
    """How long the button takes with these settings, at the measured paces (this machine's may differ)."""
    seconds = mc.build_pace(layout(), request).seconds_left()
    embed = mc.embedding_batches(mc.STS_PAIRS) / mc.EMBED_BATCHES_PER_SECOND
    seconds += embed * (1 if glue_dir in sample_store() else 2)  # the original's embeddings, once per server
    return (f"Building and measuring takes {format_seconds(seconds)} with these settings (paces measured on one "
            "core of a 2-core machine with the other busy; a progress bar shows the time left as it goes). Once "
            "built, the model and its numbers are kept on disk: the same settings then show at once.")


def show_download(request: mc.CompressionRequest, built: dict | None) -> None:
    st.subheader("Download")
    if built is None:
        st.caption("Build the model above first (moving the sliders stays fast: nothing is built until you ask).")
        return
    fmt = st.radio("Format", list(mc.EXPORT_FORMATS), format_func=mc.EXPORT_FORMATS.get, key="compress_format")
    merged = fmt == "merged"
    ready = st.session_state.get("compress_zip")
    if ready is None or ready["key"] != (request, merged):
        with st.spinner("Saving and zipping…"):
            data = mc.export_zip(built["model"], merged, request, tokenizer_path=mpo_core.default_model_path())
        ready = {"key": (request, merged), "data": data, "file_name": mc.zip_file_name(request, merged)}
        st.session_state["compress_zip"] = ready
    cols = st.columns(3)
    cols[0].metric("#To of the built model", f"{built['total_params'] / 1e6:.2f}M",
                   help="Counted on the model apply_mpo built (mpo_core.count_parameters).")
    cols[1].metric("Built model matches the plan", "yes" if built["matches_plan"] else "no",
                   help="Same matrices, bond dims and MPO sizes as the table.")
    cols[2].metric("Zip size", f"{len(ready['data']) / 1e6:.1f} MB")
    st.download_button(
        f"Download {ready['file_name']}", ready["data"], file_name=ready["file_name"], mime="application/zip",
        key="compress_download", on_click="ignore",
    )


# --------------------------------------------------------------------------- the other methods
# Where each phase of cal.compress_calibrated starts (its ``done``) and, here, ends: the compression phase ends
# where the zero-shot phase (the page's) begins.
PHASE_ENDS = {"calibration": 0.25, "sensitivity": 0.5, "compression": 0.85}
CALIBRATED_SECONDS = 60.0  # a calibrated compression of the frontier's matrices on one busy core (README: 58 s)


def run_calibrated(request: cal.CalibratedRequest, glue_dir: str) -> None:
    """Calibrate, (auto) measure sensitivity, compress and measure, a moving bar per phase; keep it for this session."""
    bar = st.progress(0.0, text="Starting…")
    cache = Path(allowed_paths.dashboard_roots().root("cache")) / "calibration"
    base, tok = base_model(), tokenizer()
    pace = Pace(PHASE_ENDS["compression"], PHASE_ENDS["compression"] / CALIBRATED_SECONDS)  # shares of the run
    ends = {**PHASE_ENDS, "calibration": PHASE_ENDS["calibration" if request.method == "auto" else "sensitivity"]}

    def phase(name: str, done: float, text: str) -> None:  # the worker's: the phase starting, the share behind it
        if pace.current:
            pace.end()
        pace.discount(max(0.0, done - pace.done))  # phases this method skips
        pace.begin(text.rstrip("…"), ends.get(name, done) - done)

    result = follow(bar, pace, f"Compressing ({cal.METHOD_LABELS[request.method].split(':')[0]})",
                    lambda: cal.compress_calibrated(base, tok, request, data_dir=glue_dir, cache_dir=cache,
                                                    phase=phase))
    record = {"request": request, "result": result, "effect": None, "effect_error": None}
    try:
        reference, embed = effect_sample(glue_dir, bar), mc.embed_pace()

        def measure():
            with forward_steps(result.model, embed, mc.embedding_batches(mc.STS_PAIRS), "compressed model"):
                return mc.model_effect(result.model, tok, reference)

        record["effect"] = follow(bar, embed, f"Zero-shot STS-B: embedding {mc.STS_PAIRS} pairs", measure)
    except (OSError, ValueError) as exc:  # no STS-B data: the model is still compressed
        record["effect_error"] = str(exc)
    bar.empty()
    st.session_state["compress_calibrated"] = record


def show_calibrated(request: cal.CalibratedRequest) -> None:
    glue_dir = allowed_paths.dashboard_roots().glue
    st.subheader(cal.METHOD_LABELS[request.method].split(":")[0])
    st.caption(
        _explanation(request.method) + ". "
        + ("Calibration → sensitivity → compression → zero-shot STS-B" if request.method == "auto" else
           "Calibration → compression → zero-shot STS-B" if request.calibrated else "Compression → zero-shot STS-B")
        + f" on a click; the zero-shot score uses {mc.STS_PAIRS} STS-B dev pairs, original vs compressed."
    )
    if st.button("Compress and measure", key="compress_run", type="primary",
                 help="Runs on this server with a progress bar; the calibration is cached on disk for the next run."):
        try:
            run_calibrated(request, glue_dir)
        except USER_ERRORS as exc:
            st.error(_message(exc))
    done = st.session_state.get("compress_calibrated")
    current = done if done is not None and done["request"] == request else None
    if current is not None:
        show_rows(cal.result_rows(current["result"].report, current["effect"]))
        if current["effect_error"]:
            st.warning(f"The model is compressed, but its zero-shot score was not measured: {current['effect_error']}")
    elif done is not None:
        st.info("The settings changed since the last run: press “Compress and measure” again.")
    else:
        st.caption("Press the button to compress: the result appears on the frontier below.")
    effect = None if current is None else current["effect"]
    user = None if effect is None else (current["result"].report["kept_share"], effect.spearman_compressed)
    show_frontier(request.size, user, request.groups, None if effect is None else effect.spearman_original)
    if current is not None:
        report = current["result"].report
        st.subheader("Where the budget went")
        budget = cal.budget_table(report)
        st.dataframe(budget, key="compress_budget", hide_index=True, height=35 * (len(budget) + 1) + 3,  # every row
                     column_config={"kept share": st.column_config.NumberColumn(format="%.3f")})
        with st.expander("Per matrix: structure, bond dims, error"):
            st.dataframe(cal.matrix_table(report), key="compress_matrices",
                         column_config={"kept share": st.column_config.NumberColumn(format="%.3f"),
                                        "relative output error": st.column_config.NumberColumn(format="percent")})


def show_frontier(chosen_share: float, user: tuple[float, float] | None, groups, user_dense: float | None) -> None:
    """The stored zero-shot frontier, the share chosen and (once measured) the user's model and its dense score."""
    st.subheader("Beside the stored frontier")
    frontier = cal.load_frontier()
    if frontier is not None:
        st.plotly_chart(cal.frontier_figure(frontier.table, user=user, chosen_share=chosen_share, user_dense=user_dense),
                        key="compress_frontier")
    caption = cal.frontier_caption(frontier)
    if user is not None:
        caption += (" The star is your model, scored on the page's STS-B sample (the frontier uses the dev set)"
                    + ("; it compresses other matrices than the frontier's 36 encoder ones." if set(groups) !=
                       set(cal.ENCODER_GROUPS) else "."))
    (st.caption if frontier is not None else st.info)(caption)


def main() -> None:
    try:
        model = layout()
        request = controls(model)
        if request is None:
            AREA.empty()
            return
        if isinstance(request, cal.CalibratedRequest):
            AREA.empty()
            show_calibrated(request)
            return
        table = cached_plan(request, load_spectra(request.n))
    except USER_ERRORS as exc:
        AREA.empty()
        st.error(_message(exc))
        return
    AREA.empty()
    totals = mc.size_totals(model, table)
    show_rows(mc.totals_rows(totals, table))
    st.plotly_chart(mc.group_figure(table), key="compress_groups_figure")
    layers = [str(int(v)) if pd.notna(v) else "– (none)" for v in table["layer"]]  # not "None" for the embedding
    st.dataframe(table.assign(layer=layers), column_config=TABLE_FORMATS)
    built = show_effect(request, table, allowed_paths.dashboard_roots().glue)  # the server's GLUE folder
    show_download(request, built)
    effect = None if built is None else built["effect"]
    user = None if effect is None else (totals.matrices_ratio, effect.spearman_compressed)
    show_frontier(totals.matrices_ratio, user, request.groups, None if effect is None else effect.spearman_original)


main()
