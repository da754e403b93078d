"""Build the pages' first-paint snapshots (``app/snapshots/*.json``): ``python -m app.build_snapshots``.

Each snapshot is what a page shows for its default settings, computed here
with the page's own back-end functions, and stamped with the command, commit,
date and library versions (see :mod:`app.snapshot`). Re-run after a change
that alters a default view; ``tests/app/test_snapshots.py`` fails while a
shipped snapshot differs from what the code computes.

- ``decompose``: the packaged model's word embedding, n = 5, the planned
  factors, the bonds of least Eq. (4) error for ρ = 0.3: every number of the
  page (true error included).
- ``compare``: the stored Figure 2 run (``results/full/figure2``), both
  panels, the paper's two claims checked on its numbers.
- ``atlas`` / ``compress``: the default view's headline numbers and figure.
- ``variation``: the stored Table 1 run (``results/full/table1``).
- ``squeeze``: a finished squeeze run of the frontier experiment.
- ``opf``: the default preview (Fisher scores on SST-2 batches, top-2 per group).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import snapshot  # noqa: E402

COMMAND = "python -m app.build_snapshots"
# Figure 2(b)'s claim ("relatively stable with respect to n") judged as: the n = 3, 5, 7 curves at most this
# far apart in relative error at every ratio (a twentieth of the error's 0-1 range).
STABLE_SPREAD = 0.05


def provenance() -> dict:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"command": COMMAND, "commit": commit, "built": time.strftime("%Y-%m-%d"),
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}


def figure_dict(fig) -> dict:
    """A plotly figure as plain JSON (arrays as lists), without its template.

    The dashboard draws every chart in Streamlit's own theme, and the default
    template depends on what else the process imported.
    """
    data = json.loads(fig.to_json(engine="json"))
    data.get("layout", {}).pop("template", None)
    return data


def decompose_snapshot() -> dict:
    from app import decompose

    source = decompose.MatrixSource()
    matrix = decompose.load_matrix(source)
    shape = decompose.plan(*matrix.shape, decompose.DEFAULT_NUM_TENSORS)
    mpo = decompose.decompose_matrix(matrix, shape.out_factors, shape.in_factors)
    dims = decompose.preset_bond_dims(mpo)
    summary = decompose.live_summary(mpo, dims)
    exact = decompose.true_error(matrix, mpo, dims)
    return {
        "page": "decompose",
        "caption": f"**{source.label}**: {decompose.describe_shape(shape)}",
        "metrics": [list(row) for row in decompose.metric_rows(summary, exact)],
        "figures": [],  # the chain drawing comes with the live page: plotly's validation would delay this paint ~1 s
        "state": {"source": source.name, "matrix_shape": list(matrix.shape), "n": decompose.DEFAULT_NUM_TENSORS,
                  "out_factors": list(shape.out_factors), "in_factors": list(shape.in_factors),
                  "full_bond_dims": list(shape.full_bond_dims), "bond_dims": list(dims),
                  "preset_ratio": decompose.PRESET_RATIO,
                  "true_error": {"bond_dims": list(exact.bond_dims), "absolute": exact.absolute,
                                 "relative": exact.relative, "entropies": list(exact.entropies)}},
    }


FIGURE2 = ROOT / "results" / "full" / "figure2"


def compare_snapshot() -> dict:
    """The stored Figure 2 run (``results/full/figure2.*``), drawn as the page draws curves."""
    import pandas as pd

    from app import compare
    from mpo_core.reproduction import figure2

    meta = json.loads(FIGURE2.with_suffix(".json").read_text())
    frame = pd.read_csv(FIGURE2.with_suffix(".csv"), keep_default_na=False)
    frame["skipped_reason"] = frame["skipped_reason"].astype(str)
    kinds = frame["matrix"] if "matrix" in frame else pd.Series("embedding", index=frame.index)

    def part(panel: str, kind: str = "embedding") -> pd.DataFrame:
        rows = frame[(frame["panel"] == panel) & (kinds == kind)]
        return compare.tidy(rows.drop(columns=["panel", "rows", "cols", "matrix"], errors="ignore"))

    a, b = part("a"), part("b")
    rows_a = int(frame.loc[(frame["panel"] == "a") & (kinds == "embedding"), "rows"].iloc[0])
    settings = meta["settings"]
    which = (f"{rows_a} random rows (seed {settings['row_seed']})" if "row_seed" in settings
             else f"the first {rows_a} rows")  # results from before the rows were drawn at random
    table = compare.ratio_table(a)
    ratio = 0.1 if 0.1 in table.index else float(table.index[len(table.index) // 2])
    metrics, sentences = [], []
    for column in table.columns:
        metrics.append([f"{column}, ρ = {ratio:g}", f"{table.loc[ratio, column]:.3f}",
                        f"Relative error ‖M − M′‖/‖M‖ on {which} of the word embedding."])
    for n, wins, count in compare.mpo_vs_cpd(a):
        metrics.append([f"MPO below CPD (n = {n})", f"{wins} of {count}", "Target ratios where the MPO error is lower."])
        verdict = "holds" if wins == count else "does not hold" if wins == 0 else "holds at some ratios only"
        sentences.append(f"**Paper claim (a), MPO below CPD at every ratio: {verdict} here** (MPO lower at {wins} of "
                         f"{count} target ratios, n = {n}, {which}).")
    if len(b):
        spread = compare.ratio_table(b).agg(lambda r: r.max() - r.min(), axis=1)
        metrics.append(["MPO spread over n (b)", f"{spread.max():.3f}",
                        "Largest difference of the relative error between n = 3, 5, 7 at one ratio, all rows."])
        close = spread.max() <= STABLE_SPREAD
        sentences.append(f"**Paper claim (b), the n = 3, 5, 7 curves lie close: {'holds' if close else 'does not hold'}"
                         f"** (at most {spread.max():.3f} apart in relative error at any ratio, all 30522 rows; "
                         f"we call curves close within {STABLE_SPREAD:g}).")
    why = ("Why CPD can beat the MPO here: at equal parameters a CPD spends its budget on one large rank shared by "
           "all modes, while the MPO splits it over bonds between digit groups of the row and column indices, which "
           "pays only where the matrix is correlated across those groups.")
    controls = [k for k in settings.get("controls", ()) if len(part("a", k))]
    if controls:
        found = []
        for kind in controls:
            for n, wins, count in compare.mpo_vs_cpd(part("a", kind)):
                metrics.append([f"MPO below CPD, {kind}", f"{wins} of {count}",
                                f"The same comparison on {figure2.CONTROL_NAMES[kind]} of the same shape and norm."])
                found.append(f"{figure2.CONTROL_NAMES[kind]}: MPO lower at {wins} of {count}")
        sentences.append(why + " The same run on two controls of the same shape and norm tells which: "
                         + "; ".join(found) + ". Notebook `02_figure2_error_vs_ratio` shows them side by side.")
    else:
        sentences.append(why + " Notebook `02_figure2_error_vs_ratio` runs the same comparison on two controls of "
                         "equal shape and norm: an iid Gaussian matrix (no structure for any method) and a smooth "
                         "kernel matrix (correlated across scales, the structure tensor networks are built for).")
    figures = [compare.error_figure(a, title=f"(a) {which}: MPO vs CPD")]
    if len(b):
        figures.append(compare.error_figure(b, title="(b) all rows: MPO with n = 3, 5, 7"))
    for fig in figures:
        fig.update_layout(height=380, margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return {
        "page": "compare",
        "caption": (f"The stored full run (`{meta['command']}`, commit {meta['commit'][:8]}, finished {meta['finished']}, "
                    f"{meta['wall_seconds'] / 60:.0f} min on a {meta['hardware']['cpu_count']}-core CPU): "
                    f"{settings['matrix']} of the {settings['model']}."),
        "metrics": metrics,
        "markdown": "\n\n".join(sentences),
        "figures": [figure_dict(fig) for fig in figures],
        "state": {"results": "results/full/figure2", "commit": meta["commit"], "finished": meta["finished"]},
    }


def atlas_snapshot() -> dict:
    """Every matrix at the page's defaults (n = 5, ρ = 0.2): headline numbers and the heatmap."""
    from app import atlas

    book = atlas.build_atlas(atlas.DEFAULT_NUM_TENSORS)
    table = atlas.atlas_table(book, atlas.DEFAULT_RATIO)
    quantity = next(iter(atlas.QUANTITIES))
    rows = [list(r) for r in atlas.overview_rows(book, table) if r[0] != atlas.TIME_LABEL]
    heatmap = atlas.heatmap_figure(table, quantity, highlight=atlas.ordered_names(table)[0])
    return {"page": "atlas", "caption": "", "metrics": rows, "figures": [figure_dict(heatmap)],
            "state": {"n": atlas.DEFAULT_NUM_TENSORS, "ratio": atlas.DEFAULT_RATIO, "quantity": quantity,
                      "n_choices": list(atlas.NUM_TENSOR_CHOICES), "quantity_labels": list(atlas.QUANTITY_LABELS.values())}}


