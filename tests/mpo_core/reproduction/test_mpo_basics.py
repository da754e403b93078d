"""MPO basics (experiment ``mpo_basics``): Algorithm 1 and Eqs. (1)-(6) on real MiniLM weights, small mode."""
import math

import pytest

from mpo_core.reproduction import mpo_basics, results_store


@pytest.fixture(scope="module")
def results(tmp_path_factory, single_blas_thread):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("results")
        patch.setenv("MPO_RESULTS_DIR", str(folder))
        mpo_basics.run("small")
        yield results_store.load_results("mpo_basics", "small")  # what the notebook reads back


def test_run_writes_the_table_and_its_record(results):
    assert results is not None and results.mode == "small"
    settings = results.meta["settings"]
    assert len(results.meta["records"]) == len(settings["matrices"])
    assert len(results.table) == len(settings["matrices"]) * (len(settings["ratios"]) + len(settings["fractions"]))
    assert "reductions" in settings and results.meta["command"].endswith("mpo_basics --mode small")


def test_full_bonds_reconstruct_the_matrix_and_follow_eq2(results):
    for record in results.meta["records"]:
        assert record["exact_relative_error"] < mpo_basics.EXACT_TOLERANCE
        assert record["algorithm1_exact_error"] / record["norm"] < mpo_basics.EXACT_TOLERANCE
        steps = record["algorithm1_steps"]
        assert [s["rank"] for s in steps] == [s["eq2_bond_dim"] for s in steps] == record["full_bond_dims"]
        assert record["full_compression_ratio"] > 1  # an exact MPO is larger than the matrix (Eq. (5), rho > 1)


def test_the_eq4_bound_is_never_below_the_true_error(results):
    table = results.table
    assert table["bound_holds"].all()
    assert (table["true_error"] <= table["error_bound"] * (1 + mpo_basics.ROUNDING)).all()
    assert (table["error_bound_paper"] >= table["error_bound"]).all()  # the printed Eq. (3) is looser
    uniform = table[table["sweep"] == "uniform"]
    assert (uniform["error_bound"] > uniform["true_error"] * 1.01).all()  # several cut bonds: strict


def test_truncation_matches_algorithm1_run_verbatim(results):
    table = results.table
    assert ((table["algorithm1_error"] - table["true_error"]).abs() <= 1e-4 * table["true_error"]).all()


def test_errors_fall_as_the_ratio_grows(results):
    greedy = mpo_basics.sweep_table(results, "ratio")
    for _, part in greedy.groupby("matrix"):
        part = part.sort_values("target")
        assert (part["compression_ratio"] <= part["target"] + 1e-12).all()
        assert part["true_error"].is_monotonic_decreasing


def test_entropy_is_within_its_range_and_shares_sum_to_one(results):
    entropy = mpo_basics.entropy_table(results)
    assert ((entropy["S_k (Eq. 6)"] >= 0) & (entropy["S_k (Eq. 6)"] <= entropy["ln d_k"] + 1e-9)).all()
    shares = results.table["central_share"] + results.table["auxiliary_share"]
    assert shares.sub(1).abs().max() < 1e-12
    matrices = mpo_basics.matrices_table(results)
    assert (matrices["central share"] + matrices["auxiliary share"]).sub(1).abs().max() < 1e-12


def test_notebook_helpers_have_their_shapes(results):
    claims = mpo_basics.side_by_side(results)
    assert list(claims.columns) == ["equation", "paper", "ours", "holds"]
    assert len(claims) == len(mpo_basics.PAPER_CLAIMS) and claims["holds"].all()
    n = results.meta["settings"]["n"]
    assert len(mpo_basics.algorithm1_table(results)) == n - 1
    assert len(mpo_basics.matrices_table(results)) == len(results.meta["records"])
    assert f"{len(claims)} of {len(claims)} statements" in mpo_basics.summary(results)
    assert len(mpo_basics.figure(results).data) >= 4 * len(results.meta["records"])
    with pytest.raises(KeyError, match="choose one of"):
        mpo_basics.algorithm1_table(results, "no such matrix")


def test_uniform_bond_dims_and_modes():
    assert mpo_basics.uniform_dims((12, 192, 128, 8), 0.5) == (6, 96, 64, 4)
    assert mpo_basics.uniform_dims((12, 192), 0.01) == (1, 2)
    full = mpo_basics.mode_settings("full")
    assert all(rows == 0 for _, rows in full["matrices"])  # full mode: whole matrices
    with pytest.raises(ValueError, match="small, full or gpu"):
        mpo_basics.mode_settings("huge")
    assert math.isclose(max(full["ratios"]), 0.8)
