"""Unit tests of app/compare.py (Figure 2 back end): keys, disk cache, background task, figure."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from app import compare, decompose
from mpo_core.tensor.baselines import COLUMNS, error_vs_ratio
from mpo_core.tensor.shape import plan_shape

ROOT = Path(__file__).resolve().parents[2]
QUERY = "encoder.layer.0.attention.self.query.weight"  # 384 x 384
RANDOM = decompose.MatrixSource(kind="random", rows=48, cols=40, seed=1, decay=1.0)
FAST = dict(n_iter_max=20)  # CPD / Tucker iterations that keep these tests quick
pytestmark = pytest.mark.filterwarnings("ignore:Trying to compute SVD with n_eigenvecs")


def settings(**changes) -> compare.CompareSettings:
    return compare.CompareSettings(**{"source": RANDOM, "ratios": (0.1, 0.3), "n_values": (3, 5), **FAST, **changes})


@pytest.fixture(scope="module")
def matrix():
    return compare.load_matrix(RANDOM)


@pytest.fixture(scope="module")
def computed(tmp_path_factory, matrix):
    """Every method at n = 3, 5 on the random matrix, written to a module cache folder, with the progress calls."""
    folder = tmp_path_factory.mktemp("compare")
    calls = []
    result = compare.compute_or_load(settings(), lambda *call: calls.append(call), matrix=matrix, folder=folder)
    return folder, result, calls


def test_compare_does_not_import_streamlit():
    assert "streamlit" not in vars(compare)
    assert "import streamlit" not in Path(compare.__file__).read_text()


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("text, ratios", [("0.1, 0.2", (0.1, 0.2)), ("0.3 0.05;0.1", (0.3, 0.05, 0.1)), ("1", (1.0,))])
def test_parse_ratios(text, ratios):
    assert compare.parse_ratios(text) == ratios


@pytest.mark.parametrize("text, message", [("", "no compression ratios"), ("0.1, abc", "'abc' is not a number")])
def test_parse_ratios_errors_say_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        compare.parse_ratios(text)


def test_settings_normalize_ratios_methods_and_n():
    s = settings(ratios=(0.3, 0.1, 0.3), methods=("svd", "mpo", "svd"), n_values=(5, 3, 5))
    assert s.ratios == (0.1, 0.3) and s.methods == ("svd", "mpo") and s.n_values == (3, 5)
    assert s == settings(methods=("svd", "mpo")) and hash(s) == hash(settings(methods=("svd", "mpo")))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ratios": (0.1, 1.5)}, r"\(0, 1\]"), ({"ratios": ()}, r"\(0, 1\]"), ({"ratios": (0.0,)}, r"\(0, 1\]"),
        ({"methods": ()}, "non-empty selection"), ({"methods": ("mpo", "pca")}, "non-empty selection"),
        ({"n_values": (1,)}, "n values"), ({"n_values": (12,)}, "n values"), ({"n_values": ()}, "no n selected"),
        ({"n_iter_max": 0}, "n_iter_max"), ({"max_rows": -1}, "max_rows"), ({"tol": -1.0}, "tol"),
        ({"source": decompose.MatrixSource(kind="image", name="x.png", image=b"x")}, "packaged weight or a random"),
    ],
)
def test_bad_settings_raise_a_value_error_a_user_can_act_on(changes, message):
    with pytest.raises(ValueError, match=message):
        settings(**changes)


def test_svd_alone_needs_no_n():
    assert compare.curves(settings(methods=("svd",), n_values=())) == (compare.Curve("svd", 2),)


def test_curves_one_svd_and_one_per_method_and_n():
    labels = [c.label for c in compare.curves(settings(n_values=(2, 3, 7)))]
    assert labels == ["SVD", "MPO n=3", "MPO n=7", "CPD n=2", "CPD n=3", "CPD n=7",
                      "Tucker n=2", "Tucker n=3", "Tucker n=7"]  # the n=2 MPO is the SVD, listed once


def test_options_are_those_each_method_depends_on():
    s = settings()
    assert s.options("mpo") == s.options("svd") == {}
    assert set(s.options("cpd")) == {"n_iter_max", "tol", "random_state", "max_bytes"}
    assert set(s.options("tucker")) == {"n_iter_max", "tol", "random_state"}


# --------------------------------------------------------------------------- matrix and keys
def test_load_matrix_crops_rows_of_a_real_weight():
    full = compare.load_matrix(decompose.MatrixSource(kind="model", name=QUERY))
    cropped = compare.load_matrix(decompose.MatrixSource(kind="model", name=QUERY), max_rows=96)
    assert full.shape == (384, 384) and cropped.shape == (96, 384)
    assert torch.equal(cropped, full[:96])
    assert compare.load_matrix(decompose.MatrixSource(kind="model", name=QUERY), max_rows=10**6).shape == (384, 384)


def test_fingerprint_names_the_values(matrix):
    print_ = compare.fingerprint(matrix)
    assert print_.startswith("48x40-float32-")
    assert compare.fingerprint(matrix.clone()) == print_
    changed = matrix.clone()
    changed[7, 3] += 1e-6
    assert compare.fingerprint(changed) != print_
    assert compare.fingerprint(matrix.double()) != print_
    assert compare.fingerprint(matrix.reshape(40, 48)) != print_


def test_cache_keys_are_stable_and_sensitive_to_what_the_numbers_depend_on():
    base, print_ = settings(), "48x40-float32-abc"
    key = compare.cache_key(base, print_)
    assert compare.cache_key(settings(ratios=(0.3, 0.1)), print_) == key  # order of the ratios
    assert compare.cache_key(settings(max_rows=48), print_) == key  # the matrix's values count, not its name
    for other in (settings(ratios=(0.1, 0.2)), settings(methods=("mpo", "cpd")), settings(n_values=(3, 7)),
                  settings(n_iter_max=21), settings(tol=1e-5), settings(random_state=1), settings(max_bytes=2**20)):
        assert compare.cache_key(other, print_) != key, other
    assert compare.cache_key(base, "48x40-float32-abd") != key
    mpo, cpd = compare.Curve("mpo", 3), compare.Curve("cpd", 3)
    # an MPO curve does not depend on the CPD options, so it stays cached when they change
    assert compare.curve_key(settings(n_iter_max=50), mpo, print_) == compare.curve_key(base, mpo, print_)
    assert compare.curve_key(settings(n_iter_max=50), cpd, print_) != compare.curve_key(base, cpd, print_)
    assert compare.curve_key(base, mpo, print_) != compare.curve_key(base, compare.Curve("mpo", 5), print_)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_cache_key_is_the_same_in_another_process():
    code = ("from app import compare, decompose; s = compare.CompareSettings(source=decompose.MatrixSource("
            "kind='random', rows=48, cols=40, seed=1, decay=1.0), ratios=(0.1, 0.3), n_values=(3, 5), n_iter_max=20); "
            "print(compare.cache_key(s, '48x40-float32-abc'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == compare.cache_key(settings(), "48x40-float32-abc")


def test_cache_dir_follows_mpo_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_CACHE_DIR", str(tmp_path))
    assert compare.cache_dir() == tmp_path / "compare"
    monkeypatch.delenv("MPO_CACHE_DIR")
    assert compare.cache_dir() == ROOT / "cache" / "compare"


# --------------------------------------------------------------------------- compute and cache
def test_computed_rows_are_those_of_error_vs_ratio(computed, matrix):
    _, result, _ = computed
    frame = result.frame
    assert list(frame.columns) == list(COLUMNS)
    assert [c.label for c in compare.frame_curves(frame)] == [c.label for c in compare.curves(settings())]
    assert len(frame) == len(compare.curves(settings())) * 2 and not result.loaded
    reference = error_vs_ratio(matrix, (0.1, 0.3), ("mpo",), (5,))
    mine = frame[(frame["method"] == "mpo") & (frame["n"] == 5)]
    np.testing.assert_allclose(mine["relative_error"], reference["relative_error"], rtol=1e-12)
    assert mine["ranks"].tolist() == [",".join(map(str, r)) for r in reference["ranks"]]
    assert (frame["skipped_reason"] == "").all() and frame["relative_error"].between(0, 1).all()


def test_progress_is_called_for_every_point_in_order(computed):
    _, result, calls = computed
    total = len(result.frame)
    assert [done for done, _, _ in calls] == list(range(1, total + 1))
    assert {t for _, t, _ in calls} == {total}
    assert calls[0][2] == "mpo n=3 ratio=0.1" and calls[-1][2] == "tucker n=5 ratio=0.3"


def test_round_trip_reads_every_curve_back_without_computing(computed, matrix, monkeypatch):
    folder, first, _ = computed
    monkeypatch.setattr(compare, "compute_curve", lambda *a, **k: pytest.fail("a cached curve was recomputed"))
    calls = []
    again = compare.compute_or_load(settings(), lambda *call: calls.append(call), matrix=matrix, folder=folder)
    assert not again.computed and len(again.loaded) == len(compare.curves(settings()))
    pd.testing.assert_frame_equal(again.frame, first.frame)  # same dtypes and bit-identical floats
    assert calls[-1][0] == calls[-1][1] and "from the cache" in calls[-1][2]


def test_each_curve_is_a_csv_and_a_json_of_its_settings(computed, matrix):
    folder, _, _ = computed
    s, print_ = settings(), compare.fingerprint(matrix)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 * len(compare.curves(s)) and not [n for n in names if n.endswith(".tmp")]
    for curve in compare.curves(s):
        key = compare.curve_key(s, curve, print_)
        meta = json.loads((folder / f"{key}.json").read_text())
        assert meta["matrix"] == print_ and meta["method"] == curve.method and meta["n"] == curve.n
        assert meta["ratios"] == [0.1, 0.3] and meta["options"] == s.options(curve.method)
        assert meta["label"] == curve.label and meta["compute_seconds"] >= 0 and meta["created"]
        assert compare.load_meta(folder, key) == meta
        assert "cached" in compare.describe_cached(meta) and "0.1, 0.3" in compare.describe_cached(meta)
    metas = [compare.load_meta(folder, compare.curve_key(s, c, print_)) for c in compare.curves(s)]
    summary = compare.describe_cache_summary(metas, 9)
    assert summary.startswith(f"{len(metas)} of 9 curves from the disk cache, cached 20") and print_ in summary


def test_adding_a_curve_computes_only_that_one(computed, matrix, tmp_path):
    folder, _, _ = computed
    more = compare.compute_or_load(settings(n_values=(3, 5, 7)), matrix=matrix, folder=folder)
    assert [c.label for c in more.computed] == ["MPO n=7", "CPD n=7", "Tucker n=7"]
    assert len(more.loaded) == len(compare.curves(settings()))


def test_a_stopped_computation_keeps_finished_curves_and_leaves_nothing_half_written(matrix, tmp_path):
    def stop_in_the_third_curve(done, total, label):
        if label.startswith("cpd n=3"):
            raise compare.Cancelled("stop")

    s = settings(methods=("mpo", "cpd"), n_values=(3, 5))
    with pytest.raises(compare.Cancelled):
        compare.compute_or_load(s, stop_in_the_third_curve, matrix=matrix, folder=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-")[0] + "-" + n.split("-")[1] for n in names] == ["mpo-n3"] * 2 + ["mpo-n5"] * 2
    plans = compare.plan_curves(s, matrix.shape, compare.fingerprint(matrix), tmp_path, live_seconds=0)
    assert [p.cached for p in plans] == [True, True, False, False]


def test_a_failed_write_leaves_no_file_behind(matrix, tmp_path, monkeypatch, computed):
    frame = computed[1].frame.head(2)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(compare.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        compare.save_curve(tmp_path, "mpo-n3-x", frame, {"label": "MPO n=3"})
    assert list(tmp_path.iterdir()) == []  # the temporary file went too


def test_a_csv_without_its_json_is_not_a_cached_curve(tmp_path, computed):
    frame = computed[1].frame.head(2)
    with pytest.raises(TypeError):  # the settings JSON (written last) fails: the curve is not complete
        compare.save_curve(tmp_path, "mpo-n3-x", frame, {"bad": object()})
    assert [p.name for p in tmp_path.iterdir()] == ["mpo-n3-x.csv"]
    assert compare.load_meta(tmp_path, "mpo-n3-x") is None and compare.load_curve(tmp_path, "mpo-n3-x") is None
    compare.save_curve(tmp_path, "mpo-n3-x", frame, {"label": "MPO n=3"})  # the next save completes it
    pd.testing.assert_frame_equal(compare.load_curve(tmp_path, "mpo-n3-x"), frame.reset_index(drop=True))


def test_an_unreadable_cached_curve_counts_as_missing_and_is_rewritten(matrix, tmp_path):
    s = settings(methods=("mpo",), n_values=(3,))
    first = compare.compute_or_load(s, matrix=matrix, folder=tmp_path).frame
    (csv,) = tmp_path.glob("*.csv")
    csv.write_text("not,a\ncurve")
    (plan,) = compare.plan_curves(s, matrix.shape, compare.fingerprint(matrix), tmp_path, live_seconds=0)
    assert not plan.cached and plan.frame is None and compare.pending([plan]) == (plan,)
    again = compare.compute_or_load(s, matrix=matrix, folder=tmp_path)
    assert again.computed == (compare.Curve("mpo", 3),)
    pd.testing.assert_frame_equal(compare.load_curve(tmp_path, plan.key).drop(columns="seconds"),
                                  first.drop(columns="seconds"))  # the same numbers (timings differ)


def test_skipped_points_round_trip(matrix, tmp_path):
    s = settings(methods=("cpd",), n_values=(3,), ratios=(0.001, 0.3), max_bytes=10**9)
    first = compare.compute_or_load(s, matrix=matrix, folder=tmp_path).frame
    assert first["skipped_reason"].tolist()[0].startswith("compression_ratio 0.001")
    assert first["skipped_reason"].tolist()[1] == "" and pd.isna(first["num_params"].iloc[0])
    again = compare.compute_or_load(s, matrix=matrix, folder=tmp_path)
    assert again.loaded and not again.computed
    pd.testing.assert_frame_equal(again.frame, first)
    table = compare.skipped(first)
    assert table["curve"].tolist() == ["CPD n=3"] and table["target ρ"].tolist() == [0.001]


# --------------------------------------------------------------------------- live or on demand
def test_estimates_order_the_methods_like_their_cost(monkeypatch):
    monkeypatch.setenv(compare.CPD_MEMORY_CAP_ENV, "64")  # a server that allows 64 GiB: every CPD point counted
    s = compare.CompareSettings(ratios=(0.05, 0.1), n_values=(3,), max_bytes=64 * 2**30)
    embedding = (30522, 384)
    estimate = {c.method: compare.estimate_seconds(s, c, embedding) for c in compare.curves(s)}
    assert estimate["mpo"] < 60 and estimate["svd"] < 60  # seconds on one core
    assert estimate["cpd"] > 300 > estimate["tucker"] > estimate["mpo"]  # CPD of the whole embedding: minutes
    small = compare.estimate_seconds(s, compare.Curve("cpd", 3), (384, 384))
    assert small < estimate["cpd"] / 100
    fewer = compare.CompareSettings(ratios=(0.05, 0.1), n_values=(3,), n_iter_max=10, max_bytes=64 * 2**30)
    assert compare.estimate_seconds(fewer, compare.Curve("cpd", 3), embedding) == pytest.approx(estimate["cpd"] / 10)
    # points over the CPD memory budget are skipped, so they cost nothing
    tight = compare.CompareSettings(ratios=(0.05, 0.1), n_values=(3,), max_bytes=2**20)
    assert compare.estimate_seconds(tight, compare.Curve("cpd", 3), embedding) == 0


def test_plan_curves_cached_live_and_on_demand(computed, matrix, tmp_path):
    folder, _, _ = computed
    print_ = compare.fingerprint(matrix)
    s = settings(n_values=(3, 5, 6))  # n = 6 is in no other test's cache
    plans = compare.plan_curves(s, matrix.shape, print_, folder, live_seconds=0)
    assert [p.curve.label for p in compare.pending(plans)] == ["MPO n=6", "CPD n=6", "Tucker n=6"]
    assert all(p.cached and not p.live for p in plans if p.curve.n != 6)
    for plan in plans:  # cached curves come with their rows
        assert (plan.frame is not None) == plan.cached
    pd.testing.assert_frame_equal(plans[0].frame, computed[1].frame.iloc[:2])
    everything = compare.plan_curves(s, matrix.shape, print_, tmp_path, live_seconds=1e9)
    assert all(p.live and not p.cached for p in everything) and not compare.pending(everything)
    cheapest = min(everything, key=lambda p: p.seconds)
    some = compare.plan_curves(s, matrix.shape, print_, tmp_path, live_seconds=cheapest.seconds * 1.0001)
    assert [p.curve for p in some if p.live] == [cheapest.curve]


# --------------------------------------------------------------------------- background task
def test_compute_task_writes_every_curve_in_the_background(matrix, tmp_path):
    s = settings(methods=("mpo", "svd", "tucker"))
    order = compare.curves(s)
    task = compare.ComputeTask(s, matrix, tmp_path, order).start()
    task.join(timeout=60)
    assert not task.running and task.error is None
    assert task.curves_done == len(order) and task.done == task.total == 2 * len(order) and task.fraction == 1
    plans = compare.plan_curves(s, matrix.shape, compare.fingerprint(matrix), tmp_path, live_seconds=0)
    assert all(p.cached for p in plans)


def test_a_cancelled_task_stops_and_says_so(matrix, tmp_path):
    s = settings(methods=("mpo",))
    task = compare.ComputeTask(s, matrix, tmp_path, compare.curves(s))
    task.cancel()  # before it starts: it stops at its first check
    task.start().join(timeout=60)
    assert task.cancelled and task.error == "stopped on request" and task.curves_done == 0
    assert list(tmp_path.iterdir()) == []


def test_a_failing_task_keeps_its_error(matrix, tmp_path):
    s = settings(methods=("mpo",), n_values=(3,))
    task = compare.ComputeTask(s, torch.ones(3, 3, dtype=torch.int64), tmp_path, compare.curves(s)).start()
    task.join(timeout=60)
    assert task.error.startswith("TypeError") and not task.running


def test_registry_runs_one_task_per_key(matrix, tmp_path, monkeypatch):
    release = __import__("threading").Event()
    monkeypatch.setattr(compare.ComputeTask, "_run", lambda self: (release.wait(10), setattr(self, "finished", 1.0)))
    registry = compare.TaskRegistry()
    s = settings(methods=("mpo",))
    first = registry.start("k", compare.ComputeTask(s, matrix, tmp_path, compare.curves(s)))
    second = registry.start("k", compare.ComputeTask(s, matrix, tmp_path, compare.curves(s)))
    assert second is first and registry.get("k") is first and registry.running() == [first]
    registry.discard("k")  # still running: kept
    assert registry.get("k") is first
    release.set()
    first.join(timeout=10)
    assert not first.running and registry.running() == []
    registry.discard("k")
    assert registry.get("k") is None


# --------------------------------------------------------------------------- figure and tables
def test_figure_has_one_trace_per_curve_with_the_plotted_values(computed):
    frame = computed[1].frame
    fig = compare.error_figure(frame)
    assert [t.name for t in fig.data] == [c.label for c in compare.curves(settings())]
    for trace in fig.data:
        curve = compare.frame_curves(frame)[[t.name for t in fig.data].index(trace.name)]
        rows = frame[(frame["method"] == curve.method) & (frame["n"] == curve.n)].sort_values("compression_ratio")
        np.testing.assert_allclose(trace.x, rows["compression_ratio"])
        np.testing.assert_allclose(trace.y, rows["relative_error"])
    assert "Eq. 5" in fig.layout.xaxis.title.text and "‖M − M′‖" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.type == "linear"
    assert compare.error_figure(frame, log_y=True).layout.yaxis.type == "log"
    absolute = compare.error_figure(frame, value="error")
    assert max(max(t.y) for t in absolute.data) > 1  # Frobenius norms of a 48x40 matrix, not fractions
    with pytest.raises(ValueError, match="value must be"):
        compare.error_figure(frame, value="seconds")


def test_mpo_curves_for_different_n_are_told_apart():
    frame = pd.concat([_fake("mpo", n, [0.5, 0.4]) for n in (3, 5, 7)] + [_fake("cpd", 3, [0.6, 0.5])])
    traces = {t.name: t for t in compare.error_figure(frame).data}
    mpo = [traces[f"MPO n={n}"] for n in (3, 5, 7)]
    for attribute in (lambda t: t.line.dash, lambda t: t.marker.symbol, lambda t: t.line.color):
        assert len({attribute(t) for t in mpo}) == 3
    assert traces["CPD n=3"].line.color not in {t.line.color for t in mpo}


def _fake(method, n, errors, ratios=(0.1, 0.3), skipped=()):
    rows = [{"method": method, "n": n, "target_ratio": r, "ranks": "1", "num_params": 1, "compression_ratio": r,
             "error": e, "relative_error": e, "error_bound": None, "seconds": 0.0,
             "skipped_reason": "too small" if r in skipped else None} for r, e in zip(ratios, errors)]
    return compare.tidy(pd.DataFrame(rows, columns=list(COLUMNS)))


def test_ratio_table_and_skipped_points():
    frame = pd.concat([_fake("mpo", 3, [0.5, 0.4]), _fake("svd", 2, [0.45, 0.3], skipped=(0.1,))], ignore_index=True)
    table = compare.ratio_table(frame)
    assert list(table.columns) == ["MPO n=3", "SVD"] and list(table.index) == [0.1, 0.3]
    assert table.loc[0.3, "SVD"] == 0.3 and math.isnan(table.loc[0.1, "SVD"])
    assert [t.name for t in compare.error_figure(frame).data] == ["MPO n=3", "SVD"]
    assert len(compare.error_figure(frame).data[1].x) == 1  # the skipped point is not drawn
    never = pd.concat([frame, _fake("cpd", 7, [0.5, 0.4], skipped=(0.1, 0.3))], ignore_index=True)
    table = compare.ratio_table(never)  # a curve skipped at every ratio: NaN, not None
    assert table["CPD n=7"].dtype == float and table["CPD n=7"].isna().all()
    shown = compare.ratio_display_table(never)  # what the page shows: each cell a number or why it is missing
    assert shown.loc[0.3, "SVD"] == "0.3000" and shown.loc[0.1, "SVD"] == "skipped"
    assert list(shown["CPD n=7"]) == ["skipped", "skipped"] and "None" not in shown.to_string()


MEMORY = ("CPD of rank 1203 on a (16, 12, 12, 8, 8, 8, 8) tensor needs about {} GiB (Khatri-Rao product and (R, R) "
          "normal equations), over max_bytes = 2.00 GiB; lower the ratio, use a smaller n, or raise max_bytes.")
SMALL = ("compression_ratio 0.001 allows 1572 parameters, but the smallest mpo model (all ranks 1, n=7) has 72 "
         "(ratio 0.004578); ask for a larger ratio.")


def test_a_skipped_cell_and_note_say_why_in_a_few_words():
    assert compare.short_reason(MEMORY.format("3.90")) == "skipped: needs 3.90 GiB"
    assert compare.short_reason(SMALL) == "skipped: smallest is ρ 0.004578"
    assert compare.short_reason("cpd: ALS of rank 3 on the (4, 4) tensorization gave non-finite values") == \
        "skipped: ALS diverged"
    assert compare.short_reason("something else") == "skipped"
    frame = pd.concat([_fake("cpd", 7, [0.5, 0.4]), _fake("mpo", 7, [0.5, 0.4], ratios=(0.001, 0.3))],
                      ignore_index=True)
    frame.loc[0, "skipped_reason"], frame.loc[1, "skipped_reason"] = MEMORY.format("3.90"), MEMORY.format("40.12")
    frame.loc[2, "skipped_reason"] = SMALL
    shown = compare.ratio_display_table(frame)
    assert shown.loc[0.1, "CPD n=7"] == "skipped: needs 3.90 GiB" and shown.loc[0.3, "CPD n=7"] == \
        "skipped: needs 40.12 GiB"
    assert shown.loc[0.001, "MPO n=7"] == "skipped: smallest is ρ 0.004578" and shown.loc[0.3, "MPO n=7"] == "0.4000"
    assert shown.loc[0.001, "CPD n=7"] == "skipped"  # no such point in the frame: still no None
    cpd, mpo = compare.skipped_notes(frame)
    assert cpd.startswith("**CPD n=7**: skipped at every ratio: needs 3.90 to 40.12 GiB") and "2.00 GiB" in cpd
    assert mpo == "**MPO n=7**: skipped at ρ = 0.001: smallest is ρ 0.004578."


def test_mpo_vs_cpd_counts_the_ratios_where_mpo_is_better():
    frame = pd.concat([_fake("mpo", 3, [0.5, 0.4]), _fake("cpd", 3, [0.6, 0.3]), _fake("mpo", 5, [0.1, 0.1])])
    assert compare.mpo_vs_cpd(frame) == [(3, 1, 2)]  # n = 5 has no CPD curve


def test_format_seconds():
    assert [compare.format_seconds(s) for s in (0.2, 5, 125, 3 * 3600)] == ["< 1 s", "5 s", "2 min", "3.0 h"]


def test_estimates_use_this_machines_measured_speed_first(matrix, tmp_path):
    s = settings(methods=("mpo",), n_values=(3,))
    curve = compare.Curve("mpo", 3)
    assert compare.speed(curve) == (compare.WORK_PER_SECOND[("mpo", 3)], "benchmark, 2-core CPU")
    other_n = compare.speed(compare.Curve("mpo", 4))  # not benchmarked: the method's median
    assert other_n[0] in {v for (m, _), v in compare.WORK_PER_SECOND.items() if m == "mpo"}
    assert other_n[1].endswith("other n")
    compare.compute_or_load(s, matrix=matrix, folder=tmp_path)
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["work"] == pytest.approx(compare._work(curve, plan_shape(*matrix.shape, n=3), s))
    assert compare.measured_speeds(tmp_path) == {}  # under a second: overhead, not speed
    measured = compare.measured_speeds(tmp_path, min_seconds=0)
    assert measured[("mpo", 3)] == pytest.approx(meta["work"] / meta["compute_seconds"])
    assert compare.speed(curve, measured) == (measured[("mpo", 3)], "measured on this machine")
    assert compare.estimate_seconds(s, curve, matrix.shape, measured) == pytest.approx(meta["compute_seconds"])
    (tmp_path / "broken.json").write_text("{not json")  # a damaged file is passed over
    assert compare.measured_speeds(tmp_path, min_seconds=0) == measured


def test_remaining_seconds_scale_the_estimates_by_the_pace_so_far(matrix, tmp_path):
    s = settings(methods=("mpo",), n_values=(3, 5))  # two ratios per curve
    task = compare.ComputeTask(s, matrix, tmp_path, compare.curves(s), estimates=(10.0, 30.0), started=100.0)
    task.total = 4
    assert task.remaining_seconds(now=101.0) == 40.0  # too early to judge the pace: the estimates
    task.done = 1  # half of the first curve (5 s of estimate) in 10 s: twice as slow as estimated
    assert task.remaining_seconds(now=110.0) == pytest.approx((40 - 5) * 2)
    task.done = 3  # the first curve and half the second: 25 s of estimate in 25 s
    assert task.remaining_seconds(now=125.0) == pytest.approx(15.0)
    assert compare.ComputeTask(s, matrix, tmp_path, compare.curves(s)).remaining_seconds() is None


# --------------------------------------------------------------------------- the server's CPD memory cap
def test_the_cpd_budget_above_the_servers_cap_is_refused(monkeypatch):
    """The cap is the server's (its environment), not the page's: whatever a page sends, more is refused."""
    monkeypatch.delenv(compare.CPD_MEMORY_CAP_ENV, raising=False)
    assert compare.cpd_memory_cap() == compare.DEFAULT_MAX_BYTES
    assert compare.CompareSettings().max_bytes == compare.DEFAULT_MAX_BYTES  # the default is within it
    assert compare.CompareSettings(max_bytes=compare.DEFAULT_MAX_BYTES).max_bytes == compare.DEFAULT_MAX_BYTES
    with pytest.raises(ValueError, match="at most the server's cap of 2 GiB"):
        compare.CompareSettings(max_bytes=1024 * 2**30)  # what the page's input allowed before
    with pytest.raises(ValueError, match="server's cap"):
        compare.CompareSettings(max_bytes=compare.DEFAULT_MAX_BYTES + 1)


def test_the_servers_cap_comes_from_its_environment(monkeypatch):
    monkeypatch.setenv(compare.CPD_MEMORY_CAP_ENV, "0.5")
    assert compare.cpd_memory_cap() == 2**29
    assert compare.CompareSettings().max_bytes == 2**29  # a lower cap lowers the default budget too
    with pytest.raises(ValueError, match="server's cap of 0.5 GiB"):
        compare.CompareSettings(max_bytes=2**30)
    monkeypatch.setenv(compare.CPD_MEMORY_CAP_ENV, "8")
    assert compare.CompareSettings(max_bytes=8 * 2**30).max_bytes == 8 * 2**30


@pytest.mark.parametrize("text", ["lots", "-1", "0", "nan", "inf", "1e30"])
def test_a_bad_server_cap_is_named(monkeypatch, text):
    monkeypatch.setenv(compare.CPD_MEMORY_CAP_ENV, text)
    with pytest.raises(ValueError, match=compare.CPD_MEMORY_CAP_ENV):
        compare.cpd_memory_cap()
