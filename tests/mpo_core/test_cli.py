import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpo_core import MPOConfig
from mpo_core.cli import config_from_args, main
from mpo_core.mpop.config import MPOPConfig
from mpo_core.opf.config import OPFConfig
from mpo_core.training.method_config import LastKConfig

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "glue"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mpo_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})


@pytest.mark.slow  # real training
def test_finetune_then_list_runs(tmp_path):
    out = run_cli("finetune", "--task", "rte", "--data-dir", str(GLUE), "--strategy", "mpo_lfa",
                  "--compression-ratio", "0.5", "--groups", "ffn_in,ffn_out", "--num-hidden-layers", "1",
                  "--max-train-examples", "64", "--max-eval-examples", "32", "--max-steps", "2",
                  "--batch-size", "8", "--runs-dir", str(tmp_path), "--run-name", "cli")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout[out.stdout.rindex("{\n"):])  # the last block: Trainer logs come first
    assert record["task"] == "rte" and record["strategy"] == "mpo_lfa"
    listed = run_cli("runs", "--runs-dir", str(tmp_path), "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["run_name"] == "cli"


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["finetune", "--task", "squad", "--runs-dir", str(tmp_path)]) == 2
    assert "unknown GLUE task" in capsys.readouterr().err
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "no finished runs" in capsys.readouterr().out


def test_arguments_map_to_the_config():
    import argparse

    args = argparse.Namespace(task="sst2", k=2, compression_ratio=None, groups=None, strategy="last_k",
                              batch_size=16, runs_dir="r", seed=3)
    config = config_from_args(args)
    assert config.strategy_options == LastKConfig(k=2) and config.batch_size == 16 and config.seed == 3


def test_method_options_map_to_strategy_options():
    import argparse

    from mpo_core.cli import _finetune_parser

    parser = argparse.ArgumentParser()
    _finetune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "mpop", "--delta", "0.02",
                              "--squeeze-steps", "5", "--step-size", "0.1", "--lfa-steps", "7", "--tune-steps", "3",
                              "--squeeze-metric", "loss", "--groups", "query,ffn_in"])
    config = config_from_args(args)
    assert config.strategy_options == MPOPConfig(mpo_config=MPOConfig(groups=("query", "ffn_in")), delta=0.02,
                                                 squeeze_steps=5, step_size=0.1, lfa_steps=7, tune_steps=3,
                                                 metric="loss")
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "mpop", "--target-size", "0.6",
                              "--step-size", "0.01", "--heldout-examples", "128"])
    assert config_from_args(args).strategy_options == MPOPConfig(target_size=0.6, step_size=0.01,
                                                                 heldout_examples=128)
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "mpop", "--step-unit", "bond",
                              "--step-size", "8", "--rank", "error", "--bonds", "central", "--heldout-examples", "0"])
    assert config_from_args(args).strategy_options == MPOPConfig(step_unit="bond", step_size=8, rank="error",
                                                                 bonds="central", heldout_examples=0)
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "mpop", "--target-size", "1.5"])
    with pytest.raises(ValueError, match="target_size"):
        config_from_args(args)
    args = parser.parse_args(["finetune", "--task", "rte", "--strategy", "opf", "--target-size", "0.5"])
    with pytest.raises(ValueError, match="--strategy opf does not take --target-size"):
        config_from_args(args)
    args = parser.parse_args(["finetune", "--task", "rte", "--strategy", "opf", "--growth", "9", "--top-n", "3",
                              "--selection", "dynamic", "--stages", "3", "--groups", "ffn_in,ffn_out"])
    assert config_from_args(args).strategy_options == OPFConfig(growth=9.0, top_n=3, selection="dynamic", stages=3,
                                                                groups=("ffn_in", "ffn_out"))
    args = parser.parse_args(["finetune", "--task", "rte", "--strategy", "opf", "--step-size", "8"])
    with pytest.raises(ValueError, match="--strategy opf does not take --step-size; its options: --growth"):
        config_from_args(args)
    args = parser.parse_args(["finetune", "--task", "rte", "--strategy", "full", "--k", "3"])
    with pytest.raises(ValueError, match="--strategy full does not take --k; its options: none"):
        config_from_args(args)


