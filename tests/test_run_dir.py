"""The run folder between processes and versions: one process per run dir (a lock that dies with its holder),
metrics.jsonl read back on --resume without losing rows silently, and configs of older versions."""

import json
import os
import signal
import subprocess
import sys

import pytest

from anakin_tdmpc.session import checkpoint
from anakin_tdmpc.session.run_dir import Lock, RunDirBusy

HOLD = """
import sys, time
from anakin_tdmpc.session.run_dir import Lock
lock = Lock(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def _holder(run_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_is_refused_and_a_dead_holder_blocks_nothing(tmp_path):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        with pytest.raises(RunDirBusy, match=f"in use by another process \\(pid {holder.pid}\\)"):
            Lock(str(run_dir))
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the lock file stays behind
        holder.wait()
    assert (run_dir / ".lock").read_text().strip() == str(holder.pid)
    lock = Lock(str(run_dir))  # the stale file does not block
    assert (run_dir / ".lock").read_text().strip() == str(os.getpid())
    lock.release()
    Lock(str(run_dir)).release()  # released: it can be taken again


def test_the_cli_refuses_a_run_dir_in_use(tmp_path, capsys):
    from conftest import TINY, run_main

    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        assert run_main(TINY + ["--run_dir", str(run_dir)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: run dir {run_dir} is in use by another process"), err
    assert sorted(os.listdir(run_dir)) == [".lock"]  # nothing written by the refused process


# ---------------------------------------------------------------------------------------- metrics.jsonl


def _rows(*steps):
    return b"".join(json.dumps({"env_steps": s, "x": s / 2}).encode() + b"\n" for s in steps)


def test_resume_keeps_rows_up_to_the_checkpoint_and_drops_a_cut_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(_rows(80, 160, 240, 320) + b'{"env_steps": 40')
    rows = checkpoint.truncate_metrics(str(path), 160)
    assert [r["env_steps"] for r in rows] == [80, 160]
    assert path.read_bytes() == _rows(80, 160)


@pytest.mark.parametrize(
    "damage, why",
    [(b"{not json\n", "not JSON"), (b"\xff\xfe garbage\n", "not UTF-8"), (b"null\n", "not a metrics row"),
     (b'{"loss": 1}\n', "not a metrics row")],
)
def test_a_damaged_line_stops_resume_naming_it_and_changes_nothing(tmp_path, damage, why):
    path = tmp_path / "metrics.jsonl"
    content = _rows(80, 160) + damage + _rows(240, 320)
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.truncate_metrics(str(path), 320)
    message = str(info.value)
    assert f"{path} line 3 is damaged ({why}" in message and "\n" not in message
    assert path.read_bytes() == content


# ------------------------------------------------------------------------------------------- versions


def test_a_flag_added_since_the_run_is_accepted_at_its_default_only():
    from dataclasses import asdict

    from anakin_tdmpc.config import Args

    now, defaults = asdict(Args(task="walker-walk")), asdict(Args())
    saved = {k: v for k, v in now.items() if k != "planner_bf16"}  # written before the flag existed
    assert checkpoint.config_differences(saved, now, defaults) == []
    changed = dict(now, planner_bf16=False)
    (diff,) = checkpoint.config_differences(saved, changed, defaults)
    assert diff.startswith("--planner_bf16 False is new since the run was written")
    gone = dict(saved, old_flag=3)  # a flag this version no longer has
    assert checkpoint.config_differences(gone, now, defaults) == ["--old_flag 3 (saved) is not a flag of this version"]
    assert checkpoint.config_differences(dict(saved, task="cheetah-run"), now, defaults) == [
        "--task cheetah-run (saved) != walker-walk"]


def test_train_releases_its_lock_when_it_returns_or_fails(tmp_path, monkeypatch):
    from anakin_tdmpc.session import trainer

    run_dir = str(tmp_path / "run")

    def setup(self):
        self.lock = Lock(run_dir)
        if self.args == "fail":
            raise RuntimeError("boom")

    monkeypatch.setattr(trainer.Trainer, "setup", setup)
    monkeypatch.setattr(trainer.Trainer, "run", lambda self: run_dir)
    assert trainer.train("ok") == run_dir
    with pytest.raises(RuntimeError):
        trainer.train("fail")
    assert trainer.train("ok") == run_dir  # each call could take the lock again
