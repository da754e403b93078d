"""The training engine on the real packaged model and real GLUE data (small, honest subsets)."""
import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from mpo_core.training.fine_tune import fine_tune
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.runs.run_folder import read_metrics, read_results

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"


def small(tmp_path, **overrides) -> FineTuneConfig:
    options = dict(
        task="sst2", data_dir=str(GLUE), num_hidden_layers=2, max_length=64, max_train_examples=1000,
        max_eval_examples=300, epochs=2, batch_size=32, learning_rate=5e-4, warmup_steps=5,
        eval_steps=1000, logging_steps=10, save_steps=1000, runs_dir=str(tmp_path), seed=0,
    )
    options.update(overrides)
    return FineTuneConfig(**options)


@pytest.mark.slow  # real training
def test_full_fine_tuning_beats_chance_and_writes_the_run_folder(tmp_path):
    results = fine_tune(small(tmp_path))
    assert results["score"] > 0.6  # SST-2 dev is balanced: chance is 0.5
    run = tmp_path / "sst2-full-seed0"
    assert json.loads((run / "config.json").read_text())["task"] == "sst2"
    records = read_metrics(run)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "end" and "train" in kinds and "eval" in kinds
    assert all("trainable_params" in r for r in records if r["kind"] in ("train", "eval"))
    saved = read_results(tmp_path)[0]
    for key in ("task", "metric", "score", "trainable_params", "total_params", "bond_dims", "wall_seconds",
                "device", "seed", "versions"):
        assert key in saved
    assert saved["trainable_params"] == saved["total_params"]
    assert saved["num_train_examples"] == 1000 and saved["num_eval_examples"] == 300


@pytest.mark.slow  # real training
def test_lightweight_mpo_run_trains_few_parameters(tmp_path):
    results = fine_tune(small(tmp_path, strategy="mpo_full_lfa", max_steps=4, max_eval_examples=64))
    assert results["trainable_params"] <= 0.10 * results["total_params"]
    assert results["bond_dims"]  # the MPO layers' bonds are recorded


class KeepModel(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


@pytest.mark.slow  # real training
@pytest.mark.parametrize("strategy", ["full", "mpo_full_lfa"])
def test_the_final_model_is_saved_and_reloads_identically(tmp_path, strategy):
    import torch

    from mpo_core.runs.run_models import load_final_model
    from mpo_core.model.surgery import mpo_modules

    config = small(tmp_path, strategy=strategy, max_steps=2, max_eval_examples=32, num_hidden_layers=1, device="cpu")
    kept = KeepModel()
    results = fine_tune(config, callbacks=[kept])
    model = load_final_model(tmp_path / config.run_name)
    assert {n: list(m.bond_dims) for n, m in mpo_modules(model).items()} == results["bond_dims"]
    ids = torch.randint(0, 30522, (3, 12), generator=torch.Generator().manual_seed(0))  # (B, T)
    trained = kept.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-5)
    assert (tmp_path / config.run_name / "final_model" / "tokenizer.json").is_file()


@pytest.mark.slow  # real training
def test_no_final_model_when_asked_not_to(tmp_path):
    from mpo_core.runs.run_models import load_final_model

    config = small(tmp_path, max_steps=1, max_eval_examples=16, num_hidden_layers=1, save_model=False)
    fine_tune(config)
    with pytest.raises(FileNotFoundError, match="save_model=False"):
        load_final_model(tmp_path / config.run_name)


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 5:
            raise KeyboardInterrupt


@pytest.mark.slow  # real training
def test_interrupted_run_keeps_metrics_and_resumes(tmp_path):
    config = small(tmp_path, max_steps=8, save_steps=4, logging_steps=1, max_eval_examples=64)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(config, callbacks=[Interrupt()])
    run = tmp_path / config.run_name
    before = read_metrics(run)
    assert [r["step"] for r in before if r["kind"] == "train"][-1] == 4
    assert (run / "checkpoints" / "checkpoint-4").is_dir()
    assert not (run / "results.json").exists()
    with pytest.raises(FileExistsError, match="resume"):
        fine_tune(config)
    results = fine_tune(config, resume=True)
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "train" and "loss" in r]
    assert steps[-1] == 8 and 5 in steps
    assert results["score"] is not None


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(ValueError, match="valid|unknown"):
        FineTuneConfig(task="squad")
    with pytest.raises(ValueError, match="unknown strategy"):
        FineTuneConfig(strategy="lora")
    with pytest.raises(ValueError, match="positive int"):
        FineTuneConfig(batch_size=0)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        fine_tune(small(tmp_path), resume=True)
    with pytest.raises(ValueError, match="could not load a model"):
        fine_tune(small(tmp_path, model=str(tmp_path), run_name="bad-model"))
    with pytest.raises(FileNotFoundError, match="GLUE directory"):
        fine_tune(small(tmp_path, data_dir=str(tmp_path / "nope"), run_name="bad-data"))
    assert not (tmp_path / "bad-model").exists() and not (tmp_path / "bad-data").exists()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_uses_autocast(tmp_path):
    results = fine_tune(small(tmp_path, strategy="mpo_full_lfa", max_steps=4, max_eval_examples=64, device="cuda"))
    assert results["device"] == "cuda" and results["precision"] in ("bf16", "fp16")


