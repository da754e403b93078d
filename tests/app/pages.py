"""Helpers shared by the AppTest page tests: open a page through app/main.py, read a metric."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def open_page(view: str, monkeypatch=None, timeout: float = 120, **env) -> AppTest:
    """The app opened on ``views/<view>.py`` (with ``env`` set through ``monkeypatch``), checked exception-free."""
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    at = AppTest.from_file(MAIN, default_timeout=timeout).run()
    at.switch_page(f"views/{view}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    """The value shown by the one metric labelled ``label``."""
    (value,) = [m.value for m in at.metric if m.label == label]
    return value
