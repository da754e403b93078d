"""Whole-model inference (issue 15 §1): compressed MiniLM vs the dense model, latency and peak memory.

Every encoder matrix (query, key, value, attention output, FFN in and out)
becomes an MPO truncated to Eq. (5) ratio rho (optimal bond allocation) with
n local tensors; the word embedding stays dense. For each (n, rho) one
subprocess loads the packaged model, times the dense model, compresses it and
times the compressed one in both ``inference_memory`` modes:

* ``fast``: rebuilt matrices are kept between calls (the default);
* ``compact``: nothing larger than the MPO's own tensors is kept.

Latency: fastest of a few forwards of a batch of 32 x 64 random ids under
``torch.inference_mode``, dense timed in the same process; memory is measured
in a second subprocess. Memory: parameter
bytes, bytes kept by the MPO layers after the forwards, and the peak resident
memory *added* during a forward (VmHWM after resetting it through
``/proc/self/clear_refs``, minus the resident size before): the activations
and whatever a forward rebuilds. The subprocesses run with glibc's mmap and
trim thresholds at 128 KiB, so freed tensors go back to the OS and resident
memory follows the live tensors. The target: a compact model's parameters plus
its peak addition stay within its parameter bytes plus the dense model's
activations (its own peak addition), 5 % slack for the allocator.

Run: ``python benchmarks/bench_inference.py`` (``--quick``: one small case).
Results go to ``results/bench/inference_<device>.json``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENCODER = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
SLACK = 1.05


def rss_bytes(field="VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def release_memory():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def peak_added(fn) -> int:
    """Peak resident bytes added while ``fn`` runs (VmHWM reset first)."""
    release_memory()
    before = rss_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    fn()
    return rss_bytes("VmHWM") - before


def latency(model, batch, repeat) -> float:
    with torch.inference_mode():
        model(**batch)
        best = math.inf
        for _ in range(repeat):
            start = time.perf_counter()
            model(**batch)
            best = min(best, time.perf_counter() - start)
    return best


def kept_bytes(model) -> int:
    """Bytes the MPO layers keep besides their parameters (a merged group of one tensor is the tensor)."""
    from mpo_core.layers.mpo_module import MPOModule

    params = {p.data_ptr() for p in model.parameters()}
    kept = []
    for m in model.modules():
        if isinstance(m, MPOModule):
            if m.has_cached_weight():
                kept.append(m._cached_weight[1])
            if m._cached_merged is not None:
                kept.extend(m._cached_merged[2])
    return sum(t.numel() * t.element_size() for t in kept if t.data_ptr() not in params)


def param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def one_case(n: int, ratio: float, batch_size: int, length: int, repeat: int, memory: bool) -> dict:
    """In this process: dense, then compressed (fast, compact); latency, or with ``memory`` the memory figures."""
    from transformers import AutoModel

    from mpo_core import MPOConfig, apply_mpo, default_model_path, set_inference_memory
    from mpo_core.layers.path_choice import cached_choices

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(default_model_path(), trust_remote_code=False).eval()
    ids = torch.randint(1000, 30000, (batch_size, length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    row = {"n": n, "ratio": ratio, "batch": [batch_size, length]}
    with torch.inference_mode():
        reference = model(**batch).last_hidden_state
    row["dense"] = measure(model, batch, repeat, memory)
    apply_mpo(model, MPOConfig(groups=ENCODER, n=n, compression_ratio=ratio), progress=False)
    release_memory()
    for mode in ("fast", "compact"):
        set_inference_memory(model, mode)
        row[mode] = measure(model, batch, repeat, memory)
        with torch.inference_mode():
            out = model(**batch).last_hidden_state
        row[mode]["output_rel_diff_vs_dense"] = float((out - reference).norm() / reference.norm())
    row["plans"] = sorted({str(c.plan) for c in cached_choices().values()})
    return row


def measure(model, batch, repeat, memory) -> dict:
    latency(model, batch, 1)  # path choices made, kept tensors built: what follows is a forward in use
    if not memory:
        return {"latency_s": latency(model, batch, repeat)}
    return {"param_bytes": param_bytes(model), "kept_bytes": kept_bytes(model),
            "peak_added_bytes": peak_added(lambda: latency(model, batch, 1))}


def run_case_in_subprocess(n, ratio, args) -> dict:
    """Latency in one subprocess, memory in another (its allocator settings slow allocations down)."""
    row = {}
    for memory in (False, True):
        cmd = [sys.executable, __file__, "--case", str(n), str(ratio), "--batch", str(args.batch), str(args.length),
               "--repeat", str(args.repeat), *(["--memory"] if memory else [])]
        # memory: big blocks straight from and back to the OS, so that resident memory follows the live tensors
        env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
                                if memory else {})}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"case n={n} rho={ratio} failed:\n{result.stderr[-3000:]}")
        part = json.loads(result.stdout.strip().splitlines()[-1])
        for key, value in part.items():
            row[key] = {**row.get(key, {}), **value} if isinstance(value, dict) else value
    return row


def report(rows):
    mib = 1 << 20
    print("1. Compressed MiniLM (encoder matrices as MPOs) vs dense: latency and memory, batch "
          f"{rows[0]['batch'][0]} x {rows[0]['batch'][1]}")
    print(f"   {'n':>2} {'rho':>5} {'params':>8} {'latency fast':>12} {'compact':>8} {'held fast':>10} "
          f"{'held compact':>12} {'peak fast':>10} {'peak compact':>12} {'compact ok':>10} {'out diff':>8}")
    for r in rows:
        d, f, c = r["dense"], r["fast"], r["compact"]
        dense_total = d["param_bytes"] + d["peak_added_bytes"]
        held_fast = f["param_bytes"] + f["kept_bytes"]
        peak_fast = (held_fast + f["peak_added_bytes"]) / dense_total
        peak_compact = (c["param_bytes"] + c["kept_bytes"] + c["peak_added_bytes"]) / dense_total
        bound = c["param_bytes"] + d["peak_added_bytes"]
        ok = (c["param_bytes"] + c["kept_bytes"] + c["peak_added_bytes"]) <= SLACK * bound
        r["compact_within_params_plus_activations"] = ok
        print(f"   {r['n']:>2} {r['ratio']:>5} {c['param_bytes'] / d['param_bytes']:>7.2f}x "
              f"{f['latency_s'] / d['latency_s']:>11.2f}x {c['latency_s'] / d['latency_s']:>7.2f}x "
              f"{held_fast / d['param_bytes']:>9.2f}x {(c['param_bytes'] + c['kept_bytes']) / d['param_bytes']:>11.2f}x "
              f"{peak_fast:>9.2f}x {peak_compact:>11.2f}x {'yes' if ok else 'NO':>10} "
              f"{c['output_rel_diff_vs_dense']:>8.3f}")
    print(f"   (ratios to the dense model; 'held' = parameters + kept rebuilt tensors; 'peak' = held + the peak "
          f"added during a forward; dense model {rows[0]['dense']['param_bytes'] / mib:.0f} MiB of parameters, "
          f"{rows[0]['dense']['latency_s'] * 1e3:.0f} ms per batch)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: one case, a small batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs=2, default=None, metavar=("SIZE", "LENGTH"))
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--case", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.batch, args.length = args.batch or ((4, 16) if args.quick else (32, 64))
    args.repeat = args.repeat or (1 if args.quick else 5)
    if args.case:
        print(json.dumps(one_case(int(args.case[0]), float(args.case[1]), args.batch, args.length, args.repeat,
                                  args.memory)))
        return
    cases = [(5, 0.1)] if args.quick else [(n, r) for r in (0.3, 0.1) for n in (2, 3, 5)]
    rows = [run_case_in_subprocess(n, r, args) for n, r in cases]
    report(rows)
    out = Path(args.out) if args.out else ROOT / "results" / "bench" / "inference_cpu.json"
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "rows": rows}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
