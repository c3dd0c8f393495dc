"""Actions reach the actuators as the official trainers send them: dm_control's ``suite.load`` wrapped in
``action_scale.Wrapper(minimum=-1, maximum=1)``, which maps the agent's [-1, 1] linearly onto each actuator's
control range. Only quadruped's ranges are not [-1, 1] (lift [-1, 1.1], extend [-0.8, 0.8]).

The fast tests compare, for all 39 tasks, the controls our wrapper writes with the controls dm_control's
wrapped env writes for the same actions (no MJX compile needed), and check that ``Env.step`` drives the
physics with exactly those controls. ``-m slow`` steps quadruped-walk through our ``Env`` (action repeat 2)
and dm_control's wrapped env side by side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.envs import TASK_SOURCES, Env, make_env, registry

NON_UNIT = {"quadruped-walk", "quadruped-run"}
# loading every model takes ~100 s in a fresh process: CI checks the tasks with non-unit ranges and one of each
# kind of model source; `-m slow` checks all 39
FAST = NON_UNIT | {"cartpole-balance", "cheetah-run", "walker-walk", "reacher-three-easy", "pendulum-swingup"}

# our task -> the dm_control suite task with the same MJCF model (TD-MPC2's custom tasks reuse their domain's)
SUITE_TASK = {
    "cup": ("ball_in_cup", "catch"), "point_mass": ("point_mass", "easy"), "swimmer": ("swimmer", "swimmer6"),
    "acrobot": ("acrobot", "swingup"), "cartpole": ("cartpole", "balance"), "cheetah": ("cheetah", "run"),
    "dog": ("dog", "run"), "finger": ("finger", "spin"), "fish": ("fish", "swim"), "hopper": ("hopper", "hop"),
    "humanoid": ("humanoid", "walk"), "pendulum": ("pendulum", "swingup"), "quadruped": ("quadruped", "run"),
    "reacher": ("reacher", "easy"), "walker": ("walker", "walk"),
}


def _official_controls(task, actions):
    """The controls dm_control writes for ``actions`` [K, A] when wrapped as the official trainer wraps it."""
    from dm_control import suite
    from dm_control.suite.wrappers import action_scale

    if task.startswith("reacher-three"):  # no dm_control task: the same wrapper around our MJCF in MuJoCo
        return _wrapped_physics_controls(actions)
    domain, name = SUITE_TASK[task.split("-")[0]]
    env = action_scale.Wrapper(suite.load(domain, name, task_kwargs={"random": 0}), minimum=-1.0, maximum=1.0)
    env.reset()
    controls = []
    for action in actions:
        env.step(action)
        controls.append(np.array(env.physics.data.ctrl))
    return np.stack(controls)


def _wrapped_physics_controls(actions):
    import dm_env
    from dm_control import mujoco as dm_mujoco
    from dm_control.mujoco.engine import action_spec
    from dm_control.suite import common
    from dm_control.suite.wrappers import action_scale

    from anakin_tdmpc.envs.dmc.tdmpc2 import reacher_three_xml

    physics = dm_mujoco.Physics.from_xml_string(reacher_three_xml(0.05), common.ASSETS)

    class Bare(dm_env.Environment):  # the least env the wrapper needs: the model's action spec, set_control
        def action_spec(self):
            return action_spec(physics)

        def step(self, action):
            physics.set_control(action)

        def reset(self):
            pass

        def observation_spec(self):
            return {}

    env = action_scale.Wrapper(Bare(), minimum=-1.0, maximum=1.0)
    controls = []
    for action in actions:
        env.step(action)
        controls.append(np.array(physics.data.ctrl))
    return np.stack(controls)


def _our_env(task):
    """Our ``Env`` of ``task`` without tracing its reset (sizes unused here)."""
    mj_model = registry._load_env(task).mj_model  # noqa: SLF001
    return Env(task, 0, mj_model.nu, 2, 500, None, ctrl_range=registry.control_range(mj_model))


@pytest.mark.parametrize(
    "task", [t if t in FAST else pytest.param(t, marks=pytest.mark.slow)
             for t in sorted(TASK_SOURCES) if TASK_SOURCES[t] != "brax"])  # DMC tasks: dm_control's wrapper
def test_controls_match_the_official_action_scale_wrapper(task):
    env = _our_env(task)
    rng = np.random.default_rng(0)
    actions = np.concatenate([
        rng.uniform(-1, 1, (6, env.action_dim)),
        np.full((1, env.action_dim), -1.0), np.full((1, env.action_dim), 1.0), np.zeros((1, env.action_dim)),
    ])
    expected = _official_controls(task, actions)
    ours = np.asarray(env.to_ctrl(jnp.asarray(actions, jnp.float32)))
    np.testing.assert_allclose(ours, expected, atol=1e-6, err_msg=task)
    assert (env.ctrl_range is not None) == (task in NON_UNIT)


def test_quadruped_ranges_and_mapping_by_hand():
    env = _our_env("quadruped-walk")
    ranges = np.array(env.ctrl_range)
    assert ranges.shape == (12, 2)
    assert {tuple(r) for r in ranges.round(6)} == {(-1.0, 1.0), (-1.0, 1.1), (-0.8, 0.8)}
    lift = int(np.flatnonzero(np.isclose(ranges[:, 1], 1.1))[0])
    extend = int(np.flatnonzero(np.isclose(ranges[:, 1], 0.8))[0])
    a = np.zeros((3, 12), np.float32)
    a[0, [lift, extend]] = 1.0  # top of the range: lift 1.1 (clipped to 1.0 before), extend 0.8
    a[1, [lift, extend]] = 0.0  # middle: lift 0.05 (0.0 before), extend 0.0
    a[2, [lift, extend]] = 2.0  # outside [-1, 1]: clipped first, as the official trainer clips
    ctrl = np.asarray(env.to_ctrl(jnp.asarray(a)))
    np.testing.assert_allclose(ctrl[:, [lift, extend]], [[1.1, 0.8], [0.05, 0.0], [1.1, 0.8]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(env.to_ctrl(jnp.asarray(0.5 * np.ones((1, 12))))).max(), 0.575, atol=1e-6)


class _EchoEnv:
    """A stand-in single env whose observation is the control it was last stepped with."""

    def reset(self, rng):
        from mujoco_playground._src.mjx_env import State

        return State(None, jnp.zeros(3), jnp.zeros(()), jnp.zeros(()), {}, {})

    def step(self, state, ctrl):
        return state.replace(obs=ctrl)


def test_env_step_drives_the_physics_with_the_mapped_controls():
    ranges = ((-1.0, 1.0), (-1.0, 1.1), (-0.8, 0.8))
    env = Env("echo", 3, 3, 2, 10, _EchoEnv(), ctrl_range=ranges)
    state = env.reset(jax.random.key(0), 2)
    action = jnp.array([[0.0, 1.0, 1.0], [-3.0, 0.0, -0.5]])
    _, out = env.step(state, action)
    np.testing.assert_allclose(np.asarray(out.final_obs), [[0.0, 1.1, 0.8], [-1.0, 0.05, -0.4]], atol=1e-6)
    unit = Env("echo", 3, 3, 2, 10, _EchoEnv())
    _, out = unit.step(unit.reset(jax.random.key(0), 2), action)
    np.testing.assert_array_equal(np.asarray(out.final_obs), np.clip(np.asarray(action), -1, 1))


@pytest.mark.slow
def test_quadruped_steps_as_the_official_trainer_env():
    """quadruped-walk through our Env (action repeat 2, mapped actions) vs suite.load + action_scale.Wrapper with
    the same repeat, dm_control resynced to our state before each step and given our solver settings: the
    observation and summed reward of each agent step agree (the remaining gap is MJX float32 vs MuJoCo C)."""
    from dm_control import suite
    from dm_control.suite.wrappers import action_scale

    from tests.test_envs_custom import _match, _sync

    task, steps = "quadruped-walk", 30
    env = make_env(task, action_repeat=2)

    @env.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = env.reset(k_reset, 1)
        actions = jax.random.uniform(k_act, (steps, 1, env.action_dim), minval=-1, maxval=1)

        def body(state, action):
            d = state.physics.data
            before = (d.qpos, d.qvel, d.act, d.mocap_pos, d.qacc_warmstart)
            state, out = env.step(state, action)
            return state, (before, out.final_obs, out.reward)

        _, trace = jax.lax.scan(body, state, actions)
        return trace, actions

    (before, obs, reward), actions = jax.device_get(run(jax.random.key(0)))
    raw = suite.load("quadruped", "walk", task_kwargs={"random": 0})
    raw._n_sub_steps = _match(raw.physics, env.playground_env)  # noqa: SLF001
    official = action_scale.Wrapper(raw, minimum=-1.0, maximum=1.0)
    official.reset()
    for t in range(steps):
        _sync(raw.physics, *[np.asarray(x[t][0], np.float64) for x in before])
        total = 0.0
        for _ in range(2):
            ts = official.step(np.asarray(actions[t][0], np.float64))
            total += ts.reward
        ref_obs = np.concatenate([np.ravel(v) for v in ts.observation.values()])
        assert np.abs(ref_obs - obs[t][0]).max() < 0.05, (t, np.abs(ref_obs - obs[t][0]).max())
        assert abs(total - reward[t][0]) < 5e-3, (t, total, reward[t][0])
