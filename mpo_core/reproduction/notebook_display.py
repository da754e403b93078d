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
says why there is no picture. Progress bars (``tqdm.auto``) render as widgets
because ``ipywidgets`` is installed (requirements.txt).
"""
from __future__ import annotations

import base64
import html
import os
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
    """Make :data:`RENDERER` the default plotly renderer of this kernel; returns it."""
    renderer = EverywhereRenderer(png=png)
    EverywhereRenderer.library_sent = False  # a new kernel session (or a re-run of the first cell)
    pio.renderers[RENDERER] = renderer
    pio.renderers.default = RENDERER
    return renderer
