import pytest
import torch
from torch import nn
from transformers import TrainerCallback

from mpo_core.training.fine_tune import fine_tune
from mpo_core.layers import MPOLinear
from mpo_core.opf.strategy import OPFCallback, OPFStrategy, make_opf, swap_in_optimizer
from mpo_core.model.parameter_count import parameter_summary
from mpo_core.runs.run_folder import read_metrics
from mpo_core.training.strategies import get_strategy
from mpo_core.model.surgery import mpo_modules

from ..training.test_fine_tune import small
from .test_fisher import real_model_and_batches, tiny_batches
from ..tiny_models import tiny_inputs, tiny_model

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def total_params(model) -> int:
    return parameter_summary(model)["total_params"]


def trainer_like_optimizer(model):
    """AdamW with the Trainer's two groups: matrices decay, biases and LayerNorms do not."""
    decay = [p for n, p in model.named_parameters() if "bias" not in n and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-3)


def optimizer_ids(optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def test_registry_and_option_checks():
    strategy = get_strategy("opf", growth=2, top_n=1)
    assert isinstance(strategy, OPFStrategy) and strategy.growth == 2.0
    with pytest.raises(ValueError, match="opf has no option 'mpo_config'; its options: growth, selection"):
        get_strategy("opf", growth=2, mpo_config=None)
    for options, message in [
        ({"growth": 0.5}, "growth must be >= 1"), ({"growth": "big"}, "growth must be a finite number"),
        ({"selection": "random"}, "selection must be one of"), ({"top_n": 0}, "top_n must be a positive int"),
        ({"stages": 0}, "stages must be a positive int"), ({"fisher_batches": 0}, "fisher_batches"),
        ({"groups": ("word_embedding",)}, "groups must be a non-empty selection"),
        ({"selection": "dynamic", "top_n": 2, "stages": 3}, "stages=3 needs top_n >= 3"),
    ]:
        with pytest.raises(ValueError, match=message):
            make_opf(**options)


def test_model_checks():
    with pytest.raises(ValueError, match="group 'query' has only 2 matrices.*top_n <= 2"):
        make_opf(top_n=3).prepare(tiny_model("bert"), progress=False)
    with pytest.raises(ValueError, match="has no nn.Linear matrices of groups"):
        make_opf().prepare(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), progress=False)
    with pytest.raises(ValueError, match="group 'ffn_in' has only 0"):
        make_opf(top_n=1, groups=("query", "ffn_in")).prepare(nn.ModuleDict({"query": nn.Linear(4, 4)}))


def test_distributed_runs_and_resuming_are_refused(monkeypatch):
    strategy = make_opf(top_n=1)
    with pytest.raises(ValueError, match="cannot be resumed"):
        strategy.restore(tiny_model("bert"), run=None)
    state = type("State", (), {"global_step": 4, "max_steps": 8})()
    with pytest.raises(ValueError, match="cannot be resumed"):
        OPFCallback(strategy).on_train_begin(None, state, None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="single process"):
        strategy.prepare(tiny_model("bert"), progress=False)


