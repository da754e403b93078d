"""app.shared_imports: the modules plotly peeks at are imported once, and wait() returns once they are whole."""
import sys
import threading

from app import shared_imports


def test_wait_returns_with_every_module_imported():
    assert shared_imports.wait(timeout=120)
    for name in shared_imports.MODULES:
        assert name in sys.modules


def test_start_imports_in_one_thread_only():
    shared_imports.start()
    shared_imports.start()
    assert sum(t.name == "shared-imports" for t in threading.enumerate()) <= 1


def test_the_modules_are_the_ones_plotly_peeks_at():
    """Every get_module(..., should_load=False) in plotly names a module of MODULES (or one not installed)."""
    import re
    from pathlib import Path

    import _plotly_utils
    import plotly

    peeked = set()
    for package in (plotly, _plotly_utils):
        for path in Path(package.__file__).parent.rglob("*.py"):
            peeked |= set(re.findall(r'get_module\(\s*"([\w.]+)",\s*should_load=False', path.read_text()))
    installed = {name for name in peeked if name.split(".")[0] in sys.modules or _importable(name)}
    assert installed <= set(shared_imports.MODULES), installed - set(shared_imports.MODULES)


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
