"""TD-MPC2's custom DMC tasks, ported to MJX (``impl='jax'``).

The official TD-MPC2 code adds these tasks to dm_control (``tdmpc2/envs/tasks``).
Most of them keep a standard DMC domain and only change the reward, so here
they subclass our port of that task (``suite.py``: same model, solver settings,
observation and initial-state distribution) and override the reward:

* ``walker-walk-backwards`` / ``walker-run-backwards``: walker's stand reward
  times a move reward for running *backwards* at 1 / 8 m/s.
* ``cheetah-run-backwards`` (8 m/s backwards), ``cheetah-run-front`` /
  ``cheetah-run-back`` (run at 6 m/s with the back / front foot up and the
  torso high), ``cheetah-jump`` (the mean of the two "stand on one foot" rewards).
* ``hopper-hop-backwards``: hopper-hop with the hopping speed mirrored.
* ``pendulum-spin``: spin the pendulum at >= 9 rad/s.
* ``cup-spin``: swing the ball around, far from the cup and fast; the ball
  starts from a random collision-free position, inside the cup 90% of the time.
* ``reacher-three-easy`` / ``reacher-three-hard``: a three-link reacher; the
  model is :data:`REACHER_THREE_XML` (ours, built from dm_control's two-link
  reacher.xml with one more link), the task is dm_control's reacher's.

Known deviations from the official code:

* The cheetah tasks keep playground's model and its 4 solver iterations (dm_control: 100) and turn on implicit
  damping, as cheetah-run does (``suite.py``: one-step dynamics then equal dm_control's); the walker, hopper, pendulum and cup tasks run on our
  dm_control ports (``suite.py``), the three-link reacher on dm_control's reacher physics. TD-MPC2 ships its own
  copies of the dm_control XMLs, which we take to be dm_control's; its three-link reacher XML is not public
  (ours is described at :data:`REACHER_THREE_XML`).
* Observations and rewards are those of the state after the step, as in
  dm_control (playground's own tasks read kinematics one sub-step stale): every task here steps as
  ``DmcTask`` (``task.py``).
* Walker observes the torso height as dm_control does (playground observes
  the torso's ``zz`` instead).
* The hopper collides every geom pair, as dm_control's (``suite.py``).
* Initial states are playground's (cheetah settles for 200 steps, as dm_control's), except for cup-spin
  where playground has no randomisation at all and we implement the official one, and the pendulum and
  walker, which are dm_control's (``suite.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jp
import mujoco
from mujoco_playground._src import mjx_env
from mujoco_playground._src import reward as rewards
from mujoco_playground._src.dm_control_suite import common, hopper, reacher

from anakin_tdmpc.envs.dmc.suite import CheetahRun, CupCatch, Hopper, Pendulum, Walker
from anakin_tdmpc.envs.dmc.task import DmcTask

_INF = float("inf")

# ----------------------------------------------------------------------------- walker


class WalkerBackwards(Walker):
    """Walker walk/run backwards: the move reward asks for ``x`` velocity <= -move_speed.

    Everything else is our dm_control walker's (``suite.Walker``: the torso's height observed, observation and
    reward of the state after the step).
    """

    def _get_move_reward(self, data, action, info, metrics):
        stand_reward = self._get_stand_reward(data, action, info, metrics)
        velocity = mjx_env.get_sensor_data(self.mj_model, data, "torso_subtreelinvel")[0]
        move_reward = rewards.tolerance(
            velocity,
            bounds=(-_INF, -self._move_speed),
            margin=self._move_speed / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        metrics["reward/move"] = move_reward
        return stand_reward * (5 * move_reward + 1) / 6


# ---------------------------------------------------------------------------- cheetah

CHEETAH_JUMP_HEIGHT = 1.2
CHEETAH_GOALS = {"run-backwards": 8.0, "run-front": 6.0, "run-back": 6.0, "jump": 0.5}
"""Goal -> move speed (official: 0.8 x, 0.6 x, 0.6 x dm_control's 10 m/s, and 0.5 m/s)."""


def _cheetah_up(height, margin_height=CHEETAH_JUMP_HEIGHT):
    return rewards.tolerance(height, bounds=(margin_height, _INF), margin=margin_height / 2)


class CheetahCustom(CheetahRun):
    """Cheetah with one of TD-MPC2's custom goals (see :data:`CHEETAH_GOALS`) on our cheetah-run (``suite.py``:
    implicit damping)."""

    def __init__(self, goal: str, config_overrides: dict[str, Any] | None = None):
        if goal not in CHEETAH_GOALS:
            raise ValueError(f"unknown cheetah goal {goal!r}")
        self._goal = goal
        self._move_speed = CHEETAH_GOALS[goal]
        super().__init__(config_overrides=config_overrides)

    def _post_init(self) -> None:
        super()._post_init()
        self._torso_id = self.mj_model.body("torso").id
        self._foot_ids = {name: self.mj_model.body(name).id for name in ("bfoot", "ffoot")}

    def _speed(self, data):
        return mjx_env.get_sensor_data(self.mj_model, data, "torso_subtreelinvel")[0]

    def _stand_one_foot(self, data, foot):
        """``foot`` is the foot that is *off* the ground."""
        height = (data.xpos[self._torso_id, 2] + data.xpos[self._foot_ids[foot], 2]) / 2
        speed_reward = rewards.tolerance(
            self._speed(data),
            bounds=(-self._move_speed, self._move_speed),
            margin=self._move_speed,
            value_at_margin=0,
            sigmoid="linear",
        )
        return (5 * _cheetah_up(height) + speed_reward) / 6

    def _run_one_foot(self, data, foot):
        torso_up = _cheetah_up(data.xpos[self._torso_id, 2])
        foot_up = _cheetah_up(data.xpos[self._foot_ids[foot], 2])
        up_reward = (3 * foot_up + 2 * torso_up) / 5
        speed_reward = rewards.tolerance(
            self._speed(data),
            bounds=(self._move_speed, _INF),
            margin=self._move_speed,
            value_at_margin=0,
            sigmoid="linear",
        )
        return up_reward * (5 * speed_reward + 1) / 6

    def _get_reward(self, data, action, info, metrics):
        del action, info, metrics
        if self._goal == "run-backwards":
            return rewards.tolerance(
                self._speed(data),
                bounds=(-_INF, -self._move_speed),
                margin=self._move_speed,
                value_at_margin=0,
                sigmoid="linear",
            )
        if self._goal == "run-front":
            return self._run_one_foot(data, "bfoot")
        if self._goal == "run-back":
            return self._run_one_foot(data, "ffoot")
        return (self._stand_one_foot(data, "bfoot") + self._stand_one_foot(data, "ffoot")) / 2


# ----------------------------------------------------------------------------- hopper

HOP_SPEED = 2.0


class HopperBackwards(Hopper):
    """Hopper hop backwards on our dm_control hopper (``suite.py``): standing x (x velocity <= -1 m/s, linear
    margin 0.5)."""

    def __init__(self, config_overrides: dict[str, Any] | None = None):
        super().__init__(hopping=True, config_overrides=config_overrides)

    def _hop_reward(self, data, action, info, metrics):
        del action, info
        standing = rewards.tolerance(self._height(data), (hopper._STAND_HEIGHT, 2))
        hopping = rewards.tolerance(
            self._speed(data),
            bounds=(-_INF, -HOP_SPEED / 2),
            margin=HOP_SPEED / 4,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        metrics["reward/standing"] = standing
        metrics["reward/hopping"] = hopping
        return standing * hopping


# --------------------------------------------------------------------------- pendulum

PENDULUM_SPIN_SPEED = 9.0


class PendulumSpin(Pendulum):
    """Pendulum spin: angular speed >= 9 rad/s (linear margin 4.5, 0.5 at the margin).

    Everything else is our dm_control pendulum's (``suite.Pendulum``: initial angle in [-pi, pi], dm_control's
    observation order, timestep and damping).
    """

    def _get_reward(self, data, action, info, metrics):
        del action, info, metrics
        return rewards.tolerance(
            jp.abs(self._angular_velocity(data)),
            bounds=(PENDULUM_SPIN_SPEED, _INF),
            margin=PENDULUM_SPIN_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )


# -------------------------------------------------------------------------------- cup

CUP_DIST_TARGET = 0.5
CUP_TARGET_SPEED = 6.0
CUP_OUT_OF_TARGET_PROB = 0.1


class CupSpin(CupCatch):
    """Ball-in-cup spin: ball far from the target and fast, never inside the cup. Its initial ball position is
    dm_control catch's, also required inside the cup unless the episode starts outside (probability 0.1)."""

    def _post_init(self) -> None:
        super()._post_init()
        self._ball_vx = self.mj_model.jnt_dofadr[self.mj_model.joint("ball_x").id]
        self._ball_vz = self.mj_model.jnt_dofadr[self.mj_model.joint("ball_z").id]

    def _ball_to_target(self, data):
        return data.site_xpos[self._target_site_id, jp.array([0, 2])] - data.xpos[self._ball_body_id, jp.array([0, 2])]

    def _in_target(self, data):
        inside = jp.abs(self._ball_to_target(data)) < self._target_size - self._ball_size
        return jp.all(inside).astype(jp.float32)

    def _accept(self, data, key):
        out_of_target = jax.random.uniform(key) < CUP_OUT_OF_TARGET_PROB  # the same draw for every try
        return (self._in_target(data) > 0) | out_of_target

    def _get_reward(self, data, action, info, metrics):
        del action, info, metrics
        dist = jp.linalg.norm(self._ball_to_target(data))
        speed = jp.linalg.norm(jp.stack([data.qvel[self._ball_vx], data.qvel[self._ball_vz]]))
        dist_reward = rewards.tolerance(
            dist, bounds=(CUP_DIST_TARGET, _INF), margin=CUP_DIST_TARGET / 2, value_at_margin=0.5, sigmoid="linear"
        )
        speed_reward = rewards.tolerance(
            speed, bounds=(CUP_TARGET_SPEED, _INF), margin=CUP_TARGET_SPEED / 2, value_at_margin=0.5, sigmoid="linear"
        )
        return (1 - self._in_target(data)) * (dist_reward + 2 * speed_reward) / 3


# ---------------------------------------------------------------------------- reacher

REACHER_THREE_XML = """
<mujoco model="three-link planar reacher">
  <include file="./common/skybox.xml"/>
  <include file="./common/visual.xml"/>
  <include file="./common/materials.xml"/>
  <option timestep="0.02">
    <flag contact="disable"/>
  </option>
  <default>
    <joint type="hinge" axis="0 0 1" damping="0.01"/>
    <motor gear=".05" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light name="light" pos="0 0 1"/>
    <camera name="fixed" pos="0 0 .75" quat="1 0 0 0"/>
    <geom name="ground" type="plane" pos="0 0 0" size=".3 .3 10" material="grid"/>
    <geom name="wall_x" type="plane" pos="-.3 0 .02" zaxis="1 0 0" size=".02 .3 .02" material="decoration"/>
    <geom name="wall_y" type="plane" pos="0 -.3 .02" zaxis="0 1 0" size=".3 .02 .02" material="decoration"/>
    <geom name="wall_neg_x" type="plane" pos=".3 0 .02" zaxis="-1 0 0" size=".02 .3 .02" material="decoration"/>
    <geom name="wall_neg_y" type="plane" pos="0 .3 .02" zaxis="0 -1 0" size=".3 .02 .02" material="decoration"/>
    <body name="arm" pos="0 0 .01">
      <joint name="shoulder"/>
      <geom name="arm" type="capsule" fromto="0 0 0 0.08 0 0" size=".01" material="self"/>
      <body name="forearm" pos=".08 0 0">
        <joint name="elbow" limited="true" range="-160 160"/>
        <geom name="forearm" type="capsule" fromto="0 0 0 0.08 0 0" size=".01" material="self"/>
        <body name="hand" pos=".08 0 0">
          <joint name="wrist" limited="true" range="-160 160"/>
          <geom name="hand" type="capsule" fromto="0 0 0 0.06 0 0" size=".01" material="self"/>
          <body name="finger" pos=".08 0 0">
            <camera name="hand" pos="0 0 .2" mode="track"/>
            <geom name="finger" type="sphere" size=".01" material="effector"/>
          </body>
        </body>
      </body>
    </body>
    <body name="target" pos="0 0 .01" mocap="true">
      <geom name="target" material="target" type="sphere" size="{target_size}"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="shoulder" joint="shoulder"/>
    <motor name="elbow" joint="elbow"/>
    <motor name="wrist" joint="wrist"/>
  </actuator>
</mujoco>
"""
"""Our three-link reacher: dm_control's reacher with the 0.12 + 0.12 m arm split into
three links of 0.08 m (same reach, 0.24 m), each extra joint limited to +-160 degrees as
dm_control's wrist, and dm_control's reacher physics: one 0.02 s step per control step, implicit joint
damping (``eulerdamp``, MuJoCo's default) and MuJoCo's default solver (100 iterations, 50 line-search steps:
the joint limits are constraints); the target is a mocap body."""


def reacher_three_xml(target_size: float) -> str:
    """The three-link reacher MJCF with a target of radius ``target_size``."""
    return REACHER_THREE_XML.format(target_size=target_size)


class ReacherThree(DmcTask, reacher.Reacher):
    """Three-link reacher (TD-MPC2's reacher-three-easy / -hard), dm_control's reacher task. The model's options
    are dm_control's reacher's already (:data:`REACHER_THREE_XML`)."""

    base_config = staticmethod(reacher.default_config)
    SIM_DT = 0.02  # dm_control's timestep: one physics step per control step

    def __init__(self, target_size: float, config_overrides: dict[str, Any] | None = None):
        mjx_env.MjxEnv.__init__(self, self.task_config(), config_overrides)  # playground's model is not built
        self._target_size = target_size
        self._model_assets = common.get_assets()
        self._set_model(mujoco.MjModel.from_xml_string(reacher_three_xml(target_size), self._model_assets),
                        "<reacher_three, anakin_tdmpc.envs.dmc.tdmpc2>")
        self._post_init()

    def _post_init(self) -> None:
        model = self.mj_model
        self._target_mocap_body_id = model.body("target").mocapid[0]
        self._finger_geom_id = model.geom("finger").id
        self._target_geom_id = model.geom("target").id
        self._radii = model.geom_size[[self._target_geom_id, self._finger_geom_id], 0].sum()
        limited = model.jnt_limited.astype(bool)
        self._joint_low = jp.where(limited, model.jnt_range[:, 0], -jp.pi)
        self._joint_high = jp.where(limited, model.jnt_range[:, 1], jp.pi)

    def reset(self, rng: jax.Array) -> mjx_env.State:
        """dm_control's reacher init: limited hinges uniform in range, others in [-pi, pi]; random target."""
        rng, joint_key, angle_key, radius_key = jax.random.split(rng, 4)
        qpos = jax.random.uniform(joint_key, (self.mjx_model.nq,), minval=self._joint_low, maxval=self._joint_high)
        data = self._make_data(qpos=qpos)
        angle = jax.random.uniform(angle_key, (), maxval=2 * jp.pi)
        radius = jax.random.uniform(radius_key, (), minval=0.05, maxval=0.2)
        xy = radius * jp.array([jp.sin(angle), jp.cos(angle)])
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id, :2].set(xy))
        return self._initial_state(data, rng)
