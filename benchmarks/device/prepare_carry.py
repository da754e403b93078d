"""Put what a device run needs, and the repository does not hold, into ``.device/`` (in ``.gitignore``).

The device machine gets a copy of the working tree and nothing beside it (64 MiB in all), so this copies
the GLUE tasks the issue-26 runs read (SST-2, STS-B, MRPC) and the packaged MiniLM. The model's 86 MiB of
float32 weights do not fit: they travel as float16 (43 MiB; each weight rounded to 11 significant bits,
relative error <= 2**-11) and ``restore_model.py`` upcasts them to float32 there. Runs on the device use
bf16 autocast anyway; the rounding is stated with their results.

    python benchmarks/device/prepare_carry.py      # then: run(..., carry=[".device"])
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TASKS = ("SST-2", "STS-B", "MRPC")


def main() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from mpo_core.data.glue import default_glue_dir
    from mpo_core.model.pretrained import default_model_path

    out = ROOT / ".device"
    shutil.rmtree(out, ignore_errors=True)
    for task in TASKS:
        source = Path(default_glue_dir()) / task
        (out / "glue" / task).mkdir(parents=True)
        for name in ("train.tsv", "dev.tsv"):
            shutil.copy(source / name, out / "glue" / task / name)
    model = Path(default_model_path())
    target = out / "model"
    target.mkdir(parents=True)
    for file in model.iterdir():
        if file.is_file() and file.suffix != ".safetensors" and file.name != "README.md":
            shutil.copy(file, target / file.name)
    weights = load_file(model / "model.safetensors")
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              target / "model.fp16.safetensors")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB to carry")


if __name__ == "__main__":
    main()
