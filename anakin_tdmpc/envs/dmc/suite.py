"""dm_control's own tasks on mujoco_playground's models, corrected to dm_control's MDP (``impl='jax'``).

mujoco_playground's DMC ports differ from dm_control in ways that change what the agent sees. Each class here
subclasses playground's env and makes the task dm_control's as the official TD-MPC2 trainer builds it
(``suite.load`` + action repeat): observation content, order and timing (read after the step), reward,
initial-state distribution and episode timing, each change named in the class. All 25 of playground's DMC tasks
are here.

Every port's numerical settings are dm_control's but the solver's iterations (``PHYSICS``: see
:func:`~anakin_tdmpc.envs.dmc.physics.put_physics`): implicit
joint damping on (``eulerdamp``, which playground's models disable), and MJX colliding every geom pair with all
its contact points, as MuJoCo does (playground caps collision detection per model). The iterations are fewer
than dm_control's where the parity tests (``tests/test_envs_custom.py``) allow it; each class names its own.
docs/tasks.md lists every change per task with the parity tests' measure of what each remaining difference
costs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jp
import numpy as np
import mujoco
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src.dm_control_suite import (acrobot, ball_in_cup, cartpole, cheetah, common, finger, fish,
                                                      hopper, humanoid, pendulum, point_mass, reacher, swimmer, walker)

from anakin_tdmpc.envs.dmc.physics import compile_total_mass, put_physics
from anakin_tdmpc.envs.dmc.task import DmcTask

_DM_CONTROL_SOLVER = {"iterations": 100, "ls_iterations": 50}  # MuJoCo's defaults, which dm_control keeps
_FEWER_ITERATIONS = {"iterations": 10, "ls_iterations": 8}  # dm_control: 100 / 50 (docs/tasks.md)
_RK4 = {"integrator": mujoco.mjtIntegrator.mjINT_RK4}


class Walker(DmcTask, walker.PlanarWalker):
    """dm_control's walker stand / walk / run (``move_speed`` 0, 1, 8) (docs/tasks.md lists what changes)."""

    base_config = staticmethod(walker.default_config)
    PHYSICS = _FEWER_ITERATIONS

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        orientations = data.xmat[1:, 0, jp.array([0, 2])].ravel()  # each body's xx and xz
        return jp.concatenate([orientations, data.xpos[self._torso_id, 2:3], data.qvel])


class Pendulum(DmcTask, pendulum.SwingUp):
    """dm_control's pendulum swingup (docs/tasks.md lists what changes)."""

    base_config = staticmethod(pendulum.default_config)
    SIM_DT = 0.02  # dm_control's timestep: one physics step per control step
    PHYSICS = {}

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        qpos = jp.zeros(self.mjx_model.nq).at[self._hinge_qposadr].set(
            jax.random.uniform(key, minval=-jp.pi, maxval=jp.pi))
        return self._initial_state(self._make_data(qpos=qpos), rng)

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        xz, zz = self._pole_orientation(data)
        return jp.stack([zz, xz, self._angular_velocity(data)])


class CheetahModel(cheetah.Run):
    """Playground's cheetah with its model compiled by :func:`~anakin_tdmpc.envs.dmc.physics.compile_total_mass`
    (its XML sets the total mass with the deprecated compiler attribute); everything else is playground's
    ``Run.__init__``."""

    def __init__(self, config=None, config_overrides=None):
        mjx_env.MjxEnv.__init__(self, config or cheetah.default_config(), config_overrides)
        if self._config.vision:
            raise NotImplementedError(f"Vision not implemented for {self.__class__.__name__}.")
        self._xml_path = cheetah._XML_PATH.as_posix()
        self._model_assets = common.get_assets()
        self._mj_model = compile_total_mass(cheetah._XML_PATH.read_text(), self._model_assets)
        self._mj_model.opt.timestep = self.sim_dt
        self._mjx_model = mjx.put_model(self._mj_model, impl=self._config.impl)
        self._post_init()


class CheetahRun(DmcTask, CheetahModel):
    """dm_control's cheetah run: the reward read after the step, implicit joint damping, no collision caps
    (docs/tasks.md)."""

    base_config = staticmethod(cheetah.default_config)
    PHYSICS = {}


class Cartpole(DmcTask, cartpole.Balance):
    """dm_control's cartpole balance / swingup (sparse or not) (docs/tasks.md lists what changes)."""

    base_config = staticmethod(cartpole.default_config)
    PHYSICS = _RK4

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, k_pos, k_vel = jax.random.split(rng, 3)
        data = self._make_data(qpos=self._reset_randomize(k_pos),
                               qvel=0.01 * jax.random.normal(k_vel, (self.mjx_model.nv,)))
        return self._initial_state(data, rng)


class Hopper(DmcTask, hopper.Hopper):
    """dm_control's hopper stand / hop (docs/tasks.md lists what changes)."""

    base_config = staticmethod(hopper.default_config)
    PHYSICS = _FEWER_ITERATIONS


