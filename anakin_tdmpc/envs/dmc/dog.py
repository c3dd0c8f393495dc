"""dm_control's dog-stand, dog-walk, dog-trot and dog-run, ported to MJX (``impl='jax'``).

The model is dm_control's own ``dog.xml`` with its mesh and skin assets, read at run
time from the installed ``dm-control`` package through
``dm_control.suite.dog.get_model_and_assets`` (the call its stand/walk/trot/run make:
floor of ``15 x speed`` m, no ball, target, walls or ball/head cameras). Changes
made on load, for MJX and for speed on CPU:

1. Contacts: only geom-vs-floor pairs among :data:`FLOOR_CONTACT_GEOMS` are kept
   (torso and pelvis, the head, and every collision capsule/box from the knees
   and elbows down), via ``contype``/``conaffinity``. dm_control also collides
   the upper legs and arms, the spine, neck and tail spheres/capsules, the
   teeth (condim 6) and limbs with each other: 5557 candidate pairs, which MJX
   (it evaluates every candidate pair every step) cannot afford; with this
   filter there are 26.
2. Solver: ``iterations=4``, ``ls_iterations=8`` (dm_control: MuJoCo's defaults
   of 100 / 50), as playground does for its DMC ports; ``noslip_iterations=0``
   (dm_control: 4), as MJX has no noslip solver.
3. The skin (a rendering-only deformable mesh) is removed; MJX does not carry it.
   Eval videos render dm_control's model as shipped, skin included (``Dog.render_model``:
   same joints and ``qpos`` layout), since without the skin only a few small
   visual geoms of the dog remain to be seen.

Compiling on CPU: every jitted program that steps the dog must be compiled with
:data:`CPU_COMPILER_OPTIONS` (``Env.jit`` does it; the option is exposed as ``Dog.compiler_options``).
With XLA's default CPU fusion emitters, vmapped ``mjx.kinematics`` of the dog turns a few hundred fused
HLO ops (the chained ``quat_mul``/``rotate`` of a body's three hinges) into ~100k lines of straight-line
LLVM IR (27 MB), and LLVM's greedy register allocator does not finish on it: ``jit(vmap(kinematics))``
at N=2 does not compile in 9 minutes, ``vmap(reset)`` at N=16 not in 11. XLA's older elemental emitters (``xla_cpu_use_fusion_emitters=False``) compile the same program
in 20 s (N=2) / 36 s (N=256), and a 50-step scan of 256 vmapped dog steps in ~4 minutes. Nothing else
changes: same HLO, same fusions, only how they are lowered to LLVM. GPU compiles are left alone.

Timestep (5 ms), control step (15 ms = 3 sub-steps), integrator, ``eulerdamp``,
joint/actuator/contact parameters, bone meshes (they set the masses) and all
sensors are dm_control's.

Observation (223 values, dm_control's order): 73 hinge angles and velocities,
torso and pelvis heights, the world-z projections of the skull, torso and pelvis
frames, the centre-of-mass velocity in the torso frame, accelerometer,
velocimeter and gyro of the head, the four foot/hand force sensors, the four
palm/sole touch sensors and the 38 actuator (filter) states. As in dm_control,
position- and velocity-dependent quantities are those of the state *after* the
step (MJX's step leaves them one sub-step stale, so they are recomputed;
acceleration-stage sensors -- accelerometer, touch, force -- are from the last
sub-step in both).

Reward: dm_control's product of factors -- torso and pelvis at >= 90% of their
height in the default pose, skull/torso/pelvis upright within 30 degrees, foot
touch summing to body weight -- times, for walk/trot/run, ``(4 f + 1) / 5`` where
``f`` rewards forward centre-of-mass speed in ``[v, 2v]``.

Initial state, as dm_control's: the default pose (dm_control's ``qpos0``), a
uniformly random heading, root velocities ``x, y`` and yaw rate drawn from
``N(0, 2^2)``, actuator states uniform in their control range.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jp
import mujoco
import numpy as np
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src import reward as rewards

from anakin_tdmpc.envs.dmc.physics import floor_contacts_only
from anakin_tdmpc.envs.dmc.task import DmcTask, port_config

TIME_LIMIT = 15
STAND_SPEED = 1.0  # floor size only: dm_control's stand uses walk's floor
STAND_HEIGHT_FRACTION = 0.9
MIN_UPRIGHT_COSINE = float(np.cos(np.deg2rad(30)))
ROOT_VELOCITY_SCALE = 2.0

FLOOR_CONTACT_GEOMS = (
    "collision_torso", "collision_pelvis_L", "collision_pelvis_R", "skull0_collision",
    *(f"{part}_{side}_collision" for side in "LR" for part in ("lower_leg", "foot", "Radius", "Ulna", "hand")),
    *(f"{part}_{side}{i}_collision" for side in "LR" for part in ("toe", "finger") for i in range(3)),
)
"""Geoms that collide with the floor (nothing else collides)."""

UPRIGHT_BODIES = ("skull", "torso", "pelvis")
INERTIAL_SENSORS = ("accelerometer", "velocimeter", "gyro")
FOOT_FORCE_SENSORS = ("foot_L", "foot_R", "hand_L", "hand_R")
TOUCH_SENSORS = ("palm_L", "palm_R", "sole_L", "sole_R")


CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA options for CPU programs that step the dog (see the module docstring, "Compiling on CPU")."""


