"""The one training engine: typed method options (:mod:`.method_config`), the ``Strategy`` hooks
(:mod:`.strategy`), the registry (:mod:`.strategies`), :class:`.fine_tune_config.FineTuneConfig` and
:func:`.fine_tune.fine_tune` (transformers ``Trainer`` + callbacks). MPOP and OPF live in their own rooms
(:mod:`mpo_core.mpop`, :mod:`mpo_core.opf`), between the hooks and the registry."""
