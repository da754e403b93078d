"""The shipped Streamlit settings: loopback only, headless, small uploads, no usage statistics, from any directory."""
import ipaddress
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".streamlit" / "config.toml"


def test_the_shipped_config_keeps_the_server_on_loopback():
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert 1 <= config["server"]["maxUploadSize"] <= 20
    assert config["browser"]["gatherUsageStats"] is False


def test_the_script_level_config_is_the_same_file():
    """Streamlit also reads .streamlit/config.toml beside the main script: a launch from elsewhere gets it too."""
    assert (ROOT / "app" / ".streamlit" / "config.toml").resolve() == CONFIG.resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_env(**extra) -> dict:
    """The environment without STREAMLIT_* variables, which would override the shipped config."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}, **extra}


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url} in {timeout} s")


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (a server on 0.0.0.0 would answer on them)."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback]


def assert_listens_on_loopback_only(pid: int, port: int) -> None:
    """Every listening socket of the server is on a loopback address, and no other address answers."""
    listening = [c.laddr for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(ipaddress.ip_address(a.ip).is_loopback for a in listening), listening
    assert port in [a.port for a in listening]
    for address in other_addresses():
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((address, port))


@pytest.mark.slow  # a real server
def test_a_launch_from_another_directory_listens_on_loopback_only(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=str(tmp_path), env=streamlit_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        assert_listens_on_loopback_only(process.pid, port)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "127.0.0.1" in output and "Network URL" not in output, output


# --------------------------------------------------------------------------- offline
APP = ROOT / "app"


def test_the_favicon_is_not_fetched_from_a_font_cdn():
    """A ":material/...:" page_icon makes the browser fetch the favicon from fonts.gstatic.com (issue 24)."""
    import re

    sources = {path: path.read_text(encoding="utf-8") for path in APP.rglob("*.py")}
    calls = {path: re.findall(r"page_icon\s*=\s*([^,)\n]+)", text) for path, text in sources.items()}
    assert any(calls.values()), "set_page_config(page_icon=...) not found"
    for path, values in calls.items():
        for value in values:
            assert ":material" not in value, f"{path.relative_to(ROOT)}: page_icon={value}"
    main = sources[APP / "main.py"]
    (icon,) = re.findall(r'^PAGE_ICON = "(.+)"$', main, re.M)
    assert not icon.startswith(":") and len(icon) <= 2  # an emoji: drawn as an inline SVG, no request


def test_no_url_of_another_host_in_the_app_or_its_config():
    """The dashboard is offline: nothing under app/ (code, snapshots) or .streamlit/ names an outside URL."""
    import re

    url = re.compile(r"\bhttps?://(?!127\.0\.0\.1|localhost|www\.w3\.org/2000/svg)[^\s\"')]+")
    files = [*APP.rglob("*.py"), *APP.rglob("*.json"), *APP.rglob("*.toml"), *(ROOT / ".streamlit").glob("*")]
    found = [f"{path.relative_to(ROOT)}: {hit}" for path in files if path.is_file()
             for hit in url.findall(path.read_text(encoding="utf-8", errors="replace"))]
    assert not found, found
