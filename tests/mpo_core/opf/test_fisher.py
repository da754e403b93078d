from pathlib import Path

import pytest
import torch
from torch import nn

from mpo_core.opf.fisher import fisher_scores, select_top
from mpo_core.model.matrix_groups import find_matrices

from ..tiny_models import tiny_model

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"
GROUPS = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")


def tiny_batches(num: int = 3, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    return [{
        "input_ids": torch.randint(1, 120, (4, 9), generator=gen),
        "attention_mask": torch.ones(4, 9, dtype=torch.long),
        "labels": torch.randint(0, 3, (4,), generator=gen),
    } for _ in range(num)]


def real_model_and_batches(tmp_path, num_batches: int = 2, batch_size: int = 8):
    """The packaged MiniLM cut to 2 layers, and real SST-2 batches padded as the Trainer's collator does."""
    from transformers import DataCollatorWithPadding

    from mpo_core.training.fine_tune import load_data, load_model_and_tokenizer
    from mpo_core.training.fine_tune_config import FineTuneConfig

    config = FineTuneConfig(task="sst2", data_dir=str(GLUE), num_hidden_layers=2, max_length=64,
                            max_train_examples=num_batches * batch_size, max_eval_examples=8, runs_dir=str(tmp_path))
    torch.manual_seed(0)  # the classifier head is freshly initialized
    model, tokenizer = load_model_and_tokenizer(config)
    train, _ = load_data(config, tokenizer)
    collate = DataCollatorWithPadding(tokenizer)
    rows = [train[k] for k in range(len(train))]
    return model, [collate(rows[k:k + batch_size]) for k in range(0, len(rows), batch_size)]


def manual_scores(model, batches, names, max_grad_norm):
    """Eq. of the module docstring, written out: clip, square, mean, average over batches."""
    model.eval()
    modules = dict(model.named_modules())
    totals = dict.fromkeys(names, 0.0)
    for batch in batches:
        model.zero_grad()
        model(**batch).loss.backward()
        if max_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        for name in names:
            totals[name] += modules[name].weight.grad.pow(2).mean().item() / len(batches)
    model.zero_grad(set_to_none=True)
    return totals


@pytest.mark.parametrize("max_grad_norm", [1.0, 1e-3, None])
def test_scores_are_mean_squared_clipped_gradients(max_grad_norm):
    names = list(find_matrices(tiny_model("bert"), GROUPS))
    scores = fisher_scores(tiny_model("bert"), tiny_batches(), names, max_grad_norm)
    expected = manual_scores(tiny_model("bert"), tiny_batches(), names, max_grad_norm)
    assert list(scores) == names
    for name in names:
        assert scores[name] == pytest.approx(expected[name], rel=1e-5)


def test_clipping_scales_each_batch_as_training_does():
    names = list(find_matrices(tiny_model("bert"), GROUPS))
    batch = tiny_batches(1)
    free = fisher_scores(tiny_model("bert"), batch, names, max_grad_norm=None)
    clipped = fisher_scores(tiny_model("bert"), batch, names, max_grad_norm=1e-4)
    ratios = [clipped[n] / free[n] for n in names]  # one global factor (1e-4 / ||g||)^2 per batch
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4) and max(ratios) < 1


def test_scores_are_deterministic_and_rank_the_matrices():
    names = list(find_matrices(tiny_model("bert"), GROUPS))
    first = fisher_scores(tiny_model("bert", seed=3), tiny_batches(seed=1), names)
    second = fisher_scores(tiny_model("bert", seed=3), tiny_batches(seed=1), names)
    assert first == second
    assert len(set(first.values())) == len(names) and min(first.values()) > 0


def test_real_model_scores_are_reproducible_and_distinct(tmp_path, single_blas_thread):
    model, batches = real_model_and_batches(tmp_path)
    names = list(find_matrices(model, GROUPS))
    assert len(names) == 12
    first = fisher_scores(model, batches, names)
    second = fisher_scores(model, batches, names)
    assert first == second and len(set(first.values())) == 12
    assert select_top(first, find_matrices(model, GROUPS), 1) == select_top(second, find_matrices(model, GROUPS), 1)


def test_scoring_leaves_weights_modes_and_gradients_as_they_were():
    model = tiny_model("bert").train()
    model.bert.pooler.eval()  # a mixed mode must come back as it was
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    kept = torch.ones_like(model.classifier.weight)
    model.classifier.weight.grad = kept
    names = list(find_matrices(model, GROUPS))
    fisher_scores(model, tiny_batches(), names)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert model.training and not model.bert.pooler.training and model.bert.encoder.training
    assert model.classifier.weight.grad is kept and torch.equal(kept, torch.ones_like(kept))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "classifier.weight")


def test_dropout_is_off_while_scoring():
    names = list(find_matrices(tiny_model("bert"), GROUPS))
    model = tiny_model("bert").train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.5
    assert fisher_scores(model, tiny_batches(), names) == fisher_scores(tiny_model("bert"), tiny_batches(), names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_batches_move_to_the_model_device():
    names = list(find_matrices(tiny_model("bert"), GROUPS))
    on_gpu = fisher_scores(tiny_model("bert").cuda(), tiny_batches(), names)
    on_cpu = fisher_scores(tiny_model("bert"), tiny_batches(), names)
    for name in names:
        assert on_gpu[name] == pytest.approx(on_cpu[name], rel=1e-3)


def test_bad_inputs_are_clear():
    model = tiny_model("bert")
    with pytest.raises(ValueError, match="2-D weight"):
        fisher_scores(model, tiny_batches(), ["bert.embeddings.LayerNorm"])
    with pytest.raises(ValueError, match="not a module"):
        fisher_scores(model, tiny_batches(), ["nope"])
    with pytest.raises(ValueError, match="at least one matrix"):
        fisher_scores(model, tiny_batches(), [])
    with pytest.raises(ValueError, match="no batches"):
        fisher_scores(model, [], ["classifier"])
    unlabeled = [{k: v for k, v in b.items() if k != "labels"} for b in tiny_batches()]
    with pytest.raises(ValueError, match="labels"):
        fisher_scores(model, unlabeled, ["classifier"])
    model.classifier.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        fisher_scores(model, tiny_batches(), ["classifier"])


def test_select_top_per_group_with_ties_broken_by_name():
    groups = {"l0.q": "query", "l1.q": "query", "l2.q": "query", "l0.k": "key", "l1.k": "key"}
    scores = {"l0.q": 1.0, "l1.q": 3.0, "l2.q": 1.0, "l0.k": 2.0, "l1.k": 2.0}
    assert select_top(scores, groups, 1) == ["l1.q", "l0.k"]
    assert select_top(scores, groups, 2) == ["l1.q", "l0.q", "l0.k", "l1.k"]
    assert select_top(scores, groups, 5) == ["l1.q", "l0.q", "l2.q", "l0.k", "l1.k"]
    assert select_top({"l2.q": 0.5, "l0.k": 0.1}, groups, 1) == ["l2.q", "l0.k"]  # only the scored names


def test_select_top_bad_inputs():
    with pytest.raises(ValueError, match="positive int"):
        select_top({"a": 1.0}, {"a": "query"}, 0)
    with pytest.raises(ValueError, match="without a group"):
        select_top({"a": 1.0}, {}, 1)
    with pytest.raises(ValueError, match="non-finite"):
        select_top({"a": float("nan")}, {"a": "query"}, 1)