@pytest.mark.slow  # real training
def test_only_rank_zero_writes_the_run_folder(tmp_path, monkeypatch):
    from mpo_core.runs.run_folder import RunFolder

    monkeypatch.setenv("RANK", "1")
    run = RunFolder(tmp_path / "shared-run")  # another rank: no check, no folder, no writes
    run.write_json("config.json", {"a": 1})
    run.append_metrics({"kind": "train"})
    assert not (tmp_path / "shared-run").exists()


class PressStop(TrainerCallback):
    """Another process's stop button: it only writes the STOP file."""

    def __init__(self, run_dir, at):
        self.run_dir, self.at = run_dir, at

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            from mpo_core.runs.run_folder import request_stop

            request_stop(self.run_dir)


class CountEvaluations(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_evaluate(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_run_off_the_eval_grid_is_evaluated_once_at_its_end(tmp_path):
    # transformers 5 evaluates at the last step when it is off the eval_steps grid; fine_tune evaluates after
    # training anyway, so the Trainer's evaluation there would be the same one done twice
    counter = CountEvaluations()
    config = small(tmp_path, num_hidden_layers=1, max_train_examples=64, max_eval_examples=32, max_steps=3,
                   eval_steps=2, save_model=False)
    results = fine_tune(config, callbacks=[counter])
    assert counter.steps == [2, 3]  # the curve's point at step 2, then the report on dev
    assert [c["step"] for c in results["curve"]] == [2] and results["global_step"] == 3


@pytest.mark.slow  # real training
def test_a_stop_file_ends_the_run_cleanly_with_results(tmp_path):
    config = small(tmp_path, max_steps=50, logging_steps=1, max_eval_examples=32)
    results = fine_tune(config, callbacks=[PressStop(tmp_path / config.run_name, 2)])
    records = read_metrics(tmp_path / config.run_name)
    assert [r["step"] for r in records if r["kind"] == "stop_requested"] == [3]
    assert max(r["step"] for r in records if r["kind"] == "train" and "loss" in r) == 3
    assert results["score"] is not None and (tmp_path / config.run_name / "results.json").is_file()


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_heldout_examples_are_scored_at_the_end_and_the_dev_curve_is_recorded(tmp_path):
    config = small(tmp_path, num_hidden_layers=1, max_train_examples=64, max_eval_examples=32, max_steps=4,
                   eval_steps=2, heldout_examples=16, save_model=False)
    results = fine_tune(config)
    assert results["num_train_examples"] == 48 and results["num_heldout_examples"] == 16
    assert len(results["heldout_indices"]) == 16 and 0 <= results["heldout_score"] <= 1
    assert results["heldout_eval"]["accuracy"] == results["heldout_score"]
    # during training the held-out slice is what the Trainer evaluates (dev only reports, at the end)
    assert [(c["step"], c["split"]) for c in results["curve"]] == [(2, "heldout"), (4, "heldout")]
    plain = fine_tune(small(tmp_path, num_hidden_layers=1, max_train_examples=64, max_eval_examples=32,
                            max_steps=4, eval_steps=2, save_model=False, run_name="plain"))
    assert plain["heldout_score"] is None and [c["split"] for c in plain["curve"]] == ["dev", "dev"]
    assert plain["curve"][-1]["score"] == pytest.approx(plain["score"])  # the last step's dev score: the report's
    assert set(plain["weight_change"]) == {"word_embedding", "ffn", "attention"}
    assert 0 < plain["weight_change"]["ffn"] < 0.5 and plain["global_step"] == 4
    with pytest.raises(ValueError, match="heldout_examples"):
        fine_tune(small(tmp_path, max_train_examples=16, heldout_examples=16, run_name="all_held"))


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_fixed_evaluation_set_is_the_same_for_every_seed_and_never_trained_on(tmp_path):
    from transformers import AutoTokenizer

    from mpo_core.model.pretrained import default_model_path
    from mpo_core.training.fine_tune import load_run_data

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()), trust_remote_code=False)
    datas = [load_run_data(small(tmp_path, max_eval_examples=None, evaluation_slice=300, heldout_examples=50,
                                 max_train_examples=500, seed=seed), tokenizer) for seed in (0, 1)]
    assert datas[0].evaluation_set == datas[1].evaluation_set and datas[0].evaluation_set.size == 872 + 300
    first, second = datas
    assert first.evaluation_set.slice_indices == second.evaluation_set.slice_indices
    slice_ = set(first.evaluation_set.slice_indices)
    for data in datas:
        assert len(data.train) == 450 and not slice_ & set(data.heldout_indices)
        assert len(data.evaluation_slice) == 300
    # the training examples are a per-seed draw from the pool, never from the slice
    texts = {tuple(x) for x in first.evaluation_slice["input_ids"]}
    assert not texts & {tuple(x) for x in first.train["input_ids"]} - {tuple(x) for x in first.dev["input_ids"]}
    assert first.heldout_indices != second.heldout_indices


