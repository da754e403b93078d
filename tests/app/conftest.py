"""Dashboard tests run with one BLAS thread (``single_blas_thread`` in tests/conftest.py)."""
import pytest


@pytest.fixture(autouse=True)
def _one_blas_thread(single_blas_thread):
    yield


@pytest.fixture(scope="session")
def atlas_cache_dir(tmp_path_factory):
    """One decomposition cache for the modules that open the Atlas page (its own tests of the cache use their own
    folders): the atlas is decomposed once per n in a test session."""
    return tmp_path_factory.mktemp("atlas_cache")
