"""Zero-shot STS-B against size for every compressor, before and after the same healing (issue 25; notebook 10).

The packaged sentence encoder (all-MiniLM-L6-v2, mean pooling) is compressed
without any task training and judged zero-shot on STS-B: Spearman between the
gold scores and the cosine of each pair's two embeddings, on the dev pairs
(dev only reports; calibration and healing sentences come from STS-B *train*).

Rows (methods of :mod:`~mpo_core.model.calibrated_compression`)::

    mpo_n5, mpo_n3     plain MPO truncation, same share per matrix (the issue's baseline)
    svd                plain truncated SVD, same share per matrix
    svd_whitened       SVD-LLM's whitened SVD, same share per matrix (the anchor)
    mpo_kronecker      MPO n = 5 truncated in the Kronecker-whitened metric
    mpo_calibrated     ... then refined by ALS with the full X^T X
    auto               structure and size per matrix under one budget, errors weighted by output sensitivity
    auto_mpo           the same budget spread, every matrix an MPO n = 5 (or dense), ALS-refined

Sizes: kept share 0.5 / 0.3 / 0.2 / 0.1 of the 36 encoder matrices, and the
whole model at #To 0.75x / 0.5x dense (word embedding included). A row
"+heal" is the same compressed model after :func:`~mpo_core.training.healing.heal`
with the same budget for every row. Each finished point is kept at
``results/<mode>/records/zero_shot_frontier/<point>.json`` as soon as it is done,
so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict

import pandas as pd
import torch

from ..model.calibrated_compression import ENCODER_GROUPS, CompressionConfig, compress_model
from ..model.calibration import calibration_stats
from ..model.calibration_sentences import calibration_sentences
from ..model.embedding_agreement import pair_embeddings, zero_shot_stsb
from ..model.output_sensitivity import measured_sensitivity
from ..model.pretrained import default_model_path
from ..runs.atomic_write import atomic_write_json
from ..runs.latency import compare_latency, random_token_batch
from ..runs.peak_memory import peak_forward_bytes
from ..runs.provenance import commit
from ..runs.run_folder import read_json
from .glue_grid import POLL_SECONDS, claim, records_root, release
from .results_store import Results, save_results

NAME = "zero_shot_frontier"
#: the issue's baseline, measured the same way before this work (one CPU thread, 1500 dev pairs)
BASELINE = {("mpo_n5", "encoder", 1.0): 0.867, ("mpo_n5", "encoder", 0.5): 0.716, ("mpo_n5", "encoder", 0.3): 0.684,
            ("mpo_n5", "encoder", 0.2): 0.640, ("mpo_n5", "encoder", 0.1): 0.627,
            ("mpo_n3", "encoder", 0.5): 0.629, ("mpo_n3", "encoder", 0.3): 0.649, ("mpo_n3", "encoder", 0.2): 0.640,
            ("mpo_n3", "encoder", 0.1): 0.626, ("svd", "encoder", 0.5): 0.799, ("svd", "encoder", 0.3): 0.717,
            ("svd", "encoder", 0.2): 0.690, ("svd", "encoder", 0.1): 0.670,
            ("svd_whitened", "encoder", 0.5): 0.840, ("svd_whitened", "encoder", 0.3): 0.820,
            ("svd_whitened", "encoder", 0.2): 0.799, ("svd_whitened", "encoder", 0.1): 0.783}
ROWS = {
    "mpo_n5": {"method": "mpo", "n": 5}, "mpo_n3": {"method": "mpo", "n": 3}, "svd": {"method": "svd"},
    "svd_whitened": {"method": "svd_whitened"}, "mpo_kronecker": {"method": "mpo_kronecker", "n": 5},
    "mpo_calibrated": {"method": "mpo_calibrated", "n": 5}, "auto": {"method": "auto"},
    "auto_mpo": {"method": "auto", "structures": (5,)},
}
MODE_SETTINGS = {
    "small": {"rows": ["mpo_n5", "svd_whitened", "auto"],
              "sizes": [("encoder", 0.5), ("model", 0.75)], "num_hidden_layers": 2, "calibration_sentences": 64,
              "dev_pairs": 100, "heal_rows": ["auto"], "heal_sizes": [("encoder", 0.5)], "heal_steps": 3,
              "heal_sentences": 96, "latency_repeats": 3, "structures": (2,)},
    "full": {"rows": list(ROWS), "sizes": [("encoder", 0.5), ("encoder", 0.2), ("model", 0.5), ("encoder", 0.3),
                                          ("encoder", 0.1), ("model", 0.75)],
             "num_hidden_layers": None, "calibration_sentences": 512, "dev_pairs": None,
             "heal_rows": ["mpo_n5", "svd_whitened", "mpo_calibrated", "auto"],
             "heal_sizes": [("encoder", 0.5), ("encoder", 0.2), ("model", 0.5)], "heal_steps": 100,
             "heal_sentences": 4096, "latency_repeats": 11, "structures": (2, 3, 5)},
}
MODE_SETTINGS["gpu"] = MODE_SETTINGS["full"]
CALIBRATION = "stsb"  # its train file
HEAL = {"variant": "all", "batch_size": 32, "max_length": 64, "learning_rate": 5e-4, "seed": 0}


def point_name(row: str, kind: str, size: float, healed: bool) -> str:
    return f"{row}@{kind}{size:g}" + ("+heal" if healed else "")


class _World:
    """What every point shares: the teacher, its tokenizer, its calibration and its dev embeddings."""

    def __init__(self, mode: str, progress: bool):
        from transformers import AutoModel, AutoTokenizer

        settings = MODE_SETTINGS[mode]
        path = str(default_model_path())
        overrides = {} if settings["num_hidden_layers"] is None else {"num_hidden_layers": settings["num_hidden_layers"]}
        from transformers.utils import logging as hf_logging

        previous = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the small mode's 2 layers leave 4 layers' weights unused: expected
        try:
            self.teacher = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True,
                                                     **overrides).eval()
        finally:
            hf_logging.set_verbosity(previous)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.settings, self.progress = settings, progress
        t = time.perf_counter()
        groups = (*ENCODER_GROUPS, "word_embedding")
        from ..data.glue import default_glue_dir, load_glue_split

        self.data_dir = default_glue_dir()
        self.stats = calibration_stats(self.teacher, self.tokenizer, CALIBRATION,
                                       num_sentences=settings["calibration_sentences"], groups=groups,
                                       data_dir=self.data_dir, progress=progress)
        self.calibration_seconds = time.perf_counter() - t
        self.sentences = calibration_sentences(CALIBRATION, settings["calibration_sentences"], data_dir=self.data_dir)
        self.heal_sentences = calibration_sentences(CALIBRATION, settings["heal_sentences"], seed=1,
                                                    data_dir=self.data_dir)
        dev = load_glue_split("stsb", "dev", data_dir=self.data_dir)
        self.pairs = list(zip(dev.texts_a, dev.texts_b))[: settings["dev_pairs"]]
        self.reference = pair_embeddings(self.teacher, self.tokenizer, self.pairs)
        dense = self.score(self.teacher)
        self.dense_score, self.dense_pair_cosines = dense["spearman"], dense["pair_cosines"]
        self.inputs = random_token_batch(self.teacher.config, 32, 64)  # the deployment batch: 32 x 64 tokens
        self.dense_activation_mib = peak_forward_bytes(self.teacher, self.inputs) / 2**20
        self.sensitivity: dict = {}

    def score(self, model) -> dict:
        return zero_shot_stsb(model, self.tokenizer, self.data_dir, reference=self.reference,
                              max_pairs=len(self.pairs))

    def config(self, row: str, kind: str, size: float) -> CompressionConfig:
        groups = ENCODER_GROUPS if kind == "encoder" else (*ENCODER_GROUPS, "word_embedding")
        sizes = {"size": size} if kind == "encoder" else {"model_size": size}
        options = {"structures": self.settings["structures"]} if row == "auto" else {}
        return CompressionConfig(**ROWS[row], **sizes, **options, groups=groups)


def _weights_mib(model) -> float:
    return sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values()) / 2**20


def _measure(world: _World, row: str, kind: str, size: float) -> tuple[dict, torch.nn.Module]:
    config = world.config(row, kind, size)
    student = copy.deepcopy(world.teacher)
    sensitivity, t = None, time.perf_counter()
    if config.method == "auto":
        key = (kind, size)
        if key not in world.sensitivity:
            world.sensitivity[key] = measured_sensitivity(world.teacher, world.tokenizer, world.stats,
                                                          world.sentences, config, progress=False)
        sensitivity = world.sensitivity[key]
    sensitivity_seconds = time.perf_counter() - t
    report = compress_model(student, config, world.stats, sensitivity=sensitivity, progress=world.progress)
    record = {"row": row, "size_kind": kind, "size": size, "config": asdict(config), "report": report.to_dict(),
              "full_model": world.settings["num_hidden_layers"] is None,
              "compress_seconds": report.seconds, "sensitivity_seconds": sensitivity_seconds,
              "calibration_seconds": world.calibration_seconds, "commit": commit()}
    return record, student


def _inference_memory(student, memory: str) -> None:
    for module in student.modules():
        if hasattr(module, "inference_memory"):
            module.inference_memory = memory


def _latency(world: _World, student) -> dict:
    """Inference time against dense, with the MPO layers keeping what they rebuild ("fast") and holding only
    their compressed size ("compact", as a memory-bound deployment would)."""
    out = {"weights_mib": _weights_mib(student), "weights_mib_dense": _weights_mib(world.teacher)}
    for memory in ("fast", "compact"):
        _inference_memory(student, memory)
        timing = compare_latency(student, world.teacher, world.inputs, warmup=1,
                                 repeats=world.settings["latency_repeats"], names=("compressed", "dense"))
        suffix = "" if memory == "fast" else "_compact"
        out.update({f"latency_ratio{suffix}": timing["ratio"], f"latency_ms{suffix}": timing["median_ms"]["compressed"],
                    f"latency_ms_dense{suffix}": timing["median_ms"]["dense"]})
    _inference_memory(student, "fast")
    return {**out, **_activation(world, student)}


def _activation(world: _World, student) -> dict:
    """Peak memory one forward pass of the deployment batch allocates beyond the weights, in both memory modes
    (in ``compact`` the MPO layers contract their weights inside the pass, so those count here)."""
    out = {"activation_mib_dense": world.dense_activation_mib}
    for memory in ("fast", "compact"):
        _inference_memory(student, memory)
        suffix = "" if memory == "fast" else "_compact"
        out[f"activation_mib{suffix}"] = peak_forward_bytes(student, world.inputs) / 2**20
    _inference_memory(student, "fast")
    return out


def _heal(world: _World, student, name: str, mode: str) -> dict:
    from ..training.healing import heal
    from ..training.healing_config import HealConfig

    steps = world.settings["heal_steps"]
    config = HealConfig(steps=steps, warmup_steps=min(20, steps // 10), **HEAL)
    folder = records_root(NAME, mode) / "healing" / name
    t = time.perf_counter()
    result = heal(student, world.teacher, world.tokenizer, world.heal_sentences, config, folder,
                  resume=(folder / "config.json").is_file(), progress=world.progress)
    summary = {"global_step": result.global_step, "train_loss": result.train_loss,
               "steps_per_second": result.steps_per_second, "run_dir": str(result.run_dir)}
    return {"heal_seconds": time.perf_counter() - t, "heal": summary,
            "heal_config": asdict(config)}


def _stored(world: _World, row: str, kind: str, size: float, mode: str) -> list[dict] | None:
    """The point's records if all are stored (before healing, and after where the mode heals it)."""
    root = records_root(NAME, mode)
    names = [point_name(row, kind, size, False)]
    if row in world.settings["heal_rows"] and (kind, size) in world.settings["heal_sizes"]:
        names.append(point_name(row, kind, size, True))
    paths = [root / f"{n}.json" for n in names]
    return [read_json(p) for p in paths] if all(p.is_file() for p in paths) else None


