"""Unit tests of TD-MPC2's pieces: discount heuristic, policy, planner on a known model, losses, update."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.agents import layers
from anakin_tdmpc.loop.replay import Batch
from anakin_tdmpc.agents.tdmpc2 import TDMPC2, TDMPC2Config, discount_for, planner_iterations

TINY = TDMPC2Config(latent_dim=16, enc_dim=32, mlp_dim=32, num_q=3, num_samples=64, num_elites=8,
                    num_pi_trajs=4, iterations=3, batch_size=16)


def random_batch(key, cfg, obs_dim=5, action_dim=2):
    k1, k2, k3 = jax.random.split(key, 3)
    H, B = cfg.horizon, cfg.batch_size
    return Batch(
        obs=jax.random.normal(k1, (H + 1, B, obs_dim)),
        action=jax.random.uniform(k2, (H, B, action_dim), minval=-1, maxval=1),
        reward=jax.random.uniform(k3, (H, B)),
    )


def test_discount_heuristic():
    assert discount_for(500) == pytest.approx(0.99)
    assert discount_for(1000) == pytest.approx(0.995)  # (200-1)/200 = 0.995 -> at the cap
    assert discount_for(5000) == pytest.approx(0.995)  # capped
    assert discount_for(50) == pytest.approx(0.95)  # (10-1)/10 = 0.9 -> floor
    assert discount_for(250) == pytest.approx(0.98)


def test_planner_iterations_heuristic():
    assert planner_iterations(TDMPC2Config(), 6) == 6
    assert planner_iterations(TDMPC2Config(), 21) == 8


def test_init_shapes_and_zero_heads():
    algo = TDMPC2(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    assert jax.tree.leaves(agent.params["qs"])[0].shape[0] == 3
    z = algo.encode(agent.params, jnp.ones((4, 5)))
    assert z.shape == (4, 16)
    np.testing.assert_allclose(z.reshape(4, 2, 8).sum(-1), 1.0, rtol=1e-5)  # SimNorm latent
    a = jnp.zeros((4, 2))
    np.testing.assert_allclose(algo.scalar(algo.reward_logits(agent.params, z, a)), 0.0, atol=1e-5)
    np.testing.assert_allclose(algo.scalar(algo.q_all(agent.params["qs"], z, a)), 0.0, atol=1e-5)


def test_policy_is_squashed_and_log_std_bounded():
    algo = TDMPC2(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (100, 16)) * 50
    action, mean, entropy = algo.pi(agent.params["pi"], z, jax.random.key(2))
    assert action.shape == (100, 2) and mean.shape == (100, 2) and entropy.shape == (100,)
    assert bool(jnp.all(jnp.abs(action) <= 1)) and bool(jnp.all(jnp.abs(mean) <= 1))
    # scaled entropy = action_dim * Gaussian entropy of the pre-squash sample: bounded by log_std in [-10, 2]
    assert bool(jnp.all(jnp.isfinite(entropy)))


def test_initial_loss_values_are_log_bins():
    """Reward and Q heads start at zero logits: each cross-entropy is exactly log(101)."""
    cfg = dataclasses.replace(TINY, lr=1e-3)  # the next test's config: one compiled update serves both (the
    # persistent compilation cache), where running it op by op takes a minute; the lr does not enter the loss
    algo = TDMPC2(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    _, metrics, priorities = jax.jit(algo.update)(agent, random_batch(jax.random.key(1), cfg), jax.random.key(2))
    assert priorities is None  # uniform replay
    rho_sum = sum(cfg.rho**t for t in range(cfg.horizon)) / cfg.horizon
    assert float(metrics["reward_loss"]) == pytest.approx(np.log(101) * rho_sum, rel=1e-5)
    assert float(metrics["value_loss"]) == pytest.approx(np.log(101) * rho_sum, rel=1e-5)
    total = cfg.consistency_coef * metrics["consistency_loss"] + 0.1 * metrics["reward_loss"] + 0.1 * metrics["value_loss"]
    assert float(metrics["total_loss"]) == pytest.approx(float(total), rel=1e-5)


def test_update_lowers_the_loss_on_a_fixed_batch():
    cfg = dataclasses.replace(TINY, lr=1e-3)
    algo = TDMPC2(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    batch = random_batch(jax.random.key(1), cfg)
    update = jax.jit(algo.update)
    key = jax.random.key(2)
    agent1, m0, _ = update(agent, batch, key)
    _, m1, _ = update(agent1, batch, key)  # same batch, same randomness: loss at the updated parameters
    assert float(m1["total_loss"]) < float(m0["total_loss"])
    for _ in range(30):
        agent1, m, _ = update(agent1, batch, key)
    assert float(m["total_loss"]) < 0.8 * float(m0["total_loss"])
    assert int(agent1.updates) == 31
    # target Qs trail the online Qs (Polyak, tau 0.01)
    q, tq = jax.tree.leaves(agent1.params["qs"])[0], jax.tree.leaves(agent1.target_qs)[0]
    q0 = jax.tree.leaves(agent.params["qs"])[0]
    assert 0 < float(jnp.abs(tq - q0).max()) < float(jnp.abs(q - q0).max())
    assert float(m["pi_scale"]) >= 1.0


class KnownModel(TDMPC2):
    """A hand-made world model: latent is constant, reward = -10 |a - a*|^2, Q = 0."""

    best = jnp.array([0.6, -0.3])

    def encode(self, params, obs):
        return jnp.zeros(obs.shape[:-1] + (self.cfg.latent_dim,))

    def next(self, params, z, a):
        return z

    def reward_logits(self, params, z, a):
        r = -10.0 * jnp.sum((a - self.best) ** 2, axis=-1)
        return jnp.log(layers.two_hot(r, self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax) + 1e-30)

    def q_two(self, q_params, z, a, rng, reduce):
        return jnp.zeros(z.shape[:-1])


def test_planner_finds_the_best_action_of_a_known_model():
    cfg = dataclasses.replace(TINY, num_samples=512, num_elites=64, num_pi_trajs=24, iterations=6)
    algo = KnownModel(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    obs = jnp.zeros((8, 5))
    action, mean = jax.jit(lambda o, m, k: algo.act(agent, o, m, k, True, 0))(obs, algo.initial_plan_mean(8), jax.random.key(1))
    assert action.shape == (8, 2) and mean.shape == (8, 3, 2)
    np.testing.assert_allclose(action, jnp.broadcast_to(algo.best, (8, 2)), atol=0.1)
    np.testing.assert_allclose(mean, jnp.broadcast_to(algo.best, (8, 3, 2)), atol=0.1)
    # exploration noise only in training mode
    noisy, _ = algo.act(agent, obs, algo.initial_plan_mean(8), jax.random.key(1), False, 0)
    assert not np.allclose(noisy, action)


def test_planner_warm_start_shifts_the_previous_mean():
    """With a planner that cannot move (1 iteration, min_std = max_std tiny), the new mean is the shifted old one."""
    cfg = dataclasses.replace(TINY, iterations=1, min_std=1e-6, max_std=1e-6, num_pi_trajs=0, num_elites=64)

    class Flat(KnownModel):
        def reward_logits(self, params, z, a):
            return jnp.zeros(a.shape[:-1] + (self.cfg.num_bins,))

    algo = Flat(cfg, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    prev = jnp.array([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]])
    _, mean = algo.act(agent, jnp.zeros((1, 5)), prev, jax.random.key(3), True, 0)
    np.testing.assert_allclose(mean[0], [[0.3, 0.4], [0.5, 0.6], [0.0, 0.0]], atol=1e-4)


def test_act_is_deterministic_given_rng():
    algo = TDMPC2(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(4), (3, 5))
    a1, m1 = algo.act(agent, obs, algo.initial_plan_mean(3), jax.random.key(5), False, 0)
    a2, m2 = algo.act(agent, obs, algo.initial_plan_mean(3), jax.random.key(5), False, 10**6)
    np.testing.assert_array_equal(a1, a2)  # and the step (no schedules in TD-MPC2) changes nothing
    np.testing.assert_array_equal(m1, m2)
    assert bool(jnp.all(jnp.abs(a1) <= 1))


def test_value_of_a_shared_latent_equals_the_broadcast_one():
    """The planner passes its one latent as [1, L]: the same values as the latent repeated for every sample."""
    algo = TDMPC2(TINY, obs_dim=5, action_dim=2, episode_length=500)
    agent = algo.init(jax.random.key(0))
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape), agent.params)
    z = algo.encode(params, jax.random.normal(jax.random.key(2), (1, 5)))
    actions = jax.random.uniform(jax.random.key(3), (TINY.horizon, 64, 2), minval=-1, maxval=1)
    shared = algo.estimate_value(params, z, actions, jax.random.key(4))
    repeated = algo.estimate_value(params, jnp.repeat(z, 64, 0), actions, jax.random.key(4))
    assert shared.shape == (64,)
    np.testing.assert_allclose(shared, repeated, rtol=1e-4, atol=1e-5)


def test_bf16_planner_plans_like_the_float32_one():
    cfg = dataclasses.replace(TINY, num_samples=512, num_elites=64, num_pi_trajs=24, iterations=6)
    algos = [KnownModel(dataclasses.replace(cfg, planner_bf16=b), obs_dim=5, action_dim=2, episode_length=500)
             for b in (True, False)]
    agent = algos[0].init(jax.random.key(0))
    obs = jnp.zeros((4, 5))
    actions = [a.act(agent, obs, a.initial_plan_mean(4), jax.random.key(1), True, 0)[0] for a in algos]
    np.testing.assert_allclose(actions[0], actions[1], atol=0.05)
    # and on the real networks: the same shapes, finite, within the action box
    algo = TDMPC2(cfg, obs_dim=5, action_dim=2, episode_length=500)
    action, mean = algo.act(algo.init(jax.random.key(0)), obs, algo.initial_plan_mean(4), jax.random.key(1), False, 0)
    assert action.shape == (4, 2) and mean.shape == (4, 3, 2)
    assert bool(jnp.all(jnp.isfinite(action))) and bool(jnp.all(jnp.abs(action) <= 1))


def test_policy_loss_reads_the_q_ensemble_with_dropout_and_targets_without():
    """As the official code: the policy loss runs the Q-ensemble in train mode (dropout on), the TD target's
    target Qs in eval mode (off)."""
    cfg = dataclasses.replace(TINY, dropout=0.5)
    algo = TDMPC2(cfg, 5, 2, 500)
    agent = algo.init(jax.random.key(0))
    calls = []
    q_two = algo.q_two

    def spy(q_params, z, a, rng, reduce, dropout_rng=None):
        calls.append((reduce, dropout_rng is not None))
        return q_two(q_params, z, a, rng, reduce, dropout_rng)

    algo.q_two = spy
    # tracing the update is enough to see how it calls the ensemble (running it op by op takes a minute)
    jax.eval_shape(algo.update, agent, random_batch(jax.random.key(1), cfg), jax.random.key(2))
    assert calls == [("min", False), ("avg", True)]
    # dropout changes what two members say about the same input once their last layers are non-zero
    qs = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(3), x.shape), agent.params["qs"])
    z, a = jax.random.normal(jax.random.key(4), (8, 16)), jnp.zeros((8, 2))
    plain = q_two(qs, z, a, jax.random.key(5), "avg")
    dropped = q_two(qs, z, a, jax.random.key(5), "avg", jax.random.key(6))
    assert not np.allclose(plain, dropped)
    no_dropout = TDMPC2(dataclasses.replace(TINY, dropout=0.0), 5, 2, 500)
    np.testing.assert_allclose(no_dropout.q_two(qs, z, a, jax.random.key(5), "avg", jax.random.key(6)),
                               no_dropout.q_two(qs, z, a, jax.random.key(5), "avg"), rtol=1e-6)


# ------------------------------------------------------------------- losses by hand, on fixed weights


def _q_at_bins(q_params, bins_per_member):
    """Q-ensemble params whose member m outputs (whatever its input) all its mass at bin bins_per_member[m]: the
    last layer's kernel zero, its bias +60 there, so the scalar is symexp(bin centre)."""
    last = q_params["Dense_0"]
    bias = np.zeros(last["bias"].shape, np.float32)
    for m, k in enumerate(bins_per_member):
        bias[m, k] = 60.0
    return {**q_params, "Dense_0": {"kernel": jnp.zeros_like(last["kernel"]), "bias": jnp.asarray(bias)}}


