"""Floor 0, pure math on torch tensors: the MPO of a matrix, its truncation, error bound, ratio and entropy.

No ``torch.nn``, ``transformers`` or ``streamlit`` here (``tests/test_import_floors.py``);
layers (:mod:`mpo_core.layers`) call these functions. Start at :mod:`.mpo` for the chain,
:mod:`.decomposition` for Algorithm 1 and :mod:`.truncation` for cutting bonds.
"""
