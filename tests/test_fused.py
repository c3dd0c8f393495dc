"""The fused loop: no host transfers inside a chunk, the seeding / pretraining / UTD schedule, warm-start
resets, evaluation and determinism, on a tiny config of the point task (tests/point_task.py: the loop's
logic does not depend on the physics, and it compiles in seconds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import point_task
from anakin_tdmpc import envs
from anakin_tdmpc.config import Args
from anakin_tdmpc.build import build

envs.register("point", point_task.make_env)
TINY = dict(task="point", num_envs=4, model_size=1, latent_dim=16, mlp_dim=32, enc_dim=32, num_q=2,
            num_samples=16, num_elites=4, num_pi_trajs=2, iterations=2, batch_size=8, seed_steps=40,
            episode_length=20, buffer_size=2000, total_timesteps=400, eval_episodes=2)


@pytest.fixture(scope="module")
def built():
    return build(Args(**TINY))


def run_chunk(loop, carry, n):
    carry, stats = loop.chunk(carry, jnp.int32(n))
    return carry, jax.device_get(stats)


def test_schedule_of_seeding_pretraining_and_updates(built):
    env, algo, loop, schedule = built
    assert schedule.seed_steps == 40 and schedule.pretrain_updates == 40 and schedule.updates_per_iter == 4
    carry = loop.init(jax.random.key(0))
    # 10 iterations x 4 envs = 40 seed steps of random actions; the 10th triggers the 40 pretraining updates
    carry, stats = run_chunk(loop, carry, 9)
    assert int(stats.num_updates) == 0 and int(carry.agent.updates) == 0
    carry, stats = run_chunk(loop, carry, 1)
    assert int(stats.num_updates) == 40 and int(carry.agent.updates) == 40
    carry, stats = run_chunk(loop, carry, 5)  # then utd 1 x 4 envs per iteration
    assert int(stats.num_updates) == 20 and int(carry.agent.updates) == 60
    assert np.all(np.isfinite(jax.tree.leaves(stats.update_sums)))
    assert int(carry.agent_steps) == 60
    buf = carry.buffer
    np.testing.assert_array_equal(np.asarray(buf.size), 15)
    np.testing.assert_array_equal(np.asarray(buf.pointer), 15)
    np.testing.assert_array_equal(buf.episode_step[:15], np.repeat(np.arange(15)[:, None], 4, 1))
    # planned (non-seeding) iterations have a warm start; it is cleared when episodes end (step 20)
    assert float(jnp.abs(carry.plan_mean).sum()) > 0
    carry, stats = run_chunk(loop, carry, 5)
    assert int(stats.episodes) == 4 and np.isfinite(stats.return_sum)
    np.testing.assert_array_equal(carry.plan_mean, 0.0)
    np.testing.assert_array_equal(carry.env_state.episode_step, 0)
    # each episode's last observation is stored after its last transition (a final row at step 20), not
    # terminal: the point task only runs into its time limit
    buf = carry.buffer
    np.testing.assert_array_equal(np.asarray(buf.pointer), 21)
    np.testing.assert_array_equal(buf.episode_step[:21], np.repeat(np.arange(21)[:, None], 4, 1))
    assert not np.any(buf.terminal)
    np.testing.assert_allclose(float(stats.return_sum) / 4, float(np.mean(carry.last_return)), rtol=1e-5)


def test_chunk_makes_no_host_transfers(built):
    _, _, loop, _ = built
    carry = loop.init(jax.random.key(1))
    n = jax.device_put(jnp.int32(12))
    carry, _ = loop.chunk(carry, n)  # compile outside the guard
    jax.block_until_ready(carry)
    with jax.transfer_guard("disallow"):
        carry, stats = loop.chunk(carry, n)
        jax.block_until_ready((carry, stats))
    assert int(carry.agent_steps) == 96


def test_same_seed_same_run_and_evaluation(built):
    env, _, loop, _ = built

    def run(seed):
        carry = loop.init(jax.random.key(seed))
        carry, s1 = run_chunk(loop, carry, 12)
        carry, s2 = run_chunk(loop, carry, 3)
        return carry, s2

    c1, s1 = run(3)
    c2, s2 = run(3)
    for a, b in zip(jax.tree.leaves(c1.agent.params), jax.tree.leaves(c2.agent.params)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)
    c3, _ = run(4)
    assert not np.array_equal(jax.tree.leaves(c1.agent.params)[0], jax.tree.leaves(c3.agent.params)[0])
    returns = loop.evaluate(c1.agent, jax.random.key(5), 2)
    assert returns.shape == (2,)
    assert bool(jnp.all((returns >= 0) & (returns <= env.episode_length * env.action_repeat)))
    np.testing.assert_array_equal(returns, loop.evaluate(c1.agent, jax.random.key(5), 2))


def test_chunks_and_burst_pieces_change_no_number(built):
    """A stretch run as one chunk (the pretraining burst inside the iteration that ends seeding) equals the same
    stretch cut anywhere: chunks continuing the period's sums, the burst deferred (`burst=False`) and run as
    `pretrain` pieces with the iteration's own update key. Bit for bit, parameters and sums."""
    _, _, loop, _ = built
    whole, whole_stats = run_chunk(loop, loop.init(jax.random.key(7)), 13)

    carry = loop.init(jax.random.key(7))
    stats = loop.zero_stats(carry)
    off = jnp.bool_(False)
    for n in (4, 6):  # 10 seeding iterations, the last of which ends seeding: its 40 updates are left
        carry, stats = loop.chunk(carry, jnp.int32(n), stats, off)
    assert int(stats.num_updates) == 0 and int(carry.agent.updates) == 0
    for start, count in ((0, 1), (1, 25), (26, 14)):
        carry, stats = loop.pretrain_chunk(carry, stats, jnp.int32(start), jnp.int32(count))
    assert int(stats.num_updates) == 40 and int(carry.agent.updates) == 40
    for n in (1, 2):
        carry, stats = loop.chunk(carry, jnp.int32(n), stats, off)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(carry)):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(whole_stats), jax.tree.leaves(jax.device_get(stats))):
        np.testing.assert_array_equal(a, b)
