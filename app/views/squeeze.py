"""Squeeze training: start an ``mpop`` run in the background, watch Algorithm 2 live, stop, compare.

Opens on a finished example (a stored squeeze run of the frontier experiment,
painted from ``app/snapshots/squeeze.json`` before the engine is imported);
once you have runs of your own it moves to a closed section at the end.
"""
import streamlit as st

from app.views import first_paint

st.title("Squeeze training (MPOP Algorithm 2)")
st.caption("Lightweight fine-tuning of the auxiliary tensors, then dimension squeezing: each step makes the cut "
           "that adds the least error (Eq. 3) per parameter removed, repairs it with a few training steps and "
           "keeps it while |p − p̃| ≤ Δ, p measured on held-out training examples. Runs are background jobs "
           "writing to their run folder: reload or close the page freely.")
EXAMPLE = first_paint.StoredSection("squeeze", "A finished example")

from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from app import allowed_paths, jobs, squeeze  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402
from mpo_core.training.fine_tune_config import FineTuneConfig  # noqa: E402
from mpo_core.data.glue import GLUE_TASKS, get_task  # noqa: E402
from mpo_core.runs.progress_file import read_progress  # noqa: E402
from mpo_core.runs.run_folder import read_run_results  # noqa: E402
from mpo_core.runs.run_name import check_run_name  # noqa: E402

ROOTS = allowed_paths.dashboard_roots()  # the folder fields' defaults, and the only places they may name

try:
    runs_dir = ROOTS.check("runs", st.sidebar.text_input("runs folder", ROOTS.runs, key="runs_dir"))
    glue_dir = ROOTS.check("glue", st.sidebar.text_input("GLUE folder", ROOTS.glue, key="glue_dir"))
except ValueError as exc:
    st.error(_message(exc))
    st.stop()

# The demo defaults: the encoder's 36 matrices become full-bond MPOs (the word embedding stays dense: squeezing is
# about stacked layers, and its rare rows would draw every cut), all 6 layers learn SST-2 in 30 lightweight steps,
# then cuts of 2 % of the dense model each, 8 repair steps apiece, until #To is 0.9x dense (or p moves by more than
# delta: 0.1, about three standard errors on 128 held-out examples). Measured times: squeeze.DEMO_SECONDS.
DEMO = squeeze.DEMO
SQUEEZED = {"encoder": squeeze.DEMO_GROUPS, "encoder and word embedding": ("word_embedding", *squeeze.DEMO_GROUPS)}

