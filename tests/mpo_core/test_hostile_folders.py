"""Hostile model folders, adapters and checkpoints: refused with one ``error:`` line, no code run, nothing allocated.

Each case answers "y" to any prompt (stdin) and checks that the marker file
the folder's code (or pickle) would write stays absent. The table is issue
24's probe list for folders, adapters and checkpoints.
"""
import ast
import io
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mpo_core import MPOConfig, apply_mpo, save_mpo_model
from mpo_core.cli import main
from mpo_core.model.checkpoint import load_mpo_model
from mpo_core.model.pretrained import default_model_path
from mpo_core.runs.adapter import CONFIG_FILE, WEIGHTS_FILE, load_adapter, save_adapter
from mpo_core.runs.run_models import load_final_model

from .runs.test_adapter import lfa_model
from .tiny_models import tiny_model

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "glue"
TINY_RUN = ["--task", "rte", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "1",
            "--batch-size", "4", "--max-length", "16"]


class Marker:
    """What hostile code does: write the marker file (as a pickle, it does so when unpickled)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({str(self.path)!r}, 'w').write('pickle ran')",)


def model_folder(where: Path, marker: Path, *, code=False, auto_map=False, tokenizer_auto_map=False,
                 pickle_only=False) -> Path:
    """The packaged MiniLM's files (weights linked, not copied) with the hostile part asked for."""
    where.mkdir(parents=True)
    for file in Path(default_model_path()).iterdir():
        if file.is_file() and not (pickle_only and file.suffix == ".safetensors"):
            (where / file.name).symlink_to(file) if file.suffix == ".safetensors" else shutil.copy(file, where)
    if code:
        (where / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    for name, asked in (("config.json", auto_map), ("tokenizer_config.json", tokenizer_auto_map)):
        if asked:
            config = json.loads((where / name).read_text())
            (where / name).write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.Model",
                                                                          "AutoTokenizer": ["evil.Tok", None]}}))
    if pickle_only:
        (where / "pytorch_model.bin").write_bytes(pickle.dumps(Marker(marker)))
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Hostile model folders, and a real one-layer adapter (mpo_full_lfa on the packaged MiniLM)."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "PWNED"
    folders = {
        "code": model_folder(root / "code", marker, code=True, auto_map=True),
        "auto_map": model_folder(root / "auto_map", marker, auto_map=True),
        "tokenizer_auto_map": model_folder(root / "tokenizer_auto_map", marker, tokenizer_auto_map=True),
        "pickle_only": model_folder(root / "pickle_only", marker, pickle_only=True),
    }
    model, _ = lfa_model()
    adapter = save_adapter(model, root / "adapter", task="rte", num_hidden_layers=1, strategy="mpo_full_lfa")
    return root, marker, folders, adapter


def run_cli(argv, monkeypatch, capsys) -> tuple[int, list[str], float]:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))  # a prompt, if any, would be answered yes
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    return code, capsys.readouterr().err.strip().splitlines(), seconds


def assert_one_error(code, err, needle, marker, name=""):
    assert not marker.exists(), f"{name}: the folder's code ran"
    assert code == 2, f"{name}: exit {code}, stderr {err[-3:]}"
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], f"{name}: {err[-3:]}"
    assert "Traceback" not in "\n".join(err), name


# --------------------------------------------------------------------------- finetune --model
FINETUNE_PROBES = {
    "folder with code and auto_map": (["--model", "{code}"], "holds Python code"),
    "folder with auto_map": (["--model", "{auto_map}"], "has an auto_map"),
    "tokenizer_config with auto_map": (["--model", "{tokenizer_auto_map}"], "tokenizer_config.json has an auto_map"),
    "pickle-only folder": (["--model", "{pickle_only}"], "only pickled weights"),
    "more layers than the model": (["--num-hidden-layers", "8"], "more than the 6 layers"),
}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("name", FINETUNE_PROBES)
def test_finetune_refuses_a_hostile_model(name, world, tmp_path, monkeypatch, capsys):
    root, marker, folders, _ = world
    monkeypatch.setenv("GLUE_DIR", str(GLUE))
    options, needle = FINETUNE_PROBES[name]
    options = [o.format(**folders) for o in options]
    argv = ["finetune", *TINY_RUN, "--runs-dir", str(tmp_path / "runs"), *options]
    if "--num-hidden-layers" not in options:
        argv += ["--num-hidden-layers", "1"]
    code, err, seconds = run_cli(argv, monkeypatch, capsys)
    assert_one_error(code, err, needle, marker, name)
    assert seconds < 30, f"{name}: {seconds:.0f} s"


