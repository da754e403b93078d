"""The frontier (issue 13 §4): dev score vs #To on SST-2 and MRPC, mean ± std over seeds, per method.

Rows of one task, all on the packaged MiniLM with one schedule, step count and
batch size (:data:`~mpo_core.reproduction.glue_grid.FULL`), each at the learning
rate the probe chose for its family on held-out training examples
(:func:`.lr_probe.probed_rates`; a kept record made at another rate is run again)::

    full              dense full fine-tuning                              #To = dense
    last_1            only the last encoder layer + head (#Pr ~ mpo_lfa's)  #To = dense
    mpop@t            LFA, then squeezing to #To <= t x dense (Algorithm 2)  t in 0.9 / 0.75 / 0.6
    mpo_lfa@t         truncate straight to #To ~ t x dense (n = 5, optimal bond allocation), then LFA
    svd_lfa@t         the same with n = 2: a truncated SVD W ~ U V

Direct truncation is given as an Eq. (5) ``compression_ratio`` rho for every
matrix; :func:`ratio_for_size` finds by bisection the rho at which the model's
real #To is the target (counted from the allocated bond dims of each matrix's
decomposition, without building the model). The rhos are kept, per task, in
``records/frontier/sizes.json`` and in the results' settings.

Every finished run's record goes to ``results/<mode>/records/frontier/<run>.json``
(committed, unlike ``runs/``), and a cell whose record exists is not run again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..data.glue import get_task
from ..model.matrix_groups import find_matrices, layer_index
from ..model.mpo_config import MPOConfig
from ..model.parameter_count import count_parameters
from ..runs.atomic_write import atomic_write_json
from ..runs.run_folder import read_json
from ..tensor.compression import count_params
from ..tensor.decomposition import decompose
from ..tensor.mpo import MPO
from ..tensor.truncation import bond_dims_for_ratio
from .glue_grid import (ByMode, RunSpec, constant_levels, mode_settings, predicted_one_class, records_root,
                        run_grid, run_records)
from .results_store import Results
from .verdict import HOLDS, Verdict, not_below

NAME = "frontier"
TASKS = ByMode(small=("sst2",), full=("sst2", "mrpc"))
TARGETS = ByMode(small=(0.75,), full=(0.9, 0.75, 0.6))  # #To as a share of the dense model's
SEEDS = ByMode(small=(0,), full=(0, 1, 2))
LAST_K = 1  # last_1 trains 1.9M parameters, about what the MPO rows' LFA trains
# label -> MPOConfig of the direct truncation (n = 2: a truncated SVD W ~ U V). The SVD rows rebuild the
# word embedding's table per step (forward_mode="dense", same numbers): its row lookup path loops over every
# distinct id when the central factor is the whole vocabulary (n = 2), about a minute per training batch.
TRUNCATIONS = {"mpo_lfa": {"n": 5}, "svd_lfa": {"n": 2, "forward_mode": "dense"}}
WITHIN = 0.01  # "within 1 point of full fine-tuning", in metric units
# mpop: each cut removes step_size of the dense model (<= 10 cuts from the full-bond MPO, 1.07x, to 0.6x) and
# squeezing goes on to the target (stop_on="never"): a frontier point is a model of the target's size. Every
# cut's p~ on held-out training examples is recorded with whether the paper's |p - p~| > delta rule and the
# one-sided p - p~ > delta rule would have stopped there (delta = 1 point, the finding's own tolerance), so
# the findings report where each rule stops from the same runs. (A first grid stopped on "drop": on SST-2
# the first cut's p~ moved 2.3 points on 256 held-out examples, inside their binomial noise of ~3 points, and
# every target's run ended at the full-bond 1.07x dense model.)
SQUEEZE = ByMode(small=dict(step_size=0.2, tune_steps=1, delta=0.01, heldout_examples=16),
                 full=dict(step_size=0.05, tune_steps=8, delta=0.01, heldout_examples=256))
SQUEEZE_SLACK = 2  # cuts beyond (start - target) / step_size: a cut may remove less when the target is near
SIZES_FILE = "sizes.json"


def configured_matrices(model, mpo_config: MPOConfig) -> dict:
    """``{module name: float weight}`` of the matrices ``mpo_config`` selects in ``model``."""
    modules = dict(model.named_modules())
    names = [name for name in find_matrices(model, mpo_config.groups)
             if mpo_config.layers is None or layer_index(name) in (None, *mpo_config.layers)]
    return {name: modules[name].weight.detach().float() for name in names}


@dataclass
class SizeModel:
    """#To of a model whose matrices are truncated to one compression ratio, without building that model.

    Attributes
    ----------
    dense_params: #To of the dense model.
    other_params: What the MPO surgery leaves dense (biases, LayerNorms, position embeddings, head).
    mpos: The full-bond decomposition of every configured matrix.
    """

    dense_params: int
    other_params: int
    mpos: list[MPO]

    @classmethod
    def of(cls, model, mpo_config: MPOConfig) -> "SizeModel":
        """Decompose each matrix that ``mpo_config`` selects in ``model`` once (Algorithm 1)."""
        weights = list(configured_matrices(model, mpo_config).values())
        dense = count_parameters(model).total
        mpos = [decompose(w, n=mpo_config.n) for w in weights]
        return cls(dense, dense - sum(w.numel() for w in weights), mpos)

    @property
    def matrix_params(self) -> int:
        return sum(m.shape.num_matrix_params for m in self.mpos)

    def total_params(self, compression_ratio: float | None = None) -> int:
        """#To with every matrix at the bond dims allocated for ``compression_ratio`` (``None``: full bonds)."""
        def dims(mpo):
            return mpo.full_bond_dims if compression_ratio is None else bond_dims_for_ratio(mpo, compression_ratio)

        return self.other_params + sum(count_params(m.shape, dims(m)) for m in self.mpos)


