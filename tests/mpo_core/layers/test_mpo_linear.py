import pytest
import torch
from torch import nn

from mpo_core import MPOLinear, compression_ratio

from ...conftest import cuda


def make_linear(out_f, in_f, dtype=torch.float64, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, bias=bias).to(dtype)


def forward_backward(module, x, grad_out):
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.backward(grad_out)
    return y.detach(), x.grad


@pytest.mark.parametrize("mode", ["dense", "chain", "auto"])
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("dims", [(48, 40), (37, 29), (64, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_full_bond_layer_equals_dense_incl_gradients(mode, n, dims, bias):
    dense = make_linear(*dims, bias=bias)
    layer = MPOLinear.from_linear(dense, n=n, forward_mode=mode)
    x = torch.randn(3, 5, dims[1], dtype=torch.float64)
    grad_out = torch.randn(3, 5, dims[0], dtype=torch.float64)
    y, gx = forward_backward(layer, x, grad_out)
    y_ref, gx_ref = forward_backward(dense, x, grad_out)
    assert torch.allclose(y, y_ref, atol=1e-10)
    assert torch.allclose(gx, gx_ref, atol=1e-10)
    if bias:
        assert torch.allclose(layer.bias.grad, dense.bias.grad, atol=1e-10)


def test_both_paths_give_the_same_tensor_gradients():
    dense = make_linear(60, 45)
    x = torch.randn(7, 45, dtype=torch.float64)
    grads = []
    for mode in ("dense", "chain"):
        layer = MPOLinear.from_linear(dense, n=4, bond_dims=(3, 10, 2), forward_mode=mode)
        (layer(x) ** 2).sum().backward()
        grads.append([t.grad for t in layer.tensors])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-9)


def test_weight_gradient_matches_dense_through_reconstruction():
    dense = make_linear(32, 24)
    layer = MPOLinear.from_linear(dense, n=3)
    x = torch.randn(5, 24, dtype=torch.float64)
    weight = layer.weight
    weight.retain_grad()
    nn.functional.linear(x, weight, layer.bias).pow(2).sum().backward()
    dense(x).pow(2).sum().backward()
    assert torch.allclose(weight.grad, dense.weight.grad, atol=1e-10)


def test_round_trip_and_truncation():
    dense = make_linear(96, 64, dtype=torch.float32)
    layer = MPOLinear.from_linear(dense)
    back = layer.to_linear()
    assert isinstance(back, nn.Linear) and back.weight.dtype == torch.float32
    assert torch.allclose(back.weight, dense.weight, atol=1e-5)
    assert torch.equal(back.bias, dense.bias)
    small = MPOLinear.from_linear(dense, compression_ratio=0.2)
    assert sum(t.numel() for t in small.tensors) <= 0.2 * dense.weight.numel()
    assert compression_ratio(small.shape, small.bond_dims) <= 0.2


def test_central_and_auxiliary_tensors_and_freezing():
    layer = MPOLinear.from_linear(make_linear(384, 384, dtype=torch.float32))
    sizes = [t.numel() for t in layer.tensors]
    assert layer.central_tensor is layer.tensors[layer.center]
    assert layer.central_tensor.numel() == max(sizes)
    assert len(layer.auxiliary_tensors) == 4
    layer.freeze_central()
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert layer.central_tensor.requires_grad is False
    assert sum(p.numel() for p in trainable) == sum(t.numel() for t in layer.auxiliary_tensors) + 384
    layer(torch.randn(2, 384)).sum().backward()
    assert layer.central_tensor.grad is None
    assert all(t.grad is not None for t in layer.auxiliary_tensors)
    layer.freeze_central(False)
    assert layer.central_tensor.requires_grad


def test_auto_mode_picks_the_cheaper_path():
    layer = MPOLinear.from_linear(make_linear(1536, 384, dtype=torch.float32), compression_ratio=0.05)
    assert layer.uses_chain(1) is True  # one token: pushing it through tiny tensors wins
    full = MPOLinear.from_linear(make_linear(1536, 384, dtype=torch.float32))
    assert full.uses_chain(4096) is False  # a big batch at full bonds: rebuild then one matmul


def test_to_mpo_recovers_spectra_after_training():
    dense = make_linear(40, 30)
    layer = MPOLinear.from_linear(dense, n=3)
    with torch.no_grad():
        layer.tensors[0].add_(0.01)
    mpo = layer.to_mpo()
    assert torch.allclose(mpo.to_matrix(), layer.weight.detach(), atol=1e-10)
    assert mpo.singular_values[0].shape[0] == mpo.bond_dims[0]


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Linear"):
        MPOLinear.from_linear(nn.Conv1d(3, 3, 1))
    layer = MPOLinear.from_linear(make_linear(8, 6))
    with pytest.raises(ValueError, match="last dim 6"):
        layer(torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="forward_mode"):
        MPOLinear.from_linear(make_linear(8, 6), forward_mode="fast")


def test_half_precision_layer_keeps_its_dtype():
    dense = make_linear(32, 16, dtype=torch.bfloat16)
    layer = MPOLinear.from_linear(dense, n=3)
    assert all(t.dtype == torch.bfloat16 for t in layer.tensors)
    assert layer.to_linear().weight.dtype == torch.bfloat16


def test_real_ffn_weight(real_weights):
    weight = real_weights["encoder.layer.3.intermediate.dense.weight"]
    dense = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        dense.weight.copy_(weight)
    layer = MPOLinear.from_linear(dense)
    x = torch.randn(4, 16, weight.shape[1])
    assert torch.allclose(layer(x), dense(x), atol=1e-4)


@cuda
@pytest.mark.parametrize("mode", ["dense", "chain"])
def test_cuda_layer_matches_dense(mode):
    dense = make_linear(96, 64, dtype=torch.float32).cuda()
    layer = MPOLinear.from_linear(dense, forward_mode=mode)
    assert all(t.is_cuda for t in layer.tensors)
    x = torch.randn(8, 64, device="cuda")
    grad_out = torch.randn(8, 96, device="cuda")
    y, gx = forward_backward(layer, x, grad_out)
    y_ref, gx_ref = forward_backward(dense, x, grad_out)
    assert torch.allclose(y, y_ref, atol=1e-4) and torch.allclose(gx, gx_ref, atol=1e-4)
    assert layer.to_linear().weight.is_cuda


def test_no_grad_forward_caches_the_weight_until_a_tensor_changes(monkeypatch):
    import mpo_core.layers.mpo_module as module

    layer = MPOLinear.from_linear(make_linear(48, 40), n=3, forward_mode="dense")
    x = torch.randn(4, 40, dtype=torch.float64)
    calls = []
    original = module.contract_to_matrix
    monkeypatch.setattr(module, "contract_to_matrix", lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.no_grad():
        first = layer(x)
        assert torch.equal(layer(x), first) and len(calls) == 1  # rebuilt once
        layer.tensors[0].mul_(2.0)  # like an optimizer step
        changed = layer(x)
    assert len(calls) == 2 and not torch.allclose(changed, first)
    y = layer(x)  # with autograd: never cached, gradients flow
    y.sum().backward()
    assert layer.tensors[0].grad is not None and len(calls) == 3
