"""The run dir: its default name, the checks before a run starts (writable, not already holding a run), and
the lock that keeps two processes out of one run dir."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from anakin_tdmpc.errors import RunError, RunDirBusy


def default_run_dir(args, same_time_everywhere: bool = False) -> str:
    """runs/<task>__<algo>__<seed>__<time>; in a multi-process run every process takes process 0's time."""
    now = int(time.time())
    if same_time_everywhere:
        from jax.experimental import multihost_utils

        now = int(multihost_utils.broadcast_one_to_all(np.int64(now)))
    task = args.task.replace("/", "_").replace(":", "_")  # (your own env: package.module:function)
    return os.path.join("runs", f"{task}__{args.algo}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}")


def check_writable(run_dir: str) -> None:
    """RunError for a run dir that could not be created or written: a file where it or a parent folder
    should be, no permission, a read-only filesystem. Creates nothing: a temporary file in the nearest
    existing folder is written and removed."""
    import tempfile

    path = os.path.abspath(run_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunError(f"run dir {run_dir} exists and is not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RunError(f"cannot create run dir {run_dir}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise RunError(f"cannot write run dir {run_dir}: {existing}: {e.strerror or e}") from None


def prepare(run_dir: str, config: dict) -> None:
    """Create the run folder and its config.json; refuse one that already holds a run (nothing is
    overwritten)."""
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path) or os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        try:
            with open(path) as f:
                same = json.load(f).get("args") == config["args"]
        except (OSError, ValueError):
            same = False
        what = "this same configuration" if same else "a different run"
        raise RunError(f"run dir {run_dir} already holds {what}; choose a new --run_dir"
                       + (" or add --resume to continue it" if same else ""))
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"run dir {run_dir} exists and is not a folder")
    os.makedirs(run_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


class Lock:
    """`<run_dir>/.lock`: an exclusive `flock` (pid inside) held until `release`. The kernel drops it when
    its holder exits, however it exits, so a lock file left by a dead process never blocks a `--resume`."""

    def __init__(self, run_dir: str):
        import fcntl

        os.makedirs(run_dir, exist_ok=True)
        handle = open(os.path.join(run_dir, ".lock"), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunDirBusy(f"run dir {run_dir} is in use by another process (pid {holder}); wait for it to end "
                             "or choose another --run_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops its flock
            self._handle = None
