"""Paint a page's snapshot (:mod:`app.snapshot`) before the page imports the engine.

UI side of the snapshots: ``streamlit`` and :mod:`app.snapshot` only, so that a
cold page shows its default view in milliseconds; the page then imports torch
and the engine and replaces (or keeps, for a stored run) what was painted.
"""
from __future__ import annotations

import streamlit as st

from app import shared_imports
from app.snapshot import describe, load, stored

METRICS_PER_ROW = 5


def show(snap: dict, live: bool = True, key: str = "") -> None:
    """Paint ``snap``: caption, metrics, text and figures.

    ``live``: the page replaces it with live numbers (call it inside a placeholder); otherwise it stays.
    ``key``: tells the charts apart when one run of a page paints the snapshot twice.
    """
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
    if figures:
        shared_imports.wait()  # plotly peeks at numpy/pandas: never while another session half-imports them
    for col, (index, figure) in zip(st.columns(len(figures)) if len(figures) > 1 else [st], enumerate(figures)):
        col.plotly_chart(figure, key=f"snapshot_{snap['page']}_{key}{index}")
    st.caption(describe(snap) if live else stored(snap))


def first_paint(page: str, session_key: str):
    """A placeholder here holding ``page``'s snapshot on a first visit (``session_key`` not in the session yet).

    The page imports the engine after this call and empties the placeholder once its live content is ready.
    """
    area = st.empty()
    if session_key not in st.session_state and (snap := load(page)) is not None:
        with area.container():
            show(snap)
    return area


class StoredSection:
    """A stored run shown open on a page without runs of the user's own, folded away once there are some.

    ``StoredSection(page, title)`` paints the snapshot under ``title`` at once (before the engine is
    imported); :meth:`fold` empties that spot and draws it again, closed, where it is called.
    """

    def __init__(self, page: str, title: str):
        self.snap, self.title = load(page), title
        self.area = st.empty()
        if self.snap is not None:
            with self.area.container():
                st.subheader(title)
                show(self.snap, live=False)

    def fold(self) -> None:
        self.area.empty()
        if self.snap is not None:
            with st.expander(self.title):
                show(self.snap, live=False, key="folded")