class Acrobot(DmcTask, acrobot.Balance):
    """dm_control's acrobot swingup (sparse or not) (docs/tasks.md lists what changes)."""

    base_config = staticmethod(acrobot.default_config)
    PHYSICS = _RK4


class PointMass(DmcTask, point_mass.PointMass):
    """dm_control's point_mass easy (docs/tasks.md lists what changes)."""

    base_config = staticmethod(point_mass.default_config)
    PHYSICS = {}


class CupCatch(DmcTask, ball_in_cup.BallInCup):
    """dm_control's ball-in-cup catch (docs/tasks.md lists what changes). Subclasses may accept fewer initial
    positions (`_accept`)."""

    base_config = staticmethod(ball_in_cup.default_config)
    PHYSICS = {}

    def _post_init(self) -> None:
        super()._post_init()
        self._ball_x = self.mj_model.jnt_qposadr[self.mj_model.joint("ball_x").id]
        self._ball_z = self.mj_model.jnt_qposadr[self.mj_model.joint("ball_z").id]

    def _accept(self, data: mjx.Data, key: jax.Array) -> jax.Array:
        """Whether a collision-free initial ball position may start the episode (`key`: one per reset)."""
        del data, key
        return jp.bool_(True)

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, accept_key, loop_key = jax.random.split(rng, 3)
        base = self._make_data()

        def ball_position(key):
            kx, kz = jax.random.split(key)
            qpos = base.qpos.at[self._ball_x].set(jax.random.uniform(kx, (), minval=-0.2, maxval=0.2))
            return qpos.at[self._ball_z].set(jax.random.uniform(kz, (), minval=0.2, maxval=0.5))

        data = self._collision_free(base, ball_position, loop_key, lambda data: self._accept(data, accept_key))
        return self._initial_state(data, rng, forwarded=True)


class _Finger(DmcTask):
    """dm_control's finger physics and initial joint angles on playground's finger (``Spin`` or ``Turn``)."""

    base_config = staticmethod(finger.default_config)
    SIM_DT = 0.01  # dm_control's timestep: 2 physics steps per 20 ms control step
    # 10 / 8 solver iterations: dm_control 200 / 50; equal within 1e-3 (docs/tasks.md)
    PHYSICS = {"integrator": mujoco.mjtIntegrator.mjINT_EULER, "cone": mujoco.mjtCone.mjCONE_ELLIPTIC,
               **_FEWER_ITERATIONS}

    def _free_joint_angles(self, base: mjx.Data, key: jax.Array) -> mjx.Data:
        """``base`` with random joint angles (the finger's uniform in their ranges, the spinner's in [-pi, pi],
        independent draws) that put no two geoms in contact, through ``mjx.forward``."""

        def joint_angles(key):
            finger_key, hinge_key = jax.random.split(key)
            return jp.concatenate([jax.random.uniform(finger_key, (2,), minval=self._lowers, maxval=self._uppers),
                                   jax.random.uniform(hinge_key, (1,), minval=-jp.pi, maxval=jp.pi)])

        return self._collision_free(base, joint_angles, key)


class FingerSpin(_Finger, finger.Spin):
    """dm_control's finger spin (docs/tasks.md lists what changes)."""

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        return self._initial_state(self._free_joint_angles(self._make_data(), key), rng, forwarded=True)


class FingerTurn(_Finger, finger.Turn):
    """dm_control's finger turn easy / hard (``target_radius``) (docs/tasks.md lists what changes)."""

    def _post_init(self) -> None:
        super()._post_init()
        data = mujoco.MjData(self.mj_model)
        mujoco.mj_kinematics(self.mj_model, data)
        self._hinge_anchor = data.xanchor[self._hinge_joint_id, [0, 2]].copy()  # fixed: the spinner only turns

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, angle_key, joints_key = jax.random.split(rng, 3)
        angle = jax.random.uniform(angle_key, (), minval=-jp.pi, maxval=jp.pi)
        target = self._hinge_anchor + self._radius * jp.stack([jp.sin(angle), jp.cos(angle)])
        base = self._make_data()
        base = base.replace(mocap_pos=base.mocap_pos.at[self._target_mocap_body_id, jp.array([0, 2])].set(target))
        return self._initial_state(self._free_joint_angles(base, joints_key), rng, forwarded=True)


class Reacher(DmcTask, reacher.Reacher):
    """dm_control's reacher easy / hard (docs/tasks.md lists what changes)."""

    base_config = staticmethod(reacher.default_config)
    SIM_DT = 0.02  # dm_control's timestep: one physics step per control step
    PHYSICS = _DM_CONTROL_SOLVER

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, shoulder_key, wrist_key, angle_key, radius_key = jax.random.split(rng, 5)
        qpos = jp.zeros(self.mjx_model.nq)
        qpos = qpos.at[self._shoulder_qposadr].set(jax.random.uniform(shoulder_key, (), minval=-jp.pi, maxval=jp.pi))
        qpos = qpos.at[self._wrist_qposadr].set(
            jax.random.uniform(wrist_key, (), minval=self._wrist_lower, maxval=self._wrist_upper))
        data = self._make_data(qpos=qpos)
        angle = jax.random.uniform(angle_key, ()) * 2 * jp.pi
        radius = jax.random.uniform(radius_key, (), minval=0.05, maxval=0.2)
        target = radius * jp.array([jp.sin(angle), jp.cos(angle)])
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id, :2].set(target))
        return self._initial_state(data, rng)


