"""OPF (Gao et al., ACL 2023): over-parameterized fine-tuning with lossless MPOs, merged back to dense.

``growth`` (factors for a chosen parameter growth) and ``fisher`` (scores, top-N) are
pure; ``strategy`` (the Trainer callbacks) loads on first use of its names, so that
``import mpo_core`` does not pull in transformers' Trainer.
"""
_STRATEGY_NAMES = ("OPF_GROUPS", "SELECTIONS", "OPFStrategy", "make_opf")


def __getattr__(name):
    if name in _STRATEGY_NAMES:
        from . import strategy

        return getattr(strategy, name)
    raise AttributeError(f"module 'mpo_core.opf' has no attribute {name!r}")


__all__ = list(_STRATEGY_NAMES)
