"""Task adapters: base + adapter = the fine-tuned model; another base is refused; decompositions reproduce."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpo_core.model.sequence_classifier import load_sequence_classifier
from mpo_core.runs.adapter import (
    CONFIG_FILE, WEIGHTS_FILE, fingerprint, fingerprints_match, load_adapter, read_adapter_config, save_adapter,
)
from mpo_core.training.strategies import get_strategy

ROOT = Path(__file__).resolve().parents[3]
GLUE = ROOT.parent / "shared" / "glue"


def lfa_model(seed=0):
    """One-layer MiniLM prepared for mpo_full_lfa, its trainable tensors moved as training would."""
    model, tokenizer = load_sequence_classifier("sst2", None, num_hidden_layers=1, seed=seed)
    get_strategy("mpo_full_lfa").prepare(model, progress=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * p.abs().mean() * torch.randn(p.shape, generator=gen))
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, tokenizer = lfa_model()
    directory = save_adapter(model, tmp_path_factory.mktemp("adapter") / "adapter", task="sst2", num_hidden_layers=1,
                             strategy="mpo_full_lfa")
    batch = tokenizer(["a gripping, funny film", "dull and far too long"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = model(**batch).logits
    return directory, model, batch, logits


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_base_plus_adapter_gives_the_fine_tuned_logits(saved):
    directory, model, batch, logits = saved
    rebuilt = load_adapter(directory)
    with torch.inference_mode():
        again = rebuilt(**batch).logits
    assert torch.allclose(again, logits, atol=1e-5, rtol=0), (again - logits).abs().max()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(read_adapter_config(directory)["trained"]) == trained
    assert not any(n.endswith(".tensors.2") and "intermediate" in n for n in trained)  # central frozen, not saved


def test_the_adapter_is_a_fraction_of_the_model(saved):
    directory, model, _, _ = saved
    adapter_bytes = (directory / WEIGHTS_FILE).stat().st_size
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert adapter_bytes < 0.25 * model_bytes
    config = json.loads((directory / CONFIG_FILE).read_text())
    assert config["frozen_fingerprints"] and all(len(f["projections"]) == 3 for f in config["frozen_fingerprints"].values())


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_another_base_is_refused(saved, tmp_path):
    directory, _, _, _ = saved
    other, tokenizer = load_sequence_classifier("sst2", None, num_hidden_layers=1, seed=0)
    with torch.no_grad():
        other.bert.encoder.layer[0].intermediate.dense.weight.mul_(1.01)  # slightly different weights
    other.save_pretrained(tmp_path / "other")
    tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="does not reproduce the adapter's frozen tensor"):
        load_adapter(directory, base=tmp_path / "other")


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_tampered_fingerprint_or_folder_is_refused(saved, tmp_path):
    directory, _, _, _ = saved
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((directory / CONFIG_FILE).read_text())
    name = next(iter(config["frozen_fingerprints"]))
    config["frozen_fingerprints"][name]["projections"][1] += 0.01
    (broken / CONFIG_FILE).write_text(json.dumps(config))
    (broken / WEIGHTS_FILE).write_bytes((directory / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match="does not reproduce"):
        load_adapter(broken)
    (broken / CONFIG_FILE).write_text(json.dumps({**config, "adapter_type": "lora"}))
    with pytest.raises(ValueError, match="not an mpo_core LFA adapter"):
        load_adapter(broken)
    with pytest.raises(FileNotFoundError, match="not an adapter folder"):
        load_adapter(tmp_path / "nothing")


def test_fingerprints_tell_sign_flips_and_rounding_apart():
    gen = torch.Generator().manual_seed(0)
    tensor = torch.randn(96, 16, 96, generator=gen)
    print_ = fingerprint(tensor)
    assert fingerprints_match(print_, fingerprint(tensor * (1 + 1e-7)))  # rounding
    flipped = tensor.clone()
    flipped[:, :, 0] *= -1  # one bond vector's sign
    assert not fingerprints_match(print_, fingerprint(flipped))
    assert not fingerprints_match(print_, fingerprint(tensor[:, :, :95]))


def test_strategies_that_change_frozen_tensors_make_no_adapter(tmp_path):
    from mpo_core.training.fine_tune_config import FineTuneConfig

    with pytest.raises(ValueError, match="cannot be saved as adapters"):
        FineTuneConfig(task="sst2", strategy="mpop", save_adapter=True)
    model, _ = load_sequence_classifier("sst2", None, num_hidden_layers=1, seed=0)
    with pytest.raises(ValueError, match="cannot be saved as adapters"):
        save_adapter(model, tmp_path / "a", task="sst2", strategy="opf")


DETERMINISM = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from mpo_core import decompose, load_weight_matrix
from mpo_core.runs.adapter import fingerprint
import json
mpo = decompose(load_weight_matrix("encoder.layer.0.intermediate.dense.weight"), n=5)
print(json.dumps([fingerprint(t) for t in mpo.tensors]))
"""


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_decomposition_is_the_same_in_two_processes():
    def run(threads):
        out = subprocess.run([sys.executable, "-c", DETERMINISM, str(threads)], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second, two_threads = run(1), run(1), run(2)
    assert [f["sha256"] for f in first] == [f["sha256"] for f in second]  # same machine and threads: bitwise
    assert all(fingerprints_match(a, b) for a, b in zip(first, two_threads))  # other threads: within rounding


@pytest.mark.slow  # real training, then the CLI
def test_finetune_save_adapter_then_predict(tmp_path):
    common = ["--task", "sst2", "--data-dir", str(GLUE)]
    train = subprocess.run(
        [sys.executable, "-m", "mpo_core", "finetune", *common, "--strategy", "mpo_full_lfa", "--num-hidden-layers",
         "1", "--max-train-examples", "64", "--max-eval-examples", "64", "--max-length", "32", "--max-steps", "2",
         "--batch-size", "16", "--learning-rate", "3e-4", "--runs-dir", str(tmp_path), "--run-name", "lfa",
         "--save-adapter"], capture_output=True, text=True, cwd=ROOT)
    assert train.returncode == 0, train.stderr[-2000:]
    results = json.loads((tmp_path / "lfa" / "results.json").read_text())
    predict = subprocess.run(
        [sys.executable, "-m", "mpo_core", "predict", "--adapter", str(tmp_path / "lfa" / "adapter"), *common,
         "--max-eval-examples", "64", "--max-length", "32"], capture_output=True, text=True, cwd=ROOT)
    assert predict.returncode == 0, predict.stderr[-2000:]
    scores = json.loads(predict.stdout)
    assert scores["num_eval_examples"] == 64 and scores["accuracy"] == pytest.approx(results["eval"]["accuracy"])
    wrong = subprocess.run([sys.executable, "-m", "mpo_core", "predict", "--adapter", str(tmp_path / "lfa" / "adapter"),
                            "--task", "mrpc", "--data-dir", str(GLUE)], capture_output=True, text=True, cwd=ROOT)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and "not 'mrpc'" in wrong.stderr