#: what a record of today's code has that older stored records may lack
LATER_FIELDS = ("pair_cosines", "activation_mib")
#: a rebuilt model must score what its record says (compression and healing are deterministic on one thread)
REBUILD_TOLERANCE = 1e-4


def _complete(world: _World, row: str, kind: str, size: float, mode: str, records: list[dict]) -> list[dict]:
    """Stored records of one point given the fields they lack (:data:`LATER_FIELDS`), keeping every stored figure.

    The model is rebuilt: compressed again, and for the healed record its healing run's final weights
    loaded (healed again, with the same config, where that folder is gone). The rebuilt model must
    reproduce the stored Spearman within :data:`REBUILD_TOLERANCE`: then the added per-pair cosines
    describe the recorded model. If it does not, the record was made by code that has changed since
    (e.g. a method's options): the point is measured again from scratch by today's code (its healing
    run too), so the table comes from one version, and the old score is kept as ``superseded_spearman``.
    """
    root = records_root(NAME, mode)
    _, student = _measure(world, row, kind, size)
    updates = []
    for record in records:
        if record["healed"]:
            folder = records_root(NAME, mode) / "healing" / point_name(row, kind, size, True)
            if (folder / "results.json").is_file():  # the finished run's weights, into the same structure
                from safetensors.torch import load_file

                student.load_state_dict(load_file(folder / "final_model" / "model.safetensors"), strict=True)
            else:
                _heal(world, student, point_name(row, kind, size, True), mode)
        score = world.score(student)
        if abs(score["spearman"] - record["spearman"]) > REBUILD_TOLERANCE:
            return _remeasure(world, row, kind, size, mode, records, score["spearman"])
        updates.append(dict(pair_cosines=score["pair_cosines"], **_activation(world, student)))
    for record, update in zip(records, updates):
        record.update(update)
        atomic_write_json(root / f"{point_name(row, kind, size, record['healed'])}.json", record, indent=1,
                          default=str)
    return records


