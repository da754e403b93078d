"""Over-parameterize (OPF): Fisher scores per matrix, which ones grow, a live run, and the merge back.

Slow work is cached or runs elsewhere: Fisher scores by their request
(st.cache_data, plus a JSON under the runs folder), training as a background
job (app.jobs) watched by a fragment, latency on a button (JSON in the run).
"""
from __future__ import annotations

import streamlit as st

from app.views import first_paint

st.title("Over-parameterized fine-tuning (OPF)")
st.caption("OPF (Gao et al., ACL 2023) fine-tunes a small PLM with more parameters than it deploys: the matrices "
           "with the largest Fisher scores become lossless MPOs holding growth × their entries while training, "
           "and are contracted back afterwards, so the fine-tuned model keeps its original size and latency.")
AREA = first_paint.first_paint("opf", "fisher_source")  # the default preview, before the engine is imported

from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from app import allowed_paths, jobs, opf  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402
from mpo_core.training.fine_tune_config import FineTuneConfig  # noqa: E402
from mpo_core.data.glue import GLUE_TASKS, get_task  # noqa: E402
from mpo_core.opf.strategy import SELECTIONS  # noqa: E402
from mpo_core.runs.run_name import check_run_name  # noqa: E402

ACTIVE = ("running", "starting")
SOURCES = {"glue": "GLUE training batches (packaged MiniLM)", "run": "step 0 of an OPF run"}
SELECTION_HELP = {
    "static": "static: score every matrix once at step 0 and grow the top-N of each group for the whole run.",
    "dynamic": "dynamic: training is split into stages; each stage re-scores the still-dense matrices on the "
               "model trained so far and grows ceil(N / stages) more per group.",
}


def _millions(count) -> str:
    return "–" if count is None else f"{count / 1e6:.3f}M"


# --------------------------------------------------------------------------- caches
@st.cache_data(show_spinner="Scoring every matrix: Fisher information on training batches (seconds on a CPU)…",
               max_entries=16)
def cached_fisher(request: opf.FisherRequest, _cache_dir: str) -> opf.FisherScores:
    return opf.load_or_compute_fisher(request, _cache_dir)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_run_fisher(run_path: str, stamp: float) -> opf.FisherScores | None:
    return opf.fisher_from_run(run_path)


def _stamp(run_path: Path) -> float:
    metrics = run_path / "metrics.jsonl"
    return metrics.stat().st_mtime if metrics.is_file() else 0.0


# --------------------------------------------------------------------------- 1. scores and preview
def glue_scores(runs_dir: str, glue_dir: str) -> opf.FisherScores | None:
    cols = st.columns(4)
    tasks = list(GLUE_TASKS)
    task = cols[0].selectbox("task", tasks, index=tasks.index("sst2"), key="fisher_task",
                             format_func=lambda t: GLUE_TASKS[t].display_name)
    layers = cols[1].number_input("encoder layers", 1, opf.MAX_LAYERS, opf.MAX_LAYERS, key="fisher_layers")
    batches = cols[2].number_input("batches B", 1, opf.MAX_FISHER_BATCHES, 4, key="fisher_batches",
                                   help="F(W) averages over B training batches (the run itself uses its own).")
    batch_size = cols[3].number_input("batch size", 1, opf.MAX_FISHER_BATCH_SIZE, 16, key="fisher_batch_size")
    try:
        request = opf.FisherRequest(task=task, data_dir=glue_dir, num_hidden_layers=int(layers),
                                          num_batches=int(batches), batch_size=int(batch_size), max_length=64)
        return cached_fisher(request, str(Path(runs_dir) / opf.FISHER_CACHE))
    except USER_ERRORS as exc:
        st.error(f"Could not compute Fisher scores: {_message(exc)}")
        st.info("Fix the GLUE folder in the sidebar, or take the scores of an OPF run (score source above).")
        return None