@pytest.mark.slow  # ~13 s: a real run with an evaluation slice
def test_kept_predictions_cover_dev_then_the_slice(tmp_path):
    config = small(tmp_path, num_hidden_layers=1, max_train_examples=64, max_eval_examples=None, max_steps=2,
                   evaluation_slice=128, keep_predictions=True, save_model=False)
    results = fine_tune(config)
    predictions = results["predictions"]
    assert len(predictions) == 872 + 128 and set(predictions) <= {0, 1}
    assert results["evaluation_set"]["dev_examples"] == 872 and results["evaluation_set"]["slice_examples"] == 128
    assert results["evaluation_predicted_classes"] == len(set(predictions))
    from mpo_core.data.glue import load_glue_split

    dev = load_glue_split("sst2", "dev", GLUE).labels
    assert sum(p == y for p, y in zip(predictions[:872], dev)) / 872 == pytest.approx(results["score"])
    stsb = fine_tune(small(tmp_path, task="stsb", num_hidden_layers=1, max_train_examples=32, max_eval_examples=None,
                           max_steps=1, keep_predictions=True, save_model=False, run_name="stsb"))
    assert len(stsb["predictions"]) == 1500 and "evaluation_set" in stsb
    assert isinstance(stsb["predictions"][0], float) and stsb["evaluation_score"] == pytest.approx(stsb["score"],
                                                                                                  abs=1e-3)
    with pytest.raises(ValueError, match="max_eval_examples"):
        small(tmp_path, keep_predictions=True, max_eval_examples=100)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_constant_then_decay_schedule(tmp_path):
    config = small(tmp_path, num_hidden_layers=1, max_train_examples=64, max_eval_examples=32, max_steps=6,
                   batch_size=8, warmup_steps=0, logging_steps=1, lr_scheduler_type="warmup_stable_decay",
                   decay_steps=2, learning_rate=1e-4, save_model=False)
    fine_tune(config)
    rates = [m["learning_rate"] for m in read_metrics(tmp_path / config.run_name) if "learning_rate" in m]
    # each step logs the rate after its scheduler step: constant through step 5, then halfway down the linear decay
    assert rates == pytest.approx([1e-4] * 5 + [5e-5])
    with pytest.raises(ValueError, match="decay_steps"):
        small(tmp_path, lr_scheduler_type="warmup_stable_decay")
    with pytest.raises(ValueError, match="decay_steps"):
        small(tmp_path, decay_steps=10)


@pytest.mark.slow  # compresses the word embedding (whitened SVD of 30522 x 384)
def test_compressed_rows_calibrate_on_the_runs_training_sentences_then_train(tmp_path):
    config = small(tmp_path, num_hidden_layers=1, max_train_examples=96, max_eval_examples=None, max_steps=2,
                   batch_size=16, strategy="compressed", keep_predictions=True, save_model=False,
                   strategy_options={"compression": "svd_whitened", "model_size": 0.6, "trains": "auxiliary",
                                     "calibration_sentences": 64})
    results = fine_tune(config)
    assert 0.55 < results["compression"]["model_share"] <= 0.6
    assert results["total_params"] < 0.61 * results["compression"]["model_params_before"] + 2000  # + the head
    assert results["trainable_params"] < 0.2 * results["total_params"]  # auxiliary tensors and the head
    assert set(results["structures"].values()) == {2} and len(results["predictions"]) == 872
    with pytest.raises(ValueError, match="trains"):
        small(tmp_path, strategy="compressed", strategy_options={"trains": "some"})
