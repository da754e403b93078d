"""Streamlit dashboard over :mod:`mpo_core` (``streamlit run app/main.py``).

``main.py`` builds the navigation, ``views/`` holds one file per page, and
``backend.py`` holds everything the pages compute (it never imports streamlit).
"""
