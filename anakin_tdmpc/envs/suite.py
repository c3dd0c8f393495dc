"""dm_control's own tasks on mujoco_playground's models, corrected to dm_control's MDP (``impl='jax'``).

mujoco_playground's DMC ports differ from dm_control in ways that change what the agent sees. Each class here
subclasses playground's env and makes the task dm_control's as the official TD-MPC2 trainer builds it
(``suite.load`` + action repeat): observation content, order and timing (read after the step), reward,
initial-state distribution and episode timing, each change named in the class. All 25 of playground's DMC tasks
are here.

Every port's numerical settings are dm_control's but the solver's iterations (:func:`put_physics`): implicit
joint damping on (``eulerdamp``, which playground's models disable), and MJX colliding every geom pair with all
its contact points, as MuJoCo does (playground caps collision detection per model). The iterations are fewer
than dm_control's where the parity tests (``tests/test_envs_custom.py``) allow it; each class names its own.
docs/tasks.md lists every change per task with the parity tests' measure of what each remaining difference
costs.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jp
import numpy as np
import mujoco
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src.dm_control_suite import (acrobot, ball_in_cup, cartpole, cheetah, common, finger, fish,
                                                      hopper, humanoid, pendulum, point_mass, reacher, swimmer, walker)

from anakin_tdmpc.envs.base import initial_state, step_then_observe


class _ObserveAfterStep:
    """Steps a playground env as dm_control does: observation and reward of the state after the step."""

    def step(self, state: mjx_env.State, action: jax.Array) -> mjx_env.State:
        # playground's rewards may write their terms into the metrics dict: a copy keeps the state's own as
        # reset made it (the wrapper carries the state through lax.scan, whose structure must not change)
        return step_then_observe(self, state, action,
                                 lambda data: self._get_reward(data, action, state.info, dict(state.metrics)))


def put_physics(env, **options) -> None:
    """Sets ``options`` (fields of MuJoCo's ``MjOption``: integrator, iterations, ...) on ``env``'s MuJoCo model,
    makes MJX collide as MuJoCo does and puts the MJX model again.

    - Implicit joint damping (``eulerdamp``: MuJoCo's and dm_control's default, disabled in playground's models)
      is turned on. It changes only joints with damping; on a model without any it stays off, since MJX would
      factorize the mass matrix once more every step for nothing (MuJoCo C skips it).
    - Playground's caps on MJX's collision detection (the ``max_geom_pairs`` / ``max_contact_points`` numerics
      of its models) are lifted: every geom pair collides with all its contact points, as in MuJoCo. (A capped
      walker kept 4 of its 5 contacts with one foot and a leg on the floor: one-step velocities 0.75 off.)
    """
    model = env._mj_model
    for name, value in options.items():
        setattr(model.opt, name, value)
    if model.dof_damping.any():
        model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    for cap in ("max_geom_pairs", "max_contact_points"):
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, cap) >= 0:
            model.numeric_data[model.numeric(cap).adr[0]] = -1
    env._mjx_model = mjx.put_model(model, impl=env._config.impl)


class Walker(_ObserveAfterStep, walker.PlanarWalker):
    """dm_control's walker stand / walk / run (``move_speed`` 0, 1, 8) (docs/tasks.md lists what changes)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        put_physics(self, iterations=10, ls_iterations=8)  # dm_control: 100 / 50

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        orientations = data.xmat[1:, 0, jp.array([0, 2])].ravel()  # each body's xx and xz
        return jp.concatenate([orientations, data.xpos[self._torso_id, 2:3], data.qvel])


class Pendulum(_ObserveAfterStep, pendulum.SwingUp):
    """dm_control's pendulum swingup (docs/tasks.md lists what changes)."""

    def __init__(self, config_overrides: dict[str, Any] | None = None):
        config = pendulum.default_config()
        config.sim_dt = 0.02  # dm_control's timestep: one physics step per control step
        super().__init__(config=config, config_overrides=config_overrides)
        put_physics(self)

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


def compile_total_mass(xml: str, assets: dict) -> mujoco.MjModel:
    """The MuJoCo model of ``xml`` with its ``<compiler settotalmass=...>`` applied the way MuJoCo now advises:
    compiled without the attribute, then ``mj_setTotalmass`` and ``mj_setConst`` (MuJoCo deprecated the
    attribute, and compiling it logs a warning to MUJOCO_LOG.TXT in the working folder). The model equals the
    one compiled with the attribute, field for field."""
    match = re.search(r'\s*settotalmass="([^"]+)"', xml)
    model = mujoco.MjModel.from_xml_string(xml.replace(match.group(0), "") if match else xml, assets)
    if match:
        mujoco.mj_setTotalmass(model, float(match.group(1)))
        mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


class CheetahModel(cheetah.Run):
    """Playground's cheetah with its model compiled by :func:`compile_total_mass` (its XML sets the total mass
    with the deprecated compiler attribute); everything else is playground's ``Run.__init__``."""

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


class CheetahRun(_ObserveAfterStep, CheetahModel):
    """dm_control's cheetah run: the reward read after the step, implicit joint damping, no collision caps
    (docs/tasks.md)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        put_physics(self)


class Cartpole(_ObserveAfterStep, cartpole.Balance):
    """dm_control's cartpole balance / swingup (sparse or not) (docs/tasks.md lists what changes)."""

    def __init__(self, swing_up: bool, sparse: bool, config_overrides: dict[str, Any] | None = None):
        super().__init__(swing_up=swing_up, sparse=sparse, config=cartpole.default_config(),
                         config_overrides=config_overrides)
        put_physics(self, integrator=mujoco.mjtIntegrator.mjINT_RK4)

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, k_pos, k_vel = jax.random.split(rng, 3)
        data = mjx_env.make_data(self.mj_model, qpos=self._reset_randomize(k_pos),
                                 qvel=0.01 * jax.random.normal(k_vel, (self.mjx_model.nv,)),
                                 impl=self.mjx_model.impl.value, naconmax=self._config.naconmax,
                                 njmax=self._config.njmax)
        return initial_state(self, mjx.forward(self.mjx_model, data), rng)


class Hopper(_ObserveAfterStep, hopper.Hopper):
    """dm_control's hopper stand / hop (docs/tasks.md lists what changes)."""

    def __init__(self, hopping: bool, config_overrides: dict[str, Any] | None = None):
        super().__init__(hopping=hopping, config=hopper.default_config(), config_overrides=config_overrides)
        put_physics(self, iterations=10, ls_iterations=8)  # dm_control: 100 / 50


class Acrobot(_ObserveAfterStep, acrobot.Balance):
    """dm_control's acrobot swingup (sparse or not) (docs/tasks.md lists what changes)."""

    def __init__(self, sparse: bool, config_overrides: dict[str, Any] | None = None):
        super().__init__(sparse=sparse, config=acrobot.default_config(), config_overrides=config_overrides)
        put_physics(self, integrator=mujoco.mjtIntegrator.mjINT_RK4)


class PointMass(_ObserveAfterStep, point_mass.PointMass):
    """dm_control's point_mass easy (docs/tasks.md lists what changes)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        put_physics(self)


MAX_INIT_TRIES = 64
"""Bound of the rejection sampling of collision-free initial states (a ``lax.while_loop``, jit-friendly); the
last draw is kept if none is accepted (not seen in cup's, finger's and humanoid's tests)."""


def _penetrating(data: mjx.Data) -> jax.Array:
    """Whether any contact of an MJX (jax impl) data has a negative distance (dm_control: ncon > 0)."""
    return jp.any(data._impl.contact.dist < 0)  # noqa: SLF001 - mjx keeps contacts on the impl


def _draw_until_accepted(attempt, key: jax.Array) -> mjx.Data:
    """The first ``data`` of ``attempt(key) -> (data, accepted)`` that is accepted, drawing with fresh keys, at
    most :data:`MAX_INIT_TRIES` times (dm_control's rejection loops for collision-free initial states)."""

    def draw_again(carry):
        key, _, tries, _ = carry
        key, sub = jax.random.split(key)
        data, ok = attempt(sub)
        return key, ok, tries + 1, data

    first, ok = attempt(key)
    _, _, _, data = jax.lax.while_loop(lambda c: ~c[1] & (c[2] < MAX_INIT_TRIES), draw_again,
                                       (jax.random.fold_in(key, 1), ok, 1, first))
    return data


class CupCatch(_ObserveAfterStep, ball_in_cup.BallInCup):
    """dm_control's ball-in-cup catch (docs/tasks.md lists what changes). Subclasses may accept fewer initial
    positions (`_accept`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        put_physics(self)

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
        base = mjx_env.make_data(self.mj_model, impl=self.mjx_model.impl.value, naconmax=self._config.naconmax,
                                 njmax=self._config.njmax)

        def attempt(key):
            kx, kz = jax.random.split(key)
            qpos = base.qpos.at[self._ball_x].set(jax.random.uniform(kx, (), minval=-0.2, maxval=0.2))
            qpos = qpos.at[self._ball_z].set(jax.random.uniform(kz, (), minval=0.2, maxval=0.5))
            data = mjx.forward(self.mjx_model, base.replace(qpos=qpos))
            return data, ~_penetrating(data) & self._accept(data, accept_key)

        return initial_state(self, _draw_until_accepted(attempt, loop_key), rng)


class _Finger(_ObserveAfterStep):
    """dm_control's finger physics and initial joint angles on playground's finger (``Spin`` or ``Turn``)."""

    def __init__(self, *args, config_overrides: dict[str, Any] | None = None):
        config = finger.default_config()
        config.sim_dt = 0.01  # dm_control's timestep: 2 physics steps per 20 ms control step
        super().__init__(*args, config=config, config_overrides=config_overrides)
        # 10 / 8 solver iterations: dm_control 200 / 50; equal within 1e-3 (docs/tasks.md)
        put_physics(self, integrator=mujoco.mjtIntegrator.mjINT_EULER, cone=mujoco.mjtCone.mjCONE_ELLIPTIC,
                    iterations=10, ls_iterations=8)

    def _free_joint_angles(self, base: mjx.Data, key: jax.Array) -> mjx.Data:
        """``base`` with random joint angles (the finger's uniform in their ranges, the spinner's in [-pi, pi],
        independent draws) that put no two geoms in contact, through ``mjx.forward``."""

        def attempt(key):
            finger_key, hinge_key = jax.random.split(key)
            qpos = jp.concatenate([jax.random.uniform(finger_key, (2,), minval=self._lowers, maxval=self._uppers),
                                   jax.random.uniform(hinge_key, (1,), minval=-jp.pi, maxval=jp.pi)])
            data = mjx.forward(self.mjx_model, base.replace(qpos=qpos))
            return data, ~_penetrating(data)

        return _draw_until_accepted(attempt, key)

    def _base_data(self) -> mjx.Data:
        return mjx_env.make_data(self.mj_model, impl=self.mjx_model.impl.value, naconmax=self._config.naconmax,
                                 njmax=self._config.njmax)


class FingerSpin(_Finger, finger.Spin):
    """dm_control's finger spin (docs/tasks.md lists what changes)."""

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        return initial_state(self, self._free_joint_angles(self._base_data(), key), rng)


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
        base = self._base_data()
        base = base.replace(mocap_pos=base.mocap_pos.at[self._target_mocap_body_id, jp.array([0, 2])].set(target))
        return initial_state(self, self._free_joint_angles(base, joints_key), rng)


class Reacher(_ObserveAfterStep, reacher.Reacher):
    """dm_control's reacher easy / hard (docs/tasks.md lists what changes)."""

    def __init__(self, target_size: float, config_overrides: dict[str, Any] | None = None):
        config = reacher.default_config()
        config.sim_dt = 0.02  # dm_control's timestep: one physics step per control step
        super().__init__(target_size, config=config, config_overrides=config_overrides)
        put_physics(self, iterations=100, ls_iterations=50)  # dm_control's defaults

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, shoulder_key, wrist_key, angle_key, radius_key = jax.random.split(rng, 5)
        qpos = jp.zeros(self.mjx_model.nq)
        qpos = qpos.at[self._shoulder_qposadr].set(jax.random.uniform(shoulder_key, (), minval=-jp.pi, maxval=jp.pi))
        qpos = qpos.at[self._wrist_qposadr].set(
            jax.random.uniform(wrist_key, (), minval=self._wrist_lower, maxval=self._wrist_upper))
        data = mjx_env.make_data(self.mj_model, qpos=qpos, impl=self.mjx_model.impl.value,
                                 naconmax=self._config.naconmax, njmax=self._config.njmax)
        angle = jax.random.uniform(angle_key, ()) * 2 * jp.pi
        radius = jax.random.uniform(radius_key, (), minval=0.05, maxval=0.2)
        target = radius * jp.array([jp.sin(angle), jp.cos(angle)])
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id, :2].set(target))
        return initial_state(self, mjx.forward(self.mjx_model, data), rng)


class Swimmer(_ObserveAfterStep, swimmer.Swim):
    """dm_control's swimmer (``n_links`` 6: swimmer-swimmer6) (docs/tasks.md lists what changes)."""

    def __init__(self, n_links: int, config_overrides: dict[str, Any] | None = None):
        config = swimmer.default_config()
        config.sim_dt = 0.002  # dm_control's timestep: 15 physics steps per 30 ms control step
        super().__init__(n_links, config=config, config_overrides=config_overrides)

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, heading_key, joints_key, close_key, target_key = jax.random.split(rng, 5)
        qpos = jp.zeros(self.mjx_model.nq)
        qpos = qpos.at[2].set(jax.random.uniform(heading_key, (), minval=-jp.pi, maxval=jp.pi))
        qpos = qpos.at[3:].set(jax.random.uniform(joints_key, (self.mjx_model.nq - 3,), minval=self._lowers,
                                                  maxval=self._uppers))
        data = mjx_env.make_data(self.mj_model, qpos=qpos, impl=self.mjx_model.impl.value,
                                 naconmax=self._config.naconmax, njmax=self._config.njmax)
        box = jp.where(jax.random.bernoulli(close_key, 0.2), 0.3, 2.0)  # a close target one time in five
        target = jax.random.uniform(target_key, (2,), minval=-box, maxval=box)
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id, :2].set(target))
        return initial_state(self, mjx.forward(self.mjx_model, data), rng)


