"""``mpop`` and ``mpop_dir`` on the one training engine: the packaged model, a small real GLUE subset."""
import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from mpo_core.training.fine_tune import fine_tune
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.model.mpo_config import MPOConfig
from mpo_core.runs.run_folder import read_metrics
from mpo_core.mpop.strategy import STATE_FILE, make_mpop, make_mpop_dir
from mpo_core.training.strategies import get_strategy

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"
GROUPS = {"groups": ["query", "ffn_in"]}  # few layers: fast canonicalization per cut


def tiny_run(tmp_path, strategy="mpop", run_name=None, max_steps=-1, **options) -> FineTuneConfig:
    squeeze = dict(mpo_config=GROUPS, lfa_steps=3, tune_steps=2, squeeze_steps=3, step_size=16, delta=1.0,
                   metric="loss")
    squeeze.update(options)
    return FineTuneConfig(
        task="rte", data_dir=str(GLUE), num_hidden_layers=1, max_length=64, max_train_examples=120,
        max_eval_examples=32, batch_size=8, learning_rate=1e-3, logging_steps=1, runs_dir=str(tmp_path),
        strategy=strategy, strategy_options=squeeze if strategy == "mpop" else options, run_name=run_name,
        max_steps=max_steps,
    )


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
    rates = {r["step"]: r["learning_rate"] for r in read_metrics(run) if "learning_rate" in r}
    assert rates[3] == pytest.approx(1e-3) and rates[6] == pytest.approx(1e-4)  # squeezing tunes at 0.1x


@pytest.mark.slow  # real training
def test_mpop_stops_by_delta_and_keeps_the_last_model_within_it(tmp_path):
    config = tiny_run(tmp_path, delta=1e-9)  # any change of the eval loss exceeds it
    results = fine_tune(config)
    run = tmp_path / config.run_name
    steps = squeeze_events(run, "step")
    assert len(steps) == 1 and not steps[0]["accepted"]
    assert results["squeeze"]["steps_accepted"] == 0 and "delta" in results["squeeze"]["stop_reason"]
    # the rejected cut is undone: the final model is the pre-squeeze one, full bonds and its loss
    baseline = squeeze_events(run, "baseline")[0]
    assert results["total_params"] == baseline["total_params"]
    assert results["eval"]["loss"] == pytest.approx(baseline["p"], rel=1e-5)


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
    saved = json.loads((run / STATE_FILE).read_text())
    assert saved["steps_accepted"] == 1 and saved["phase"] == "tune"
    accepted_total = squeeze_events(run, "step")[0]["total_params"]
    results = fine_tune(config, resume=True)
    assert results["squeeze"]["steps_accepted"] == 3
    cuts = squeeze_events(run, "cut")  # cut 2 was interrupted before its evaluation, and redone
    assert len(cuts) == 4 and cuts[2]["total_params"] == cuts[1]["total_params"] < accepted_total
    assert [s["squeeze_step"] for s in squeeze_events(run, "step")] == [1, 2, 3]


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
