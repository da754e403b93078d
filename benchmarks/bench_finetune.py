"""Fine-tuning benchmarks on the packaged MiniLM: ratios against plain fine-tuning, one run.

1. ``mpo_full_lfa`` vs ``full``: trainable parameters (target <= 10 % of total),
   training step time (target <= 1.3x), optimizer state (target <= 15 %) and
   peak memory (each strategy in its own subprocess, so peaks don't mix).
2. Merged model (MPO contracted back to dense) inference latency vs the
   original model (target 1.00 +- 0.05).
3. Examples/s of our engine (``fine_tune``, strategy ``full``) vs a plain
   ``transformers.Trainer`` on the same data and arguments (target >= 0.9x on GPU).

Run: ``python benchmarks/bench_finetune.py`` (``--quick`` for a smoke run).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


GLUE = Path(__file__).resolve().parents[2] / "shared" / "glue"


def make_batch(batch, length, device, seed=0, real=True, pad_to_length=True):
    """A training batch: real SST-2 sentences padded to ``length`` or, with ``real=False``,
    random ids from the whole vocabulary (the worst case for the embedding MPO)."""
    gen = torch.Generator().manual_seed(seed)
    if not real:
        ids = torch.randint(1000, 30000, (batch, length), generator=gen)
        mask, labels = torch.ones_like(ids), torch.randint(0, 2, (batch,), generator=gen)
    else:
        from transformers import AutoTokenizer

        from mpo_core import default_model_path, load_glue_split

        split = load_glue_split("sst2", "train", GLUE, max_examples=batch, seed=seed)
        tokens = AutoTokenizer.from_pretrained(default_model_path(), trust_remote_code=False)(
            split.texts_a, padding="max_length" if pad_to_length else "longest", truncation=True,
            max_length=length, return_tensors="pt")
        ids, mask, labels = tokens["input_ids"], tokens["attention_mask"], torch.tensor(split.labels)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def load_model(device):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    from mpo_core import default_model_path

    logging.set_verbosity_error()
    return AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=2,
                                                              trust_remote_code=False).to(device)


def peak_memory_bytes(device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_strategy(strategy: str, batch: int, length: int, steps: int, device_name: str, real: bool = True,
                     pad_to_length: bool = True) -> dict:
    """Child process: prepare the strategy, time optimizer steps, report sizes."""
    from mpo_core import count_parameters
    from mpo_core.training.strategies import get_strategy

    device = torch.device(device_name)
    torch.manual_seed(0)
    model = load_model(device)
    get_strategy(strategy).prepare(model, progress=False)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    inputs = make_batch(batch, length, device, real=real, pad_to_length=pad_to_length)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    count = count_parameters(model)
    return {"strategy": strategy, "step_seconds": sorted(times)[len(times) // 2], "optimizer_state_bytes": state,
            "trainable": count.trainable, "total": count.total, "peak_memory_bytes": peak_memory_bytes(device)}


def in_subprocess(strategy, batch, length, steps, device, real=True, pad_to_length=True) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_finetune as b; "
            f"print(json.dumps(b.measure_strategy({strategy!r}, {batch}, {length}, {steps}, {device!r}, {real}, "
            f"{pad_to_length})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def merged_latency(batch, length, repeat, device) -> float:
    """Inference latency of the merged model over the original's (same weights, both dense)."""
    from mpo_core import merge_mpo
    from mpo_core.training.strategies import get_strategy

    original = load_model(device).eval()
    merged = load_model(device)
    get_strategy("mpo_full_lfa").prepare(merged, progress=False)
    merge_mpo(merged)
    merged.to(device).eval()
    return latency_ratio(merged, original, batch, length, device, repeat)


def latency_ratio(model, reference, batch, length, device, repeat) -> float:
    """Inference latency of ``model`` over ``reference`` on one real batch (median of interleaved pairs)."""
    from mpo_core.runs.latency import compare_latency

    inputs = {k: v for k, v in make_batch(batch, length, device).items() if k != "labels"}
    return compare_latency(model, reference, inputs, warmup=1, repeats=3 * repeat)["ratio"]


