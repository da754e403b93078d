"""One typed config per method: JSON round trip, unknown options named, the shared checks."""
import json

import pytest

from mpo_core import MPOConfig
from mpo_core.mpop.config import MPOPConfig, MPOPDirConfig
from mpo_core.opf.config import OPFConfig
from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.training.method_config import FullConfig, LastKConfig, MPOFullConfig, MPOLFAConfig
from mpo_core.training.strategies import STRATEGIES, get_strategy, method_config

EXAMPLES = {  # strategy -> non-default options
    "full": {}, "last_k": {"k": 3}, "mpo_full": {"mpo_config": {"groups": ["query"]}},
    "mpo_full_lfa": {"mpo_config": {"groups": ["ffn_in"], "n": 3}},
    "mpo_lfa": {"compression_ratio": 0.3, "mpo_config": {"groups": ["query", "key"]}},
    "mpop": {"delta": 0.02, "step_size": 0.1, "stop_on": "drop", "mpo_config": {"groups": ["query"]}},
    "mpop_dir": {"layer_bond_dims": {"bert.encoder.layer.0.attention.self.query": [2, 4, 4, 2]}},
    "opf": {"growth": 2.0, "selection": "dynamic", "top_n": 2, "stages": 2, "groups": ["ffn_in"]},
    "compressed": {"compression": "mpo_calibrated", "model_size": 0.75, "trains": "all", "calibration_sentences": 128},
}


def test_every_strategy_has_an_example():
    assert set(EXAMPLES) == set(STRATEGIES)


@pytest.mark.parametrize("strategy", sorted(EXAMPLES))
def test_json_round_trip_through_a_run_config(strategy):
    config = FineTuneConfig(strategy=strategy, strategy_options=EXAMPLES[strategy])
    assert isinstance(config.strategy_options, STRATEGIES[strategy].config)
    stored = json.loads(json.dumps(config.to_dict()))
    assert set(stored["strategy_options"]) == set(STRATEGIES[strategy].config.option_names())  # every option
    again = FineTuneConfig.from_dict(stored)
    assert again == config and again.to_dict() == stored


@pytest.mark.parametrize("strategy", sorted(EXAMPLES))
def test_an_option_the_method_lacks_names_the_ones_it_has(strategy):
    names = STRATEGIES[strategy].config.option_names()
    with pytest.raises(ValueError, match=f"has no option 'colour'; its options: {', '.join(names) or 'none'}"):
        method_config(strategy, {**EXAMPLES[strategy], "colour": "red"})


def test_a_config_object_must_be_the_strategys_own():
    assert method_config("last_k", LastKConfig(k=2)) == LastKConfig(k=2)
    with pytest.raises(ValueError, match="takes a OPFConfig, got a LastKConfig"):
        method_config("opf", LastKConfig(k=2))
    with pytest.raises(ValueError, match="not both"):
        get_strategy("last_k", LastKConfig(k=2), k=3)


@pytest.mark.parametrize("config, options, message", [
    (LastKConfig, {"k": 0}, "k .*must be a positive int, got 0"),
    (LastKConfig, {"k": 2.0}, "must be a positive int, got 2.0"),
    (LastKConfig, {"k": True}, "must be a positive int, got True"),
    (MPOFullConfig, {"mpo_config": {"compression_ratio": 0.5}}, "keep full bonds"),
    (MPOLFAConfig, {}, "needs a truncation"),
    (MPOLFAConfig, {"compression_ratio": float("nan")}, "compression_ratio must be a finite number"),
    (MPOPConfig, {"tune_lr_scale": 1.5}, r"tune_lr_scale must be in \(0, 1\]"),
    (MPOPConfig, {"bonds": "middle"}, r"bonds must be one of \['central', 'all'\]"),
    (MPOPDirConfig, {}, "exactly one of bond_dims_from"),
    (OPFConfig, {"selection": "random"}, r"selection must be one of \['static', 'dynamic'\]"),
    (OPFConfig, {"fisher_batches": -1}, "fisher_batches must be a positive int"),
])
def test_bad_options_are_messages_in_one_vocabulary(config, options, message):
    with pytest.raises(ValueError, match=message):
        config.from_dict(options)


def test_mpo_lfa_shorthand_is_folded_into_the_mpo_config_once():
    config = MPOLFAConfig(compression_ratio=0.3, mpo_config=MPOConfig(groups=("query",)))
    assert config.mpo_config.compression_ratio == {"query": 0.3}
    assert MPOLFAConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_strategy_is_its_config_plus_behaviour():
    strategy = get_strategy("mpop", delta=0.05)
    assert isinstance(strategy, MPOPConfig) and strategy.delta == 0.05 and strategy.lightweight
    assert type(strategy).option_names() == MPOPConfig.option_names()  # not name/description/state
    assert get_strategy("full").name == "full" and FullConfig.option_names() == ()
