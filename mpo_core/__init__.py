"""mpo_core: Matrix Product Operator (MPO) compression of pre-trained language models.

Math (pure torch) at the bottom, layers on top of it::

    shape.py            plan_shape, MPOShape, tensorize/matricize
    decomposition.py    decompose (Algorithm 1, canonical), sequential_svd (verbatim)
    canonical.py        canonicalize (mixed-canonical form, Schmidt values)
    truncation.py       truncate (to bond dims / ratio / error), Truncation
    truncation_error.py Eq. (3)-(4): local_truncation_errors, truncation_error_bound
    compression.py      Eq. (5): compression_ratio, parameter_split, clip_bond_dims
    entropy.py          Eq. (6): entanglement_entropy
    contraction.py      contract_to_matrix, chain_matmul, gather_rows (+ flop counts)
    factored_forward.py x -> x W^T through SVD / MPO / CP / Tucker factors (Table 2's inference cost)
    baselines.py        CPD / Tucker / SVD and the error-vs-ratio curve (Figure 2)
    layers/             MPOLinear, MPOEmbedding

Model surgery on Hugging Face encoders (BERT, ALBERT, DistilBERT, MobileBERT, MPNet)::

    matrix_groups.py    which matrices are query/key/value/attention_output/ffn_in/ffn_out/...
    mpo_config.py       MPOConfig: groups, n, factors, bond dims or ratio, layers
    surgery.py          apply_mpo / merge_mpo
    parameter_count.py  #Pr / #To per group, central vs auxiliary
    mpo_checkpoint.py   save_mpo_model / load_mpo_model (safetensors)

The papers' methods, beside the pure math they need::

    squeeze.py          which bond to cut next and cutting it (MPOP Algorithm 2, lines 4-5)
    growth.py           factors for a lossless MPO with a chosen parameter growth (OPF)
    fisher.py           Fisher-information scores and top-N selection per group (OPF)

Training (strategies.py, squeeze_strategy.py, opf.py, fine_tune.py) is
imported from its own modules: it needs transformers' Trainer.
"""
from . import legacy_paths

legacy_paths.install()

from .tensor.canonical import canonicalize
from .tensor.compress import compress_matrix
from .tensor.compression import ParameterSplit, clip_bond_dims, compression_ratio, num_params, parameter_split
from .tensor.contraction import chain_matmul, contract_to_matrix, gather_rows
from .tensor.decomposition import decompose, sequential_svd
from .tensor.entropy import entanglement_entropy, entropy_of_spectrum
from .layers import MPOEmbedding, MPOLinear
from .opf.growth import growth_of, plan_growth_factors
from .data.glue import GLUE_TASKS, GlueSplit, GlueTask, get_task, glue_file, load_glue_split, subset_indices, tokenize_split
from .tensor.mpo import MPO
from .model.checkpoint import load_mpo_model, save_mpo_model
from .model.mpo_config import MPOConfig
from .model.parameter_count import ParameterCount, count_parameters
from .tensor.shape import MPOShape, full_bond_dims, matricize, plan_factors, plan_shape, tensorize
from .mpop.squeeze import SqueezeMove, all_moves, apply_move, best_move
from .model.surgery import Replacement, apply_mpo, merge_mpo, mpo_modules
from .tensor.truncation import Truncation, bond_dims_for_error, bond_dims_for_ratio, truncate
from .model.pretrained import default_model_path, list_weight_matrices, load_weight_matrix
from .tensor.truncation_error import frobenius_error, local_truncation_errors, truncation_error_bound

_LAZY = {
    "error_vs_ratio": "tensor.baselines", "cpd_approximation": "tensor.baselines", "tucker_approximation": "tensor.baselines",
    "mpo_approximation": "tensor.baselines", "svd_approximation": "tensor.baselines", "compute_glue_metrics": "data.metrics",
    "fisher_scores": "opf.fisher", "select_top": "opf.fisher",
}


def __getattr__(name):
    """Baselines (tensorly, pandas) and metrics (scikit-learn) load only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mpo_core' has no attribute {name!r}")


__all__ = [
    "MPO", "MPOShape", "MPOLinear", "MPOEmbedding", "ParameterSplit", "Truncation",
    "plan_shape", "plan_factors", "full_bond_dims", "tensorize", "matricize",
    "decompose", "sequential_svd", "canonicalize", "compress_matrix",
    "truncate", "bond_dims_for_ratio", "bond_dims_for_error",
    "local_truncation_errors", "truncation_error_bound", "frobenius_error",
    "compression_ratio", "num_params", "parameter_split", "clip_bond_dims",
    "entanglement_entropy", "entropy_of_spectrum",
    "contract_to_matrix", "chain_matmul", "gather_rows",
    "default_model_path", "list_weight_matrices", "load_weight_matrix",
    "MPOConfig", "apply_mpo", "merge_mpo", "mpo_modules", "Replacement",
    "count_parameters", "ParameterCount", "save_mpo_model", "load_mpo_model",
    "GLUE_TASKS", "GlueTask", "GlueSplit", "get_task", "load_glue_split", "tokenize_split",
    "glue_file", "subset_indices", "compute_glue_metrics",
    "SqueezeMove", "all_moves", "best_move", "apply_move", "plan_growth_factors", "growth_of",
    "fisher_scores", "select_top",
    "error_vs_ratio", "cpd_approximation", "tucker_approximation", "mpo_approximation", "svd_approximation",
]
