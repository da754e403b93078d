"""Entry point of the MPO dashboard: ``streamlit run app/main.py``.

Builds the navigation only; each page is one file under ``views/``.
To add a page, add one ``st.Page(...)`` line to ``PAGES``.
"""
import sys
from pathlib import Path

import streamlit as st

# `mpo_core` and `app` live at the repository root, whatever the launch directory.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from app import shared_imports  # noqa: E402

# Before any page runs: numpy/pandas/PIL in one background thread (plotly peeks at them; see shared_imports).
shared_imports.start()

PAGES = [
    st.Page("views/decompose.py", title="Decompose", icon=":material/account_tree:", default=True),
    st.Page("views/compare.py", title="Compare methods", icon=":material/show_chart:"),
    st.Page("views/atlas.py", title="Entropy atlas", icon=":material/grid_on:"),
    st.Page("views/variation.py", title="Parameter variation", icon=":material/bar_chart:"),
    st.Page("views/squeeze.py", title="Squeeze training", icon=":material/compress:"),
    st.Page("views/opf.py", title="Over-parameterize (OPF)", icon=":material/unfold_more:"),
    st.Page("views/compress.py", title="Compress a model", icon=":material/download:"),
]

# The favicon is an emoji: Streamlit draws it as an inline SVG (a data: URL). A ":material/...:" favicon is fetched
# from fonts.gstatic.com, and the dashboard is offline. (The menu's :material/ icons come from Streamlit's
# bundled font, served by this server.)
PAGE_ICON = "🔗"
st.set_page_config(page_title="MPO compression dashboard", page_icon=PAGE_ICON, layout="wide")
st.navigation(PAGES).run()
