"""The public API (mpo_core/__init__.py) and the old flat import paths."""
import subprocess
import sys
import warnings

import pytest

import mpo_core
from mpo_core.legacy_paths import LEGACY_PATHS, MOVED_NAMES


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
    if old in MOVED_NAMES:  # a view: the new module's names plus those that moved elsewhere
        assert all(getattr(module, name) is getattr(importlib.import_module(home), name)
                   for name, home in MOVED_NAMES[old].items())
        assert module.save_mpo_model is importlib.import_module(new).save_mpo_model
    else:
        assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_opf_names_still_import_from_mpo_core_opf():
    from mpo_core.opf import OPFStrategy, make_opf

    assert isinstance(make_opf(top_n=1), OPFStrategy)


def test_the_old_registry_entries_are_still_factories():
    from mpo_core.training.strategies import STRATEGIES

    assert STRATEGIES["last_k"](k=2).k == 2
    with pytest.raises(ValueError, match="last_k has no option 'growth'"):
        STRATEGIES["last_k"](growth=2)
