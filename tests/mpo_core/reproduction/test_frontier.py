"""The frontier: the rho search on the real model, the grid's rows and seeds, kept records, findings, small mode."""
import json

import numpy as np
import pandas as pd
import pytest

from mpo_core.model.mpo_config import MPOConfig
from mpo_core.model.parameter_count import count_parameters
from mpo_core.model.surgery import apply_mpo
from mpo_core.reproduction import EXPERIMENTS, frontier, glue_grid
from mpo_core.reproduction.results_store import Results
from mpo_core.runs.run_folder import RESULTS_FILE

ENCODER = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
COLUMNS = ["task", "row", "method", "strategy", "seed", "target", "metric", "score", "total_params",
           "trainable_params", "to_vs_dense", "wall_seconds", "stop_reason", "change_rule_vs_dense",
           "drop_rule_vs_dense", "run"]


@pytest.fixture(scope="module")
def one_layer(single_blas_thread):
    from mpo_core.model.sequence_classifier import load_sequence_classifier

    return lambda: load_sequence_classifier("sst2", num_hidden_layers=1, seed=0)[0]


@pytest.mark.parametrize("n", [5, 2])
@pytest.mark.parametrize("target", [0.6, 0.9])
def test_rho_search_hits_the_target_size_of_the_real_model_within_one_percent(one_layer, n, target):
    config = MPOConfig(groups=ENCODER, n=n)  # the encoder matrices of the 1-layer MiniLM: fast, real spectra
    model = one_layer()
    sizes = frontier.SizeModel.of(model, config)
    dense = count_parameters(model).total
    goal = sizes.other_params + target * sizes.matrix_params  # a share of the matrices: the others stay dense
    rho, predicted = frontier.ratio_for_size(sizes, goal)
    apply_mpo(model, MPOConfig(groups=ENCODER, n=n, compression_ratio=rho), progress=False)
    real = count_parameters(model).total
    assert sizes.dense_params == dense and real == predicted  # the count is the model's, exactly
    assert abs(real - goal) <= 0.01 * goal


def test_rho_search_refuses_sizes_truncation_cannot_reach(one_layer):
    sizes = frontier.SizeModel.of(one_layer(), MPOConfig(groups=("query",)))
    with pytest.raises(ValueError, match="outside what truncating"):
        frontier.ratio_for_size(sizes, sizes.other_params)


def test_run_spec_seed_keeps_the_old_run_names():
    assert glue_grid.RunSpec("full", "rte", "full").run_name == "full-rte"
    spec = glue_grid.RunSpec("mpop@0.75", "rte", "mpop", seed=2)
    assert spec.run_name == "mpop@0.75-rte-seed2"
    assert glue_grid._config(spec, "small", glue_grid.runs_root("x", "small"), None, {}).seed == 2
    assert glue_grid._config(glue_grid.RunSpec("full", "rte", "full"), "small", glue_grid.runs_root("x", "small"),
                             None, {}).seed == 0


def fake_sizes(tasks):
    ratios = {label: {str(t): {"compression_ratio": t - 0.01, "total_params": 1, "target_params": 1}
                      for t in frontier.TARGETS["full"]} for label in frontier.TRUNCATIONS}
    return {task: {"dense_params": 1000, "mpo_full_bond_params": 1070, "ratios": ratios} for task in tasks}


PROBED = {(s, t): (5e-5 if s in ("full", "last_k") else 3e-3, "lr_probe")
          for s in frontier.STRATEGIES for t in ("sst2", "mrpc")}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_full_mode_grid_rows_seeds_and_settings():
    specs = frontier.specs("full", fake_sizes(frontier.TASKS["full"]), PROBED)
    assert len(specs) == 2 * 3 * (2 + 3 * 3) and len({s.run_name for s in specs}) == len(specs)
    assert {s.seed for s in specs} == {0, 1, 2} and [s.seed for s in specs[:22]] == [0] * 22  # seed by seed
    mpop = {s.label: s.options for s in specs if s.strategy == "mpop" and s.task == "sst2" and s.seed == 0}
    assert [o["target_size"] for o in mpop.values()] == [0.9, 0.75, 0.6]
    for options in mpop.values():  # enough cuts to reach the target from the full-bond MPO (1.07x), plus slack
        assert options["squeeze_steps"] * options["step_size"] >= 1.07 - options["target_size"]
        assert options["stop_on"] == "never" and options["lfa_steps"] == frontier.training_steps("full", "sst2") == 94
    svd = next(s for s in specs if s.label == "svd_lfa@0.6")
    assert svd.options["mpo_config"]["n"] == 2 and svd.options["compression_ratio"] == pytest.approx(0.59)
    configs = [glue_grid._config(s, "full", glue_grid.runs_root("frontier", "full"), None, {})
               for s in specs if s.task == "mrpc" and s.seed == 1]
    for config in configs:  # one schedule, step count, batch size; each family at its probed rate
        assert (config.epochs, config.batch_size, config.warmup_steps, config.max_train_examples, config.seed) == \
            (2.0, 32, 20, 1500, 1)
        assert config.learning_rate == (5e-5 if config.strategy in ("full", "last_k") else 3e-3)


