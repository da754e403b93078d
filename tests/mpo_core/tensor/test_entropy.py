import math

import pytest
import torch
from hypothesis import given

from mpo_core import decompose, entanglement_entropy, entropy_of_spectrum, plan_shape

from ..strategies import matrices


@given(matrices(dtypes=(torch.float64, torch.float32)))
def test_entropy_is_between_zero_and_log_bond(case):
    matrix, n = case
    mpo = decompose(matrix, n=n)
    for s_k, d_k in zip(entanglement_entropy(mpo), mpo.bond_dims):
        assert 0.0 <= s_k <= math.log(d_k) + 1e-9


@given(matrices())
def test_rank_one_unfoldings_have_zero_entropy(case):
    matrix, n = case
    shape = plan_shape(*matrix.shape, n=n)
    gen = torch.Generator().manual_seed(matrix.shape[0])
    locals_ = [torch.randn(i, j, generator=gen, dtype=torch.float64) + 2 for i, j in zip(shape.out_factors, shape.in_factors)]
    product = locals_[0]
    for local in locals_[1:]:
        product = torch.kron(product, local)  # every unfolding has rank 1 (all bonds 1)
    mpo = decompose(product, n=n, out_factors=shape.out_factors, in_factors=shape.in_factors)
    assert all(s == pytest.approx(0.0, abs=1e-6) for s in entanglement_entropy(mpo))


def test_entropy_matches_eq6_by_hand():
    values = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    v = values**2 / (values**2).sum()
    assert entropy_of_spectrum(values) == pytest.approx(float(-(v * v.log()).sum()))
    w = values / values.sum()
    assert entropy_of_spectrum(values, squared=False) == pytest.approx(float(-(w * w.log()).sum()))
    assert entropy_of_spectrum(torch.ones(8)) == pytest.approx(math.log(8))


def test_central_bonds_carry_the_most_entropy(real_weights):
    mpo = decompose(real_weights["encoder.layer.0.attention.self.query.weight"], n=5)
    entropy = entanglement_entropy(mpo)
    assert max(entropy) in (entropy[mpo.center - 1], entropy[mpo.center])


def test_kept_spectrum_entropy_shrinks_with_bond():
    mpo = decompose(torch.randn(64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), n=3)
    full = entanglement_entropy(mpo)
    cut = entanglement_entropy(mpo, (1, 2))
    assert cut[0] == 0.0 and cut[1] <= full[1]


def test_real_weights_have_nonnegative_bounded_entropy(real_weights):
    for weight in real_weights.values():
        mpo = decompose(weight, n=5)
        for s_k, d_k in zip(entanglement_entropy(mpo), mpo.bond_dims):
            assert 0.0 <= s_k <= math.log(d_k) + 1e-6
