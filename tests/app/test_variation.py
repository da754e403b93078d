"""Back end of the Parameter variation page on two tiny real runs (MiniLM, 1 layer, 3 steps of SST-2)."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app import variation
from mpo_core.training.fine_tune import fine_tune
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.model.matrix_groups import find_matrices, paper_group
from mpo_core.model.parameter_variation import BIN_LABELS, PAPER_TABLE1
from mpo_core.runs.run_folder import FINAL_MODEL, RESULTS_FILE
from mpo_core.model.surgery import mpo_modules

GLUE = Path(__file__).resolve().parents[3] / "shared" / "glue"
ENCODER_GROUPS = ["query", "key", "value", "attention_output", "ffn_in", "ffn_out"]
HIDDEN, INTERMEDIATE, VOCAB = 384, 1536, 30522
COUNTS = {"word_embedding": VOCAB * HIDDEN, "attention": 4 * HIDDEN * HIDDEN, "ffn": 2 * HIDDEN * INTERMEDIATE}


def tiny_config(runs_dir, name: str, strategy: str, **options) -> FineTuneConfig:
    return FineTuneConfig(
        task="sst2", data_dir=str(GLUE), strategy=strategy, strategy_options=options, num_hidden_layers=1,
        max_length=64, max_train_examples=64, max_eval_examples=16, max_steps=3, batch_size=16,
        learning_rate=1e-3, logging_steps=1, eval_steps=100, save_steps=100, device="cpu",
        runs_dir=str(runs_dir), run_name=name, seed=0,
    )


def make_runs(root: Path) -> Path:
    """``full`` (everything trains) and ``lfa`` (mpo_full_lfa on the encoder: the word embedding stays frozen).

    Made once per test session under ``root`` and shared by the back-end and the page tests.
    """
    configs = (tiny_config(root, "full", "full"),
               tiny_config(root, "lfa", "mpo_full_lfa", mpo_config={"groups": ENCODER_GROUPS}))
    for config in configs:
        if not (root / config.run_name / RESULTS_FILE).is_file():
            fine_tune(config)
    return root


def copy_run(runs: Path, name: str, to: Path, keep_model: bool = True) -> Path:
    """A copy of a run (without its variation cache; without ``final_model/`` like an older run)."""
    ignored = [variation.VARIATION_FILE] + ([] if keep_model else [FINAL_MODEL])
    shutil.copytree(runs / name, to / name, ignore=shutil.ignore_patterns(*ignored))
    return to / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.getbasetemp() / "variation_runs")


@pytest.fixture(scope="module")
def stats(runs) -> dict:
    return {name: variation.run_variation(runs / name) for name in ("full", "lfa")}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_finished_runs_with_their_models(runs):
    rows = {r["run"]: r for r in variation.finished_runs(runs)}
    assert set(rows) == {"full", "lfa"} and all(r["has_model"] for r in rows.values())
    assert rows["lfa"]["strategy"] == "mpo_full_lfa" and rows["full"]["task"] == "sst2"
    assert "mpo_full_lfa" in variation.run_label(rows["lfa"]) and "accuracy" in variation.run_label(rows["lfa"])
    lfa, full = variation.run_summary(runs / "lfa"), variation.run_summary(runs / "full")
    assert lfa["trainable_params"] < 0.5 * full["trainable_params"] == 0.5 * full["total_params"]


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("name", ["full", "lfa"])
def test_shares_sum_to_one_and_trained_groups_moved(stats, name):
    result = stats[name]
    assert set(result) == set(COUNTS)
    for group, group_stats in result.items():
        assert group_stats.count == COUNTS[group]
        assert sum(group_stats.shares) == pytest.approx(1.0)
        changed = group_stats.histogram_counts.sum() / group_stats.count
        assert changed <= 1 - group_stats.unchanged_share + 1e-12  # the histogram holds changed weights only
    for group in ("attention", "ffn"):  # lr 1e-3 Adam steps: most weights move by more than 1e-4
        assert result[group].unchanged_share < 0.01
        assert result[group].shares[1] + result[group].shares[2] > 0.5


def test_a_frozen_group_is_unchanged(stats, runs):
    frozen = stats["lfa"]["word_embedding"]
    assert frozen.unchanged_share == 1.0 and frozen.shares == (1.0, 0.0, 0.0)
    assert frozen.histogram_counts.sum() == 0
    assert stats["full"]["word_embedding"].unchanged_share < 0.5  # trained (and weight-decayed) there
    _, after = variation.before_and_after(runs / "lfa")
    assert mpo_modules(after) and "bert.embeddings.word_embeddings" not in mpo_modules(after)


def test_matches_a_direct_computation_from_the_two_models(stats, runs):
    before, after = variation.before_and_after(runs / "full")
    old, groups = dict(before.named_modules()), find_matrices(after)
    deltas = [(m.weight - old[name].weight).abs().reshape(-1)
              for name, m in after.named_modules() if paper_group(groups.get(name)) == "attention"]
    delta = torch.cat(deltas).detach().double()
    assert stats["full"]["attention"].shares[0] == pytest.approx(float((delta <= 1e-4).double().mean()))
    assert stats["full"]["attention"].shares[2] == pytest.approx(float((delta > 1e-3).double().mean()))


def test_the_cache_file_round_trips(runs, tmp_path, monkeypatch):
    run = copy_run(runs, "lfa", tmp_path)
    assert variation.load_variation(run) is None
    computed = variation.run_variation(run)
    assert (run / variation.VARIATION_FILE).is_file()
    assert not list(run.glob(".*.tmp"))  # the atomic write left no temporary file
    loaded = variation.load_variation(run)
    for group, group_stats in computed.items():
        assert loaded[group].shares == group_stats.shares and loaded[group].count == group_stats.count
        assert loaded[group].unchanged_share == group_stats.unchanged_share
        np.testing.assert_array_equal(loaded[group].histogram_counts, group_stats.histogram_counts)
        np.testing.assert_array_equal(loaded[group].histogram_edges, group_stats.histogram_edges)

    calls = []
    monkeypatch.setattr(variation, "compute_variation", lambda path, bins: calls.append(bins) or computed)
    variation.run_variation(run)
    assert calls == []  # reopened from the file
    assert variation.load_variation(run, bins=20) is None  # other bins: stale
    variation.run_variation(run, bins=20)
    assert calls == [20]
    weights = run / FINAL_MODEL / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # the model re-saved
    assert variation.load_variation(run, bins=20) is None


def test_a_run_without_final_model_is_a_clear_message(runs, tmp_path):
    run = copy_run(runs, "full", tmp_path, keep_model=False)
    (row,) = variation.finished_runs(tmp_path)
    assert row["run"] == "full" and not row["has_model"] and "no saved model" in variation.run_label(row)
    with pytest.raises(FileNotFoundError, match="save_model=False"):
        variation.run_variation(run)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        variation.compute_variation(tmp_path / "nothing")


def test_the_table_puts_each_run_next_to_the_paper(stats):
    table = variation.variation_table({"ours": stats["full"]})
    assert list(table["group"]) == ["Word embedding", "Feed-forward", "Self-attention"]
    assert list(table.columns[2:8]) == [f"{who} {b}" for b in BIN_LABELS for who in ("ours", "paper")]
    assert list(table["paper (1e-4,1e-3]"]) == [PAPER_TABLE1[g][1] for g in ("word_embedding", "ffn", "attention")]
    assert table["ours (0,1e-4]"].iloc[0] == stats["full"]["word_embedding"].shares[0]
    both = variation.variation_table({"full": stats["full"], "lfa": stats["lfa"]})
    assert list(both.columns[2:5]) == ["full (0,1e-4]", "lfa (0,1e-4]", "paper (0,1e-4]"]
    assert both["full (0,1e-4]"].iloc[0] < both["lfa (0,1e-4]"].iloc[0] == 1.0
    assert set(variation.share_columns(both)) == set(both.columns) - {"group", "weights"}
    with pytest.raises(ValueError, match="no run"):
        variation.variation_table({})


def test_the_histogram_has_a_panel_per_group_and_a_colour_per_run(stats):
    figure = variation.histogram_figure({"full": stats["full"], "lfa": stats["lfa"]})
    assert len(figure.data) == 2 * 3
    assert [t.name for t in figure.data if t.showlegend] == ["full", "lfa"]
    full_attention = figure.data[2]  # run "full", third panel (Self-attention)
    assert sum(full_attention.y) == pytest.approx(1 - stats["full"]["attention"].unchanged_share, abs=1e-6)
    lfa_embedding = figure.data[3]
    assert sum(lfa_embedding.y) == 0  # frozen: nothing to draw on a log axis ...
    notes = [a.text for a in figure.layout.annotations if "Δw = 0" in a.text]
    assert len(notes) == 3 and "lfa: Δw = 0 for 100.0%" in notes[0]  # ... its share is written instead
    assert sorted(s.x0 for s in figure.layout.shapes)[::3] == [-4, -3]  # Table 1 bin edges in each panel
    assert "log10 |Δw|" in figure.layout.xaxis.title.text and "share" in figure.layout.yaxis.title.text
