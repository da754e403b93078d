"""A grid of GLUE fine-tuning runs (tasks x strategies) on the one engine, resumable, as one results table.

Each run is an ordinary :func:`mpo_core.training.fine_tune.fine_tune` run in
``<results>/<mode>/runs/<experiment>/<label>-<task>``; a run whose
``results.json`` exists is reused, so an interrupted grid continues where it
stopped. Several processes on one machine can share a grid (or grids that
share runs): each run is claimed with a lock file beside its folder, a process
skips runs another live process holds and waits for them at the end.
Settings per mode (``SMALL``/``FULL``) are data, recorded with the
results; the reductions of the full mode (CPU: max length 64, at most 1500
training and 1000 dev examples, 2 epochs) are stated there.

A grid can also keep each finished run's record (its ``results.json``, config
included; no weights) in ``<results>/<mode>/records/<experiment>/<run>.json``
(``keep_records``): unlike ``runs/`` these are committed, so a grid continued on
a fresh machine rebuilds those rows from the records instead of training again.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..training.fine_tune_config import FineTuneConfig
from ..data.glue import default_glue_dir, get_task, load_glue_split
from ..json_file import loads_bounded
from ..runs.atomic_write import atomic_write_json
from ..runs.process_alive import process_alive
from ..runs.run_folder import CHECKPOINTS, RESULTS_FILE, read_json
from .results_store import Results, check_mode, results_dir, save_results

# Shared settings per mode. small: seconds per run, to execute every notebook in CI.
SMALL = dict(num_hidden_layers=1, max_length=32, max_train_examples=64, max_eval_examples=32, max_steps=4,
             batch_size=16, eval_batch_size=32, eval_steps=10_000, save_steps=10_000, logging_steps=2)
# full, on a 2-core CPU: documented reductions of the paper's setting (max length 128, all data, more epochs).
FULL = dict(max_length=64, max_train_examples=1500, max_eval_examples=1000, epochs=2.0, batch_size=32,
            eval_batch_size=128, warmup_steps=20, eval_steps=10_000, save_steps=10_000, logging_steps=20)
# gpu: the full mode's grids at the papers' scale (MPOP: all training data, max length 128, 3 epochs), for a GPU
# (device "auto"; bf16 autocast there). Dev sets whole; evaluation batches large.
GPU = dict(max_length=128, max_train_examples=None, max_eval_examples=None, epochs=3.0, batch_size=32,
           eval_batch_size=256, warmup_steps=100, eval_steps=10**9, save_steps=10**9, logging_steps=100)
#: Environment variable with a JSON object of FineTuneConfig fields that override a mode's settings (recorded in
#: the results), e.g. to try the gpu mode's code path on a CPU in seconds.
OVERRIDES_ENV = "MPO_REPRO_OVERRIDES"


class ByMode(dict):
    """A design value per mode (tasks, seeds, squeeze options, ...): the ``gpu`` mode runs the ``full`` mode's
    design at the papers' data scale, so it takes the ``full`` value unless it has its own."""

    def __missing__(self, mode):
        if mode == "gpu":
            return self["full"]
        raise KeyError(f"no design value for mode {mode!r}; the modes are small, full and gpu.")


# Strategies that train whole weight matrices use 1e-4: at 5e-4 (fine on SST-2, Table 1) full fine-tuning
# collapsed to the majority class on RTE and MRPC in 2 epochs (MRPC 0.615, majority 0.684), while 1e-4 and
# 2e-4 reached 0.716 / 0.718. Lightweight fine-tuning (auxiliary tensors + head) needs larger steps: 1e-3
# (MRPC 0.713). Probes: 1500 examples, 2 epochs, max length 64, CPU.
LEARNING_RATES = {"full": 1e-4, "last_k": 1e-4, "mpo_full": 1e-4, "mpo_full_lfa": 1e-3, "mpop": 1e-3,
                  "mpop_dir": 1e-3, "opf": 1e-4, "mpo_lfa": 1e-3}
# Tables 3-5's squeeze as it was run for the stored results: per-bond steps (10 % of a bond) ranked by error
# alone on the central bonds, p judged on dev, a constant LFA rate. The controlled redo (issue 13 §5) and the
# frontier use the size-reaching options instead (mpo_core/reproduction/frontier.py).
FIRST_SQUEEZE = dict(step_unit="bond", rank="error", bonds="central", heldout_examples=0,
                     lfa_scheduler="constant_with_warmup")
