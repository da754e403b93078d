"""A tiny stored zero-shot frontier for the Compress page's tests (written under ``$MPO_RESULTS_DIR``)."""
import pandas as pd

from mpo_core.reproduction.results_store import save_results
from mpo_core.reproduction.zero_shot_frontier import NAME

ROWS = [  # row, method, size_kind, size, healed, spearman, baseline, kept_share
    ("mpo_n5", "mpo", "encoder", 0.5, False, 0.70, 0.716, 0.49),
    ("mpo_n5", "mpo", "encoder", 0.3, False, 0.66, 0.684, 0.29),
    ("auto", "auto", "encoder", 0.5, False, 0.84, None, 0.50),
    ("auto", "auto", "encoder", 0.3, False, 0.81, None, 0.30),
    ("auto+heal", "auto", "encoder", 0.5, True, 0.85, None, 0.50),
    ("auto", "auto", "model", 0.75, False, 0.80, None, 0.41),
]


def frontier_table() -> pd.DataFrame:
    table = pd.DataFrame(ROWS, columns=["row", "method", "size_kind", "size", "healed", "spearman", "baseline",
                                        "kept_share"])
    table["spearman_dense"] = 0.867
    return table


def write_frontier(mode: str):
    """``zero_shot_frontier`` results in ``mode`` under the current ``$MPO_RESULTS_DIR``."""
    return save_results(NAME, mode, frontier_table(), {"mode": mode}, [], wall_seconds=60.0)
