"""Shared test pieces: the tiny CLI configuration, a stand-in env that compiles in seconds, and the
random-policy baseline of the learning tests. Test files import them (`from conftest import PointEnv`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One persistent XLA compilation cache for the whole test run, its xdist workers and the interpreters the tests
# start: the many tests that compile the same tiny programs compile them once (a cached executable is the one
# XLA would build again; the key covers the program, the options and the JAX version).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".pytest_cache", "xla"))

import jax  # noqa: E402 - after the cache is set
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# a tiny TD-MPC2 run of cartpole-balance through the CLI: 4 envs, 20-step episodes, 480 env steps
TINY = ["--task", "cartpole-balance", "--num_envs", "4", "--model_size", "1", "--latent_dim", "16", "--mlp_dim", "32",
        "--enc_dim", "32", "--num_samples", "16", "--num_elites", "4", "--num_pi_trajs", "2", "--iterations", "2",
        "--batch_size", "8", "--seed_steps", "40", "--episode_length", "20", "--total_timesteps", "480",
        "--eval_every", "240", "--eval_episodes", "2", "--log_every", "80"]
# the same for TD-MPC: no TD-MPC2 size preset, the action repeat pinned to 2 (its cartpole default is 8)
_SIZE = TINY.index("--model_size")
TINY_TDMPC = TINY[:_SIZE] + TINY[_SIZE + 2:] + ["--algo", "tdmpc", "--action_repeat", "2"]


def run_main(argv) -> int:
    """`python -m anakin_tdmpc.run argv` in this process -> its exit code."""
    from anakin_tdmpc.run import main

    try:
        main(argv)
    except SystemExit as e:
        return e.code
    return 0


def environment(devices: int = 1) -> dict:
    """Environment variables of a fresh interpreter with `devices` forced CPU devices (offline wandb)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", WANDB_MODE="offline", PYTHONPATH=ROOT)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    return env


def worker(mode: str, devices: int) -> dict:
    """tests/parallel_worker.py `mode` in a fresh interpreter with `devices` CPU devices -> its JSON result."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parallel_worker.py"), mode],
                          env=environment(devices), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def random_policy_return(task: str, episodes: int = 8, action_repeat: int = 2) -> float:
    """Mean return of uniform random actions on `task` (the floor a learning test must clear)."""
    from anakin_tdmpc.envs import make_env

    env = make_env(task, action_repeat=action_repeat)

    def run(key):
        state = env.reset(key, episodes)

        def step(state, k):
            action = jax.random.uniform(k, (episodes, env.action_dim), minval=-1, maxval=1)
            state, out = env.step(state, action)
            return state, out.reward

        _, rewards = jax.lax.scan(step, state, jax.random.split(key, env.episode_length))
        return rewards.sum(0)

    return float(np.mean(jax.jit(run)(jax.random.key(0))))


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
        out = StepOut(reward, done, self._obs(pos, steps), ret, steps)
        pos = jnp.where(done, 0.5, pos)
        steps = jnp.where(done, 0, steps)
        state = EnvState(pos, self._obs(pos, steps), steps, jnp.where(done, 0.0, ret), state.rng)
        return state, out