def ratio_for_size(sizes: SizeModel, target_params: float, rtol: float = 1e-3,
                   max_iterations: int = 40) -> tuple[float, int]:
    """The Eq. (5) ratio rho at which the model's #To is ``target_params``, by bisection; returns ``(rho, #To)``.

    The first guess is the linear one (an allocation nearly fills its budget
    ``rho x entries``); bisection then stops within ``rtol`` of the target or
    returns the closest rho it saw.

    Raises
    ------
    ValueError
        If the target is outside what truncation can reach (below all-ones bonds, above full bonds).
    """
    lowest, full = sizes.total_params(1e-12), sizes.total_params()  # all bonds 1 .. full bonds
    if not lowest <= target_params <= full:
        raise ValueError(f"#To {target_params:.0f} is outside what truncating these matrices reaches "
                         f"({lowest}..{full}).")
    low, high = 0.0, max(count_params(m.shape, m.full_bond_dims) / m.shape.num_matrix_params for m in sizes.mpos)
    rho = min(max((target_params - sizes.other_params) / sizes.matrix_params, 1e-6), high)
    best = None
    for _ in range(max_iterations):
        total = sizes.total_params(rho)
        if best is None or abs(total - target_params) < abs(best[1] - target_params):
            best = (rho, total)
        if abs(total - target_params) <= rtol * target_params:
            break
        low, high = (rho, high) if total < target_params else (low, rho)
        rho = (low + high) / 2
    return best


def task_sizes(task: str, mode: str, targets=None) -> dict:
    """Dense and full-bond #To of the task's model and, per truncation and target, the rho that reaches it."""
    from ..model.sequence_classifier import load_sequence_classifier

    targets = TARGETS[mode] if targets is None else targets
    layers = mode_settings(mode).get("num_hidden_layers")
    model, _ = load_sequence_classifier(task, num_hidden_layers=layers, seed=0)
    out = {"num_hidden_layers": layers, "targets": list(targets), "ratios": {}}
    by_n = {}  # the decompositions depend on n only: one per n
    for mpo_config in (MPOConfig(), *(MPOConfig(**c) for c in TRUNCATIONS.values())):
        if mpo_config.n not in by_n:
            by_n[mpo_config.n] = SizeModel.of(model, mpo_config)
    out["dense_params"] = by_n[MPOConfig().n].dense_params
    out["mpo_full_bond_params"] = by_n[MPOConfig().n].total_params()  # where mpop starts squeezing
    for label, mpo_config in TRUNCATIONS.items():
        sizes = by_n[MPOConfig(**mpo_config).n]
        out["ratios"][label] = {}
        for target in targets:
            rho, total = ratio_for_size(sizes, target * sizes.dense_params)
            out["ratios"][label][str(target)] = {"compression_ratio": rho, "total_params": total,
                                                 "target_params": target * sizes.dense_params}
    return out


