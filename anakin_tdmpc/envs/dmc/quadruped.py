"""dm_control's quadruped-walk and quadruped-run, ported to MJX (``impl='jax'``).

The model is dm_control's own ``quadruped.xml``, read at run time from the
installed ``dm-control`` package through ``dm_control.suite.quadruped.make_model``
(the same call dm_control's walk/run make: floor of 10 m / 50 m, no walls, ball,
target, heightfield terrain or rangefinders). Changes made on load, for MJX and
for speed on CPU:

1. The unused ``terrain`` heightfield *asset* is deleted too (dm_control only
   removes the geom); MJX does not implement heightfield collisions, and walk/run
   use the flat floor anyway.
2. Contacts: only geom-vs-floor pairs among :data:`FLOOR_CONTACT_GEOMS` (torso and
   the four toes, thighs and shins) are kept, via ``contype``/``conaffinity``;
   dm_control also collides the feet (ankle capsules, always above their toe
   spheres in practice), the eye cylinders and limb-vs-limb pairs.
3. Solver: ``iterations=4``, ``ls_iterations=8`` (dm_control: MuJoCo's defaults of
   100 / 50), as playground does for its DMC ports. Timestep (5 ms), integrator,
   ``eulerdamp`` and all contact parameters are dm_control's.

Observation (78 values, dm_control's order): egocentric state (12 hinge qpos,
12 hinge qvel, 12 actuator activations), torso velocity (velocimeter), torso
upright (zz of the torso frame), IMU (gyro, accelerometer) and arcsinh of the
toe force/torque sensors. All these sensor types run in MJX, so they are read
from ``sensordata``. As in dm_control, position- and velocity-dependent values are
those of the state after the step (recomputed: MJX's step leaves them one sub-step
stale); acceleration-stage ones (accelerometer, force, torque) are from the last
sub-step in both. Reward: dm_control's ``upright x move`` reward.

Initial state: as dm_control, a uniformly random orientation (normalised
Gaussian quaternion), joints at zero, and the lowest height ``z = 0.01 k`` at
which no geom touches the floor. dm_control finds ``k`` by raising the body 1 cm at
a time and re-running collision detection; here ``k`` is computed in closed form
(jit-friendly) from the lowest point of every geom (support functions of the
sphere, capsule, ellipsoid and cylinder geoms) at ``z = 0``. Velocities start at 0.
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

TIME_LIMIT = 20
HEIGHT_STEP = 0.01

_LEGS = ("front_left", "front_right", "back_right", "back_left")
FLOOR_CONTACT_GEOMS = ("torso",) + tuple(f"{part}_{leg}" for leg in _LEGS for part in ("toe", "thigh", "shin"))
"""Geoms that collide with the floor (nothing else collides)."""


def default_config() -> config_dict.ConfigDict:
    return port_config(ctrl_dt=0.02)


def dm_control_xml(floor_size: float) -> str:
    """dm_control's walk/run quadruped MJCF, exactly as dm_control builds it."""
    from dm_control.suite import quadruped as dmc_quadruped

    xml = dmc_quadruped.make_model(floor_size=floor_size)
    return xml.decode() if isinstance(xml, bytes) else xml


def make_model(floor_size: float, iterations: int = 4, ls_iterations: int = 8) -> mujoco.MjModel:
    """dm_control's model with the changes listed in the module docstring."""
    from dm_control.suite import common as dmc_common

    spec = mujoco.MjSpec.from_string(dm_control_xml(floor_size), dmc_common.ASSETS)
    for hfield in list(spec.hfields):
        spec.delete(hfield)
    floor_contacts_only(spec, FLOOR_CONTACT_GEOMS, iterations, ls_iterations)
    return spec.compile()


