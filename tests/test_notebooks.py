"""Every notebook executes in the small mode (what CI runs), failing on any error in any cell.

The notebooks share one results folder for the session, so experiments that
reuse each other's runs (Table 5's MPOP row, Table 4's MiniLM rows) find them.
"""
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # executes every notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_mode(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("MPO_REPRO_MODE", "MPO_RESULTS_DIR", "GLUE_DIR", "OMP_NUM_THREADS")}
    os.environ.update(MPO_REPRO_MODE="small", MPO_RESULTS_DIR=str(tmp_path_factory.mktemp("results")),
                      GLUE_DIR=str(ROOT.parent / "shared" / "glue"), OMP_NUM_THREADS="1")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_there_are_ten_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(1, 11)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_small_mode(path, small_mode):
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]


def test_an_executed_notebook_shows_its_figures_in_static_html(small_mode, tmp_path):
    """nbconvert's HTML of notebook 01 holds each figure twice over: interactive with plotly.js embedded, and as
    a PNG for viewers without scripts; nothing is fetched from a CDN; no progress-bar warning."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    path = ROOT / "notebooks" / "01_mpo_basics.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "notebook 01 displayed no figure"
    assert all("image/png" in o["data"] and "text/html" in o["data"] for o in figures)
    assert not [o for o in outputs if o.get("name") == "stderr" and "IProgress not found" in o.get("text", "")]
    page, _ = HTMLExporter().from_notebook_node(notebook)
    (tmp_path / "01.html").write_text(page)
    assert page.count('class="mpo-static"') >= len(figures)  # the pictures
    assert page.count("data:image/png;base64,") >= len(figures)
    from plotly.offline import get_plotlyjs

    assert "Plotly.newPlot" in page and get_plotlyjs()[:200] in page  # the interactive figures, library inline
    assert page.count(get_plotlyjs()[:200]) == 1  # once, with the first figure
    assert not re.search(r'<script[^>]*src="[^"]*plot\.?ly', page)  # nothing fetched for the figures
