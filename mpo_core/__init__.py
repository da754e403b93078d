"""mpo_core: Matrix Product Operator (MPO) compression and fine-tuning of pre-trained language models.

One room per concept, floors from the bottom up (a module imports only from its
own floor or below; ``tests/test_import_floors.py`` checks it)::

    tensor/        pure math on torch tensors (no nn.Module, transformers, streamlit):
                   shape, decomposition (Algorithm 1), canonical, truncation, truncation_error
                   (Eq. 3-4), compression (Eq. 5), entropy (Eq. 6), contraction, mpo (the chain),
                   factored_forward, baselines (CPD/Tucker/SVD), compress, linalg, validation,
                   whitening, kronecker, calibrated_truncation, als_refinement, budget_allocation
    layers/        MPOModule, MPOLinear, MPOEmbedding (from_linear/to_linear, ...)
    model/         Hugging Face surgery: matrix_groups, mpo_config, surgery, parameter_count,
                   checkpoint, pretrained, sequence_classifier, parameter_variation (Table 1),
                   calibration_sentences, calibration (X^T X of each matrix's inputs, cached),
                   output_sensitivity, calibrated_compression (compress_model: one budget, six methods)
    data/          glue (9 tasks, local folder or hub), metrics
    runs/          the run folder, written and read in one place: run_folder, run_models,
                   atomic_write, latency, process_alive
    training/      method_config (typed options), strategy (base + full/last_k/mpo_*),
                   callbacks, strategies (the registry), fine_tune_config, fine_tune (the engine),
                   distillation, healing_config, healing (distil the original into its compressed copy)
    mpop/          MPOP: config (MPOPConfig), squeeze (Algorithm 2's cut), strategy
    opf/           OPF: config (OPFConfig), growth, fisher, scoring, selection, strategy
    reproduction/  one module per table/figure of the papers (what notebooks/ calls)
    compression_run.py  compress(): calibrate, compress, heal, judge, save in one call
    cli.py         python -m mpo_core finetune | compress | predict | runs | reproduce

The math, layers and surgery load eagerly; training, the baselines and the run
readers load on first use of their names (they need transformers' Trainer,
tensorly or pandas). Old flat paths (``mpo_core.shape``, ``mpo_core.fine_tune``,
...) still import for one release, with a ``DeprecationWarning``
(:mod:`mpo_core.legacy_paths`).
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
from .layers.mpo_module import set_inference_memory
from .tensor.chain_plan import ChainPlan, plan_matmul
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
from .model.calibration import (CalibrationStats, calibration_stats, collect_calibration, default_calibration_dir,
                                model_fingerprint)
from .model.calibration_sentences import calibration_sentences
from .model.calibrated_compression import CompressionConfig, CompressionReport, compress_model
from .tensor.whitening import whitened_error, whitened_svd
from .tensor.calibrated_truncation import CalibratedTruncation, calibrated_truncate
from .tensor.als_refinement import Refinement, refine
from .tensor.budget_allocation import Allocation, allocate_budget
from .model.pretrained import default_model_path, list_weight_matrices, load_weight_matrix
from .tensor.truncation_error import frobenius_error, local_truncation_errors, truncation_error_bound

_LAZY = {  # name -> module (relative to mpo_core)
    **dict.fromkeys(("error_vs_ratio", "cpd_approximation", "tucker_approximation", "mpo_approximation",
                     "svd_approximation"), "tensor.baselines"),
    "compute_glue_metrics": "data.metrics",
    "fisher_scores": "opf.fisher", "select_top": "opf.fisher",
    # training: the engine, its config, the registry and each method's typed options
    "fine_tune": "training.fine_tune", "FineTuneConfig": "training.fine_tune_config",
    "get_strategy": "training.strategies", "method_config": "training.strategies", "STRATEGIES": "training.strategies",
    **dict.fromkeys(("MethodConfig", "FullConfig", "LastKConfig", "MPOFullConfig", "MPOLFAConfig"),
                    "training.method_config"),
    "Strategy": "training.strategy",
    # healing: distil the original model into its compressed copy
    **dict.fromkeys(("heal", "HealResult", "HealStrategy", "evaluate_distillation"), "training.healing"),
    "HealConfig": "training.healing_config",
    "compress": "compression_run", "CompressResult": "compression_run",
    "MPOPConfig": "mpop.config", "MPOPDirConfig": "mpop.config", "OPFConfig": "opf.config",
    # run folders
    "RunFolder": "runs.run_folder", "read_metrics": "runs.run_folder", "read_results": "runs.run_folder",
    "load_initial_model": "runs.run_models", "load_final_model": "runs.run_models",
}


def __getattr__(name):
    """Training (transformers' Trainer), baselines (tensorly) and metrics (scikit-learn) load when asked for."""
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
    "contract_to_matrix", "chain_matmul", "gather_rows", "ChainPlan", "plan_matmul", "set_inference_memory",
    "default_model_path", "list_weight_matrices", "load_weight_matrix",
    "MPOConfig", "apply_mpo", "merge_mpo", "mpo_modules", "Replacement",
    "count_parameters", "ParameterCount", "save_mpo_model", "load_mpo_model",
    "CalibrationStats", "calibration_sentences", "calibration_stats", "collect_calibration",
    "default_calibration_dir", "model_fingerprint",
    "CompressionConfig", "CompressionReport", "compress_model", "compress", "CompressResult",
    "whitened_error", "whitened_svd", "CalibratedTruncation", "calibrated_truncate", "Refinement", "refine",
    "Allocation", "allocate_budget",
    "GLUE_TASKS", "GlueTask", "GlueSplit", "get_task", "load_glue_split", "tokenize_split",
    "glue_file", "subset_indices", "compute_glue_metrics",
    "SqueezeMove", "all_moves", "best_move", "apply_move", "plan_growth_factors", "growth_of",
    "fisher_scores", "select_top",
    "error_vs_ratio", "cpd_approximation", "tucker_approximation", "mpo_approximation", "svd_approximation",
    "fine_tune", "FineTuneConfig", "get_strategy", "method_config", "STRATEGIES", "Strategy",
    "MethodConfig", "FullConfig", "LastKConfig", "MPOFullConfig", "MPOLFAConfig", "MPOPConfig", "MPOPDirConfig",
    "OPFConfig", "heal", "HealConfig", "HealResult", "HealStrategy", "evaluate_distillation", "RunFolder", "read_metrics", "read_results", "load_initial_model", "load_final_model",
]