SQUEEZE = {"small": dict(lfa_steps=2, squeeze_steps=1, tune_steps=1, step_size=0.1, delta=0.05, stop_on="drop",
                         **FIRST_SQUEEZE),
           "full": dict(lfa_steps=94, squeeze_steps=10, tune_steps=8, step_size=0.1, delta=0.01, stop_on="drop",
                        **FIRST_SQUEEZE)}


@dataclass(frozen=True)
class RunSpec:
    """One cell of a grid: a labelled strategy on a task (and optionally another model)."""

    label: str  # the row name in the paper's table, e.g. "MPOP", "MPOP_full+LFA", "BERT_12"
    task: str
    strategy: str
    options: dict = field(default_factory=dict)
    model: str | None = None  # None = the packaged MiniLM
    model_label: str = "MiniLM (packaged, real weights)"
    seed: int | None = None  # None = the mode's seed (0), and a run name without one, as before seeds existed
    settings: dict = field(default_factory=dict)  # FineTuneConfig fields of this run only (e.g. learning_rate)
    after: str | None = None  # the run_name of an earlier spec of the grid whose result this run needs

    @property
    def run_name(self) -> str:
        name = f"{self.label}-{self.task}" + ("" if self.seed is None else f"-seed{self.seed}")
        return name.replace("/", "_").replace(" ", "_")


def mode_settings(mode: str) -> dict:
    """The shared FineTuneConfig settings of ``mode`` (:data:`SMALL`, :data:`FULL`, :data:`GPU`), with the
    overrides of ``$MPO_REPRO_OVERRIDES`` (a JSON object of FineTuneConfig fields) on top."""
    settings = dict({"small": SMALL, "full": FULL, "gpu": GPU}[check_mode(mode)])
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if text:
        try:
            overrides = loads_bounded(text, f"${OVERRIDES_ENV}")
        except ValueError as exc:
            raise ValueError(f"${OVERRIDES_ENV} is not JSON to read: set it to an object such as "
                             f"'{{\"max_train_examples\": 64}}' ({exc})") from None
        unknown = sorted(set(overrides) - set(FineTuneConfig.__dataclass_fields__)) if isinstance(overrides, dict) \
            else ["(not an object)"]
        if unknown:
            raise ValueError(f"${OVERRIDES_ENV}: {unknown} are not FineTuneConfig fields.")
        settings.update(overrides)
    return settings


def squeeze_options(mode: str) -> dict:
    """The first protocol's squeeze (Table 4); the gpu mode takes the full mode's."""
    return dict(SQUEEZE["small" if mode == "small" else "full"])


def runs_root(experiment: str, mode: str) -> Path:
    return results_dir(mode) / "runs" / experiment


def _config(spec: RunSpec, mode: str, runs: Path, data_dir, overrides: dict) -> FineTuneConfig:
    settings = {"save_model": False, "learning_rate": LEARNING_RATES.get(spec.strategy, 5e-4),
                **mode_settings(mode), **overrides, **spec.settings,
                **({} if spec.seed is None else {"seed": spec.seed})}
    return FineTuneConfig(
        task=spec.task, model=spec.model, data_dir=data_dir, strategy=spec.strategy,
        strategy_options=dict(spec.options), runs_dir=str(runs), run_name=spec.run_name, **settings,
    )


LOCK_SUFFIX = ".lock"
POLL_SECONDS = 30.0


def _lock_path(folder: Path) -> Path:
    return folder.parent / f"{folder.name}{LOCK_SUFFIX}"


def _holder_alive(lock: Path) -> bool:
    """Whether the process that wrote ``lock`` still runs (a pid check: same machine only).

    An empty lock (being written) counts as live for a minute; a vanished one as released.
    """
    try:
        pid = int(lock.read_text())
    except ValueError:  # empty: being written now, or its writer died at once; give it a minute
        return time.time() - lock.stat().st_mtime < 60
    except OSError:
        return False
    return process_alive(pid)


def claim(folder: Path) -> bool:
    """Claim the run ``folder`` for this process (a lock file beside it); False while a live process holds it.

    A lock whose process has died is stale and is taken over.
    """
    lock = _lock_path(folder)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                if _holder_alive(lock):
                    return False
            except FileNotFoundError:  # released meanwhile
                continue
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def release(folder: Path) -> None:
    """Let go of a run claimed with :func:`claim`."""
    _lock_path(folder).unlink(missing_ok=True)