@pytest.mark.parametrize("options, max_steps, expected", [
    ({"selection": "static", "top_n": 2}, 10, [(0, 2)]),
    ({"selection": "dynamic", "top_n": 2, "stages": 2}, 6, [(0, 1), (3, 1)]),
    ({"selection": "dynamic", "top_n": 4, "stages": 3}, 10, [(0, 2), (3, 2), (6, 0)]),  # ceil(4/3) = 2 a stage
    ({"selection": "dynamic", "top_n": 2, "stages": 2}, 1, [(0, 1), (0, 1)]),  # shorter than the stages
])
def test_schedule(options, max_steps, expected):
    assert make_opf(**options).schedule(max_steps) == expected


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("growth", [2, 4, 9])
def test_growth_per_matrix_total_params_and_lossless_merge(tmp_path, growth):
    model, batches = real_model_and_batches(tmp_path, num_batches=1)
    model.eval()
    with torch.no_grad():
        dense = model(**batches[0]).logits
    strategy = make_opf(growth=growth, top_n=1)
    strategy.prepare(model, progress=False)
    before = total_params(model)
    names = strategy.grow(model, None, batches, count=1)
    grown = mpo_modules(model)
    assert sorted(grown) == sorted(names) and len(names) == 6  # one per group
    sizes = {name: m.in_features * m.out_features for name, m in grown.items()}
    assert {tuple(m.weight.shape) for m in grown.values()} == {(384, 384), (1536, 384), (384, 1536)}
    for name, module in grown.items():  # exact: sqrt(IJ) is a divisor product for these shapes
        assert sum(t.numel() for t in module.tensors) == growth * sizes[name]
        assert strategy.matrix_growth[name] == growth
    assert total_params(model) == before + (growth - 1) * sum(sizes.values())
    with torch.no_grad():
        over = model(**batches[0]).logits
    strategy.finish(model)
    assert not mpo_modules(model) and total_params(model) == before
    with torch.no_grad():
        merged = model(**batches[0]).logits
    assert (merged - over).abs().max() <= 1e-4 and (over - dense).abs().max() <= 1e-4
    results = strategy.results()["opf"]
    assert results["total_params_after_merge"] == results["total_params_before"] == before
    assert results["max_total_params"] == before + (growth - 1) * sum(sizes.values())


def test_grown_tensors_replace_the_weight_in_its_optimizer_group():
    model = tiny_model("bert").train()
    optimizer = trainer_like_optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 10)
    labels = torch.tensor([0, 2])
    model(**tiny_inputs(), labels=labels).loss.backward()
    optimizer.step(), scheduler.step(), optimizer.zero_grad()
    strategy = make_opf(growth=3, top_n=1, groups=("query",))
    strategy.prepare(model, progress=False)
    state_before = len(optimizer.state)
    [chosen] = strategy.grow(model, optimizer, tiny_batches(), count=1)
    new = model.get_submodule(chosen)
    assert isinstance(new, MPOLinear)
    decay, no_decay = ({id(p) for p in group["params"]} for group in optimizer.param_groups)
    assert all(id(t) in decay for t in new.tensors)  # same group as the weight: same lr and weight decay
    assert id(new.bias) in no_decay and optimizer_ids(optimizer) == {id(p) for p in model.parameters()}
    assert len(optimizer.state) == state_before - 1  # the replaced weight's moments are gone
    snapshot = [t.detach().clone() for t in new.tensors]
    model(**tiny_inputs(), labels=labels).loss.backward()
    optimizer.step(), scheduler.step()
    assert all(not torch.equal(a, t) for a, t in zip(snapshot, new.tensors))
    assert all("exp_avg" in optimizer.state[t] for t in new.tensors)


def test_swap_works_through_a_wrapper_and_refuses_strangers():
    class Wrapped:  # what accelerate's AcceleratedOptimizer exposes
        def __init__(self, optimizer):
            self.optimizer = optimizer

        param_groups = property(lambda self: self.optimizer.param_groups)
        state = property(lambda self: self.optimizer.state)

    old, kept, new = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    inner = torch.optim.SGD([{"params": [kept]}, {"params": [old]}], lr=0.1)
    swap_in_optimizer(Wrapped(inner), old, [new])
    assert [g["params"] for g in inner.param_groups] == [[kept], [new]]
    with pytest.raises(ValueError, match="does not hold the replaced weight"):
        swap_in_optimizer(inner, old, [new])


