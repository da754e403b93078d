"""``mpop`` and ``mpop_dir`` on the one training engine: the packaged model, a small real GLUE subset."""
import math
from pathlib import Path

import pytest
from transformers import TrainerCallback

from mpo_core.data.glue import load_glue_split
from mpo_core.mpop.config import MPOPConfig
from mpo_core.training.fine_tune import fine_tune, load_model_and_tokenizer, load_run_data
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.model.mpo_config import MPOConfig
from mpo_core.runs.run_folder import read_metrics
from mpo_core.mpop.strategy import make_mpop, make_mpop_dir, read_accepted_state
from mpo_core.training.strategies import get_strategy

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"
GROUPS = {"groups": ["query", "ffn_in"]}  # few layers: fast canonicalization per cut
# one cut removes 0.5 % of the dense 1-layer model (~69k parameters): query (166k) and ffn_in (643k) can give it
STEP = 0.005
HELDOUT = 24  # of the 120 training examples


def tiny_run(tmp_path, strategy="mpop", run_name=None, max_steps=-1, warmup_steps=0, **options) -> FineTuneConfig:
    squeeze = dict(mpo_config=GROUPS, lfa_steps=3, tune_steps=2, squeeze_steps=3, step_size=STEP, delta=1.0,
                   metric="loss", heldout_examples=HELDOUT)
    squeeze.update(options)
    return FineTuneConfig(
        task="rte", data_dir=str(GLUE), num_hidden_layers=1, max_length=64, max_train_examples=120,
        max_eval_examples=32, batch_size=8, learning_rate=1e-3, logging_steps=1, runs_dir=str(tmp_path),
        strategy=strategy, strategy_options=squeeze if strategy == "mpop" else options, run_name=run_name,
        max_steps=max_steps, warmup_steps=warmup_steps,
    )


def learning_rates(run_dir) -> dict:
    return {r["step"]: r["learning_rate"] for r in read_metrics(run_dir) if "learning_rate" in r}


def squeeze_events(run_dir, event=None):
    records = [r for r in read_metrics(run_dir) if r["kind"] == "squeeze"]
    return [r for r in records if event is None or r["event"] == event]


@pytest.mark.slow  # real training
def test_mpop_squeezes_logs_every_step_and_stops_by_budget(tmp_path):
    config = tiny_run(tmp_path)
    results = fine_tune(config)
    run = tmp_path / config.run_name
    steps = squeeze_events(run, "step")
    assert len(steps) == 3 and all(s["accepted"] for s in steps)
    for s in steps:
        for key in ("matrix", "bond", "before", "after", "estimated_error", "p", "p_tilde",
                    "trainable_params", "total_params"):
            assert key in s
        assert s["after"] < s["before"]
    totals = [r["total_params"] for r in squeeze_events(run, "cut")]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 3  # every cut shrinks the model
    assert results["squeeze"]["stop_reason"] == "step budget spent"
    assert results["squeeze"]["steps_accepted"] == 3
    last = {}  # bond dims never grow along the run
    for s in steps:
        key = (s["matrix"], s["bond"])
        assert s["before"] == last.get(key, s["before"])
        last[key] = s["after"]
        assert results["bond_dims"][s["matrix"]][s["bond"]] <= s["after"]
    assert results["trainable_params"] < 0.10 * results["total_params"]
    dense = results["squeeze"]["dense_params"]
    assert all(s["params_saved"] >= STEP * dense for s in steps)  # every cut removes a step of the model
    # LFA is now linear over its 3 steps (the run's scheduler; it was constant), then squeezing tunes at 0.1x
    rates = learning_rates(run)
    assert [rates[k] for k in (1, 2, 3)] == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3])
    assert rates[4] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-4)
    schedule = results["squeeze"]["schedule"]
    assert [p["phase"] for p in schedule] == ["lfa", "squeeze"] and schedule[0]["lr_scheduler_type"] == "linear"
    assert schedule[0]["steps"] == 3 and schedule[1]["learning_rate"] == pytest.approx(1e-4)


@pytest.mark.slow  # real training
def test_mpop_stops_by_delta_and_keeps_the_last_model_within_it(tmp_path):
    config = tiny_run(tmp_path, delta=1e-9)  # any change of the eval loss exceeds it
    results = fine_tune(config)
    run = tmp_path / config.run_name
    steps = squeeze_events(run, "step")
    assert len(steps) == 1 and not steps[0]["accepted"]
    assert results["squeeze"]["steps_accepted"] == 0 and "delta" in results["squeeze"]["stop_reason"]
    # the rejected cut is undone: the final model is the pre-squeeze one, with full bonds. (Its dev loss is no
    # longer the baseline p: p is judged on the held-out training slice now, the final report is on dev.)
    baseline = squeeze_events(run, "baseline")[0]
    assert results["total_params"] == baseline["total_params"] == results["squeeze"]["mpo_params"]


