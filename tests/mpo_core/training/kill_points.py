"""Run ``python -m mpo_core`` with one armed kill point: SIGKILL at the k-th pass through a chosen place.

Used by the fault-injection test as ``python kill_points.py SITE K -- <mpo_core arguments>``.
The places are where a real crash hurts most: mid-step, mid-line of the
metrics stream, and inside each part of a checkpoint write (after the weights,
mid ``trainer_state.json``, before the completion mark), and mid evaluation.
"""
import os
import signal
import sys


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(site: str, k: int) -> None:
    """Patch ``site`` so that its ``k``-th call kills this process (SIGKILL: no cleanup runs)."""
    from transformers import Trainer, TrainerState

    from mpo_core.runs.run_folder import METRICS_FILE, RunFolder

    calls = {"n": 0}

    def armed(original, before=None):
        def wrapper(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == k:
                if before is not None:
                    before(self, *args, **kwargs)
                die()
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
    site, k, separator, *argv = sys.argv[1:]
    assert separator == "--"
    arm(site, int(k))
    from mpo_core.cli import main

    sys.exit(main(argv))
