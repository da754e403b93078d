"""MPOP (Liu et al., ACL 2021): lightweight fine-tuning, then dimension squeezing (Algorithm 2).

:mod:`.config` (``MPOPConfig``, ``MPOPDirConfig``), :mod:`.squeeze` (which bond to cut next, and cutting it:
least squared error per parameter removed, each cut a share of the model), :mod:`.schedule` (the learning
rate of the LFA and squeeze phases), :mod:`.strategy` (``mpop`` and the ``mpop_dir`` ablation as Trainer
callbacks: stops at a target size, by delta on held-out training examples, or when the budget is spent)."""
