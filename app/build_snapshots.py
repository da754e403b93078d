"""Build the pages' first-paint snapshots (``app/snapshots/*.json``): ``python -m app.build_snapshots``.

Each snapshot is what a page shows for its default settings, computed here
with the page's own back-end functions, and stamped with the command, commit,
date and library versions (see :mod:`app.snapshot`). Re-run after a change
that alters a default view; ``tests/app/test_snapshots.py`` fails while a
shipped snapshot differs from what the code computes.

- ``decompose``: the packaged model's word embedding, n = 5, the planned
  factors, the bonds of least Eq. (4) error for ρ = 0.3: every number of the
  page (true error included).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import snapshot  # noqa: E402

COMMAND = "python -m app.build_snapshots"


def provenance() -> dict:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"command": COMMAND, "commit": commit, "built": time.strftime("%Y-%m-%d"),
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}


def figure_dict(fig) -> dict:
    """A plotly figure as plain JSON (arrays as lists), without its template.

    The dashboard draws every chart in Streamlit's own theme, and the default
    template depends on what else the process imported.
    """
    data = json.loads(fig.to_json(engine="json"))
    data.get("layout", {}).pop("template", None)
    return data


def decompose_snapshot() -> dict:
    from app import decompose

    source = decompose.MatrixSource()
    matrix = decompose.load_matrix(source)
    shape = decompose.plan(*matrix.shape, decompose.DEFAULT_NUM_TENSORS)
    mpo = decompose.decompose_matrix(matrix, shape.out_factors, shape.in_factors)
    dims = decompose.preset_bond_dims(mpo)
    summary = decompose.live_summary(mpo, dims)
    exact = decompose.true_error(matrix, mpo, dims)
    return {
        "page": "decompose",
        "caption": f"**{source.label}**: {decompose.describe_shape(shape)}",
        "metrics": [list(row) for row in decompose.metric_rows(summary, exact)],
        "figures": [],  # the chain drawing comes with the live page: plotly's validation would delay this paint ~1 s
        "state": {"source": source.name, "n": decompose.DEFAULT_NUM_TENSORS, "out_factors": list(shape.out_factors),
                  "in_factors": list(shape.in_factors), "bond_dims": list(dims),
                  "preset_ratio": decompose.PRESET_RATIO,
                  "true_error": {"bond_dims": list(exact.bond_dims), "absolute": exact.absolute,
                                 "relative": exact.relative, "entropies": list(exact.entropies)}},
    }


BUILDERS = {"decompose": decompose_snapshot}


def build(page: str) -> dict:
    data = BUILDERS[page]()
    data["provenance"] = provenance()
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help=f"some of {', '.join(BUILDERS)} (default: every page)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.pages) - set(BUILDERS))
    if unknown:
        parser.error(f"no snapshot for {', '.join(unknown)}; pages: {', '.join(BUILDERS)}")
    args.pages = args.pages or list(BUILDERS)
    snapshot.FOLDER.mkdir(exist_ok=True)
    for page in args.pages:
        start = time.perf_counter()
        data = build(page)
        snapshot.path(page).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{snapshot.path(page).relative_to(ROOT)}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