class Interrupt(TrainerCallback):
    def __init__(self, at):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


@pytest.mark.slow  # real training
def test_interrupted_squeeze_resumes_from_its_last_accepted_step(tmp_path):
    config = tiny_run(tmp_path, squeeze_steps=3)
    with pytest.raises(KeyboardInterrupt):  # lfa 3 steps, cut 1 accepted at step 5, interrupted in cut 2
        fine_tune(config, callbacks=[Interrupt(6)])
    run = tmp_path / config.run_name
    saved = read_accepted_state(run)  # weights and state in one file, committed by one rename
    assert saved["state"]["steps_accepted"] == 1 and saved["state"]["phase"] == "tune" and saved["step"] == 5
    accepted_total = squeeze_events(run, "step")[0]["total_params"]
    assert len(squeeze_events(run, "cut")) == 2  # cut 2 had started when the run was interrupted
    results = fine_tune(config, resume=True)
    assert results["squeeze"]["steps_accepted"] == 3
    cuts = squeeze_events(run, "cut")  # resumed from the checkpoint of step 5, cut 2 made: its records kept
    assert len(cuts) == 3 and cuts[1]["total_params"] < accepted_total
    assert [s["squeeze_step"] for s in squeeze_events(run, "step")] == [1, 2, 3]
    records = read_metrics(run)
    assert [r["kind"] for r in records].count("start") == 1
    steps = [r["step"] for r in records if r["kind"] == "train" and "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] > 5  # every step once, numbered on after the resume
    resumed = records[next(i for i, r in enumerate(records) if r["kind"] == "resume"):]
    rates = [r["learning_rate"] for r in resumed if "learning_rate" in r]
    assert rates and rates == pytest.approx([1e-4] * len(rates))  # the resumed squeeze keeps its constant rate


@pytest.mark.slow  # real training
def test_mpop_dir_reaches_the_same_final_bond_dims(tmp_path):
    squeezed = fine_tune(tiny_run(tmp_path, run_name="squeezed"))
    direct = fine_tune(tiny_run(tmp_path, strategy="mpop_dir", run_name="direct",
                                bond_dims_from=str(tmp_path / "squeezed"), max_steps=2))
    assert direct["bond_dims"] == squeezed["bond_dims"]
    assert direct["total_params"] == squeezed["total_params"]
    assert direct["trainable_params"] == squeezed["trainable_params"]


@pytest.mark.parametrize("options, message", [
    ({"delta": 0}, "delta"), ({"delta": -0.1}, "delta"), ({"squeeze_steps": 0}, "squeeze_steps"),
    ({"tune_steps": 0}, "tune_steps"), ({"step_size": 0}, "step_size"), ({"stop_on": "up"}, "stop_on"),
    ({"tune_lr_scale": 0}, "tune_lr_scale"), ({"tune_lr_scale": 2}, "tune_lr_scale"),
    ({"mpo_config": MPOConfig(compression_ratio=0.5)}, "full bonds"),
    ({"step_size": 4}, "step_unit='bond'"), ({"step_size": 0.02, "step_unit": "layer"}, "step_unit"),
    ({"target_size": 0}, "target_size"), ({"target_size": 1.5}, "target_size"), ({"rank": "size"}, "rank"),
    ({"heldout_examples": -1}, "heldout_examples"), ({"heldout_examples": 0.1}, "heldout_examples"),
    ({"lfa_scheduler": "nope"}, "lfa_scheduler"), ({"bonds": "middle"}, "bonds"),
])
def test_bad_squeeze_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        get_strategy("mpop", **options)


def test_mpop_dir_bad_input(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        make_mpop_dir()
    with pytest.raises(FileNotFoundError, match="results.json"):
        make_mpop_dir(bond_dims_from=str(tmp_path))
    from tests.mpo_core.tiny_models import tiny_model

    strategy = make_mpop_dir(layer_bond_dims={"bert.nope": [1, 1, 1, 1]})
    with pytest.raises(ValueError, match="no MPO layer"):
        strategy.prepare(tiny_model("bert"), progress=False)


def test_an_option_mpop_does_not_have_is_an_error_naming_its_options():
    with pytest.raises(ValueError, match="mpop has no option 'max_steps'; its options: mpo_config, delta"):
        get_strategy("mpop", max_steps=2)
    with pytest.raises(ValueError, match="mpop_dir has no option 'k'"):
        FineTuneConfig(strategy="mpop_dir", strategy_options={"k": 1, "layer_bond_dims": {}})


def test_mpop_defaults_come_from_one_place():
    strategy = make_mpop()
    assert strategy.lightweight and strategy.name == "mpop" and strategy.training_overrides()["max_steps"] == (
        strategy.lfa_steps + strategy.squeeze_steps * strategy.tune_steps)


class StopButton(TrainerCallback):
    def __init__(self, at):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            control.should_training_stop = True
        return control


@pytest.mark.slow  # real training
def test_a_stop_from_outside_undoes_the_unjudged_cut(tmp_path):
    config = tiny_run(tmp_path)
    results = fine_tune(config, callbacks=[StopButton(6)])  # cut 2 made at step 5, not yet evaluated
    run = tmp_path / config.run_name
    accepted = squeeze_events(run, "step")[-1]
    assert results["squeeze"]["steps_accepted"] == 1 and "undone" in results["squeeze"]["stop_reason"]
    assert results["total_params"] == accepted["total_params"]


@pytest.mark.slow  # real training
def test_a_size_target_stops_the_squeeze_once_reached(tmp_path):
    config = tiny_run(tmp_path, target_size=0.99, squeeze_steps=10)  # the full-bond MPO is 1.005x the dense model
    results = fine_tune(config)
    squeeze = results["squeeze"]
    dense, target = squeeze["dense_params"], squeeze["target_params"]
    assert squeeze["stop_reason"].startswith("target size reached")
    assert results["total_params"] <= 0.99 * dense and target == int(0.99 * dense)
    # bounded: ceil((1.005 - 0.99) / 0.005) = 3 cuts of a step each, the last one only what was left
    step = STEP * dense
    assert squeeze["steps_accepted"] <= math.ceil((squeeze["mpo_params"] - target) / step)
    cuts = squeeze_events(tmp_path / config.run_name, "cut")
    assert cuts[-1]["params_to_remove"] <= math.ceil(step) and all(c["params_saved"] >= c["params_to_remove"] for c in cuts)
    stop = squeeze_events(tmp_path / config.run_name, "stop")[0]
    assert stop["reason"] == squeeze["stop_reason"] and stop["total_params"] == results["total_params"]


@pytest.mark.slow  # real training
def test_fill_budget_tunes_on_after_the_target_so_the_steps_match_the_comparators(tmp_path):
    config = tiny_run(tmp_path, target_size=0.99, squeeze_steps=10, fill_budget=True)
    results = fine_tune(config)
    squeeze = results["squeeze"]
    assert squeeze["stop_reason"].startswith("target size reached") and squeeze["steps_accepted"] < 10
    assert results["global_step"] == 3 + 10 * 2  # lfa_steps + squeeze_steps x tune_steps, all of them
    assert results["total_params"] <= 0.99 * squeeze["dense_params"]


@pytest.mark.slow  # real training
def test_p_is_judged_on_held_out_training_examples_and_dev_only_reported(tmp_path):
    config = tiny_run(tmp_path)
    results = fine_tune(config)
    # the held-out slice: seeded, out of the 120 training examples, and none of it trained on
    model, tokenizer = load_model_and_tokenizer(config)
    data = load_run_data(config, tokenizer, get_strategy("mpop", config.strategy_options))
    assert results["heldout_indices"] == data.heldout_indices and len(data.heldout_indices) == HELDOUT
    source = load_glue_split("rte", "train", GLUE, max_examples=120, seed=config.seed)
    assert set(data.heldout_indices) < set(source.indices)
    assert (results["num_train_examples"], results["num_heldout_examples"], results["num_eval_examples"]) == (96, 24, 32)
    trained = {tuple(ids) for ids in data.train["input_ids"]}
    assert not trained & {tuple(ids) for ids in data.heldout["input_ids"]}
    assert len(trained) + HELDOUT == len(source)
    # every evaluation before the stop is on the held-out slice; dev is evaluated once, after it
    records = read_metrics(tmp_path / config.run_name)
    stop = next(i for i, r in enumerate(records) if r.get("event") == "stop")
    before = [r for r in records[:stop] if r["kind"] == "eval"]
    assert before and all("eval_heldout_loss" in r and "eval_loss" not in r for r in before)
    after = [r for r in records[stop:] if r["kind"] == "eval"]
    dev = [r for r in after if "eval_loss" in r]
    assert len(dev) == 1 and results["eval"]["loss"] == dev[0]["eval_loss"]
    # ... and the held-out slice once more for the record (``heldout_score``), never dev before the stop
    final_heldout = [r for r in after if "eval_heldout_loss" in r]
    assert len(final_heldout) == 1 and len(after) == 2
    assert results["heldout_eval"]["loss"] == final_heldout[0]["eval_heldout_loss"]
    baseline = squeeze_events(tmp_path / config.run_name, "baseline")[0]
    assert baseline["judged_on"] == "heldout" and baseline["p"] == before[0]["eval_heldout_loss"]
    assert results["squeeze"]["judged_on"] == "heldout"
    assert [s["p_tilde"] for s in squeeze_events(tmp_path / config.run_name, "step")] == [
        r["eval_heldout_loss"] for r in before[1:]]


@pytest.mark.slow  # real training
def test_the_lfa_phase_learns_at_the_rates_of_an_mpo_full_lfa_run_of_its_steps(tmp_path):
    lfa_steps = 4
    mpop = fine_tune(tiny_run(tmp_path, run_name="mpop", lfa_steps=lfa_steps, squeeze_steps=1, warmup_steps=1))
    fine_tune(tiny_run(tmp_path, strategy="mpo_full_lfa", run_name="lfa", max_steps=lfa_steps, warmup_steps=1,
                       mpo_config=GROUPS))
    squeezed, reference = learning_rates(tmp_path / "mpop"), learning_rates(tmp_path / "lfa")
    assert [squeezed[k] for k in range(1, lfa_steps + 1)] == pytest.approx(
        [reference[k] for k in range(1, lfa_steps + 1)])
    assert reference[1] < reference[2] > reference[4]  # a warmup step, then the linear decay
    assert squeezed[lfa_steps + 1] == pytest.approx(1e-4)  # then the constant squeeze rate
    assert mpop["squeeze"]["schedule"][0] == {"phase": "lfa", "lr_scheduler_type": "linear", "steps": lfa_steps,
                                              "warmup_steps": 1, "peak_learning_rate": 1e-3}


def test_old_options_are_still_accepted():
    strategy = get_strategy("mpop", rank="error", step_unit="bond", step_size=16, bonds="central",
                            heldout_examples=0, lfa_scheduler="constant_with_warmup")
    assert strategy.step_size == 16 and strategy.eval_key == f"eval_{strategy.metric}"  # judged on dev
    assert strategy.heldout_size(1000) == 0 and strategy.params_per_cut(10**6) is None


def test_a_stored_config_from_before_the_new_options_keeps_its_meaning():
    old = {"mpo_config": {"groups": ["query"]}, "delta": 0.01, "squeeze_steps": 25, "step_size": 0.05,
           "lfa_steps": 125, "tune_steps": 8, "bonds": "central", "error": "relative", "metric": None,
           "stop_on": "drop", "tune_lr_scale": 0.1}  # every option an mpop config.json held then
    config = FineTuneConfig.from_dict({"task": "sst2", "strategy": "mpop", "strategy_options": old})
    options = config.strategy_options
    assert (options.rank, options.step_unit, options.step_size, options.target_size) == ("error", "bond", 0.05, None)
    assert (options.heldout_examples, options.lfa_scheduler) == (0, "constant_with_warmup")
    partial = MPOPConfig.from_dict({"delta": 0.02})  # a partial dict is a new request: today's defaults
    assert (partial.rank, partial.step_unit, partial.heldout_examples) == ("per_param", "model", 256)
    assert MPOPConfig.from_dict(config.strategy_options.to_dict()) == options  # a new record reads back as it is


def test_the_held_out_slice_is_at_most_a_quarter_of_training():
    strategy = make_mpop()
    assert strategy.heldout_size(100_000) == 256 and strategy.heldout_size(120) == 30
    with pytest.raises(ValueError, match="heldout_examples=0"):
        strategy.heldout_size(3)


@pytest.mark.slow  # real training
def test_the_first_behaviour_through_its_options(tmp_path):
    config = tiny_run(tmp_path, rank="error", step_unit="bond", step_size=16, bonds="central", heldout_examples=0,
                      lfa_scheduler="constant_with_warmup", squeeze_steps=2)
    results = fine_tune(config)
    run = tmp_path / config.run_name
    assert results["squeeze"]["judged_on"] == "dev" and results["num_heldout_examples"] == 0
    assert all(s["before"] - s["after"] == 16 and s["bond"] in (1, 2) for s in squeeze_events(run, "step"))
    rates = learning_rates(run)
    assert [rates[k] for k in (1, 2, 3)] == pytest.approx([1e-3] * 3) and rates[4] == pytest.approx(1e-4)


@pytest.mark.slow  # real training
def test_mpop_can_rank_cuts_by_their_output_error_on_training_sentences(tmp_path):
    config = tiny_run(tmp_path, error="data")
    results = fine_tune(config)
    steps = squeeze_events(tmp_path / config.run_name, "step")
    assert len(steps) == 3 and all(s["estimated_error"] > 0 for s in steps)
    assert results["squeeze"]["steps_accepted"] == 3
    plain = squeeze_events(tmp_path / fine_tune(tiny_run(tmp_path, run_name="plain"))["run_name"], "step")
    # the errors are output errors on the task's training sentences, not the spectra's Frobenius errors
    assert [s["estimated_error"] for s in steps] != pytest.approx([s["estimated_error"] for s in plain])
