"""The pages' first-paint snapshots: light to paint, and equal to what the code computes today."""
import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import build_snapshots, snapshot

from .pages import MAIN

ROOT = Path(MAIN).parents[1]


def test_painting_a_snapshot_imports_no_engine():
    code = ("import sys; import app.snapshot as s, app.views.first_paint; assert s.load('decompose') is not None; "
            "heavy = [m for m in ('torch', 'pandas', 'mpo_core', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("page", [  # the compress snapshot builds a model (~20 s): out of the fast subset
    pytest.param(page, marks=pytest.mark.slow) if page == "compress" else page for page in build_snapshots.BUILDERS])
@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_shipped_snapshot_is_what_the_code_computes(page):
    shipped = snapshot.load(page)
    assert shipped is not None, f"app/snapshots/{page}.json is missing: run python -m app.build_snapshots"
    fresh = build_snapshots.BUILDERS[page]()
    assert close(shipped["state"], fresh["state"])  # measured numbers (Compress: embedding cosines) to 1e-4
    assert shipped["caption"] == fresh["caption"]
    assert shipped["metrics"] == fresh["metrics"], "a default view changed: run python -m app.build_snapshots"
    assert close(shipped["figures"], fresh["figures"])  # Fisher scores (OPF) are sums whose order may vary
    prov = shipped["provenance"]
    assert prov["command"] == build_snapshots.COMMAND and prov["built"] and prov["versions"]["torch"]


def close(a, b, rel: float = 1e-4) -> bool:
    """Equal structures, floats equal to ``rel`` (relative), everything else exactly."""
    if isinstance(a, float) and isinstance(b, (int, float)):
        return a == pytest.approx(b, rel=rel, abs=1e-12)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and "bdata" in a and "bdata" in b:  # plotly's packed array: compare the numbers
        x, y = _unpack(a), _unpack(b)
        return x.shape == y.shape and x.dtype == y.dtype and bool(np.allclose(x, y, rtol=rel, atol=1e-12))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    return a == b


def _unpack(packed: dict) -> np.ndarray:
    """A plotly ``{"dtype", "bdata", "shape"}`` array (base64 of the raw values) as numpy."""
    values = np.frombuffer(base64.b64decode(packed["bdata"]), dtype=np.dtype(packed["dtype"]))
    shape = packed.get("shape")
    if isinstance(shape, str):
        shape = [int(s) for s in shape.split(",")]
    return values.reshape(shape) if shape else values


def _packed(values) -> dict:
    array = np.asarray(values, dtype="f8")
    return {"dtype": "f8", "bdata": base64.b64encode(array.tobytes()).decode(), "shape": f"{len(array)}"}


def test_close_compares_packed_plotly_arrays_by_their_numbers():
    assert close({"z": _packed([1.0, -9.9])}, {"z": _packed([1.0, -9.9 * (1 + 1e-9)])})  # last bits: a thread count
    assert not close({"z": _packed([1.0, -9.9])}, {"z": _packed([1.0, -9.8])})
    assert not close({"z": _packed([1.0, -9.9])}, {"z": _packed([1.0])})


def test_close_compares_floats_loosely_and_the_rest_exactly():
    assert close({"x": [1.0, "a"]}, {"x": [1.00000001, "a"]})
    assert not close({"x": [1.0, "a"]}, {"x": [1.01, "a"]})
    assert not close({"x": [1.0, "a"]}, {"x": [1.0, "b"]}) and not close([1.0], [1.0, 2.0])


def test_a_missing_or_foreign_snapshot_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "FOLDER", tmp_path)
    assert snapshot.load("decompose") is None
    (tmp_path / "decompose.json").write_text('{"page": "compare"}')
    assert snapshot.load("decompose") is None
    (tmp_path / "decompose.json").write_text("{torn")
    assert snapshot.load("decompose") is None


def test_the_provenance_line_names_command_and_commit():
    line = snapshot.describe({"provenance": {"built": "2026-12-03", "commit": "0123456789abcdef",
                                             "command": "python -m app.build_snapshots"}})
    assert "2026-12-03" in line and "commit 01234567" in line and "python -m app.build_snapshots" in line
