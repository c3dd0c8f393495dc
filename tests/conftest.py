"""Shared test pieces: the tiny CLI configuration, a stand-in env that compiles in seconds, and the
random-policy baseline of the learning tests. Test files import them (`from conftest import PointEnv`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One persistent XLA compilation cache for the whole test run, its xdist workers and the interpreters the tests
# start: the many tests that compile the same tiny programs compile them once (a cached executable is the one
# XLA would build again; the key covers the program, the options and the JAX version).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".pytest_cache", "xla"))
# Nearly every test compiles far longer than it runs, so the tests and the interpreters they start have XLA
# generate CPU code without LLVM's optimizations: a tiny CLI run's test took 88 s against 155 s, one core, empty
# cache. The learning tests run for minutes, ~1.7x slower so (TD-MPC's: 231 s against ~133 s), and start their
# runs at the default level (environment(optimized=True)).
UNOPTIMIZED = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = " ".join(os.environ.get("XLA_FLAGS", "").split() + [UNOPTIMIZED])

import jax  # noqa: E402 - after the cache is set
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# a tiny TD-MPC2 run through the CLI: 4 envs, 20-step episodes, 480 env steps, on the point task of
# tests/point_task.py (a task of our own without MuJoCo: the trainer, checkpoints and outputs are what these
# runs test, and an MJX task would add a minute of compiling to every program; the learning tests, the README
# example of tests/test_own_env.py and the env tests run MJX)
TINY = ["--task", "point_task:make_env", "--num_envs", "4", "--model_size", "1", "--latent_dim", "16", "--mlp_dim", "32",
        "--enc_dim", "32", "--num_samples", "16", "--num_elites", "4", "--num_pi_trajs", "2", "--iterations", "2",
        "--batch_size", "8", "--seed_steps", "40", "--episode_length", "20", "--total_timesteps", "480",
        "--eval_every", "240", "--eval_episodes", "2", "--log_every", "80"]
# the same for TD-MPC: no TD-MPC2 size preset, the action repeat pinned to 2 (as TD-MPC2's)
_SIZE = TINY.index("--model_size")
TINY_TDMPC = TINY[:_SIZE] + TINY[_SIZE + 2:] + ["--algo", "tdmpc", "--action_repeat", "2"]


def check_tiny_run(run_dir, algo: str) -> list[dict]:
    """What a finished run of TINY (TINY_TDMPC) wrote: config.json and the metrics rows -> the rows. (The TD-MPC2
    run through the CLI: tests/test_run_outputs.py; TD-MPC through the Python entry: tests/test_cli.py.)"""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    from anakin_tdmpc import __version__

    assert config["version"] == __version__ != "unknown"
    assert config["args"]["algo"] == algo and config["env"]["action_repeat"] == 2
    assert config["task"] == "point_task:make_env" and config["env"]["episode_length"] == 20
    assert config["algo_config"]["latent_dim"] == 16 and config["schedule"]["updates_per_iter"] == 4
    rows = metrics_rows(run_dir)
    assert [r["env_steps"] for r in rows] == [80, 160, 240, 320, 400, 480]
    assert all(r["sps"] > 0 for r in rows)
    # episodes last 20 iterations of 4 envs x 2 env steps: they end at 160, 320 and 480 env steps
    assert [r["env_steps"] for r in rows if "train/episode_return" in r] == [160, 320, 480]
    evals = [r for r in rows if "eval/episode_return" in r]
    assert [r["env_steps"] for r in evals] == [240, 480]
    assert 0 <= evals[-1]["eval/episode_return"] <= 40
    assert rows[-1]["updates"] == 40 + 4 * (60 - 10)  # pretraining burst, then 4 per iteration
    algo_metric = "train/pi_scale" if algo == "tdmpc2" else "train/weighted_loss"
    assert "train/total_loss" in rows[-1] and algo_metric in rows[-1]
    assert not any(k.startswith("train/_") for k in rows[-1])  # the priorities TD-MPC returns are not logged
    return rows


def run_main(argv) -> int:
    """`python -m anakin_tdmpc.run argv` in this process -> its exit code."""
    from anakin_tdmpc.run import main

    try:
        main(argv)
    except SystemExit as e:
        return e.code
    return 0


def metrics_rows(run_dir) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def environment(devices: int = 1, optimized: bool = False) -> dict:
    """Environment variables of a fresh interpreter with `devices` forced CPU devices (offline wandb); XLA at its
    default optimization level if `optimized`, else at the tests' (UNOPTIMIZED, above)."""
    # tests/ on the path too: point_task.py is a task of our own for the CLI (--task point_task:make_env)
    env = dict(os.environ, JAX_PLATFORMS="cpu", WANDB_MODE="offline",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if "device_count" not in f and not (optimized and f == UNOPTIMIZED)]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    return env


