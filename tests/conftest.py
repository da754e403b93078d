"""Shared test settings: deterministic hypothesis, real weights of the packaged model."""
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "repo",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.load_profile("repo")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


_THREADS = None


@pytest.fixture(scope="module", autouse=True)
def threads_from_free_cores():
    """torch's threads follow the cores other processes leave free, re-measured between modules (at most every
    10 s): two OpenMP threads on a core another process holds made the fast subset twice as slow (1072 s against
    547 s with one thread, one core busy). A module's own choice (``single_blas_thread``) comes after this."""
    global _THREADS
    from mpo_core.runs.thread_budget import ThreadBudget

    if _THREADS is None:
        _THREADS = ThreadBudget(first_sample=0.2)
    threads = _THREADS.update()
    if torch.get_num_threads() != threads:  # a test before may have set its own
        torch.set_num_threads(threads)
    yield


@pytest.fixture(scope="module")
def single_blas_thread():
    """One intra-op thread for a module: on a busy 2-core box OpenMP spin-waits make LAPACK 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_weights():
    """A few real 2-D weights of the packaged MiniLM (float32)."""
    from mpo_core import load_weight_matrix

    names = [
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.3.intermediate.dense.weight",
        "encoder.layer.5.output.dense.weight",
        "embeddings.position_embeddings.weight",
    ]
    return {name: load_weight_matrix(name) for name in names}


@pytest.fixture(scope="session")
def word_embedding():
    from mpo_core import load_weight_matrix

    return load_weight_matrix("embeddings.word_embeddings.weight")
