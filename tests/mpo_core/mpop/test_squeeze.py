"""Dimension squeezing's choice and cut (Algorithm 2, lines 4-5) on tiny models, against brute force."""
import copy

import pytest
import torch

from mpo_core.model.mpo_config import MPOConfig
from mpo_core.mpop.squeeze import (
    SqueezeMove, all_moves, apply_move, best_move, candidate_bonds, check_step_size, layer_moves, smallest_cut,
    step_down,
)
from mpo_core.tensor.compression import count_params
from mpo_core.model.surgery import apply_mpo, mpo_modules

from ..tiny_models import tiny_inputs, tiny_model


def trained_tiny_mpo(seed=0):
    """A float64 tiny BERT with full-bond MPOs whose auxiliary tensors moved (as after fine-tuning)."""
    model = tiny_model("bert", seed).double()
    apply_mpo(model, MPOConfig(n=3), progress=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in mpo_modules(model).values():
            for t in module.auxiliary_tensors:
                t.add_(0.05 * torch.randn(t.shape, generator=gen, dtype=t.dtype))
    return model


def true_relative_error(module, bond, after):
    before = module.weight.detach()
    trial = copy.deepcopy(module)
    dims = list(trial.bond_dims)
    dims[bond] = after
    trial.truncate_(dims)
    return float((trial.weight.detach() - before).norm() / before.norm())


def true_params_saved(module, bond, after):
    trial = copy.deepcopy(module)
    dims = list(trial.bond_dims)
    dims[bond] = after
    trial.truncate_(dims)
    return sum(t.numel() for t in module.tensors) - sum(t.numel() for t in trial.tensors)


# rank="error" was the only rule (and the default) before; the default is now the per-parameter rank,
# so both are checked against brute force.
@pytest.mark.parametrize("rank", ["per_param", "error"])
@pytest.mark.parametrize("step_size", [1, 3, 0.25])
def test_the_chosen_cut_is_the_cheapest_by_brute_force(step_size, rank):
    model = trained_tiny_mpo()
    modules = mpo_modules(model)
    moves = all_moves(modules, step_size)
    brute = {(m.name, m.bond): true_relative_error(modules[m.name], m.bond, m.after) for m in moves}
    saved = {(m.name, m.bond): true_params_saved(modules[m.name], m.bond, m.after) for m in moves}
    for move in moves:  # one cut bond in canonical form: Eq. (4) is an equality
        assert move.relative_error == pytest.approx(brute[(move.name, move.bond)], rel=1e-6, abs=1e-10)
        assert move.params_saved == saved[(move.name, move.bond)]
    cost = {key: brute[key] if rank == "error" else brute[key] ** 2 / saved[key] for key in brute if saved[key] > 0}
    best = best_move(moves, rank=rank)
    assert cost[(best.name, best.bond)] == pytest.approx(min(cost.values()), rel=1e-6, abs=1e-14)
    assert len({round(v, 8) for v in brute.values()}) > 1  # a real choice, not a tie everywhere


def test_the_per_parameter_rank_takes_a_big_cheap_embedding_cut_over_a_tiny_attention_cut():
    tiny = SqueezeMove("bert.encoder.layer.0.attention.self.query", 1, 96, 92, 0.5, 0.01, 1_500)
    big = SqueezeMove("bert.embeddings.word_embeddings", 1, 504, 440, 9.0, 0.05, 700_000)
    assert best_move([tiny, big], rank="error") == tiny  # less error, but 0.2 % of what the other removes
    assert best_move([tiny, big]) == big  # 0.05^2 / 700k = 3.6e-9 per parameter vs 0.01^2 / 1.5k = 6.7e-8
    assert best_move([tiny, big], error="absolute") == big  # 81 / 700k vs 0.25 / 1.5k


def test_the_per_parameter_rank_reaches_the_word_embedding_of_a_real_mpo():
    model = trained_tiny_mpo(3)
    modules = mpo_modules(model)
    embedding = "bert.embeddings.word_embeddings"
    assert embedding in modules
    need = count_params(modules[embedding].shape, modules[embedding].bond_dims) // 4
    moves = all_moves(modules, params_to_remove=need)  # only bonds that can give a quarter of the embedding
    assert {m.name for m in moves} >= {embedding}
    assert all(m.params_saved >= need for m in moves)
    assert best_move(moves).params_saved >= need


@pytest.mark.parametrize("share", [0.01, 0.1, 0.3, 0.6])
def test_the_smallest_cut_that_removes_a_share_by_brute_force(share):
    model = trained_tiny_mpo()
    for module in mpo_modules(model).values():
        dims = tuple(module.bond_dims)
        params = count_params(module.shape, dims)
        need = max(1, int(share * params))
        for k in range(len(dims)):
            saving = {d: params - count_params(module.shape, dims[:k] + (d,) + dims[k + 1:]) for d in range(1, dims[k])}
            enough = [d for d, v in saving.items() if v >= need]
            assert smallest_cut(module.shape, dims, k, need) == (max(enough) if enough else None)


def test_a_cut_lowers_one_bond_and_never_raises_any():
    model = trained_tiny_mpo(1)
    modules = mpo_modules(model)
    for _ in range(6):
        before = {name: m.bond_dims for name, m in modules.items()}
        move = best_move(all_moves(modules, 2))
        result = apply_move(modules[move.name], move)
        after = {name: m.bond_dims for name, m in modules.items()}
        for name in modules:
            assert all(a <= b for a, b in zip(after[name], before[name]))
        changed = [name for name in modules if after[name] != before[name]]
        assert changed == [move.name] and after[move.name][move.bond] == move.after
        assert result.error_bound == pytest.approx(move.estimated_error, rel=1e-6)


def test_cut_keeps_the_parameters_and_the_model_runs():
    model = trained_tiny_mpo(2)
    module = next(iter(mpo_modules(model).values()))
    ids = [id(p) for p in module.tensors]
    move = layer_moves("m", module, 1)[0]
    apply_move(module, move)
    assert [id(p) for p in module.tensors] == ids  # optimizer references stay valid
    assert torch.isfinite(model(**tiny_inputs()).logits).all()


def test_central_bonds_and_step_sizes():
    model = trained_tiny_mpo()
    module = next(iter(mpo_modules(model).values()))
    assert candidate_bonds(module, "central") == (module.center - 1, module.center)
    assert candidate_bonds(module) == tuple(range(len(module.bond_dims)))  # "all" is the default now
    assert step_down(10, 3) == 7 and step_down(2, 5) == 1 and step_down(100, 0.25) == 75 and step_down(3, 0.1) == 2
    for bad in (0, -1, 1.5, "2", True, 0.0):
        with pytest.raises(ValueError, match="step_size"):
            check_step_size(bad)
    with pytest.raises(ValueError, match="bonds"):
        candidate_bonds(module, "middle")
    with pytest.raises(ValueError, match="rank"):
        best_move(layer_moves("m", module, 1), rank="size")


def test_no_move_when_every_candidate_bond_is_one():
    model = trained_tiny_mpo()
    modules = mpo_modules(model)
    for module in modules.values():
        module.truncate_([1] * len(module.bond_dims))
    assert all_moves(modules, 1) == [] and all_moves(modules, params_to_remove=1) == [] and best_move([]) is None


def test_apply_move_refuses_a_stale_move():
    model = trained_tiny_mpo()
    module = next(iter(mpo_modules(model).values()))
    move = layer_moves("m", module, 1)[0]
    apply_move(module, move)
    with pytest.raises(ValueError, match="expects"):
        apply_move(module, move)


def test_data_aware_cut_errors_are_the_output_errors_on_the_calibration_data():
    from mpo_core.mpop.squeeze import DataMetric

    model = trained_tiny_mpo(3)
    modules = mpo_modules(model)
    gen = torch.Generator().manual_seed(0)
    moments, rows = {}, {}
    for name, module in modules.items():
        if hasattr(module, "in_features"):
            x = torch.randn(40, module.in_features, generator=gen, dtype=torch.float64) * torch.linspace(
                0.1, 3, module.in_features, dtype=torch.float64)
            moments[name] = x.T @ x
        else:
            rows[name] = torch.rand(module.num_embeddings, generator=gen, dtype=torch.float64) + 0.01
    data = DataMetric(moments, rows, weights={name: 4.0 for name in moments})
    moves = all_moves(modules, step_size=1, data=data)
    assert moves
    for move in moves:
        module = modules[move.name]
        before = module.weight.detach().double()
        trial = copy.deepcopy(module)
        dims = list(trial.bond_dims)
        dims[move.bond] = move.after
        trial.truncate_(dims)
        delta = before - trial.weight.detach().double()
        if move.name in moments:
            expected = 2.0 * float(((delta @ moments[move.name]) * delta).sum().sqrt())  # sqrt(4) from the weight
        else:
            expected = float((delta.square().sum(1) * rows[move.name]).sum().sqrt())
        assert move.estimated_error == pytest.approx(expected, rel=1e-6, abs=1e-9)
    chosen = best_move(moves, error="data", rank="per_param")
    assert chosen == min(moves, key=lambda m: (m.estimated_error ** 2 / m.params_saved, -m.params_saved, m.name,
                                               m.bond))
    with pytest.raises(ValueError, match="nothing for"):
        all_moves(modules, step_size=1, data=DataMetric({}, {}))
