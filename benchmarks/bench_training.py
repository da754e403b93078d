"""Training speed and task adapters (issue 15 §2-3) on the packaged MiniLM and real SST-2, one run.

1. End to end, 1 epoch of 4000 SST-2 examples, batch 32, dynamic padding:
   ``mpo_full_lfa`` vs ``full``, training time only (``wall_seconds`` of
   each run: the Trainer's loop; no evaluation inside it). Target <= 1.15x.
2. ``mpop`` (LFA, then cuts with repair steps and a held-out evaluation
   after each) vs ``mpo_full_lfa`` with the same number of training steps.
   Target <= 2x.
3. The LFA run's adapter (``--save-adapter``): its size against the saved
   final model, and base + adapter against the final model's logits on dev
   batches (target <= 10 MB and max |difference| <= 1e-5).

Each run is the real CLI in its own subprocess, one after the other, one
intra-op thread each. Results go to ``results/bench/training_cpu.json``.

Run: ``python benchmarks/bench_training.py`` (``--quick``: tiny sizes, a smoke run).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GLUE = ROOT.parent / "shared" / "glue"


def finetune(runs_dir: Path, name: str, strategy: str, options: list[str], sizes: dict) -> dict:
    cmd = [sys.executable, "-m", "mpo_core", "finetune", "--task", "sst2", "--data-dir", str(GLUE),
           "--strategy", strategy, "--runs-dir", str(runs_dir), "--run-name", name,
           "--max-train-examples", str(sizes["train"]), "--max-eval-examples", str(sizes["dev"]),
           "--batch-size", "32", "--eval-steps", "100000", "--save-steps", "100000", *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return json.loads((runs_dir / name / "results.json").read_text())


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def adapter_agreement(run: Path, sizes: dict) -> dict:
    """Max |logit difference| of base + adapter vs the saved final model on dev batches; folder sizes."""
    from transformers import AutoTokenizer

    from mpo_core import load_final_model, load_glue_split
    from mpo_core.runs.adapter import WEIGHTS_FILE, load_adapter

    torch.set_num_threads(1)
    final, rebuilt = load_final_model(run), load_adapter(run / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(run / "final_model", trust_remote_code=False)
    split = load_glue_split("sst2", "dev", GLUE, max_examples=sizes["dev"])
    worst = 0.0
    with torch.inference_mode():
        for start in range(0, len(split.texts_a), 64):
            batch = tokenizer(list(split.texts_a[start:start + 64]), return_tensors="pt", padding=True,
                              truncation=True, max_length=128)
            worst = max(worst, float((final(**batch).logits - rebuilt(**batch).logits).abs().max()))
    return {"max_abs_logit_diff": worst, "adapter_bytes": folder_bytes(run / "adapter"),
            "adapter_weights_bytes": (run / "adapter" / WEIGHTS_FILE).stat().st_size,
            "final_model_bytes": folder_bytes(run / "final_model")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 examples, a few steps")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    sizes = {"train": 64, "dev": 32} if args.quick else {"train": 4000, "dev": 872}
    squeeze = (["--lfa-steps", "2", "--tune-steps", "1", "--squeeze-steps", "1", "--heldout-examples", "16",
                "--step-size", "0.01", "--delta", "1.0"] if args.quick else
               ["--lfa-steps", "60", "--tune-steps", "8", "--squeeze-steps", "5", "--heldout-examples", "256",
                "--step-size", "0.01", "--delta", "1.0"])
    mpop_steps = 2 + 1 * 1 if args.quick else 60 + 8 * 5
    layers = ["--num-hidden-layers", "1"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        epoch = ["--epochs", "1", *layers]
        full = finetune(runs, "full", "full", [*epoch, "--learning-rate", "1e-4", "--no-save-model"], sizes)
        lfa = finetune(runs, "lfa", "mpo_full_lfa", [*epoch, "--learning-rate", "3e-4", "--save-adapter"], sizes)
        print("1. mpo_full_lfa vs full, 1 epoch of SST-2, dynamic padding (training time only)")
        ratio = lfa["wall_seconds"] / full["wall_seconds"]
        print(f"   full {full['wall_seconds']:.1f} s ({full['score']:.3f}), mpo_full_lfa {lfa['wall_seconds']:.1f} s "
              f"({lfa['score']:.3f}): {ratio:.2f}x (target <= 1.15x: {'met' if ratio <= 1.15 else 'MISSED'})")
        steps = ["--max-steps", str(mpop_steps), *layers, "--learning-rate", "3e-4", "--no-save-model"]
        lfa_same = finetune(runs, "lfa_same", "mpo_full_lfa", steps, sizes)
        mpop = finetune(runs, "mpop", "mpop", [*steps, *squeeze], sizes)
        ratio2 = mpop["wall_seconds"] / lfa_same["wall_seconds"]
        print(f"2. mpop vs mpo_full_lfa, {mpop_steps} training steps each")
        print(f"   mpo_full_lfa {lfa_same['wall_seconds']:.1f} s, mpop {mpop['wall_seconds']:.1f} s "
              f"({mpop['global_step']} steps, {len(mpop.get('squeeze', {}).get('history', []))} cuts): {ratio2:.2f}x "
              f"(target <= 2x: {'met' if ratio2 <= 2 else 'MISSED'})")
        agreement = adapter_agreement(runs / "lfa", sizes)
        mib = 1 << 20
        print("3. The LFA run's task adapter")
        print(f"   adapter {agreement['adapter_bytes'] / mib:.1f} MiB (weights {agreement['adapter_weights_bytes'] / mib:.1f}"
              f" MiB) vs final model {agreement['final_model_bytes'] / mib:.1f} MiB; base + adapter vs final model: "
              f"max |logit difference| {agreement['max_abs_logit_diff']:.2e} (targets <= 10 MB, <= 1e-5)")
    record = {"sizes": sizes, "full": full, "mpo_full_lfa": lfa, "lfa_same_steps": lfa_same, "mpop": mpop,
              "lfa_over_full": ratio, "mpop_over_lfa": ratio2, "adapter": agreement, "torch": torch.__version__}
    if not args.quick or args.out:
        out = Path(args.out) if args.out else ROOT / "results" / "bench" / "training_cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, default=str))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
