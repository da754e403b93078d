"""Streamlit dashboard over :mod:`mpo_core` (``streamlit run app/main.py``).

``main.py`` builds the navigation, ``views/<page>.py`` holds one file per page,
and ``app/<page>.py`` (``decompose``, ``compare``, ``atlas``, ``variation``,
``squeeze``, ``opf``, ``compress``) is that page's back end: the numbers,
tables and figures it shows (back ends never import streamlit).
"""