def default_config() -> config_dict.ConfigDict:
    return port_config(ctrl_dt=0.015)


def dm_control_model(floor_size: float) -> tuple[str, dict[str, bytes]]:
    """dm_control's stand/move dog MJCF and its assets, exactly as dm_control builds them."""
    from dm_control.suite import dog as dmc_dog

    xml, assets = dmc_dog.get_model_and_assets(floor_size=floor_size)
    return (xml.decode() if isinstance(xml, bytes) else xml), assets


def make_model(floor_size: float, iterations: int = 4, ls_iterations: int = 8) -> mujoco.MjModel:
    """dm_control's dog with the changes listed in the module docstring."""
    xml, assets = dm_control_model(floor_size)
    spec = mujoco.MjSpec.from_string(xml, assets)
    # dm_control's asset dict is keyed by bare file names; the spec would prefix them with dog.xml's meshdir.
    spec.meshdir = spec.texturedir = ""
    spec.assets = assets
    for skin in list(spec.skins):
        spec.delete(skin)
    floor_contacts_only(spec, FLOOR_CONTACT_GEOMS, iterations, ls_iterations)
    spec.option.noslip_iterations = 0
    return spec.compile()


def _sensor_indices(model: mujoco.MjModel, names: tuple[str, ...]) -> np.ndarray:
    """``sensordata`` indices of the named sensors, in the order given."""
    return np.concatenate([
        np.arange(model.sensor(n).adr[0], model.sensor(n).adr[0] + model.sensor(n).dim[0]) for n in names
    ])