@pytest.fixture
def counted_fine_tune(monkeypatch, tmp_path):
    """fine_tune replaced by a stub that writes results.json and counts its calls."""
    calls = []

    def fine_tune(config):
        folder = tmp_path / "results" / "small" / "runs" / "grid" / config.run_name
        folder.mkdir(parents=True)
        record = {"run_name": config.run_name, "score": 0.5 + len(calls) / 10, "config": config.to_dict()}
        (folder / RESULTS_FILE).write_text(json.dumps(record))
        calls.append(config.run_name)
        return record

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr("mpo_core.training.fine_tune.fine_tune", fine_tune)
    return calls


def test_kept_records_are_written_per_run_and_rebuild_rows_on_a_fresh_machine(counted_fine_tune, tmp_path):
    import shutil

    specs = [glue_grid.RunSpec("full", "rte", "full", seed=s) for s in (0, 1)]
    first = glue_grid.run_grid("grid", specs, "small", keep_records=True)
    records = glue_grid.records_root("grid", "small")
    assert sorted(p.name for p in records.iterdir()) == ["full-rte-seed0.json", "full-rte-seed1.json"]
    assert json.loads((records / "full-rte-seed1.json").read_text())["config"]["seed"] == 1
    shutil.rmtree(glue_grid.runs_root("grid", "small"))  # runs/ is git-ignored: gone on a fresh machine
    second = glue_grid.run_grid("grid", specs, "small", keep_records=True)
    assert len(counted_fine_tune) == 2 and second.table.equals(first.table)
    glue_grid.run_grid("grid", specs[:1], "small")  # without keep_records nothing changes: the run folder again
    assert len(counted_fine_tune) == 3


def test_a_record_made_with_other_settings_is_run_again_not_reused(counted_fine_tune):
    at = lambda rate: [glue_grid.RunSpec("full", "rte", "full", seed=0, settings={"learning_rate": rate})]  # noqa: E731
    first = glue_grid.run_grid("grid", at(1e-4), "small", keep_records=True)
    again = glue_grid.run_grid("grid", at(1e-4), "small", keep_records=True)
    assert len(counted_fine_tune) == 1 and again.table.equals(first.table)
    glue_grid.run_grid("grid", at(2e-4), "small", keep_records=True)  # the probe chose another rate
    assert len(counted_fine_tune) == 2
    kept = json.loads((glue_grid.records_root("grid", "small") / "full-rte-seed0.json").read_text())
    assert kept["config"]["learning_rate"] == 2e-4  # the record now stands for the new run


def synthetic(scores: dict, seeds=(0, 1, 2), constant_run=None) -> Results:
    rows, rng = [], np.random.default_rng(0)
    for seed in seeds:
        for label, score in scores.items():
            method, target = frontier.parse_label(label)
            size = 1.0 if target is None else target
            name = f"{label}-sst2-seed{seed}"
            rows.append({"task": "sst2", "row": label, "method": method, "strategy": method, "seed": seed,
                         "target": target, "metric": "accuracy",
                         "score": 0.5 if name == constant_run else score + rng.normal(0, 0.002),
                         "total_params": int(2e7 * size), "trainable_params": 1e6, "to_vs_dense": size,
                         "wall_seconds": 1.0, "stop_reason": "target size reached: #To" if method == "mpop" else None,
                         "change_rule_vs_dense": 1.07 if method == "mpop" else np.nan,  # stopped at the first cut
                         "drop_rule_vs_dense": size if method == "mpop" else np.nan,  # reached the target
                         "run": name})
    return Results("frontier", "full", pd.DataFrame(rows, columns=COLUMNS),
                   {"settings": {"squeeze": frontier.SQUEEZE["full"]}})


