"""Contraction benchmark (issue 15 §1): ``x W^T`` through an MPO vs the dense matmul, timed in one run.

1. A big matrix where the chain needs fewer flops: 4096x4096, n = 3 (factors
   16*16*16), bonds (8, 8) and (4, 4), 1024 tokens. Targets: the fastest sweep
   <= 0.6x the dense time at (8, 8), <= 0.3x at (4, 4).
2. MiniLM's own matrices (layer 0: query 384x384, intermediate 1536x384,
   output 384x1536) at Eq. (5) ratios 0.3 / 0.1 / 0.03 (optimal bond
   allocation) and n = 2 / 3 / 5, 1024 tokens, inference: the unmerged
   chain's throughput as a share of the dense matmul's (target >= 50%), the
   fastest plan vs dense, and where a plan beats the dense matmul.
3. ``forward_mode="auto"`` on every case of 1-2, in inference (merged tensors
   kept) and in training (forward + backward, central tensor frozen as in
   LFA): auto's plan time over the fastest timed plan (target <= 1.05x).

Every time is the fastest of a few runs after a warm-up, one intra-op thread
unless ``--threads``; ratios compare times taken in the same run. Results go
to ``results/bench/contraction_<device>.json`` (``--out`` to change).

Run: ``python benchmarks/bench_contraction.py`` (``--quick``: a smoke run on
small sizes; ``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import timed  # noqa: E402  (best of a few runs after a warm-up, synchronized on a GPU)

from mpo_core import decompose, load_weight_matrix, truncate  # noqa: E402
from mpo_core.layers import MPOLinear  # noqa: E402
from mpo_core.layers.path_choice import clear_choices  # noqa: E402
from mpo_core.tensor.chain_plan import (  # noqa: E402
    ChainPlan, all_plans, merge_plan, peak_state, plan_flops, plan_matmul, sweep_matmul,
)
from mpo_core.tensor.contraction import cheaper_chain, contract_to_matrix  # noqa: E402
from mpo_core.tensor.mpo import MPO  # noqa: E402
from mpo_core.tensor.shape import MPOShape  # noqa: E402
from mpo_core.tensor.truncation import bond_dims_for_ratio  # noqa: E402

MINILM = {"query 384x384": "encoder.layer.0.attention.self.query.weight",
          "intermediate 1536x384": "encoder.layer.0.intermediate.dense.weight",
          "output 384x1536": "encoder.layer.0.output.dense.weight"}
TIMED_PLANS = 6  # besides dense and the cheaper unmerged chain, the plans with fewest flops are timed
MAX_STATE_BYTES = 2 << 30  # nor plans whose states (all kept for the backward) could exceed 2 GiB
MAX_FLOPS_RATIO = 40  # plans needing more flops than this x dense are not timed (minutes, and memory, per run)


def plan_runner(x, tensors, shape, center, plan, training):
    """One forward (and backward) along ``plan`` as the layer runs it; inference keeps merged tensors."""
    if not training:
        with torch.no_grad():
            if plan.is_dense:
                weight = contract_to_matrix(tensors, shape, center)
                return lambda: x @ weight.T
            merged = merge_plan(tensors, plan)
        return lambda: sweep_matmul(x, merged, shape, plan)
    params = [t.detach().clone().requires_grad_(k != center) for k, t in enumerate(tensors)]
    xg = x.detach().clone().requires_grad_()

    def run():
        y = xg @ contract_to_matrix(params, shape, center).T if plan.is_dense else plan_matmul(xg, params, shape, plan)
        y.backward(torch.ones_like(y))
    return run


def plans_to_time(shape, bonds, tokens):
    """Dense, the cheaper unmerged chain and the plans with fewest flops (none above MAX_FLOPS_RATIO x dense)."""
    plans = sorted(all_plans(shape.n), key=lambda p: plan_flops(tokens, shape, bonds, p))
    keep = [ChainPlan.dense(shape.n), cheaper_chain(shape, bonds, tokens), *plans[:TIMED_PLANS]]
    dense = 2 * tokens * shape.out_features * shape.in_features
    return [p for p in dict.fromkeys(keep) if plan_flops(tokens, shape, bonds, p) <= MAX_FLOPS_RATIO * dense
            and peak_state(shape, bonds, p) * shape.n * tokens * 4 <= MAX_STATE_BYTES]


def auto_plan(mpo: MPO, tokens, training, device):
    """The plan ``forward_mode="auto"`` picks (fresh choice), in the mode given."""
    clear_choices()
    layer = MPOLinear(mpo).to(device)
    layer.freeze_central(True)
    with torch.set_grad_enabled(training):
        return layer.path_for(tokens).plan


def measure_case(label, mpo: MPO, tokens, device, repeat, training_too=True):
    shape, bonds, center = mpo.shape, mpo.bond_dims, mpo.center
    tensors = [t.to(device) for t in mpo.tensors]
    x = torch.randn(tokens, shape.in_features, device=device)
    dense_flops = 2 * tokens * shape.out_features * shape.in_features
    row = {"case": label, "shape": [shape.out_features, shape.in_features], "n": shape.n,
           "out_factors": list(shape.out_factors), "in_factors": list(shape.in_factors), "bond_dims": list(bonds),
           "tokens": tokens}
    for mode in (("inference", "training") if training_too else ("inference",)):
        training = mode == "training"
        times = {}
        for plan in plans_to_time(shape, bonds, tokens):
            with torch.set_grad_enabled(training):
                times[plan] = timed(plan_runner(x, tensors, shape, center, plan, training), device, repeat)
        auto = auto_plan(mpo, tokens, training, device)
        if auto not in times:
            times[auto] = timed(plan_runner(x, tensors, shape, center, auto, training), device, repeat)
        dense = ChainPlan.dense(shape.n)
        chain = cheaper_chain(shape, bonds, tokens)
        if chain not in times:  # (its flops are beyond MAX_FLOPS_RATIO: reported as not timed)
            chain = None
        sweeps = {p: t for p, t in times.items() if not p.is_dense}
        best_sweep = min(sweeps, key=sweeps.get)
        fastest = min(times, key=times.get)
        row[mode] = {
            "dense_s": times[dense], "dense_gflops": dense_flops / times[dense] / 1e9,
            "chain_plan": str(chain), "chain_flops_ratio": _flops_ratio(tokens, shape, bonds, chain, dense_flops),
            "chain_time_ratio": times[chain] / times[dense] if chain else None,
            "chain_throughput_share": (_flops_ratio(tokens, shape, bonds, chain, dense_flops) * times[dense]
                                       / times[chain]) if chain else None,
            "best_sweep": str(best_sweep), "best_sweep_time_ratio": sweeps[best_sweep] / times[dense],
            "best_sweep_flops_ratio": plan_flops(tokens, shape, bonds, best_sweep) / dense_flops,
            "best_sweep_throughput_share": plan_flops(tokens, shape, bonds, best_sweep) / dense_flops
            * times[dense] / sweeps[best_sweep],
            "fastest": str(fastest), "fastest_time_ratio": times[fastest] / times[dense],
            "auto": str(auto), "auto_over_fastest": times[auto] / times[fastest],
            "times": {str(p): t for p, t in times.items()},
        }
    return row


def _flops_ratio(tokens, shape, bonds, plan, dense_flops):
    return plan_flops(tokens, shape, bonds, plan) / dense_flops if plan else None


def truncated(matrix, n, ratio):
    mpo = decompose(matrix, n=n)
    return truncate(mpo, bond_dims_for_ratio(mpo, ratio)).mpo


def random_chain(out_factors, in_factors, bonds, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = MPOShape(math.prod(out_factors), math.prod(in_factors), out_factors, in_factors)
    d = (1, *bonds, 1)
    tensors = [torch.randn(d[k], i, j, d[k + 1], generator=gen) / math.sqrt(j * d[k + 1])
               for k, (i, j) in enumerate(zip(out_factors, in_factors))]
    return MPO(tensors, shape, None, shape.center)


def section_big(args, device):
    factors = (8, 8, 8) if args.quick else (16, 16, 16)
    size = math.prod(factors)
    print(f"1. Big matrix, {size}x{size}, n = 3 ({'*'.join(map(str, factors))}), {args.tokens} tokens: "
          "the fastest sweep vs the dense matmul")
    rows = []
    for bonds, target in (((8, 8), 0.6), ((4, 4), 0.3)):
        row = measure_case(f"{size}x{size} n=3 bonds {bonds}", random_chain(factors, factors, bonds),
                           args.tokens, device, args.repeat)
        inf = row["inference"]
        ok = "met" if inf["best_sweep_time_ratio"] <= target else "MISSED"
        print(f"   bonds {bonds}: flops {inf['best_sweep_flops_ratio']:.3f}x dense, time "
              f"{inf['best_sweep_time_ratio']:.3f}x dense ({inf['best_sweep']}; target <= {target}: {ok}); "
              f"dense {inf['dense_gflops']:.1f} GFLOP/s")
        rows.append(row)
    return rows


def section_minilm(args, device):
    print(f"2. MiniLM layer-0 matrices, {args.tokens} tokens, inference: the chain's throughput and the fastest plan")
    print(f"   {'matrix':<22} {'rho':>5} {'n':>2} {'bonds':<18} {'chain flops':>11} {'chain time':>10} "
          f"{'thru share':>10} {'best sweep':<14} {'flops':>6} {'time':>6} {'share':>5}  {'fastest':<14} "
          f"{'vs dense':>8}")
    rows = []
    names = list(MINILM.items())[:1] if args.quick else MINILM.items()
    for label, name in names:
        matrix = load_weight_matrix(name).float()
        for ratio in ((0.1,) if args.quick else (0.3, 0.1, 0.03)):
            for n in ((3,) if args.quick else (2, 3, 5)):
                row = measure_case(f"{label} rho={ratio} n={n}", truncated(matrix, n, ratio), args.tokens, device,
                                   args.repeat)
                row.update(matrix=label, ratio=ratio)
                inf = row["inference"]
                chain = (f"{inf['chain_flops_ratio']:>10.2f}x {inf['chain_time_ratio']:>9.2f}x "
                         f"{inf['chain_throughput_share']:>9.0%}") if inf["chain_plan"] != "None" else \
                    f"{'> ' + str(MAX_FLOPS_RATIO) + 'x, not timed':>32}"
                print(f"   {label:<22} {ratio:>5} {n:>2} {str(tuple(row['bond_dims'])):<18} {chain} "
                      f"{inf['best_sweep']:<14} {inf['best_sweep_flops_ratio']:>5.2f}x "
                      f"{inf['best_sweep_time_ratio']:>5.2f}x {inf['best_sweep_throughput_share']:>5.0%}  "
                      f"{inf['fastest']:<14} {inf['fastest_time_ratio']:>7.2f}x")
                rows.append(row)
    shares = [r["inference"]["chain_throughput_share"] for r in rows if r["inference"]["chain_plan"] != "None"]
    print(f"   unmerged chain's throughput share of the dense matmul's ({len(shares)} of {len(rows)} cases timed): "
          f"min {min(shares):.0%}, max {max(shares):.0%}; below 50% in {sum(x < 0.5 for x in shares)}")
    best = [r["inference"]["best_sweep_throughput_share"] for r in rows]
    print(f"   fastest sweep's throughput share: min {min(best):.0%}, max {max(best):.0%}; below 50% in "
          f"{sum(x < 0.5 for x in best)} of {len(best)} (target >= 50% everywhere: "
          f"{'met' if min(best) >= 0.5 else 'MISSED'})")
    below = [r for r in rows if r["inference"]["best_sweep_flops_ratio"] < 1]
    wins = [r for r in below if r["inference"]["best_sweep_time_ratio"] < 1]
    print(f"   a sweep needs fewer flops than dense in {len(below)} cases; it is also faster in {len(wins)} "
          f"({', '.join(sorted({r['case'].split(' rho')[0] + ' n=' + str(r['n']) for r in wins}))})")
    for r in below:
        if r not in wins:
            inf = r["inference"]
            print(f"   fewer flops yet slower: {r['case']}: {inf['best_sweep']} {inf['best_sweep_flops_ratio']:.2f}x "
                  f"flops, {inf['best_sweep_time_ratio']:.2f}x time")
    return rows


def section_auto(rows):
    print("3. forward_mode='auto' vs the fastest timed plan (target <= 1.05x)")
    worst = {}
    for mode in ("inference", "training"):
        ratios = [(r[mode]["auto_over_fastest"], r["case"], r[mode]["auto"], r[mode]["fastest"])
                  for r in rows if mode in r]
        worst[mode] = max(ratios)
        slow = [x for x in ratios if x[0] > 1.05]
        print(f"   {mode}: worst {worst[mode][0]:.3f}x ({worst[mode][1]}: auto {worst[mode][2]}, fastest "
              f"{worst[mode][3]}); {len(slow)} of {len(ratios)} cases above 1.05x")
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one MiniLM case")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads on the CPU")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per call (default 1024; quick 256)")
    parser.add_argument("--out", default=None, help="where the JSON record goes")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.tokens = args.tokens or (256 if args.quick else 1024)
    args.repeat = 2 if args.quick else 3
    rows = section_big(args, device) + section_minilm(args, device)
    worst = section_auto(rows)
    out = Path(args.out) if args.out else ROOT / "results" / "bench" / f"contraction_{device.type}.json"
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": str(device), "threads": args.threads, "tokens": args.tokens,
                                   "torch": torch.__version__, "rows": rows,
                                   "auto_worst": {k: v[0] for k, v in worst.items()}}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