def compress_snapshot() -> dict:
    """The default plan (default groups, every layer, ρ = 0.3, n = 5): totals, the per-group figure, and what
    the compressed model does (embedding agreement, zero-shot STS-B on the page's 200 pairs)."""
    from dataclasses import asdict

    from transformers import AutoTokenizer

    import mpo_core
    from app import allowed_paths, compress as mc

    model = mc.load_base_model()
    groups = tuple(g for g in mc.available_groups(model) if g in mc.DEFAULT_GROUPS)
    request = mc.CompressionRequest(groups=groups, ratio=mc.DEFAULT_RATIO, n=5, layers=None)
    table = mc.plan_table(model, mc.matrix_spectra(model, request.n), request)
    rows = [list(r) for r in mc.totals_rows(mc.size_totals(model, table), table)]
    tokenizer = AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)
    built, _ = mc.build_compressed_model(model, request)
    sample = mc.effect_sample(model, tokenizer, allowed_paths.dashboard_roots([]).glue)
    # the page shows the three numbers; the per-pair cosines (for paired tests) stay out of the first paint
    effect = {k: v for k, v in asdict(mc.model_effect(built, tokenizer, sample)).items() if k != "pair_cosines"}
    return {"page": "compress", "caption": "", "metrics": rows, "figures": [figure_dict(mc.group_figure(table))],
            "state": {"groups": list(groups), "ratio": mc.DEFAULT_RATIO, "n": request.n,
                      "request": [list(groups), request.ratio, request.n, None], "effect": effect}}


