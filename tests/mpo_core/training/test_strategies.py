import pytest
import torch

from mpo_core.layers.mpo_module import MPOModule
from mpo_core.model.mpo_config import MPOConfig
from mpo_core.model.parameter_count import count_parameters
from mpo_core.training.strategies import STRATEGIES, get_strategy, head_modules

from ..tiny_models import tiny_inputs, tiny_model


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def head_size(model):
    return sum(p.numel() for m in head_modules(model) for p in m.parameters())


def test_full_trains_everything():
    model = get_strategy("full").prepare(tiny_model("bert"))
    assert trainable(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("k", [1, 2])
def test_last_k_counts(k):
    model = tiny_model("bert")
    get_strategy("last_k", k=k).prepare(model)
    layer = sum(p.numel() for p in model.bert.encoder.layer[0].parameters())
    assert trainable(model) == k * layer + head_size(model)
    assert all(not p.requires_grad for p in model.bert.embeddings.parameters())
    assert head_size(model) == sum(p.numel() for p in model.classifier.parameters()) + sum(
        p.numel() for p in model.bert.pooler.parameters())


def test_last_k_errors():
    with pytest.raises(ValueError, match="k .* must be a positive int"):
        get_strategy("last_k", k=0)
    with pytest.raises(ValueError, match="only 2 encoder layers"):
        get_strategy("last_k", k=3).prepare(tiny_model("bert"))


def test_mpo_full_trains_every_tensor():
    model = get_strategy("mpo_full").prepare(tiny_model("bert"), progress=False)
    assert trainable(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, options", [("mpo_full_lfa", {}), ("mpo_lfa", {"compression_ratio": 0.5})])
def test_lightweight_strategies_train_only_auxiliary_tensors_and_head(name, options):
    model = tiny_model("bert")
    get_strategy(name, **options).prepare(model, progress=False)
    mpo = [m for m in model.modules() if isinstance(m, MPOModule)]
    auxiliary = sum(t.numel() for m in mpo for t in m.auxiliary_tensors)
    assert trainable(model) == auxiliary + head_size(model)
    assert all(not m.central_tensor.requires_grad for m in mpo)
    count = count_parameters(model)
    assert count.trainable == trainable(model)
    # gradients reach exactly the trainable tensors
    model(**tiny_inputs(), labels=torch.tensor([0, 2])).loss.backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_mpo_lfa_on_the_real_model_trains_under_ten_percent():
    from transformers import AutoModelForSequenceClassification

    from mpo_core import default_model_path

    model = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=2)
    get_strategy("mpo_full_lfa").prepare(model, progress=False)
    count = count_parameters(model)
    assert count.trainable_share <= 0.10


def test_strategy_errors():
    assert set(STRATEGIES) == {"full", "last_k", "mpo_full", "mpo_full_lfa", "mpo_lfa", "mpop", "mpop_dir", "opf",
                               "compressed"}
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("lora")
    with pytest.raises(ValueError, match="needs a truncation"):
        get_strategy("mpo_lfa")
    with pytest.raises(ValueError, match="keep full bonds"):
        get_strategy("mpo_full", mpo_config=MPOConfig(compression_ratio=0.5))
