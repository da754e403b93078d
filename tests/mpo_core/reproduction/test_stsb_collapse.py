"""The STS-B collapse experiment: its rows, and findings from seeds and weight movement."""
import numpy as np
import pandas as pd
import pytest

from mpo_core.reproduction import glue_grid, stsb_collapse
from mpo_core.reproduction.results_store import Results

# Table 3's rates in the shape of table3.learning_rates (as the full mode's probe chose them on STS-B)
RATES = {(row, task): (rate, "lr_probe") for task in ("sst2", "mrpc", "stsb")
         for row, rate in (("full", 2e-4), ("mpo_full", 1e-4), ("mpo_full_lfa", 3e-4), ("mpop", 3e-4),
                           ("mpop_dir", 3e-4), ("mpo_lfa", 3e-4), ("last_k", 2e-4))}


def test_rows_split_the_mpo_matrices_and_the_rate_over_three_seeds():
    specs, _ = stsb_collapse.specs("full", RATES)
    assert len(specs) == 15 and {s.seed for s in specs} == {0, 1, 2} and {s.task for s in specs} == {"stsb"}
    by_label = {s.label: s for s in specs if s.seed == 0}
    assert by_label["mpo_full_emb"].options["mpo_config"]["groups"] == ["word_embedding"]
    assert "word_embedding" not in by_label["mpo_full_enc"].options["mpo_config"]["groups"]
    assert by_label["mpo_full@lr2e-05"].settings["learning_rate"] == 2e-5
    config = glue_grid._config(by_label["mpo_full_enc"], "full", "runs", None, {})
    assert config.strategy_options.mpo_config.groups == stsb_collapse.ENCODER and config.learning_rate == 1e-4


def test_a_run_table3_makes_with_the_same_spec_is_borrowed_not_repeated():
    _, borrowed = stsb_collapse.specs("full", RATES)  # Table 3 probed mpo_full at 1e-4 (this study's), full at 2e-4
    assert borrowed == {f"mpo_full-stsb-seed{s}": "table3" for s in (0, 1, 2)}
    _, none = stsb_collapse.specs("full", {**RATES, ("mpo_full", "stsb"): (5e-5, "lr_probe")})
    assert none == {}
    _, both = stsb_collapse.specs("full", {**RATES, ("full", "stsb"): (1e-4, "lr_probe")})
    assert set(both) == {f"{row}-stsb-seed{s}" for row in ("full", "mpo_full") for s in (0, 1, 2)}


def test_findings_judge_each_row_against_full_and_compare_movement():
    rows, rng = [], np.random.default_rng(0)
    means = {"full": 0.63, "mpo_full": 0.2, "mpo_full_emb": 0.73, "mpo_full_enc": 0.19, "mpo_full@lr2e-05": 0.62}
    for seed in (0, 1, 2):
        for label, mean in means.items():
            moved = 0.02 if label == "full" else 0.3
            rows.append({"row": label, "task": "stsb", "seed": seed, "strategy": "x", "learning_rate": 1e-4,
                         "metric": "spearman", "score": mean + rng.normal(0, 0.01), "pr_millions": 1.0,
                         "to_millions": 1.0, "moved_word_embedding": 0.01, "moved_attention": moved,
                         "moved_ffn": moved, "wall_seconds": 1.0, "run": f"{label}-stsb-seed{seed}"})
    results = Results("stsb_collapse", "full", pd.DataFrame(rows), {})
    lines = stsb_collapse.findings(results)
    assert lines[0].startswith("mpo_full stays within 1 point of full fine-tuning: stsb does not hold")
    assert "mpo_full_emb stays within 1 point" in lines[1] and "stsb holds" in lines[1]
    assert "attention 15.0x" in lines[-1] and "word_embedding 1.0x" in lines[-1]
    table = stsb_collapse.summary(results)
    assert table.loc["mpo_full", "moved_ffn"] == pytest.approx(0.3)


@pytest.mark.slow  # real training: five 1-layer runs of 4 steps on STS-B
def test_small_mode_end_to_end(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = stsb_collapse.run("small")
    assert list(results.table["row"]) == list(stsb_collapse.ROWS)
    assert results.table[["moved_attention", "moved_ffn"]].notna().all().all()
    emb = results.table.set_index("row").loc["mpo_full_emb"]
    assert emb["moved_word_embedding"] > 0  # the one MPO group moved
    assert len(stsb_collapse.findings(results)) == len(stsb_collapse.ROWS)  # four claims and the movement line
