import math

import numpy as np
import pytest
import torch
from torch import nn

from mpo_core.opf.growth import MAX_TENSORS, growth_of, plan_growth_factors
from mpo_core.layers import MPOLinear

pytestmark = pytest.mark.usefixtures("single_blas_thread")

BERT_SHAPES = [(384, 384), (1536, 384), (384, 1536)]  # MiniLM's attention and FFN matrices


@pytest.mark.parametrize("growth", [2, 4, 9])
@pytest.mark.parametrize("shape", BERT_SHAPES)
def test_integer_growth_is_exact_with_the_fewest_tensors(shape, growth):
    out_factors, in_factors = plan_growth_factors(*shape, growth)
    assert (math.prod(out_factors), math.prod(in_factors)) == shape  # exact divisors, no padding
    assert growth_of(out_factors, in_factors) == growth  # sqrt(IJ) is a divisor product: r = 1
    assert len(out_factors) == growth  # 1 + (m + 1) r with r = 1 needs m = growth - 2 middle sites
    assert set(out_factors[1:-1]) <= {1} and set(in_factors[1:-1]) <= {1}


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
@pytest.mark.parametrize("growth", [2, 4, 9])
@pytest.mark.parametrize("shape", BERT_SHAPES[:2])
def test_the_built_layer_holds_growth_times_the_parameters_and_is_lossless(shape, growth):
    torch.manual_seed(0)
    linear = nn.Linear(shape[1], shape[0])
    out_factors, in_factors = plan_growth_factors(*shape, growth)
    layer = MPOLinear.from_linear(linear, out_factors=out_factors, in_factors=in_factors)
    assert sum(t.numel() for t in layer.tensors) == growth * linear.weight.numel()
    with torch.no_grad():
        assert torch.allclose(layer.weight, linear.weight, atol=1e-5)


@pytest.mark.parametrize("growth", [1, 1.3, 2.5, 4, 7.7])
@pytest.mark.parametrize("shape", [(12, 18), (7, 7), (30, 20)])
def test_growth_of_counts_the_tensors_a_decomposition_makes(shape, growth):
    out_factors, in_factors = plan_growth_factors(*shape, growth)
    layer = MPOLinear.from_linear(nn.Linear(shape[1], shape[0]), out_factors=out_factors, in_factors=in_factors)
    assert sum(t.numel() for t in layer.tensors) == pytest.approx(growth_of(out_factors, in_factors) * math.prod(shape))


@pytest.mark.parametrize("shapes, tolerance, below_two", [
    ([(384, 384), (1536, 384), (768, 768), (3072, 768)], 0.026, 0.008),
    ([(512, 512), (2048, 512)], 0.053, 0.02),
])
@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_documented_precision(shapes, tolerance, below_two):
    for shape in shapes:
        for growth in np.arange(1.0, 30.0, 0.1):
            error = abs(growth_of(*plan_growth_factors(*shape, float(growth))) - growth) / growth
            assert error <= (below_two if growth < 2 else tolerance), (shape, growth)


@pytest.mark.parametrize("shape, growth, factors", [
    ((768, 768), 8.875, (32, *[1] * 13, 24)),  # the reference's BERT-base shape (notes: "about 8.9x")
    ((512, 512), 4.5, (32, *[1] * 13, 16)),  # and its BERT-small shape
])
def test_reference_shapes_are_found(shape, growth, factors):
    assert plan_growth_factors(*shape, growth) == (factors, factors)


def test_ties_go_to_fewer_tensors():
    # 384x384 reaches 4x both with r = 1, m = 2 and with A_0 = 192 (r = 1/4), m = 11
    assert growth_of((12, *[1] * 11, 32), (16, *[1] * 11, 24)) == 4.0
    assert len(plan_growth_factors(384, 384, 4)[0]) == 4
    assert len(plan_growth_factors(384, 384, 1)[0]) == 2  # growth 1: the plain split closest to W's size
    assert growth_of(*plan_growth_factors(384, 384, 1)) == pytest.approx(1, abs=1e-4)


def test_planning_is_deterministic():
    assert plan_growth_factors(1536, 384, 3.3) == plan_growth_factors(1536, 384, 3.3)


@pytest.mark.parametrize("growth", [0.5, 0, -2, float("nan"), float("inf"), "4", True, None])
def test_bad_growth_is_refused(growth):
    with pytest.raises(ValueError, match="growth"):
        plan_growth_factors(384, 384, growth)


def test_unreachable_growth_and_chain_length_are_refused():
    assert len(plan_growth_factors(384, 384, MAX_TENSORS)[0]) == MAX_TENSORS
    with pytest.raises(ValueError, match="out of reach.*at most 32.000x"):
        plan_growth_factors(384, 384, MAX_TENSORS + 1)
    with pytest.raises(ValueError, match="out of reach.*4 tensors"):
        plan_growth_factors(384, 384, 9, max_tensors=4)
    with pytest.raises(ValueError, match="at most 32"):
        plan_growth_factors(384, 384, 2, max_tensors=40)
    with pytest.raises(ValueError, match="no two-site MPO split"):
        plan_growth_factors(1, 7, 2)


def test_growth_of_checks_its_factors():
    assert growth_of((4, 4), (4, 4)) == 2.0  # d = 16: 16 * (16 + 16) / 256
    with pytest.raises(ValueError, match="same length"):
        growth_of((4, 4), (16,))
    with pytest.raises(ValueError, match="positive ints"):
        growth_of((4, 0), (4, 4))