def engine_throughput(steps, batch, length, device, tmp) -> float:
    """Our ``fine_tune`` vs plain ``Trainer.train`` on identical data and arguments: examples/s ratio."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from mpo_core.training.fine_tune import fine_tune, load_data, load_model_and_tokenizer
    from mpo_core.training.fine_tune_config import FineTuneConfig

    config = FineTuneConfig(task="sst2", data_dir=str(GLUE), max_length=length, max_train_examples=steps * batch,
                            max_eval_examples=batch, max_steps=steps, batch_size=batch, eval_steps=10**6,
                            save_steps=10**6, logging_steps=max(1, steps // 2), device=device, runs_dir=tmp)
    ours = fine_tune(config)["wall_seconds"]
    model, tokenizer = load_model_and_tokenizer(config)
    train, _ = load_data(config, tokenizer)
    args = TrainingArguments(output_dir=f"{tmp}/plain", max_steps=steps, per_device_train_batch_size=batch,
                             learning_rate=config.learning_rate, logging_steps=max(1, steps // 2), save_strategy="no",
                             report_to="none", use_cpu=device == "cpu", bf16=device == "cuda", seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    trainer.train()
    plain = time.perf_counter() - start
    return plain / ours


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    batch, length, steps = (4, 32, 2) if args.quick else (32, 128, 5)
    print(f"device {device}, batch {batch} x {length} tokens, torch {torch.__version__}")
    full = in_subprocess("full", batch, length, steps, device)
    lfa = in_subprocess("mpo_full_lfa", batch, length, steps, device)
    print("\n1. mpo_full_lfa vs full fine-tuning (packaged MiniLM, all 6 layers, real SST-2 batch)")
    print(f"   trainable params: {lfa['trainable']/1e6:.2f}M of {lfa['total']/1e6:.2f}M = "
          f"{lfa['trainable']/lfa['total']:.1%} (target <= 10%); full trains {full['trainable']/1e6:.2f}M")
    print(f"   step time: {lfa['step_seconds']*1e3:.0f} ms vs {full['step_seconds']*1e3:.0f} ms = "
          f"{lfa['step_seconds']/full['step_seconds']:.2f}x (target <= 1.3x)")
    print(f"   optimizer state: {lfa['optimizer_state_bytes']/2**20:.1f} MiB vs {full['optimizer_state_bytes']/2**20:.1f} MiB = "
          f"{lfa['optimizer_state_bytes']/full['optimizer_state_bytes']:.1%} (target <= 15%)")
    print(f"   peak memory: {lfa['peak_memory_bytes']/2**20:.0f} MiB vs {full['peak_memory_bytes']/2**20:.0f} MiB = "
          f"{lfa['peak_memory_bytes']/full['peak_memory_bytes']:.2f}x")
    worst_full = in_subprocess("full", batch, length, steps, device, real=False)
    worst_lfa = in_subprocess("mpo_full_lfa", batch, length, steps, device, real=False)
    print(f"   step time with random ids over the whole vocabulary (worst case for the embedding MPO): "
          f"{worst_lfa['step_seconds']/worst_full['step_seconds']:.2f}x")
    short_full = in_subprocess("full", batch, length, steps, device, pad_to_length=False)
    short_lfa = in_subprocess("mpo_full_lfa", batch, length, steps, device, pad_to_length=False)
    print(f"   step time on the same sentences padded only to the longest (short batch): "
          f"{short_lfa['step_seconds']*1e3:.0f} ms vs {short_full['step_seconds']*1e3:.0f} ms = "
          f"{short_lfa['step_seconds']/short_full['step_seconds']:.2f}x (rebuilding the MPOs is a fixed cost per step)")
    ratio = merged_latency(batch, length, 3 if args.quick else 10, torch.device(device))
    print(f"\n2. merged model inference latency / original: {ratio:.3f} (target 1.00 +- 0.05)")
    import os
    import tempfile

    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        speed = engine_throughput(4 if args.quick else 30, 8 if args.quick else 32, length, device, tmp)
    print(f"\n3. examples/s, our engine / plain transformers Trainer: {speed:.2f}x (target >= 0.9x on GPU)")


if __name__ == "__main__":
    main()
