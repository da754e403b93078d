"""Static HTML of the notebooks that reads offline: nothing is loaded from a network.

nbconvert's HTML loads require.js, MathJax and (for notebooks with widgets) the
widget manager from CDNs, and imports mermaid from one when a diagram is
present; opened without a network, LaTeX then shows raw and widgets show
nothing. :class:`OfflineHTMLExporter` renders the same page without any of
them:

- LaTeX in markdown cells (``$...$``, ``$$...$$``, ``\\begin{...}``) becomes
  MathML when the page is written (``latex2mathml``, pure Python), which
  browsers draw without a script; without that package it stays as marked
  LaTeX text;
- no require.js, mermaid or MathJax script; plotly.js is already inline in the
  first figure of each notebook (:mod:`.notebook_display`);
- each widget (mpo_core's progress bars) becomes the text of its last state,
  read from the widget state the executed notebook keeps (``100% 5/5 ...``,
  not the ``0%`` it was displayed with), and no widget manager is loaded.

:func:`network_references` finds what a page would still fetch (a script or
stylesheet ``src``/``href`` on another host, a CSS ``@import`` or ``url()``,
a dynamic ``import()``, a quoted script, style or font address);
:func:`render` refuses to write a page that has any.

One command renders executed notebooks into ``artifacts/notebooks/``::

    python -m mpo_core.reproduction.render_notebooks                      # all eleven, small mode
    python -m mpo_core.reproduction.render_notebooks notebooks/01_mpo_basics.ipynb --out /tmp/html
    python -m mpo_core.reproduction.render_notebooks saved.ipynb --no-execute   # already executed

Executing runs each notebook's small mode (``MPO_REPRO_MODE``, default
``small``; one thread unless ``OMP_NUM_THREADS`` says otherwise) against the
results folder (``MPO_RESULTS_DIR``, default ``results/``), so the stored full
results open each page.
"""
from __future__ import annotations

import argparse
import copy
import html
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "artifacts" / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# The lab template, less every script it would fetch: require.js (nothing here needs it: plotly.js is loaded as
# a global), MathJax (math is MathML already), mermaid (no diagrams) and the widget manager (widgets are text).
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
/* MathML drawn by the browser, no script */
.jp-RenderedMarkdown math[display="block"] { display: block math; margin: 0.5em 0; }
.jp-RenderedMarkdown code.mpo-tex { background: none; }
/* a progress bar's last state, as text */
.mpo-widget-text { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); margin: 0; }
</style>
{%- endblock extra_css -%}
"""
TEMPLATE_FILE = "mpo_offline.html.j2"

_SCHEME = r"(?:https?:)?//"  # http://, https:// or protocol-relative //
NETWORK_PATTERNS = {
    "script src": re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?\s*" + _SCHEME, re.I),
    "link href": re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?\s*" + _SCHEME, re.I),
    "css @import": re.compile(r"@import\s+(?:url\(\s*)?[\"']?\s*" + _SCHEME, re.I),
    "css url()": re.compile(r"url\(\s*[\"']?\s*" + _SCHEME, re.I),
    "import()": re.compile(r"\bimport\s*\(\s*[\"'`]\s*" + _SCHEME, re.I),
    "media src": re.compile(r"<(?:img|iframe|embed|source|video|audio|object)\b[^>]*\b(?:src|data)\s*=\s*[\"']?\s*"
                            + _SCHEME, re.I),
    "quoted script, style or font": re.compile(
        r"[\"'`]" + _SCHEME + r"[^\"'`\s<>]+\.(?:m?js|css|woff2?|ttf|otf|eot)(?:[?#][^\"'`\s<>]*)?[\"'`]", re.I),
}


def network_references(page: str) -> list[str]:
    """What ``page`` would fetch from a network: each match as ``"kind: text"`` (empty: it reads offline).

    Links (``<a href>``) and namespace names (``xmlns``) are not fetched and not reported; neither are the
    map-tile and topojson addresses inside plotly.js, which only map and geo figures request.
    """
    found = []
    for kind, pattern in NETWORK_PATTERNS.items():
        for match in pattern.finditer(page):
            start = max(0, match.start() - 20)
            found.append(f"{kind}: {page[start:match.end() + 60]!r}")
    return found


# ------------------------------------------------------------------------------------------------------------- math
def latex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML for ``tex`` (``latex2mathml``); marked LaTeX text where the package is missing or cannot read it."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        convert = None
    if convert is not None:
        try:
            mathml = convert(tex, display="block" if display else "inline")
        except Exception:  # a construct latex2mathml does not know: keep the source readable
            mathml = None
        if mathml:
            # no namespace address in the page (HTML knows <math>); the LaTeX stays as the accessible text
            return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"',
                                  f' alttext="{html.escape(tex.strip(), quote=True)}"', 1)
    delimiter = "$$" if display else "$"
    return f'<code class="mpo-tex">{html.escape(delimiter + tex + delimiter)}</code>'


def _math_renderer_class():
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class OfflineMathRenderer(IPythonRenderer):
        """nbconvert's markdown renderer, with MathML where it leaves ``$...$`` for MathJax."""

        def inline_math(self, body: str) -> str:
            return latex_to_mathml(body)

        def block_math(self, body: str) -> str:
            return latex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    return OfflineMathRenderer


