"""The dashboard in a real browser: ``streamlit run app/main.py`` as the README says, driven by headless Chromium.

The server is started from the repository root with the shipped
``.streamlit/config.toml`` (only the port is a flag), and must listen on
loopback only.

Opens every page, moves a bond slider on "Decompose" and watches the ratio
change, starts the default (demo) squeeze run from the form and checks that it
learned and squeezed; opens three pages at once on a cold server (sessions importing in parallel threads),
and checks that no request leaves the server (the dashboard is offline). Screenshots of every step go to
``test-artifacts/browser/`` (or ``$MPO_TEST_ARTIFACTS``) so a CI run can be looked at afterwards.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright``
Python package (only its driver: the browser is the system one). Without them
the test is skipped, unless ``MPO_BROWSER_REQUIRED=1`` (set by ``.ci/run``),
where a missing browser is a failure.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_server_config import assert_listens_on_loopback_only, free_port, streamlit_env, wait_healthy

pytestmark = pytest.mark.slow  # a real browser against a real server

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "glue"
CHROMIUM = os.environ.get("MPO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic"]
ARTIFACTS = Path(os.environ.get("MPO_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "browser"
# url path -> the start of the page's title (its h1) once it has rendered
PAGES = {
    "": "Decompose a matrix into a Matrix Product Operator",
    "compare": "Compare methods",
    "atlas": "Entropy atlas",
    "variation": "Parameter variation",
    "squeeze": "Squeeze training",
    "opf": "Over-parameterized",
    "compress": "Compress a model",
}
RATIO = "Ratio ρ (Eq. 5)"


def _browser_or_skip():
    missing = []
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if CHROMIUM is None:
        missing.append("a chromium executable")
    if missing:
        message = f"browser test needs {' and '.join(missing)}"
        if os.environ.get("MPO_BROWSER_REQUIRED") == "1":
            pytest.fail(message + " (MPO_BROWSER_REQUIRED=1)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    runs, cache = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("cache")
    port = free_port()
    env = streamlit_env(MPO_RUNS_DIR=str(runs), MPO_CACHE_DIR=str(cache), GLUE_DIR=str(GLUE), OMP_NUM_THREADS="1")
    log = open(ARTIFACTS / "streamlit.log", "wb")
    # The README's command from the repository root: address, headless mode and usage statistics come from the
    # shipped .streamlit/config.toml, not from flags (only the port, and no file watcher, are the test's own).
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, runs, process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 2400})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def settle(page, timeout: float = 180) -> None:
    """Wait until the script run is over: Streamlit's running indicator absent for a second."""
    page.wait_for_selector("[data-testid=stAppViewContainer]", timeout=timeout * 1000)
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        running = page.locator("[data-testid=stStatusWidget]").count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.2)
    raise TimeoutError("the page kept running")


