"""AppTest of the Compare methods page (Figure 2), driven through the app's entry file (app/main.py)."""
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import compare, decompose, snapshot

from . import pages

STORED_CHARTS = len(snapshot.load("compare")["figures"])  # the stored run's charts come first on the page


def live_charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))[STORED_CHARTS:]

pytestmark = pytest.mark.filterwarnings("ignore:Trying to compute SVD with n_eigenvecs")


def open_page(cache_root, monkeypatch) -> AppTest:
    return pages.open_page("compare", monkeypatch, MPO_CACHE_DIR=cache_root)


def small_random(at: AppTest, methods=("mpo", "svd", "cpd", "tucker"), n=(3, 5)) -> AppTest:
    """A 64 x 48 random matrix, two ratios and few CPD iterations: every curve in well under a second."""
    at.radio(key="cmp_source").set_value("random").run()
    at.number_input(key="cmp_random_rows").set_value(64)
    at.number_input(key="cmp_random_cols").set_value(48)
    at.text_input(key="cmp_ratios").set_value("0.1, 0.3")
    at.number_input(key="cmp_iter").set_value(20)
    at.multiselect(key="cmp_methods").set_value(list(methods))
    at.multiselect(key="cmp_n").set_value(list(n)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def trace_names(at: AppTest) -> list[str]:
    (chart,) = live_charts(at)
    return [t["name"] for t in json.loads(chart.proto.spec)["data"]]


def numbers(at: AppTest) -> pd.DataFrame:
    """The "Error at the chosen ratios" table as numbers: its cells are text (4 decimals, or why a point is skipped)."""
    return at.dataframe[0].value.apply(pd.to_numeric, errors="coerce")


def cache_files(cache_root: Path) -> list[str]:
    folder = cache_root / "compare"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_opens_on_the_stored_run_and_live_curves_of_the_embedding(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    assert at.radio(key="cmp_source").value == "model"
    assert at.selectbox(key="cmp_weight").value == decompose.DEFAULT_WEIGHT
    assert at.number_input(key="cmp_max_rows").value == compare.DEFAULT_MAX_ROWS == 4096
    assert at.multiselect(key="cmp_n").value == [3, 5, 7]
    assert any("What the paper reports" in i.value and "CPD" in i.value for i in at.info)
    # the stored Figure 2 run, with the paper's claims judged on its numbers, before anything is computed
    assert len(at.get("plotly_chart")) > STORED_CHARTS >= 1
    claims = " ".join(m.value for m in at.markdown)
    assert "Paper claim (a)" in claims and "Paper claim (b)" in claims and "iid Gaussian" in claims
    assert any(m.label.startswith("MPO below CPD") for m in at.metric)
    # on 4096 rows the cheap MPO curves are drawn at once; CPD (minutes) waits for a click
    assert "MPO n=3" in trace_names(at)
    assert at.button(key="compute").label == "Compute"
    waiting = [i.value for i in at.info if "not in the cache yet" in i.value]
    assert len(waiting) == 1 and "CPD n=3" in waiting[0]
    assert not at.error and cache_files(tmp_path) == []
    assert at.text_input(key="cache_dir").value == str(tmp_path / "compare")
    # the text says what the page did: MPO n = 7 is no cheap curve here, and it waits like CPD n = 3
    assert "MPO n=7" in waiting[0] and not any("MPO and SVD curves are computed at once" in c.value for c in at.caption)
    # a curve skipped at every ratio (CPD n = 7 over the 2 GiB memory budget) says why in its cells and in view
    table = next(d.value for d in at.dataframe if "CPD n=7" in d.value.columns)
    assert all(cell.startswith("skipped: needs ") and cell.endswith(" GiB") for cell in table["CPD n=7"])
    assert "None" not in table.to_string()
    [note] = [m.value for m in at.markdown if "**CPD n=7**: skipped at every ratio" in m.value]
    assert "over the CPD memory budget of 2.00 GiB" in note


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
@pytest.mark.parametrize("typed", ["/tmp", "{root}/../elsewhere", "{root}/compare/../.."])
def test_a_cache_folder_outside_the_root_is_refused(tmp_path, monkeypatch, typed):
    root = tmp_path / "cache"
    at = open_page(root, monkeypatch)
    at.text_input(key="cache_dir").set_value(typed.format(root=root)).run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "is outside" in error.value and "MPO_CACHE_DIR" in error.value
    assert not live_charts(at) and sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_small_matrix_is_live_and_traces_follow_the_methods(tmp_path, monkeypatch):
    at = small_random(open_page(tmp_path, monkeypatch))
    assert not at.error and "compute" not in [b.key for b in at.button]
    assert trace_names(at) == ["MPO n=3", "MPO n=5", "SVD", "CPD n=3", "CPD n=5", "Tucker n=3", "Tucker n=5"]
    table = numbers(at)
    assert list(table.columns) == trace_names(at) and list(table.index) == [0.1, 0.3]
    assert ((table > 0) & (table < 1)).all().all()
    assert any("MPO error is below the CPD error" in c.value for c in at.caption)

    at.multiselect(key="cmp_methods").set_value(["mpo", "svd"]).run()
    assert not at.exception and trace_names(at) == ["MPO n=3", "MPO n=5", "SVD"]
    assert not any("below the CPD error" in c.value for c in at.caption)
    at.multiselect(key="cmp_n").set_value([3, 7]).run()
    assert trace_names(at) == ["MPO n=3", "MPO n=7", "SVD"]
    # a larger ratio keeps more parameters: the error at it is smaller
    at.text_input(key="cmp_ratios").set_value("0.1, 0.6").run()
    table = numbers(at)
    assert list(table.index) == [0.1, 0.6] and (table.loc[0.6] < table.loc[0.1]).all()
    at.radio(key="cmp_value").set_value("error").run()
    norm = float(decompose.random_matrix(64, 48, seed=0, decay=1.0).double().norm())  # the page's default random matrix
    absolute = numbers(at)
    assert ((absolute - table * norm).abs() < 1e-4 * (norm + 1)).all().all()  # both shown to 4 decimals  # ||M - M'||_F = relative error * ||M||_F
    assert cache_files(tmp_path) == []  # live curves stay in memory


def test_a_filled_disk_cache_is_shown_without_recomputation(tmp_path, monkeypatch):
    settings = compare.CompareSettings(max_rows=512, ratios=(0.1, 0.3), methods=("mpo", "svd"), n_values=(3, 5))
    monkeypatch.setenv("MPO_CACHE_DIR", str(tmp_path))
    written = compare.compute_or_load(settings).frame  # the word embedding's first 512 rows
    monkeypatch.setattr(compare, "LIVE_SECONDS", 0.0)  # nothing may be computed by the page run ...
    at = open_page(tmp_path, monkeypatch)  # (its default view may compute a curve estimated at 0 s)
    computed = []  # a failure raised in the script's thread would only be a warning: record, assert below
    monkeypatch.setattr(compare, "compute_curve", lambda *a, **k: computed.append(a) or pytest.fail("recomputed"))
    at.number_input(key="cmp_max_rows").set_value(512)
    at.text_input(key="cmp_ratios").set_value("0.3, 0.1")
    at.multiselect(key="cmp_methods").set_value(["mpo", "svd"])
    at.multiselect(key="cmp_n").set_value([3, 5]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert computed == []  # ... every curve came from the disk cache
    assert "compute" not in [b.key for b in at.button]  # ... and nothing waits for a click
    assert trace_names(at) == ["MPO n=3", "MPO n=5", "SVD"]
    table = at.dataframe[0].value
    mpo3 = written[(written["method"] == "mpo") & (written["n"] == 3)]["relative_error"].tolist()
    assert table["MPO n=3"].tolist() == [f"{v:.4f}" for v in mpo3]  # shown to 4 digits
    notes = [c.value for c in at.caption if "cached" in c.value]
    assert len(notes) == 1 + 3 and all("ratios 0.1, 0.3" in n and "512x384" in n for n in notes)
    assert notes[0].startswith("3 of 3 curves from the disk cache, cached 20")  # the visible summary line
    assert any("3 from the disk cache" in e.label for e in at.expander)


def test_compute_runs_in_the_background_and_fills_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "LIVE_SECONDS", 0.0)  # every curve is "expensive"
    at = small_random(open_page(tmp_path, monkeypatch), methods=("mpo", "svd", "tucker"), n=(3,))
    assert at.button(key="compute") and not live_charts(at)
    at.button(key="compute").click().run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.monotonic() + 60
    while "compute" in [b.key for b in at.button] or "stop_compute" in [b.key for b in at.button]:
        assert time.monotonic() < deadline, "the background computation did not finish"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert trace_names(at) == ["MPO n=3", "SVD", "Tucker n=3"]
    assert len(cache_files(tmp_path)) == 2 * 3  # a CSV and a JSON per curve
    assert not at.error


@pytest.mark.parametrize("ratios, message", [("0.1, abc", "is not a number"), ("0.1, 1.5", "(0, 1]")])
def test_bad_ratios_are_a_message(tmp_path, monkeypatch, ratios, message):
    at = open_page(tmp_path, monkeypatch)
    at.text_input(key="cmp_ratios").set_value(ratios).run()
    assert not at.exception and len(at.error) == 1 and message in at.error[0].value
    assert not live_charts(at) and "compute" not in [b.key for b in at.button]


def test_no_method_is_a_message(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    at.multiselect(key="cmp_methods").set_value([]).run()
    assert not at.exception and len(at.error) == 1 and "non-empty selection" in at.error[0].value


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_cpd_budget_is_bounded_by_the_servers_cap(tmp_path, monkeypatch):
    """The budget input stops at the server's cap, and a budget above it (a hand-made request) is refused."""
    at = pages.open_page("compare", monkeypatch, MPO_CACHE_DIR=tmp_path, MPO_CPD_MEMORY_CAP_GIB="0.5")
    budget = at.number_input(key="cmp_gib")
    assert budget.max == 0.5 and budget.value == 0.5  # the default (2 GiB) is lowered to the cap
    assert "server's cap" in budget.help
    small_random(at)
    at.number_input(key="cmp_gib").set_value(0.25).run()
    assert not at.error and not at.exception
    at.number_input(key="cmp_gib").set_value(1024.0).run()  # what the input allowed before issue 24
    assert not at.exception, [e.value for e in at.exception]
    assert 0 < at.number_input(key="cmp_gib").value <= 0.5  # Streamlit clamps a value over max_value to it


def test_the_default_cap_is_the_default_budget(tmp_path, monkeypatch):
    monkeypatch.delenv(compare.CPD_MEMORY_CAP_ENV, raising=False)
    at = open_page(tmp_path, monkeypatch)
    budget = at.number_input(key="cmp_gib")
    assert budget.max == budget.value == compare.DEFAULT_MAX_BYTES / 2**30
