"""Unit tests of TD-MPC's pieces: schedules, the planner (momentum, dynamic horizon), each loss by hand and all
of them on a known batch, the target-network EMA cadence, the update, the CLI defaults, and the fused loop with
prioritized replay."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import PointEnv

from anakin_tdmpc import config
from anakin_tdmpc.loop.replay import Batch
from anakin_tdmpc.agents import tdmpc
from anakin_tdmpc.agents.tdmpc import TDMPC, TDMPCConfig, linear_schedule, planning_horizon, std_floor

TINY = TDMPCConfig(latent_dim=8, enc_dim=32, mlp_dim=32, num_samples=68, num_elites=8, num_pi_trajs=4,
                   iterations=3, batch_size=16)
END = 10**6  # an agent step where both schedules have finished
ALGO = TDMPC(TINY, obs_dim=5, action_dim=2, episode_length=500)
UPDATE = jax.jit(ALGO.update)  # shared by the learning tests: one compilation


def random_batch(key, cfg, obs_dim=5, action_dim=2, reward_scale=1.0):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    H, B = cfg.horizon, cfg.batch_size
    return Batch(
        obs=jax.random.normal(k1, (H + 1, B, obs_dim)),
        action=jax.random.uniform(k2, (H, B, action_dim), minval=-1, maxval=1),
        reward=reward_scale * jax.random.uniform(k3, (H, B)),
        weight=jax.random.uniform(k4, (B,), minval=0.2, maxval=1.0),
        terminated=jnp.zeros((H, B)),  # as the buffer's batches (one compiled update serves every test)
    )


# ------------------------------------------------------------------------------------------ schedules


def test_linear_schedules_at_start_midway_end_and_beyond():
    for step, expected in [(0, 0.5), (12_500, 0.275), (25_000, 0.05), (100_000, 0.05)]:
        assert float(linear_schedule(0.5, 0.05, 25_000, step)) == pytest.approx(expected, rel=1e-6)
        assert float(std_floor(TDMPCConfig(), step)) == pytest.approx(expected, rel=1e-6)
    # horizon = int(min(5, linear(1 -> 5 over 25k))): 1 + 4 * step / 25000, truncated
    cfg = TDMPCConfig()
    for step, expected in [(0, 1), (6_249, 1), (6_250, 2), (12_500, 3), (18_749, 3), (24_999, 4), (25_000, 5),
                           (10**9, 5)]:
        assert int(planning_horizon(cfg, jnp.int32(step))) == expected, step
    assert int(planning_horizon(dataclasses.replace(cfg, horizon=3), 12_500)) == 2


# ------------------------------------------------------------------------------------------ planner


class KnownModel(TDMPC):
    """Latent is a step counter (z' = z + 1), reward = -10 |a - best|^2, Q = 0 and pi = `best` exactly."""

    best = jnp.array([0.6, -0.3])

    def encode(self, params, obs):
        return jnp.zeros(obs.shape[:-1] + (self.cfg.latent_dim,))

    def next(self, params, z, a):
        return z + 1.0

    def reward(self, params, z, a):
        return -10.0 * jnp.sum((a - self.best) ** 2, axis=-1)

    def q(self, q_params, z, a):
        return jnp.zeros((2,) + z.shape[:-1])

    def pi(self, pi_params, z, rng):
        return jnp.broadcast_to(self.best, z.shape[:-1] + self.best.shape)


def test_planner_finds_the_best_action_of_a_known_model():
    """Horizon 5 (2 x 5 = 10 action dims searched from std 2) needs more MPPI iterations than the paper's 6
    to converge tightly on this sharp toy reward; 12 is what TD-MPC uses on humanoid."""
    cfg = dataclasses.replace(TINY, num_samples=512, num_elites=64, num_pi_trajs=0, iterations=12)
    algo = KnownModel(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    obs = jnp.zeros((2, 5))
    act = jax.jit(lambda m, k, step, eval_mode=True: algo.act(agent, obs, m, k, eval_mode, step),
                  static_argnames="eval_mode")
    action, mean = act(algo.initial_plan_mean(2), jax.random.key(1), jnp.int32(END))
    assert action.shape == (2, 2) and mean.shape == (2, 5, 2)
    np.testing.assert_allclose(action, jnp.broadcast_to(algo.best, (2, 2)), atol=0.1)
    np.testing.assert_allclose(mean, jnp.broadcast_to(algo.best, (2, 5, 2)), atol=0.25)
    # at step 0 the planning horizon is 1 and rows beyond it stay at zero; the std floor is 0.5 there, so
    # the executed elite spreads around the (accurate) mean
    action, mean = act(algo.initial_plan_mean(2), jax.random.key(1), jnp.int32(0))
    np.testing.assert_allclose(mean[:, 0], jnp.broadcast_to(algo.best, (2, 2)), atol=0.1)
    np.testing.assert_allclose(action, jnp.broadcast_to(algo.best, (2, 2)), atol=0.4)
    np.testing.assert_array_equal(mean[:, 1:], 0.0)
    # exploration noise (at least the std floor 0.5 at step 0) in training mode only
    noisy, _ = act(algo.initial_plan_mean(2), jax.random.key(1), jnp.int32(0), eval_mode=False)
    assert float(jnp.abs(noisy - action).mean()) > 0.1


def test_planner_momentum_keeps_a_tenth_of_the_old_mean():
    """Elites = the policy sequences (exactly `best`), so one iteration's refit mean is `best` and the new
    mean is 0.1 * warm start + 0.9 * best on the rows inside the planning horizon, 0 beyond it."""
    prev = jnp.array([[[0.9, 0.9], [0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]])  # [1, H=5, A=2]
    warm = jnp.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8], [0.0, 0.0]])  # shifted by one
    cfg = dataclasses.replace(TINY, num_samples=20, num_pi_trajs=4, num_elites=4, iterations=1)
    algo = KnownModel(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    act = jax.jit(lambda step: algo.act(agent, jnp.zeros((1, 5)), prev, jax.random.key(3), True, step))
    for step, active in [(END, 5), (12_500, 3)]:
        action, mean = act(jnp.int32(step))
        expected = jnp.where(jnp.arange(5)[:, None] < active, 0.1 * warm + 0.9 * algo.best, 0.0)
        np.testing.assert_allclose(mean[0], expected, atol=1e-6)
        np.testing.assert_allclose(action[0], algo.best, atol=1e-6)  # the first action of an elite


def test_value_estimate_masks_steps_beyond_the_horizon():
    """Reward 1 per step, Q(z) = z (the step count): value(h) = sum_{t<h} gamma^t + gamma^h * h."""

    class Counter(KnownModel):
        def reward(self, params, z, a):
            return jnp.ones(z.shape[:-1])

        def q(self, q_params, z, a):
            return jnp.stack([z[..., 0], z[..., 0] + 1.0])  # min = z[0]

    algo = Counter(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    z = jnp.zeros((3, TINY.latent_dim))
    actions = jnp.zeros((5, 3, 2))
    for h in range(1, 6):
        value = algo.estimate_value(agent.params, z, actions, jnp.int32(h), jax.random.key(0))
        expected = sum(0.99**t for t in range(h)) + 0.99**h * h
        np.testing.assert_allclose(value, expected, rtol=1e-6)


# ------------------------------------------------------------------------------------------ learning


def test_init_zero_heads_and_policy_range():
    algo = TDMPC(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    z = algo.encode(agent.params, jax.random.normal(jax.random.key(1), (4, 5)))
    a = jnp.zeros((4, 2))
    assert z.shape == (4, 8)
    np.testing.assert_array_equal(algo.reward(agent.params, z, a), 0.0)
    assert algo.q(agent.params["qs"], z, a).shape == (2, 4)
    np.testing.assert_array_equal(algo.q(agent.params["qs"], z, a), 0.0)
    # orthogonal init: the encoder's first kernel has orthonormal columns (5 x 32 -> rows orthonormal)
    kernel = agent.params["encoder"]["Dense_0"]["kernel"]
    np.testing.assert_allclose(kernel @ kernel.T, np.eye(5), atol=1e-5)
    zs = jax.random.normal(jax.random.key(2), (1000, 8)) * 10
    noisy, mean = algo.pi(agent.params["pi"], zs, jax.random.key(3)), algo.pi_mean(agent.params["pi"], zs)
    assert bool(jnp.all(jnp.abs(noisy) < 1)) and bool(jnp.all(jnp.abs(mean) <= 1))
    assert float(jnp.abs(noisy - mean).max()) <= 0.3 + 1e-6  # noise 0.05 N(0, 1) clipped at 0.3


def test_td_target_by_hand():
    reward = jnp.array([[1.0, 2.0], [0.5, -1.0]])  # [H = 2, B = 2]
    next_q = jnp.array([[[3.0, 0.0], [1.0, 4.0]],  # Q1
                        [[2.0, 5.0], [-1.0, 4.0]]])  # Q2: min(Q1, Q2) = [[2, 0], [-1, 4]]
    # r + 0.5 * min: [[1 + 1, 2 + 0], [0.5 - 0.5, -1 + 2]]
    np.testing.assert_array_equal(tdmpc.td_target(reward, next_q, 0.5), [[2.0, 2.0], [0.0, 1.0]])
    # step 0 of window 0 reaches a terminal observation: its target is its reward, 1
    terminated = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(tdmpc.td_target(reward, next_q, 0.5, terminated), [[1.0, 2.0], [0.0, 1.0]])


def test_model_losses_and_priorities_by_hand():
    rho = jnp.array([[1.0], [0.5]])  # rho^t for H = 2 (rho = 0.5), [H, 1]
    # consistency against target latents 0: per-step mean squares [1, 2] (t = 0) and [2, 1] (t = 1) for B = 2;
    # 1 + 0.5 * 2 = 2 and 2 + 0.5 * 1 = 2.5
    pred = jnp.array([[[1.0, 1.0], [2.0, 0.0]], [[0.0, 2.0], [1.0, 1.0]]])  # [H, B, L = 2]
    np.testing.assert_array_equal(tdmpc.consistency_loss(pred, jnp.zeros_like(pred), rho), [2.0, 2.5])
    # window 1 ends after step 0 (mask [[1, 1], [1, 0]]): its t = 1 term drops, 2 + 0 = 2
    masked = rho * jnp.array([[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(tdmpc.consistency_loss(pred, jnp.zeros_like(pred), masked), [2.0, 2.0])
    # reward: squared errors [[1, 0], [4, 9]] -> 1 + 0.5 * 4 = 3, 0 + 0.5 * 9 = 4.5
    r_pred, r = jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_array_equal(tdmpc.reward_loss(r_pred, r, rho), [3.0, 4.5])
    np.testing.assert_array_equal(tdmpc.reward_loss(r_pred, r, masked), [3.0, 0.0])
    # value: Q1 - y = [[0, -1], [2, 0]], Q2 - y = [[2, -1], [2, -2]]; squares summed over the Qs [[4, 2], [8, 4]]
    # -> 4 + 0.5 * 8 = 8, 2 + 0.5 * 4 = 4; absolute errors summed [[2, 2], [4, 2]] -> priorities 4 and 3
    q = jnp.array([[[1.0, 0.0], [2.0, 2.0]], [[3.0, 0.0], [2.0, 0.0]]])  # [2, H, B]
    y = jnp.array([[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(tdmpc.value_loss(q, y, rho), [8.0, 4.0])
    np.testing.assert_array_equal(tdmpc.priorities(q, y, rho, 1e4), [4.0, 3.0])
    np.testing.assert_array_equal(tdmpc.priorities(q, y, rho, 3.5), [3.5, 3.0])  # clamped
    # masked: window 1 keeps its t = 0 terms only, 2 (value) and 2 (priority)
    np.testing.assert_array_equal(tdmpc.value_loss(q, y, masked), [8.0, 2.0])
    np.testing.assert_array_equal(tdmpc.priorities(q, y, masked, 1e4), [4.0, 2.0])


def test_total_loss_clamps_each_term_then_weights_them():
    cfg = TDMPCConfig()  # coefficients 2, 0.5, 0.1; clamp 1e4
    consistency, reward, value = jnp.array([1.0, 2e4]), jnp.array([2.0, 4.0]), jnp.array([10.0, 3e4])
    # sample 0: 2 * 1 + 0.5 * 2 + 0.1 * 10 = 4; sample 1: 2 * 1e4 + 0.5 * 4 + 0.1 * 1e4 = 21002
    np.testing.assert_array_equal(tdmpc.total_loss(consistency, reward, value, cfg), [4.0, 21002.0])


def test_policy_loss_by_hand():
    q = jnp.array([[4.0, 2.0], [6.0, -2.0]])  # min(Q1, Q2) at z_0, z_1 [H + 1 = 2, B = 2]
    rho = jnp.array([[1.0], [0.5]])
    # batch means 3 and 2: -(3 + 0.5 * 2) = -4
    assert float(tdmpc.policy_loss(q, rho)) == -4.0
    # window 1's z_1 lies past its episode's end: q [[4, 2], [6, 0]], means 3 and 3: -(3 + 0.5 * 3) = -4.5
    assert float(tdmpc.policy_loss(q, rho, jnp.array([[1.0, 1.0], [1.0, 0.0]]))) == -4.5


def test_ema_moves_every_leaf_a_tau_of_the_way_when_asked():
    target = {"a": jnp.array([0.0, 10.0]), "b": jnp.array(4.0)}
    params = {"a": jnp.array([1.0, 20.0]), "b": jnp.array(4.0)}
    moved = tdmpc.ema(target, params, 0.25, jnp.bool_(True))  # 0 + 0.25 * 1, 10 + 0.25 * 10, 4 + 0
    np.testing.assert_array_equal(moved["a"], [0.25, 12.5])
    assert float(moved["b"]) == 4.0
    kept = tdmpc.ema(target, params, 0.25, jnp.bool_(False))
    np.testing.assert_array_equal(kept["a"], [0.0, 10.0])


def test_loss_values_on_a_known_batch():
    """At init the reward and Q heads output 0 and the target model equals the model, so every loss has a
    closed form: td target = r, reward = sum rho^t r^2, value = sum rho^t 2 r^2, priority = sum rho^t 2 |r|."""
    cfg, algo, update = TINY, ALGO, UPDATE
    agent = algo.init(jax.random.key(0))
    batch = random_batch(jax.random.key(1), cfg)
    _, metrics, priority = update(agent, batch, jax.random.key(2))
    rho = (0.5 ** np.arange(cfg.horizon))[:, None]
    r = np.asarray(batch.reward)
    reward = (rho * r**2).sum(0)
    value = (rho * 2 * r**2).sum(0)
    z, consistency = algo.encode(agent.params, batch.obs[0]), 0.0
    for t in range(cfg.horizon):
        z = algo.next(agent.params, z, batch.action[t])
        consistency = consistency + rho[t] * np.mean((z - algo.encode(agent.params, batch.obs[t + 1])) ** 2, -1)
    total = 2 * consistency + 0.5 * reward + 0.1 * value
    assert float(metrics["reward_loss"]) == pytest.approx(reward.mean(), rel=1e-5)
    assert float(metrics["value_loss"]) == pytest.approx(value.mean(), rel=1e-5)
    assert float(metrics["consistency_loss"]) == pytest.approx(float(consistency.mean()), rel=1e-5)
    assert float(metrics["total_loss"]) == pytest.approx(float(total.mean()), rel=1e-5)
    assert float(metrics["weighted_loss"]) == pytest.approx(float((total * np.asarray(batch.weight)).mean()), rel=1e-5)
    np.testing.assert_allclose(priority, (rho * 2 * np.abs(r)).sum(0), rtol=1e-5)
    # each per-sample loss is clamped at 1e4 (rewards of ~1000 give reward losses of ~1e6)
    big = random_batch(jax.random.key(1), cfg, reward_scale=1000.0)
    _, metrics, priority = update(agent, big, jax.random.key(2))
    assert float(metrics["reward_loss"]) > 1e5
    expected = 2 * float(metrics["consistency_loss"]) + 0.5 * 1e4 + 0.1 * 1e4
    assert float(metrics["total_loss"]) == pytest.approx(expected, rel=1e-4)
    r = np.asarray(big.reward)
    np.testing.assert_allclose(priority, np.minimum((rho * 2 * np.abs(r)).sum(0), 1e4), rtol=1e-5)
    huge = big._replace(reward=big.reward * 100)
    np.testing.assert_array_equal(update(agent, huge, jax.random.key(2))[2], 1e4)


def test_update_lowers_the_loss_and_target_ema_every_two_updates():
    cfg, algo, update = TINY, ALGO, UPDATE
    agent0 = algo.init(jax.random.key(0))
    batch = random_batch(jax.random.key(1), cfg)
    key = jax.random.key(2)
    agent1, m0, _ = update(agent0, batch, key)
    agent2, m1, _ = update(agent1, batch, key)  # same batch, same randomness: loss at the updated parameters
    assert float(m1["total_loss"]) < float(m0["total_loss"])
    agent3, _, _ = update(agent2, batch, key)
    leaf = lambda tree: np.asarray(jax.tree.leaves(tree["encoder"])[0])  # noqa: E731
    # update 1 (counter 0): EMA; update 2 (counter 1): none; update 3 (counter 2): EMA
    ema = lambda target, online: target + 0.01 * (online - target)  # noqa: E731
    np.testing.assert_allclose(leaf(agent1.target), ema(leaf(agent0.params), leaf(agent1.params)), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(leaf(agent2.target), leaf(agent1.target))
    np.testing.assert_allclose(leaf(agent3.target), ema(leaf(agent2.target), leaf(agent3.params)), rtol=1e-5, atol=1e-7)
    assert not np.array_equal(leaf(agent3.target), leaf(agent2.target))
    # every part of the model has a target copy (encoder included), and the policy learns too
    assert set(agent3.target) == {"encoder", "dynamics", "reward", "pi", "qs"}
    assert not np.array_equal(jax.tree.leaves(agent3.params["pi"])[0], jax.tree.leaves(agent0.params["pi"])[0])
    agent = agent3
    for _ in range(30):
        agent, m, _ = update(agent, batch, key)
    assert float(m["total_loss"]) < 0.8 * float(m0["total_loss"])
    assert int(agent.updates) == 33


# ------------------------------------------------------------------------------------------ configuration


def test_cli_defaults_for_tdmpc():
    resolve = lambda **kw: config.resolve(config.Args(algo="tdmpc", **kw))  # noqa: E731
    assert resolve(task="cartpole-swingup").action_repeat == 8
    assert resolve(task="walker-walk").action_repeat == 2
    assert resolve(task="finger-spin").action_repeat == 2
    assert resolve(task="humanoid-walk").action_repeat == 2
    assert resolve(task="cheetah-run").action_repeat == 4
    assert resolve(task="cup-catch").action_repeat == 4
    assert resolve(task="cartpole-swingup", action_repeat=3).action_repeat == 3  # explicit flag wins
    spec = resolve(task="cheetah-run")
    assert spec.agent_config.batch_size == 512 and spec.schedule.seed_steps == 5000
    tdmpc2 = config.resolve(config.Args(task="cartpole-swingup"))
    assert tdmpc2.action_repeat == 2 and tdmpc2.agent_config.batch_size == 256 and tdmpc2.schedule.seed_steps == 2500
    cfg = config.resolve(config.Args(algo="tdmpc")).agent_config
    assert (cfg.latent_dim, cfg.enc_dim, cfg.mlp_dim, cfg.horizon) == (50, 256, 512, 5)
    assert (cfg.batch_size, cfg.lr, cfg.discount) == (512, 1e-3, 0.99)
    assert (cfg.num_samples, cfg.num_pi_trajs, cfg.num_elites, cfg.iterations) == (537, 25, 64, 6)
    humanoid = config.resolve(config.Args(algo="tdmpc", task="humanoid-run")).agent_config
    assert humanoid.latent_dim == 100 and humanoid.iterations == 12
    small = config.resolve(config.Args(algo="tdmpc", num_samples=67, latent_dim=20, lr=3e-4)).agent_config
    assert (small.num_pi_trajs, small.latent_dim, small.lr) == (3, 20, 3e-4)
    with pytest.raises(config.ConfigError, match="tdmpc2 only"):
        config.resolve(config.Args(algo="tdmpc", num_q=5)).agent_config
    with pytest.raises(config.ConfigError, match="TD-MPC2 preset"):
        config.resolve(config.Args(algo="tdmpc", model_size=1)).agent_config


# ------------------------------------------------------------------------------------------ fused loop


def test_fused_loop_with_prioritized_replay():
    """Seeding, then updates whose priorities land in the buffer; no host transfer inside a chunk; evaluation
    reads the step schedules. (tests/test_cli.py runs the same loop through the CLI; the learning test on MJX.)"""
    from anakin_tdmpc.loop.fused import FusedLoop

    cfg = dataclasses.replace(TINY, num_samples=8, num_elites=2, num_pi_trajs=None, iterations=1, batch_size=8)
    algo = TDMPC(cfg.validate(), PointEnv.obs_dim, PointEnv.action_dim, PointEnv.episode_length)
    assert algo.cfg.num_pi_trajs == 0  # 8 // 21
    loop = FusedLoop(algo, PointEnv(), num_envs=4, buffer_capacity=2000, seed_steps=40, updates_per_iter=4,
                  pretrain_updates=40)
    carry = loop.init(jax.random.key(0))
    assert carry.buffer.priority.shape == (500, 4) and float(carry.buffer.max_priority) == 1.0
    n = jax.device_put(jnp.int32(12))
    carry, stats = loop.chunk(carry, n)  # 10 seeding iterations (+40 pretraining updates), 2 more
    jax.block_until_ready(carry)
    with jax.transfer_guard("disallow"):
        carry, stats = loop.chunk(carry, n)
        jax.block_until_ready((carry, stats))
    stats = jax.device_get(stats)
    assert int(carry.agent_steps) == 96 and int(carry.agent.updates) == 40 + 14 * 4
    assert "weighted_loss" in stats.update_sums
    assert int(stats.episodes) == 4 and np.all(np.isfinite(jax.tree.leaves(stats.update_sums)))
    # 24 iterations, one 20-step episode each (+ its final row): rows 0..24 of every env written
    np.testing.assert_array_equal(carry.buffer.pointer, [25] * 4)
    priority = np.asarray(carry.buffer.priority[:25])
    written = priority[priority != 1.0]
    assert written.size > 0 and np.all(written > 0)  # TD errors written back where starts were sampled
    # the newest row entered at the largest priority of the starts valid then (never above the stored max)
    np.testing.assert_array_equal(priority[24], float(carry.buffer.max_priority))
    assert float(carry.buffer.max_priority) <= priority.max()
    returns = loop.evaluate(carry.agent, jax.random.key(5), 2, carry.agent_steps)
    assert returns.shape == (2,) and bool(jnp.all(returns <= 0))


def test_td_target_does_not_bootstrap_past_a_terminal_observation():
    """Target Qs fixed at 3 (online Qs 0 at init): the TD target is r + 0.99 * 3, or r alone where the next
    observation is terminal; the value loss (sum over the two Qs of (0 - target)^2, rho-weighted) shows it."""
    cfg, algo, update = TINY, ALGO, UPDATE
    agent = algo.init(jax.random.key(0))
    qs = agent.target["qs"]
    last = sorted(k for k in qs if k.startswith("Dense"))[-1]
    qs = {**qs, last: {**qs[last], "bias": jnp.full_like(qs[last]["bias"], 3.0)}}
    agent = agent._replace(target={**agent.target, "qs": qs})
    batch = random_batch(jax.random.key(1), cfg)
    terminated = np.zeros(batch.reward.shape, np.float32)
    terminated[-1, ::2] = 1.0  # every other window ends in a terminal state
    rho = (0.5 ** np.arange(cfg.horizon))[:, None]
    target = np.asarray(batch.reward) + 0.99 * 3.0 * (1 - terminated)
    _, metrics, _ = update(agent, batch._replace(terminated=jnp.asarray(terminated)), jax.random.key(2))
    assert float(metrics["value_loss"]) == pytest.approx((rho * 2 * target**2).sum(0).mean(), rel=1e-5)


def test_masked_steps_past_an_episode_end_count_zero():
    """Episodic windows that run past their episode's end (batch.mask, replay.py): at init every masked loss
    has the closed form of test_loss_values_on_a_known_batch with rho^t replaced by rho^t * mask_t, and
    whatever lies after a window's end (observations, actions, rewards) does not change the update."""
    cfg, algo = TINY, ALGO
    update = jax.jit(algo.update)
    agent = algo.init(jax.random.key(0))
    H, B = cfg.horizon, cfg.batch_size
    ends = np.arange(B) % (H + 1)  # window b's episode ends after transition ends[b] (H - 1 and H: whole)
    mask = (np.arange(H)[:, None] <= ends[None, :]).astype(np.float32)
    terminated = ((np.arange(H)[:, None] == ends[None, :]) & (ends < H - 1)[None, :]).astype(np.float32)
    batch = random_batch(jax.random.key(1), cfg)._replace(mask=jnp.asarray(mask), terminated=jnp.asarray(terminated))
    new, metrics, priority = update(agent, batch, jax.random.key(2))
    rho = (0.5 ** np.arange(H))[:, None]
    r = np.asarray(batch.reward)
    np.testing.assert_allclose(priority, (rho * mask * 2 * np.abs(r)).sum(0), rtol=1e-5)
    assert float(metrics["reward_loss"]) == pytest.approx((rho * mask * r**2).sum(0).mean(), rel=1e-5)
    assert float(metrics["value_loss"]) == pytest.approx((rho * mask * 2 * r**2).sum(0).mean(), rel=1e-5)
    assert priority[0] == pytest.approx(2 * abs(r[0, 0]), rel=1e-5)  # window 0 ends after its first step

    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    obs_mask = np.concatenate([np.ones((1, B)), mask])[..., None] > 0
    scrambled = batch._replace(
        obs=jnp.where(obs_mask, batch.obs, 100 * jax.random.normal(k1, batch.obs.shape)),
        action=jnp.where(mask[..., None] > 0, batch.action, jax.random.uniform(k2, batch.action.shape)),
        reward=jnp.where(mask > 0, batch.reward, 50 * jax.random.normal(k3, batch.reward.shape)),
    )
    new2, metrics2, priority2 = update(agent, scrambled, jax.random.key(2))
    for a, b in zip(jax.tree.leaves((new, metrics, priority)), jax.tree.leaves((new2, metrics2, priority2))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    _, unmasked, _ = update(agent, scrambled._replace(mask=None), jax.random.key(2))
    assert float(unmasked["reward_loss"]) > 10 * float(metrics["reward_loss"])