class Swimmer(DmcTask, swimmer.Swim):
    """dm_control's swimmer (``n_links`` 6: swimmer-swimmer6) (docs/tasks.md lists what changes)."""

    base_config = staticmethod(swimmer.default_config)
    SIM_DT = 0.002  # dm_control's timestep: 15 physics steps per 30 ms control step

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, heading_key, joints_key, close_key, target_key = jax.random.split(rng, 5)
        qpos = jp.zeros(self.mjx_model.nq)
        qpos = qpos.at[2].set(jax.random.uniform(heading_key, (), minval=-jp.pi, maxval=jp.pi))
        qpos = qpos.at[3:].set(jax.random.uniform(joints_key, (self.mjx_model.nq - 3,), minval=self._lowers,
                                                  maxval=self._uppers))
        data = self._make_data(qpos=qpos)
        box = jp.where(jax.random.bernoulli(close_key, 0.2), 0.3, 2.0)  # a close target one time in five
        target = jax.random.uniform(target_key, (2,), minval=-box, maxval=box)
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id, :2].set(target))
        return self._initial_state(data, rng)


class FishSwim(DmcTask, fish.Swim):
    """dm_control's fish swim (docs/tasks.md lists what changes)."""

    base_config = staticmethod(fish.default_config)
    SIM_DT = 0.004  # dm_control's timestep: 10 physics steps per 40 ms control step

    def __init__(self, config_overrides: dict[str, Any] | None = None):
        super().__init__(config_overrides=config_overrides)
        spec = mujoco.MjSpec.from_string(fish._XML_PATH.read_text(), common.get_assets())  # noqa: SLF001
        for geom in spec.geoms:
            if geom.name == "torso_massive":  # dm_control's box (playground: a sphere of radius 0.03)
                geom.type = mujoco.mjtGeom.mjGEOM_BOX
                geom.size = [0.002, 0.06, 0.03]
                geom.contype = geom.conaffinity = 0  # MJX has no box-ellipsoid collision; contacts are off anyway
        self._mj_model = spec.compile()
        put_physics(self, timestep=self.sim_dt)
        self._post_init()

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, quat_key, joints_key, target_key = jax.random.split(rng, 4)
        quat = jax.random.normal(quat_key, (4,))
        qpos = jp.asarray(self.mj_model.qpos0)  # the torso at (0, 0, 0.1), as dm_control's (playground: z = 0)
        qpos = qpos.at[3:7].set(quat / jp.linalg.norm(quat))
        qpos = qpos.at[self._joints_qposadr].set(
            jax.random.uniform(joints_key, (len(self._joints_qposadr),), minval=-0.2, maxval=0.2))
        data = self._make_data(qpos=qpos)
        target = jax.random.uniform(target_key, (3,), minval=self._min_xyz, maxval=self._max_xyz)
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id].set(target))
        return self._initial_state(data, rng)

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        to_target = (data.geom_xpos[self._target_geom_id] - data.geom_xpos[self._mouth_geom_id]) \
            @ data.geom_xmat[self._mouth_geom_id]
        return jp.concatenate([data.qpos[self._joints_qposadr], data.xmat[self._torso_body_id, 2, 2:3], to_target,
                               data.qvel])


class Humanoid(DmcTask, humanoid.Humanoid):
    """dm_control's humanoid stand / walk / run (``move_speed`` 0, 1, 10) (docs/tasks.md lists what changes)."""

    base_config = staticmethod(humanoid.default_config)
    PHYSICS = _FEWER_ITERATIONS

    def _post_init(self) -> None:
        super()._post_init()
        model = self.mj_model
        hinges = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
        assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE and model.jnt_limited[hinges].all()
        self._hinge_qposadr = model.jnt_qposadr[hinges]
        self._hinge_low, self._hinge_high = model.jnt_range[hinges, 0], model.jnt_range[hinges, 1]

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        base = self._make_data()

        def pose(key):
            quat_key, joints_key = jax.random.split(key)
            quat = jax.random.uniform(quat_key, (4,))  # dm_control: rand(4) normalised (its code says so)
            qpos = base.qpos.at[3:7].set(quat / jp.linalg.norm(quat))  # the root's position stays the model's
            return qpos.at[self._hinge_qposadr].set(jax.random.uniform(
                joints_key, (len(self._hinge_qposadr),), minval=self._hinge_low, maxval=self._hinge_high))

        return self._initial_state(self._collision_free(base, pose, key), rng, forwarded=True)
