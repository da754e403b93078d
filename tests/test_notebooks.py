"""The notebooks: every one executes in the small mode (what CI runs), failing on any error in any cell; each opens
with the stored full results and runs the small mode last as a labelled pipeline check; rendered to HTML, a page
loads nothing from a network (no script, style or font), its LaTeX is MathML and its widgets are text.

The executing tests are slow; the structure, the offline page (built from a notebook made here, no kernel) and the
quiet setup are fast. The notebooks share one results folder for the session, so experiments that reuse each
other's runs (Table 5's MPOP row, Table 4's MiniLM rows) find them.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mpo_core.reproduction import render_notebooks

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


def test_there_are_eleven_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(1, 12)]


@pytest.mark.slow  # executes every notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_small_mode(path, small_mode):
    import nbclient

    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # library noise is silenced: no load reports or warnings in red, no Trainer progress tables or log lines
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    noise = [line for line in stderr.splitlines() if "Warning" in line and "/mpo_core/" not in line]
    assert "LOAD REPORT" not in stderr and not noise, stderr[:2000]  # mpo_core's own warnings are kept
    texts = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs)
    assert "<IPython.core.display.HTML object>" not in texts  # transformers' notebook progress table
    assert "'loss':" not in texts and "Loading weights" not in texts and "Casting the dataset" not in texts


@pytest.mark.slow  # executes notebook 01
def test_an_executed_notebook_shows_its_figures_in_static_html(small_mode, tmp_path):
    """The offline HTML of notebook 01 holds each figure twice over: interactive with plotly.js embedded, and as
    a PNG for viewers without scripts; its LaTeX is MathML; nothing is fetched from a network; no progress-bar
    warning."""
    import nbclient

    path = ROOT / "notebooks" / "01_mpo_basics.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "notebook 01 displayed no figure"
    assert all("image/png" in o["data"] and "text/html" in o["data"] for o in figures)
    assert not [o for o in outputs if o.get("name") == "stderr" and "IProgress not found" in o.get("text", "")]
    page = render_notebooks.to_html(notebook)  # raises if the page would load anything from a network
    (tmp_path / "01.html").write_text(page)
    assert not render_notebooks.network_references(page)
    assert page.count("<math") >= 10 and "$\\rho$" not in page  # the markdown's LaTeX, drawn without a script
    assert page.count('class="mpo-static"') >= len(figures)  # the pictures
    assert page.count("data:image/png;base64,") >= len(figures)
    from plotly.offline import get_plotlyjs

    assert "Plotly.newPlot" in page and get_plotlyjs()[:200] in page  # the interactive figures, library inline
    assert page.count(get_plotlyjs()[:200]) == 1  # once, with the first figure
    assert not re.search(r'<script[^>]*src="[^"]*plot\.?ly', page)  # nothing fetched for the figures
    assert "stored full run" in page.lower() and "Pipeline check" in page


# ------------------------------------------------------------------------------------------------- structure (fast)
def _cells(path):
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_opens_with_the_stored_full_results_and_ends_with_the_pipeline_check(path):
    cells = _cells(path)
    assert "notebook_display.setup()" in cells[1].source  # quiet libraries, whole tables, offline figures
    headings = [(i, c.source.splitlines()[0]) for i, c in enumerate(cells)
                if c.cell_type == "markdown" and c.source.startswith("## ")]
    first, check = headings[0], [i for i, h in headings if h.startswith("## Pipeline check")]
    assert first[1].startswith("## The stored full run"), first
    assert len(check) == 1 and check[0] > first[0]
    code = [(i, c.source) for i, c in enumerate(cells) if c.cell_type == "code"]
    stored = [i for i, source in code if "notebook_display.stored_full(" in source]
    runs = [i for i, source in code if "pipeline_check(" in source and "stored_full" not in source]
    assert stored and min(stored) < check[0], "the stored full results come first"
    assert runs and min(runs) > check[0], "the small mode runs after the pipeline-check heading"
    assert not [i for i, source in code if re.search(r"\breproduce\(|load_or_run\(", source)], \
        "every run goes through stored_full / pipeline_check"
    assert "pipeline check" in cells[check[0]].source.lower() and "not results" in cells[check[0]].source


# ------------------------------------------------------------------------------------------- offline pages (fast)
def _offline_notebook():
    """A notebook as an executed one looks: LaTeX in markdown, a plotly figure (library embedded), a table with long
    text, and a tqdm bar's widget displayed at 0 % whose kept state is 100 %."""
    import pandas as pd
    import plotly.graph_objects as go

    from mpo_core.reproduction.notebook_display import EverywhereRenderer

    EverywhereRenderer.library_sent = False
    figure = EverywhereRenderer(png=False).to_mimebundle(go.Figure(go.Scatter(y=[1, 3, 2])).to_dict())
    table = pd.DataFrame({"claim": ["x" * 120]})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("The ratio $\\rho$ and the bound $\\sqrt{\\sum_k \\epsilon_k^2}$:\n\n"
                                      "$$\\|M - M'\\|_F \\le \\epsilon$$"),
        nbformat.v4.new_code_cell("figure", outputs=[nbformat.v4.new_output("display_data", data=figure)]),
        nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/html": table.to_html(), "text/plain": "table"}, execution_count=1)]),
        nbformat.v4.new_code_cell("bar", outputs=[nbformat.v4.new_output("display_data", data={
            render_notebooks.WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "box"},
            "text/plain": "frontier:   0%|          | 0/5 [00:00<?, ?run/s]"})]),
    ]
    state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}},
             "a": {"model_name": "HTMLModel", "state": {"value": "frontier:\u2007100%"}},
             "b": {"model_name": "FloatProgressModel", "state": {"value": 5, "max": 5}},
             "c": {"model_name": "HTMLModel", "state": {"value": "\u20075/5\u2007[00:53&lt;00:00,\u200710.7s/run]"}}}
    nb.metadata["widgets"] = {render_notebooks.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return nb


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_rendered_notebook_loads_no_script_style_or_font_from_a_network():
    from nbconvert import HTMLExporter

    notebook = _offline_notebook()
    default, _ = HTMLExporter().from_notebook_node(notebook)
    assert render_notebooks.network_references(default)  # nbconvert's own page fetches require.js, MathJax, ...
    page = render_notebooks.to_html(notebook)
    assert render_notebooks.network_references(page) == []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page):  # the literal requirement, checked on its own
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", tag), tag
    assert not re.search(r"@import|url\(\s*[\"']?\s*(?:https?:)?//", page)
    for script in ("require.min.js", "MathJax.Hub.Config", "html-manager", "mermaid.esm"):  # nbconvert's fetches
        assert script in default and script not in page, script


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_a_rendered_page_draws_latex_as_mathml_and_widgets_as_their_last_text():
    page = render_notebooks.to_html(_offline_notebook())
    assert page.count("<math") == 3 and 'display="block"' in page
    assert "$\\rho$" not in page and "msqrt" in page
    assert "frontier: 100%|██████████| 5/5 [00:53&lt;00:00, 10.7s/run]" in page  # the bar's last state, as text
    assert "0/5" not in page and "widget-view" not in page
    assert "x" * 120 in page  # the table's text whole
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:200] in page  # the figure's library inline


