"""Notebook figures that show wherever the notebook is read, with no network: Jupyter, static HTML, GitHub.

Plotly's default in a kernel stores a figure only as its JSON mimetype, which
nbconvert's HTML, GitHub and other static viewers cannot draw: they show
blank space. :func:`setup` (the first cell of every notebook calls it)
selects the renderer :data:`RENDERER`, which displays each figure as one
bundle of three:

- ``application/vnd.plotly.v1+json``: JupyterLab, Notebook 7 and VS Code draw
  it interactively;
- ``text/html``: the interactive figure with plotly.js *embedded* (the first
  figure of a kernel carries the library, ~4.7 MB; nothing is fetched from a
  CDN), wrapped around a PNG of the figure that is shown where scripts do not
  run (GitHub, an untrusted notebook) and hidden where they do;
- ``image/png``: the same picture, for viewers that take images only.

The PNG comes from kaleido driving the system's Chromium (one browser kept
for the kernel, ~0.3 s a figure). Where it cannot start (no Chromium) or
``MPO_NOTEBOOK_PNG=0``, figures are still embedded interactively and one note
says why there is no picture.

:func:`setup` also quiets the libraries (:func:`quiet_libraries`: no
transformers load reports, warnings or training log lines, no progress bars
of transformers, datasets or the hub; mpo_core's own bars stay, as widgets
in Jupyter and as their last text in static HTML) and shows whole tables
(:func:`show_whole_tables`: no cell, column or row cut to "..."). Every
notebook opens with the stored full results (:func:`stored_full`) and runs
its small mode last, labelled as a pipeline check (:func:`pipeline_check`,
:func:`label_check`). Static HTML that loads nothing from a network comes from
:mod:`mpo_core.reproduction.render_notebooks`.
"""
from __future__ import annotations

import base64
import html
import os
import re
import sys
import uuid
import warnings

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer  # the documented way to add a renderer

RENDERER = "mpo_everywhere"
PNG_WIDTH, PNG_HEIGHT = 900, 500
PLOTLY_MIME = "application/vnd.plotly.v1+json"


class EverywhereRenderer(MimetypeRenderer):
    """JSON + HTML (plotly.js embedded, PNG fallback inside) + PNG, as described in the module docstring."""

    # Plotly copies a renderer for every figure, so what lasts for the kernel lives in the class.
    library_sent = False  # plotly.js goes with the first figure of the kernel only
    png_problem: str | None = None  # why there are no pictures, once that is known

    def __init__(self, png: bool = True):
        self.png = png

    def _png(self, fig_dict: dict) -> bytes | None:
        cls = type(self)
        if not self.png or cls.png_problem is not None:
            return None
        if os.environ.get("MPO_NOTEBOOK_PNG", "1") == "0":
            cls.png_problem = "MPO_NOTEBOOK_PNG=0"
            return None
        try:
            _start_kaleido()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "kopts ignored with a server": we set none
                return pio.to_image(fig_dict, format="png", width=PNG_WIDTH, height=PNG_HEIGHT)
        except Exception as exc:  # no Chromium, kaleido missing or failing: keep the interactive figure
            cls.png_problem = f"{type(exc).__name__}: {exc}"
            print(f"Figures are embedded without a static picture ({cls.png_problem}); they still draw wherever "
                  "JavaScript runs.", file=sys.stderr)
            return None

    def to_mimebundle(self, fig_dict: dict) -> dict:
        png = self._png(fig_dict)
        include = not EverywhereRenderer.library_sent
        EverywhereRenderer.library_sent = True
        box = f"mpo-figure-{uuid.uuid4().hex}"
        live = pio.to_html(fig_dict, include_plotlyjs=False, full_html=False, default_width="100%",
                           config={"responsive": True})
        parts = [library_html()] if include else []
        parts.append(f'<div id="{box}">')
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            title = html.escape(str(fig_dict.get("layout", {}).get("title", {}).get("text", "figure")))
            parts.append(f'<img class="mpo-static" alt="{title}" style="max-width:100%" '
                         f'src="data:image/png;base64,{data}">')
        parts.append(live)
        # Where scripts run (and plotly.js is there), the interactive figure replaces the picture.
        parts.append(f"<script>(function(){{var b=document.getElementById('{box}');"
                     "if(b&&window.Plotly){var i=b.querySelector('.mpo-static');if(i){i.style.display='none';}}"
                     "})();</script></div>")
        bundle = {PLOTLY_MIME: fig_dict, "text/html": "".join(parts)}
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle


def library_html() -> str:
    """plotly.js inline, as the global ``Plotly`` even where a page has require.js (nbconvert's HTML does):
    its UMD wrapper would otherwise register it as an AMD module only."""
    from plotly.offline import get_plotlyjs

    return ("<script>window.__mpoDefine = window.define; window.define = undefined;</script>"
            f"<script>{get_plotlyjs()}</script>"
            "<script>window.define = window.__mpoDefine;</script>")


_KALEIDO_STARTED = False


