"""Old flat import paths (``mpo_core.shape``, ``mpo_core.fine_tune``, ...) kept for one release.

Until December 2026 every module lived directly in ``mpo_core/``. They now
live in subpackages by concept (``tensor/``, ``model/``, ``runs/``,
``training/``, ``mpop/``, ``opf/``, ``data/``). ``import mpo_core.shape``
still works: a meta-path finder hands out the module at its new home (the
very same module object, so monkeypatching and ``isinstance`` behave), with
a ``DeprecationWarning`` naming the new path. A module some of whose names
moved to another room (``mpo_checkpoint.load_final_model`` is now in
``runs/run_models``) comes as a view holding both. This file goes away in the next
release; new code imports from the new paths or from :mod:`mpo_core`.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module -> new module
LEGACY_PATHS = {
    **{f"mpo_core.{name}": f"mpo_core.tensor.{name}" for name in (
        "shape", "linalg", "canonical", "contraction", "mpo", "decomposition", "truncation",
        "truncation_error", "compression", "entropy", "validation", "factored_forward", "baselines",
        "compress")},
    "mpo_core.matrix_groups": "mpo_core.model.matrix_groups",
    "mpo_core.mpo_config": "mpo_core.model.mpo_config",
    "mpo_core.surgery": "mpo_core.model.surgery",
    "mpo_core.parameter_count": "mpo_core.model.parameter_count",
    "mpo_core.mpo_checkpoint": "mpo_core.model.checkpoint",
    "mpo_core.pretrained": "mpo_core.model.pretrained",
    "mpo_core.parameter_variation": "mpo_core.model.parameter_variation",
    "mpo_core.run_folder": "mpo_core.runs.run_folder",
    "mpo_core.process_alive": "mpo_core.runs.process_alive",
    "mpo_core.fine_tune": "mpo_core.training.fine_tune",
    "mpo_core.fine_tune_config": "mpo_core.training.fine_tune_config",
    "mpo_core.training_callbacks": "mpo_core.training.callbacks",
    "mpo_core.strategies": "mpo_core.training.strategies",
    "mpo_core.squeeze": "mpo_core.mpop.squeeze",
    "mpo_core.squeeze_strategy": "mpo_core.mpop.strategy",
    "mpo_core.growth": "mpo_core.opf.growth",
    "mpo_core.fisher": "mpo_core.opf.fisher",
    "mpo_core.glue": "mpo_core.data.glue",
    "mpo_core.metrics": "mpo_core.data.metrics",
}


#: names that left an old module for another room: old module -> {name: its new module}
MOVED_NAMES = {"mpo_core.mpo_checkpoint": {"load_final_model": "mpo_core.runs.run_models"}}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str, moved: dict[str, str] | None = None):
        self.target = target
        self.moved = moved or {}

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        if not self.moved:
            return module  # the very module at its new home
        view = types.ModuleType(spec.name, module.__doc__)
        view.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        view.__dict__.update({name: getattr(importlib.import_module(home), name) for name, home in self.moved.items()})
        return view

    def exec_module(self, module):
        """Already executed at its new path."""


class LegacyPathFinder(importlib.abc.MetaPathFinder):
    """Resolves an old ``mpo_core.<module>`` path to the module at its new home."""

    def find_spec(self, fullname, path=None, target=None):
        new = LEGACY_PATHS.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; the old path goes away in the next release.",
                      DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _Alias(new, MOVED_NAMES.get(fullname)))


def install() -> None:
    if not any(isinstance(f, LegacyPathFinder) for f in sys.meta_path):
        sys.meta_path.append(LegacyPathFinder())
