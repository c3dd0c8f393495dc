"""Your own MJX env as a task: a cart on a rail that must stop over a target (a worked example).

    python -m anakin_tdmpc.run --task examples.slider:make_env       # from the repository root

or from Python:

    from anakin_tdmpc import Args, envs, train
    from examples.slider import make_env
    envs.register("slider", make_env)
    train(Args(task="slider"))

The env follows the protocol of `anakin_tdmpc.envs.register` (mujoco_playground's MjxEnv form): ONE
environment, `reset(rng) -> state`, `step(state, action) -> state`, a state with `obs`, `reward` and `done`,
and `observation_size`, `action_size`, `dt`. Its `mj_model` gives the actuator's control range (the agent's
[-1, 1] is mapped onto it) and the eval videos. The trainer batches, repeats actions, truncates episodes and
resets envs itself.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

XML = """
<mujoco model="slider">
  <option timestep="0.01"/>
  <worldbody>
    <light pos="0 0 3"/>
    <camera name="side" pos="0 -3 1" xyaxes="1 0 0 0 0.3 1"/>
    <geom name="floor" type="plane" size="2 1 .1" rgba=".3 .3 .35 1" contype="0" conaffinity="0"/>
    <body name="cart" pos="0 0 .1">
      <joint name="slide" type="slide" axis="1 0 0" range="-1.5 1.5" damping="0.2"/>
      <geom name="cart" type="box" size=".1 .1 .1" mass="1" rgba=".8 .45 .2 1" contype="0" conaffinity="0"/>
    </body>
    <body name="target" mocap="true" pos="0 0 .01">
      <geom type="cylinder" size=".06 .005" rgba=".2 .8 .3 1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="slide" gear="4" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


class State(NamedTuple):
    data: mjx.Data  # the MJX physics (state.data.qpos is what eval videos render)
    obs: jax.Array  # [3] position, velocity, target position
    reward: jax.Array  # [] float32
    done: jax.Array  # [] float32: 1 where the physics diverged


class Slider:
    observation_size = 3
    action_size = 1

    def __init__(self):
        self._mj_model = mujoco.MjModel.from_xml_string(XML)
        self._mjx_model = mjx.put_model(self._mj_model)
        self.dt = float(self._mj_model.opt.timestep)

    @property
    def mj_model(self) -> mujoco.MjModel:
        return self._mj_model

    def reset(self, rng: jax.Array) -> State:
        k_pos, k_target = jax.random.split(rng)
        data = mjx.make_data(self._mjx_model)
        qpos = jax.random.uniform(k_pos, (1,), minval=-1.0, maxval=1.0)
        target = jax.random.uniform(k_target, (), minval=-1.0, maxval=1.0)
        data = data.replace(qpos=qpos, mocap_pos=data.mocap_pos.at[0, 0].set(target))
        data = mjx.forward(self._mjx_model, data)
        return State(data, self._obs(data), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

    def step(self, state: State, action: jax.Array) -> State:
        data = mjx.step(self._mjx_model, state.data.replace(ctrl=action))
        distance = jnp.abs(data.qpos[0] - data.mocap_pos[0, 0])
        # 1 when over the target and nearly still, falling smoothly with distance and speed
        reward = jnp.exp(-4.0 * distance**2) * (1.0 - 0.5 * jnp.tanh(jnp.abs(data.qvel[0])))
        done = (~jnp.all(jnp.isfinite(data.qpos))).astype(jnp.float32)
        return State(data, self._obs(data), reward.astype(jnp.float32), done)

    @staticmethod
    def _obs(data: mjx.Data) -> jax.Array:
        return jnp.stack([data.qpos[0], data.qvel[0], data.mocap_pos[0, 0]]).astype(jnp.float32)


def make_env() -> Slider:
    return Slider()