# ---------------------------------------------------------------------------------------------------------- widgets
def widget_text(model_id: str, state: dict) -> str:
    """The text a widget shows in its last state: the labels and values of a tqdm bar's HBox
    (``frontier: 100%|██████████| 5/5 [00:53<00:00, 10.7s/run]``), ``""`` for a widget with no text."""
    model = state.get(model_id) or {}
    fields = model.get("state") or {}
    name = model.get("model_name", "")
    if "children" in fields:
        parts = [widget_text(str(child).removeprefix("IPY_MODEL_"), state) for child in fields["children"]]
        return "".join(part for part in parts if part)
    if "Progress" in name and fields.get("max"):
        share = max(0.0, min(1.0, float(fields.get("value") or 0) / float(fields["max"])))
        filled = round(10 * share)
        return "|" + "█" * filled + " " * (10 - filled) + "|"
    value = fields.get("value", fields.get("description", ""))
    if isinstance(value, str):
        return html.unescape(re.sub(r"<[^>]+>", "", value)).replace("\xa0", " ").replace("\u2007", " ")
    return ""


def widgets_as_text(notebook):
    """A copy of ``notebook`` whose widget outputs are their last state's text (``text/html`` in a
    ``<pre>``) and which holds no widget state, so that no widget manager is needed to read it."""
    notebook = copy.deepcopy(notebook)
    state = ((notebook.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state") or {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if WIDGET_VIEW not in data:
                continue
            view = data.pop(WIDGET_VIEW)
            model_id = view.get("model_id", "") if isinstance(view, dict) else ""
            text = widget_text(model_id, state).strip() or str(data.get("text/plain", "")).strip()
            data["text/html"] = f'<pre class="mpo-widget-text">{html.escape(text)}</pre>'
            data["text/plain"] = text
    notebook.metadata.pop("widgets", None)
    return notebook


# --------------------------------------------------------------------------------------------------------- exporter
def offline_exporter():
    """An nbconvert ``HTMLExporter`` (lab template) that writes pages loading nothing from a network."""
    from jinja2 import DictLoader, pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    renderer_class = _math_renderer_class()

    class OfflineHTMLExporter(HTMLExporter):
        """See the module docstring."""

        @pass_context  # as nbconvert's own markdown2html (its template filters receive the cell's context)
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            path = context.get("resources", {}).get("metadata", {}).get("path", "")
            renderer = renderer_class(escape=False, attachments=cell.get("attachments", {}),
                                      embed_images=self.embed_images, path=path,
                                      anchor_link_text=self.anchor_link_text,
                                      exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

        def from_notebook_node(self, nb, resources=None, **kw):
            return super().from_notebook_node(widgets_as_text(nb), resources, **kw)

    return OfflineHTMLExporter(template_name="lab", template_file=TEMPLATE_FILE,
                               extra_loaders=[DictLoader({TEMPLATE_FILE: OFFLINE_TEMPLATE})])


def to_html(notebook) -> str:
    """The offline page of an (executed) notebook node; raises ``ValueError`` if it would fetch anything."""
    page, _ = offline_exporter().from_notebook_node(notebook)
    found = network_references(page)
    if found:
        raise ValueError("the page would load from a network:\n" + "\n".join(found[:10]))
    return page


# ------------------------------------------------------------------------------------------------------- executing
@contextmanager
def _environment(**values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(path: Path, mode: str = "small", timeout: int = 1800):
    """``path`` executed in a fresh kernel in ``mode``, from its folder (as Jupyter runs it)."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    with _environment(MPO_REPRO_MODE=mode, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")):
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(Path(path).resolve().parent)}}).execute()
    return notebook


def render(path: Path, out_dir: Path = DEFAULT_OUT, run: bool = True, mode: str = "small") -> Path:
    """Write ``out_dir/<name>.html`` for notebook ``path`` (executed first unless ``run`` is false); returns it."""
    import nbformat

    path = Path(path)
    notebook = execute(path, mode) if run else nbformat.read(path, as_version=4)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.html"
    target.write_text(to_html(notebook), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpo_core.reproduction.render_notebooks",
                                     description="Render notebooks to static HTML that loads nothing from a network.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the pages (default {DEFAULT_OUT})")
    parser.add_argument("--no-execute", action="store_true", help="render the notebooks' stored outputs as they are")
    parser.add_argument("--mode", default=os.environ.get("MPO_REPRO_MODE", "small"),
                        help="MPO_REPRO_MODE for executing (default small: the stored full results, then the check)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        target = render(path, args.out, run=not args.no_execute, mode=args.mode)
        print(f"{path} -> {target} ({target.stat().st_size / 1e6:.1f} MB, nothing loaded from a network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