def test_td_target_is_reward_plus_discounted_min_of_two_target_qs():
    cfg = dataclasses.replace(TINY, num_q=2)
    algo = TDMPC2(cfg, 5, 2, 500)  # discount 0.99
    agent = algo.init(jax.random.key(0))
    # bins are 0.2 apart over [-10, 10] in symlog space: bin 60 -> symlog 2 -> e^2 - 1; bin 55 -> e^1 - 1
    target_qs = _q_at_bins(agent.target_qs, [60, 55])
    reward = jnp.array([[0.5, -1.0], [2.0, 0.0], [0.0, 3.0]])  # [H, B]
    next_z = jax.random.normal(jax.random.key(1), (3, 2, 16))
    td = algo.td_target(agent.params, target_qs, next_z, reward, jax.random.key(2))
    np.testing.assert_allclose(td, np.asarray(reward) + 0.99 * (np.e - 1), rtol=1e-5)
    # three members: the min of the two the key picks, whichever they are
    algo3 = TDMPC2(dataclasses.replace(TINY, num_q=3), 5, 2, 500)
    qs3 = _q_at_bins(algo3.init(jax.random.key(0)).target_qs, [60, 55, 70])
    values = [np.e**2 - 1, np.e - 1, np.e**4 - 1]
    pair_mins = {min(values[i], values[j]) for i in range(3) for j in range(i + 1, 3)}
    for seed in range(6):
        td = np.asarray(algo3.td_target(agent.params, qs3, next_z, reward, jax.random.key(seed)))
        (q,) = {round(float(x), 3) for x in ((td - np.asarray(reward)) / 0.99).ravel()}
        assert any(abs(q - m) < 1e-3 for m in pair_mins), (q, pair_mins)