def all_sizes(mode: str) -> dict:
    """:func:`task_sizes` of every task, kept in ``records/frontier/sizes.json`` (found once per mode)."""
    path = records_root(NAME, mode) / SIZES_FILE
    stored = read_json(path) if path.is_file() else {}
    layers = mode_settings(mode).get("num_hidden_layers")
    fresh = {task: stored[task] for task in TASKS[mode] if task in stored
             and stored[task]["num_hidden_layers"] == layers and stored[task]["targets"] == list(TARGETS[mode])}
    if len(fresh) < len(TASKS[mode]):
        fresh = {task: fresh.get(task) or task_sizes(task, mode) for task in TASKS[mode]}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**stored, **fresh})
    return fresh


def training_steps(mode: str, task: str) -> int:
    """Optimizer steps of a run of the other rows on ``task`` (mpop's LFA phase gets as many).

    ``ceil(N / batch) x ceil(epochs)`` with ``N`` the mode's training examples (the task's whole training
    file where the mode takes all of it: the gpu mode).
    """
    from ..data.glue import default_glue_dir, load_glue_split

    settings = mode_settings(mode)
    if settings.get("max_steps", -1) > 0:
        return settings["max_steps"]
    available = len(load_glue_split(task, "train", default_glue_dir()).labels)
    limit = settings.get("max_train_examples")
    examples = available if limit is None else min(limit, available)
    return math.ceil(examples / settings["batch_size"]) * math.ceil(settings["epochs"])


def squeeze_budget(start: float, target: float, step_size: float) -> int:
    """Cuts that take #To from ``start`` to ``target`` (shares of dense) at ``step_size`` each, plus slack."""
    return max(1, math.ceil((start - target) / step_size)) + SQUEEZE_SLACK


def mpop_options(mode: str, target: float, start: float, task: str) -> dict:
    squeeze = SQUEEZE[mode]
    return dict(target_size=target, step_unit="model", rank="per_param", bonds="all", stop_on="never",
                lfa_steps=training_steps(mode, task),
                squeeze_steps=squeeze_budget(start, target, squeeze["step_size"]),
                **squeeze)


def label_of(method: str, target: float | None = None) -> str:
    return method if target is None else f"{method}@{target:g}"


def parse_label(label: str) -> tuple[str, float | None]:
    """``"mpop@0.75"`` -> ``("mpop", 0.75)``; ``"full"`` -> ``("full", None)``."""
    method, _, target = label.partition("@")
    return method, float(target) if target else None


STRATEGIES = ("full", "last_k", "mpop", "mpo_lfa")


def learning_rates(mode: str) -> dict:
    """``{(strategy, task): (rate, source)}`` of the frontier's rows (:func:`.lr_probe.probed_rates`)."""
    from .lr_probe import probed_rates

    return probed_rates(mode, STRATEGIES, TASKS[mode])


def cells(task: str, mode: str, sizes: dict, seed: int, rates: dict) -> list[RunSpec]:
    """One seed's rows of one task, each at its family's probed learning rate."""
    start = sizes["mpo_full_bond_params"] / sizes["dense_params"]

    def rate(strategy):
        return {"learning_rate": rates[(strategy, task)][0]}

    out = [RunSpec("full", task, "full", seed=seed, settings=rate("full")),
           RunSpec(f"last_{LAST_K}", task, "last_k", {"k": LAST_K}, seed=seed, settings=rate("last_k"))]
    for target in TARGETS[mode]:
        out.append(RunSpec(label_of("mpop", target), task, "mpop", mpop_options(mode, target, start, task),
                           seed=seed, settings=rate("mpop")))
        for label, mpo_config in TRUNCATIONS.items():
            rho = sizes["ratios"][label][str(target)]["compression_ratio"]
            options = {"compression_ratio": rho, "mpo_config": dict(mpo_config)}
            out.append(RunSpec(label_of(label, target), task, "mpo_lfa", options, seed=seed,
                               settings=rate("mpo_lfa")))
    return out


def specs(mode: str, sizes: dict | None = None, rates: dict | None = None) -> list[RunSpec]:
    """Every run, seed by seed (an interrupted grid has whole frontiers of the first seeds)."""
    sizes, rates = sizes or all_sizes(mode), rates or learning_rates(mode)
    return [spec for seed in SEEDS[mode] for task in TASKS[mode]
            for spec in cells(task, mode, sizes[task], seed, rates)]


