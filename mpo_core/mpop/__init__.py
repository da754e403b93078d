"""MPOP (Liu et al., ACL 2021): lightweight fine-tuning, then dimension squeezing (Algorithm 2).

:mod:`.config` (``MPOPConfig``, ``MPOPDirConfig``), :mod:`.squeeze` (which bond to cut next, and cutting it),
:mod:`.strategy` (``mpop`` and the ``mpop_dir`` ablation as Trainer callbacks)."""