def test_consistency_loss_weights_each_step_by_rho():
    from anakin_tdmpc.agents.tdmpc2 import consistency_loss

    rho = 0.5 ** jnp.arange(4, dtype=jnp.float32)
    target = jnp.zeros((3, 2, 2))
    pred = [jnp.full((2, 2), 1.0), jnp.full((2, 2), 2.0), jnp.array([[3.0, 0.0], [0.0, 0.0]])]
    # step errors (mean of squares): 1, 4, 9/4; weighted 1 + 0.5 * 4 + 0.25 * 2.25 = 3.5625; over H = 3
    assert float(consistency_loss(pred, target, rho)) == pytest.approx(3.5625 / 3)


def test_policy_loss_and_running_scale_by_hand():
    from anakin_tdmpc.agents.tdmpc2 import next_scale, policy_loss

    # P95 - P5 = 30 -> the scale moves 1% of the way from 2 towards 30; below 1 the spread counts as 1
    assert float(next_scale(jnp.float32(2.0), jnp.float32(-10.0), jnp.float32(20.0), 0.01)) == pytest.approx(2.28)
    assert float(next_scale(jnp.float32(2.0), jnp.float32(0.0), jnp.float32(0.5), 0.01)) == pytest.approx(1.99)
    q = jnp.array([[4.0, 8.0], [2.0, 2.0]])  # [H+1 = 2, B = 2]
    entropy = jnp.array([[1.0, 3.0], [0.0, 10.0]])
    rho = jnp.array([1.0, 0.5])
    # step 0: -(0.1 * 2 + 6 / 2) = -3.2; step 1: -(0.1 * 5 + 2 / 2) = -1.5, x 0.5; mean over steps
    assert float(policy_loss(q, entropy, jnp.float32(2.0), 0.1, rho)) == pytest.approx((-3.2 - 0.75) / 2)


