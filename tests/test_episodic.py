"""Tasks that terminate: the env wrapper's terminated / final flags, the fused loop storing final observations
and terminal flags, TD-MPC2's episodic pieces switched on by the task, and brax's MJX tasks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import point_task
from anakin_tdmpc import envs
from anakin_tdmpc.build import build
from anakin_tdmpc.config import Args, resolve
from anakin_tdmpc.loop import replay

envs.register("falling", point_task.make_episodic_env)
TINY = dict(task="falling", num_envs=4, model_size=1, latent_dim=16, mlp_dim=32, enc_dim=32, num_q=2,
            num_samples=16, num_elites=4, num_pi_trajs=2, iterations=2, batch_size=8, seed_steps=200,
            action_repeat=1, episode_length=50, buffer_size=4000, total_timesteps=4000, eval_episodes=8)


def test_wrapper_tells_terminations_from_time_limits():
    env = envs.make_env("falling", action_repeat=1, episode_length=30)
    assert env.episodic
    state = env.reset(jax.random.key(0), 3)
    step = jax.jit(env.step)
    # env 0 pushed right until it leaves [-1.5, 1.5]; envs 1, 2 held near the origin until the time limit
    push = jnp.array([[1.0], [0.0], [0.0]])
    seen_terminal = False
    for t in range(30):
        state, out = step(state, push)
        terminated, done, final = (np.asarray(x) for x in (out.terminated, out.done, out.final))
        np.testing.assert_array_equal(final, done)  # every end of this task is a state to learn from
        if terminated[0]:
            seen_terminal = True
            assert abs(float(out.final_obs[0, 0])) >= 1.5  # the terminal observation, not the reset one
            assert abs(float(state.obs[0, 0])) <= 1.0  # the next episode has begun
        assert not terminated[1:].any()
    assert seen_terminal
    assert bool(out.done[1]) and bool(out.done[2])  # step 30: the time limit, a truncation


@pytest.fixture(scope="module")
def trained():
    """The falling point, trained by a tiny TD-MPC2 for 400 fused iterations (1600 agent steps, seed 0)."""
    env, algo, loop, schedule = build(Args(**TINY))
    carry = loop.init(jax.random.key(0))
    carry, stats = loop.chunk(carry, jnp.int32(400))
    return algo, loop, carry, jax.device_get(stats)


def test_fused_loop_stores_final_observations_and_terminal_flags(trained):
    algo, loop, carry, stats = trained
    assert algo.cfg.episodic  # the task's setting reaches the algorithm
    assert "termination_loss" in stats.update_sums and np.isfinite(stats.update_sums["termination_loss"])
    buf = jax.device_get(carry.buffer)
    terminal = np.asarray(buf.terminal)
    assert terminal.any()
    # a terminal row holds an observation outside [-1.5, 1.5] and is never followed by the same episode
    rows, envs_ = np.nonzero(terminal)
    assert np.all(np.abs(buf.obs[rows, envs_, 0]) >= 1.5 - 1e-6)
    following = np.asarray(buf.episode_step)[(rows + 1) % buf.obs.shape[0], envs_]
    assert np.all((following == 0) | (following == -1))
    # windows sampled from it never run past a terminal observation
    batch = replay.sample(carry.buffer, jax.random.key(1), 512, algo.cfg.horizon + 1)
    term = np.asarray(batch.terminated)
    assert term[-1].any() and not term[:-1].any()
    assert np.all(np.abs(np.asarray(batch.obs)[-1, term[-1] == 1, 0]) >= 1.5 - 1e-6)
    # the loop's own batches (past_end: episodic task) also start within a horizon of a termination, masked
    # after it: the terminal observation is then the last one in the window's episode
    assert loop.past_end and loop._sample(carry.buffer, jax.random.key(2)).mask is not None
    batch = replay.sample(carry.buffer, jax.random.key(2), 512, algo.cfg.horizon + 1, past_end=True)
    mask, term = np.asarray(batch.mask), np.asarray(batch.terminated)
    assert (mask[-1] == 0).any() and term[:-1].any()
    cut = mask.sum(0).astype(int)  # transitions inside each window's episode
    ended = term.sum(0) == 1
    np.testing.assert_array_equal(term[cut[ended] - 1, np.flatnonzero(ended)], 1.0)
    assert np.all(term.sum(0) <= 1) and np.all(term <= mask)


def random_return(length, episodes=256, seed=0):
    """Mean return of uniform random actions on the falling point, each episode counted to its end."""
    env = point_task.make_episodic_env()

    def episode(key):
        k_reset, k_act = jax.random.split(key)

        def step(carry, k):
            state, alive, total = carry
            state = env.step(state, jax.random.uniform(k, (1,), minval=-1, maxval=1))
            return (state, alive & (state.done == 0), total + jnp.where(alive, state.reward, 0.0)), None

        (_, _, total), _ = jax.lax.scan(step, (env.reset(k_reset), True, 0.0), jax.random.split(k_act, length))
        return total

    return float(jnp.mean(jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), episodes))))


def test_tdmpc2_learns_to_keep_the_falling_point_alive(trained):
    """Learning test of the episodic pieces: random actions let the point fall out (or drift off the origin)
    early; after 1600 agent steps a tiny TD-MPC2 keeps it near the origin for the whole 50-step episode."""
    algo, loop, carry, _ = trained
    returns = np.asarray(loop.evaluate(carry.agent, jax.random.key(1), 8, carry.agent_steps))
    floor = random_return(50)
    print(f"falling point: random {floor:.1f} -> TD-MPC2 eval {returns.mean():.1f} of at most 50")
    assert returns.mean() >= 40 and returns.mean() >= floor + 15, (floor, returns)


def test_tasks_without_terminations_stay_non_episodic():
    _, algo, _, _ = build(Args(**{**TINY, "task": "point_task:make_env"}))
    assert not algo.cfg.episodic


def test_env_with_a_non_bool_episodic_is_refused():
    class Bad(point_task.Point):
        episodic = "yes"

    envs.register("bad_episodic", Bad)
    with pytest.raises(envs.EnvError, match="episodic must be True or False"):
        envs.make_env("bad_episodic")


def test_brax_task_names_defaults_and_terminations():
    assert envs.canonical_task_name("brax/inverted-pendulum") == "brax/inverted_pendulum"
    assert envs.TASK_SOURCES["brax/hopper"] == "brax"
    spec = resolve(Args(task="brax/hopper", algo="tdmpc"))
    assert spec.action_repeat == 1 and envs.domain("brax/hopper") == ""
    env = envs.make_env("brax/inverted_pendulum", action_repeat=1)
    assert (env.obs_dim, env.action_dim, env.episode_length, env.episodic) == (4, 1, 1000, True)
    assert env.ctrl_range == ((-3.0, 3.0),)  # the agent's [-1, 1] spans the motor's whole range
    assert env.render_model is not None
    # the env protocol's check (shapes and dtypes of reset / step, traced: nothing compiles)
    envs.check_env("brax/inverted_pendulum", env.playground_env)
    state = jax.eval_shape(lambda k: env.reset(k, 2), jax.random.key(0))
    out = jax.eval_shape(env.step, state, jax.ShapeDtypeStruct((2, 1), jnp.float32))[1]
    assert out.terminated.shape == (2,) and out.terminated.dtype == jnp.bool_


@pytest.mark.slow
def test_brax_pendulum_terminates_when_the_pole_falls():
    env = envs.make_env("brax/inverted_pendulum", action_repeat=1)
    state = env.reset(jax.random.key(0), 2)
    step = jax.jit(env.step)
    for t in range(50):  # a constant push drops the pole: brax's done, here a termination
        state, out = step(state, jnp.full((2, 1), 0.8))
        if bool(out.terminated[0]):
            break
    assert bool(out.terminated[0]) and bool(out.final[0]) and t < 49
    assert abs(float(out.final_obs[0, 1])) > 0.2  # brax ends the episode once the pole angle leaves [-0.2, 0.2]
    assert int(out.episode_length[0]) == t + 1 and float(out.episode_return[0]) == pytest.approx(t + 1)


class PushRight:
    """An 'agent' that always pushes +1 (only what `episodes` calls)."""

    def act(self, state, obs, mean, key, eval_mode, agent_steps):
        return jnp.ones((obs.shape[0], 1)), mean

    def initial_plan_mean(self, n):
        return jnp.zeros((n, 1, 1))


def test_eval_counts_an_episode_only_up_to_its_termination():
    from anakin_tdmpc.loop.episodes import episodes

    env = envs.make_env("falling", action_repeat=1, episode_length=30)
    result = jax.jit(lambda k: episodes(PushRight(), env, None, k, 3, 0, frames=False))(jax.random.key(0))
    # the same episodes by hand: the raw env from the same starts, pushed right until it leaves [-1.5, 1.5]
    raw = point_task.make_episodic_env()
    state = env.reset(jax.random.split(jax.random.key(0))[0], 3)
    for e in range(3):
        s = jax.tree.map(lambda x: x[e], state.physics)
        total, length = 0.0, 0
        while True:
            s = raw.step(s, jnp.ones(1))
            total, length = total + float(s.reward), length + 1
            if float(s.done) or length == 30:
                break
        assert int(result.lengths[e]) == length < 30
        assert float(result.returns[e]) == pytest.approx(total, rel=1e-5)
