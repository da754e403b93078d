from mpo_core.reproduction.glue_grid import matches
from mpo_core.training.fine_tune_config import FineTuneConfig


def _config(source, **changes):
    return FineTuneConfig(task="sst2", strategy="mpop_dir", strategy_options={"bond_dims_from": source}, **changes)


def test_a_kept_record_matches_its_spec_wherever_the_repository_lives():
    here = _config("/work/main/results/full/records/glue_verdicts/mpop@0.5-sst2-seed0.json")
    elsewhere = {"config": _config("/ci/clone/results/full/records/glue_verdicts/mpop@0.5-sst2-seed0.json").to_dict()}
    assert matches(elsewhere, here)
    other_run = {"config": _config("/ci/clone/results/full/records/glue_verdicts/mpop@0.5-sst2-seed1.json").to_dict()}
    assert not matches(other_run, here)
    other_rate = {"config": _config("/ci/clone/results/full/records/glue_verdicts/mpop@0.5-sst2-seed0.json",
                                    learning_rate=1e-3).to_dict()}
    assert not matches(other_rate, here)


def test_new_identity_fields_count_as_their_defaults_in_old_records():
    config = FineTuneConfig(task="sst2")
    old = {"config": {k: v for k, v in config.to_dict().items()
                      if k not in ("evaluation_slice", "keep_predictions", "decay_steps")}}
    assert matches(old, config)
    assert not matches(old, FineTuneConfig(task="sst2", keep_predictions=True))
