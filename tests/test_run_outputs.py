"""What a run leaves behind, through the CLI in subprocesses (sharing one persistent XLA compilation cache,
so only the first run compiles; the point task of tests/point_task.py): curves.png and the summary table,
wandb offline logging, TensorBoard, checkpoints with an exact --resume after a SIGKILL or SIGTERM, refusal
of damaged or mismatching checkpoints, the divergence guard, a full disk, and same seed + config = same
metrics. Eval videos of an MJX task: tests/test_own_env.py."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY, check_tiny_run, environment, run_main, wandb_history_and_config

WALL_CLOCK = ("sps", "time", "eval/time")
FAKE_KEY = "f" * 8 + "0123456789abcdef0123456789abcdef"  # must never show up in outputs
RUN = "import sys; from anakin_tdmpc.run import main; main(sys.argv[1:])"
# a training process that sends itself KILL_SIGNAL (default SIGKILL) right after metrics.jsonl got its row for
# env step KILL_AT
KILLED_RUN = """
import os, signal, sys
from anakin_tdmpc.session import logger
log = logger.RunLogger.log
def log_then_die(self, row):
    log(self, row)
    if row["env_steps"] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")))
logger.RunLogger.log = log_then_die
from anakin_tdmpc.run import main
main(sys.argv[1:])
"""
# a training process whose disk fills up: the checkpoint save of env step FULL_AT (CHECKPOINT) or the metrics
# row of that step (METRICS) fails with ENOSPC
DISK_FULL_RUN = """
import errno, os, sys
from anakin_tdmpc.session import checkpoint, logger
at, what = int(os.environ["FULL_AT"]), os.environ["FULL_WHAT"]
write_raw, log = checkpoint.Checkpointer.write_raw, logger.RunLogger.log
def full_write_raw(self, step, arrays, meta):
    if what == "CHECKPOINT" and step == at:
        raise OSError(errno.ENOSPC, "No space left on device")
    return write_raw(self, step, arrays, meta)
def full_log(self, row):
    if what == "METRICS" and row["env_steps"] == at:
        raise OSError(errno.ENOSPC, "No space left on device")
    return log(self, row)
