"""A run's progress file: every phase at once, steps throttled, atomic, bounded on read, a pace-based estimate."""
import json

from mpo_core.runs import progress_file
from mpo_core.runs.progress_file import ProgressFile, read_progress, time_left


def test_phases_are_written_at_once_and_steps_at_most_every_interval(tmp_path, monkeypatch):
    clock = iter([100.0, 101.0, 101.1, 101.2, 101.7, 102.0])
    monkeypatch.setattr(progress_file.time, "time", lambda: next(clock))
    progress = ProgressFile(tmp_path / "p.json", min_interval=0.5)  # started at 100.0
    progress.phase("training", done=0, total=3, unit="steps")  # 101.0
    assert read_progress(tmp_path / "p.json")["done"] == 0
    progress.advance(1)  # 101.1: too soon after the phase was written
    assert read_progress(tmp_path / "p.json")["done"] == 0
    progress.advance(2)  # 101.2: still too soon
    progress.advance(3)  # 101.7: the last unit is always written
    record = read_progress(tmp_path / "p.json")
    assert record["done"] == 3 and record["total"] == 3 and record["started"] == 100.0
    assert record["updated"] == 101.7 and record["phase_started"] == 101.0
    progress.phase("done")  # 102.0
    assert read_progress(tmp_path / "p.json")["phase"] == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary files left


def test_without_a_path_nothing_is_written(tmp_path):
    ProgressFile(None).phase("training", done=1, total=2)
    assert not list(tmp_path.iterdir())


def test_a_bad_file_reads_as_no_progress(tmp_path):
    file = tmp_path / "p.json"
    assert read_progress(file) is None  # missing
    file.write_text('{"phase": "tra')  # torn
    assert read_progress(file) is None
    file.write_text("[1, 2]")  # not an object
    assert read_progress(file) is None
    file.write_text(json.dumps({"phase": "x" * (progress_file.MAX_BYTES + 1)}))  # oversized
    assert read_progress(file) is None


def test_time_left_comes_from_the_measured_pace():
    record = {"done": 10, "total": 40, "phase_started": 0.0, "updated": 20.0}  # 2 s per step
    assert time_left(record, now=20.0) == 60.0
    assert time_left(record, now=25.0) == 55.0  # time since the last write counts
    assert time_left({**record, "done": 1}, now=20.0) is None  # one step is no pace
    assert time_left({**record, "done": 40}, now=20.0) == 0.0
    assert time_left({"phase": "loading the model"}) is None