def _remeasure(world: _World, row: str, kind: str, size: float, mode: str, stale: list[dict],
               rebuilt: float) -> list[dict]:
    """A point whose stored model today's code does not rebuild, measured again (see :func:`_complete`)."""
    import shutil

    print(f"zero_shot_frontier: {point_name(row, kind, size, False)} was recorded by other code (rebuilt "
          f"{rebuilt:.4f}, recorded {stale[0]['spearman']:.4f}): measuring it again.", flush=True)
    shutil.rmtree(records_root(NAME, mode) / "healing" / point_name(row, kind, size, True), ignore_errors=True)
    fresh = _point(world, row, kind, size, mode)
    root = records_root(NAME, mode)
    for record, old in zip(fresh, stale):
        record["superseded_spearman"] = old["spearman"]
        atomic_write_json(root / f"{point_name(row, kind, size, record['healed'])}.json", record, indent=1,
                          default=str)
    return fresh


def _incomplete(records: list[dict]) -> bool:
    return any(field not in record for record in records for field in LATER_FIELDS)


def _point(world: _World, row: str, kind: str, size: float, mode: str) -> list[dict]:
    """Both records of one (row, size): before healing and, where the mode heals it, after."""
    root = records_root(NAME, mode)
    root.mkdir(parents=True, exist_ok=True)
    plain, healed = point_name(row, kind, size, False), point_name(row, kind, size, True)
    wants_heal = row in world.settings["heal_rows"] and (kind, size) in world.settings["heal_sizes"]
    record, student = _measure(world, row, kind, size)
    t = time.perf_counter()
    record.update(world.score(student), eval_seconds=time.perf_counter() - t, healed=False,
                  spearman_dense=world.dense_score, **_latency(world, student))
    atomic_write_json(root / f"{plain}.json", record, indent=1, default=str)
    out = [record]
    if wants_heal:
        after = dict(record, healed=True, **_heal(world, student, healed, mode))
        after.update(world.score(student))
        atomic_write_json(root / f"{healed}.json", after, indent=1, default=str)
        out.append(after)
    return out


