"""A task of our own for tests that exercise the trainer rather than the physics: a point on a line pushed by
the action, in the env protocol of `anakin_tdmpc.envs.register` (no MuJoCo: it compiles in seconds where an
MJX task takes a minute). Through the CLI: `--task point_task:make_env` with tests/ on PYTHONPATH
(conftest.environment does that); in this process: `envs.register("point", make_env)`."""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class State(NamedTuple):
    physics: jax.Array  # [2] position, velocity
    obs: jax.Array
    reward: jax.Array
    done: jax.Array


class Point:
    observation_size, action_size, dt = 3, 1, 0.1

    def reset(self, rng):
        physics = jnp.stack([jax.random.uniform(rng, (), minval=-1.0, maxval=1.0), jnp.float32(0.0)])
        return State(physics, self._obs(physics), jnp.float32(0.0), jnp.float32(0.0))

    def step(self, state, action):
        pos, vel = state.physics
        vel = 0.8 * vel + 0.5 * jnp.clip(action[0], -1.0, 1.0)
        pos = jnp.clip(pos + self.dt * vel, -2.0, 2.0)
        physics = jnp.stack([pos, vel])
        reward = jnp.maximum(0.0, 1.0 - jnp.abs(pos))  # 1 at the origin
        return State(physics, self._obs(physics), reward.astype(jnp.float32), jnp.float32(0.0))

    @staticmethod
    def _obs(physics):
        return jnp.stack([physics[0], physics[1], jnp.sin(3.0 * physics[0])]).astype(jnp.float32)


def make_env():
    return Point()


class FallingPoint(Point):
    """The point task with terminations: the episode ends (terminated, not truncated) once the point leaves
    [-1.5, 1.5]; `episodic = True` says so to the trainer."""

    episodic = True

    def step(self, state, action):
        state = super().step(state, action)
        return state._replace(done=(jnp.abs(state.physics[0]) >= 1.5).astype(jnp.float32))


def make_episodic_env():
    return FallingPoint()
