"""Run ``python -m mpo_core`` with one armed kill point: SIGKILL at the k-th pass through a chosen place.

Used by the fault-injection test as ``python kill_points.py SITE K [ACTION] -- <mpo_core arguments>``.
The places are where a real crash hurts most: mid-step, mid-line of the
metrics stream, and inside each part of a checkpoint write (after the weights,
mid ``trainer_state.json``, before the completion mark), and mid evaluation.

ACTION is what happens at the k-th pass: ``kill`` (SIGKILL, the default),
``enospc`` (the write fails as a full disk fails it: ``OSError(ENOSPC)``),
``torch_full`` (as ``torch.save`` reports a full disk: a ``RuntimeError``) or
``wait:FILE`` (block until FILE exists, holding the run meanwhile).
"""
import errno
import os
import signal
import sys
import time
from pathlib import Path


def act(action: str) -> None:
    """What the armed place does instead of its work (``kill`` never returns)."""
    if action == "kill":
        die()
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "torch_full":
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    if action.startswith("wait:"):
        go = Path(action.removeprefix("wait:"))
        deadline = time.time() + 240
        while not go.exists() and time.time() < deadline:
            time.sleep(0.1)
        return
    raise ValueError(f"unknown action {action!r}")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(site: str, k: int, action: str = "kill") -> None:
    """Patch ``site`` so that its ``k``-th call kills this process (SIGKILL: no cleanup runs), or does ``action``."""
    from transformers import Trainer, TrainerState

    from mpo_core.runs.run_folder import METRICS_FILE, RunFolder

    calls = {"n": 0}

    def armed(original, before=None):
        def wrapper(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == k:
                if before is not None and action == "kill":
                    before(self, *args, **kwargs)
                act(action)
            return original(self, *args, **kwargs)

        return wrapper

    def half_line(run, record):  # a torn last line in the metrics stream
        with open(run.path / METRICS_FILE, "a") as stream:
            stream.write('{"kind": "train", "step": 99')
            stream.flush()
            os.fsync(stream.fileno())

    def half_state(state, path):  # a torn trainer_state.json
        with open(path, "w") as file:
            file.write('{"global_step": ')

    places = {
        "step": (Trainer, "training_step", None),
        "metrics": (RunFolder, "append_metrics", half_line),
        "optimizer_save": (Trainer, "_save_optimizer_and_scheduler", None),  # weights written, nothing else
        "state_save": (TrainerState, "save_to_json", half_state),
        "mark": (RunFolder, "mark_checkpoint_complete", None),  # all but the completion mark
        "evaluate": (Trainer, "evaluate", None),
    }
    owner, name, before = places[site]
    setattr(owner, name, armed(getattr(owner, name), before))


if __name__ == "__main__":
    site, k, *rest = sys.argv[1:]
    split = rest.index("--")
    arm(site, int(k), *rest[:split])
    argv = rest[split + 1:]
    from mpo_core.cli import main

    sys.exit(main(argv))