def _row(record: dict) -> dict:
    report = record["report"]
    return {"row": record["row"] + ("+heal" if record["healed"] else ""), "method": record["config"]["method"],
            "size_kind": record["size_kind"], "size": record["size"], "healed": record["healed"],
            "spearman": record["spearman"], "spearman_dense": record["spearman_dense"],
            "baseline": BASELINE.get((record["row"], record["size_kind"], record["size"]))
            if not record["healed"] and record.get("full_model", True) else None,
            "cosine_to_dense": record.get("cosine_to_original"), "kept_share": report["kept_share"],
            "model_share": report["model_share"], "params_millions": report["model_params_after"] / 1e6,
            "summed_squared_error": report["summed_squared_error"],
            "compress_seconds": record["compress_seconds"] + record.get("sensitivity_seconds", 0.0),
            "heal_seconds": record.get("heal_seconds"), "latency_ratio": record["latency_ratio"],
            "latency_ratio_compact": record.get("latency_ratio_compact"),
            "weights_mib": record["weights_mib"], "weights_mib_dense": record["weights_mib_dense"],
            "activation_mib": record.get("activation_mib"), "activation_mib_compact": record.get("activation_mib_compact"),
            "activation_mib_dense": record.get("activation_mib_dense"), "pairs": record["pairs"]}


