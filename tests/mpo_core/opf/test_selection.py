"""The static / dynamic selection plan: the schedule, the choice per stage, and what OPFStrategy grows."""
import pytest

from mpo_core.model.parameter_count import parameter_summary
from mpo_core.opf.fisher import fisher_scores, select_top
from mpo_core.opf.selection import (
    candidate_matrices, check_top_n, choose, plan_selection, schedule, still_dense,
)
from mpo_core.opf.strategy import OPF_GROUPS, make_opf

from ..tiny_models import tiny_model
from .test_fisher import tiny_batches

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def step0(model, batches):
    """Scores, groups, shapes and #To of every candidate of the dense model: a plan's input."""
    groups = candidate_matrices(model, OPF_GROUPS)
    scores = fisher_scores(model, batches, groups, max_grad_norm=None)
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in groups}
    return scores, groups, shapes, parameter_summary(model)["total_params"]


@pytest.mark.parametrize("options, max_steps", [
    ({"selection": "static", "top_n": 2}, 10), ({"selection": "dynamic", "top_n": 2, "stages": 2}, 6),
    ({"selection": "dynamic", "top_n": 4, "stages": 3}, 10), ({"selection": "dynamic", "top_n": 2, "stages": 2}, 1),
])
def test_the_strategy_follows_the_schedule(options, max_steps):
    strategy = make_opf(**options)
    assert strategy.schedule(max_steps) == schedule(strategy.top_n, strategy.num_stages, max_steps)
    assert sum(count for _, count in schedule(strategy.top_n, strategy.num_stages, max_steps)) == strategy.top_n


def test_choose_ranks_only_the_still_dense():
    groups = {"a": "query", "b": "query", "c": "key", "d": "key"}
    scores = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 5.0}
    assert choose(scores, groups, 1) == select_top(scores, groups, 1) == ["a", "d"]
    assert still_dense(groups, ["a", "d"]) == {"b": "query", "c": "key"}
    assert choose(scores, still_dense(groups, ["a", "d"]), 1) == ["b", "c"]
    layer = "bert.encoder.layer.{}.attention.{}"
    two_queries = {layer.format(0, "self.query"): "query", layer.format(1, "self.query"): "query",
                   layer.format(0, "self.key"): "key"}
    with pytest.raises(ValueError, match=r"only 1 matrices per group \(2 layers\); choose top_n <= 1"):
        check_top_n(two_queries, 2)
    check_top_n(two_queries, 1)


def test_static_plan_is_what_the_strategy_grows():
    model, batches = tiny_model("bert"), tiny_batches()
    scores, groups, shapes, total = step0(model, batches)
    [stage] = plan_selection(scores, groups, shapes, total, top_n=2, num_stages=1, growth=4.0, max_steps=10)
    strategy = make_opf(growth=4.0, top_n=2, selection="static")
    strategy.prepare(model, progress=False)
    assert strategy.candidates == groups
    [(step, count)] = strategy.schedule(10)
    grown = strategy.grow(model, None, batches, count, stage=0, step=step, max_grad_norm=None)
    assert (stage.stage, stage.step, stage.estimate) == (0, 0, False) and list(stage.chosen) == grown
    assert stage.total_params == parameter_summary(model)["total_params"]  # the plan counts as the growth does
    assert not set(candidate_matrices(model, OPF_GROUPS)) & set(grown)  # grown matrices are candidates no more


def test_dynamic_plan_is_what_the_strategy_grows_stage_by_stage():
    """Without training between stages (growth is exact, no clipping), re-scoring ranks the rest as at step 0."""
    model, batches = tiny_model("bert"), tiny_batches()
    scores, groups, shapes, total = step0(model, batches)
    plan = plan_selection(scores, groups, shapes, total, top_n=2, num_stages=2, growth=2.0, max_steps=8)
    strategy = make_opf(growth=2.0, top_n=2, stages=2, selection="dynamic")
    strategy.prepare(model, progress=False)
    for stage, (step, count) in zip(plan, strategy.schedule(8)):
        grown = strategy.grow(model, None, batches, count, step=step, max_grad_norm=None)
        assert list(stage.chosen) == grown and stage.step == step
        assert stage.total_params == parameter_summary(model)["total_params"]
    assert [s.estimate for s in plan] == [False, True]
    assert set(plan[0].chosen) | set(plan[1].chosen) == set(select_top(scores, groups, 2))