with st.expander("Start a new squeeze run", expanded=False):
    with st.form("new_run"):
        left, middle, right = st.columns(3)
        task = left.selectbox("task", list(GLUE_TASKS), index=list(GLUE_TASKS).index("sst2"))
        layers = left.number_input("encoder layers to load", 1, 6, DEMO["layers"])
        squeezed = left.selectbox("matrices to squeeze", list(SQUEEZED),
                                  help="The encoder: query, key, value, attention out, FFN in and out of every layer "
                                       "(36 matrices in 6 layers). Adding the word embedding (30522 x 384) makes "
                                       "every step slower, and its rare rows draw the cuts.")
        train_examples = left.number_input("training examples", 16, 100000, DEMO["train"], step=100,
                                           help="Including the held-out ones p is judged on.")
        heldout = left.number_input("of them held out for p", 8, 10000, DEMO["heldout"], step=16)
        eval_examples = left.number_input("dev examples (reported only; p is judged on held-out training examples)", 16, 100000, DEMO["dev"], step=50)
        max_length = left.number_input("max length (tokens)", 8, 512, DEMO["max_length"], step=8)
        delta = middle.number_input("Δ (largest metric change)", 0.001, 1.0, DEMO["delta"], step=0.01, format="%.3f")
        squeeze_steps = middle.number_input("squeeze steps (budget)", 1, 500, DEMO["steps"])
        step_size = middle.number_input("share of the dense model one cut removes", 0.001, 0.5, DEMO["step_size"],
                                        step=0.005, format="%.3f")
        target = middle.number_input("target size (× dense #To; 0 = none)", 0.0, 2.0, DEMO["target"], step=0.05,
                                     format="%.2f", help="Squeezing stops once #To is at most this share of the "
                                                         "dense model's.")
        stop_on = middle.selectbox("stop when", ["change", "drop"],
                                   format_func=lambda s: "|p − p̃| > Δ (paper)" if s == "change" else "p − p̃ > Δ")
        lfa_steps = right.number_input("lightweight fine-tuning steps first", 1, 10000, DEMO["lfa"])
        tune_steps = right.number_input("repair steps after each cut", 1, 1000, DEMO["tune"])
        learning_rate = right.number_input("learning rate", 1e-6, 1e-1, DEMO["lr"], format="%.1e")
        # A default fixed per session: one that changed every rerun would be a new widget on submit,
        # dropping the name the user typed.
        default_name = st.session_state.setdefault("_new_run_name", f"squeeze-{pd.Timestamp.now():%Y%m%d-%H%M%S}")
        run_name = right.text_input("run name", default_name)
        start_col, time_col = st.columns([1, 4])
        submitted = start_col.form_submit_button("Start", type="primary")
        time_col.caption(squeeze.expected_duration_text(DEMO))
    if submitted:
        try:
            check_run_name(run_name.strip())  # before anything else: the name becomes a folder
            config = FineTuneConfig(
                task=task, data_dir=glue_dir, strategy="mpop", num_hidden_layers=int(layers),
                max_length=int(max_length), warmup_steps=2,
                max_train_examples=int(train_examples), max_eval_examples=int(eval_examples), batch_size=16,
                learning_rate=float(learning_rate), logging_steps=1, runs_dir=runs_dir, run_name=run_name.strip(),
                strategy_options={"mpo_config": {"groups": list(SQUEEZED[squeezed])},
                                  "delta": float(delta), "squeeze_steps": int(squeeze_steps),
                                  "step_size": float(step_size), "lfa_steps": int(lfa_steps),
                                  "tune_steps": int(tune_steps), "stop_on": stop_on,
                                  "heldout_examples": int(heldout),
                                  **({"target_size": float(target)} if target > 0 else {})},
            )
            jobs.start_job(config)  # checks the GLUE files first
            st.session_state["squeeze_run"] = config.run_name
            st.session_state.pop("_new_run_name")  # the next run gets a fresh default name
            st.success(f"started {config.run_name}")
        except USER_ERRORS as exc:
            st.error(_message(exc))

listing = jobs.scan_runs(runs_dir)
for problem in listing.problems:
    st.warning(problem)
runs = [r for r in listing.rows if r["strategy"] == "mpop"]
if not runs:
    st.info(f"No squeeze runs of your own in {runs_dir} yet: start one above.")
    st.stop()

# One status per run and page run: the table, the cards and the progress bar all read this one. While a run is
# live, a small fragment polls its files once a second and reruns the page when what the charts show changes
# (a status, a squeeze event, ten more training steps); a finished run is drawn once and never polled.
statuses = {r["run"]: r["status"] for r in runs}
st.dataframe(pd.DataFrame(runs).drop(columns="modified").rename(columns={"score": "dev score"}).astype(object)
             .fillna("–"), hide_index=True, width="stretch")  # a live run has no score yet: "–", not "None"
names = [r["run"] for r in runs]
chosen = st.session_state.get("squeeze_run")
selected = st.selectbox("run", names, index=names.index(chosen) if chosen in names else 0, key="squeeze_select")
st.session_state["squeeze_run"] = selected
LIVE = ("starting", "running")


def read_run(run_name: str):
    path = Path(runs_dir) / run_name
    frames = squeeze.squeeze_frames(path)
    options = jobs.run_config(runs_dir, run_name).get("strategy_options", {})
    return frames, options


@st.fragment(run_every=1.0)
def progress_panel(run_name: str, drawn: tuple) -> None:
    """The progress bar of a live run; the whole page is drawn again only when its charts would change."""
    try:
        status = jobs.run_status(runs_dir, run_name)
        frames, options = read_run(run_name)
    except USER_ERRORS as exc:
        st.error(f"Could not read the run {run_name}: {_message(exc)}")
        return
    if squeeze.watch_signature(status, frames) != drawn:
        st.rerun()  # a new status or squeeze event: cards, table and charts follow, all from one reading
    job = jobs.find_job(runs_dir, run_name)
    view = squeeze.progress_view(status, job.started if job else None,
                                 read_progress(jobs.progress_path(runs_dir, run_name)), frames, options)
    st.progress(view["fraction"], text=view["text"])