RULES = ("change", "drop")  # the delta rules the findings report for mpop (stop_on="never" records both)


def rule_stop(squeeze: dict | None, rule: str) -> int | None:
    """#To at which ``rule`` (``"change"``: |p - p~| > delta, ``"drop"``: p - p~ > delta) stops a squeeze.

    Read from a run's recorded steps: the model after the last step within delta
    before the first one outside it (the full-bond MPO if that is the first cut).
    ``None`` for a run that recorded no per-rule flags.
    """
    if not squeeze or not squeeze.get("history") or any(f"within_{rule}" not in h for h in squeeze["history"]):
        return None
    total = squeeze.get("mpo_params")
    for step in squeeze["history"]:
        if not step[f"within_{rule}"]:
            break
        total = step.get("total_params", total)
    return total


def row_maker(sizes: dict):
    """The table row of one run: the columns the issue asks for, plus the share of dense and mpop's stop."""
    def row(spec: RunSpec, record: dict) -> dict:
        method, target = parse_label(spec.label)
        dense = sizes[spec.task]["dense_params"]
        return {"task": get_task(spec.task).name, "row": spec.label, "method": method, "strategy": spec.strategy,
                "seed": spec.seed, "target": target, "metric": record.get("metric"), "score": record.get("score"),
                "total_params": record.get("total_params"), "trainable_params": record.get("trainable_params"),
                "to_vs_dense": record.get("total_params", float("nan")) / dense,
                "wall_seconds": record.get("wall_seconds"),
                "stop_reason": (record.get("squeeze") or {}).get("stop_reason"),
                **{f"{rule}_rule_vs_dense": _share(rule_stop(record.get("squeeze"), rule), dense) for rule in RULES},
                "run": spec.run_name}
    return row


def _share(total, dense) -> float:
    return float("nan") if total is None else total / dense


def run(mode: str) -> Results:
    from .lr_probe import rates_setting

    sizes, rates = all_sizes(mode), learning_rates(mode)
    extra = {"tasks": TASKS[mode], "targets": TARGETS[mode], "seeds": SEEDS[mode], "sizes": sizes,
             "squeeze": SQUEEZE[mode], "last_k": LAST_K, "truncations": TRUNCATIONS,
             "learning_rates_used": rates_setting(rates)}
    return run_grid(NAME, specs(mode, sizes, rates), mode, extra_settings=extra, row=row_maker(sizes),
                    keep_records=True)


def ratio_table(results: Results) -> pd.DataFrame:
    """The direct truncations' rho per task and target, with the #To it gives against the target."""
    rows = [{"task": task, "row": label_of(label, float(target)), "compression_ratio": found["compression_ratio"],
             "to_millions": found["total_params"] / 1e6, "target_millions": found["target_params"] / 1e6,
             "off_target": found["total_params"] / found["target_params"] - 1}
            for task, sizes in results.meta["settings"]["sizes"].items()
            for label, by_target in sizes["ratios"].items() for target, found in by_target.items()]
    return pd.DataFrame(rows)


def constant_runs(results: Results, data_dir=None) -> list[str]:
    """The runs that predicted one class on dev (:func:`~.glue_grid.predicted_one_class`: their predictions, or
    for records without the count, a score equal to a constant prediction's)."""
    max_eval = results.meta.get("settings", {}).get("mode_settings", {}).get("max_eval_examples")
    levels, stuck, records = {}, [], run_records(results)
    for task, seed, score, name in results.table[["task", "seed", "score", "run"]].itertuples(index=False):
        key = (task, int(seed))
        if key not in levels:
            levels[key] = constant_levels(task, max_eval, int(seed), data_dir)
        if predicted_one_class(records.get(name) or {"score": score, "metric": get_task(task).metric}, levels[key]):
            stuck.append(name)
    return stuck


