"""What our dm_control ports built on a whole MJCF model (quadruped, dog) share."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jp
import mujoco
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src import mjx_env


def port_config(ctrl_dt: float) -> config_dict.ConfigDict:
    """Default config of a port: dm_control's 5 ms timestep, 1000 control steps, 4 / 8 solver iterations."""
    return config_dict.create(
        ctrl_dt=ctrl_dt,
        sim_dt=0.005,
        episode_length=1000,
        action_repeat=1,
        vision=False,
        impl="jax",
        naconmax=0,
        njmax=0,
        iterations=4,
        ls_iterations=8,
    )


def floor_contacts_only(spec: mujoco.MjSpec, geoms: tuple[str, ...], iterations: int, ls_iterations: int) -> None:
    """Keeps only the contacts of ``geoms`` with the ``floor`` geom, and sets the solver iterations, in ``spec``."""
    for geom in spec.geoms:
        if geom.name == "floor":
            geom.contype, geom.conaffinity = 0, 1
        elif geom.name in geoms:
            geom.contype, geom.conaffinity = 1, 0
        else:
            geom.contype, geom.conaffinity = 0, 0
    spec.option.iterations = iterations
    spec.option.ls_iterations = ls_iterations


def refresh_position_velocity(model: mjx.Model, data: mjx.Data) -> mjx.Data:
    """Recomputes the position- and velocity-dependent fields (kinematics, centres of mass, sensors) of ``data``.

    ``mjx.step`` integrates after its forward pass, so the ``xpos``/``xmat``/``sensordata`` it leaves behind
    belong to the state one sub-step earlier. dm_control's (legacy) step ends with ``mj_step1`` and so observes
    the new state; this does the same. Acceleration-stage sensors stay those of the last sub-step, as there.
    """
    data = mjx.kinematics(model, data)
    data = mjx.com_pos(model, data)
    data = mjx.sensor_pos(model, data)
    data = mjx.com_vel(model, data)
    return mjx.sensor_vel(model, data)


def initial_state(env: mjx_env.MjxEnv, data: mjx.Data, rng: jax.Array) -> mjx_env.State:
    """The reset state of ``env`` around an initial ``data`` (already through ``mjx.forward``): zero reward."""
    info = {"rng": rng}
    zero = jp.zeros(())
    return mjx_env.State(data, env._get_obs(data, info), zero, zero, {}, info)


def step_then_observe(env: mjx_env.MjxEnv, state: mjx_env.State, action: jax.Array, reward_of) -> mjx_env.State:
    """One control step of ``env`` as dm_control takes it: ``mjx.step`` sub-steps, then the kinematics refreshed
    (:func:`refresh_position_velocity`), then ``reward_of(data)`` and ``env._get_obs`` on the new state; done
    where the physics diverged (NaN)."""
    data = mjx_env.step(env.mjx_model, state.data, action, env.n_substeps)
    data = refresh_position_velocity(env.mjx_model, data)
    reward = reward_of(data)
    obs = env._get_obs(data, state.info)
    done = (jp.isnan(data.qpos).any() | jp.isnan(data.qvel).any()).astype(float)
    return mjx_env.State(data, obs, reward, done, state.metrics, state.info)


class DmControlPort(mjx_env.MjxEnv):
    """An MJX env on a compiled ``mj_model``: steps, then observes and rewards the new state as dm_control.

    Subclasses call :meth:`_set_model` in ``__init__`` (after ``super().__init__``, which sets ``self._config``)
    and implement ``reset``, ``_get_obs(data, info)`` and ``_get_reward(data)``.
    """

    def _set_model(self, mj_model: mujoco.MjModel, xml_path: str) -> None:
        self._xml_path = xml_path
        self._mj_model = mj_model
        self._mj_model.opt.timestep = self.sim_dt
        self._mjx_model = mjx.put_model(self._mj_model, impl=self._config.impl)

    def _initial_state(self, data: mjx.Data, rng: jax.Array) -> mjx_env.State:
        """The reset state around an initial ``data`` (already through ``mjx.forward``)."""
        return initial_state(self, data, rng)

    def step(self, state: mjx_env.State, action: jax.Array) -> mjx_env.State:
        return step_then_observe(self, state, action, self._get_reward)

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        raise NotImplementedError

    def _get_reward(self, data: mjx.Data) -> jax.Array:
        raise NotImplementedError

    @property
    def xml_path(self) -> str:
        return self._xml_path

    @property
    def action_size(self) -> int:
        return self._mj_model.nu

    @property
    def mj_model(self) -> mujoco.MjModel:
        return self._mj_model

    @property
    def mjx_model(self) -> mjx.Model:
        return self._mjx_model
