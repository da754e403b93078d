"""Engine benchmarks: each figure is a ratio against a reference timed in the same run.

1. Full-bond decomposition (n=5) of every 2-D weight of the packaged model:
   ours vs ``tensorly.decomposition.tensor_train_matrix`` on the same
   tensorization (target: ours <= 0.7x tensorly's time).
2. Slider path on the 30522x384 word embedding: ratio + bound + entropy for new
   bond dims (target <= 5 ms) and the true error after a truncation (<= 1 s).
3. ``MPOLinear`` forward+backward vs ``nn.Linear`` for 32 x 128 tokens at full
   bonds (target <= 1.5x) and at compression ratio 0.1 (reported).

Run: ``python benchmarks/bench_engine.py`` (``--quick`` for a smoke run on a
few small matrices, ``--device cuda`` for a GPU).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpo_core import (  # noqa: E402
    MPOLinear,
    compression_ratio,
    decompose,
    entanglement_entropy,
    frobenius_error,
    list_weight_matrices,
    load_weight_matrix,
    truncate,
    truncation_error_bound,
)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat=3):
    """Best-of-``repeat`` wall time of ``fn()`` in seconds (after one warm-up)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def tensorly_tt(matrix, shape):
    import tensorly as tl
    from tensorly.decomposition import tensor_train_matrix

    padded = torch.nn.functional.pad(
        matrix, (0, shape.padded_shape[1] - matrix.shape[1], 0, shape.padded_shape[0] - matrix.shape[0])
    )
    tensor = padded.reshape(*shape.out_factors, *shape.in_factors)
    with tl.backend_context("pytorch"):
        return tensor_train_matrix(tensor, rank=(1, *shape.full_bond_dims, 1))


def bench_decomposition(names, device, repeat):
    print("\n1. Full-bond decomposition, n=5: ours vs tensorly tensor_train_matrix (pytorch backend)")
    ours_total = theirs_total = 0.0
    for name in names:
        matrix = load_weight_matrix(name).to(device)
        mpo = decompose(matrix)
        ours = timed(lambda: decompose(matrix), device, repeat)
        theirs = timed(lambda: tensorly_tt(matrix, mpo.shape), device, repeat)
        ours_total, theirs_total = ours_total + ours, theirs_total + theirs
        print(f"   {name:50s} {tuple(matrix.shape)!s:>13}  ours {ours*1e3:8.1f} ms  tensorly {theirs*1e3:8.1f} ms  ratio {ours/theirs:5.2f}")
    ratio = ours_total / theirs_total
    print(f"   all {len(names)} matrices: ours {ours_total:.2f} s, tensorly {theirs_total:.2f} s -> ratio {ratio:.2f} (target <= 0.70)")
    return ratio


def random_dims(full, rng):
    return tuple(rng.randint(1, d) for d in full)


def bench_slider(name, device, trials):
    print(f"\n2. Slider path on {name}")
    matrix = load_weight_matrix(name).to(device)
    mpo = decompose(matrix)
    rng = random.Random(0)
    dims_list = [random_dims(mpo.full_bond_dims, rng) for _ in range(200)]

    def live(dims):
        return compression_ratio(mpo.shape, dims), truncation_error_bound(mpo, dims), entanglement_entropy(mpo, dims)

    live(dims_list[0])
    start = time.perf_counter()
    for dims in dims_list:
        live(dims)
    per_call = (time.perf_counter() - start) / len(dims_list)
    print(f"   ratio + bound + entropy: {per_call*1e3:.3f} ms per slider move (target <= 5 ms)")
    times = []
    for dims in [mpo.full_bond_dims] + dims_list[:trials]:
        sync(device)
        start = time.perf_counter()
        frobenius_error(matrix, truncate(mpo, dims).mpo.to_matrix())
        sync(device)
        times.append(time.perf_counter() - start)
    print(
        f"   truncate + true error: median {statistics.median(times):.3f} s, max {max(times):.3f} s "
        f"over {len(times)} bond choices incl. full bonds (target <= 1 s)"
    )
    return per_call, max(times)


def bench_linear(name, device, tokens, repeat):
    print(f"\n3. MPOLinear vs nn.Linear, forward+backward, {tokens} tokens, {name}")
    weight = load_weight_matrix(name).to(device)
    dense = nn.Linear(weight.shape[1], weight.shape[0], device=device)
    with torch.no_grad():
        dense.weight.copy_(weight)
    x = torch.randn(tokens, weight.shape[1], device=device)

    def step(module):
        def run():
            module.zero_grad(set_to_none=True)
            module(x).sum().backward()
        return run

    reference = timed(step(dense), device, repeat)
    results = {}
    for label, kwargs in (("full bonds", {}), ("ratio 0.1", {"compression_ratio": 0.1})):
        layer = MPOLinear.from_linear(dense, **kwargs)
        path = "chain" if layer.uses_chain(tokens) else "dense"
        results[label] = timed(step(layer), device, repeat) / reference
        print(f"   {label:10s}: {results[label]:.2f}x nn.Linear ({path} path; nn.Linear {reference*1e3:.2f} ms)")
    print("   target at full bonds <= 1.5x")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: few small matrices, few repeats")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    names = sorted(list_weight_matrices())
    if args.quick:
        names = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight"]
    bench_decomposition(names, device, repeat=1 if args.quick else 3)
    slider_matrix = names[0] if args.quick else "embeddings.word_embeddings.weight"
    bench_slider(slider_matrix, device, trials=3 if args.quick else 20)
    tokens = 64 if args.quick else 32 * 128
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight"):
        bench_linear(name, device, tokens, repeat=2 if args.quick else 5)


if __name__ == "__main__":
    main()