def run_scores(runs_dir: str, runs: list[dict]) -> opf.FisherScores | None:
    names = [r["run"] for r in runs if r["status"] != "failed"]
    if not names:
        st.info("No OPF run has recorded scores yet: start one below, or score GLUE batches.")
        return None
    name = st.selectbox("run", names, key="fisher_run")
    path = Path(runs_dir) / name
    try:
        fisher = cached_run_fisher(str(path), _stamp(path))
    except USER_ERRORS as exc:
        st.error(f"Could not read the scores of {name}: {_message(exc)}")
        return None
    if fisher is None:
        st.info(f"{name} has not scored its matrices yet (it does so at step 0).")
    return fisher


def preview_controls(fisher: opf.FisherScores) -> dict:
    # Defaults valid in both modes: top-N 2 with 2 stages (dynamic adds at least one matrix per group and
    # stage), fewer where the scored model has fewer layers; a kept value above them is lowered to fit.
    layers = max(1, min(Counter(fisher.groups.values()).values(), default=1))
    for key in ("top_n", "stages"):
        if st.session_state.get(key, 0) > layers:
            st.session_state[key] = layers
    cols = st.columns(5)
    selection = cols[0].radio("selection", SELECTIONS, key="selection", horizontal=True)
    top_n = cols[1].number_input("top-N per group", 1, layers, min(2, layers), key="top_n",
                                 help="Matrices grown per group (query, key, value, attn. output, FFN in, FFN out).")
    stages = cols[2].number_input("stages s (dynamic)", 1, layers, min(2, layers), key="stages",
                                  disabled=selection == "static")
    growth = cols[3].number_input("growth (× parameters per matrix)", 1.0, 30.0, 4.0, step=0.5, key="growth")
    steps = cols[4].number_input("training steps T", 1, 100000, 100, key="preview_steps",
                                 help="Dynamic stages start at steps 0, T/s, 2T/s, …")
    return {"selection": selection, "top_n": int(top_n), "stages": int(stages), "growth": float(growth),
            "max_steps": int(steps)}


def show_preview(fisher: opf.FisherScores, options: dict) -> None:
    try:
        stages = opf.selection_preview(fisher, **options)
    except USER_ERRORS as exc:
        st.error(_message(exc))
        st.plotly_chart(opf.fisher_heatmap(fisher), key="fisher_heatmap")
        return
    sizes = opf.preview_sizes(fisher, stages)
    for col, (label, value, help_text) in zip(st.columns(4), opf.preview_rows(sizes)):
        col.metric(label, value, help=help_text or None)
    st.caption(SELECTION_HELP[options["selection"]] + " After training every MPO is contracted back: #To returns "
               "to the original.")
    if any(s.estimate for s in stages):
        st.info("Dynamic selection re-scores at each stage boundary on the partly trained model; this preview "
                "ranks later stages by the step-0 scores, so stages after the first (dotted outlines, "
                "'estimate' in the table) are estimates.")
    left, right = st.columns([3, 2])
    left.plotly_chart(opf.fisher_heatmap(fisher, stages), key="fisher_heatmap")
    right.plotly_chart(opf.preview_size_figure(fisher, stages, options["max_steps"]), key="preview_sizes")
    st.dataframe(opf.selection_table(fisher, stages, options["growth"]), hide_index=True, key="preview_table",
                 column_config={"F(W)": st.column_config.NumberColumn(format="%.3e")})


def scores_and_preview(runs_dir: str, glue_dir: str, runs: list[dict]) -> dict | None:
    st.subheader("1. Fisher scores and which matrices grow")
    st.caption("F(W) = 1/B Σ_b mean_ij (g_b)²_ij: the mean squared clipped gradient of each weight matrix W over B "
               "training batches (pre-trained MiniLM, fresh classifier head seeded as a run). OPF grows the top-N "
               "matrices of each group.")
    source = st.radio("score source", list(SOURCES), format_func=SOURCES.get, key="fisher_source", horizontal=True)
    fisher = glue_scores(runs_dir, glue_dir) if source == "glue" else run_scores(runs_dir, runs)
    if fisher is None:
        return None
    st.caption(f"Scores: {fisher.source}.")
    options = preview_controls(fisher)
    show_preview(fisher, options)
    return {**options, "task": st.session_state.get("fisher_task", "sst2"),
            "layers": int(st.session_state.get("fisher_layers", opf.MAX_LAYERS))}