def lowest_geom_points(model: Any, data: Any) -> jax.Array:
    """World z of the lowest point of each geom (sphere, capsule, ellipsoid, cylinder; planes -> +inf)."""
    size = jp.asarray(model.geom_size)
    gtype = np.asarray(model.geom_type)
    zaxis_row = data.geom_xmat[:, 2, :]  # world z of each local axis
    center = data.geom_xpos[:, 2]
    sphere = center - size[:, 0]
    capsule = center - jp.abs(zaxis_row[:, 2]) * size[:, 1] - size[:, 0]
    ellipsoid = center - jp.linalg.norm(zaxis_row * size, axis=-1)
    cylinder = center - jp.abs(zaxis_row[:, 2]) * size[:, 1] - size[:, 0] * jp.linalg.norm(zaxis_row[:, :2], axis=-1)
    low = jp.full(center.shape, jp.inf)
    for kind, value in (
        (mujoco.mjtGeom.mjGEOM_SPHERE, sphere),
        (mujoco.mjtGeom.mjGEOM_CAPSULE, capsule),
        (mujoco.mjtGeom.mjGEOM_ELLIPSOID, ellipsoid),
        (mujoco.mjtGeom.mjGEOM_CYLINDER, cylinder),
    ):
        low = jp.where(gtype == int(kind), value, low)
    return low


class QuadrupedMove(DmcTask):
    """Quadruped moving forward at ``desired_speed`` (dm_control's ``Move`` task)."""

    base_config = staticmethod(default_config)

    def __init__(self, desired_speed: float, config_overrides: dict[str, Any] | None = None):
        super().__init__(config_overrides=config_overrides)
        self._desired_speed = desired_speed
        floor_size = TIME_LIMIT * desired_speed
        self._set_model(
            make_model(floor_size, self._config.iterations, self._config.ls_iterations),
            f"<dm_control quadruped.xml, floor {floor_size}, anakin_tdmpc.envs.dmc.quadruped>",
        )
        self._post_init()

    def _post_init(self) -> None:
        m = self._mj_model
        self._torso_id = m.body("torso").id
        hinges = np.nonzero(m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)[0]
        self._hinge_qpos = jp.asarray(m.jnt_qposadr[hinges])
        self._hinge_qvel = jp.asarray(m.jnt_dofadr[hinges])

        def sensor_slice(types):
            ids = [i for i in range(m.nsensor) if int(m.sensor_type[i]) in {int(t) for t in types}]
            return jp.asarray(np.concatenate([np.arange(m.sensor_adr[i], m.sensor_adr[i] + m.sensor_dim[i]) for i in ids]))

        sens = mujoco.mjtSensor
        self._velocimeter = sensor_slice({sens.mjSENS_VELOCIMETER})
        self._imu = sensor_slice({sens.mjSENS_GYRO, sens.mjSENS_ACCELEROMETER})
        self._force_torque = sensor_slice({sens.mjSENS_FORCE, sens.mjSENS_TORQUE})

    def reset(self, rng: jax.Array) -> mjx_env.State:
        rng, quat_key = jax.random.split(rng)
        quat = jax.random.normal(quat_key, (4,))
        quat = quat / jp.linalg.norm(quat)
        qpos = jp.asarray(self._mj_model.qpos0).at[:3].set(0.0).at[3:7].set(quat)
        data = self._make_data(qpos=qpos)
        data = mjx.kinematics(self.mjx_model, data)
        penetration = -jp.min(lowest_geom_points(self._mj_model, data))
        height = HEIGHT_STEP * jp.maximum(jp.floor(penetration / HEIGHT_STEP) + 1, 0)
        data = data.replace(qpos=qpos.at[2].set(height))
        return self._initial_state(data, rng)

    def _torso_upright(self, data):
        return data.xmat[self._torso_id, 2, 2]

    def _get_obs(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
        del info
        return jp.concatenate([
            data.qpos[self._hinge_qpos],
            data.qvel[self._hinge_qvel],
            data.act,
            data.sensordata[self._velocimeter],
            self._torso_upright(data).reshape(1),
            data.sensordata[self._imu],
            jp.arcsinh(data.sensordata[self._force_torque]),
        ])

    def _get_reward(self, data: mjx.Data, action: jax.Array, info: dict[str, Any],
                    metrics: dict[str, Any]) -> jax.Array:
        del action, info, metrics
        upright = rewards.tolerance(
            self._torso_upright(data), bounds=(1.0, float("inf")), sigmoid="linear", margin=2.0, value_at_margin=0
        )
        move = rewards.tolerance(
            data.sensordata[self._velocimeter][0],
            bounds=(self._desired_speed, float("inf")),
            margin=self._desired_speed,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return upright * move

