"""Back end of the OPF page (app/opf.py): real Fisher scores of the packaged MiniLM, a real tiny opf run."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from app import opf
from mpo_core.training.fine_tune import fine_tune
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.opf.fisher import select_top
from mpo_core.opf.strategy import OPF_GROUPS

GLUE = Path(__file__).resolve().parents[3] / "shared" / "glue"


def tiny_opf(runs_dir, name, **options) -> FineTuneConfig:
    """One encoder layer, 4 steps of 16 RTE examples: an opf run in a few seconds on a CPU."""
    return FineTuneConfig(
        task="rte", data_dir=str(GLUE), strategy="opf", num_hidden_layers=1, max_length=32, max_train_examples=64,
        max_eval_examples=16, max_steps=4, batch_size=16, learning_rate=1e-3, logging_steps=1, eval_steps=2,
        save_steps=10**6, device="cpu", runs_dir=str(runs_dir), run_name=name,
        strategy_options={"growth": 2.0, "top_n": 1, "selection": "static", "fisher_batches": 1, **options},
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    results = fine_tune(tiny_opf(runs, "static"))
    return runs / "static", results


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fisher")


REQUEST = opf.FisherRequest(task="rte", data_dir=str(GLUE), num_hidden_layers=2, num_batches=2, batch_size=8,
                                  max_length=32)


@pytest.fixture(scope="module")
def fisher(cache):
    return opf.load_or_compute_fisher(REQUEST, cache)


def test_fisher_frame_has_a_row_per_group_and_a_column_per_layer(fisher):
    frame = opf.fisher_frame(fisher)
    assert frame.shape == (6, 2) and list(frame.index) == list(OPF_GROUPS) and list(frame.columns) == [0, 1]
    assert len(fisher.scores) == 12 and all(math.isfinite(v) and v > 0 for v in fisher.scores.values())
    assert len(set(fisher.scores.values())) == 12  # real gradients: no two matrices score alike
    name = "bert.encoder.layer.1.intermediate.dense"
    assert frame.loc["ffn_in", 1] == fisher.scores[name] and fisher.groups[name] == "ffn_in"
    assert fisher.shapes[name] == (1536, 384)
    assert fisher.shapes["bert.encoder.layer.0.attention.self.query"] == (384, 384)
    assert fisher.total_params > sum(math.prod(s) for s in fisher.shapes.values())
    figure = opf.fisher_heatmap(fisher)
    assert figure.data[0].type == "heatmap" and len(figure.data[0].z) == 6 and len(figure.data[0].z[0]) == 2
    assert figure.data[0].z[5][1] == pytest.approx(math.log10(frame.loc["ffn_out", 1]))


def test_scores_are_cached_as_json_per_request(fisher, cache, monkeypatch):
    file = cache / REQUEST.cache_name
    assert json.loads(file.read_text())["request"]["num_batches"] == 2

    def fail(request):
        raise AssertionError("recomputed")

    monkeypatch.setattr(opf, "compute_fisher", fail)
    assert opf.load_or_compute_fisher(REQUEST, cache) == fisher  # read back, not recomputed
    other = opf.FisherRequest(task="rte", data_dir=str(GLUE), num_hidden_layers=2, num_batches=3, batch_size=8)
    assert other.cache_name != REQUEST.cache_name
    with pytest.raises(AssertionError, match="recomputed"):
        opf.load_or_compute_fisher(other, cache)


def test_missing_glue_data_is_a_clear_error(tmp_path):
    request = opf.FisherRequest(task="rte", data_dir=str(tmp_path / "nowhere"), num_hidden_layers=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        opf.compute_fisher(request)
    with pytest.raises(ValueError, match="num_batches must be a positive int"):
        opf.FisherRequest(task="rte", num_batches=0)


@pytest.mark.parametrize("top_n", [1, 2])
def test_static_preview_is_select_top_once(fisher, top_n):
    [stage] = opf.selection_preview(fisher, top_n, "static", growth=4.0, max_steps=10)
    assert list(stage.chosen) == select_top(fisher.scores, fisher.groups, top_n)
    assert stage.step == 0 and not stage.estimate and len(stage.chosen) == 6 * top_n
    grown = sum(math.prod(fisher.shapes[n]) for n in stage.chosen)
    assert stage.total_params == fisher.total_params + 3 * grown  # growth 4 is exact for these shapes
    sizes = opf.preview_sizes(fisher, [stage])
    assert sizes["peak"] == stage.total_params and sizes["grown"] == 6 * top_n and sizes["factor"] > 1
    table = opf.selection_table(fisher, [stage], 4.0)
    assert len(table) == 6 * top_n and set(table["rank in group"]) == set(range(1, top_n + 1))
    assert (table["params while training"] == 4 * table["I x J"].map(lambda s: math.prod(map(int, s.split("x"))))).all()


def test_dynamic_preview_splits_the_ranking_into_stages(fisher):
    first, second = opf.selection_preview(fisher, 2, "dynamic", stages=2, growth=2.0, max_steps=10)
    assert (first.step, second.step) == (0, 5) and (first.estimate, second.estimate) == (False, True)
    assert list(first.chosen) == select_top(fisher.scores, fisher.groups, 1)
    assert set(first.chosen) | set(second.chosen) == set(select_top(fisher.scores, fisher.groups, 2))
    assert not set(first.chosen) & set(second.chosen)
    assert fisher.total_params < first.total_params < second.total_params
    table = opf.selection_table(fisher, [first, second])
    assert list(table["estimate"]) == [False] * 6 + [True] * 6
    figure = opf.fisher_heatmap(fisher, [first, second])
    frame = opf.fisher_frame(fisher)
    outlined = {(frame.index[round((s.y0 + s.y1) / 2)], frame.columns[round((s.x0 + s.x1) / 2)], s.line.dash)
                for s in figure.layout.shapes}  # (group, layer) of each outlined cell
    assert outlined == {(fisher.groups[n], int(n.split(".")[3]), "solid" if stage is first else "dot")
                        for stage in (first, second) for n in stage.chosen}
    assert [t.name for t in figure.data[1:]] == ["stage 1, step 0", "stage 2, step 5 (estimate)"]
    sizes = opf.preview_size_figure(fisher, [first, second], 10)
    assert list(sizes.data[0].y * 1e6) == pytest.approx(
        [fisher.total_params, first.total_params, second.total_params, second.total_params, fisher.total_params])


def test_bad_options_are_messages(fisher):
    with pytest.raises(ValueError, match="top_n <= 2"):
        opf.selection_preview(fisher, 3)
    with pytest.raises(ValueError, match="stages=3 needs top_n >= 3"):
        opf.selection_preview(fisher, 2, "dynamic", stages=3)
    with pytest.raises(ValueError, match="growth must be >= 1"):
        opf.selection_preview(fisher, 1, growth=0.5)
    with pytest.raises(ValueError, match="top_n <= 1 or load more layers"):
        opf.opf_options(4.0, "static", 2, 1, 4, num_layers=1)
    assert opf.opf_options(2, "dynamic", 2, 2, 4, num_layers=2) == {
        "growth": 2.0, "selection": "dynamic", "top_n": 2, "stages": 2, "fisher_batches": 4}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_preview_of_a_runs_scores_reproduces_the_run(run):
    path, results = run
    fisher = opf.fisher_from_run(path)
    record = results["opf"]
    assert opf.fisher_frame(fisher).shape == (6, 1) and fisher.total_params == record["total_params_before"]
    [stage] = opf.selection_preview(fisher, 1, "static", growth=2.0, max_steps=4)
    assert [list(stage.chosen)] == record["chosen"] == [list(s.chosen) for s in opf.run_stages(path)]
    assert stage.total_params == record["max_total_params"]  # the preview counts parameters as the run grew them


def test_run_frames_go_up_at_the_selection_and_back_at_the_merge(run):
    path, results = run
    frames = opf.opf_frames(path)
    sizes = frames["sizes"]["total_params"]
    record = results["opf"]
    assert sizes.iloc[0] == sizes.iloc[-1] == record["total_params_before"] and sizes.max() == record["max_total_params"]
    assert len(frames["selections"]) == 6 and set(frames["selections"]["step"]) == {0}
    assert set(frames["selections"]["growth"]) == {2.0} and len(frames["train"]) == 4
    summary = opf.opf_summary(frames, 1)
    assert summary == {"stages_done": 1, "num_stages": 1, "grown": 6, "total_params": record["total_params_before"],
                       "peak_params": record["max_total_params"], "original_params": record["total_params_before"],
                       "merged": True}
    assert len(opf.loss_figure(frames).data[0].y) == 4
    assert list(opf.eval_figure(frames, "accuracy").data[0].y)[-1] == results["score"]
    assert max(opf.size_figure(frames).data[0].y) == pytest.approx(record["max_total_params"] / 1e6)


def test_merge_check_measures_the_original_size_and_latency(run):
    path, results = run
    summary = opf.merge_summary(results)
    assert summary["equal"] and summary["before"] == summary["after"] < summary["peak"]
    assert opf.read_latency(path) is None
    latency = opf.measure_latency(path, batch_size=2, length=16, warmup=1, repeats=3)
    assert latency["params"]["merged"] == latency["params"]["original"] == summary["after"]
    assert latency["same_shapes"] and latency["mpo_layers_left"] == 0
    assert math.isfinite(latency["ratio"]) and latency["ratio"] > 0 and len(latency["seconds"]["merged"]) == 3
    assert opf.read_latency(path) == json.loads(json.dumps(latency))
    assert len(opf.latency_figure(latency).data) == 2
    assert opf.within_target(1.04) and not opf.within_target(0.9)


def test_the_latency_ratio_is_computed_from_the_medians_it_is_shown_with():
    latency = {"median_ms": {"original": 132.8412, "merged": 137.5388}, "ratio": 0.996, "batch_size": 8,
               "length": 64, "threads": 1, "seconds": {"original": [0.1328], "merged": [0.1375]},
               "params": {"original": 1, "merged": 1}}
    numbers = opf.latency_numbers(latency)
    assert (numbers["original_ms"], numbers["merged_ms"]) == (132.84, 137.54)
    assert numbers["ratio"] == 137.54 / 132.84 and numbers["paired_ratio"] == 0.996
    assert f"= {137.54 / 132.84:.3f}" in opf.latency_figure(latency).layout.title.text


@pytest.mark.parametrize("metric, values, expected", [
    ("accuracy", [0.5, 0.52, 1.0], (0.0, 1.0)), ("f1", [0.0], (0.0, 1.0)),
    ("matthews", [0.1, 0.3], (0.0, 1.0)), ("matthews", [-0.05, 0.2], (-1.0, 1.0)), ("spearman", [-0.3], (-1.0, 1.0)),
])
def test_the_dev_metric_axis_spans_the_metrics_scale(metric, values, expected):
    """Autoscaling ran a dev accuracy's axis to 1.5 (issue 27): the axis is fixed to the metric's range."""
    frames = {"eval": pd.DataFrame({"step": range(len(values)), metric: values}), "selections": pd.DataFrame()}
    figure = opf.eval_figure(frames, metric)
    assert tuple(figure.layout.yaxis.range) == expected and opf.metric_range(metric, values) == expected


def test_an_empty_run_draws_placeholders(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(tiny_opf(tmp_path, "r").to_dict()))
    assert opf.fisher_from_run(tmp_path) is None and opf.run_stages(tmp_path) == []
    frames = opf.opf_frames(tmp_path)
    assert opf.opf_summary(frames)["total_params"] is None
    for figure in (opf.loss_figure(frames), opf.eval_figure(frames, "accuracy"),
                   opf.size_figure(frames)):
        assert figure.layout.annotations and not figure.data
    assert opf.merge_summary({"score": 0.5}) is None


@pytest.mark.parametrize("field, value", [("num_batches", opf.MAX_FISHER_BATCHES + 1),
                                          ("batch_size", opf.MAX_FISHER_BATCH_SIZE + 1),
                                          ("max_length", opf.MAX_FISHER_LENGTH + 1)])
def test_a_fisher_request_above_the_servers_caps_is_refused(tmp_path, field, value):
    """The page's inputs stop at the caps; a request sent around them is refused before the model loads."""
    from dataclasses import replace

    with pytest.raises(ValueError, match="server's cap"):
        opf.load_or_compute_fisher(replace(REQUEST, **{field: value}), tmp_path)
    assert not any(tmp_path.iterdir())
    assert opf.check_fisher_request(replace(REQUEST, num_batches=opf.MAX_FISHER_BATCHES)).num_batches == 32