def variation_snapshot() -> dict:
    """The stored Table 1 run (``results/full/table1``): our |Δw| shares beside the paper's."""
    from mpo_core.reproduction import results_store, table1

    results = results_store.load_results("table1", "full")
    meta = results.meta
    frame = table1.side_by_side(results)
    rows = []
    for group, part in frame.groupby("group", sort=False):
        top = part.loc[part["ours"].idxmax()]
        rows.append([group, str(top["bin |dw|"]),  # short: three labels side by side must not be cut off
                     f"The |Δw| bin holding most of its weights: {100 * top['ours']:.0f} % (paper's largest bin: "
                     f"{part.loc[part['paper (BERT-base)'].idxmax(), 'bin |dw|']})."])
    return {
        "page": "variation",
        "caption": (f"The stored run (`{meta['command']}`, commit {meta['commit'][:8]}, finished {meta['finished']}): "
                    + table1.run_summary(results)),
        "metrics": rows,
        "markdown": table1.comparison_sentence(results),
        "figures": [figure_dict(table1.figure(results))],
        "state": {"results": "results/full/table1", "commit": meta["commit"]},
    }


EXAMPLE_SQUEEZE = ROOT / "results" / "full" / "records" / "frontier" / "mpop@0.75-sst2-seed0.json"
EXAMPLE_FULL = ROOT / "results" / "full" / "records" / "frontier" / "full-sst2-seed0.json"


