"""The fused training loop (the "Anakin" architecture of the Podracer paper): acting, env stepping, replay
insertion and updates for N parallel envs in one compiled program.

One iteration, for all N envs at once:

    action, plan_mean = uniform random while seeding, else agent.act(agent_state, obs, plan_mean, .., agent_steps)
    env_state, out    = env.step(env_state, action)              # MJX, auto-reset
    buffer            = replay.add(buffer, obs, action, reward, episode_step, .., final_obs, final, terminated)
    agent_state       = n_updates x agent.update(agent_state, replay.sample(...))   (+ priority write-back)

where n_updates is 0 while seeding, `pretrain_updates` once when seeding ends (the paper's burst of
seed_steps updates), then `updates_per_iter` (= utd x N). `run_chunk(carry, num_iters)` runs many
iterations and is a pure function of the carry (its random key included); `init_carry(rng)` makes the carry
of a new run. Between chunks the host (session/trainer.py) logs, evaluates and checkpoints.

The host can cut the work into chunks of any length without changing a single number: a chunk continues the
`ChunkStats` sums it is given, and with `burst=False` the iteration that ends seeding leaves its pretraining
updates to `pretrain(carry, stats, start, count)`, which runs updates start .. start+count-1 of that burst with
the same random keys (the iteration's update key, kept in `ChunkStats.burst_key`). So a log period of many
iterations, or a burst of thousands of updates, can be run as several calls of bounded wall-clock. The loop knows
the agent only through the contract of agents/base.py; an agent with a `prioritization` gets a prioritized
buffer, batches sampled by priority, and the priorities its `update` returns written back after each update.

The run drives this loop through loop/parallel.py, which runs one `FusedLoop` per device (its share of the
envs, buffer and batch; `steps_per_iter` keeps the step counts global) and vmaps it over seeds; `init`,
`chunk` and `evaluate` here are the same pure functions jitted for one device and one seed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from anakin_tdmpc.loop import replay
from anakin_tdmpc.loop.episodes import episodes


class Carry(NamedTuple):
    """The whole state of training; what a chunk consumes and returns (and what a checkpoint saves: its leaves
    are stored under their paths, `.agent...` included, so the field names are part of the checkpoint format)."""

    agent: Any  # the agent's state (what its `init` returns): parameters, targets, optimiser states, statistics
    buffer: replay.BufferState
    env_state: Any  # envs.EnvState of the N training envs
    plan_mean: jax.Array  # [N, H, A] planner warm starts
    rng: jax.Array
    agent_steps: jax.Array  # int32, agent steps taken so far, summed over envs
    last_return: jax.Array  # [N] return of each env's last finished episode (NaN before the first)


class ChunkStats(NamedTuple):
    """Sums accumulated on device over one chunk; the host turns them into means."""

    update_sums: dict  # algorithm metrics summed over the updates of the chunk
    num_updates: jax.Array
    return_sum: jax.Array  # sum of returns of the episodes that finished during the chunk
    episodes: jax.Array
    burst_key: jax.Array  # uint32 key data: the update key of the iteration that ended seeding (for `pretrain`)


class FusedLoop:
    def __init__(
        self,
        agent,
        env,
        num_envs: int,
        buffer_capacity: int,
        seed_steps: int,
        updates_per_iter: int,
        pretrain_updates: int,
        steps_per_iter: int | None = None,
    ):
        self.agent, self.env, self.num_envs = agent, env, num_envs
        # agent steps one iteration adds to the (global) count: num_envs, or all devices' envs when this
        # loop is one data-parallel shard (parallel.py), so seeding and schedules see the whole run's steps
        self.steps_per_iter = num_envs if steps_per_iter is None else steps_per_iter
        self.seq_len = agent.cfg.horizon + 1
        self.batch_size = agent.cfg.batch_size
        self.buffer_capacity = buffer_capacity
        self.seed_steps = seed_steps
        self.updates_per_iter = updates_per_iter
        self.pretrain_updates = pretrain_updates
        self.priority = agent.prioritization  # None: uniform replay
        # episodic tasks sample windows that may run past a termination, masked after it (replay.py)
        self.past_end = bool(getattr(env, "episodic", False))
        # jitted init: every carry leaf is its own buffer, as donating the carry to `chunk` requires
        self.init = env.jit(self.init_carry)
        self.chunk = env.jit(self.run_chunk, donate_argnums=0)
        self.pretrain_chunk = env.jit(self.pretrain, donate_argnums=0)
        self.evaluate = env.jit(self.eval_returns, static_argnums=2)

    # ------------------------------------------------------------------------------------ init

    def init_carry(self, rng: jax.Array, shard=0) -> Carry:
        """The carry of a new run. `shard` (a data-parallel device's index) changes the envs' and the loop's
        random streams, never the agent's: every shard starts from the same parameters."""
        k_agent, k_env, k_loop = jax.random.split(rng, 3)
        k_env, k_loop = jax.random.fold_in(k_env, shard), jax.random.fold_in(k_loop, shard)
        env = self.env
        return Carry(
            agent=self.agent.init(k_agent),
            buffer=replay.init(self.buffer_capacity, self.num_envs, env.obs_dim, env.action_dim, self.seq_len,
                               prioritized=self.priority is not None),
            env_state=env.reset(k_env, self.num_envs),
            plan_mean=self.agent.initial_plan_mean(self.num_envs),
            rng=k_loop,
            agent_steps=jnp.zeros((), jnp.int32),
            last_return=jnp.full((self.num_envs,), jnp.nan, jnp.float32),
        )

    def _sample(self, buffer: replay.BufferState, rng: jax.Array) -> replay.Batch:
        if self.priority is None:
            return replay.sample(buffer, rng, self.batch_size, self.seq_len, past_end=self.past_end)
        return replay.sample_prioritized(buffer, rng, self.batch_size, self.seq_len, *self.priority,
                                         past_end=self.past_end)

    def zero_stats(self, carry: Carry) -> ChunkStats:
        """The sums a chunk starts from at the beginning of a log period."""
        batch = jax.eval_shape(self._sample, carry.buffer, carry.rng)
        _, metrics, _ = jax.eval_shape(self.agent.update, carry.agent, batch, carry.rng)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics)
        key_data = jax.eval_shape(jax.random.key_data, carry.rng)
        return ChunkStats(zeros, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
                          jnp.zeros(key_data.shape, key_data.dtype))

    # ---------------------------------------------------------------------------------- training

    def _updates(self, agent_state, buffer, rng, n, sums, start=0):
        """Updates `start` .. `n`-1 (traced), update i on a batch sampled with `fold_in(rng, i)`; metric sums
        accumulated. With prioritized replay the buffer is carried through the loop and the update's new
        priorities written back each time; uniform replay only reads it."""
        prioritized = self.priority is not None

        def one_update(i, loop_state):
            agent_state, sums, buf = loop_state if prioritized else (*loop_state, buffer)
            k_sample, k_update = jax.random.split(jax.random.fold_in(rng, i))
            batch = self._sample(buf, k_sample)
            agent_state, metrics, priorities = self.agent.update(agent_state, batch, k_update)
            sums = jax.tree.map(jnp.add, sums, metrics)
            if not prioritized:
                return agent_state, sums
            return agent_state, sums, replay.update_priorities(buf, batch.env, batch.row, priorities)

        if not prioritized:
            agent_state, sums = jax.lax.fori_loop(start, n, one_update, (agent_state, sums))
            return agent_state, buffer, sums
        agent_state, sums, buffer = jax.lax.fori_loop(start, n, one_update, (agent_state, sums, buffer))
        return agent_state, buffer, sums

    def _iteration(self, carry: Carry, stats: ChunkStats, burst):
        env, N, A = self.env, self.num_envs, self.env.action_dim
        rng, k_act, k_update = jax.random.split(carry.rng, 3)
        seeding = carry.agent_steps < self.seed_steps

        def random_act(_):
            return jax.random.uniform(k_act, (N, A), minval=-1.0, maxval=1.0), carry.plan_mean

        def plan_act(_):
            return self.agent.act(carry.agent, carry.env_state.obs, carry.plan_mean, k_act, False, carry.agent_steps)

        action, plan_mean = jax.lax.cond(seeding, random_act, plan_act, None)
        env_state, out = env.step(carry.env_state, action)
        buffer = replay.add(carry.buffer, carry.env_state.obs, action, out.reward, carry.env_state.episode_step,
                            self.seq_len, out.final_obs, out.final, out.terminated, past_end=self.past_end)
        plan_mean = jnp.where(out.done[:, None, None], 0.0, plan_mean)  # new episode: no warm start

        agent_steps = carry.agent_steps + self.steps_per_iter
        just_seeded = seeding & (agent_steps >= self.seed_steps)
        n_updates = jnp.where(seeding, jnp.where(just_seeded & burst, self.pretrain_updates, 0), self.updates_per_iter)
        agent_state, buffer, update_sums = self._updates(carry.agent, buffer, k_update, n_updates, stats.update_sums)

        finished = out.done.astype(jnp.float32)
        stats = ChunkStats(
            update_sums=update_sums,
            num_updates=stats.num_updates + n_updates,
            return_sum=stats.return_sum + jnp.sum(finished * out.episode_return),
            episodes=stats.episodes + jnp.sum(out.done.astype(jnp.int32)),
            burst_key=jnp.where(just_seeded, jax.random.key_data(k_update), stats.burst_key),
        )
        last_return = jnp.where(out.done, out.episode_return, carry.last_return)
        return Carry(agent_state, buffer, env_state, plan_mean, rng, agent_steps, last_return), stats

    def run_chunk(self, carry: Carry, num_iters, stats=None, burst=True):
        """Run `num_iters` (traced: one compilation serves every chunk length) fused iterations, adding to
        `stats` (default: zeros). With `burst` False (traced) the iteration that ends seeding runs none of its
        pretraining updates: the host runs them with `pretrain` before the next chunk."""

        def body(_, state):
            return self._iteration(*state, burst)

        return jax.lax.fori_loop(0, num_iters, body, (carry, self.zero_stats(carry) if stats is None else stats))

    def pretrain(self, carry: Carry, stats: ChunkStats, start, count):
        """Pretraining updates `start` .. `start+count-1` (traced) of the burst that a `burst=False` chunk's
        last iteration left: the same batches, keys and order as the burst inside that iteration."""
        rng = jax.random.wrap_key_data(stats.burst_key, impl=jax.random.key_impl(carry.rng))
        agent_state, buffer, update_sums = self._updates(carry.agent, carry.buffer, rng, start + count,
                                                         stats.update_sums, start)
        return (carry._replace(agent=agent_state, buffer=buffer),
                stats._replace(update_sums=update_sums, num_updates=stats.num_updates + count))

    # -------------------------------------------------------------------------------- evaluation

    def eval_returns(self, agent_state, rng: jax.Array, num_episodes: int, agent_steps=None):
        """Returns of `num_episodes` full episodes run in parallel with deterministic planning from `agent_state`.

        `agent_steps` (the training carry's) is what the algorithm's step schedules read; by default
        (None) they are taken as finished.
        """
        if agent_steps is None:
            agent_steps = jnp.iinfo(jnp.int32).max
        return episodes(self.agent, self.env, agent_state, rng, num_episodes, agent_steps, frames=False).returns
