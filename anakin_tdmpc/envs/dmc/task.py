"""The one base of our dm_control tasks on MJX models: :class:`DmcTask`.

Every DMC task of the project is a subclass (dm_control's suite tasks on playground's models in ``suite.py``,
TD-MPC2's extra tasks in ``tdmpc2.py``, dm_control's quadruped and dog in ``quadruped.py`` / ``dog.py``). The
base holds what they all do alike; a subclass says only what differs (its config, timestep, physics options,
initial-state distribution, observation and reward).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jp
import mujoco
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src import mjx_env

from anakin_tdmpc.envs.dmc.physics import draw_until_accepted, penetrating, put_physics, refresh_position_velocity


def port_config(ctrl_dt: float) -> config_dict.ConfigDict:
    """Default config of a task on a model of our own: dm_control's 5 ms timestep, 1000 control steps, 4 / 8
    solver iterations."""
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


class DmcTask(mjx_env.MjxEnv):
    """dm_control's task on an MJX model: steps, then observes and rewards the new state, as dm_control does.

    A subclass (first in the bases, before a playground env it corrects, if any) sets:

    * ``base_config``: the function returning its default config (playground's ``default_config``);
    * ``SIM_DT``: dm_control's physics timestep where the config's differs (``None``: keep it);
    * ``PHYSICS``: MuJoCo options given to :func:`~anakin_tdmpc.envs.dmc.physics.put_physics` after the model is
      built (``None``: the model's options stay as they are);

    and implements ``reset`` (with :meth:`_make_data`, :meth:`_collision_free` and :meth:`_initial_state`),
    ``_get_obs(data, info)`` and ``_get_reward(data, action, info, metrics)``. A task on a model of its own builds
    it in ``__init__`` and hands it to :meth:`_set_model`.
    """

    base_config: Callable[[], config_dict.ConfigDict]
    SIM_DT: float | None = None
    PHYSICS: dict[str, Any] | None = None

    def __init__(self, *args: Any, config_overrides: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, config=self.task_config(), config_overrides=config_overrides, **kwargs)
        if self.PHYSICS is not None:
            put_physics(self, **self.PHYSICS)

    def task_config(self) -> config_dict.ConfigDict:
        """The default config with dm_control's timestep (``SIM_DT``)."""
        config = self.base_config()
        if self.SIM_DT is not None:
            config.sim_dt = self.SIM_DT
        return config

    def _set_model(self, mj_model: mujoco.MjModel, xml_path: str) -> None:
        """Makes ``mj_model`` (at this task's timestep) the task's model, and puts its MJX copy."""
        self._xml_path = xml_path
        self._mj_model = mj_model
        self._mj_model.opt.timestep = self.sim_dt
        self._mjx_model = mjx.put_model(self._mj_model, impl=self._config.impl)

    # ------------------------------------------------------------------ reset

    def _make_data(self, **fields: jax.Array) -> mjx.Data:
        """A fresh ``mjx.Data`` of the model with ``fields`` (``qpos``, ``qvel``, ``act``, ...) set."""
        return mjx_env.make_data(self.mj_model, impl=self.mjx_model.impl.value, naconmax=self._config.naconmax,
                                 njmax=self._config.njmax, **fields)

    def _collision_free(self, base: mjx.Data, draw_qpos, key: jax.Array, accept=None) -> mjx.Data:
        """``base`` with ``qpos = draw_qpos(key)``, drawn again with fresh keys while two geoms penetrate (or
        ``accept(data)`` is false), through ``mjx.forward``: dm_control's rejection loops for initial states."""

        def attempt(key):
            data = mjx.forward(self.mjx_model, base.replace(qpos=draw_qpos(key)))
            ok = ~penetrating(data)
            return data, ok if accept is None else ok & accept(data)

        return draw_until_accepted(attempt, key)

    def _initial_state(self, data: mjx.Data, rng: jax.Array, forwarded: bool = False) -> mjx_env.State:
        """The reset state around an initial ``data`` (put through ``mjx.forward`` unless ``forwarded``)."""
        if not forwarded:
            data = mjx.forward(self.mjx_model, data)
        info = {"rng": rng}
        zero = jp.zeros(())
        return mjx_env.State(data, self._get_obs(data, info), zero, zero, {}, info)

    # ------------------------------------------------------------------- step

    def step(self, state: mjx_env.State, action: jax.Array) -> mjx_env.State:
        """One control step as dm_control takes it: ``mjx.step`` sub-steps, then the kinematics refreshed
        (:func:`~anakin_tdmpc.envs.dmc.physics.refresh_position_velocity`), then reward and observation of the
        new state; done where the physics diverged (NaN)."""
        data = mjx_env.step(self.mjx_model, state.data, action, self.n_substeps)
        data = refresh_position_velocity(self.mjx_model, data)
        # playground's rewards may write their terms into the metrics dict: a copy keeps the state's own as
        # reset made it (the wrapper carries the state through lax.scan, whose structure must not change)
        reward = self._get_reward(data, action, state.info, dict(state.metrics))
        obs = self._get_obs(data, state.info)
        done = (jp.isnan(data.qpos).any() | jp.isnan(data.qvel).any()).astype(float)
        return mjx_env.State(data, obs, reward, done, state.metrics, state.info)

    # ------------------------------------------------------------ properties

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