# ------------------------------------------------------------------- terminations (episodic tasks)


def test_td_target_does_not_bootstrap_past_a_terminal_observation():
    algo = TDMPC2(dataclasses.replace(TINY, num_q=2), 5, 2, 500)  # discount 0.99
    agent = algo.init(jax.random.key(0))
    target_qs = _q_at_bins(agent.target_qs, [60, 55])  # min of the two: e - 1
    reward = jnp.array([[0.5, -1.0], [2.0, 0.0], [0.0, 3.0]])  # [H, B]
    terminated = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    next_z = jax.random.normal(jax.random.key(1), (3, 2, 16))
    td = algo.td_target(agent.params, target_qs, next_z, reward, jax.random.key(2), terminated)
    expected = np.asarray(reward) + 0.99 * (np.e - 1) * (1 - np.asarray(terminated))
    np.testing.assert_allclose(td, expected, rtol=1e-5)
    assert float(td[2, 0]) == 0.0 and float(td[1, 1]) == 0.0  # the target at a terminal transition: its reward


def test_termination_loss_by_hand():
    from anakin_tdmpc.agents.tdmpc2 import termination_loss

    logits = jnp.array([[0.0, 2.0], [-1.0, 30.0]])
    terminated = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    # -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); -log(1 - sigmoid(-1)) = log(1 + e^-1);
    # -log sigmoid(30) = log(1 + e^-30)
    expected = (np.log(2) + np.log1p(np.e**2) + np.log1p(np.e**-1) + np.log1p(np.e**-30)) / 4
    assert float(termination_loss(logits, terminated)) == pytest.approx(expected, rel=1e-6)
    assert float(termination_loss(jnp.array([-100.0, 100.0]), jnp.array([0.0, 1.0]))) == pytest.approx(0.0, abs=1e-6)


