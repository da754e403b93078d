"""Parameter variation page (MPOP Table 1): how far fine-tuning moved each group's weights.

Pick a finished run; its pre-trained and fine-tuned models are compared once
(a few seconds) and the statistics cached in ``<run>/parameter_variation.json``,
so reopening a run is instant. Optionally overlay a second run.
"""
from __future__ import annotations

import streamlit as st

from app.views import first_paint

st.title("Parameter variation after fine-tuning (MPOP Table 1)")
st.caption("How far fine-tuning moves each weight: |Δw| = |w_after − w_before| for the word embedding, the "
           "feed-forward and the self-attention matrices, binned as in the paper's Table 1 (BERT-base on SST-2). "
           "w_before is the run's pre-trained model, w_after its saved final model; MPO layers are compared through "
           "their rebuilt matrices, so for truncated strategies (mpo_lfa, mpop) |Δw| includes the truncation error.")
STORED = first_paint.StoredSection("variation", "The stored run: full fine-tuning of MiniLM on SST-2")

from app import shared_imports  # noqa: E402

shared_imports.wait()  # numpy/pandas/PIL whole before this page's charts: plotly peeks at them

from pathlib import Path  # noqa: E402

from app import allowed_paths, jobs, variation  # noqa: E402
from app.user_errors import USER_ERRORS, message as _message  # noqa: E402
from mpo_core.runs.run_folder import FINAL_MODEL  # noqa: E402

ROOTS = allowed_paths.dashboard_roots()  # the runs field's default, and the only place it may name
NO_COMPARISON = "(none)"
HOW_TO_RUN = ("python -m mpo_core finetune --task sst2 --strategy full --data-dir {glue_dir} "
              "--num-hidden-layers 2 --max-train-examples 2000 --max-steps 200 --runs-dir {runs_dir}")


@st.cache_data(show_spinner="Comparing the pre-trained and the fine-tuned weights…", max_entries=16)
def cached_variation(run_path: str, signature: float):
    """``signature`` (the final model's time stamp) makes a re-saved model a new cache entry."""
    return variation.run_variation(run_path)


def load(runs_dir: str, name: str):
    path = Path(runs_dir) / name
    return cached_variation(str(path), (path / FINAL_MODEL).stat().st_mtime)


def show_summary(runs_dir: str, name: str) -> None:
    summary = variation.run_summary(Path(runs_dir) / name)
    cols = st.columns(4)
    cols[0].metric("task", summary["task"] or "–")
    cols[1].metric("strategy", summary["strategy"] or "–")
    score = summary["score"]
    cols[2].metric(f"dev {summary['metric'] or 'score'}", "–" if score is None else f"{score:.4f}")
    trainable, total = summary["trainable_params"], summary["total_params"]
    cols[3].metric("#Pr / #To", "–" if not total else f"{trainable / 1e6:.2f}M / {total / 1e6:.2f}M")



try:
    runs_dir = ROOTS.check("runs", st.sidebar.text_input("runs folder", ROOTS.runs, key="runs_dir"))
except ValueError as exc:
    st.error(_message(exc))
    st.stop()
for problem in jobs.scan_runs(runs_dir).problems:
    st.warning(problem)
runs = variation.finished_runs(runs_dir)
if not runs:
    st.info(f"No finished runs of your own in {runs_dir} yet (above: the stored one). Fine-tune a model, e.g.\n\n"
            f"`{HOW_TO_RUN.format(glue_dir=ROOTS.glue, runs_dir=runs_dir)}`\n\n"
            "(add `--strategy mpo_full_lfa` for lightweight MPO fine-tuning), or start one on the "
            "Squeeze training page; finished runs save their final model and appear here.")
    st.stop()

STORED.fold()  # runs of your own: the stored run shrinks to a closed section above them
st.subheader("Your runs")
labels = {r["run"]: variation.run_label(r) for r in runs}
selected = st.selectbox("run", list(labels), format_func=labels.get, key="variation_run")
has_model = {r["run"]: r["has_model"] for r in runs}
with_model = [name for name, saved in has_model.items() if saved and name != selected]
other = st.selectbox("compare with", [NO_COMPARISON, *with_model], key="variation_compare",
                     help="Overlay a second run, e.g. full fine-tuning against mpo_full_lfa.")

show_summary(runs_dir, selected)
if not has_model[selected]:
    st.warning(variation.missing_model_message(Path(runs_dir) / selected))
    st.stop()
chosen = [selected] + ([] if other == NO_COMPARISON else [other])
try:
    stats = {name: load(runs_dir, name) for name in chosen}
except USER_ERRORS as exc:
    st.error(f"Could not compare the weights: {_message(exc)}")
    st.stop()

keyed = {"ours": stats[selected]} if len(stats) == 1 else stats
st.plotly_chart(variation.histogram_figure(keyed), key="variation_histogram")
table = variation.variation_table(keyed)
percent = st.column_config.NumberColumn(format="%.2f%%")
st.dataframe(table.assign(**{c: table[c] * 100 for c in variation.share_columns(table)}), hide_index=True,
             width="stretch", column_config={c: percent for c in variation.share_columns(table)},
             key="variation_table")
st.caption("Shares of each group's weights per |Δw| bin, in percent; 'paper' is MPOP Table 1. The first bin "
           "(0,1e-4] also counts unchanged weights (Δw = 0, shown separately): frozen matrices or, without "
           "weight decay, embedding rows of tokens the run never saw.")
