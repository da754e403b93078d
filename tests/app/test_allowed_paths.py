"""The dashboard's folder fields accept only folders inside their configured roots."""
import pytest

from app.allowed_paths import KINDS, ROOT, AllowedPaths, dashboard_roots


@pytest.fixture
def roots(tmp_path) -> AllowedPaths:
    for kind in KINDS:
        (tmp_path / kind).mkdir()
    return AllowedPaths(**{kind: str(tmp_path / kind) for kind in KINDS})


@pytest.mark.parametrize("kind", KINDS)
def test_the_root_and_folders_below_it_are_allowed(roots, tmp_path, kind):
    root = tmp_path / kind
    assert roots.check(kind, str(root)) == str(root)
    assert roots.check(kind, str(root / "a" / "not-yet-made")) == str(root / "a" / "not-yet-made")
    assert roots.check(kind, f"{root}/a/../b") == str(root / "b")  # a '..' that stays inside is fine


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("typed", ["/etc", "/", "{root}/..", "{root}/../../x", "{root}-evil", "{other}"])
def test_folders_outside_the_root_are_refused(roots, tmp_path, kind, typed):
    other = next(k for k in KINDS if k != kind)  # another kind's root is no root of this kind
    path = typed.format(root=tmp_path / kind, other=tmp_path / other)
    with pytest.raises(ValueError, match=f"is outside {tmp_path / kind}.*{roots_flag(kind)}"):
        roots.check(kind, path)


def roots_flag(kind: str) -> str:
    return {"runs": "--runs-dir", "cache": "--cache-dir", "glue": "--glue-dir"}[kind]


def test_a_symlink_out_of_the_root_is_refused(roots, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "runs" / "link").symlink_to(outside)
    with pytest.raises(ValueError, match=f"resolves to {outside}"):
        roots.check("runs", str(tmp_path / "runs" / "link"))
    with pytest.raises(ValueError, match="is outside"):
        roots.check("runs", str(tmp_path / "runs" / "link" / "deeper"))


def test_a_root_that_is_a_symlink_allows_its_target(tmp_path):
    real = tmp_path / "real-runs"
    real.mkdir()
    (tmp_path / "runs-link").symlink_to(real)
    roots = AllowedPaths(runs=str(tmp_path / "runs-link"), cache=str(tmp_path), glue=str(tmp_path))
    assert roots.check("runs", str(tmp_path / "runs-link" / "x")) == str(real / "x")
    assert roots.check("runs", str(real)) == str(real)


def test_relative_paths_are_taken_from_the_working_directory(roots, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert roots.check("runs", "runs/sub") == str(tmp_path / "runs" / "sub")
    with pytest.raises(ValueError, match="is outside"):
        roots.check("runs", "cache")


@pytest.mark.parametrize("typed", ["", "   ", None])
def test_an_empty_field_is_refused(roots, typed):
    with pytest.raises(ValueError, match="runs folder is empty"):
        roots.check("runs", typed)


def test_unusable_paths_and_kinds_are_messages(roots):
    with pytest.raises(ValueError, match="GLUE folder .* not a usable path"):
        roots.check("glue", "a\0b")
    with pytest.raises(ValueError, match="unknown kind of folder 'home'"):
        roots.check("home", "/tmp")
    with pytest.raises(ValueError, match="root of the cache folder is empty"):
        AllowedPaths(runs="/r", cache=" ", glue="/g")


def test_roots_come_from_the_command_line_then_the_environment_then_defaults(tmp_path):
    env = {"MPO_RUNS_DIR": "/env/runs", "GLUE_DIR": "/env/glue"}
    roots = dashboard_roots(["--runs-dir", "/cli/runs", "-m", "not slow", "tests/app"], env)
    assert roots.runs == "/cli/runs" and roots.glue == "/env/glue"
    assert roots.cache == str(ROOT / "cache")  # neither given: the repository's folder
    defaults = dashboard_roots([], {})
    assert defaults.runs == str(ROOT / "runs") and defaults.glue == str(ROOT.parent / "shared" / "glue")
    with pytest.raises(ValueError, match="--glue-dir: expected one argument"):
        dashboard_roots(["--glue-dir"], {})