def run(mode: str) -> Results:
    """Every point of the mode, skipping stored ones; several processes share the list through lock files
    (``python -m mpo_core reproduce zero_shot_frontier --mode full --workers 2``)."""
    torch.set_num_threads(1)  # the protocol: one CPU thread
    start = time.perf_counter()
    world = _World(mode, progress=mode != "small")
    pending = [(row, kind, size) for kind, size in world.settings["sizes"] for row in world.settings["rows"]]
    done: dict = {}
    while len(done) < len(pending):
        progressed = False
        for point in pending:
            if point in done:
                continue
            stored = _stored(world, *point, mode)
            if (stored is None or _incomplete(stored)) and claim(records_root(NAME, mode) / point_name(*point, False)):
                try:
                    stored = _stored(world, *point, mode)
                    if stored is None:
                        stored = _point(world, *point, mode)
                    elif _incomplete(stored):
                        stored = _complete(world, *point, mode, stored)
                finally:
                    release(records_root(NAME, mode) / point_name(*point, False))
            elif stored is not None and _incomplete(stored):
                stored = None  # another process is completing it
            if stored is not None:
                done[point], progressed = stored, True
        if not progressed:  # the rest are another process's: wait for them
            time.sleep(POLL_SECONDS)
    records = [r for point in pending for r in done[point]]
    table = pd.DataFrame([_row(r) for r in records])
    settings = {**{k: v for k, v in world.settings.items()}, "calibration": CALIBRATION, "heal": HEAL,
                "dense_spearman": world.dense_score, "dense_pair_cosines": world.dense_pair_cosines,
                "calibration_seconds": world.calibration_seconds,
                "rows": {k: v for k, v in ROWS.items() if k in world.settings["rows"]}}
    return save_results(NAME, mode, table, settings, records, time.perf_counter() - start)


