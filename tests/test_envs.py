"""Tests for anakin_tdmpc.envs: task names, specs and the batched auto-reset wrapper.

Compiling MJX physics on CPU takes ~10-20 s per program, so the semantic tests
share one jitted rollout (reset + ``lax.scan`` of ``Env.step``) through a
module-scoped fixture.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.envs import TASK_SOURCES, Env, EnvState, StepOut, UnknownTaskError, canonical_task_name, make_env

NUM_ENVS = 4
EPISODE_LENGTH = 5
NUM_STEPS = 12
ACTION_REPEAT = 2
NO_POISON = np.zeros(NUM_ENVS, bool)


# --------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cheetah-run", "cheetah-run"),
        ("dm_control/cheetah-run-v0", "cheetah-run"),
        ("ball_in_cup-catch", "cup-catch"),
        ("dm_control/ball_in_cup-catch-v0", "cup-catch"),
        ("cup-catch", "cup-catch"),
        ("point-mass-easy", "point_mass-easy"),
        ("point_mass-easy", "point_mass-easy"),
        ("dm_control/point_mass-easy-v0", "point_mass-easy"),
        ("Walker-Walk", "walker-walk"),
        ("CheetahRun", "cheetah-run"),
    ],
)
def test_canonical_task_name(name, expected):
    assert canonical_task_name(name) == expected


def test_unknown_task_lists_valid_names_on_one_line():
    with pytest.raises(UnknownTaskError) as info:
        canonical_task_name("xyz")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"unknown task 'xyz'; valid tasks: {', '.join(sorted(TASK_SOURCES))}")
    assert message.endswith("(or package.module:function returning your own env)")
    assert "quadruped-run" in message and "humanoid-walk" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownTaskError):
        make_env("cheetah-fly")


def test_every_playground_task_is_replaced_by_ours():
    from mujoco_playground import registry

    from anakin_tdmpc.envs.registry import OUR_TASKS, REPLACED

    assert len(REPLACED) == 25 and set(REPLACED) <= set(OUR_TASKS)
    assert set(REPLACED.values()) == set(registry.dm_control_suite.ALL_ENVS)
    assert {OUR_TASKS[t] for t in REPLACED} == {"suite"}
    for canonical, playground_name in REPLACED.items():  # playground's name still finds our corrected task
        assert canonical_task_name(playground_name) == canonical


# ---------------------------------------------------------------------- spec


def test_cartpole_balance_spec():
    env = make_env("cartpole-balance")
    assert (env.obs_dim, env.action_dim) == (5, 1)
    assert env.action_repeat == 2
    assert env.episode_length == 500
    assert make_env("cartpole-balance", action_repeat=4).episode_length == 250
    assert make_env("cartpole-balance", action_repeat=1, episode_length=7).episode_length == 7


@pytest.mark.parametrize("kwargs", [{"action_repeat": 0}, {"episode_length": 0}, {"action_repeat": 1.5}])
def test_make_env_rejects_invalid_lengths(kwargs):
    with pytest.raises(ValueError) as info:
        make_env("cartpole-balance", **kwargs)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------- rollout


def _make_rollout(env: Env):
    """A pure ``(rng, poison) -> (initial state, final state, per-step record)`` rollout.

    Actions are uniform in [-1.5, 1.5] so that clipping is exercised. The
    per-step record holds the StepOut, the actions and the post-step state's
    obs and episode_step. ``poison`` ([N] bool) sets the initial joint
    velocities of those envs to NaN, making the physics diverge (inner done);
    it is an argument so that all tests share one compiled program.
    """

    def rollout(rng, poison):
        reset_key, action_key = jax.random.split(rng)
        state = env.reset(reset_key, NUM_ENVS)
        data = state.physics.data
        qvel = jnp.where(poison[:, None], jnp.nan, data.qvel)
        state = state._replace(physics=state.physics.replace(data=data.replace(qvel=qvel)))
        actions = jax.random.uniform(
            action_key, (NUM_STEPS, NUM_ENVS, env.action_dim), minval=-1.5, maxval=1.5
        )

        def body(state, action):
            state, out = env.step(state, action)
            return state, (out, action, state.obs, state.episode_step)

        final, record = jax.lax.scan(body, state, actions)
        return state, final, record

    return rollout


@pytest.fixture(scope="module")
def env() -> Env:
    # the wrapper's logic on the cheapest MJX task to compile (pendulum: one hinge, Euler; cartpole's RK4
    # step takes twice as long)
    return make_env("pendulum-swingup", action_repeat=ACTION_REPEAT, episode_length=EPISODE_LENGTH)


@pytest.fixture(scope="module")
def rollout(env):
    return jax.jit(_make_rollout(env))


@pytest.fixture(scope="module")
def result(rollout):
    return jax.device_get(rollout(jax.random.PRNGKey(0), NO_POISON))


def test_rollout_shapes_and_dtypes(env, result):
    init, final, (out, _, obs, episode_step) = result
    assert isinstance(init, EnvState) and isinstance(out, StepOut)
    assert init.obs.shape == (NUM_ENVS, env.obs_dim) and init.obs.dtype == np.float32
    assert out.reward.shape == (NUM_STEPS, NUM_ENVS) and out.reward.dtype == np.float32
    assert out.done.dtype == np.bool_
    assert out.final_obs.shape == obs.shape == (NUM_STEPS, NUM_ENVS, env.obs_dim)
    assert out.episode_length.dtype == episode_step.dtype == np.int32
    assert np.all(init.episode_step == 0) and np.all(init.episode_return == 0)
    assert np.all(np.isfinite(out.final_obs)) and np.all(np.isfinite(out.reward))


def test_truncation_and_auto_reset(result):
    init, _, (out, _, obs, episode_step) = result
    done_steps = [t + 1 for t in range(NUM_STEPS) if out.done[t].any()]
    assert done_steps == [5, 10]
    assert out.done[[4, 9]].all()
    np.testing.assert_array_equal(out.episode_length[[4, 9]], EPISODE_LENGTH)
    expected_step = np.array([1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2], np.int32)
    np.testing.assert_array_equal(episode_step, np.broadcast_to(expected_step[:, None], episode_step.shape))

    # Reported returns are the sums of the rewards of the episode that ended.
    np.testing.assert_allclose(out.episode_return[4], out.reward[0:5].sum(0), rtol=1e-5)
    np.testing.assert_allclose(out.episode_return[9], out.reward[5:10].sum(0), rtol=1e-5)
    np.testing.assert_allclose(out.episode_return[11], out.reward[10:12].sum(0), rtol=1e-5)

    # Where not done the state's obs is the reached obs; at resets it is a new reset obs.
    not_done = ~out.done
    np.testing.assert_array_equal(out.final_obs[not_done], obs[not_done])
    for t in (4, 9):
        assert np.all(np.any(out.final_obs[t] != obs[t], axis=-1))

    # Fresh random resets: every episode of every env starts from a different state.
    starts = np.stack([init.obs, obs[4], obs[9]]).reshape(-1, init.obs.shape[-1])
    distances = np.abs(starts[:, None] - starts[None]).max(-1)
    assert np.all(distances[~np.eye(len(starts), dtype=bool)] > 0)


def test_rewards_in_range(result):
    reward = result[2][0].reward
    assert np.all(reward >= 0.0) and np.all(reward <= ACTION_REPEAT)


def test_action_repeat_matches_inner_env(env, result):
    init, _, (out, actions, _, _) = result
    inner_step = jax.jit(jax.vmap(env.playground_env.step))
    action = jnp.clip(actions[0], -1.0, 1.0)
    first = inner_step(init.physics, action)
    second = inner_step(first, action)
    np.testing.assert_allclose(out.reward[0], first.reward + second.reward, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.final_obs[0], second.obs, rtol=1e-5, atol=1e-6)


def test_deterministic_given_rng(rollout, result):
    again = jax.device_get(rollout(jax.random.PRNGKey(0), NO_POISON))
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, result)
    other = jax.device_get(rollout(jax.random.PRNGKey(1), NO_POISON))
    assert not np.array_equal(other[0].obs, result[0].obs)


def test_outer_vmap_over_seeds(env, result):
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    vmapped = jax.jit(jax.vmap(_make_rollout(env), in_axes=(0, None)))
    init, _, (out, _, obs, _) = jax.device_get(vmapped(keys, NO_POISON))
    assert out.reward.shape == (2, NUM_STEPS, NUM_ENVS)
    assert obs.shape == (2, NUM_STEPS, NUM_ENVS, env.obs_dim)
    assert not np.allclose(init.obs[0], init.obs[1])
    for seed in range(2):
        assert [t + 1 for t in range(NUM_STEPS) if out.done[seed, t].any()] == [5, 10]
    # Seed 0 under vmap reproduces the unbatched rollout of the same key.
    np.testing.assert_allclose(out.reward[0], result[2][0].reward, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(obs[0], result[2][2], rtol=1e-4, atol=1e-5)


def test_inner_done_ends_episode(rollout):
    poison = np.array([True, False, False, False])
    _, _, (out, _, obs, episode_step) = jax.device_get(rollout(jax.random.PRNGKey(0), poison))
    # Env 0 diverges at its first step, is reset, then truncates normally.
    assert [t + 1 for t in range(NUM_STEPS) if out.done[t, 0]] == [1, 6, 11]
    assert out.episode_length[0, 0] == 1 and episode_step[0, 0] == 0
    for env_index in range(1, NUM_ENVS):
        assert [t + 1 for t in range(NUM_STEPS) if out.done[t, env_index]] == [5, 10]
    # Diverged physics never leaks NaNs into rewards or observations.
    assert np.all(np.isfinite(out.reward)) and np.all(np.isfinite(out.final_obs))
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(out.episode_return))
    assert out.reward[0, 0] == 0.0
