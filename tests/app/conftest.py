"""Dashboard tests: a quiet BLAS (the repository root is put on sys.path by tests/conftest.py)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_blas_thread():
    """One intra-op thread: on a busy 2-core box OpenMP spin-waits make LAPACK 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
