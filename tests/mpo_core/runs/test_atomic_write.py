"""One atomic write: whole file or the old one, a unique temporary beside it, nothing left on failure."""
import json
import os
import threading

import pytest

from mpo_core.runs import atomic_write
from mpo_core.runs.atomic_write import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_text_json_and_bytes_are_written_whole(tmp_path):
    assert atomic_write_text(tmp_path / "a.txt", "héllo") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "b.json", {"x": [1, 2]}, sort_keys=True)
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}
    atomic_write_bytes(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.bin"]  # no temporary left


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"good": True})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_write.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"good": False})
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert json.loads(target.read_text()) == {"good": True}


def test_data_that_is_not_json_fails_before_any_file_exists(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_two_writers_use_their_own_temporary_files(tmp_path, monkeypatch):
    """Both writers hold a temporary at the same moment: each must be its own, and the target is one of theirs."""
    target, both_open = tmp_path / "config.json", threading.Barrier(2, timeout=10)
    temporaries, replace = [], os.replace

    def replace_when_both_wrote(src, dst):
        temporaries.append(src)
        both_open.wait()
        replace(src, dst)

    monkeypatch.setattr(atomic_write.os, "replace", replace_when_both_wrote)
    writers = [threading.Thread(target=atomic_write_json, args=(target, {"writer": k})) for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert len(set(temporaries)) == 2 and all(os.path.dirname(t) == str(tmp_path) for t in temporaries)
    assert json.loads(target.read_text())["writer"] in (0, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_a_plain_open_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w") as file:
            file.write("x")
        atomic_write_text(tmp_path / "atomic", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic").stat().st_mode & 0o7777 == (tmp_path / "plain").stat().st_mode & 0o7777


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_json(target, {"new": True})
    assert target.stat().st_mode & 0o7777 == 0o640