def run_one(spec: RunSpec, mode: str, experiment: str, data_dir=None, wait: bool = True, complete=None,
            **overrides) -> dict | None:
    """Fine-tune one cell (or reuse its finished run folder); returns its ``results.json`` record.

    While another live process holds the run, wait until it lets go (``wait``) or return ``None``.
    ``complete(record, config) -> record`` runs while this process holds the run, so that what a grid
    does after training (a merge check, keeping the record) is done by one process, once.
    The run's Trainer checkpoints are deleted once it has finished (hundreds of MB each, with
    optimizer state); its config, metrics stream, results and (if asked) final model stay.
    """
    from ..training.fine_tune import fine_tune

    folder = runs_root(experiment, mode) / spec.run_name
    results = folder / RESULTS_FILE
    config = _config(spec, mode, folder.parent, data_dir or default_glue_dir(), overrides)
    while not claim(folder):
        if not wait:
            return None
        time.sleep(POLL_SECONDS)
    try:
        if results.is_file() and matches(read_json(results), config):
            record = read_json(results)
        else:
            if folder.exists():  # an interrupted run, or one made with other settings: again, from scratch
                shutil.rmtree(folder)
            record = fine_tune(config)
            shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
        return complete(record, config) if complete is not None else record
    finally:
        _lock_path(folder).unlink(missing_ok=True)


#: The config fields a finished run must share with its spec to stand for it (what changes its scores).
IDENTITY = ("task", "model", "strategy", "strategy_options", "seed", "learning_rate", "num_hidden_layers",
            "max_length", "max_train_examples", "max_eval_examples", "epochs", "max_steps", "batch_size",
            "warmup_steps", "lr_scheduler_type", "decay_steps", "weight_decay", "heldout_examples", "evaluation_slice",
            "keep_predictions")


def matches(record: dict, config: FineTuneConfig) -> bool:
    """Whether a finished run's record was made with ``config``'s settings (:data:`IDENTITY`).

    A field the record's config lacks (written before the field existed) counts as its default; a record
    with no config at all cannot be checked and is taken as it is. A grid whose rates or settings changed
    so runs again what no longer matches, instead of reusing it.
    """
    if "config" not in record:
        return True
    recorded, wanted = record["config"] or {}, config.to_dict()
    defaults = FineTuneConfig.__dataclass_fields__
    for key in IDENTITY:
        value = recorded.get(key, defaults[key].default)
        if key == "strategy_options":
            value = {**wanted[key], **(value or {})} if value is not None else value  # options added since
            if value is not None and _source(value) is not None and _source(value) == _source(wanted[key]):
                value = {**value, "bond_dims_from": wanted[key]["bond_dims_from"]}  # the same record, elsewhere
        if value != wanted[key]:
            return False
    return True


def _source(options: dict) -> str | None:
    """``bond_dims_from`` (an mpop run's kept record) as ``<experiment>/<file>``: the same record whichever
    folder the repository was cloned to."""
    source = options.get("bond_dims_from")
    return None if source is None else "/".join(Path(source).parts[-2:])


def records_root(experiment: str, mode: str) -> Path:
    return results_dir(mode) / "records" / experiment


def stored_record(spec: RunSpec, mode: str, experiment: str) -> dict | None:
    """The kept record of a finished run (see ``keep_records`` of :func:`run_grid`), or ``None``."""
    path = records_root(experiment, mode) / f"{spec.run_name}.json"
    return read_json(path) if path.is_file() else None


def store_record(spec: RunSpec, mode: str, experiment: str, record: dict) -> Path:
    """Keep a finished run's record (its ``results.json``: config, scores, sizes; no weights) for git."""
    folder = records_root(experiment, mode)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(folder / f"{spec.run_name}.json", record, indent=1, default=str)


def row_of(spec: RunSpec, record: dict) -> dict:
    task = get_task(spec.task)
    return {
        "row": spec.label, "model": spec.model_label, "task": task.name, "strategy": spec.strategy,
        "metric": task.metric, "score": record.get("score"),
        "pr_millions": record.get("trainable_millions"), "to_millions": record.get("total_millions"),
        "train_examples": record.get("num_train_examples"), "dev_examples": record.get("num_eval_examples"),
        "wall_seconds": record.get("wall_seconds"), "run": spec.run_name,
    }