def _bitwise_equal(a, b):
    return all(bool(jnp.all(x == y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_no_terminal_flag_leaves_the_td_target_bit_for_bit_unmasked():
    """Where nothing terminates (DMC), the terminal mask multiplies by exactly 1: the TD target equals, bit for
    bit, the target of a batch without terminal flags (as every batch was before terminations existed). The
    update reads the batch's flags only through this target, so the whole update is unchanged too."""
    algo = TDMPC2(TINY, 5, 2, 500)
    agent = algo.init(jax.random.key(0))
    target_qs = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(3), x.shape), agent.target_qs)
    reward = jax.random.uniform(jax.random.key(4), (3, 16))
    next_z = jax.random.normal(jax.random.key(1), (3, 16, 16))
    td = jax.jit(algo.td_target)
    unmasked = td(agent.params, target_qs, next_z, reward, jax.random.key(2))
    masked = td(agent.params, target_qs, next_z, reward, jax.random.key(2), jnp.zeros_like(reward))
    assert bool(jnp.all(unmasked == masked)) and bool(jnp.any(unmasked != reward))


def test_episodic_update_learns_the_termination_head():
    cfg = dataclasses.replace(TINY, episodic=True, lr=1e-3)
    algo = TDMPC2(cfg, 5, 2, 500)
    agent = algo.init(jax.random.key(0))
    assert "termination" in agent.params and "termination" in layers.model_part(agent.params)
    # the other heads start as a task without one does
    plain = TDMPC2(TINY, 5, 2, 500).init(jax.random.key(0))
    assert _bitwise_equal({k: v for k, v in agent.params.items() if k != "termination"}, plain.params)
    batch = random_batch(jax.random.key(1), cfg)
    terminated = (batch.reward > 0.8).astype(jnp.float32)  # some windows end terminal
    batch = batch._replace(terminated=terminated.at[:-1].set(0.0))
    update = jax.jit(algo.update)
    agent, m0, _ = update(agent, batch, jax.random.key(2))
    assert float(m0["total_loss"]) == pytest.approx(
        20 * float(m0["consistency_loss"]) + 0.1 * float(m0["reward_loss"]) + 0.1 * float(m0["value_loss"])
        + float(m0["termination_loss"]), rel=1e-5)
    for _ in range(40):
        agent, m, _ = update(agent, batch, jax.random.key(2))
    assert float(m["termination_loss"]) < 0.5 * float(m0["termination_loss"])


def test_masked_losses_by_hand():
    """Episodic windows that run past their episode's end: masked steps count zero, still divided by B."""
    from anakin_tdmpc.agents.tdmpc2 import consistency_loss, policy_loss, termination_loss

    rho = 0.5 ** jnp.arange(4, dtype=jnp.float32)
    target = jnp.zeros((3, 2, 2))
    pred = [jnp.full((2, 2), 1.0), jnp.full((2, 2), 2.0), jnp.array([[3.0, 0.0], [0.0, 0.0]])]
    mask = jnp.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # window 1 ends after step 0, window 0 after step 1
    # step 0: mean(1, 1) = 1; step 1: (4 + 0) / 2 = 2, x 0.5; step 2: 0; over H = 3
    assert float(consistency_loss(pred, target, rho, mask)) == pytest.approx((1 + 1) / 3)
    logits = jnp.array([[0.0, 2.0], [-1.0, 30.0]])
    terminated = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    # only log 2 (step 0, window 0) and log(1 + e^-1) (step 1, window 0) count, over 4 entries
    expected = (np.log(2) + np.log1p(np.e**-1)) / 4
    assert float(termination_loss(logits, terminated, jnp.array([[1.0, 0.0], [1.0, 0.0]]))) == pytest.approx(expected)
    q = jnp.array([[4.0, 8.0], [2.0, 2.0]])
    entropy = jnp.array([[1.0, 3.0], [0.0, 10.0]])
    # step 0 in full: -3.2; step 1 window 0 only: -(0 + 2 / 2) / 2 = -0.5, x 0.5; mean over steps
    loss = policy_loss(q, entropy, jnp.float32(2.0), 0.1, jnp.array([1.0, 0.5]), jnp.array([[1.0, 1.0], [1.0, 0.0]]))
    assert float(loss) == pytest.approx((-3.2 - 0.25) / 2)


def _past_end_batch(key, cfg, ends):
    """A random batch whose window b runs past its episode's end after transition ends[b] (H: never)."""
    batch = random_batch(key, cfg)
    H = cfg.horizon
    mask = (jnp.arange(H)[:, None] <= jnp.asarray(ends)[None, :]).astype(jnp.float32)
    last = jnp.arange(H)[:, None] == jnp.asarray(ends)[None, :]
    return batch._replace(mask=mask, terminated=(last & (jnp.asarray(ends) < H - 1)[None, :]).astype(jnp.float32))


def _scramble_past_end(batch, key):
    """Replace everything after each window's episode end (obs after it, its actions and rewards) by noise."""
    k1, k2, k3 = jax.random.split(key, 3)
    obs_mask = jnp.concatenate([jnp.ones_like(batch.mask[:1]), batch.mask])[..., None]
    return batch._replace(
        obs=jnp.where(obs_mask > 0, batch.obs, 100 * jax.random.normal(k1, batch.obs.shape)),
        action=jnp.where(batch.mask[..., None] > 0, batch.action, jax.random.uniform(k2, batch.action.shape)),
        reward=jnp.where(batch.mask > 0, batch.reward, 50 * jax.random.normal(k3, batch.reward.shape)),
    )


@pytest.mark.parametrize("episodic", [True, False])
def test_update_ignores_everything_past_a_windows_episode_end(episodic):
    cfg = dataclasses.replace(TINY, episodic=episodic)
    algo = TDMPC2(cfg, 5, 2, 500)
    agent = algo.init(jax.random.key(0))
    ends = jnp.arange(cfg.batch_size) % cfg.horizon  # windows ending after each step, and whole ones
    batch = _past_end_batch(jax.random.key(1), cfg, ends)
    update = jax.jit(algo.update)
    new, metrics, _ = update(agent, batch, jax.random.key(2))
    new2, metrics2, _ = update(agent, _scramble_past_end(batch, jax.random.key(3)), jax.random.key(2))
    for a, b in zip(jax.tree.leaves((new, metrics)), jax.tree.leaves((new2, metrics2))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    # the scrambled data does change an update that does not mask it
    unmasked, _, _ = update(agent, _scramble_past_end(batch, jax.random.key(3))._replace(mask=None), jax.random.key(2))
    assert not np.allclose(jax.tree.leaves(unmasked.params)[0], jax.tree.leaves(new.params)[0])
    # a mask of ones is the unmasked update
    whole = batch._replace(mask=jnp.ones_like(batch.mask))
    a, _, _ = update(agent, whole, jax.random.key(2))
    b, _, _ = update(agent, whole._replace(mask=None), jax.random.key(2))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def _termination_always(params, logit):
    last = params["termination"]["Dense_0"]
    head = {"kernel": jnp.zeros_like(last["kernel"]), "bias": jnp.full_like(last["bias"], logit)}
    return {**params, "termination": {**params["termination"], "Dense_0": head}}


def test_planning_value_stops_at_a_predicted_termination():
    episodic = TDMPC2(dataclasses.replace(TINY, episodic=True), 5, 2, 500)
    plain = TDMPC2(TINY, 5, 2, 500)
    agent = episodic.init(jax.random.key(0))
    # non-zero reward and Q heads, so that masking shows
    params = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(3), x.shape), agent.params)
    z = jax.random.normal(jax.random.key(4), (6, 16))
    actions = jax.random.uniform(jax.random.key(5), (3, 6, 2), minval=-1, maxval=1)
    never = episodic.estimate_value(_termination_always(params, -50.0), z, actions, jax.random.key(6))
    np.testing.assert_array_equal(never, plain.estimate_value(params, z, actions, jax.random.key(6)))
    # terminal from the first predicted latent on: only the reward of the step into it counts
    always = episodic.estimate_value(_termination_always(params, 50.0), z, actions, jax.random.key(6))
    first_reward = episodic.scalar(episodic.reward_logits(params, z, actions[0]))
    np.testing.assert_allclose(always, first_reward, rtol=1e-6)
    assert not np.allclose(never, always)
