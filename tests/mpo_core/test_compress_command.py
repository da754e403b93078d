"""``python -m mpo_core compress``: bad inputs are one error line; a run writes the model and its report."""
import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

import mpo_core
from mpo_core.cli import main
from mpo_core.compression_run import compress
from mpo_core.model.calibrated_compression import CompressionConfig
from mpo_core.model.checkpoint import load_mpo_model

SENTENCES = ["a man is playing a guitar.", "the cat sleeps on the warm mat.", "two children are swimming.",
             "a woman is slicing an onion.", "the stock market fell sharply today.", "kids swim in a pool.",
             "a dog runs in the park.", "nobody came to the meeting."] * 4


@pytest.mark.parametrize("args, message", [
    (["--size", "0"], "share in"),
    (["--size", "0.5", "--method", "auto", "--calibration", "/no/such/file.txt"], "neither a GLUE task"),
    (["--size", "0.5", "--calibration-size", "0"], "calibration-size"),
    (["--size", "0.5", "--heal-steps", "-1"], "heal-steps"),
    (["--size", "0.5", "--groups", "nope"], "groups"),
    (["--size", "0.5", "--model", "/no/such/model"], "model"),
])
def test_bad_inputs_are_one_error_line(args, message, tmp_path, capsys):
    assert main(["compress", *args, "--out", str(tmp_path / "out"), "--no-zero-shot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_an_existing_report_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "report.json").write_text("{}")
    assert main(["compress", "--size", "0.5", "--out", str(tmp_path)]) == 2
    assert "already holds" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48)
    return BertModel(config).eval(), AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)


@pytest.mark.parametrize("method", ["svd_whitened", "auto"])
def test_compress_heals_and_saves_a_model_that_loads_back(tiny, method, tmp_path):
    model, tokenizer = tiny
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "out"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compress(model, CompressionConfig(method=method, size=0.4, structures=(2, 3)), tokenizer=tokenizer,
                      calibration=str(text), calibration_size=16, heal_steps=2, out=out, merged=True,
                      zero_shot=False, cache_dir=tmp_path / "cache", progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    report = json.loads((out / "report.json").read_text())
    assert report["kept_share"] <= 0.4 and report["healing"]["global_step"] == 2
    assert report["heal_sentences"] == len(set(SENTENCES)) * 4 or report["heal_sentences"] <= len(SENTENCES)
    loaded = load_mpo_model(out / "mpo_model", AutoModel)
    batch = tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).last_hidden_state, result.model(**batch).last_hidden_state)
        merged = BertModel.from_pretrained(out / "merged_model")
        torch.testing.assert_close(merged(**batch).last_hidden_state, result.model(**batch).last_hidden_state,
                                   rtol=1e-4, atol=1e-4)