def test_a_saved_config_runs_again(tmp_path):
    from mpo_core.training.fine_tune_config import FineTuneConfig

    config = FineTuneConfig(task="rte", data_dir=str(GLUE), strategy="mpop", num_hidden_layers=1, seed=4,
                            strategy_options={"delta": 0.2, "mpo_config": {"groups": ["query"]}})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    import argparse

    again = config_from_args(argparse.Namespace(config=str(path)))
    assert again == FineTuneConfig.from_dict(json.loads(path.read_text())) and again.seed == 4
    assert main(["finetune", "--runs-dir", str(tmp_path)]) == 2  # neither --task nor --config
    path.write_text(json.dumps({**config.to_dict(), "colour": "red"}))
    assert main(["finetune", "--config", str(path)]) == 2


def test_a_bare_key_error_is_a_sentence(monkeypatch, capsys):
    """A KeyError nobody turned into a message still names the field (was: "error: out_factors")."""
    def lacking(runs_dir, problems=None):
        raise KeyError("out_factors")

    monkeypatch.setattr("mpo_core.cli.runs_table", lacking)
    assert main(["runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: missing field 'out_factors': a file or option this command read lacks it "
                   "(it may be hand-edited or torn)"), err


@pytest.mark.parametrize("options", ["mpo_config", ["query"], 3])
def test_resuming_a_run_whose_strategy_options_are_not_an_object(options, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "rte", "run_name": "r", "strategy": "mpo_lfa",
                                                 "strategy_options": options}))
    code = main(["finetune", "--resume", "--run-name", "r", "--runs-dir", str(tmp_path), "--groups", "query"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "config.json: strategy_options must be a JSON object" in err[0], err


def test_compressed_options_and_the_verdict_fields():
    import argparse

    from mpo_core.cli import _finetune_parser
    from mpo_core.training.method_config import CompressedConfig

    parser = argparse.ArgumentParser()
    _finetune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "compressed", "--compression",
                              "svd_whitened", "--model-size", "0.5", "--trains", "all", "--evaluation-slice", "5000",
                              "--keep-predictions", "--lr-scheduler-type", "warmup_stable_decay", "--decay-steps", "40"])
    config = config_from_args(args)
    assert config.strategy_options == CompressedConfig(compression="svd_whitened", model_size=0.5, trains="all")
    assert config.evaluation_slice == 5000 and config.keep_predictions and config.decay_steps == 40
    args = parser.parse_args(["finetune", "--task", "sst2", "--strategy", "full", "--trains", "all"])
    with pytest.raises(ValueError, match="does not take --trains"):
        config_from_args(args)


def test_threads_and_progress_go_with_a_saved_config_and_are_not_stored(tmp_path, monkeypatch, capsys):
    """How the dashboard starts a job: ``--config FILE --threads auto --progress FILE``."""
    from mpo_core import cli
    from mpo_core.runs.thread_budget import ThreadBudget
    from mpo_core.training.fine_tune_config import FineTuneConfig

    config = FineTuneConfig(task="rte", data_dir=str(GLUE), runs_dir=str(tmp_path), run_name="r")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    seen = {}
    monkeypatch.setattr("mpo_core.training.fine_tune.fine_tune",
                        lambda config, resume=False, **options: seen.update(config=config, **options) or {})
    monkeypatch.setattr(ThreadBudget, "start", lambda self: 1)
    assert main(["finetune", "--config", str(path), "--threads", "auto", "--progress", str(tmp_path / "p.json")]) == 0
    assert seen["config"] == config  # nothing of the process in the run's config
    assert isinstance(seen["threads"], ThreadBudget) and str(seen["progress"].path) == str(tmp_path / "p.json")
    for bad in ("0", "two", "-1"):
        with pytest.raises(SystemExit):
            main(["finetune", "--config", str(path), "--threads", bad])
        assert "--threads takes 'auto' or a positive number" in capsys.readouterr().err
    assert cli.PROCESS_OPTIONS == ("threads", "progress")


def test_reproduce_help_names_every_experiment(capsys):
    from mpo_core.reproduction import EXPERIMENTS

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in EXPERIMENTS) and "learning_budget" in text
