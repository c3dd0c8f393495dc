"""brax's Gym-style MJX tasks (inverted pendulum, hopper, walker2d, ant, humanoid, ...) as tasks of this project.

`--task brax/hopper` trains on `brax.envs.get_environment("hopper", backend="mjx")`: brax's own model (its
assets ship inside the brax package), observations, rewards and terminations, stepped by MJX inside the fused
loop. What this module adds is the env protocol of `registry.register` around it:

* the state carries brax's MJX state as `data` (so eval videos render `mj_model`), next to `obs`, `reward`,
  `done`, `metrics` and `info`;
* `episodic`: whether brax's `done` means the episode *terminated* (the hopper fell, the pole dropped; brax
  sets it when a task's `terminate_when_unhealthy` or its angle limit trips). halfcheetah, reacher and pusher
  never terminate and are not episodic.

Settings of the project, not brax's: episodes are cut at 1000 agent steps (brax's training wrappers do the
same), action repeat 1 (each brax step already holds several physics substeps: `dt` in the table), and the
agent's actions in [-1, 1] map linearly onto each actuator's control range, as in every task here
(inverted_pendulum's [-3, 3], humanoid's [-0.4, 0.4], pusher's [-2, 2]; brax's own PPO instead clips its
tanh actions to [-1, 1] inside those ranges). brax's swimmer has no MJX backend and is not offered.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax

BRAX_TASKS: dict[str, tuple[str, bool]] = {
    "brax/inverted_pendulum": ("inverted_pendulum", True),
    "brax/inverted_double_pendulum": ("inverted_double_pendulum", True),
    "brax/hopper": ("hopper", True),
    "brax/walker2d": ("walker2d", True),
    "brax/ant": ("ant", True),
    "brax/humanoid": ("humanoid", True),
    "brax/halfcheetah": ("halfcheetah", False),
    "brax/reacher": ("reacher", False),
    "brax/pusher": ("pusher", False),
}
"""Task name -> (brax env name, episodic: brax's `done` is a termination)."""

ACTION_REPEAT = 1
"""Agent steps hold one brax step (itself several physics substeps)."""


class BraxState(NamedTuple):
    """brax's `State` with its MJX state named `data`, as the env protocol reads it."""

    data: Any  # brax.mjx.base.State (an mjx.Data)
    obs: Any
    reward: Any
    done: Any
    metrics: Any
    info: Any


def _on_local_device(sys):
    """brax's system with its MJX model on this process's first device.

    brax builds its system with `mjx.put_model`, which places the model on `jax.devices()[0]`: in a
    multi-process run that device belongs to process 0, and the other processes cannot use it. The MJX fields
    are put again from the MuJoCo model (brax's own fields are host arrays)."""
    from mujoco import mjx

    local = mjx.put_model(sys.mj_model, device=jax.local_devices()[0], impl="jax")
    return sys.replace(**{field.name: getattr(local, field.name) for field in dataclasses.fields(local)})


class BraxTask:
    """One brax env on the MJX backend in the env protocol (see `registry.register`)."""

    def __init__(self, brax_name: str, episodic: bool):
        import warnings

        from brax import envs as brax_envs

        with warnings.catch_warnings():  # brax's notice that it is in maintenance mode, on every model load
            warnings.filterwarnings("ignore", message="Brax System, piplines and environments")
            self._env = brax_envs.get_environment(brax_name, backend="mjx")
        if jax.process_count() > 1:
            self._env.sys = _on_local_device(self._env.sys)
        self.episodic = episodic
        # brax's observation_size runs a reset eagerly, on jax.devices()[0] (mjx.make_data's default device);
        # traced, it runs wherever the caller's computation does
        self.observation_size = int(jax.eval_shape(self._env.reset, jax.random.PRNGKey(0)).obs.shape[-1])
        self.action_size = int(self._env.action_size)
        self.dt = float(self._env.dt)
        self.n_substeps = int(self._env._n_frames)  # physics steps per brax step
        self.mj_model = self._env.sys.mj_model

    @staticmethod
    def _ours(state) -> BraxState:
        return BraxState(state.pipeline_state, state.obs, state.reward, state.done, state.metrics, state.info)

    def reset(self, rng) -> BraxState:
        return self._ours(self._env.reset(rng))

    def step(self, state: BraxState, action) -> BraxState:
        from brax.envs.base import State

        theirs = State(pipeline_state=state.data, obs=state.obs, reward=state.reward, done=state.done,
                       metrics=state.metrics, info=state.info)
        return self._ours(self._env.step(theirs, action))


def load(task: str) -> BraxTask:
    """The env of brax task `task` (a key of BRAX_TASKS)."""
    brax_name, episodic = BRAX_TASKS[task]
    return BraxTask(brax_name, episodic)
