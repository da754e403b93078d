"""Table 1 (experiment ``table1``): parameter variation after fine-tuning on SST-2, small mode."""
import pytest

from mpo_core.model.parameter_variation import BIN_LABELS, PAPER_TABLE1
from mpo_core.reproduction import results_store, table1
from mpo_core.runs.run_folder import FINAL_MODEL, RESULTS_FILE


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, single_blas_thread):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("results")
        patch.setenv("MPO_RESULTS_DIR", str(folder))
        table1.run("small")
        yield folder


@pytest.fixture()
def results(results_dir, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(results_dir))
    return results_store.load_results("table1", "small")


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_run_writes_the_table_and_the_run_folder(results, results_dir):
    assert (results_dir / "small" / "table1.csv").is_file() and (results_dir / "small" / "table1.json").is_file()
    run = results_dir / "small" / "runs" / "table1" / table1.RUN_NAME
    assert (run / RESULTS_FILE).is_file() and (run / FINAL_MODEL).is_dir()
    record = results.meta["records"][0]
    assert record["strategy"] == "full" and record["task"] == "sst2" and record["num_train_examples"] == 64
    assert set(record["parameter_variation"]) == set(PAPER_TABLE1)


def test_shares_sum_to_one_beside_the_papers(results):
    table = results.table
    assert list(table["group"]) == ["Word embedding", "Feed-forward", "Self-attention"]
    ours = table[[f"ours {b}" for b in BIN_LABELS]].sum(axis=1)
    assert ours.sub(1).abs().max() < 1e-9
    for group, (_, row) in zip(PAPER_TABLE1, table.iterrows()):
        assert [row[f"paper {b}"] for b in BIN_LABELS] == list(PAPER_TABLE1[group])
    assert (table["weights"] > 0).all() and (table["ours (1e-3,inf)"] > 0).all()  # fine-tuning moved weights


def test_side_by_side_is_one_row_per_group_and_bin(results):
    frame = table1.side_by_side(results)
    assert frame.shape == (9, 5)
    assert (frame["ours - paper"] == frame["ours"] - frame["paper (BERT-base)"]).all()
    assert frame.groupby("group")["ours"].sum().sub(1).abs().max() < 1e-9


def test_sentences_and_figure(results):
    sentence = table1.comparison_sentence(results)
    assert all(group in sentence for group in ("Word embedding", "Feed-forward", "Self-attention"))
    assert "64 SST-2 examples" in table1.run_summary(results)
    assert len(table1.figure(results).data) == 3


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_finished_run_is_reused(results_dir, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(results_dir))

    def no_training(config):
        raise AssertionError("the finished run should have been reused")

    monkeypatch.setattr("mpo_core.training.fine_tune.fine_tune", no_training)
    again = table1.run("small")
    before = results_store.load_results("table1", "small")
    assert again.table.equals(before.table)


def test_full_settings_are_the_briefed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    config = table1.config_for("full")
    assert (config.max_train_examples, config.max_length, config.epochs, config.learning_rate, config.batch_size) \
        == (4000, 64, 1.0, 5e-4, 32)
    assert config.strategy == "full" and config.save_model and config.num_hidden_layers is None
    assert config.runs_dir == str(tmp_path / "full" / "runs" / "table1")
    with pytest.raises(FileNotFoundError, match="GLUE"):
        table1.glue_dir(tmp_path / "missing")
