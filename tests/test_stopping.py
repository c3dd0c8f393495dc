"""Stopping within --max_chunk_seconds: a log period, the pretraining burst and an evaluation run as chunks of
bounded wall-clock that change no number, and a stop between any two of them saves a checkpoint from which
--resume writes the uninterrupted run's rows. Tiny runs of the point task through the CLI in subprocesses (the
compilation cache of conftest.py shared); the other signal and resume tests: tests/test_run_outputs.py."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY, environment, metrics_rows

WALL_CLOCK = ("sps", "time", "eval/time")
RUN = "import sys; from anakin_tdmpc.run import main; main(sys.argv[1:])"
# a training process that sends itself SIGTERM as it sizes its STOP_CALL-th chunk of work STOP_PHASE ("learning",
# "update": pretraining, "eval") at env step STOP_AT; the stop is honoured after that chunk
STOPPED_RUN = """
import os, signal, sys
from anakin_tdmpc.session import trainer
chunk_length, calls = trainer.Trainer._chunk_length, []
def chunk_length_then_stop(self, phase, most):
    if (phase, self.env_steps) == (os.environ["STOP_PHASE"], int(os.environ["STOP_AT"])):
        calls.append(phase)
        if len(calls) == int(os.environ["STOP_CALL"]):
            os.kill(os.getpid(), signal.SIGTERM)
    return chunk_length(self, phase, most)
trainer.Trainer._chunk_length = chunk_length_then_stop
from anakin_tdmpc.run import main
main(sys.argv[1:])
"""
# every chunk one iteration, one pretraining update or one eval step
ONE_STEP_CHUNKS = ["--max_chunk_seconds", "1e-9"]
# where the stopped runs stop: in the period 160..240 (after env step 200, so at 208), in the pretraining burst
# (after 10 of its 40 updates, at env step 80) and in the evaluation at 240 (after 5 of its 20 steps)
STOPS = {"period": ("learning", "200", "1"), "burst": ("update", "80", "10"), "eval": ("eval", "240", "5")}


def start(args, code=RUN, **extra_env):
    return subprocess.Popen([sys.executable, "-c", code, *args], env=dict(environment(1), **extra_env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def without_wall_clock(rows):
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def checkpoint_steps(run_dir):
    return sorted(int(name) for name in os.listdir(os.path.join(run_dir, "checkpoints")) if name.isdigit())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("stopping")
    args = TINY + ["--checkpoint_every", "160", "--no_tensorboard"]
    out = {"reference": finish(start(args + ["--run_dir", str(base / "reference")]))}  # fills the compilation cache
    assert out["reference"].returncode == 0, out["reference"].stderr[-3000:]
    out["reference_rows"] = metrics_rows(base / "reference")
    first = {"one_step": start(args + ONE_STEP_CHUNKS + ["--run_dir", str(base / "one_step")])}
    for where, (phase, at, call) in STOPS.items():
        first[where] = start(args + ONE_STEP_CHUNKS + ["--run_dir", str(base / where)], code=STOPPED_RUN,
                             STOP_PHASE=phase, STOP_AT=at, STOP_CALL=call)
    out.update({name: finish(process) for name, process in first.items()})
    out["one_step_rows"] = metrics_rows(base / "one_step")
    for where in STOPS:
        out[f"{where}_steps"], out[f"{where}_rows"] = checkpoint_steps(base / where), metrics_rows(base / where)
    resumed = {where: start(args + ["--run_dir", str(base / where), "--resume"]) for where in STOPS}
    for where, process in resumed.items():
        out[f"{where}_resumed"], out[f"{where}_resumed_rows"] = finish(process), metrics_rows(base / where)
    return out


def test_chunk_lengths_change_no_row(runs):
    """--max_chunk_seconds tiny: every compiled chunk is one iteration, update or eval step; the rows (sums,
    evaluations, update counts) are those of the run whose chunks fill whole log periods."""
    assert runs["one_step"].returncode == 0, runs["one_step"].stderr[-3000:]
    assert without_wall_clock(runs["one_step_rows"]) == without_wall_clock(runs["reference_rows"])


@pytest.mark.parametrize("where, step, rows", [("period", 208, 2), ("burst", 80, 0), ("eval", 240, 2)])
def test_a_stop_inside_a_period_burst_or_evaluation_saves_and_resumes_exactly(runs, where, step, rows):
    """A stop between two chunks of a log period, of the pretraining burst or of an evaluation: exit 143 with a
    checkpoint there holding the period's sums so far (the open period wrote no row); --resume finishes the
    period (evaluating again, with the same keys) and writes the uninterrupted run's rows."""
    stopped = runs[where]
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert stopped.stderr.strip().splitlines()[-1].startswith(f"stopped by SIGTERM at env step {step};")
    assert runs[f"{where}_steps"][-1] == step
    assert len(runs[f"{where}_rows"]) == rows
    assert runs[f"{where}_resumed"].returncode == 0, runs[f"{where}_resumed"].stderr[-3000:]
    assert without_wall_clock(runs[f"{where}_resumed_rows"]) == without_wall_clock(runs["reference_rows"])


def test_a_stop_waits_one_bounded_chunk_not_a_log_period(tmp_path):
    """One log period of 250k iterations (minutes of compute) and --max_chunk_seconds 1: SIGTERM during it is
    honoured within the bound plus the checkpoint's save, long before the period could end."""
    args = TINY[:TINY.index("--total_timesteps")] + [
        "--total_timesteps", "2000000", "--log_every", "2000000", "--eval_every", "2000000", "--checkpoint_every",
        "2000000", "--buffer_size", "10000", "--eval_episodes", "0", "--no_tensorboard", "--max_chunk_seconds", "1",
        "--run_dir", str(tmp_path / "run")]
    process = start(args, PYTHONUNBUFFERED="1")
    for line in process.stderr:
        if line.startswith("compiled training chunk"):
            break
    time.sleep(4)
    assert process.poll() is None
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    process.wait(timeout=120)
    waited = time.time() - sent
    assert process.returncode == 143, rest[-3000:]
    assert waited < 1 + 15, f"{waited:.1f}s from SIGTERM to exit"
    step = checkpoint_steps(tmp_path / "run")[-1]
    assert 0 < step < 2_000_000 and f"stopped by SIGTERM at env step {step:,};" in rest