def worker(mode: str, devices: int) -> dict:
    """tests/parallel_worker.py `mode` in a fresh interpreter with `devices` CPU devices -> its JSON result."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parallel_worker.py"), mode],
                          env=environment(devices), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wandb_records(path):
    """Records of an offline .wandb file (LevelDB log format: 7-byte header, 32 KiB blocks of chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, pending = open(path, "rb").read(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def wandb_history_and_config(path) -> tuple[set, dict]:
    """(every key logged to the history, the run's config) of an offline .wandb file."""
    logged, config = set(), {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            logged |= {item.key or item.nested_key[0] for item in record.history.item}
        updates = record.config.update if kind == "config" else record.run.config.update if kind == "run" else []
        config.update({u.key: json.loads(u.value_json) for u in updates})
    return logged, config


def random_policy_return(task: str, episodes: int = 8, action_repeat: int = 2, seed: int = 0) -> float:
    """Mean return of uniform random actions on dm_control's own `task` (the MDP our port reproduces: see the
    parity tests), each action held for `action_repeat` control steps: the floor a learning test must clear.
    dm_control steps in NumPy, so this costs a second where our MJX env would first compile for a minute."""
    from dm_control import suite

    domain, name = task.split("-", 1)
    env = suite.load(domain, name, task_kwargs={"random": seed})
    spec = env.action_spec()
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(episodes):
        step = env.reset()
        while not step.last():
            action = rng.uniform(spec.minimum, spec.maximum)
            for _ in range(action_repeat):
                step = env.step(action)
                total += step.reward or 0.0
                if step.last():
                    break
    return total / episodes


class PointEnv:
    """A cheap stand-in for the MJX env (the loop only needs reset / step / sizes / jit): a point on a line pushed
    by the action, reward -|position|, episodes of 20 steps with auto-reset. Keeps this test's compile short."""

    obs_dim, action_dim, episode_length, action_repeat = 3, 1, 20, 1

    @staticmethod
    def jit(fn, **kwargs):
        """The loop compiles through its env (``Env.jit``); this one needs no XLA options."""
        return jax.jit(fn, **kwargs)

    def _obs(self, pos, step):
        return jnp.stack([pos, jnp.sin(pos), step / self.episode_length], axis=-1)

    def reset(self, rng, num_envs):
        from anakin_tdmpc.envs import EnvState

        pos = jax.random.uniform(rng, (num_envs,), minval=-1, maxval=1)
        steps = jnp.zeros((num_envs,), jnp.int32)
        return EnvState(pos, self._obs(pos, steps), steps, jnp.zeros((num_envs,)), jax.random.split(rng, num_envs))

    def step(self, state, action):
        from anakin_tdmpc.envs import EnvState, StepOut

        pos = jnp.clip(state.physics + 0.2 * action[:, 0], -2, 2)
        reward = -jnp.abs(pos)
        steps, ret = state.episode_step + 1, state.episode_return + reward
        done = steps >= self.episode_length
        out = StepOut(reward=reward, done=done, final_obs=self._obs(pos, steps), terminated=jnp.zeros_like(done),
                      final=done, episode_return=ret, episode_length=steps)
        pos = jnp.where(done, 0.5, pos)
        steps = jnp.where(done, 0, steps)
        state = EnvState(pos, self._obs(pos, steps), steps, jnp.where(done, 0.0, ret), state.rng)
        return state, out


# Files that take minutes (real training runs, CLI subprocesses), longest first. pytest-xdist's --dist loadfile
# hands files to idle workers in collection order: starting these first lets the short files fill in around
# them, instead of one of them starting last while the other worker sits idle (measured: a 6-minute tail, the
# learning test alone at the end). Needs --no-loadscope-reorder (pyproject.toml): by default xdist reorders the
# files by their number of tests. Order from the whole suite run on one core, cold compilation cache (seconds:
# run_outputs 347, learning 261, multiprocess 238, envs_custom 220, seeds 184, learning_tdmpc 144, own_env 137,
# tdmpc2 124, parallel 86, replay 83, episodic 59, envs_dog 51; the other files 276 together).
SLOW_FILES = ["test_run_outputs.py", "test_learning.py", "test_multiprocess.py", "test_envs_custom.py", "test_seeds.py",
              "test_stopping.py", "test_learning_tdmpc.py", "test_own_env.py", "test_tdmpc2.py", "test_parallel.py",
              "test_replay.py", "test_episodic.py", "test_envs_dog.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: order within files kept


def train_optimized(argv: list[str], run_dir: Path) -> list[dict]:
    """`python -m anakin_tdmpc.run *argv --run_dir run_dir` in a fresh interpreter at XLA's default optimization
    level (a learning test's run: see UNOPTIMIZED) -> the rows of its metrics.jsonl."""
    done = subprocess.run([sys.executable, "-m", "anakin_tdmpc.run", *argv, "--run_dir", str(run_dir)],
                          env=environment(1, optimized=True), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return metrics_rows(run_dir)