class FishSwim(_ObserveAfterStep, fish.Swim):
    """dm_control's fish swim (docs/tasks.md lists what changes)."""

    def __init__(self, config_overrides: dict[str, Any] | None = None):
        config = fish.default_config()
        config.sim_dt = 0.004  # dm_control's timestep: 10 physics steps per 40 ms control step
        super().__init__(config=config, config_overrides=config_overrides)
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
        data = mjx_env.make_data(self.mj_model, qpos=qpos, impl=self.mjx_model.impl.value,
                                 naconmax=self._config.naconmax, njmax=self._config.njmax)
        target = jax.random.uniform(target_key, (3,), minval=self._min_xyz, maxval=self._max_xyz)
        data = data.replace(mocap_pos=data.mocap_pos.at[self._target_mocap_body_id].set(target))
        return initial_state(self, mjx.forward(self.mjx_model, data), rng)

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        to_target = (data.geom_xpos[self._target_geom_id] - data.geom_xpos[self._mouth_geom_id]) \
            @ data.geom_xmat[self._mouth_geom_id]
        return jp.concatenate([data.qpos[self._joints_qposadr], data.xmat[self._torso_body_id, 2, 2:3], to_target,
                               data.qvel])


class Humanoid(_ObserveAfterStep, humanoid.Humanoid):
    """dm_control's humanoid stand / walk / run (``move_speed`` 0, 1, 10) (docs/tasks.md lists what changes)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        put_physics(self, iterations=10, ls_iterations=8)  # dm_control: 100 / 50 (docs/tasks.md)

    def _post_init(self) -> None:
        super()._post_init()
        model = self.mj_model
        hinges = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
        assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE and model.jnt_limited[hinges].all()
        self._hinge_qposadr = model.jnt_qposadr[hinges]
        self._hinge_low, self._hinge_high = model.jnt_range[hinges, 0], model.jnt_range[hinges, 1]

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, key = jax.random.split(rng)
        base = mjx_env.make_data(self.mj_model, impl=self.mjx_model.impl.value, naconmax=self._config.naconmax,
                                 njmax=self._config.njmax)

        def attempt(key):
            quat_key, joints_key = jax.random.split(key)
            quat = jax.random.uniform(quat_key, (4,))  # dm_control: rand(4) normalised (its code says so)
            qpos = base.qpos.at[3:7].set(quat / jp.linalg.norm(quat))  # the root's position stays the model's
            qpos = qpos.at[self._hinge_qposadr].set(jax.random.uniform(
                joints_key, (len(self._hinge_qposadr),), minval=self._hinge_low, maxval=self._hinge_high))
            data = mjx.forward(self.mjx_model, base.replace(qpos=qpos))
            return data, ~_penetrating(data)

        return initial_state(self, _draw_until_accepted(attempt, key), rng)


def _humanoid(move_speed: float, overrides: dict[str, Any] | None) -> Humanoid:
    return Humanoid(move_speed=move_speed, config=humanoid.default_config(), config_overrides=overrides)


def _walker(move_speed: float, overrides: dict[str, Any] | None) -> Walker:
    return Walker(move_speed=move_speed, config=walker.default_config(), config_overrides=overrides)


CUSTOM_TASKS: dict[str, Any] = {
    "walker-stand": lambda o: _walker(0.0, o),
    "walker-walk": lambda o: _walker(walker.WALK_SPEED, o),
    "walker-run": lambda o: _walker(walker.RUN_SPEED, o),
    "pendulum-swingup": lambda o: Pendulum(o),
    "cheetah-run": lambda o: CheetahRun(config=cheetah.default_config(), config_overrides=o),
    "cartpole-balance": lambda o: Cartpole(False, False, o),
    "cartpole-balance-sparse": lambda o: Cartpole(False, True, o),
    "cartpole-swingup": lambda o: Cartpole(True, False, o),
    "cartpole-swingup-sparse": lambda o: Cartpole(True, True, o),
    "cup-catch": lambda o: CupCatch(config=ball_in_cup.default_config(), config_overrides=o),
    "acrobot-swingup": lambda o: Acrobot(False, o),
    "acrobot-swingup-sparse": lambda o: Acrobot(True, o),
    "point_mass-easy": lambda o: PointMass(config=point_mass.default_config(), config_overrides=o),
    "reacher-easy": lambda o: Reacher(reacher.BIG_TARGET, o),
    "reacher-hard": lambda o: Reacher(reacher.SMALL_TARGET, o),
    "hopper-stand": lambda o: Hopper(False, o),
    "hopper-hop": lambda o: Hopper(True, o),
    "swimmer-swimmer6": lambda o: Swimmer(6, o),
    "fish-swim": lambda o: FishSwim(o),
    "humanoid-stand": lambda o: _humanoid(0.0, o),
    "humanoid-walk": lambda o: _humanoid(humanoid.WALK_SPEED, o),
    "humanoid-run": lambda o: _humanoid(humanoid.RUN_SPEED, o),
    "finger-spin": lambda o: FingerSpin(config_overrides=o),
    "finger-turn-easy": lambda o: FingerTurn(finger.EASY_TARGET_SIZE, config_overrides=o),
    "finger-turn-hard": lambda o: FingerTurn(finger.HARD_TARGET_SIZE, config_overrides=o),
}
"""Canonical task name -> ``constructor(config_overrides) -> MjxEnv`` of the corrected dm_control tasks."""