def _spec_settings(spec: RunSpec) -> dict:
    return {"label": spec.label, "task": spec.task, "strategy": spec.strategy, "options": spec.options,
            "model": spec.model or "packaged MiniLM", **({} if spec.seed is None else {"seed": spec.seed}),
            **({"settings": spec.settings} if spec.settings else {})}


def _complete(spec: RunSpec, mode: str, owner: str, experiment: str, keep_records: bool, finish,
              record: dict, config: FineTuneConfig) -> dict:
    """A finished run's record, made whole once: the kept one if a process already did (another worker of the
    grid), else ``finish`` (this experiment's own runs) and keep it."""
    kept = stored_record(spec, mode, owner) if keep_records else None
    if kept is not None and matches(kept, config):
        return kept
    if finish is not None and owner == experiment:
        record = finish(spec, record, runs_root(owner, mode) / spec.run_name)
    if keep_records:
        store_record(spec, mode, owner, record)
    return record


def run_grid(experiment: str, specs: Sequence[RunSpec], mode: str, data_dir=None, extra_settings=None,
             borrowed: dict | None = None, row=row_of, keep_records: bool = False, finish=None,
             **overrides) -> Results:
    """Run every spec in order (reusing finished runs) and save the table as ``experiment``.

    ``borrowed`` maps a spec's run name (or its label: every task's) to another experiment whose runs it shares
    (Table 5's MPOP row is the frontier's MPOP run: computed once, by whichever runs first).
    ``row(spec, record)`` makes a spec's table row (default :func:`row_of`).
    ``finish(spec, record, folder) -> record`` completes the record of a run of this experiment once it has
    run (e.g. OPF's merge check on the saved model), before it is kept. With
    ``keep_records`` each run's record is written to :func:`records_root` as it
    finishes, and a cell whose record is there is not run again (its row is rebuilt from it).
    """
    start, found = time.perf_counter(), {}
    borrowed = borrowed or {}
    owners = [borrowed.get(spec.run_name, borrowed.get(spec.label, experiment)) for spec in specs]
    if keep_records:
        found = {i: r for i, (s, o) in enumerate(zip(specs, owners)) if (r := stored_record(s, mode, o)) is not None
                 and matches(r, _config(s, mode, runs_root(o, mode), data_dir or default_glue_dir(), overrides))}
    position = {spec.run_name: index for index, spec in enumerate(specs)}
    with tqdm(total=len(specs), initial=len(found), desc=experiment, unit="run") as bar:
        for wait in (False, True):  # first the runs nobody holds, then wait for those other processes hold
            for index, (spec, owner) in enumerate(zip(specs, owners)):
                if spec.after is not None and position[spec.after] not in found:
                    continue  # its source is another process's still: after that one, in the waiting pass
                if index not in found:
                    complete = partial(_complete, spec, mode, owner, experiment, keep_records, finish)
                    record = run_one(spec, mode, owner, data_dir, wait=wait, complete=complete, **overrides)
                    if record is not None:
                        found[index] = record
                        bar.update()
    records = [found[index] for index in range(len(specs))]
    rows = [row(spec, record) for spec, record in zip(specs, records)]
    settings = {"mode_settings": {**mode_settings(mode), **overrides}, "learning_rates": LEARNING_RATES,
                "runs": [_spec_settings(s) for s in specs], **(extra_settings or {})}
    return save_results(experiment, mode, pd.DataFrame(rows), settings, records, time.perf_counter() - start)


def score_table(results: Results) -> pd.DataFrame:
    """Our grid as rows x tasks (scores in percent, as the paper prints them) plus mean #Pr / #To."""
    table = results.table
    scores = table.pivot_table(index="row", columns="task", values="score", aggfunc="first", sort=False) * 100
    sizes = table.groupby("row", sort=False)[["pr_millions", "to_millions"]].mean()
    return scores.join(sizes.rename(columns={"pr_millions": "pr", "to_millions": "to"}))


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, row_of: dict[str, str]) -> pd.DataFrame:
    """Columns ``(task, "ours")`` / ``(task, "paper")`` per row; ``row_of`` maps our rows to the paper's."""
    columns = {}
    for column in ours.columns:
        columns[(column, "ours")] = ours[column]
        if column in paper.columns:
            columns[(column, "paper")] = pd.Series({r: paper.at[row_of[r], column] if row_of.get(r) in paper.index
                                                    else float("nan") for r in ours.index})
    frame = pd.DataFrame(columns)
    frame.index = [f"{r} (paper: {row_of.get(r, '-')})" for r in ours.index]
    return frame.round(2)