def no_exception(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # the app scrolls inside its own view
    errors = page.locator("[data-testid=stException]")
    assert errors.count() == 0, errors.first.inner_text()


def metric_value(page, label: str) -> str:
    metric = page.locator("[data-testid=stMetric]", has_text=label).first
    return metric.locator("[data-testid=stMetricValue]").inner_text()


def curve_points(page) -> list[int]:
    """Points per plotly chart on the page, from plotly's decoded traces (``el.data`` may hold base64 arrays)."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>"
        " (el._fullData || []).reduce((n, t) => n + ((t.x || t.y || []).length || 0), 0))"
    )


def test_the_server_listens_on_loopback_only(server):
    """Started as the README says, the shipped config keeps it off every other interface (it has no login)."""
    _, _, pid, port = server
    assert_listens_on_loopback_only(pid, port)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_opens_without_an_error(server, page, path):
    url, *_ = server
    page.goto(f"{url}/{path}")
    settle(page)
    page.locator("h1", has_text=PAGES[path]).first.wait_for()  # the page's own title, not the menu entry
    no_exception(page, f"page-{path or 'decompose'}")


def test_decompose_opens_explained_at_a_real_cut(server, page):
    """Before any click: the explanation of what an MPO is, and a compressed (not full-bond) view."""
    url, *_ = server
    page.goto(url)
    settle(page)
    assert page.get_by_text("A Matrix Product Operator (MPO)").first.is_visible()
    assert 0.05 < float(metric_value(page, RATIO)) <= 0.3
    no_exception(page, "decompose-opened")


def test_compare_shows_curves_without_a_click(server, page):
    url, *_ = server
    page.goto(f"{url}/compare")
    settle(page)
    page.wait_for_function(  # plotly.js is a lazily loaded chunk: the charts may draw after the script run
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(el => el._fullData).length >= 2",
        timeout=60_000)
    points = curve_points(page)
    assert len(points) >= 2 and all(p > 0 for p in points[:2]), points  # the stored run's two panels
    assert page.get_by_text("Paper claim (a)").first.is_visible()
    no_exception(page, "compare-opened")


def test_a_bond_slider_changes_the_ratio(server, page):
    url, *_ = server
    page.goto(url)
    settle(page)
    page.get_by_text(RATIO).first.wait_for()
    before = metric_value(page, RATIO)
    thumb = page.locator("[data-testid=stSidebar] [data-testid=stSlider] input[type=range]").nth(1)  # d'_2
    thumb.focus()
    thumb.press("Home")  # the smallest bond
    page.wait_for_function(
        "([label, before]) => Array.from(document.querySelectorAll('[data-testid=stMetric]'))"
        ".some(m => m.innerText.includes(label) && !m.innerText.includes(before))",
        arg=[RATIO, before], timeout=60_000,
    )
    settle(page)
    after = metric_value(page, RATIO)
    no_exception(page, "decompose-slider-moved")
    assert float(after) < float(before)


def test_the_default_squeeze_run_learns_then_squeezes(server, page):
    """The demo a presenter starts: the form's defaults, only a run name typed (about 2 minutes on a 2-core CPU).

    A progress bar appears and moves within 5 s of Start; the run finishes within a generous CI bound (the
    real figure is printed; benchmarks/bench_squeeze_demo.py measures it against the issue's targets). p
    (held-out) must end well above SST-2's majority share (0.56), with no "has not learned" warning; the
    squeeze must take #To to 0.9x the dense model with cuts of encoder matrices, every accepted cut keeping p
    within delta. Once the run has finished, nothing polls it: the server sends the watched page no message, and
    page and server together cost under 5 % of a core.
    """
    from app import squeeze

    url, runs, server_pid, _ = server
    messages = ServerMessages(page)  # before the page opens its websocket
    page.goto(f"{url}/squeeze")
    settle(page)
    page.get_by_text("Start a new squeeze run").click()
    name = page.get_by_label("run name", exact=True)
    name.fill("demo")
    name.press("Tab")
    assert page.get_by_text("With these defaults a run takes about").count() == 1  # the expected time, beside Start
    page.screenshot(path=str(ARTIFACTS / "squeeze-form-defaults.png"))
    started = time.monotonic()
    page.get_by_role("button", name="Start").click()
    bar = page.locator("[data-testid=stProgress]").first
    bar.wait_for(timeout=5_000)
    first_text = bar.inner_text()
    page.wait_for_function(  # the bar's text moves (elapsed seconds, then phase and step n of N)
        "t => { const b = document.querySelector('[data-testid=stProgress]'); return b && b.innerText !== t; }",
        arg=first_text, timeout=max(100, 5_000 - 1000 * (time.monotonic() - started)))
    moved = time.monotonic() - started
    page.screenshot(path=str(ARTIFACTS / "squeeze-demo-progress.png"))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (runs / "demo" / "results.json").exists():
        time.sleep(1)
    assert (runs / "demo" / "results.json").exists(), "the default squeeze run did not finish in 10 minutes"
    seconds = time.monotonic() - started
    print(f"default squeeze run: progress moved {moved:.1f} s after Start; {seconds:.0f} s from Start to results")
    assert seconds < 420, f"the demo took {seconds:.0f} s (target: 120 s idle, 180 s with one core busy)"
    page.wait_for_function(  # the live view reruns the page when the run's status changes
        "() => Array.from(document.querySelectorAll('[data-testid=stMetric]'))"
        ".some(m => m.innerText.includes('status') && m.innerText.includes('finished'))", timeout=60_000,
    )
    settle(page)
    no_exception(page, "squeeze-demo-finished")
    assert float(metric_value(page, "p (held-out)")) > 0.7  # SST-2's majority share is 0.56
    assert metric_value(page, "dev accuracy") != "–"
    assert page.get_by_text("has not learned").count() == 0
    points = curve_points(page)
    assert len(points) >= 4 and points[0] > 0, points  # p~ per squeeze step has points
    frames = squeeze.squeeze_frames(runs / "demo")
    summary = squeeze.squeeze_summary(frames)
    assert summary["predicted_classes"] == 2 and summary["accepted"] >= 1
    assert abs(summary["p"] - summary["p_tilde"]) <= 0.1 + 1e-9  # every accepted cut kept p within delta
    assert summary["total_params"] <= 0.9 * 22_713_986  # squeezed below the dense model, to the target
    assert all(".encoder.layer." in m for m in frames["cuts"]["matrix"])  # the cuts reach the stacked layers
    messages.wait(3)  # the browser finishes drawing the last charts
    assert messages.count() > 0, "no websocket message was seen: the listener is broken, the check would be empty"
    seen = messages.count()
    shares = [watched_cpu_share(server_pid, seconds=10, wait=messages.wait) for _ in range(2)]
    polls = messages.count() - seen
    messages.close()
    print(f"a watched finished squeeze run: {polls} messages from the server in 20 s; "
          f"{', '.join(f'{100 * s:.1f}' for s in shares)} % of a core (server and browser, two 10-s windows)")
    assert polls == 0, f"the server sent a finished run's page {polls} messages in 20 s: something polls it"
    assert min(shares) < 0.05  # the quieter window: a CI machine's stray work lands in one of them, not in both


class ServerMessages:
    """Counts the websocket messages a Streamlit server sends a page (a rerun, a fragment's poll).

    Attach it before the page opens its websocket. Playwright's sync API hands events over only inside its own
    calls: pass time with :meth:`wait` (the page's own wait), not ``time.sleep``, or a poll's messages wait,
    uncounted, for the next call. A fragment polling once a second sends about six a second.
    """

    def __init__(self, page) -> None:
        self.page, self.received = page, 0
        page.on("websocket", self._listen)

    def _listen(self, socket) -> None:
        socket.on("framereceived", self._one)

    def _one(self, _payload) -> None:
        self.received += 1

    def wait(self, seconds: float) -> None:
        self.page.wait_for_timeout(1000 * seconds)

    def count(self) -> int:
        self.wait(0.1)  # what has arrived is delivered
        return self.received

    def close(self) -> None:
        self.page.remove_listener("websocket", self._listen)


POLLING_SCRIPT = """
import streamlit as st
st.title("watched")
if POLLS:
    @st.fragment(run_every=1.0)
    def tick():
        st.write("tick")
    tick()
"""


@pytest.mark.parametrize("polls", [True, False])
def test_the_message_count_sees_a_polling_page(page, tmp_path, polls):
    """The control of the finished-run check above: a page with a polling fragment gets messages, a still one none."""
    script = tmp_path / "watched.py"
    script.write_text(POLLING_SCRIPT.replace("POLLS", str(polls)))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.fileWatcherType", "none", "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],  # its folder has no shipped config: loopback, no statistics
        cwd=str(tmp_path), env=streamlit_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tab = page.context.browser.new_page()  # a tab of its own (the shared one stays on its page)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        messages = ServerMessages(tab)
        tab.goto(url)
        tab.get_by_text("watched").first.wait_for(timeout=60_000)
        messages.wait(2)
        seen = messages.count()
        messages.wait(4)
        arrived = messages.count() - seen
        messages.close()
    finally:
        tab.close()
        process.terminate()
        process.wait(timeout=20)
    assert seen > 0  # the page's first run came over the websocket
    assert (arrived >= 4) if polls else (arrived == 0), arrived


def watched_cpu_share(server_pid: int, seconds: float, wait=time.sleep) -> float:
    """CPU the Streamlit server and the browser's processes use over ``seconds`` while nothing is clicked, per core.

    ``wait(seconds)`` passes the time (the page's own wait, so its events are delivered meanwhile).
    """
    import psutil

    def busy() -> float:  # the server and this test's own browser (a child of Playwright's driver, our child)
        processes = {p.pid: p for p in [psutil.Process(server_pid), *psutil.Process().children(recursive=True)]}
        total = 0.0
        for process in processes.values():
            try:
                if process.pid == server_pid or "chrom" in process.name().lower():
                    times = process.cpu_times()
                    total += times.user + times.system
            except psutil.Error:  # it ended in between
                continue
        return total

    before = busy()
    wait(seconds)
    return (busy() - before) / seconds


# Every page paints a shipped snapshot (or a stored run) before the engine imports. The target is 3 s on the
# 2-core CPU (benchmarks/bench_first_visit.py measures it); the bound here leaves CI's slower machines a margin.
FIRST_VISIT_PAGES = list(PAGES)
FIRST_VISIT_BOUND_S = 15.0


@pytest.mark.parametrize("path", list(FIRST_VISIT_PAGES))
def test_a_cold_server_shows_content_at_once(page, tmp_path, path):
    """A new server (nothing imported, nothing cached): real content before the engine has even loaded."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_first_visit", ROOT / "benchmarks" / "bench_first_visit.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # the benchmark's own server start and content test

    process, url = bench.start_server(tmp_path / "cache", tmp_path / "runs", tmp_path / "streamlit.log")
    try:  # a new tab of the test's browser (one Playwright per process)
        content, _ = bench.visit(page.context.browser, f"{url}/{path}", ARTIFACTS / f"cold-{path or 'decompose'}.png",
                                 settle=False)  # the live pages are the other tests' (every page opens ...)
    finally:
        bench.stop(process)
    print(f"cold first visit of /{path}: content after {content:.2f} s")
    with (ARTIFACTS / "cold-first-visit.txt").open("a") as log:  # the real figures, kept with the screenshots
        log.write(f"/{path}\t{content:.2f} s\n")
    assert content <= FIRST_VISIT_BOUND_S, f"/{path}: {content:.2f} s"


# Three visitors at once on a cold server: each session's script runs in its own thread, and plotly peeks at
# numpy/pandas in sys.modules, so one page's half-done `import pandas` broke another's chart (issue 24: 3 of 4
# trials showed "partially initialized module 'numpy'" on /squeeze and /opf). Pages with charts in their first paint.
AT_ONCE = ["squeeze", "opf", "variation"]


def test_three_visitors_at_once_on_a_cold_server(page, tmp_path):
    """Three tabs opened together on a new server (nothing imported yet): every page renders, no exception."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_first_visit", ROOT / "benchmarks" / "bench_first_visit.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    process, url = bench.start_server(tmp_path / "cache", tmp_path / "runs", ARTIFACTS / "at-once-streamlit.log")
    browser = page.context.browser
    contexts = [browser.new_context(viewport={"width": 1400, "height": 2400}) for _ in AT_ONCE]  # three visitors
    try:
        tabs = [context.new_page() for context in contexts]
        for tab, path in zip(tabs, AT_ONCE):
            tab.set_default_timeout(120_000)
            tab.goto(f"{url}/{path}", wait_until="commit")  # do not wait for one before asking for the next
        for tab, path in zip(tabs, AT_ONCE):
            tab.locator("h1", has_text=PAGES[path]).first.wait_for()
            settle(tab)
            no_exception(tab, f"at-once-{path}")
    finally:
        for context in contexts:
            context.close()
        bench.stop(process)


def test_no_request_leaves_the_server(server, page):
    """Offline: opening every page asks nothing of another host (the favicon once came from fonts.gstatic.com)."""
    from urllib.parse import urlparse

    url, *_ = server
    outside = []

    def watch(request):
        if not request.url.startswith("data:") and urlparse(request.url).hostname not in ("127.0.0.1", "localhost"):
            outside.append(request.url)

    page.on("request", watch)
    try:
        for path in PAGES:
            page.goto(f"{url}/{path}")
            settle(page)
            page.locator("h1", has_text=PAGES[path]).first.wait_for()
        assert page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href").startswith("data:")
    finally:
        page.remove_listener("request", watch)
    assert not outside, outside
