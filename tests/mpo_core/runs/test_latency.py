"""The one latency measurement: interleaved passes, medians of each model and the median paired ratio."""
import statistics

import pytest
import torch
from transformers import BertConfig

from mpo_core.runs.latency import compare_latency, random_token_batch

from ..tiny_models import tiny_inputs, tiny_model


class Counting(torch.nn.Module):
    """Wraps a model and records, in one shared list, whose forward ran and in which mode."""

    def __init__(self, model, name, log):
        super().__init__()
        self.model, self.name, self.log = model, name, log

    def forward(self, **inputs):
        self.log.append((self.name, torch.is_inference_mode_enabled()))
        return self.model(**inputs)


def test_keys_counts_and_statistics():
    model, reference = tiny_model("bert"), tiny_model("bert", seed=1)
    latency = compare_latency(model, reference, tiny_inputs(), warmup=1, repeats=5)
    assert set(latency) == {"seconds", "median_ms", "ratio", "warmup", "repeats"}
    assert set(latency["seconds"]) == set(latency["median_ms"]) == {"merged", "original"}
    assert all(len(v) == 5 and all(t > 0 for t in v) for v in latency["seconds"].values())
    for key, times in latency["seconds"].items():
        assert latency["median_ms"][key] == pytest.approx(1000 * statistics.median(times))
    pairs = [m / o for m, o in zip(latency["seconds"]["merged"], latency["seconds"]["original"])]
    assert latency["ratio"] == pytest.approx(statistics.median(pairs)) and latency["ratio"] > 0


def test_passes_are_warmed_up_interleaved_alternating_and_in_inference_mode():
    log = []
    model, reference = Counting(tiny_model("bert"), "m", log), Counting(tiny_model("bert"), "r", log)
    latency = compare_latency(model, reference, tiny_inputs(), warmup=2, repeats=3, names=("new", "old"))
    assert set(latency["seconds"]) == {"new", "old"}
    assert [name for name, _ in log] == ["r", "r", "m", "m"] + ["r", "m", "m", "r", "r", "m"]
    assert all(inference for _, inference in log)


def test_bad_counts_and_the_random_batch():
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        compare_latency(tiny_model("bert"), tiny_model("bert"), tiny_inputs(), repeats=0)
    batch = random_token_batch(BertConfig(vocab_size=2000, type_vocab_size=2), 3, 7, seed=1)
    assert batch["input_ids"].shape == (3, 7) and int(batch["input_ids"].min()) >= 1000
    assert torch.equal(batch["input_ids"], random_token_batch(BertConfig(vocab_size=2000), 3, 7, seed=1)["input_ids"])
    assert batch["attention_mask"].all() and not batch["token_type_ids"].any()
