"""A page's first paint: content computed ahead of time, shown while the live page loads.

A cold dashboard process needs seconds before it can compute anything (torch
and the engine import in ~2.5 s on a 2-core CPU, the word embedding's
decomposition takes another ~1.3 s). So that a first visit shows real
content at once, a page may ship a *snapshot*: the exact numbers and figures
its default settings produce, computed by ``python -m app.build_snapshots``
with the same back-end functions, stamped with where they came from. The page
paints it before importing the engine and replaces it with the live content
as soon as that is ready; tests check that the shipped snapshot still equals
what the code computes.

This module is the data side (``json`` only, no streamlit, as every back end
under ``app/``); :mod:`app.views.first_paint` paints a snapshot. Neither
imports torch, pandas or plotly of its own, so painting costs milliseconds.
Files: ``app/snapshots/<page>.json`` with keys ``page``, ``provenance``,
``caption``, ``metrics`` (rows of ``[label, value, help]``), ``figures``
(plotly figure dicts), ``markdown`` (text written from the numbers) and ``state`` (page-specific values, e.g. the bond dims
the numbers are for).
"""
from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "snapshots"


def path(page: str) -> Path:
    return FOLDER / f"{page}.json"


def load(page: str) -> dict | None:
    """The shipped snapshot of ``page``, or ``None`` when there is none or it cannot be read."""
    try:
        data = json.loads(path(page).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("page") == page else None


def describe(snap: dict) -> str:
    """One line saying where the numbers came from."""
    prov = snap.get("provenance", {})
    commit = str(prov.get("commit") or "")[:8]
    parts = [f"built {prov['built']}" if prov.get("built") else "", f"commit {commit}" if commit else "",
             f"`{prov['command']}`" if prov.get("command") else ""]
    return "Precomputed for the default settings (" + ", ".join(p for p in parts if p) + "); live numbers follow."


def stored(snap: dict) -> str:
    """One line for a snapshot that *is* the content (a stored run), not a stand-in for live numbers."""
    prov = snap.get("provenance", {})
    return (f"Drawn from those stored results by `{prov.get('command', '?')}` on {prov.get('built', '?')} "
            f"(code at commit {str(prov.get('commit'))[:8]}).")