def task_metric(run_name: str) -> str | None:
    """The run's task metric (for the dev card's label before the run has results)."""
    try:
        return get_task(jobs.run_config(runs_dir, run_name).get("task")).metric
    except USER_ERRORS:
        return None


def run_view(run_name: str, status: str) -> None:
    try:  # its files may have changed since the list was read
        frames, options = read_run(run_name)
        results = read_run_results(Path(runs_dir) / run_name)
    except USER_ERRORS as exc:
        st.error(f"Could not read the run {run_name}: {_message(exc)}")
        return
    summary = squeeze.squeeze_summary(frames)
    if status in LIVE:
        progress_panel(run_name, squeeze.watch_signature(status, frames))
    else:
        job = jobs.find_job(runs_dir, run_name)
        view = squeeze.progress_view(status, job.started if job else None,
                                     read_progress(jobs.progress_path(runs_dir, run_name)), frames, options)
        st.progress(view["fraction"], text=view["text"])
    cols = st.columns(7)
    cols[0].metric("status", status)
    cols[1].metric("p (held-out)", "–" if summary["p"] is None else f"{summary['p']:.3f}",
                   help="Before squeezing: the task metric on training examples held out from training, after "
                        "lightweight fine-tuning. Every cut is judged against it.")
    cols[2].metric("p̃ (held-out)", "–" if summary["p_tilde"] is None else f"{summary['p_tilde']:.3f}",
                   help="After the last accepted cut and its repair steps, on the same held-out examples.")
    cols[3].metric("accepted cuts", summary["accepted"])
    for col, key, label in ((cols[4], "trainable_params", "#Pr (trainable)"), (cols[5], "total_params", "#To (total)")):
        col.metric(label, "–" if summary[key] is None else f"{summary[key] / 1e6:.2f}M")
    dev = squeeze.dev_score(results, task_metric(run_name))
    cols[6].metric(dev["label"], "–" if dev["value"] is None else f"{dev['value']:.3f}",
                   help="Measured once, after squeezing, on the GLUE dev set; it chose nothing.")
    if (note := squeeze.score_note(summary, results, options)) is not None:
        st.caption(note)
    if summary["stop_reason"]:
        st.caption(f"stopped: {summary['stop_reason']}")
    if (warning := squeeze.not_learned_message(summary)) is not None:
        st.warning(warning)
    if status in LIVE and st.button("Stop this run", key=f"stop_{run_name}"):
        try:
            jobs.stop_job(runs_dir, run_name)
            st.toast("stop requested: the run ends after its current step")
        except USER_ERRORS as exc:
            st.error(_message(exc))
    if status == "failed":
        st.error("the run ended without results; its console output:")
        st.code(jobs.log_tail(runs_dir, run_name) or "(no output)")
    top, bottom = st.columns(2), st.columns(2)
    top[0].plotly_chart(squeeze.metric_figure(frames, options.get("delta")), key=f"metric_{run_name}")
    top[1].plotly_chart(squeeze.loss_figure(frames), key=f"loss_{run_name}")
    bottom[0].plotly_chart(squeeze.size_figure(frames), key=f"size_{run_name}")
    bottom[1].plotly_chart(squeeze.bond_figure(frames), key=f"bonds_{run_name}")


run_view(selected, statuses.get(selected, "failed"))

st.subheader("Compare two runs")
pair = st.multiselect("runs", names, default=names[:2], max_selections=2, key="squeeze_compare")
if len(pair) == 2:
    cols = st.columns(2)
    for col, name in zip(cols, pair):
        frames = squeeze.squeeze_frames(Path(runs_dir) / name)
        col.plotly_chart(squeeze.metric_figure(frames, name=f"({name})"), key=f"cmp_metric_{name}")
        col.plotly_chart(squeeze.size_figure(frames), key=f"cmp_size_{name}")
        col.dataframe(pd.DataFrame([squeeze.squeeze_summary(frames)]), hide_index=True)

EXAMPLE.fold()  # runs of your own come first; the example is folded away at the end
