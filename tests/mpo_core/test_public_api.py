"""The public API (mpo_core/__init__.py) and the old flat import paths."""
import subprocess
import sys
import warnings

import pytest

import mpo_core
from mpo_core.legacy_paths import LEGACY_PATHS


def test_every_exported_name_resolves():
    missing = [name for name in mpo_core.__all__ if getattr(mpo_core, name, None) is None]
    assert not missing
    assert {"fine_tune", "FineTuneConfig", "get_strategy", "load_final_model", "MPOPConfig", "OPFConfig"} <= set(
        mpo_core.__all__)


def test_importing_the_package_does_not_load_the_trainer():
    code = "import sys, mpo_core; print('transformers.trainer' in sys.modules, 'tensorly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("old, new", sorted(LEGACY_PATHS.items()))
def test_an_old_path_is_the_module_at_its_new_home_with_a_warning(old, new):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_opf_names_still_import_from_mpo_core_opf():
    from mpo_core.opf import OPFStrategy, make_opf

    assert isinstance(make_opf(top_n=1), OPFStrategy)
