"""A full disk while a run writes what comes after training: one ``error:`` line, and the run resumes (issue 24).

The final model, the adapter and ``results.json`` are written after the last
step; a write that fails there leaves the run unfinished (no ``results.json``)
with its checkpoints, and ``--resume`` writes them all again.
"""
import errno
import os
from pathlib import Path

import pytest

from mpo_core.cli import main
from mpo_core.model.checkpoint import LAYERS_FILE
from mpo_core.runs import adapter, run_folder
from mpo_core.training import fine_tune

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"


def tiny(tmp_path, name, *flags):
    return ["finetune", "--task", "rte", "--data-dir", str(GLUE), "--num-hidden-layers", "1", "--max-length", "16",
            "--max-train-examples", "8", "--max-eval-examples", "4", "--max-steps", "2", "--batch-size", "4",
            "--eval-steps", "2", "--save-steps", "2", "--runs-dir", str(tmp_path), "--run-name", name, *flags]


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def save_model_on_full_disk(monkeypatch):
    def save(model, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(b"torn")  # what a full disk leaves
        full_disk()
    monkeypatch.setattr(fine_tune, "save_mpo_model", save)


def results_on_full_disk(monkeypatch):
    real = run_folder.atomic_write_json

    def write(path, *args, **kwargs):
        return full_disk() if Path(path).name == "results.json" else real(path, *args, **kwargs)
    monkeypatch.setattr(run_folder, "atomic_write_json", write)


WRITES = {  # what fails -> (how, the folder named in the message, extra flags)
    "final model": (save_model_on_full_disk, "final_model", ()),
    "adapter": (lambda mp: mp.setattr(adapter, "atomic_write_bytes", full_disk), "adapter",
                ("--strategy", "mpo_full_lfa", "--save-adapter", "--no-save-model")),
    "results": (results_on_full_disk, "results.json", ("--no-save-model",)),
}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("what", WRITES)
def test_a_full_disk_after_training_is_one_error_line_and_the_run_resumes(what, tmp_path, monkeypatch, capsys):
    fail, name, flags = WRITES[what]
    with monkeypatch.context() as patch:
        fail(patch)
        code = main(tiny(tmp_path, "r", *flags))
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in "\n".join(err), err[-3:]
    assert f"could not write {tmp_path / 'r' / name} ([Errno 28] No space left on device)" in errors[0], errors
    assert "--resume --run-name r" in errors[0] and "checkpoints are kept" in errors[0], errors
    assert not (tmp_path / "r" / "results.json").exists()  # not finished: --resume may finish it
    assert main(["finetune", "--resume", "--run-name", "r", "--runs-dir", str(tmp_path)]) == 0
    assert (tmp_path / "r" / "results.json").is_file()
    if name == "final_model":
        assert (tmp_path / "r" / name / LAYERS_FILE).is_file()
    if name == "adapter":
        assert (tmp_path / "r" / name / adapter.CONFIG_FILE).is_file()
