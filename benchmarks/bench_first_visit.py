"""Cold first visit of every dashboard page, in a real browser (target: real content within 3 s).

For each page a *new* server is started (``streamlit run app/main.py`` from
the repository root, as the README says, with an empty cache folder), waited
for until healthy, and the page is opened in headless Chromium. Two times are
printed, from the moment the browser asks for the page:

- **content**: the page's title is there and it shows something real: a chart
  with data points, an image, a table, or a metric with a value (see
  ``CONTENT_JS``); a spinner alone does not count;
- **settled**: Streamlit's running indicator has been gone for a second (the
  page has nothing left to compute).

With ``--after-restart`` each page is visited twice, on two servers that share
one cache folder: the second visit is what a visitor sees after a server restart
once the disk cache is filled (issue 27's target: settled within 5 s).

Run: ``python benchmarks/bench_first_visit.py [--pages decompose compare ...] [--after-restart]``.
Needs Debian's ``chromium`` and the ``playwright`` package (its driver only).
Screenshots of what each page showed at "content" go to
``test-artifacts/first-visit/``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "glue"
TARGET_S = 3.0
RESTART_TARGET_S = 5.0  # a visit after a server restart, the disk cache filled: settled
PAGES = {"decompose": "", "compare": "compare", "atlas": "atlas", "variation": "variation",
         "squeeze": "squeeze", "opf": "opf", "compress": "compress"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# True once the main area shows a title and real content: a plotly chart with points, an image,
# a data frame, or a metric whose value is not the "…" placeholder.
CONTENT_JS = """() => {
  const main = document.querySelector('[data-testid=stMain]') || document;
  const shown = el => el.getClientRects().length > 0;  // not inside a collapsed expander or a hidden tab
  if (!main.querySelector('h1')) return false;
  const points = Array.from(main.querySelectorAll('.js-plotly-plot')).some(el => shown(el) &&
      (el._fullData || []).some(t => ((t.x || t.y || t.z || t.values || []).length || 0) > 0));
  const images = Array.from(main.querySelectorAll('[data-testid=stImage] img')).some(shown);
  const tables = Array.from(main.querySelectorAll('[data-testid=stDataFrame], [data-testid=stTable]')).some(shown);
  const metrics = Array.from(main.querySelectorAll('[data-testid=stMetricValue]'))
      .some(m => shown(m) && m.innerText.trim() && m.innerText.trim() !== '…');
  return points || images || tables || metrics;
}"""
RUNNING_JS = "() => document.querySelectorAll('[data-testid=stStatusWidget]').length > 0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache: Path, runs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(MPO_CACHE_DIR=str(cache), MPO_RUNS_DIR=str(runs), GLUE_DIR=str(GLUE))
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=str(ROOT), env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError("streamlit did not become healthy in 120 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def visit(browser, url: str, shot: Path, timeout: float = 120, settle: bool = True) -> tuple[float, float]:
    """(seconds to content, seconds to settled) of one cold visit; ``settle=False`` leaves at the content
    (settled is then ``inf``: the live page's own load is not waited for)."""
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    tab.goto(url)
    content = settled = None
    quiet_since = None
    while time.perf_counter() - start < timeout:
        now = time.perf_counter() - start
        if content is None and tab.evaluate(CONTENT_JS):
            content = now
            tab.screenshot(path=str(shot))
            if not settle:
                break
        if tab.evaluate(RUNNING_JS) or content is None:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since > 1.0:
            settled = quiet_since
            break
        time.sleep(0.05)
    if settle:
        tab.screenshot(path=str(shot.with_name(shot.stem + "-settled.png")))
    tab.close()
    return (content if content is not None else float("inf")), (settled if settled is not None else float("inf"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "test-artifacts" / "first-visit")
    parser.add_argument("--after-restart", action="store_true",
                        help="visit each page again on a new server with the first one's cache folder")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("MPO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs a chromium executable", file=sys.stderr)
        return 2
    args.artifacts.mkdir(parents=True, exist_ok=True)
    rows = {}
    print(f"cold first visit, a new server per page (cpu count {os.cpu_count()}); target: content <= {TARGET_S:.0f} s")
    print(f"   {'page':<11} {'content':>9} {'settled':>9}")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for page in args.pages:
            cache, runs = Path(tmp) / page / "cache", Path(tmp) / page / "runs"
            process, url = start_server(cache, runs, args.artifacts / f"{page}.log")
            try:
                content, settled = visit(browser, f"{url}/{PAGES[page]}", args.artifacts / f"{page}.png")
            finally:
                stop(process)
            rows[page] = {"content_s": round(content, 2), "settled_s": round(settled, 2)}
            verdict = "met" if content <= TARGET_S else "MISSED"
            print(f"   {page:<11} {content:8.2f}s {settled:8.2f}s   {verdict}", flush=True)
            if args.after_restart:
                process, url = start_server(cache, runs, args.artifacts / f"{page}-restart.log")
                try:
                    again = visit(browser, f"{url}/{PAGES[page]}", args.artifacts / f"{page}-restart.png")
                finally:
                    stop(process)
                rows[page].update(restart_content_s=round(again[0], 2), restart_settled_s=round(again[1], 2))
                verdict = "met" if again[1] <= RESTART_TARGET_S else "MISSED"
                print(f"   {'  restart':<11} {again[0]:8.2f}s {again[1]:8.2f}s   settled <= {RESTART_TARGET_S:.0f} s: "
                      f"{verdict}", flush=True)
        browser.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