class Dog(DmcTask):
    """dm_control's dog: ``move_speed=None`` is the Stand task, otherwise Move at that speed."""

    base_config = staticmethod(default_config)

    def __init__(self, move_speed: float | None, config_overrides: dict[str, Any] | None = None):
        super().__init__(config_overrides=config_overrides)
        self._move_speed = move_speed
        floor_size = TIME_LIMIT * (STAND_SPEED if move_speed is None else move_speed)
        self._floor_size = floor_size
        self._render_model: mujoco.MjModel | None = None
        self._set_model(
            make_model(floor_size, self._config.iterations, self._config.ls_iterations),
            f"<dm_control dog.xml, floor {floor_size}, anakin_tdmpc.envs.dmc.dog>",
        )
        self._post_init()

    @property
    def compiler_options(self) -> dict[str, Any] | None:
        """XLA options a jitted program stepping this env needs (on CPU only; see the module docstring)."""
        return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else None

    @property
    def render_model(self) -> mujoco.MjModel:
        """dm_control's dog exactly as shipped (with its skin), for rendering our ``qpos``."""
        if self._render_model is None:
            xml, assets = dm_control_model(self._floor_size)
            self._render_model = mujoco.MjModel.from_xml_string(xml, assets)
            assert self._render_model.nq == self._mj_model.nq, "render model must share the qpos layout"
        return self._render_model

    def _post_init(self) -> None:
        m = self._mj_model
        hinges = np.nonzero(m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)[0]
        self._hinge_qpos = jp.asarray(m.jnt_qposadr[hinges])
        self._hinge_qvel = jp.asarray(m.jnt_dofadr[hinges])
        self._root_qpos = int(m.jnt_qposadr[m.joint("root").id])
        self._torso_id = m.body("torso").id
        self._height_ids = np.array([m.body("torso").id, m.body("pelvis").id])
        self._upright_ids = np.array([m.body(b).id for b in UPRIGHT_BODIES])
        self._com_velocity = _sensor_indices(m, ("torso_linvel",))
        self._inertial = _sensor_indices(m, INERTIAL_SENSORS)
        self._foot_forces = _sensor_indices(m, FOOT_FORCE_SENSORS)
        self._touch = _sensor_indices(m, TOUCH_SENSORS)
        self._ctrl_low = jp.asarray(m.actuator_ctrlrange[:, 0])
        self._ctrl_high = jp.asarray(m.actuator_ctrlrange[:, 1])
        assert m.nu == m.na, "dog actuators all carry a filter state"
        # Constants of dm_control's Stand.initialize_episode, measured in the default pose.
        data = mujoco.MjData(m)
        mujoco.mj_forward(m, data)
        self._stand_height = data.xpos[self._height_ids, 2] * STAND_HEIGHT_FRACTION
        self._body_weight = float(-m.opt.gravity[2] * m.body_subtreemass[self._torso_id])

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, azimuth_key, velocity_key, act_key = jax.random.split(rng, 4)
        azimuth = jax.random.uniform(azimuth_key, (), maxval=2 * jp.pi)
        quat = jp.array([jp.cos(azimuth / 2), 0.0, 0.0, jp.sin(azimuth / 2)])
        qpos = jp.asarray(self._mj_model.qpos0).at[self._root_qpos + 3 : self._root_qpos + 7].set(quat)
        root_velocity = ROOT_VELOCITY_SCALE * jax.random.normal(velocity_key, (3,))
        qvel = jp.zeros(self._mj_model.nv).at[jp.array([0, 1, 5])].set(root_velocity)
        act = jax.random.uniform(act_key, (self._mj_model.na,), minval=self._ctrl_low, maxval=self._ctrl_high)
        return self._initial_state(self._make_data(qpos=qpos, qvel=qvel, act=act), rng)

    def _torso_com_velocity(self, data):
        return data.sensordata[self._com_velocity] @ data.xmat[self._torso_id]

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        return jp.concatenate([
            data.qpos[self._hinge_qpos],
            data.qvel[self._hinge_qvel],
            data.xpos[self._height_ids, 2],
            data.xmat[self._upright_ids, 2, :].reshape(-1),
            self._torso_com_velocity(data),
            data.sensordata[self._inertial],
            data.sensordata[self._foot_forces],
            data.sensordata[self._touch],
            data.act,
        ])

    def _get_reward(self, data: mjx.Data, action: jax.Array, info: dict[str, Any],
                    metrics: dict[str, Any]) -> jax.Array:
        del action, info, metrics
        heights = data.xpos[self._height_ids, 2]
        torso = rewards.tolerance(heights[0], bounds=(self._stand_height[0], float("inf")),
                                  margin=self._stand_height[0])
        pelvis = rewards.tolerance(heights[1], bounds=(self._stand_height[1], float("inf")),
                                   margin=self._stand_height[1])
        upright = rewards.tolerance(data.xmat[self._upright_ids, 2, 2], bounds=(MIN_UPRIGHT_COSINE, float("inf")),
                                    sigmoid="linear", margin=MIN_UPRIGHT_COSINE + 1, value_at_margin=0)
        touch = rewards.tolerance(data.sensordata[self._touch].sum(), bounds=(self._body_weight, float("inf")),
                                  margin=self._body_weight, sigmoid="linear", value_at_margin=0.9)
        reward = torso * pelvis * jp.prod(upright) * touch
        if self._move_speed is None:
            return reward
        speed = self._move_speed
        forward = rewards.tolerance(self._torso_com_velocity(data)[0], bounds=(speed, 2 * speed),
                                    margin=max(1.0, speed), value_at_margin=0, sigmoid="linear")
        return reward * (4 * forward + 1) / 5

