"""The house rules of STYLE.md, checked on the source: who may import whom.

Floors, bottom to top (a module imports only from its own floor or below)::

    0 tensor/      pure math on torch tensors: no torch.nn, transformers or streamlit;
      json_file    the bounded reader of untrusted JSON files
    1 layers/      MPOModule, MPOLinear, MPOEmbedding
    2 model/, data/  surgery on Hugging Face models; GLUE and its metrics
    3 runs/        the run folder: writer and reader
    4 training/ (method_config, strategy, callbacks)   the Strategy base and the method configs
    5 mpop/, opf/  the papers' methods, built on floor 4
    6 training/ (strategies, fine_tune_config, fine_tune, healing)   the registry, the one engine, healing
    7 reproduction/
    8 cli, the public API (mpo_core/__init__.py), legacy_paths
    9 app/         back ends (no streamlit), then views/ and main.py
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mpo_core", "app")
TOP_FLOOR = 8
FLOORS = {  # prefix -> floor; the longest matching prefix wins
    "mpo_core.tensor": 0, "mpo_core.json_file": 0, "mpo_core.layers": 1, "mpo_core.model": 2, "mpo_core.data": 2, "mpo_core.runs": 3,
    "mpo_core.training": 4, "mpo_core.mpop": 5, "mpo_core.opf": 5,
    "mpo_core.training.strategies": 6, "mpo_core.training.fine_tune_config": 6, "mpo_core.training.fine_tune": 6,
    "mpo_core.training.healing": 6,
    "mpo_core.reproduction": 7, "mpo_core": TOP_FLOOR, "app": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def floor(module: str) -> int:
    prefixes = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    return FLOORS[max(prefixes, key=len)]


@lru_cache(maxsize=None)
def imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports (at the top or inside functions), as absolute names."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return frozenset(found)


def internal_imports(module: str) -> set[str]:
    known = modules()
    return {name for name in imports(module) if name in known and name != module}


def test_the_floor_table_covers_every_module():
    assert set(modules()) >= {"mpo_core.tensor.mpo", "mpo_core.training.fine_tune", "app.views.decompose"}


@pytest.mark.parametrize("module", sorted(modules()))
def test_a_module_imports_only_from_its_floor_or_below(module):
    above = sorted(m for m in internal_imports(module)
                   if floor(m) > floor(module) and not (module == "mpo_core.legacy_paths"))
    assert not above, f"{module} (floor {floor(module)}) imports from higher floors: {above}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("mpo_core.tensor")))
def test_math_imports_no_nn_module_transformers_or_streamlit(module):
    banned = ("torch.nn", "transformers", "streamlit")
    bad = sorted(name for name in imports(module) if any(name == b or name.startswith(b + ".") for b in banned))
    bad += sorted(name for name in imports(module) if name == "torch.nn" or name.endswith(".nn"))
    assert not bad, f"{module} imports {bad}: math stays pure (STYLE.md, rule 1)"


def test_torch_nn_counts_as_banned_however_it_is_written():
    source = "from torch import nn\nimport torch.nn.functional as F\n"
    tree = ast.parse(source)
    names = {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert names == {"torch.nn", "torch.nn.functional"}


def test_mpo_core_never_imports_the_app():
    bad = {m: sorted(i for i in imports(m) if i == "app" or i.startswith("app.")) for m in modules()
           if m.startswith("mpo_core")}
    assert not {m: i for m, i in bad.items() if i}


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("app.")
                                          and not m.startswith("app.views") and m != "app.main"))
def test_app_back_ends_import_no_streamlit(module):
    assert not [i for i in imports(module) if i == "streamlit" or i.startswith("streamlit.")]


def import_depth(prefix: str = "mpo_core") -> int:
    """Import floors of the engine: the longest chain of internal imports (a cycle fails)."""
    graph = {m: {d for d in internal_imports(m) if d.startswith(prefix)} for m in modules() if m.startswith(prefix)}
    depth: dict[str, int] = {}

    def visit(m, path=()):
        if m in path:
            raise AssertionError(f"import cycle: {' -> '.join(path + (m,))}")
        if m not in depth:
            depth[m] = 1 + max((visit(d, path + (m,)) for d in graph[m]), default=0)
        return depth[m]

    return max(visit(m) for m in graph)


def test_no_import_cycles_in_the_engine():
    assert import_depth() >= 5