def save_stored(mode: str) -> Results | None:
    """The table of every point stored so far (a run still going, or stopped), saved as this mode's results.

    The settings name the points still missing (``missing_points``), so a notebook shows a partial frontier
    as partial; a finished :func:`run` overwrites it with the whole table. ``None`` when nothing is stored.
    """
    root = records_root(NAME, mode)
    settings = MODE_SETTINGS[mode]
    wanted = [point_name(row, kind, size, healed) for kind, size in settings["sizes"] for row in settings["rows"]
              for healed in (False, True)
              if not healed or (row in settings["heal_rows"] and (kind, size) in settings["heal_sizes"])]
    records = [read_json(root / f"{name}.json") for name in wanted if (root / f"{name}.json").is_file()]
    if not records:
        return None
    missing = [name for name in wanted if not (root / f"{name}.json").is_file()]
    table = pd.DataFrame([_row(r) for r in records])
    meta = {**settings, "calibration": CALIBRATION, "heal": HEAL, "dense_spearman": records[0]["spearman_dense"],
            "missing_points": missing, "partial": bool(missing)}
    return save_results(NAME, mode, table, meta, records, 0.0)


def frontier_table(results: Results) -> pd.DataFrame:
    """Spearman per row (rows) and size (columns), healed rows below their unhealed ones."""
    table = results.table.copy()
    table["size_label"] = [f"{'share' if k == 'encoder' else '#To'} {s:g}" for k, s in zip(table["size_kind"],
                                                                                            table["size"])]
    wide = table.pivot_table(index="row", columns="size_label", values="spearman", aggfunc="first", sort=False)
    return wide.round(3)


#: the issue's targets: (row, size kind, size, healed) -> Spearman at least
TARGETS = {("svd_whitened", "encoder", 0.5, False): 0.835,
           ("auto", "encoder", 0.5, False): 0.85, ("auto", "encoder", 0.2, False): 0.81}
HEALED_TARGETS = {("encoder", 0.5): 0.86, ("encoder", 0.2): 0.84, ("model", 0.5): 0.84}


def frontier_figure(results: Results):
    """Zero-shot Spearman against the kept share of the encoder matrices; healed rows dashed, the dense line."""
    import plotly.graph_objects as go

    table = results.table
    part = table[table["size_kind"] == "encoder"]
    fig = go.Figure()
    palette = ("#7f7f7f", "#bcbd22", "#17becf", "#1f77b4", "#9467bd", "#d62728", "#2ca02c", "#8c564b")
    colors = dict(zip(ROWS, palette))
    for row, rows in part.groupby("row", sort=False):
        base = row.replace("+heal", "")
        rows = rows.sort_values("size")
        fig.add_trace(go.Scatter(x=rows["size"], y=rows["spearman"], mode="lines+markers", name=row,
                                 line=dict(color=colors.get(base), dash="dash" if row.endswith("+heal") else "solid"),
                                 hovertemplate=row + ": %{y:.3f} at share %{x}"))
    baseline = part[part["baseline"].notna()]
    if len(baseline):
        fig.add_trace(go.Scatter(x=baseline["size"], y=baseline["baseline"], mode="markers", name="issue's table",
                                 marker=dict(symbol="x", size=8, color="lightgray"),
                                 text=baseline["row"], hovertemplate="%{text} (before this work): %{y:.3f}"))
    dense = float(table["spearman_dense"].iloc[0])
    fig.add_hline(y=dense, line_dash="dot", line_color="black", annotation_text=f"dense {dense:.3f}",
                  annotation_position="bottom left")
    fig.add_hline(y=0.669, line_dash="dot", line_color="gray", annotation_text="no encoder (embeddings only) 0.669",
                  annotation_position="top left")
    fig.update_layout(xaxis_title="kept share of the 36 encoder matrices' parameters",
                      yaxis_title="zero-shot STS-B Spearman (dev)", height=480,
                      title="Compression without task training: what the sentence encoder keeps")
    fig.update_xaxes(autorange="reversed")
    return fig


