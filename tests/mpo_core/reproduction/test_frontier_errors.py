"""The frontier's truncation errors on the pre-trained matrices (here: small seeded stand-ins)."""
import pandas as pd
import pytest
import torch

from mpo_core.reproduction import EXPERIMENTS, frontier, frontier_errors
from mpo_core.reproduction.frontier import SizeModel, ratio_for_size
from mpo_core.reproduction.results_store import Results
from mpo_core.tensor.decomposition import decompose

EMBEDDING = "bert.embeddings.word_embeddings"
QUERY = "bert.encoder.layer.0.attention.self.query"


@pytest.fixture
def matrices(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    weights = {EMBEDDING: torch.randn(256, 32, generator=generator),
               QUERY: torch.randn(32, 32, generator=generator)}
    monkeypatch.setattr(frontier_errors, "pretrained_matrices", lambda task, mode: weights)
    return weights


def sizes_for(weights, targets=(0.9, 0.6)) -> dict:
    """The frontier's sizes entry for these matrices alone (rho per truncation and target)."""
    out = {"ratios": {}}
    for label, config in frontier.TRUNCATIONS.items():
        model = SizeModel(sum(w.numel() for w in weights.values()), 0,
                          [decompose(w, n=config["n"]) for w in weights.values()])
        out["ratios"][label] = {}
        for target in targets:
            rho, total = ratio_for_size(model, target * model.dense_params, rtol=0.02)
            out["ratios"][label][str(target)] = {"compression_ratio": rho, "total_params": total}
    return out


def test_errors_per_group_grow_as_the_size_shrinks_and_the_svd_one_equals_its_bound(matrices):
    errors = frontier_errors.truncation_errors(sizes_for(matrices), "sst2", "full")
    assert set(errors["group"]) == {"word embedding", "encoder", "all matrices"}
    assert (errors["relative_error"] <= errors["error_bound"] + 1e-6).all()  # Eq. (4) bounds the true error
    svd = errors[errors["method"] == "svd_lfa"]
    assert svd["relative_error"].to_numpy() == pytest.approx(svd["error_bound"].to_numpy(), rel=1e-4)  # n = 2: exact
    whole = errors[errors["group"] == "all matrices"].set_index("row")["relative_error"]
    assert 0 < whole["mpo_lfa@0.9"] < whole["mpo_lfa@0.6"] < 1 and 0 < whole["svd_lfa@0.9"] < whole["svd_lfa@0.6"]
    # the whole is the energy-weighted mean of its groups: between them
    groups = errors[errors["row"] == "mpo_lfa@0.6"].set_index("group")["relative_error"]
    assert min(groups["word embedding"], groups["encoder"]) <= groups["all matrices"] <= max(
        groups["word embedding"], groups["encoder"])


def test_mpop_bonds_are_read_from_the_runs_and_full_bonds_lose_nothing(matrices):
    full = {name: decompose(w, n=5).full_bond_dims for name, w in matrices.items()}
    cut = dict(full, **{EMBEDDING: tuple(max(1, d // 4) for d in full[EMBEDDING])})
    runs = [{"label": "mpop@0.75", "task": "sst2", "strategy": "mpop", "seed": 0},
            {"label": "mpop@0.75", "task": "sst2", "strategy": "mpop", "seed": 1},
            {"label": "full", "task": "sst2", "strategy": "full", "seed": 0}]
    records = [{"bond_dims": {k: list(v) for k, v in cut.items()}}, {"bond_dims": {}}, {"bond_dims": None}]
    results = Results("frontier", "full", pd.DataFrame(), {"records": records, "settings": {"runs": runs}})
    bonds = frontier_errors.mpop_bonds(results, "sst2")
    assert bonds == {"mpop@0.75": cut}  # seed 0's mpop run only
    errors = frontier_errors.truncation_errors(sizes_for(matrices), "sst2", "full", bonds)
    mpop = errors[errors["method"] == "mpop"].set_index("group")["relative_error"]
    assert mpop["encoder"] == pytest.approx(0, abs=1e-5) and mpop["word embedding"] > 0.1  # only the embedding cut
    table = frontier_errors.error_table(errors)
    assert set(table.columns) == {"all matrices", "encoder", "word embedding"}
    assert ("mpop", 0.75) in table.index


def test_registered():
    assert EXPERIMENTS["frontier_errors"] == "frontier_errors"
