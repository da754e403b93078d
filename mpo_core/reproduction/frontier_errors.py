"""What the frontier's models start from: how much of the pre-trained matrices each way of shrinking throws away.

The frontier (:mod:`.frontier`) compares methods at equal #To after the same
fine-tuning. Before any training, each method's model already differs from the
pre-trained one by its truncation: ``mpo_lfa@t`` and ``svd_lfa@t`` truncate every
matrix at one compression ratio rho (n = 5 and n = 2), ``mpop@t`` ends with bond
dims chosen cut by cut (least added error per parameter removed, across all
matrices). This module measures, for the pre-trained weights, the true relative
error ``sqrt(sum ||W - W'||^2 / sum ||W||^2)`` of those truncations per matrix
group (the word embedding; the encoder's matrices), next to the Eq. (4) bound.
For ``mpop`` the bonds are those a finished run ended with (what ``mpop_dir``
truncates to), applied to the pre-trained weights: the allocation, not the
training.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..model.mpo_config import MPOConfig
from ..tensor.decomposition import decompose
from ..tensor.truncation import bond_dims_for_ratio, truncate_to
from . import frontier
from .glue_grid import mode_settings

NAME = "frontier_errors"
EMBEDDING = "word embedding"
ENCODER = "encoder"


def group_of(name: str) -> str:
    return EMBEDDING if "word_embeddings" in name else ENCODER


def pretrained_matrices(task: str, mode: str) -> dict[str, torch.Tensor]:
    """``{module name: weight}`` of the matrices the frontier's MPO configuration selects, pre-trained."""
    from ..model.sequence_classifier import load_sequence_classifier

    model, _ = load_sequence_classifier(task, num_hidden_layers=mode_settings(mode).get("num_hidden_layers"), seed=0)
    return frontier.configured_matrices(model, MPOConfig())


def _measure(mpos: dict, weights: dict, dims_of) -> dict[str, dict]:
    """Per group: squared true error, squared Eq. (4) bound, squared norm (summed over its matrices)."""
    sums = {}
    for name, mpo in mpos.items():
        cut = truncate_to(mpo, dims_of(name, mpo))
        group = sums.setdefault(group_of(name), {"error": 0.0, "bound": 0.0, "norm": 0.0})
        group["error"] += float(torch.linalg.matrix_norm(weights[name] - cut.mpo.to_matrix()) ** 2)
        group["bound"] += cut.error_bound ** 2
        group["norm"] += float(weights[name].norm() ** 2)
    sums["all matrices"] = {k: sum(g[k] for g in list(sums.values())) for k in ("error", "bound", "norm")}
    return sums


def truncation_errors(sizes: dict, task: str, mode: str, mpop_bonds: dict | None = None) -> pd.DataFrame:
    """One row per (row, group): relative true error and Eq. (4) bound of the truncation, before training.

    Parameters
    ----------
    sizes: The task's entry of the frontier's sizes (rho per truncation and target).
    mpop_bonds: ``{row label: {module name: bond dims}}`` of finished mpop runs (e.g. from :func:`mpop_bonds`).
    """
    weights = pretrained_matrices(task, mode)
    rows = []
    for label, mpo_config in frontier.TRUNCATIONS.items():
        mpos = {name: decompose(w, n=mpo_config["n"]) for name, w in weights.items()}
        for target, found in sizes["ratios"][label].items():
            rho = found["compression_ratio"]
            measured = _measure(mpos, weights, lambda name, mpo, rho=rho: bond_dims_for_ratio(mpo, rho))
            rows += _rows(frontier.label_of(label, float(target)), label, float(target), measured)
    if mpop_bonds:
        mpos = {name: decompose(w, n=MPOConfig().n) for name, w in weights.items()}
        for label, bonds in mpop_bonds.items():
            measured = _measure(mpos, weights, lambda name, mpo, bonds=bonds: bonds[name])
            rows += _rows(label, "mpop", frontier.parse_label(label)[1], measured)
    return pd.DataFrame(rows)


def _rows(label: str, method: str, target: float, measured: dict) -> list[dict]:
    return [{"row": label, "method": method, "target": target, "group": group,
             "relative_error": (m["error"] / m["norm"]) ** 0.5, "error_bound": (m["bound"] / m["norm"]) ** 0.5}
            for group, m in measured.items()]


def mpop_bonds(results, task: str, seed: int = 0) -> dict:
    """``{mpop row label: {module name: bond dims}}`` of one seed's finished mpop runs of ``task``."""
    out = {}
    for record, spec in zip(results.meta.get("records", []), results.meta["settings"]["runs"]):
        if spec["strategy"] == "mpop" and spec["task"] == task and spec.get("seed") == seed and record.get("bond_dims"):
            out[spec["label"]] = {name: tuple(dims) for name, dims in record["bond_dims"].items()}
    return out


def error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Rows x groups of the relative true error (percent), per task where the table has several."""
    index = (["task"] if "task" in errors and errors["task"].nunique() > 1 else []) + ["method", "target"]
    table = errors.pivot_table(index=index, columns="group", values="relative_error", sort=False) * 100
    return table.round(1)


def run(mode: str):
    """Measure every task's truncations at the frontier's sizes (mpop: seed 0's final bonds); saves the table.

    Reads the frontier's results of ``mode`` (running the frontier first if they are missing).
    """
    import time

    from . import reproduce
    from .results_store import save_results

    start = time.perf_counter()
    results = reproduce(frontier.NAME, mode)
    sizes = results.meta["settings"]["sizes"]
    parts = []
    for task in results.meta["settings"]["tasks"]:
        part = truncation_errors(sizes[task], task, mode, mpop_bonds(results, task))
        part.insert(0, "task", task)
        parts.append(part)
    settings = {"frontier_commit": results.meta.get("commit"), "mpop_bonds_of_seed": 0, "sizes": sizes}
    return save_results(NAME, mode, pd.concat(parts, ignore_index=True), settings, [], time.perf_counter() - start)
