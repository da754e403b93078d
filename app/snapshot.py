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

This module is deliberately light: ``json`` and ``streamlit`` only (no torch,
no pandas, no plotly import of its own), so painting costs milliseconds.
Files: ``app/snapshots/<page>.json`` with keys ``page``, ``provenance``,
``caption``, ``metrics`` (rows of ``[label, value, help]``), ``figures``
(plotly figure dicts), ``markdown`` (text written from the numbers) and ``state`` (page-specific values, e.g. the bond dims
the numbers are for).
"""
from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "snapshots"
METRICS_PER_ROW = 5


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


def show(snap: dict, live: bool = True, key: str = "") -> None:
    """Paint ``snap``: caption, metrics, text and figures.

    ``live``: the page replaces it with live numbers (call it inside a placeholder); otherwise it stays.
    ``key``: tells the charts apart when one run of a page paints the snapshot twice.
    """
    import streamlit as st

    if snap.get("caption"):
        st.caption(snap["caption"])
    metrics = snap.get("metrics", [])
    for start in range(0, len(metrics), METRICS_PER_ROW):
        cols = st.columns(METRICS_PER_ROW)
        for col, (label, value, help_text) in zip(cols, metrics[start:start + METRICS_PER_ROW]):
            col.metric(label, value, help=help_text or None)
    if snap.get("markdown"):
        st.markdown(snap["markdown"])
    figures = snap.get("figures", [])
    for col, (index, figure) in zip(st.columns(len(figures)) if len(figures) > 1 else [st], enumerate(figures)):
        col.plotly_chart(figure, key=f"snapshot_{snap['page']}_{key}{index}")
    st.caption(describe(snap) if live else stored(snap))


def first_paint(page: str, session_key: str):
    """A placeholder here holding ``page``'s snapshot on a first visit (``session_key`` not in the session yet).

    The page imports the engine after this call and empties the placeholder once its live content is ready.
    """
    import streamlit as st

    area = st.empty()
    if session_key not in st.session_state and (snap := load(page)) is not None:
        with area.container():
            show(snap)
    return area


def stored(snap: dict) -> str:
    """One line for a snapshot that *is* the content (a stored run), not a stand-in for live numbers."""
    prov = snap.get("provenance", {})
    return (f"Drawn from those stored results by `{prov.get('command', '?')}` on {prov.get('built', '?')} "
            f"(code at commit {str(prov.get('commit'))[:8]}).")
