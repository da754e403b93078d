"""Whether a process (by pid, on this machine) is still running: for run locks and background jobs."""
from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs; an ended child of ours is reaped, a zombie counts as ended."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and has ended
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a zombie of another parent is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