# --------------------------------------------------------------------------- 2. a run
def follow_preview(preview: dict) -> None:
    """Set the form's preview-linked fields to the preview's values whenever the preview changes.

    The fields are then created without a default of their own (Streamlit would warn about both).
    """
    follow = {"run_task": preview.get("task", "sst2"), "run_selection": preview.get("selection", "static"),
              "run_layers": max(preview.get("layers", opf.MAX_LAYERS), preview.get("top_n", 1)),
              "run_top_n": preview.get("top_n", 2), "run_stages": preview.get("stages", 2),
              "run_growth": float(preview.get("growth", 4.0)), "run_steps": min(preview.get("max_steps", 100), 100000)}
    if st.session_state.get("_form_follows") != follow:
        st.session_state.update(follow)
        st.session_state["_form_follows"] = follow


def start_form(runs_dir: str, glue_dir: str, preview: dict) -> None:
    """The form; a started run redraws the page (one listing of the runs per page run)."""
    tasks = list(GLUE_TASKS)
    follow_preview(preview)
    with st.expander("Start a new OPF run", expanded=False), st.form("new_opf_run"):
        st.caption("Task, layers, selection, top-N, stages, growth and steps follow the preview above.")
        left, middle, right = st.columns(3)
        task = left.selectbox("task", tasks, key="run_task")
        layers = left.number_input("encoder layers to load", 1, opf.MAX_LAYERS, key="run_layers")
        train_examples = left.number_input("training examples", 16, 100000, 512, step=64, key="run_train")
        eval_examples = left.number_input("dev examples", 16, 100000, 200, step=50, key="run_eval")
        selection = middle.selectbox("selection", SELECTIONS, key="run_selection")
        top_n = middle.number_input("top-N per group", 1, opf.MAX_LAYERS, key="run_top_n")
        stages = middle.number_input("stages (dynamic)", 1, opf.MAX_LAYERS, key="run_stages")
        growth = middle.number_input("growth (× parameters)", 1.0, 30.0, step=0.5, key="run_growth")
        steps = right.number_input("training steps", 1, 100000, key="run_steps")
        learning_rate = right.number_input("learning rate", 1e-6, 1e-1, 1e-4, format="%.1e", key="run_lr")
        fisher_batches = right.number_input("Fisher batches per selection", 1, 256, 4, key="run_fisher_batches")
        # A default fixed per session: one that changed every rerun would drop the name typed on submit.
        default_name = st.session_state.setdefault("_new_opf_run_name", f"opf-{pd.Timestamp.now():%Y%m%d-%H%M%S}")
        run_name = right.text_input("run name", default_name, key="run_name")
        submitted = st.form_submit_button("Start", type="primary")
    if submitted:
        try:
            check_run_name(run_name.strip())  # before anything else: the name becomes a folder
            options = opf.opf_options(growth, selection, top_n, stages, fisher_batches, int(layers))
            config = FineTuneConfig(
                task=task, data_dir=glue_dir, strategy="opf", strategy_options=options, num_hidden_layers=int(layers),
                max_length=64, max_train_examples=int(train_examples), max_eval_examples=int(eval_examples),
                max_steps=int(steps), batch_size=16, learning_rate=float(learning_rate), logging_steps=1,
                eval_steps=max(1, int(steps) // 5), save_steps=10**6, runs_dir=runs_dir, run_name=run_name.strip(),
            )
            jobs.start_job(config)  # checks the GLUE files first
        except USER_ERRORS as exc:
            st.error(_message(exc))
            return
        st.session_state["opf_run"] = st.session_state["_opf_started"] = config.run_name
        st.session_state.pop("_new_opf_run_name")  # the next run gets a fresh default name
        st.rerun()  # the runs table, the live view and the merge check read the new run from one listing


def live(runs_dir: str, run_name: str, shown: str) -> None:
    """Status, curves, selections and #To of one run; refreshed every 2 s while it trains.

    ``shown`` is the status the rest of the page was drawn with (the runs table, the merge
    check): when :func:`app.jobs.run_status` says otherwise, the whole page is drawn again, so
    that every place shows the same status.
    """
    try:  # its files may have changed since the list was read
        status = jobs.run_status(runs_dir, run_name)
        path = Path(runs_dir) / run_name
        config = jobs.run_config(runs_dir, run_name)  # a starting job has no run folder yet
        frames = opf.opf_frames(path)
    except USER_ERRORS as exc:
        st.error(f"Could not read the run {run_name}: {_message(exc)}")
        return
    if status != shown:
        st.rerun(scope="app")  # e.g. starting -> running, or it just ended: the merge check follows
    options = config.get("strategy_options", {})
    num_stages = options.get("stages", 2) if options.get("selection") == "dynamic" else 1
    summary = opf.opf_summary(frames, num_stages)
    st.caption(f"{run_name}: {config['task']}, {options.get('selection', 'static')} selection, top-N = "
               f"{options.get('top_n', 2)} per group, growth {options.get('growth', 4.0):g}×, "
               f"{config['max_steps']} steps, {config.get('num_hidden_layers') or 'all'} layers.")
    cols = st.columns(5)
    cols[0].metric("status", status)
    cols[1].metric("stages done", f"{summary['stages_done']} / {num_stages}")
    cols[2].metric("matrices grown", summary["grown"])
    cols[3].metric("#To now", _millions(summary["total_params"]))
    cols[4].metric("#To peak", _millions(summary["peak_params"]))
    if status in ACTIVE and st.button("Stop this run", key=f"stop_{run_name}"):
        try:
            jobs.stop_job(runs_dir, run_name)
            st.toast("stop requested: the run ends after its current step, then merges")
        except USER_ERRORS as exc:
            st.error(_message(exc))
    if status == "failed":
        st.error("the run ended without results; its console output:")
        st.code(jobs.log_tail(runs_dir, run_name) or "(no output)")
    metric = get_task(config["task"]).metric
    top, bottom = st.columns(2), st.columns(2)
    top[0].plotly_chart(opf.loss_figure(frames), key=f"loss_{run_name}")
    top[1].plotly_chart(opf.eval_figure(frames, metric), key=f"eval_{run_name}")
    bottom[0].plotly_chart(opf.size_figure(frames), key=f"size_{run_name}")
    if not frames["selections"].empty:
        try:
            fisher = cached_run_fisher(str(path), _stamp(path))
            bottom[1].plotly_chart(opf.fisher_heatmap(fisher, opf.run_stages(path),
                                                            title="step-0 F(W) of this run, its actual selections"),
                                   key=f"run_heatmap_{run_name}")
        except USER_ERRORS as exc:
            bottom[1].error(f"Could not draw this run's scores: {_message(exc)}")
        st.dataframe(frames["selections"], hide_index=True, key=f"selections_{run_name}",
                     column_config={"F(W)": st.column_config.NumberColumn(format="%.3e")})


def runs_section(runs_dir: str, glue_dir: str, preview: dict, listing: jobs.RunListing) -> tuple[str, str] | None:
    """The form, the runs table and the live view of one run; returns it and its status (the table's)."""
    st.subheader("2. A live OPF run")
    start_form(runs_dir, glue_dir, preview)
    if started := st.session_state.pop("_opf_started", None):
        st.success(f"started {started}")
    for problem in listing.problems:
        st.warning(problem)
    runs = [r for r in listing.rows if r["strategy"] == "opf"]
    if not runs:
        st.info(f"No OPF runs in {runs_dir} yet: start one above.")
        return None
    st.dataframe(pd.DataFrame(runs).drop(columns="modified"), hide_index=True, width="stretch", key="opf_runs")
    names, chosen = [r["run"] for r in runs], st.session_state.get("opf_run")
    selected = st.selectbox("run", names, index=names.index(chosen) if chosen in names else 0, key="opf_select")
    st.session_state["opf_run"] = selected
    status = next(r["status"] for r in runs if r["run"] == selected)  # one status per run on the page
    st.fragment(run_every=2.0 if status in ACTIVE else None)(live)(runs_dir, selected, status)
    return selected, status


# --------------------------------------------------------------------------- 3. merge check
def show_latency(latency: dict) -> None:
    numbers = opf.latency_numbers(latency)  # the ratio card is the quotient of the two cards beside it
    ratio, repeats = numbers["ratio"], latency.get("repeats", len(latency["seconds"]["original"]))
    cols = st.columns(4)
    cols[0].metric("original forward, median (ms)", f"{numbers['original_ms']:.2f}",
                   help=f"Median of {repeats} timed passes of the pre-trained model.")
    cols[1].metric("merged forward, median (ms)", f"{numbers['merged_ms']:.2f}",
                   help=f"Median of {repeats} timed passes of the run's merged model, interleaved with the original's.")
    cols[2].metric("latency ratio merged / original", f"{ratio:.3f}", delta=f"{ratio - 1:+.3f}", delta_color="off",
                   help="The merged median divided by the original median, the two numbers on its left.")
    cols[3].metric("params measured (merged)", f"{latency['params']['merged']:,}",
                   help=f"original: {latency['params']['original']:,}")
    st.caption(f"Each pass of the merged model was timed next to one of the original: the median of those "
               f"{repeats} paired ratios is {numbers['paired_ratio']:.3f}. When it is far from the ratio of the "
               "medians, the machine's load changed while measuring.")
    same = latency["params"]["merged"] == latency["params"]["original"] and latency["same_shapes"]
    facts = (f"{latency['mpo_layers_left']} MPO layers left, tensor shapes "
             f"{'identical to' if latency['same_shapes'] else 'different from'} the original")
    if opf.within_target(ratio) and same:
        st.success(f"Merged model = original size and latency: ratio {ratio:.3f} within 1.00 ± "
                   f"{opf.LATENCY_TARGET}; {facts}.")
    else:
        st.warning(f"ratio {ratio:.3f} (target 1.00 ± {opf.LATENCY_TARGET}); {facts}. Timings on a busy "
                   "machine are noisy: measure again.")
    st.plotly_chart(opf.latency_figure(latency), key="latency_figure")


def merge_check(runs_dir: str, run_name: str, status: str) -> None:
    st.subheader("3. Merge check: original size and latency")
    if status not in ("finished", "stopped"):
        st.info(f"{run_name} is {status}: the merge check needs a finished run.")
        return
    path = Path(runs_dir) / run_name
    summary = opf.merge_summary(opf.read_results(path) or {})
    if summary is None:
        st.error(f"{run_name} has no OPF results.")
        return
    cols = st.columns(4)
    cols[0].metric("#To before training", f"{summary['before']:,}")
    cols[1].metric("#To peak while training", f"{summary['peak']:,}",
                   help=f"{summary['peak_factor']:.3f}× the original")
    cols[2].metric("#To after merge", f"{summary['after']:,}")
    cols[3].metric("after merge = original", "yes" if summary["equal"] else "no")
    latency = opf.read_latency(path)
    label = "Measure latency again" if latency else "Measure latency"
    if st.button(label, key="measure_latency",
                 help="Forward passes of the pre-trained model and this run's merged final_model on the same batch "
                      "(8 × 64 tokens, warm-up, then the median of interleaved repeats)."):
        try:
            with st.spinner("Timing forward passes of the original and the merged model (3 + 21 each: about "
                            "10 s on a busy 2-core machine)…"):
                latency = opf.measure_latency(path)
        except USER_ERRORS as exc:
            st.error(_message(exc))
    if latency:
        show_latency(latency)
    else:
        st.caption("Not measured yet: press the button (a few seconds; saved in the run folder).")


def main() -> None:
    roots = allowed_paths.dashboard_roots()  # the folder fields' defaults, and the only places they may name
    try:
        runs_dir = roots.check("runs", st.sidebar.text_input("runs folder", roots.runs, key="runs_dir"))
        glue_dir = roots.check("glue", st.sidebar.text_input("GLUE folder", roots.glue, key="glue_dir"))
    except ValueError as exc:
        AREA.empty()
        st.error(_message(exc))
        return
    listing = jobs.scan_runs(runs_dir)  # read once: every place on the page shows these statuses
    runs = [r for r in listing.rows if r["strategy"] == "opf"]
    preview = scores_and_preview(runs_dir, glue_dir, runs) or {}
    AREA.empty()  # the live preview is drawn: the snapshot above it goes
    selected = runs_section(runs_dir, glue_dir, preview, listing)
    if selected is not None:
        merge_check(runs_dir, *selected)


main()
