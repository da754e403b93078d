import subprocess

from mpo_core.runs import provenance


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_outputs_under_results_do_not_make_the_code_dirty(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "start")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "record.json").write_text("{}\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-q", "-m", "files")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    clean = provenance._read_commit()
    assert clean and not clean.endswith("+dirty")
    (tmp_path / "results" / "record.json").write_text('{"a": 1}\n')  # the run's own output
    assert provenance._read_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance._read_commit() == clean + "+dirty"


def test_the_first_answer_is_kept(monkeypatch):
    monkeypatch.setattr(provenance, "_FIRST", [])
    answers = iter(["abc", "abc+dirty"])
    monkeypatch.setattr(provenance, "_read_commit", lambda: next(answers))
    assert provenance.commit() == "abc" and provenance.commit() == "abc"
