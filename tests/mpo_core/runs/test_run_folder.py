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