def task_columns(ours: pd.DataFrame) -> list[str]:
    """The task columns of a :func:`score_table` (all but #Pr / #To)."""
    return [c for c in ours.columns if c not in ("pr", "to")]


def mean_scores(ours: pd.DataFrame) -> pd.Series:
    """Each row's mean score over the tasks of a :func:`score_table`."""
    return ours[task_columns(ours)].mean(axis=1)


def score_figure(results: Results, title: str = ""):
    """Grouped bars: our score per task (percent) for each row, #Pr in the legend."""
    import plotly.graph_objects as go

    ours = score_table(results)
    tasks = task_columns(ours)
    fig = go.Figure([go.Bar(name=f"{row} (#Pr {ours.at[row, 'pr']:.2f}M)", x=tasks, y=ours.loc[row, tasks])
                     for row in ours.index])
    fig.update_layout(barmode="group", title=title or f"{results.name} [{results.mode}]: GLUE dev scores",
                      yaxis_title="score (%)", xaxis_title="task", legend_title="row")
    return fig


def constant_levels(task: str, max_eval_examples: int | None, seed: int = 0, data_dir=None) -> set[float]:
    """Dev scores of predicting one class for every example: each class's share (accuracy), {0} (Matthews).

    Empty for other metrics (F1 and correlations), or when the GLUE files are missing.
    """
    metric = get_task(task).metric
    if metric == "matthews":
        return {0.0}
    if metric != "accuracy":
        return set()
    try:
        labels = load_glue_split(task, "dev", data_dir or default_glue_dir(), max_examples=max_eval_examples,
                                 seed=seed).labels
    except (FileNotFoundError, ValueError):
        return set()
    return {labels.count(label) / len(labels) for label in set(labels)}


def predicted_one_class(record: dict, levels=()) -> bool:
    """Whether a run predicted one class for every dev example: the one rule of every table.

    From the run's own predictions (``eval.predicted_classes``, counted on dev) when its record has them;
    a record from before that count falls back to its score equalling a constant prediction's (``levels``,
    :func:`constant_levels`). STS-B: a constant score (Spearman 0 or NaN).
    """
    classes = (record.get("eval") or {}).get("predicted_classes")
    if classes is not None:
        return int(classes) <= 1
    score = record.get("score")
    if score is None or score != score:
        return record.get("metric") == "spearman"
    if record.get("metric") == "spearman":
        return score == 0.0
    return any(abs(score - level) < 1e-9 for level in levels)


def run_records(results: Results) -> dict[str, dict]:
    """``{run name: record}`` of a grid's results (the records in the table's order)."""
    records = results.meta.get("records") or []
    runs = list(results.table["run"]) if "run" in results.table else []
    return dict(zip(runs, records)) if len(runs) == len(records) else {}


def constant_rows(results: Results, data_dir=None) -> dict[str, list[str]]:
    """Per task, the rows that predicted one class on dev (:func:`predicted_one_class`): they did not learn."""
    settings = results.meta.get("settings", {}).get("mode_settings", {})
    records = run_records(results)
    out = {}
    for task, part in results.table.groupby("task", sort=False):
        levels = constant_levels(task, settings.get("max_eval_examples"), settings.get("seed", 0), data_dir)
        stuck = [row for row, score, run in zip(part["row"], part["score"], part.get("run", [None] * len(part)))
                 if predicted_one_class(records.get(run) or {"score": score, "metric": get_task(task).metric},
                                        levels)]
        if stuck:
            out[task] = stuck
    return out


def constant_sentence(results: Results, data_dir=None) -> str:
    """One finding: which rows stayed at a constant prediction (majority or minority share; Matthews 0)."""
    stuck = constant_rows(results, data_dir)
    if not stuck:
        return "every row learned beyond a constant prediction."
    listed = "; ".join(f"{task}: {', '.join(rows)}" for task, rows in stuck.items())
    return (f"{sum(map(len, stuck.values()))} of {len(results.table)} runs scored exactly what predicting one class "
            f"for every dev example scores (no signal learned within the budget): {listed}.")
