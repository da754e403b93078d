"""The papers' published numbers, cited, for side-by-side tables (these are the papers' results, not ours).

MPOP: Liu, Gao, Zhao, Xie, Lu, Wen. "Enabling Lightweight Fine-tuning for
Pre-trained Language Model Compression based on Matrix Product Operators",
ACL 2021 (``../shared/papers/mpop-acl2021.md``). GLUE dev sets; scores in
percent; ``pr``/``to`` are #Pr/#To in millions.
"""
from __future__ import annotations

import pandas as pd

# Table 3: ALBERT-base and MPOP on GLUE (dev), percent.
TABLE3_TASKS = ("sst2", "mnli", "qnli", "cola", "stsb", "qqp", "mrpc", "rte", "wnli")
TABLE3 = {
    "ALBERT_rep": dict(zip(TABLE3_TASKS, (90.6, 84.5, 89.4, 53.4, 88.2, 89.1, 88.5, 71.1, 54.9)), pr=11.6, to=11.6),
    "MPOP": dict(zip(TABLE3_TASKS, (90.8, 83.3, 90.5, 54.7, 89.2, 89.4, 89.2, 73.3, 56.3)), pr=1.1, to=9.0),
    "MPOP_full": dict(zip(TABLE3_TASKS, (92.2, 84.4, 91.4, 55.7, 89.2, 89.6, 87.3, 76.9, 56.3)), pr=12.7, to=12.7),
    "MPOP_full+LFA": dict(zip(TABLE3_TASKS, (93.0, 84.3, 91.3, 56.0, 89.2, 89.0, 88.0, 78.3, 56.3)), pr=1.2, to=12.7),
    "MPOP_dir": dict(zip(TABLE3_TASKS, (86.6, 79.2, 81.9, 15.0, 82.5, 87.0, 74.3, 54.2, 56.3)), pr=1.1, to=9.0),
}
# Which of our rows plays which paper row (our base model is MiniLM, not ALBERT).
TABLE3_ROW_OF = {"full": "ALBERT_rep", "mpop": "MPOP", "mpo_full": "MPOP_full", "mpo_full_lfa": "MPOP_full+LFA",
                 "mpop_dir": "MPOP_dir"}

# Table 4: other BERT variants, before and after MPOP (WNLI, MRPC, RTE accuracy).
TABLE4_TASKS = ("wnli", "mrpc", "rte")
TABLE4 = {
    "BERT": dict(zip(TABLE4_TASKS, (56.3, 85.5, 70.0)), pr=110, to=110),
    "MPOP_B": dict(zip(TABLE4_TASKS, (56.3, 84.3, 70.8)), pr=7.7, to=70.4),
    "DistilBERT": dict(zip(TABLE4_TASKS, (56.3, 84.1, 61.4)), pr=66, to=66),
    "MPOP_D": dict(zip(TABLE4_TASKS, (56.3, 84.3, 61.7)), pr=4.0, to=43.4),
    "MobileBERT": dict(zip(TABLE4_TASKS, (56.2, 86.0, 63.5)), pr=25.3, to=25.3),
    "MPOP_M": dict(zip(TABLE4_TASKS, (56.2, 85.3, 65.7)), pr=4.4, to=15.4),
}

# Table 5: fine-tuning only the last layers of BERT-base vs MPOP_B (SST-2, MRPC, RTE accuracy).
TABLE5_TASKS = ("sst2", "mrpc", "rte")
TABLE5 = {
    "BERT_10-12": dict(zip(TABLE5_TASKS, (91.9, 76.5, 67.2)), pr=45.7),
    "BERT_11-12": dict(zip(TABLE5_TASKS, (91.7, 75.3, 62.8)), pr=38.6),
    "BERT_12": dict(zip(TABLE5_TASKS, (91.4, 72.1, 61.4)), pr=31.5),
    "MPOP_B": dict(zip(TABLE5_TASKS, (92.6, 84.3, 70.8)), pr=10.1),
}


def paper_frame(table: dict, tasks) -> pd.DataFrame:
    """A paper table as rows x (tasks, pr, to), percent."""
    frame = pd.DataFrame.from_dict(table, orient="index")
    columns = [t for t in tasks if t in frame.columns] + [c for c in ("pr", "to") if c in frame.columns]
    return frame[columns]