def target_checks(results: Results) -> pd.DataFrame:
    """Each of the issue's targets: the measured value and met / missed."""
    table = results.table
    rows = []
    for (row, kind, size, healed), target in TARGETS.items():
        hit = table[(table["row"] == row + ("+heal" if healed else "")) & (table["size_kind"] == kind)
                    & (table["size"] == size)]
        rows.append({"target": f"{row} at {kind} {size:g}{' healed' if healed else ''} >= {target}",
                     "measured": float(hit["spearman"].iloc[0]) if len(hit) else None,
                     "met": bool(len(hit) and hit["spearman"].iloc[0] >= target) if len(hit) else None})
    for (kind, size), target in HEALED_TARGETS.items():
        hit = table[table["healed"] & (table["size_kind"] == kind) & (table["size"] == size)]
        best = hit.loc[hit["spearman"].idxmax()] if len(hit) else None
        rows.append({"target": f"best healed row at {kind} {size:g} >= {target}",
                     "measured": None if best is None else float(best["spearman"]),
                     "met": None if best is None else bool(best["spearman"] >= target),
                     "row": None if best is None else best["row"]})
    calibrated = table[(table["row"] == "mpo_calibrated") & (table["size_kind"] == "encoder")]
    for _, r in calibrated.iterrows():
        anchor = BASELINE.get(("svd_whitened", "encoder", r["size"]))
        if anchor is not None:
            rows.append({"target": f"mpo_calibrated at share {r['size']:g} >= whitened SVD anchor {anchor}",
                         "measured": float(r["spearman"]), "met": bool(r["spearman"] >= anchor)})
    return pd.DataFrame(rows)


#: paired comparisons of :func:`paired_table`: (method row, reference row); "dense" is the uncompressed model
COMPARISONS = (("mpo_calibrated", "svd_whitened"), ("auto", "svd_whitened"), ("mpo_calibrated", "mpo_n5"),
               ("auto+heal", "dense"), ("svd_whitened+heal", "dense"), ("auto", "dense"))
#: "as good as dense" is an equivalence statement within this Spearman margin
DENSE_MARGIN = 0.01


def paired_table(results: Results, data_dir=None, resamples: int = 2000) -> pd.DataFrame:
    """:data:`COMPARISONS` at every size both rows have, on the same dev pairs: the Spearman difference and its
    paired bootstrap interval over pairs (one deterministic model per row, so no seed term), with the
    verdicts "not below" (vs another compressor) or "within ``DENSE_MARGIN``" (vs dense)."""
    from ..data.glue import default_glue_dir, load_glue_split
    from .paired_bootstrap import paired_difference

    records = {(_row(r)["row"], r["size_kind"], r["size"]): r for r in results.meta.get("records", [])}
    dense = results.meta["settings"].get("dense_pair_cosines")
    if not records or dense is None or not all("pair_cosines" in r for r in records.values()):
        return pd.DataFrame()
    pairs = len(dense)
    gold = load_glue_split("stsb", "dev", data_dir or default_glue_dir()).labels[:pairs]
    rows = []
    for method, reference in COMPARISONS:
        for (row, kind, size), record in records.items():
            if row != method:
                continue
            other = dense if reference == "dense" else (records.get((reference, kind, size)) or {}).get("pair_cosines")
            if other is None:
                continue
            interval = paired_difference("spearman", record["pair_cosines"], other, gold, resamples=resamples)
            verdict = interval.equivalent(DENSE_MARGIN) if reference == "dense" else interval.not_below(0.0)
            rows.append({"method": method, "reference": reference, "size": f"{'share' if kind == 'encoder' else '#To'} "
                         f"{size:g}", "difference": interval.difference, "low": interval.low, "high": interval.high,
                         "claim": f"within {DENSE_MARGIN} of dense" if reference == "dense" else "not below",
                         "verdict": verdict, "pairs": pairs})
    return pd.DataFrame(rows)


__all__ = ["BASELINE", "COMPARISONS", "MODE_SETTINGS", "NAME", "ROWS", "TARGETS", "frontier_figure", "frontier_table",
           "paired_table", "point_name", "run", "save_stored", "target_checks"]