def test_findings_say_down_to_which_size_each_method_stays_within_a_point(monkeypatch):
    monkeypatch.setattr(frontier, "constant_levels", lambda task, *args: {0.5})
    results = synthetic({"full": 0.80, "last_1": 0.75, "mpop@0.9": 0.797, "mpop@0.6": 0.70,
                         "mpo_lfa@0.9": 0.799, "mpo_lfa@0.6": 0.798, "svd_lfa@0.9": 0.6, "svd_lfa@0.6": 0.55},
                        constant_run="svd_lfa@0.6-sst2-seed1")
    table = frontier.summary(results)
    svd = table[table["row"] == "svd_lfa@0.6"].iloc[0]
    assert svd["constant"] == 1 and svd["mean"] == pytest.approx(55, abs=0.5)  # left out of the mean
    verdicts = dict(zip(table["row"], table["verdict"]))
    assert verdicts["mpop@0.9"] == verdicts["mpo_lfa@0.6"] == "holds"
    assert verdicts["mpop@0.6"] == verdicts["last_1"] == verdicts["svd_lfa@0.9"] == "does not hold"
    assert pd.isna(verdicts["full"])  # the reference is not judged against itself
    first, squeeze, change, drop, stuck = frontier.findings(results)
    assert first.startswith("sst2: full fine-tuning ") and " ± 0." in first and "(3 seeds)" in first
    assert "mpop: holds down to 0.90x dense" in first and "0.60x dense: 70." in first
    assert "mpo_lfa: holds down to 0.60x dense" in first and "svd_lfa: holds at none of its sizes" in first
    assert "last_1 (#Pr 1.00M): holds at none of its sizes" in first and "95 % interval" in first
    # a row of noisy seeds straddling the 1-point line cannot be judged either way
    noisy = synthetic({"full": 0.80, "mpop@0.9": 0.79})
    noisy.table.loc[noisy.table["row"] == "mpop@0.9", "score"] = [0.76, 0.82, 0.79]
    assert frontier.summary(noisy).set_index("row").at["mpop@0.9", "verdict"] == "cannot tell"
    # a cell where no seed learned reads as such, without a verdict on nothing
    dead = synthetic({"full": 0.80, "mpo_lfa@0.9": 0.5})
    dead.table.loc[dead.table["row"] == "mpo_lfa@0.9", "score"] = 0.5  # every seed at the constant level
    dead_first = frontier.findings(dead)[0]
    assert "0.90x dense: no run learned" in dead_first and "nan" not in dead_first
    dead_figure = frontier.frontier_figure(dead)  # the dead cell is drawn at the one-class level, which is drawn
    crosses = [trace for trace in dead_figure.data if trace.name == "no run learned"]
    assert len(crosses) == 1 and list(crosses[0].y) == [50.0] and list(crosses[0].text) == ["mpo_lfa@0.9"]
    assert any(shape.y0 == 50.0 for shape in dead_figure.layout.shapes)
    assert "target size reached (6)" in squeeze
    assert "|p - p~| > delta (the paper's)" in change and "sst2: 6 of 6 runs stopped before their target" in change
    assert "sst2: 0 of 6 runs stopped before their target" in drop
    assert stuck.startswith("1 of 24 runs") and "svd_lfa@0.6-sst2-seed1" in stuck
    figure = frontier.frontier_figure(results)
    assert {trace.name for trace in figure.data} == {"full", "last_1", "mpop", "mpo_lfa", "svd_lfa"}
    assert all(trace.error_y.array is not None for trace in figure.data)
    assert not any(shape.y0 == 50.0 for shape in figure.layout.shapes)  # far below every score: not drawn


def test_frontier_is_registered():
    assert EXPERIMENTS["frontier"] == "frontier"


@pytest.mark.slow  # real training: five 1-layer runs of 4 steps and the rho search, about 30 s on 2 cores
def test_small_mode_end_to_end_then_from_its_records_alone(tmp_path, monkeypatch, single_blas_thread):
    import shutil

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = frontier.run("small")
    table = results.table
    assert list(table.columns) == COLUMNS and len(table) == 5
    assert list(table["row"]) == ["full", "last_1", "mpop@0.75", "mpo_lfa@0.75", "svd_lfa@0.75"]
    assert table["score"].between(0, 1).all() and (table["seed"] == 0).all()
    sized = table[table["target"].notna()]
    assert (abs(sized["to_vs_dense"] - 0.75) <= 0.01 * 0.75).all()  # every method at the target size (1 %)
    assert sized[sized["method"] == "mpop"]["stop_reason"].iloc[0].startswith("target size reached")
    records = glue_grid.records_root("frontier", "small")
    assert {p.stem for p in records.glob("*.json")} == {*table["run"], "sizes"}
    assert "compression_ratio" in json.dumps(results.meta["settings"]["sizes"])
    assert len(frontier.findings(results)) == 5  # per task, mpop's stops, the two delta rules, constant runs
    mpop = table[table["method"] == "mpop"].iloc[0]
    assert 0.75 * 0.99 <= mpop["drop_rule_vs_dense"] <= 1.08 and 0.75 * 0.99 <= mpop["change_rule_vs_dense"] <= 1.08

    calls = []
    monkeypatch.setattr("mpo_core.training.fine_tune.fine_tune", lambda config: calls.append(config))
    monkeypatch.setattr(frontier, "task_sizes", lambda *a: pytest.fail("the sizes are kept in sizes.json"))
    shutil.rmtree(glue_grid.runs_root("frontier", "small"))  # a fresh machine: only the committed records
    again = frontier.run("small")
    assert calls == [] and again.table.equals(table)


def test_rule_stop_reads_where_each_delta_rule_would_have_stopped_a_squeeze():
    steps = [{"within_change": True, "within_drop": True, "total_params": 90},
             {"within_change": False, "within_drop": True, "total_params": 80},  # p~ rose by more than delta
             {"within_change": False, "within_drop": False, "total_params": 70}]
    squeeze = {"mpo_params": 100, "history": steps}
    assert frontier.rule_stop(squeeze, "change") == 90 and frontier.rule_stop(squeeze, "drop") == 80
    steps[0]["within_change"] = False  # the first cut already outside: the full-bond MPO stays
    assert frontier.rule_stop(squeeze, "change") == 100
    assert frontier.rule_stop({"mpo_params": 100, "history": [{"p_tilde": 0.5}]}, "drop") is None  # older records
