"""Untrusted inputs bounded before anything is allocated: the issue's memory and recursion probes.

Each case runs in a child process under a 3 GiB address-space limit and a
60 s timeout, so a regression (a 4 GB allocation, a RecursionError) fails the
test instead of the machine. Each must give one ``error:`` line naming what is
wrong (exit 2, no traceback), or for ``runs`` skip and name the bad file, and
leave no file outside the runs folder.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "glue"
TINY = ["--num-hidden-layers", "1", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "1",
        "--batch-size", "4", "--max-length", "16"]
LIMIT_BYTES, TIMEOUT_S = 3 << 30, 60

CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time, traceback
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from mpo_core.cli import main
    out = []
    for name, argv in json.loads(sys.argv[1]):
        err, start = io.StringIO(), time.time()
        with contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except BaseException:
                code = "raised"
                traceback.print_exc()
        out.append([name, code, err.getvalue(), time.time() - start])
    print("RESULTS" + json.dumps(out))
""")


def run_cases(cases: dict, cwd: Path) -> dict:
    """``{name: (exit code, stderr, seconds)}`` of ``main(argv)`` for each case, in one memory-limited child."""
    env = {**os.environ, "GLUE_DIR": str(GLUE), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, "-c", CHILD.format(limit=LIMIT_BYTES), json.dumps(list(cases.items()))],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S * len(cases))
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULTS")), None)
    assert line, f"the child died (rc {done.returncode}): {done.stderr[-2000:]}"
    return {name: (code, err, seconds) for name, code, err, seconds in json.loads(line[len("RESULTS"):])}


def files_outside(world: Path) -> set[Path]:
    return set(world.rglob("*")) - set((world / "runs").rglob("*"))


def assert_one_line_error(name, result, needle):
    code, err, seconds = result
    lines = err.strip().splitlines()
    errors = [l for l in lines if l.startswith("error:")]
    assert code == 2, f"{name}: exit {code}: {lines[-3:]}"
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in err, f"{name}: {lines[-3:]}"
    assert seconds < TIMEOUT_S, f"{name}: {seconds:.0f} s"