# --------------------------------------------------------------------------- predict --adapter
def _set(**fields):
    return lambda config, folders: {**config, **{k: v.format(**folders) if isinstance(v, str) else v
                                                 for k, v in fields.items()}}


def _layer(**fields):
    def edit(config, folders):
        name = next(iter(config["mpo_layers"]))
        config["mpo_layers"][name] = {**config["mpo_layers"][name], **fields}
        return config
    return edit


def _fingerprints(change):
    return lambda c, f: {**c, "frozen_fingerprints": {k: change(v) for k, v in c["frozen_fingerprints"].items()}}


ADAPTER_CONFIG_PROBES = {
    "config is a list": (lambda c, f: [c], "must hold a JSON object, not list"),
    "config is null": (lambda c, f: None, "must hold a JSON object, not NoneType"),
    "num_hidden_layers a string": (_set(num_hidden_layers="1"), "num_hidden_layers must be a positive integer"),
    "num_hidden_layers true": (_set(num_hidden_layers=True), "num_hidden_layers must be a positive integer"),
    "num_hidden_layers 100000": (_set(num_hidden_layers=100000), "more than the 6 layers"),
    "task a number": (_set(task=5), "task must be a string"),
    "trained a string": (_set(trained="all"), "trained must be a non-empty JSON list"),
    "mpo_layers a list": (_set(mpo_layers=[]), "mpo_layers must be a non-empty JSON object"),
    "empty frozen_fingerprints": (_set(frozen_fingerprints={}), "frozen_fingerprints must be a non-empty"),
    "missing frozen_fingerprints": (lambda c, f: {k: v for k, v in c.items() if k != "frozen_fingerprints"},
                                    "frozen_fingerprints must be a non-empty"),
    "fingerprint with NaN norm": (lambda c, f: {**c, "frozen_fingerprints": {
        k: {**v, "norm": math.nan} for k, v in c["frozen_fingerprints"].items()}}, "finite norm"),
    # issue 24's bare messages: "error: out_factors", "error: norm", "string indices must be integers",
    # "unsupported operand type(s) for -"
    "layer without out_factors": (_layer(out_factors=None), "out_factors must be a list of 1 to 16 integers"),
    "layer record a string": (lambda c, f: {**c, "mpo_layers": {**c["mpo_layers"], next(iter(c["mpo_layers"])): "x"}},
                              "the record must be a JSON object, not str"),
    "center a string": (_layer(center="1"), "center must be an integer in [0, 4], got '1'"),
    "fingerprint without norm": (_fingerprints(lambda v: {k: x for k, x in v.items() if k != "norm"}), "finite norm"),
    "fingerprint norm a string": (_fingerprints(lambda v: {**v, "norm": "1"}), "finite norm"),
    "fingerprint a string": (_fingerprints(lambda v: "x"), "must be an object with a shape"),
    "fingerprint of another shape": (_fingerprints(lambda v: {**v, "shape": [1]}), "has shape [1], the rebuilt"),
    "center 17": (_layer(center=17), "center must be an integer in [0,"),
    "kind conv": (_layer(kind="conv"), "kind must be one of"),
    "huge out_factors": (_layer(out_factors=[10 ** 6, 10 ** 6, 10 ** 6]), "out_factors must be an integer in [1, "),
    "out_factors too small": (_layer(out_factors=[1, 1, 1, 1, 1]), "out_factors [1, 1, 1, 1, 1] multiply to 1"),
    "out_factors a string": (_layer(out_factors="384"), "out_factors must be a list"),
    "bond_dims too large": (_layer(bond_dims=[10 ** 9] * 4), "bond_dims[0] must be an integer in [1, "),
    "base folder with code": (_set(base_model_name_or_path="{code}"), "holds Python code"),
    "base folder with auto_map": (_set(base_model_name_or_path="{auto_map}"), "has an auto_map"),
    "base tokenizer with auto_map": (_set(base_model_name_or_path="{tokenizer_auto_map}"),
                                     "tokenizer_config.json has an auto_map"),
    "base folder pickle-only": (_set(base_model_name_or_path="{pickle_only}"), "only pickled weights"),
}


