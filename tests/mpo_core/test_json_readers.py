"""Every reader of untrusted JSON in mpo_core goes through mpo_core.json_file (issue 24).

Each reader is handed a file nested far deeper than Python's recursion limit;
each answers a ``ValueError`` naming the file (or, for a checkpoint, "not
complete") instead of a ``RecursionError``.
"""
import ast
import struct
from pathlib import Path

import pytest

from mpo_core.model.model_folder import read_json_object
from mpo_core.model.weights_file import check_safetensors_file
from mpo_core.reproduction.glue_grid import OVERRIDES_ENV, mode_settings
from mpo_core.runs.run_folder import checkpoint_complete

ROOT = Path(__file__).resolve().parents[2]
DEEP = "[" * 100_000 + "]" * 100_000
#: json.loads of text this program made itself (not read from a file)
TRUSTED = {"mpo_core/json_file.py", "mpo_core/training/fine_tune.py"}


def test_no_reader_of_json_bypasses_the_bounded_one():
    found = []
    for path in sorted((ROOT / "mpo_core").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("load", "loads")
                    and isinstance(node.value, ast.Name) and node.value.id == "json" and name not in TRUSTED):
                found.append(f"{name}:{node.lineno}")
    assert not found, f"read JSON through mpo_core.json_file instead: {found}"


def test_a_model_folder_config_is_read_within_bounds(tmp_path):
    (tmp_path / "config.json").write_text(DEEP)
    with pytest.raises(ValueError, match="config.json nests arrays/objects 100000 levels deep"):
        read_json_object(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"a": "' + "x" * 2000 + '"}')
    with pytest.raises(ValueError, match="larger than 1000 bytes"):
        read_json_object(tmp_path / "config.json", max_bytes=1000)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match="must hold a JSON object, not list"):
        read_json_object(tmp_path / "config.json")


def test_a_deep_trainer_state_is_an_incomplete_checkpoint(tmp_path):
    folder = tmp_path / "checkpoint-2"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(DEEP)
    assert checkpoint_complete(folder) is False
    (folder / "trainer_state.json").write_text('{"global_step": 2}')
    assert checkpoint_complete(folder) is True


def test_a_safetensors_header_is_read_within_bounds(tmp_path):
    header = DEEP.encode()
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError, match="w.safetensors is not a valid safetensors file: its header is not JSON"):
        check_safetensors_file(tmp_path / "w.safetensors")


def test_repro_overrides_are_read_within_bounds(monkeypatch):
    monkeypatch.setenv(OVERRIDES_ENV, DEEP)
    with pytest.raises(ValueError, match=f"{OVERRIDES_ENV} is not JSON to read: .* nests arrays/objects 100000"):
        mode_settings("small")
