"""Dashboard tests run with one BLAS thread (``single_blas_thread`` in tests/conftest.py)."""
import pytest


@pytest.fixture(autouse=True)
def _one_blas_thread(single_blas_thread):
    yield