def _nan_tensor(path: Path) -> None:
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name][0] = float("nan")
    save_file(tensors, str(path))


ADAPTER_WEIGHTS_PROBES = {
    "empty safetensors": (lambda p: p.write_bytes(b""), "not a safetensors file"),
    "truncated safetensors": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "lies outside the file"),
    "random bytes": (lambda p: p.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                                           dtype=torch.uint8).numpy().tobytes()),
                     "not a valid safetensors file"),
    "huge header": (lambda p: p.write_bytes(struct.pack("<Q", 1 << 40) + b"{}"), "header claims"),
    "header not JSON": (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{["), "header is not JSON"),
    "NaN weights": (_nan_tensor, "holds NaN or Inf"),
}


def hostile_adapter(world, tmp_path, name) -> Path:
    root, _, folders, adapter = world
    target = tmp_path / "adapter"
    shutil.copytree(adapter, target)
    if name in ADAPTER_CONFIG_PROBES:
        edit = ADAPTER_CONFIG_PROBES[name][0]
        config = json.loads((target / CONFIG_FILE).read_text())
        (target / CONFIG_FILE).write_text(json.dumps(edit(config, {k: str(v) for k, v in folders.items()})))
    else:
        ADAPTER_WEIGHTS_PROBES[name][0](target / WEIGHTS_FILE)
    return target


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("name", [*ADAPTER_CONFIG_PROBES, *ADAPTER_WEIGHTS_PROBES])
def test_predict_refuses_a_hostile_adapter(name, world, tmp_path, monkeypatch, capsys):
    _, marker, _, _ = world
    needle = {**ADAPTER_CONFIG_PROBES, **ADAPTER_WEIGHTS_PROBES}[name][1]
    target = hostile_adapter(world, tmp_path, name)
    code, err, seconds = run_cli(["predict", "--adapter", str(target), "--data-dir", str(GLUE),
                                  "--max-eval-examples", "8"], monkeypatch, capsys)
    assert_one_error(code, err, needle, marker, name)
    assert seconds < 30, f"{name}: {seconds:.0f} s"


@pytest.mark.slow  # decomposes the base again; tests/mpo_core/runs/test_adapter.py checks the logits
def test_the_untouched_adapter_still_loads(world):
    _, _, _, adapter = world
    assert load_adapter(adapter).config.num_hidden_layers == 1


# --------------------------------------------------------------------------- checkpoints and final models
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny BERT classifier with MPO layers saved by save_mpo_model, its base saved next to it."""
    root = tmp_path_factory.mktemp("checkpoint")
    model = tiny_model("bert")
    model.save_pretrained(root / "base")
    apply_mpo(model, MPOConfig(groups=("query", "ffn_in"), n=3, compression_ratio=0.6), progress=False)
    save_mpo_model(model, root / "saved")
    return root


def _edit_json(file, edit):
    def probe(folder: Path):
        path = folder / file
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return probe


def _edit_record(**fields):
    def edit(records):
        name = next(iter(records))
        records[name] = {**records[name], **fields}
        return records
    return edit


CHECKPOINT_PROBES = {
    "100000 layers": (_edit_json("config.json", lambda c: {**c, "num_hidden_layers": 100000}),
                      "num_hidden_layers must be an integer in [1, 128]"),
    "vocabulary of 10**9": (_edit_json("config.json", lambda c: {**c, "vocab_size": 10 ** 9}), "vocab_size"),
    "layers a string": (_edit_json("config.json", lambda c: {**c, "num_hidden_layers": "2"}), "num_hidden_layers"),
    "config auto_map": (_edit_json("config.json", lambda c: {**c, "auto_map": {"AutoConfig": "evil.C"}}),
                        "has an auto_map"),
    "custom code": (lambda f: (f / "evil.py").write_text("raise SystemExit"), "holds Python code"),
    "layers file a list": (_edit_json("mpo_layers.json", lambda r: [r]), "must hold a JSON object"),
    "center 17": (_edit_json("mpo_layers.json", _edit_record(center=17)), "center must be an integer in [0, 2]"),
    "kind conv": (_edit_json("mpo_layers.json", _edit_record(kind="conv")), "kind must be one of"),
    "huge out_factors": (_edit_json("mpo_layers.json", _edit_record(out_factors=[2 ** 40, 2, 2])), "out_factors"),
    "factors of other lengths": (_edit_json("mpo_layers.json", _edit_record(in_factors=[32])),
                                 "must have the same length"),
    "record without out_factors": (_edit_json("mpo_layers.json", lambda r: {k: {f: x for f, x in v.items()
                                                                             if f != "out_factors"}
                                                                         for k, v in r.items()}),
                                   "out_factors must be a list of 1 to 16 integers, got None"),
    "record a string": (_edit_json("mpo_layers.json", lambda r: {k: "x" for k in r}),
                        "the record must be a JSON object, not str"),
    "out_features a string": (_edit_json("mpo_layers.json", _edit_record(out_features="32")),
                              "out_features must be the layer's 32, got '32'"),
    "NaN weights": (lambda f: _nan_tensor(f / "model.safetensors"), "holds NaN or Inf"),
    "truncated weights": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:99]),
                          "model.safetensors"),
}


@pytest.mark.parametrize("name", CHECKPOINT_PROBES)
def test_load_mpo_model_refuses_a_hostile_checkpoint(name, checkpoint, tmp_path):
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "saved"
    shutil.copytree(checkpoint / "saved", folder)
    edit, needle = CHECKPOINT_PROBES[name]
    edit(folder)
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        load_mpo_model(folder, AutoModelForSequenceClassification)
    assert needle in str(info.value), str(info.value)
    assert time.perf_counter() - start < 5


def test_a_record_without_its_optional_group_still_loads(checkpoint, tmp_path):
    """``group`` (like ``padding_idx``) may be absent: it was a bare "error: group" (KeyError)."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "saved"
    shutil.copytree(checkpoint / "saved", folder)
    _edit_json("mpo_layers.json", lambda r: {k: {f: x for f, x in v.items() if f != "group"} for k, v in r.items()})(
        folder)
    model = load_mpo_model(folder, AutoModelForSequenceClassification)
    assert {getattr(m, "group", "?") for m in model.modules() if hasattr(m, "bond_dims")} == {None}


def test_the_untouched_checkpoint_still_loads(checkpoint):
    from transformers import AutoModelForSequenceClassification

    assert load_mpo_model(checkpoint / "saved", AutoModelForSequenceClassification).config.num_hidden_layers == 2


def final_run(checkpoint, tmp_path, layers: int) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "rte", "model": str(checkpoint / "base")}))
    shutil.copytree(checkpoint / "saved", run / "final_model")
    config = json.loads((run / "final_model" / "config.json").read_text())
    (run / "final_model" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": layers}))
    return run


def test_a_final_model_may_not_have_more_layers_than_its_base(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="num_hidden_layers 3 is more than the base model's 2"):
        load_final_model(final_run(checkpoint, tmp_path, 3))


BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mpo_core.runs.adapter import load_adapter
from mpo_core.runs.run_models import load_final_model
for call, arg in ((load_adapter, sys.argv[1]), (load_final_model, sys.argv[2])):
    try:
        call(arg)
    except ValueError as exc:
        print("refused:", exc)
"""


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_100000_layers_are_refused_before_anything_is_allocated(world, checkpoint, tmp_path):
    """Under a 3 GiB address-space limit, both the adapter and the final model are refused in seconds."""
    adapter = hostile_adapter(world, tmp_path, "num_hidden_layers 100000")
    run = final_run(checkpoint, tmp_path, 100000)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BOUNDED, str(adapter), str(run)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
    assert done.returncode == 0 and len(refused) == 2, done.stderr[-2000:]
    assert "more than the 6 layers" in refused[0] and "[1, 128]" in refused[1], refused
    assert time.perf_counter() - start < 60


# --------------------------------------------------------------------------- every load says no to remote code
def test_every_from_pretrained_passes_trust_remote_code_false():
    missing = []
    for folder in ("mpo_core", "app", "benchmarks"):
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "from_pretrained" and ast.unparse(node.func.value) != "nn.Embedding"):
                    flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                    if flags.get("trust_remote_code") != "False":
                        missing.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert not missing, missing


@pytest.mark.parametrize("kind, needle", [("code", "holds Python code"), ("auto_map", "has an auto_map"),
                                          ("pickle_only", "only pickled weights")])
def test_the_dashboard_refuses_a_hostile_model_folder(kind, needle, world, monkeypatch):
    from app.compress import load_base_model

    _, marker, folders, _ = world
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(ValueError, match=needle):
        load_base_model(folders[kind])
    assert not marker.exists()