checkpoint.Checkpointer.write_raw, logger.RunLogger.log = full_write_raw, full_log
from anakin_tdmpc.run import main
main(sys.argv[1:])
"""


def start(args, environ, code=RUN, **extra_env):
    return subprocess.Popen([sys.executable, "-c", code, *args], env=dict(environ, **extra_env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def cli(args, environ, code=RUN, **extra_env):
    return finish(start(args, environ, code, **extra_env))


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def without_wall_clock(rows):
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def steps(run_dir):
    return sorted(int(name) for name in os.listdir(os.path.join(run_dir, "checkpoints")) if name.isdigit())


def damage(run_dir, step):
    """Flip bytes in the middle of every array data file of checkpoint `step`."""
    data_files = [p for p in glob.glob(os.path.join(run_dir, "checkpoints", str(step), "arrays", "**", "d", "*"),
                                       recursive=True) if os.path.getsize(p) > 64]
    assert data_files
    for path in data_files:
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(b"\xde\xad\xbe\xef" * 4)


def plant_nan(run_dir, step):
    """NaNs in the replay buffer of checkpoint `step` (rewritten with a valid hash): the next chunk's
    updates produce NaN losses."""
    from anakin_tdmpc.session.checkpoint import Checkpointer

    ckpt = Checkpointer(run_dir)
    meta = ckpt.read_meta(step)
    arrays = ckpt.read_arrays(step, meta)
    (obs,) = [i for i, entry in enumerate(meta["manifest"]) if entry["path"] == ".buffer.obs"]
    arrays[obs] = np.full_like(arrays[obs], np.nan)
    ckpt.write_raw(step, arrays, meta)
    ckpt.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    environ = dict(environment(1),  # the compilation cache of conftest.py, shared; tests/ on the path
                   WANDB_DIR=str(base / "wandb"), WANDB_API_KEY=FAKE_KEY, PYTHONUNBUFFERED="1")
    os.makedirs(environ["WANDB_DIR"])
    args = TINY + ["--checkpoint_every", "160"]
    out = dict(base=base, environ=environ, args=args)
    dirs = {name: str(base / name) for name in ("reference", "killed", "damaged", "mismatch", "nan", "terminated",
                                                 "full_checkpoint", "full_metrics")}
    out.update(dirs)

    # the reference: uninterrupted, with wandb (which may not change the metrics) and --capture_video (a
    # warning: the point task has no MuJoCo model to render); it fills the
    # compilation cache, so the other runs only trace
    out["reference_run"] = cli(args + ["--run_dir", dirs["reference"], "--capture_video", "--track"], environ)
    assert out["reference_run"].returncode == 0, out["reference_run"].stderr[-3000:]
    # the same config, SIGKILLed after the row of env step 400 (checkpoints at 160 and 320 exist); and
    # SIGTERMed there (preemption), side by side
    killing = start(args + ["--run_dir", dirs["killed"]], environ, code=KILLED_RUN, KILL_AT="400")
    terminating = start(args + ["--run_dir", dirs["terminated"]], environ, code=KILLED_RUN, KILL_AT="400",
                        KILL_SIGNAL="SIGTERM")
    kill, out["terminated_run"] = finish(killing), finish(terminating)
    assert kill.returncode == -9, kill.stderr[-3000:]
    out["steps_at_term"] = steps(dirs["terminated"])
    out["rows_at_kill"], out["steps_at_kill"] = metrics(dirs["killed"]), steps(dirs["killed"])
    for name in ("damaged", "mismatch", "nan"):
        shutil.copytree(dirs["killed"], dirs[name])
    # an orbax save cut by the kill leaves only a temporary folder: never taken for a checkpoint
    shutil.copytree(os.path.join(dirs["killed"], "checkpoints", "320"),
                    os.path.join(dirs["killed"], "checkpoints", "400.orbax-checkpoint-tmp"))
    damage(dirs["damaged"], 320)
    plant_nan(dirs["nan"], 320)
    out["damaged_metrics"] = open(os.path.join(dirs["damaged"], "metrics.jsonl")).read()

    # the --resume runs are independent: run them side by side
    processes = {
        "resumed": start(args + ["--run_dir", dirs["killed"], "--resume"], environ),
        "damaged_run": start(args + ["--run_dir", dirs["damaged"], "--resume"], environ),
        "mismatch_run": start(args + ["--run_dir", dirs["mismatch"], "--resume", "--seed", "2"], environ),
        "no_run_dir": start(TINY + ["--resume"], environ),
        "nan_run": start(args + ["--run_dir", dirs["nan"], "--resume"], environ),
        "terminated_resumed": start(args + ["--run_dir", dirs["terminated"], "--resume"], environ),
        "full_checkpoint_run": start(args + ["--run_dir", dirs["full_checkpoint"]], environ, code=DISK_FULL_RUN,
                                     FULL_AT="320", FULL_WHAT="CHECKPOINT"),
        "full_metrics_run": start(args + ["--run_dir", dirs["full_metrics"]], environ, code=DISK_FULL_RUN,
                                  FULL_AT="400", FULL_WHAT="METRICS"),
    }
    out.update({name: finish(process) for name, process in processes.items()})
    return out


def test_resume_after_sigkill_equals_an_uninterrupted_run(runs):
    assert [r["env_steps"] for r in runs["rows_at_kill"]] == [80, 160, 240, 320, 400]
    assert runs["steps_at_kill"] == [160, 320]
    resumed = runs["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resuming = "resuming from " + os.path.join(runs["killed"], "checkpoints", "320")
    assert "".join(resuming.split()) in "".join(resumed.stderr.split())  # (the console wraps long lines)
    expected = without_wall_clock(metrics(runs["reference"]))
    # the row of env step 400 written before the kill was dropped and written again by the continuation
    assert without_wall_clock(metrics(runs["killed"])) == expected
    # determinism through the CLI: two processes, same seed + config -> the same rows before the kill too
    assert without_wall_clock(runs["rows_at_kill"]) == expected[:5]
    assert steps(runs["killed"]) == [160, 320, 480] and steps(runs["reference"]) == [160, 320, 480]
    assert not glob.glob(os.path.join(runs["killed"], "checkpoints", "*tmp*"))


def test_sigterm_saves_a_checkpoint_and_resumes_exactly(runs):
    """Preemption: SIGTERM after the row of env step 400 -> the chunk ends, a checkpoint at 400 is saved, exit
    143 with one line saying how to continue; --resume then writes the uninterrupted run's metrics."""
    term = runs["terminated_run"]
    assert term.returncode == 143, term.stderr[-3000:]
    assert runs["steps_at_term"] == [160, 320, 400]
    last = term.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGTERM at env step 400;") and "--resume --run_dir" in last
    resumed = runs["terminated_resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoints/400" in "".join(resumed.stderr.split())
    assert without_wall_clock(metrics(runs["terminated"])) == without_wall_clock(metrics(runs["reference"]))


@pytest.mark.parametrize("what", ["checkpoint", "metrics"])
def test_disk_full_is_one_line_and_keeps_the_last_complete_checkpoint(runs, what):
    run, run_dir = runs[f"full_{what}_run"], runs[f"full_{what}"]
    assert run.returncode == 4, run.stderr[-3000:]
    err = run.stderr.strip().splitlines()
    expected = {"checkpoint": "error: could not save the checkpoint of env step 320",
                "metrics": "error: could not write metrics.jsonl at env step 400"}[what]
    assert err[-1].startswith(expected) and "No space left on device" in err[-1], err[-3:]
    assert not any("Traceback" in line for line in err)
    kept = {"checkpoint": [160], "metrics": [160, 320]}[what]
    assert steps(run_dir) == kept and err[-1].endswith(os.path.join(run_dir, "checkpoints", str(kept[-1])))
    from anakin_tdmpc.session.checkpoint import Checkpointer

    reader = Checkpointer(run_dir, create=False)  # the kept checkpoint is complete: its bytes match its hash
    meta = reader.read_meta(kept[-1])
    assert len(reader.read_arrays(kept[-1], meta)) == len(meta["manifest"])
    reader.close()


def test_tiny_run_writes_config_and_metrics_and_refuses_its_dir_again(runs, capsys):
    check_tiny_run(runs["reference"], "tdmpc2")
    assert "env steps 480/480" in runs["reference_run"].stderr
    capsys.readouterr()
    assert run_main(runs["args"] + ["--run_dir", runs["reference"]]) == 2
    assert "already holds" in capsys.readouterr().err


def test_summary_table_and_curves(runs):
    err = runs["reference_run"].stderr
    assert "summary" in err and "final eval return" in err and "SPS" in err and "training time" in err
    with open(os.path.join(runs["reference"], "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # --capture_video on a task with nothing to render (no mj_model) is a warning; the run goes on
    assert "hasnomj_modeltorender;continuingwithoutvideos" in "".join(err.split())  # (the console wraps lines)
    assert not os.path.exists(os.path.join(runs["reference"], "videos"))


def test_wandb_offline_logs_metrics_and_config(runs):
    (run_file,) = glob.glob(os.path.join(runs["environ"]["WANDB_DIR"], "wandb", "offline-run-*", "run-*.wandb"))
    logged, config = wandb_history_and_config(run_file)
    rows = metrics(runs["reference"])
    assert set().union(*rows) <= logged  # every metrics.jsonl key
    assert config["args"]["latent_dim"] == 16 and config["task"] == "point_task:make_env"
    # no credential anywhere: run dir, wandb files, console
    for path in glob.glob(os.path.join(runs["reference"], "**"), recursive=True) + [run_file]:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert FAKE_KEY.encode() not in f.read(), path
    assert FAKE_KEY not in runs["reference_run"].stderr + runs["reference_run"].stdout


def test_damaged_checkpoint_is_refused(runs):
    out = runs["damaged_run"]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == errors[0]
    assert os.path.join("checkpoints", "320") in errors[0], errors[0]
    assert "damaged" in errors[0] or "unreadable" in errors[0], errors[0]
    assert open(os.path.join(runs["damaged"], "metrics.jsonl")).read() == runs["damaged_metrics"]  # untouched


def test_mismatching_config_is_refused(runs):
    out = runs["mismatch_run"]
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr[-3000:]
    assert out.stderr.startswith("error: --resume: the config differs") and "--seed 1 (saved) != 2" in out.stderr
    out = runs["no_run_dir"]
    assert out.returncode == 2 and out.stderr.strip() == "error: --resume needs --run_dir, the run to continue"


def test_planted_nan_stops_the_run_and_keeps_the_last_good_checkpoint(runs):
    out = runs["nan_run"]
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 3, out.stderr[-3000:]
    assert last.startswith("error: training diverged at env step 400: non-finite train/"), last
    assert last.endswith("the last good checkpoint is " + os.path.join(runs["nan"], "checkpoints", "320"))
    assert steps(runs["nan"]) == [160, 320]  # the bad state was not saved


def test_guard_names_the_first_non_finite_quantity():
    import jax.numpy as jnp
    import numpy as np

    from anakin_tdmpc.session.guard import DivergenceGuard
    from anakin_tdmpc.loop.parallel import float_leaf_names

    agent = {"params": {"pi": jnp.ones(3), "qs": jnp.ones((2, 2))}, "updates": jnp.zeros((), jnp.int32)}
    names = float_leaf_names(agent)
    assert names == ["agent['params']['pi']", "agent['params']['qs']"]
    guard = DivergenceGuard(names, [1])
    ok = np.ones((1, 2), bool)
    assert guard.check({"train/total_loss": 1.0}, ["train/total_loss"], ok) is None
    assert guard.check({"train/total_loss": float("inf")}, ["train/total_loss"], ok) == "non-finite train/total_loss (inf)"
    assert guard.check({"train/total_loss": 1.0}, ["train/total_loss"], np.array([[True, False]])) == \
        "non-finite parameter agent['params']['qs']"
    seeds = DivergenceGuard(names, [4, 5, 6])
    assert seeds.check({}, [], np.array([[True, True], [True, True], [False, True]])) == \
        "non-finite parameter agent['params']['pi'] (seed 6)"


def test_evaluate_reproduces_the_logged_eval_and_touches_nothing(runs, capsys):
    """`python -m anakin_tdmpc.evaluate` on the reference run: the latest checkpoint (480) with the run's
    eval episodes and keys gives the return the run logged there (up to the float rounding of a program
    compiled anew, which can tip a planner's choice: within 2%), the same again on a second call and another
    with another --seed; metrics and checkpoints stay as they were; eval_480.json is written
    (no video: the point task has nothing to render)."""
    import hashlib

    from anakin_tdmpc import evaluate

    run_dir = runs["reference"]

    def snapshot():
        with open(os.path.join(run_dir, "metrics.jsonl"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest(), steps(run_dir)

    before = snapshot()
    evaluate.main(["--run_dir", run_dir, "--episodes", "2", "--capture_video"])
    out, err = capsys.readouterr()
    assert "has no mj_model to render; no videos" in err
    logged = [r for r in metrics(run_dir) if r["env_steps"] == 480][0]["eval/episode_return"]
    result = json.load(open(os.path.join(run_dir, "eval_480.json")))
    assert result["env_steps"] == 480 and result["episodes"] == 2
    assert abs(result["mean"] - logged) <= 0.02 * abs(logged), (result["mean"], logged)
    assert result["min"] <= result["mean"] <= result["max"] and len(result["per_seed"]["1"]["returns"]) == 2
    assert f"return {result['mean']:.1f}" in out and "eval_480.json" in out
    assert snapshot() == before
    evaluate.main(["--run_dir", run_dir, "--episodes", "2"])
    assert json.load(open(os.path.join(run_dir, "eval_480.json")))["per_seed"] == result["per_seed"]
    evaluate.main(["--run_dir", run_dir, "--episodes", "2", "--seed", "7"])
    assert json.load(open(os.path.join(run_dir, "eval_480.json")))["per_seed"] != result["per_seed"]
    assert result["videos"] == []  # (the eval video of an MJX task: tests/test_own_env.py)


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "123"], "has no checkpoint at env step 123; it has 160, 320, 480"),
    (["--episodes", "0"], "--episodes must be positive, got 0"),
    (["--episodes", "two"], "--episodes expects an integer, got 'two'"),
])
def test_evaluate_bad_input_is_one_line(runs, capsys, argv, message):
    from anakin_tdmpc import evaluate

    with pytest.raises(SystemExit) as e:
        evaluate.main(["--run_dir", runs["reference"]] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_evaluate_refuses_a_damaged_checkpoint_and_a_missing_run(runs, capsys, tmp_path):
    from anakin_tdmpc import evaluate

    # the damaged checkpoint: "is damaged" or "is unreadable", as orbax finds it
    for argv, message in [(["--run_dir", runs["damaged"], "--checkpoint", "320"], "checkpoints/320 is"),
                          (["--run_dir", str(tmp_path / "none")], "no run dir"),
                          (["--run_dir", str(tmp_path)], "holds no run (no config.json)")]:
        with pytest.raises(SystemExit) as e:
            evaluate.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and message in err[0], err


def read_tensorboard(folder) -> dict:
    """tag -> [(step, value)] of every scalar in the event files of `folder` (TFRecord framing: length,
    its CRC, the Event proto, its CRC), decoded with tensorboardX's own protobuf classes; a session start
    at step p (a resumed run's purge_step) drops what earlier files logged at steps >= p, as TensorBoard
    does."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                scalars = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in scalars.items()}
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.mark.parametrize("name", ["reference", "killed"])
def test_tensorboard_holds_the_metrics_rows(runs, name):
    """The reference run's event files hold its rows; so do those of the run killed at 400 and resumed from
    its 320 checkpoint, each step once."""
    rows = metrics(runs[name])
    scalars = read_tensorboard(os.path.join(runs[name], "tensorboard"))
    for key in ("train/total_loss", "eval/episode_return", "updates", "sps"):
        expected = [(r["env_steps"], r[key]) for r in rows if key in r]
        assert [s for s, _ in scalars[key]] == [s for s, _ in expected], key
        np.testing.assert_allclose([v for _, v in scalars[key]], [v for _, v in expected], rtol=1e-6)
    assert "env_steps" not in scalars