def summary(results: Results, data_dir=None) -> pd.DataFrame:
    """Per task and row: mean and std of the score over seeds (constant-prediction runs left out), sizes,
    and the verdict on "within :data:`WITHIN` of full fine-tuning" from the seeds (:mod:`.verdict`)."""
    table = results.table.copy()
    table["constant"] = table["run"].isin(constant_runs(results, data_dir))
    learned = table[~table["constant"]]
    keys = ["task", "row"]
    out = table.groupby(keys, sort=False).agg(
        method=("method", "first"), target=("target", "first"), runs=("run", "count"),
        constant=("constant", "sum"), to_millions=("total_params", lambda s: s.mean() / 1e6),
        pr_millions=("trainable_params", lambda s: s.mean() / 1e6), to_vs_dense=("to_vs_dense", "mean"))
    scores = learned.groupby(keys, sort=False)["score"].agg(["mean", "std"]) * 100
    out = out.join(scores).reset_index()
    seeds = {key: list(part * 100) for key, part in learned.groupby(keys, sort=False)["score"]}
    verdicts = [None if method == "full" else within_full(seeds.get((task, row), []), seeds.get((task, "full"), []))
                for task, row, method in zip(out["task"], out["row"], out["method"])]
    out["verdict"] = [v.verdict if v else None for v in verdicts]
    out["difference"] = [v.difference if v else float("nan") for v in verdicts]
    out["ci_low"] = [v.low if v else float("nan") for v in verdicts]
    out["ci_high"] = [v.high if v else float("nan") for v in verdicts]
    return out


def within_full(scores: list, full: list) -> Verdict | None:
    """The verdict on "at most :data:`WITHIN` below full fine-tuning" (scores in percent); None without scores."""
    if not scores or not full:
        return None
    return not_below(scores, full, margin=100 * WITHIN)


def _score(row) -> str:
    if pd.isna(row["mean"]):
        return "no run learned"
    std = "" if pd.isna(row["std"]) else f" ± {row['std']:.1f}"
    return f"{row['mean']:.1f}{std}"


def _judged(row) -> str:
    """One size's score and verdict, e.g. ``0.75x dense: 79.8 ± 0.4, holds (-0.3 [-0.9, +0.3])``."""
    if not isinstance(row["verdict"], str):  # no verdict: the reference itself, or no run of the cell learned
        return f"{row['to_vs_dense']:.2f}x dense: {_score(row)}"
    interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
    return (f"{row['to_vs_dense']:.2f}x dense: {_score(row)}, {row['verdict']} "
            f"({row['difference']:+.1f}{interval})")


def method_sentence(part: pd.DataFrame, method: str) -> str:
    """Per size of ``method``: its score and the verdict on "within 1 point of full"; the smallest size where it holds."""
    rows = part[part["method"] == method].sort_values("to_vs_dense", ascending=False)
    holds = rows[rows["verdict"] == HOLDS]
    label = method if not rows["target"].isna().all() else f"{method} (#Pr {rows.iloc[0]['pr_millions']:.2f}M)"
    conclusion = (f"holds down to {holds['to_vs_dense'].min():.2f}x dense" if len(holds)
                  else "holds at none of its sizes")
    return f"{label}: {conclusion} — " + "; ".join(_judged(r) for _, r in rows.iterrows())


def _stop_kind(reason) -> str:
    if not isinstance(reason, str):
        return "none"
    return "held-out drop > delta" if reason.startswith("|p") else reason.split(":")[0]


def rule_sentence(mpop: pd.DataFrame, rule: str, squeeze: dict) -> str:
    """Where a delta rule, judged on the held-out training examples, would have stopped the mpop runs."""
    shares = mpop.dropna(subset=[f"{rule}_rule_vs_dense"])
    if shares.empty:
        return f"no mpop run recorded where the {rule!r} rule stops."
    text = "|p - p~| > delta (the paper's)" if rule == "change" else "p - p~ > delta (drops only)"
    per_task = []
    for task, part in shares.groupby("task", sort=False):
        values = part[f"{rule}_rule_vs_dense"]
        early = int((values > part["to_vs_dense"] + 1e-9).sum())
        per_task.append(f"{task}: {early} of {len(part)} runs stopped before their target, at #To "
                        f"{values.min():.2f}-{values.max():.2f}x dense")
    return (f"had mpop stopped on {text} with delta {squeeze.get('delta')} on {squeeze.get('heldout_examples')} "
            f"held-out training examples: " + "; ".join(per_task) + ".")


