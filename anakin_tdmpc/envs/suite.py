"""dm_control's own tasks on mujoco_playground's models, corrected to dm_control's MDP (``impl='jax'``).

mujoco_playground's DMC ports differ from dm_control in ways that change what the agent sees
(``shared/playground_vs_dmcontrol.md`` lists them). Each class here subclasses playground's env and makes the
task dm_control's as the official TD-MPC2 trainer builds it (``suite.load`` + action repeat); every change is
listed under its class. Tasks not yet corrected here are still loaded from playground as they are.

Walker (walker-stand, walker-walk, walker-run), on playground's ``PlanarWalker``:

* the observation's ``height`` is the torso's height ``xpos[torso, z]``, as dm_control's; playground observes
  the torso's ``zz`` orientation there (``xmat[torso, 2, 2]``), which reads -1..1 where the height reads ~1.3
  when standing;
* observation and reward read the state after the step (kinematics recomputed after the last sub-step), as
  dm_control's step ends with ``mj_step1``; playground reads them one 2.5 ms sub-step stale;
* unchanged: the initial-state distribution (identical), reward terms, the 25 ms control step, 1000 steps.
  Numerical settings stay playground's: 2 solver iterations (dm_control: 100), ``eulerdamp`` off, at most 4
  contact points per geom pair; ``tests/test_envs_custom.py`` bounds what they change per step.

Pendulum (pendulum-swingup), on playground's ``SwingUp``:

* the initial angle is uniform in [-pi, pi], as dm_control's (playground: [0, pi], one half of the circle);
* the observation is dm_control's order, the pole's ``zz`` then ``xz``, then the angular velocity
  (playground swaps the first two), read after the step;
* physics as dm_control's: one 0.02 s step per control step with implicit joint damping (``eulerdamp`` on;
  playground: two 0.01 s steps, ``eulerdamp`` off). Contacts are off in both, so the solver does not matter.
* unchanged: the reward, ``tolerance(zz, (cos(8 deg), 1))`` (sparse: 1 within 8 degrees of upright), 1000 steps.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jp
import mujoco
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src.dm_control_suite import pendulum, walker

from anakin_tdmpc.envs.base import initial_state, step_then_observe


class _ObserveAfterStep:
    """Steps a playground env as dm_control does: observation and reward of the state after the step."""

    def step(self, state: mjx_env.State, action: jax.Array) -> mjx_env.State:
        return step_then_observe(self, state, action,
                                 lambda data: self._get_reward(data, action, state.info, state.metrics))


class Walker(_ObserveAfterStep, walker.PlanarWalker):
    """dm_control's walker stand / walk / run (``move_speed`` 0, 1, 8): see the module docstring."""

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        orientations = data.xmat[1:, 0, jp.array([0, 2])].ravel()  # each body's xx and xz
        return jp.concatenate([orientations, data.xpos[self._torso_id, 2:3], data.qvel])


class Pendulum(_ObserveAfterStep, pendulum.SwingUp):
    """dm_control's pendulum swingup: see the module docstring."""

    def __init__(self, config_overrides: dict[str, Any] | None = None):
        config = pendulum.default_config()
        config.sim_dt = 0.02  # dm_control's timestep: one physics step per control step
        super().__init__(config=config, config_overrides=config_overrides)
        self._mj_model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
        self._mjx_model = mjx.put_model(self._mj_model, impl=self._config.impl)

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        qpos = jp.zeros(self.mjx_model.nq).at[self._hinge_qposadr].set(
            jax.random.uniform(key, minval=-jp.pi, maxval=jp.pi))
        data = mjx_env.make_data(self.mj_model, qpos=qpos, impl=self.mjx_model.impl.value,
                                 naconmax=self._config.naconmax, njmax=self._config.njmax)
        return initial_state(self, mjx.forward(self.mjx_model, data), rng)

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        xz, zz = self._pole_orientation(data)
        return jp.stack([zz, xz, self._angular_velocity(data)])


def _walker(move_speed: float, overrides: dict[str, Any] | None) -> Walker:
    return Walker(move_speed=move_speed, config=walker.default_config(), config_overrides=overrides)


CUSTOM_TASKS: dict[str, Any] = {
    "walker-stand": lambda o: _walker(0.0, o),
    "walker-walk": lambda o: _walker(walker.WALK_SPEED, o),
    "walker-run": lambda o: _walker(walker.RUN_SPEED, o),
    "pendulum-swingup": lambda o: Pendulum(o),
}
"""Canonical task name -> ``constructor(config_overrides) -> MjxEnv`` of the corrected dm_control tasks."""
