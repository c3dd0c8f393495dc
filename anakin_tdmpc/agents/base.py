"""The agent contract: what the fused loop (loop/fused.py) and the run's set-up (build.py) call on an
algorithm. An algorithm is one class in one file of this package that satisfies `Agent`, plus one line in
`agents/__init__.py`'s registry.

Set-up (class level, before any env exists):
    Config                    frozen dataclass of every tunable; each field that is also an `Args` field is
                              set from the command line when given (config.agent_config). Fields every
                              Config has: horizon and batch_size (read by the loop), episodic (whether the
                              task terminates); the build sets two: batch_size to one device's share and
                              episodic from the env (build.assemble). validate() -> the Config with its
                              derived defaults filled, or ConfigError; config.resolve calls it once
    PRESETS                   --preset name -> Args values for this algorithm ("paper" is {})
    base_config(domain, args) the Config before command-line overrides: model size, per-domain defaults
    default_action_repeat(domain), single_env_seed_steps(episode_length)

The run (instance level; every method a pure function of arrays, safe under jit / vmap / shard_map):
    agent(cfg, obs_dim, action_dim, episode_length, axis_name)   cfg: a validated Config; axis_name: the
                              data-parallel device axis over which `update` averages gradients (None on one
                              device)
    init(rng) -> state        parameters, targets, optimiser states
    act(state, obs [N, D], plan_mean [N, H, A], rng, eval_mode, agent_steps) -> (action [N, A], plan_mean)
                              agent_steps: the run's agent steps so far, for algorithms with step schedules
    initial_plan_mean(N) -> [N, H, A]
    update(state, batch, rng) -> (state, metrics, priorities)
                              batch: loop.replay.Batch of cfg.batch_size windows of cfg.horizon + 1 steps;
                              metrics: dict of scalars (logged as train/<name>); priorities: [B] new replay
                              priorities of the batch's windows, or None for uniform replay
    prioritization            Prioritization(alpha, beta) to be sampled by priority, or None (uniform)
    discount, iterations      the discount and planner iterations the run uses (reported in config.json)
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Optional, Protocol

import jax

from anakin_tdmpc.errors import ConfigError


class Prioritization(NamedTuple):
    """Prioritized replay: sample windows with probability p^alpha / sum p^alpha and weight their losses by
    (N x P)^-beta, normalised by the batch's largest weight."""

    alpha: float
    beta: float


class Agent(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]
    PRESETS: ClassVar[dict[str, dict]]

    cfg: Any  # an instance of Config; the loop reads cfg.horizon and cfg.batch_size
    discount: float
    iterations: int
    prioritization: Optional[Prioritization]

    @classmethod
    def base_config(cls, domain: str, args: Any) -> Any: ...

    @classmethod
    def default_action_repeat(cls, domain: str) -> int: ...

    @classmethod
    def single_env_seed_steps(cls, episode_length: int) -> int: ...

    def init(self, rng: jax.Array) -> Any: ...

    def act(self, state: Any, obs: jax.Array, plan_mean: jax.Array, rng: jax.Array, eval_mode: bool,
            agent_steps: jax.Array) -> tuple[jax.Array, jax.Array]: ...

    def initial_plan_mean(self, num_envs: int) -> jax.Array: ...

    def update(self, state: Any, batch: Any, rng: jax.Array) -> tuple[Any, dict, Optional[jax.Array]]: ...