def test_network_references_finds_each_way_a_page_fetches():
    fetches = ['<script src="https://cdn.example/x.js"></script>', "<script src='//cdn.example/x.js'></script>",
               '<link rel="stylesheet" href="http://cdn.example/x.css">', "<style>@import url(https://f.example/a.css)</style>",
               "<style>@font-face{src:url('https://f.example/a.woff2')}</style>",
               'const m = await import("https://cdn.example/mermaid.esm.min.mjs");',
               "s.src = 'https://unpkg.com/@jupyter-widgets/html-manager@*/dist/embed-amd.js';",
               '<img src="https://example.org/a.png">']
    for text in fetches:
        assert render_notebooks.network_references(text), text
    harmless = ['<a href="https://example.org/paper">the paper</a>', '<math xmlns="http://www.w3.org/1998/Math/MathML">',
                '<script src="data:text/javascript,1"></script>', '<img src="data:image/png;base64,AAAA">',
                "see https://example.org/x.js in the text"]
    for text in harmless:
        assert not render_notebooks.network_references(text), text


def test_latex_that_cannot_be_converted_stays_readable_text():
    assert render_notebooks.latex_to_mathml("\\frac{") == '<code class="mpo-tex">$\\frac{$</code>'
    assert render_notebooks.latex_to_mathml("\\rho").startswith('<math alttext="\\rho"')


def test_render_command_writes_an_offline_page_of_an_executed_notebook(tmp_path):
    source = tmp_path / "executed.ipynb"
    nbformat.write(_offline_notebook(), source)
    assert render_notebooks.main([str(source), "--no-execute", "--out", str(tmp_path / "html")]) == 0
    page = (tmp_path / "html" / "executed.html").read_text()
    assert "<math" in page and not render_notebooks.network_references(page)


# ------------------------------------------------------------------------------------------------ quiet setup (fast)
SETUP_PROBE = r"""
import io, json, logging, warnings, contextlib
import pandas as pd
from mpo_core.reproduction import notebook_display
notebook_display.setup(png=False)
out = {}
wide = pd.DataFrame({"text": ["y" * 300] * 100})
out["whole_cell"] = "y" * 300 in wide._repr_html_()
out["whole_rows"] = wide._repr_html_().count("<tr>") == 100 and "..." not in wide._repr_html_()
import transformers.utils.logging as hf_logging
out["transformers_level"] = hf_logging.get_verbosity()
err = io.StringIO()
handler = logging.StreamHandler(err)
logging.getLogger("transformers").addHandler(handler)
hf_logging.get_logger("transformers.modeling_utils").warning("LOAD REPORT")
out["load_report_shown"] = "LOAD REPORT" in err.getvalue()
from transformers.trainer_callback import PrinterCallback
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    PrinterCallback().on_log(None, type("S", (), {"is_local_process_zero": True})(), None, logs={"loss": 0.5})
out["trainer_printed"] = printed.getvalue()
with warnings.catch_warnings(record=True) as caught:
    warnings.warn_explicit("library", FutureWarning, "x.py", 1, module="transformers.modeling_utils")
    warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="mpo_core.tensor.baselines")
out["warnings_shown"] = sorted(str(w.message) for w in caught)
print(json.dumps(out))
"""


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_setup_silences_library_noise_and_shows_whole_tables():
    """In a process of its own (the setup changes process-wide state: logging, warnings, pandas options)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SETUP_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["whole_cell"] and out["whole_rows"]
    assert out["transformers_level"] == 40 and not out["load_report_shown"]
    assert out["trainer_printed"] == ""
    assert out["warnings_shown"] == ["ours"]  # a library's warning is silenced, mpo_core's is kept