def _start_kaleido() -> None:
    """One headless Chromium for the kernel (kaleido's sync server), started on the first figure."""
    global _KALEIDO_STARTED
    if not _KALEIDO_STARTED:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        _KALEIDO_STARTED = True


def setup(png: bool = True) -> EverywhereRenderer:
    """The first cell of every notebook: libraries quiet (:func:`quiet_libraries`), whole tables
    (:func:`show_whole_tables`), and :data:`RENDERER` the default plotly renderer of this kernel; returns it."""
    quiet_libraries()
    show_whole_tables()
    renderer = EverywhereRenderer(png=png)
    EverywhereRenderer.library_sent = False  # a new kernel session (or a re-run of the first cell)
    pio.renderers[RENDERER] = renderer
    pio.renderers.default = RENDERER
    return renderer


# ----------------------------------------------------------------------------------------------- quiet libraries
# Read by transformers, datasets and huggingface_hub when they are imported (the notebooks import them after setup).
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # no load reports ("UNEXPECTED / MISSING" tables) nor advice
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also transformers' own bars (loading weights, writing shards)
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # "Casting the dataset", "Map"
}
# Python warnings raised inside these libraries are theirs to fix, not the reader's; mpo_core's own stay.
QUIET_WARNING_MODULES = r"(torch|transformers|datasets|accelerate|huggingface_hub|tensorly|sklearn|kaleido|choreographer)(\.|$)"


def quiet_libraries() -> None:
    """Silence what libraries print into a notebook's outputs (stderr, shown in red).

    - transformers at verbosity *error*: no load report per model (six screens in notebook 09 before),
      no advisory warnings; its progress bars, and those of datasets and the hub, off;
    - transformers' ``Trainer``, whose bar is off at that verbosity, would print each log dict instead
      (``PrinterCallback``): in a notebook a run's numbers arrive through its results, so it prints nothing;
    - Python warnings raised inside those libraries (:data:`QUIET_WARNING_MODULES`) are ignored.

    mpo_core's own progress bars (runs of a grid, matrices decomposed) and warnings are kept.
    """
    os.environ.update(QUIET_ENVIRONMENT)
    warnings.filterwarnings("ignore", module=QUIET_WARNING_MODULES)
    try:
        import transformers.utils.logging as hf_logging
        from transformers.trainer_callback import PrinterCallback
    except ImportError:  # transformers is in requirements.txt; a notebook without it needs none of this
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    PrinterCallback.on_log = _print_nothing  # see the docstring: the Trainer's log dicts are not printed
    for name in ("datasets", "huggingface_hub"):  # already imported (the first cell run again): tell them too
        if name in sys.modules:
            library = sys.modules[name]
            disable = getattr(library, "disable_progress_bars", None) or getattr(
                getattr(library, "utils", None), "disable_progress_bars", None)
            if disable is not None:
                disable()
    if "datasets" in sys.modules:
        sys.modules["datasets"].utils.logging.set_verbosity_error()


def _print_nothing(self, args, state, control, logs=None, **kwargs):
    """``PrinterCallback.on_log`` in a notebook kernel: nothing (see :func:`quiet_libraries`)."""
    return None


def show_whole_tables() -> None:
    """pandas shows every row, column and the whole text of each cell (its defaults cut text at 50 characters
    and tables at 60 rows with "..."); the largest stored table (Table 2's, ~220 rows) stays readable."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", None)
    pd.set_option("display.width", None)


# ----------------------------------------------------------------------------- stored full results, then the check
CHECK_LABEL = "Pipeline check (small mode: tiny data, a few steps; its numbers are not results)"


def stored_full(experiment: str, mode: str):
    """The stored full results of ``experiment``, what every notebook shows first; ``None`` where none are stored
    (the notebook prints the command that makes them). In full mode a missing experiment runs now (long: the
    README's command is the better way)."""
    from . import reproduce, results_store

    full = results_store.load_results(experiment, "full")
    if full is None and mode == "full":
        full = reproduce(experiment, "full")
    return full


def pipeline_check(experiment: str, mode: str):
    """This mode's run of ``experiment``, after the stored results: in the small mode (the default, what CI
    executes) a pipeline check whose numbers mean nothing, said so in one line; in full mode ``None`` (the stored
    full run above is this mode's run)."""
    from . import reproduce

    if mode == "full":
        print(f"{experiment}: full mode; the stored full run above is this mode's run, no separate check.")
        return None
    results = reproduce(experiment, mode)
    label = CHECK_LABEL if mode == "small" else f"This mode's run ({mode})"
    print(f"{label}: {results.describe()}")
    return results


def label_check(figure, mode: str = "small"):
    """``figure`` of a pipeline check, its title prefixed so that nobody reads its scores as results."""
    if mode != "small" or figure is None:
        return figure
    title = re.sub(r"\s*\((?:small mode|small)\)|\s*\[small\]", "", figure.layout.title.text or "").strip()
    figure.update_layout(title_text=f"Pipeline check (small mode){': ' + title if title else ''}")
    return figure
