"""numpy, pandas and PIL imported once per server process, before any chart is drawn.

plotly does not import numpy, pandas or PIL: it *peeks* at ``sys.modules``
(``_plotly_utils.optional_imports.get_module(name, should_load=False)``) to
know whether a value may be an array. Streamlit runs each session's script in
its own thread, so on a cold server one visitor's page can be half-way
through ``import pandas`` while another's chart is validated: plotly then gets
the partially initialized module and fails ("AttributeError: partially
initialized module 'numpy' has no attribute 'ndarray'").

:func:`start` (called by the entry file on every script run, it acts once)
imports them in one background thread, so the first paint (text and metrics)
is not held up; :func:`wait` blocks until they are complete and is called
before anything hands plotly a figure. A thread that imports one of them
itself is safe: Python's per-module import lock makes it wait for the
background import instead of seeing a half-built module.

No streamlit here (a back end, as every module of ``app/``).
"""
from __future__ import annotations

import importlib
import logging
import threading

# Every module plotly peeks at with should_load=False (plotly 5-6: _plotly_utils/basevalidators.py,
# _plotly_utils/utils.py, plotly/io/_json.py), and plotly itself.
MODULES = ("numpy", "pandas", "PIL.Image", "plotly.graph_objects", "plotly.io")

_lock = threading.Lock()
_thread: threading.Thread | None = None
_done = threading.Event()


def _import_all() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the page importing it will show the real error; never hang a wait()
        logging.getLogger(__name__).exception("importing %s failed", MODULES)
    finally:
        _done.set()


def start() -> None:
    """Import :data:`MODULES` in a background thread, once per process (later calls do nothing)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="shared-imports", daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Block until :data:`MODULES` are fully imported (starting the import if nobody has); ``False`` on timeout."""
    start()
    return _done.wait(timeout)