def squeeze_snapshot() -> dict:
    """A finished squeeze run of the frontier experiment (MiniLM, SST-2, to 0.75 of the dense size)."""
    import plotly.graph_objects as go

    record = json.loads(EXAMPLE_SQUEEZE.read_text())
    full = json.loads(EXAMPLE_FULL.read_text())
    sq = record["squeeze"]
    history = sq["history"]
    sizes = [sq["mpo_params"] / 1e6] + [h["total_params"] / 1e6 for h in history]
    scores = [sq["baseline"]] + [h["p_tilde"] for h in history]
    dense = sq["dense_params"] / 1e6
    fig = go.Figure()
    fig.add_scatter(x=sizes, y=scores, mode="lines+markers", name="held-out accuracy p̃ after each cut",
                    text=["after lightweight fine-tuning"] + [f"cut {h['matrix'].removeprefix('bert.')} bond "
                                                            f"{h['bond']}: {h['before']}→{h['after']}" for h in history],
                    hovertemplate="#To %{x:.2f}M<br>p̃ %{y:.3f}<br>%{text}<extra></extra>")
    fig.add_vline(x=dense, line_dash="dash", annotation_text="dense model", line_color="#777")
    fig.add_vline(x=sq["target_params"] / 1e6, line_dash="dot", annotation_text=f"target {sq['target_size']:g}×",
                  line_color="#f58518")
    majority = record.get("heldout_eval", {}).get("majority_share")
    if majority:
        fig.add_hline(y=majority, line_dash="dot", annotation_text="majority class", line_color="#999")
    fig.update_layout(title="Squeezing: accuracy on held-out training examples as #To falls",
                      xaxis={"title": "#To, all parameters (millions)", "autorange": "reversed"},
                      yaxis={"title": "held-out accuracy p̃"}, height=380, showlegend=False)
    rows = [  # short labels and values: five side by side must not be cut off
        ["#To before cuts", f"{sq['mpo_params'] / 1e6:.2f}M", f"Full-bond MPO model; the dense MiniLM has {dense:.2f}M."],
        ["#To after", f"{record['total_params'] / 1e6:.2f}M",
         f"{record['total_params'] / sq['dense_params']:.2f}× the dense model (target {sq['target_size']:g}×)."],
        ["held-out p", f"{sq['baseline']:.3f}",
         f"Accuracy on {record['num_heldout_examples']} held-out training examples after lightweight fine-tuning."],
        ["held-out p̃, last cut", f"{sq['final']:.3f}", "The same examples after the last accepted cut."],
        ["cuts accepted", str(sq["steps_accepted"]), sq["stop_reason"]],
        ["dev acc., squeezed", f"{record['score']:.3f}", f"{record['num_eval_examples']} SST-2 dev examples."],
        ["dev acc., dense FT", f"{full['score']:.3f}", "Full fine-tuning of the dense model: same budget, same seed."],
    ]
    schedule = ", ".join(f"{ph['phase']} {ph['steps']} steps" for ph in sq["schedule"])
    return {
        "page": "squeeze",
        "caption": (f"An example: the stored run `{record['run_name']}` of the frontier experiment (all 6 layers, "
                    f"{record['num_train_examples']} SST-2 training examples, {schedule}, "
                    f"{record['wall_seconds'] / 60:.0f} min on a 2-core CPU; `results/full/records/frontier/`)."),
        "metrics": rows,
        "figures": [figure_dict(fig)],
        "state": {"record": str(EXAMPLE_SQUEEZE.relative_to(ROOT))},
    }


def opf_snapshot() -> dict:
    """The default preview: Fisher scores on 4 SST-2 batches of 16, all 6 layers, static top-2, growth 4."""
    import os

    from app import opf

    glue = os.environ.get("GLUE_DIR") or str(ROOT.parent / "shared" / "glue")
    request = opf.FisherRequest(task="sst2", data_dir=glue, num_hidden_layers=opf.MAX_LAYERS, num_batches=4,
                                batch_size=16, max_length=64)
    fisher = opf.compute_fisher(request)
    options = {"selection": "static", "top_n": 2, "stages": 2, "growth": 4.0, "max_steps": 100}
    stages = opf.selection_preview(fisher, **options)
    rows = [list(r) for r in opf.preview_rows(opf.preview_sizes(fisher, stages))]
    figures = [opf.fisher_heatmap(fisher, stages), opf.preview_size_figure(fisher, stages, options["max_steps"])]
    return {"page": "opf", "caption": "Fisher scores of the packaged MiniLM on SST-2 training batches; static "
                                      "selection of the top-2 matrices per group, growth 4×.",
            "metrics": rows, "figures": [figure_dict(f) for f in figures],
            "state": {"request": {k: v for k, v in vars(request).items() if k != "data_dir"}, **options}}


BUILDERS = {"decompose": decompose_snapshot, "compare": compare_snapshot, "atlas": atlas_snapshot,
            "compress": compress_snapshot, "variation": variation_snapshot, "squeeze": squeeze_snapshot, "opf": opf_snapshot}


def build(page: str) -> dict:
    data = BUILDERS[page]()
    data["provenance"] = provenance()
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help=f"some of {', '.join(BUILDERS)} (default: every page)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.pages) - set(BUILDERS))
    if unknown:
        parser.error(f"no snapshot for {', '.join(unknown)}; pages: {', '.join(BUILDERS)}")
    args.pages = args.pages or list(BUILDERS)
    snapshot.FOLDER.mkdir(exist_ok=True)
    for page in args.pages:
        start = time.perf_counter()
        data = build(page)
        snapshot.path(page).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{snapshot.path(page).relative_to(ROOT)}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