def findings(results: Results, data_dir=None) -> list[str]:
    """Per task, at which size each method stays within 1 point of full fine-tuning; mpop's stops; constant runs."""
    table, lines = summary(results, data_dir), []
    for task, part in table.groupby("task", sort=False):
        full = part[part["method"] == "full"].iloc[0]
        if pd.isna(full["mean"]):
            lines.append(f"{task}: every full fine-tuning run stayed at a constant prediction; no reference.")
            continue
        methods = [m for m in dict.fromkeys(part["method"]) if m != "full"]
        lines.append(f"{task}: full fine-tuning {_score(full)} ({full['runs'] - full['constant']} seeds). "
                     f"Within 1 point of it (verdict from the 95 % interval of the difference over seeds, "
                     f"in points): " + " | ".join(method_sentence(part, m) for m in methods))
    mpop = results.table[results.table["method"] == "mpop"]
    if len(mpop):
        kinds = mpop["stop_reason"].map(_stop_kind).value_counts()
        reached = mpop.groupby(["task", "row"], sort=False)["to_vs_dense"].mean()
        squeeze = results.meta.get("settings", {}).get("squeeze", {})
        lines.append(f"mpop stopped: {', '.join(f'{k} ({v})' for k, v in kinds.items())}; mean #To reached: "
                     + ", ".join(f"{t} {r} {x:.2f}x" for (t, r), x in reached.items()) + ".")
        lines.extend(rule_sentence(mpop, rule, squeeze) for rule in RULES if f"{rule}_rule_vs_dense" in mpop)
    stuck = constant_runs(results, data_dir)
    lines.append(f"{len(stuck)} of {len(results.table)} runs scored exactly a constant prediction and are left "
                 f"out of the means: {', '.join(stuck)}." if stuck else
                 "every run learned beyond a constant prediction.")
    return lines


def frontier_figure(results: Results, data_dir=None):
    """Score (percent) vs #To (millions) per task: one line per method, error bars = std over seeds."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table = summary(results, data_dir)
    tasks = list(dict.fromkeys(table["task"]))
    max_eval = results.meta.get("settings", {}).get("mode_settings", {}).get("max_eval_examples")
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks)
    dead_shown = False
    colors = dict(zip(dict.fromkeys(table["method"]), ("black", "gray", "#d62728", "#1f77b4", "#2ca02c", "#9467bd")))
    for col, task in enumerate(tasks, start=1):
        part = table[table["task"] == task]
        for method, rows in part.groupby("method", sort=False):
            rows = rows.sort_values("to_millions")
            fig.add_trace(go.Scatter(
                x=rows["to_millions"], y=rows["mean"], error_y=dict(type="data", array=rows["std"].fillna(0)),
                mode="lines+markers", name=method, legendgroup=method, showlegend=col == 1,
                line=dict(color=colors[method]), marker=dict(symbol="diamond" if method.startswith("last") else "circle",
                                                             size=9), text=rows["row"],
                hovertemplate="%{text}: %{y:.1f} at #To %{x:.2f}M"), row=1, col=col)
        levels = constant_levels(task, max_eval, 0, data_dir)
        dead = part[part["mean"].isna()]  # cells whose every run stayed at a constant prediction
        lowest = (part["mean"] - part["std"].fillna(0)).min()
        if levels and (len(dead) or 100 * max(levels) >= lowest - 3):  # near the scores: where learning starts
            majority = 100 * max(levels)  # what predicting the majority class for every dev example scores
            fig.add_hline(y=majority, line_dash="dash", line_color="gray", row=1, col=col,
                          annotation_text=f"one class for all: {majority:.1f}", annotation_position="bottom right")
            if len(dead):
                fig.add_trace(go.Scatter(
                    x=dead["to_millions"], y=[majority] * len(dead), mode="markers", name="no run learned",
                    legendgroup="dead", showlegend=not dead_shown, text=dead["row"],
                    marker=dict(symbol="x", size=11, color=[colors[m] for m in dead["method"]]),
                    hovertemplate="%{text}: every run predicted one class"), row=1, col=col)
                dead_shown = True
        full = part[part["method"] == "full"]["mean"].iloc[0]
        if not pd.isna(full):
            fig.add_hline(y=full - 100 * WITHIN, line_dash="dot", line_color="black", row=1, col=col,
                          annotation_text="full - 1 point", annotation_position="bottom left")
    fig.update_xaxes(title_text="#To (millions)")
    fig.update_yaxes(title_text="dev score (%)", col=1)
    fig.update_layout(title=f"{results.name} [{results.mode}]: score vs model size (mean ± std over seeds)")
    return fig
