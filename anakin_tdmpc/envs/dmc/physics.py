"""Physics helpers of our dm_control ports: MuJoCo options and models, kinematics after a step, contacts.

Nothing here knows a task; :mod:`anakin_tdmpc.envs.dmc.task` builds the tasks' shared base on it.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jp
import mujoco
from mujoco import mjx

MAX_INIT_TRIES = 64
"""Bound of the rejection sampling of collision-free initial states (a ``lax.while_loop``, jit-friendly); the
last draw is kept if none is accepted (not seen in cup's, finger's and humanoid's tests)."""


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


def penetrating(data: mjx.Data) -> jax.Array:
    """Whether any contact of an MJX (jax impl) data has a negative distance (dm_control: ncon > 0)."""
    return jp.any(data._impl.contact.dist < 0)  # noqa: SLF001 - mjx keeps contacts on the impl


def draw_until_accepted(attempt, key: jax.Array) -> mjx.Data:
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