@pytest.fixture
def world(tmp_path, monkeypatch):
    for name in ("runs", "cwd", "inputs"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def write_config(folder: Path, name: str, body) -> str:
    path = folder / f"{name}.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def config_cases(world: Path) -> dict:
    inputs, runs = world / "inputs", str(world / "runs")
    mpo = lambda mpo_config: {"task": "rte", "runs_dir": runs, "strategy": "mpo_lfa",
                              "strategy_options": {"compression_ratio": 0.5, "mpo_config": mpo_config}}
    configs = {
        "n = 10**7": (mpo({"n": 10**7}), "at most 12"),
        "deep config": ('{"task": ' + "[" * 200_000 + "]" * 200_000 + "}", "levels deep"),
        "5000-digit integer": ('{"task": "rte", "seed": ' + "7" * 5000 + "}", "5000 digits"),
        "config of 30 MB": ('{"task": "rte", "model": "' + "x" * (30 << 20) + '"}', "larger than 1 MiB"),
        "factors a string": (mpo({"groups": ["query"], "factors": {"query": "ab"}}), "factors['query'] must be"),
        "factors a dict": (mpo({"groups": ["query"], "factors": {"query": {"out_factors": [2]}}}),
                           "factors['query'] must be [out_factors, in_factors]"),
        "factors of another length": (mpo({"groups": ["query"], "factors": {"query": [[384, 1], [1, 1, 384]]}}),
                                      "same length n"),
        "groups an int": (mpo({"groups": 5}), "groups must be a list"),
        "layers a string": (mpo({"layers": "all"}), "layers must be a list"),
        "bond_dims a string": (mpo({"groups": ["query"], "bond_dims": "query"}), "bond_dims must be a JSON object"),
        "strategy_options a string": ({"task": "rte", "strategy": "mpo_lfa", "strategy_options": "x"}, "JSON object"),
        "seed of 31 digits": ({"task": "rte", "seed": 10**30}, "seed must be"),
        "opf groups an int": ({"task": "rte", "strategy": "opf", "strategy_options": {"groups": 5}}, "opf: groups"),
        "mpop_dir run an int": ({"task": "rte", "strategy": "mpop_dir", "strategy_options": {"bond_dims_from": 5}},
                                "bond_dims_from must be the path"),
    }
    return {name: (["finetune", "--config", write_config(inputs, f"c{i}", body)], needle)
            for i, (name, (body, needle)) in enumerate(configs.items())}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_bad_configs_are_refused_before_anything_is_allocated(world):
    cases = config_cases(world)
    before = files_outside(world)
    results = run_cases({name: argv for name, (argv, _) in cases.items()}, world / "cwd")
    for name, (_, needle) in cases.items():
        assert_one_line_error(name, results[name], needle)
    assert files_outside(world) == before
    assert not list((world / "runs").iterdir())


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_runs_listing_skips_and_names_deep_huge_and_odd_results(world):
    runs = world / "runs"
    bodies = {"ok": '{"run_name": "ok", "task": "rte", "score": 0.5}', "deep": "[" * 500_000 + "]" * 500_000,
              "huge": '{"a": "' + "x" * (20 << 20) + '"}', "list": "[1, 2]", "latin1": b'{"a": "\xff"}',
              "digits": '{"seed": ' + "1" * 5000 + "}"}
    for name, body in bodies.items():
        (runs / name).mkdir()
        getattr(runs / name / "results.json", "write_bytes" if isinstance(body, bytes) else "write_text")(body)
    code, err, seconds = run_cases({"runs": ["runs", "--runs-dir", str(runs)]}, world / "cwd")["runs"]
    assert code == 0 and "Traceback" not in err and seconds < TIMEOUT_S, err[-2000:]
    warnings = [l for l in err.splitlines() if l.startswith("warning: skipped")]
    assert sorted(Path(l.split()[2]).parent.name for l in warnings) == ["deep", "digits", "huge", "latin1", "list"]


@pytest.mark.slow  # each case loads the packaged model before it reads GLUE or builds MPOs
def test_bad_glue_files_and_huge_factors_are_one_line_errors(world):
    glue = world / "inputs" / "glue"
    shutil.copytree(GLUE / "RTE", glue / "RTE")
    (glue / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n"
                                            f"1\t{'word ' * (8 << 20)}\tb\tentailment\n")  # a 40 MB line
    (glue / "STS-B").mkdir()
    for split in ("train", "dev"):
        (glue / "STS-B" / f"{split}.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t3.5\nc\td\t1_0\n")
    runs = ["--runs-dir", str(world / "runs")]
    huge = write_config(world / "inputs", "huge", {
        "task": "rte", "runs_dir": str(world / "runs"), "num_hidden_layers": 1, "strategy": "mpo_lfa",
        "strategy_options": {"compression_ratio": 0.5, "mpo_config": {
            "groups": ["query"], "factors": {"query": [[10**6, 1, 1, 1, 1], [384, 1, 1, 1, 1]]}}}})
    cases = {"40 MB GLUE line": (["finetune", "--task", "rte", *TINY, *runs, "--data-dir", str(glue)], "train.tsv:3"),
             "STS-B score 1_0": (["finetune", "--task", "stsb", *TINY, *runs, "--data-dir", str(glue)], "train.tsv:3"),
             "huge out_factors": (["finetune", "--config", huge], "out_factors")}
    before = files_outside(world)
    results = run_cases({name: argv for name, (argv, _) in cases.items()}, world / "cwd")
    for name, (_, needle) in cases.items():
        assert_one_line_error(name, results[name], needle)
    assert files_outside(world) == before


def _truncate_to_ratio(ratio):
    import torch

    from mpo_core.tensor.decomposition import decompose
    from mpo_core.tensor.truncation import truncate

    return truncate(decompose(torch.randn(12, 8, dtype=torch.float64), n=3), compression_ratio=ratio)


def _mpo_config(**options):
    from mpo_core.model.mpo_config import MPOConfig

    return MPOConfig(**{"groups": ["query"], **options})


def _plan(*args, **kwargs):
    from mpo_core.tensor.shape import plan_shape

    return plan_shape(*args, **kwargs)


@pytest.mark.parametrize("call, needle", [
    (lambda: _mpo_config(n=10**7), "at most 12"),
    (lambda: _mpo_config(n=13), "at most 12"),
    (lambda: _mpo_config(factors={"query": [[2] * 13, [2] * 13]}), "at most 12"),
    (lambda: _mpo_config(factors={"query": [[2, 2], [2, "2"]]}), "in_factors must contain positive ints"),
    (lambda: _mpo_config(factors=[["query"]]), "factors must be a JSON object"),
    (lambda: _mpo_config(bond_dims={"query": 4}), r"bond_dims\['query'\] must be a list of positive ints"),
    (lambda: _mpo_config(layers=[-1]), "layers must be a list of non-negative"),
    (lambda: _plan(10, 10, n=10**7), "at most 32"),
    (lambda: _plan(384, 384, out_factors=(10**400, 1), in_factors=(384, 1)), "more than the 784 allowed"),
    (lambda: _plan(384, 384, out_factors=(10**6, 1, 1, 1, 1)), "more than the 784 allowed"),
    (lambda: _truncate_to_ratio(float("inf")), "compression_ratio"),
    (lambda: _truncate_to_ratio(float("nan")), "compression_ratio"),
])
def test_api_bounds_are_value_errors_before_allocation(call, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        call()
