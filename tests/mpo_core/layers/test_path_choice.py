"""The plan an MPO layer runs: flops where they decide, timed candidates where they do not, cached per key."""
import pytest
import torch
from torch import nn

from mpo_core import set_inference_memory
from mpo_core.layers import MPOLinear
from mpo_core.layers import path_choice
from mpo_core.layers.path_choice import candidates, choose_plan, clear_choices, token_bucket
from mpo_core.tensor.chain_plan import ChainPlan
from mpo_core.tensor.decomposition import decompose
from mpo_core.tensor.shape import MPOShape
from mpo_core.tensor.truncation import truncate


def chain_of(shape, bonds, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = (1, *bonds, 1)
    return [torch.randn(d[k], i, j, d[k + 1], generator=gen) for k, (i, j) in enumerate(zip(shape.out_factors,
                                                                                           shape.in_factors))]


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch):
    monkeypatch.delenv("MPO_PATH_CHOICE", raising=False)
    clear_choices()
    yield
    clear_choices()


def test_token_buckets_are_powers_of_two():
    assert [token_bucket(t) for t in (0, 1, 3, 5, 1000, 1500)] == [1, 1, 4, 4, 1024, 2048]


def test_flops_decide_clear_cases_without_timing():
    big = MPOShape(4096, 4096, (16, 16, 16), (16, 16, 16))
    low = candidates(big, (2, 2), 1, 1024, merged_kept=True)
    assert low[0] == ChainPlan.chain(3) or not low[0].is_dense  # tiny bonds: a sweep, far below the dense flops
    full = candidates(big, (256, 256), 1, 1024, merged_kept=True)
    assert full == [ChainPlan.dense(3)]  # full bonds: nothing else comes near the one matmul
    choice = choose_plan(chain_of(MPOShape(8, 8, (2, 4), (4, 2)), (3,)), MPOShape(8, 8, (2, 4), (4, 2)), 1, 16,
                         training=False, merged_kept=True)
    assert choice.how == "flops"  # too small to time


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_ambiguous_cases_are_timed_and_the_fastest_wins():
    shape = MPOShape(4096, 4096, (16, 16, 16), (16, 16, 16))
    tensors = chain_of(shape, (8, 8))
    choice = choose_plan(tensors, shape, 1, 256, training=False, merged_kept=True)
    assert choice.how == "timed" and len(choice.seconds) >= 2
    fastest = min(choice.seconds, key=lambda kv: kv[1])[0]
    assert str(choice.plan) == fastest
    assert choose_plan(tensors, shape, 1, 300, training=False, merged_kept=True) is choice  # same bucket: cached
    again = choose_plan(chain_of(shape, (8, 7)), shape, 1, 256, training=False, merged_kept=True)
    assert again is not choice  # other bonds: a new choice


def test_the_environment_switches_timing_off(monkeypatch):
    monkeypatch.setenv("MPO_PATH_CHOICE", "flops")
    shape = MPOShape(4096, 4096, (16, 16, 16), (16, 16, 16))
    choice = choose_plan(chain_of(shape, (8, 8)), shape, 1, 256, training=True, merged_kept=False)
    assert choice.how == "flops" and choice.seconds == ()


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_training_times_forward_and_backward_without_touching_the_layer():
    shape = MPOShape(4096, 4096, (16, 16, 16), (16, 16, 16))
    tensors = [t.requires_grad_() for t in chain_of(shape, (8, 8))]
    tensors[1].requires_grad_(False)  # a frozen central tensor, as in LFA
    choice = choose_plan(tensors, shape, 1, 256, training=True, merged_kept=False)
    assert choice.how == "timed"
    assert all(t.grad is None for t in tensors)


def layer(bonds=(4, 6, 6, 4), seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(96, 80)
    mpo = truncate(decompose(linear.weight.detach(), n=5), bonds).mpo
    return MPOLinear(mpo, linear.bias)


def test_compact_inference_keeps_no_dense_copy():
    mpo_layer = layer()
    x = torch.randn(64, 96)
    with torch.no_grad():
        fast = mpo_layer(x)
        assert mpo_layer.path_for(64).plan.is_dense and mpo_layer.has_cached_weight()
        assert set_inference_memory(nn.Sequential(mpo_layer), "compact") == 1
        assert not mpo_layer.has_cached_weight()
        compact = mpo_layer(x)
        assert not mpo_layer.has_cached_weight()
    assert torch.allclose(fast, compact, atol=1e-6)
    with pytest.raises(ValueError, match="inference_memory"):
        mpo_layer.set_inference_memory("small")


@pytest.mark.parametrize("mode", ["dense", "chain", "auto"])
def test_every_forward_mode_gives_the_same_output_and_gradients(mode):
    reference = layer()
    reference.forward_mode = "dense"
    other = layer()
    other.forward_mode = mode
    x = torch.randn(3, 7, 96)
    y_ref, y = reference(x), other(x)
    assert torch.allclose(y, y_ref, atol=1e-5)
    y_ref.sum().backward()
    y.sum().backward()
    for a, b in zip(reference.tensors, other.tensors):
        assert torch.allclose(a.grad, b.grad, atol=1e-4)
    if mode == "chain":
        assert not other.path_for(21).plan.is_dense


def test_a_cut_invalidates_the_kept_merged_tensors():
    mpo_layer = layer(bonds=(2, 2, 2, 2))
    mpo_layer.forward_mode = "chain"
    x = torch.randn(5, 96)
    with torch.no_grad():
        mpo_layer(x)
        assert mpo_layer._cached_merged is not None
        mpo_layer.truncate_((1, 2, 2, 1))
        assert mpo_layer._cached_merged is None
        assert torch.allclose(mpo_layer(x), x @ mpo_layer.weight.T + mpo_layer.bias, atol=1e-5)


def test_the_choice_module_keeps_its_constants_sane():
    assert path_choice.AMBIGUOUS > 1 and path_choice.MAX_TIMED >= 2 and 0 < path_choice.SWEEP_EFFICIENCY <= 1
