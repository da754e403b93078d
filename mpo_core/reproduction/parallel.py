"""Several experiments in order, each shared by ``workers`` processes (e.g. the paper-scale grids on one GPU).

A GLUE grid is shared by processes through its lock files (:mod:`.glue_grid`):
every process works through the same list, claims a run nobody holds, and
waits for the others' at the end. :func:`reproduce_all` starts ``workers - 1``
helper processes per experiment (``python -m mpo_core reproduce <name>``),
runs the experiment itself too, and waits for the helpers before the next
experiment starts (Table 3 needs the probe's rates). A helper that dies leaves
a stale lock, which the others take over, so a crash costs that run's time,
not the grid. The CPU threads are split between the processes; on a GPU the
small MiniLM runs leave room for several at once. Each helper's output goes to
``<results>/<mode>/runs/logs/<name>-<i>.log``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from .results_store import Results, results_dir


def thread_share(workers: int) -> int:
    """CPU threads per process when ``workers`` share this machine's cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // workers)


def start_helpers(name: str, mode: str, count: int, force: bool = False) -> list[tuple[subprocess.Popen, object]]:
    """``count`` processes running ``python -m mpo_core reproduce name --mode mode [--force]`` (logs beside the runs).

    With ``force`` the helpers run the experiment again too (its stored points are reused, what they lack is
    measured), instead of reading the stored results and leaving the work to this process.
    """
    logs = results_dir(mode) / "runs" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = str(thread_share(count + 1))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "MPO_REPRO_MODE": mode}
    helpers = []
    for index in range(count):
        log = open(logs / f"{name}-{index + 1}.log", "wb")  # noqa: SIM115 - closed in wait_for
        command = [sys.executable, "-m", "mpo_core", "reproduce", name, "--mode", mode, *(["--force"] if force else [])]
        process = subprocess.Popen(command,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        helpers.append((process, log))
    return helpers


def wait_for(helpers) -> list[int]:
    """Wait for every helper; their exit codes."""
    codes = []
    for process, log in helpers:
        codes.append(process.wait())
        log.close()
    return codes


def reproduce_all(names: Sequence[str], mode: str, workers: int = 1, force: bool = False) -> dict[str, Results]:
    """Run the experiments ``names`` in order, each by ``workers`` processes; their results by name.

    Raises
    ------
    ValueError
        For ``workers < 1``, or when a helper failed and this process's own pass could not finish either.
    """
    import torch

    from . import experiment, reproduce

    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}.")
    for name in names:
        experiment(name)  # an unknown name fails before anything starts
    torch.set_num_threads(thread_share(workers))
    out = {}
    for name in names:
        helpers = start_helpers(name, mode, workers - 1, force=force) if workers > 1 else []
        try:
            out[name] = reproduce(name, mode, force=force)
        finally:
            codes = wait_for(helpers)
        failed = [i + 1 for i, code in enumerate(codes) if code != 0]
        if failed:
            print(f"warning: {name}: helper(s) {failed} exited with an error (see "
                  f"{results_dir(mode) / 'runs' / 'logs'}); this process finished the grid.", file=sys.stderr)
    return out