class Probe(TrainerCallback):
    """Watches the model the Trainer trains: MPO layers per step, optimizer membership, tensor updates."""

    def __init__(self):
        self.mpo_per_step, self.snapshot, self.optimizer_type = {}, {}, None
        self.in_optimizer = self.changed = self.has_state = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):  # after OPF's
        self.optimizer_type = type(optimizer).__name__
        self.snapshot = {id(t): t.detach().clone() for m in mpo_modules(model).values() for t in m.tensors}

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.mpo_per_step[state.global_step] = len(mpo_modules(model))

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):  # before the merge
        tensors = [t for m in mpo_modules(model).values() for t in m.tensors]
        self.in_optimizer = optimizer_ids(optimizer) == {id(p) for p in model.parameters()}
        self.changed = all(not torch.equal(self.snapshot[id(t)], t) for t in tensors if id(t) in self.snapshot)
        self.has_state = all("exp_avg" in optimizer.state[t] for t in tensors)


def opf_config(tmp_path, **options):
    return small(tmp_path, strategy="opf", max_steps=6, max_train_examples=256, max_eval_examples=64, batch_size=16,
                 logging_steps=3, strategy_options={"growth": 4.0, "fisher_batches": 4, **options})


@pytest.mark.slow  # real training
def test_static_fine_tuning_trains_the_grown_tensors_and_merges_back(tmp_path):
    config = opf_config(tmp_path, selection="static", top_n=1)
    probe = Probe()
    results = fine_tune(config, callbacks=[probe])
    assert probe.optimizer_type == "AcceleratedOptimizer"  # the Trainer's wrapper, swapped through
    assert len(probe.snapshot) > 0 and probe.in_optimizer and probe.changed and probe.has_state
    assert set(probe.mpo_per_step.values()) == {6}
    records = read_metrics(tmp_path / config.run_name)
    [selection] = [r for r in records if r["kind"] == "opf_selection"]
    assert selection["step"] == 0 and selection["stage"] == 0 and len(selection["chosen"]) == 6
    [merge] = [r for r in records if r["kind"] == "opf_merge"]
    assert merge["merged"] == 6 and merge["total_params"] == selection["params_before"]["total_params"]
    assert len(selection["scores"]) == 12 and len(set(selection["scores"].values())) == 12
    opf = results["opf"]
    assert opf["chosen"] == [selection["chosen"]]
    grown = opf["max_total_params"] - opf["total_params_before"]
    assert grown == 3 * (4 * 384 * 384 + 2 * 1536 * 384)  # growth 4: (4 - 1) I J more for each of the 6
    assert results["total_params"] == opf["total_params_after_merge"] == opf["total_params_before"]
    assert results["bond_dims"] == {} and results["score"] is not None
    assert set(opf["matrix_growth"].values()) == {4.0}
    with pytest.raises(FileExistsError, match="has finished"):
        fine_tune(config, resume=True)
    (tmp_path / config.run_name / "results.json").unlink()  # as if it had been killed before the end
    with pytest.raises(ValueError, match="cannot be resumed"):
        fine_tune(config, resume=True)


@pytest.mark.slow  # real training
def test_dynamic_fine_tuning_adds_matrices_at_stage_boundaries(tmp_path):
    config = opf_config(tmp_path, selection="dynamic", top_n=2, stages=2)
    probe = Probe()
    results = fine_tune(config, callbacks=[probe])
    assert probe.mpo_per_step == {0: 6, 1: 6, 2: 6, 3: 12, 4: 12, 5: 12}
    assert probe.in_optimizer and probe.changed and probe.has_state  # stage-0 tensors keep training
    selections = [r for r in read_metrics(tmp_path / config.run_name) if r["kind"] == "opf_selection"]
    assert [(r["step"], r["stage"], len(r["chosen"])) for r in selections] == [(0, 0, 6), (3, 1, 6)]
    first, second = selections
    assert set(second["scores"]) == set(first["scores"]) - set(first["chosen"])  # only the still-dense ones
    assert second["params_before"] == first["params_after"]
    opf = results["opf"]
    assert opf["chosen"] == [first["chosen"], second["chosen"]] and opf["stages"] == 2
    assert opf["max_total_params"] == second["params_after"]["total_params"]
    assert results["total_params"] == opf["total_params_before"]
    assert len(opf["matrix_growth"]) == 12 and set(opf["matrix_growth"].values()) == {4.0}
