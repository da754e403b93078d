"""The read side of a run folder: config, results (None until finished), every run's results, torn files."""
import json

import pytest

from mpo_core.runs.run_folder import (
    CONFIG_FILE, RESULTS_FILE, RunFolder, read_config, read_json, read_results, read_run_results,
)
from mpo_core.runs.run_lock import LOCK_FILE


def test_what_a_run_folder_writes_reads_back(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.write_json(CONFIG_FILE, {"task": "rte", "seed": 3})
    assert read_config(run.path) == {"task": "rte", "seed": 3}
    assert read_run_results(run.path) is None and read_results(tmp_path) == []
    run.write_json(RESULTS_FILE, {"score": 0.5, "path": tmp_path})  # default=str: paths become text
    assert read_run_results(run.path) == {"score": 0.5, "path": str(tmp_path)}
    assert read_results(tmp_path) == [read_run_results(run.path)]
    assert sorted(p.name for p in run.path.iterdir()) == [LOCK_FILE, CONFIG_FILE, RESULTS_FILE]  # no temporary left


def test_a_torn_file_is_a_value_error_that_names_it(tmp_path):
    run = tmp_path / "torn"
    run.mkdir()
    (run / RESULTS_FILE).write_text('{"score": 0.5, "eval": {')  # a writer that died half way
    for read in (lambda: read_run_results(run), lambda: read_json(run / RESULTS_FILE)):
        with pytest.raises(ValueError, match=f"{run / RESULTS_FILE}.*not valid JSON"):
            read()


def test_a_listing_skips_a_torn_file_and_names_it(tmp_path):
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / RESULTS_FILE).write_text('{"score": 0.5, "eval": {')
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / RESULTS_FILE).write_text('{"score": 0.7}')
    problems = []
    assert read_results(tmp_path, problems) == [{"score": 0.7}]
    assert len(problems) == 1 and str(tmp_path / "torn" / RESULTS_FILE) in problems[0]


def test_a_missing_config_says_it_is_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        read_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"task": "sst2"}))
    assert read_config(tmp_path)["task"] == "sst2"


def test_read_results_skips_and_names_any_unreadable_record(tmp_path, monkeypatch):
    import mpo_core.json_file as json_file
    from pathlib import Path

    from mpo_core.runs.run_folder import read_results

    monkeypatch.setattr(json_file, "MAX_JSON_BYTES", 1000)  # "huge" without writing megabytes
    bodies = {"ok": b'{"score": 1}', "deep": b"[" * 5000 + b"]" * 5000, "huge": b'{"a": "' + b"x" * 2000 + b'"}',
              "list": b"[1]", "null": b"null", "latin1": b'{"a": "\xff"}', "torn": b'{"a": ',
              "digits": b'{"a": ' + b"9" * 5000 + b"}"}
    for name, body in bodies.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_bytes(body)
    problems = []
    assert read_results(tmp_path, problems) == [{"score": 1}]
    named = sorted(Path(p.split()[0]).parent.name for p in problems)
    assert named == sorted(set(bodies) - {"ok"}), problems


def test_read_json_is_bounded_in_depth_size_and_digits(tmp_path):
    from mpo_core.json_file import read_json_bounded

    file = tmp_path / "x.json"
    for body, needle in [("[" * 100 + "]" * 100, "100 levels deep"), ('{"a": "' + "x" * 100 + '"}', "larger than"),
                         ('{"a": ' + "1" * 101 + "}", "101 digits"), ('{"a": "[[[[["}', None)]:
        file.write_text(body)
        if needle is None:
            assert read_json_bounded(file, max_bytes=100, max_depth=4) == {"a": "[[[[["}
        else:
            with pytest.raises(ValueError, match=needle):
                read_json_bounded(file, max_bytes=100 if "x" in body else 10_000)


def test_read_metrics_skips_deep_long_and_non_object_lines(tmp_path, monkeypatch):
    import mpo_core.runs.run_folder as run_folder

    monkeypatch.setattr(run_folder, "MAX_METRICS_LINE", 5000)
    lines = ['{"step": 1}', "[" * 3000 + "]" * 3000, '{"a": "' + "x" * 9000 + '"}', "[1, 2]", '{"step": 2}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert run_folder.read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]


def test_json_depth_is_linear_in_escape_heavy_text():
    import time

    from mpo_core.json_file import json_depth

    start = time.perf_counter()
    assert json_depth('"' + '\\"' * 1_000_000) == 0  # one unterminated string of escaped quotes
    assert json_depth('{"a": [1, {"b": "[[\\"[["}]}') == 3 and json_depth('["\\\\", [[]]]') == 3
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("mark", ['{"step": 2}', '{"metrics_lines": "7"}', '{"metrics_lines": -1}', "[7]"])
def test_a_hand_edited_completion_mark_is_a_sentence(tmp_path, mark):
    """Was a bare "error: metrics_lines" (KeyError) or a TypeError on resume."""
    from mpo_core.runs.run_folder import COMPLETE_FILE

    checkpoint = tmp_path / "r" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / COMPLETE_FILE).write_text(mark)
    run = RunFolder.__new__(RunFolder)
    run.path = tmp_path / "r"
    with pytest.raises(ValueError, match=f"{COMPLETE_FILE}: metrics_lines must be a non-negative integer"):
        run.resume_point(checkpoint)
