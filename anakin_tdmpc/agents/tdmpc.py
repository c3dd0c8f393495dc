"""TD-MPC (Hansen, Wang, Su; ICML 2022, arXiv 2203.04955) in JAX, read top to bottom.

  TOLD model   encoder h(s) -> z, latent dynamics d(z, a) -> z', reward R(z, a), twin Q(z, a)
               (Linear -> LayerNorm -> Tanh -> Linear -> ELU -> Linear), deterministic tanh policy pi(z);
               ELU MLPs, orthogonal init, reward and Q output layers zero-initialised; a target copy of
               the whole model (encoder included) follows by EMA (tau 0.01) every `update_freq` = 2 updates
  planning     MPPI in latent space: `num_samples` sequences, of which `num_pi_trajs` are policy rollouts
               (the official 512 Gaussian sequences plus 5% of that from the policy: 537 = 512 + 25), elites refit the mean / std with temperature 0.5 and momentum 0.1 on the mean,
               warm-started from the previous step's mean shifted by one
  learning     one update = model losses (consistency against the *target* encoder, reward MSE, value MSE
               against a TD target from min(target Q1, Q2)) on a latent rollout of H = 5 steps with rho^t
               weights and importance weights from prioritized replay, then the policy loss
               -min(Q1, Q2)(z_t, pi(z_t)) on the detached rollout, then (every 2 updates) the EMA target;
               in tasks that terminate, the TD target does not bootstrap past a terminal observation, and
               windows may run past their episode's end (loop/replay.py) with `batch.mask` zeroing every
               term of the steps after it (the official TD-MPC knows no terminations; its planner has no
               termination model here either)

The class `TDMPC` satisfies the agent contract of agents/base.py, as `TDMPC2` does, so the fused loop runs
either without knowing which. TD-MPC also declares `prioritization = Prioritization(alpha 0.6, beta 0.4)`:
the loop then samples by priority and writes back the new priorities `update` returns.

Facts taken from the official code (nicklashansen/tdmpc: src/algorithm/tdmpc.py, helper.py, cfgs/):
- `step` of both schedules is the trainer's step = agent steps (env steps / action repeat). The horizon
  schedule `linear(1, 5, 25000)` is read by `plan` and truncated to an int (1 until 6250 steps, 5 from
  25000 on); the std schedule `linear(0.5, 0.05, 25000)` is the *lower clamp* of the MPPI std, and the
  executed action adds `std[0] * N(0, 1)` of the last iteration's (clamped) std in training only. Here
  `step` = the loop's `agent_steps` (summed over envs). Training always uses the full horizon 5.
- Dynamic planning horizon with fixed shapes: every sequence is `cfg.horizon` (max) steps long and the
  model rolls all of them out; the value sums `gamma^t r_t` only for `t < h(step)`, then adds
  `gamma^h min(Q1, Q2)(z_h, pi(z_h))` with `z_h` picked from the stacked rollout by a dynamic index.
  Rows `t >= h` of the MPPI mean are held at 0 (std at its maximum): exactly the official planner with
  a length-h mean, whose warm start also shifts a zero into the last active row.
- Policy samples used in planning, TD targets and the policy loss add `clip(0.05 * N(0, 1), +-0.3)` noise
  to the tanh mean, clamped to (-1, 1) with a straight-through gradient (`h.TruncatedNormal`).
- Per sample: consistency = sum_t rho^t mean_latent (d - h_target(s_t+1))^2, reward = sum_t rho^t (R - r)^2,
  value = sum_t rho^t ((Q1 - y)^2 + (Q2 - y)^2), each clamped at 1e4 before the weighted sum (2, 0.5, 0.1);
  the loss is mean(importance weight x total) and its gradient is scaled by 1 / H; grad clip 10 for model
  and policy, Adam lr 1e-3. New priority = clamp(sum_t rho^t (|Q1 - y| + |Q2 - y|), 1e4) (+1e-6 in the buffer).
  TD target y = r + 0.99 min(target Q1, Q2)(z', pi(z')) with z' from the *online* encoder and policy.
  One deliberate difference: the official code multiplies a [B, 1] loss by [B] weights (a [B, B]
  broadcast that scales the loss by mean(weights) instead of weighting samples); we weight per sample,
  as prioritized replay and the paper intend.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from anakin_tdmpc.agents import gradients, layers, mppi
from anakin_tdmpc.agents.base import Prioritization
from anakin_tdmpc.errors import ConfigError

# Per-domain defaults: every value of the official cfgs/tasks/*.yaml (cartpole, walker, humanoid, dog; 4 is
# default.yaml's action repeat) plus the paper's action repeat 2 for finger (the official repository has no
# finger file).
DOMAIN_DEFAULTS = {
    "cartpole": dict(action_repeat=8),
    "walker": dict(action_repeat=2),
    "finger": dict(action_repeat=2),
    "humanoid": dict(action_repeat=2, iterations=12, latent_dim=100),
    "dog": dict(action_repeat=2, iterations=8, latent_dim=100, batch_size=2048, lr=3e-4),
}
ACTION_REPEAT = 4
SEED_STEPS = 5000  # the official single-env trainer's seeding


@dataclasses.dataclass(frozen=True)
class TDMPCConfig:
    # model (the paper's single size; latent 100 for humanoid and dog, see DOMAIN_DEFAULTS)
    latent_dim: int = 50
    enc_dim: int = 256
    mlp_dim: int = 512
    # optimisation: Adam for model and policy, both clipped at the same gradient norm
    lr: float = 1e-3
    grad_clip_norm: float = 10.0
    batch_size: int = 512
    # the losses: rho^t-weighted sums over the H steps, each per-sample term clamped at loss_clamp
    rho: float = 0.5
    consistency_coef: float = 2.0
    reward_coef: float = 0.5
    value_coef: float = 0.1
    loss_clamp: float = 1e4
    discount: float = 0.99
    # target model: an EMA of the whole model (encoder included) every update_freq updates
    tau: float = 0.01
    update_freq: int = 2
    # prioritized replay: sampling exponent and importance-weight exponent
    per_alpha: float = 0.6
    per_beta: float = 0.4
    # planning
    horizon: int = 5  # training horizon = maximum planning horizon
    iterations: int = 6
    # all sequences of an MPPI iteration, the policy's included (as TD-MPC2's flag): the official code's 512
    # Gaussian sequences plus its mixture_coef 0.05 of them from the policy, 512 + 25
    num_samples: int = 537
    num_elites: int = 64
    num_pi_trajs: Optional[int] = None  # default num_samples // 21: 5% of the Gaussian ones, rounded down (25)
    temperature: float = 0.5
    momentum: float = 0.1
    min_std: float = 0.05  # policy noise, and the end of the std schedule
    max_std: float = 2.0
    std_start: float = 0.5  # std schedule linear(std_start -> min_std over schedule_steps)
    schedule_steps: int = 25_000  # agent steps of both linear schedules
    pi_noise_clip: float = 0.3
    # the task terminates (set by the build from the task; TD-MPC has no termination model, its TD targets stop
    # at the terminal observations the replay marks)
    episodic: bool = False

    def validate(self) -> "TDMPCConfig":
        """ConfigError for a setting the algorithm cannot run with; else the config with num_pi_trajs set."""
        num_pi_trajs = self.num_samples // 21 if self.num_pi_trajs is None else self.num_pi_trajs
        if not 0 <= num_pi_trajs < self.num_samples:
            raise ConfigError(f"--num_pi_trajs must be in [0, num_samples), got {num_pi_trajs}")
        if self.num_elites > self.num_samples:
            raise ConfigError(f"--num_elites ({self.num_elites}) must not exceed --num_samples ({self.num_samples})")
        return dataclasses.replace(self, num_pi_trajs=num_pi_trajs)


def linear_schedule(start: float, end: float, duration: float, step) -> jax.Array:
    """`start` -> `end` linearly over `duration` steps, constant afterwards (official `h.linear_schedule`)."""
    mix = jnp.clip(jnp.asarray(step, jnp.float32) / duration, 0.0, 1.0)
    return (1.0 - mix) * start + mix * end


def planning_horizon(cfg: TDMPCConfig, step) -> jax.Array:
    """int(min(H, linear(1 -> H over schedule_steps))) as an int32 in [1, H]."""
    value = linear_schedule(1.0, float(cfg.horizon), cfg.schedule_steps, step)
    return jnp.clip(jnp.floor(value).astype(jnp.int32), 1, cfg.horizon)


def std_floor(cfg: TDMPCConfig, step) -> jax.Array:
    """Lower clamp of the MPPI std (and so of the exploration noise): linear(0.5 -> 0.05 over 25k)."""
    return linear_schedule(cfg.std_start, cfg.min_std, cfg.schedule_steps, step)


# ------------------------------------------------------------------------------------------ losses
# Per-sample losses are sums over the H steps of a window weighted by `step_weight` [H, 1] (rho^t) or [H, B]
# (rho^t times batch.mask, which zeroes the steps past an episodic window's end): each returns [B].


def td_target(reward: jax.Array, next_q: jax.Array, discount: float, terminated=None) -> jax.Array:
    """r + discount * min(Q1, Q2) for rewards [H, B] and the target Qs at (z', pi(z')) [2, H, B]; no bootstrap
    where `terminated` [H, B] (None: nothing terminated)."""
    bootstrap = jnp.min(next_q, axis=0)
    if terminated is not None:
        bootstrap = (1.0 - terminated) * bootstrap
    return reward + discount * bootstrap


def consistency_loss(pred: jax.Array, target: jax.Array, step_weight: jax.Array) -> jax.Array:
    """sum_t w_t mean_latent (pred_t - target_t)^2: the rollout's latents z_1..z_H [H, B, L] against the target
    encoder's latents of the next observations [H, B, L]."""
    return jnp.sum(step_weight * jnp.mean((pred - target) ** 2, axis=-1), axis=0)


def reward_loss(pred: jax.Array, reward: jax.Array, step_weight: jax.Array) -> jax.Array:
    """sum_t w_t (R(z_t, a_t) - r_t)^2 for predicted and observed rewards [H, B]."""
    return jnp.sum(step_weight * (pred - reward) ** 2, axis=0)


def value_loss(q: jax.Array, target: jax.Array, step_weight: jax.Array) -> jax.Array:
    """sum_t w_t ((Q1 - y_t)^2 + (Q2 - y_t)^2) for both Qs [2, H, B] and the TD targets y [H, B]."""
    return jnp.sum(step_weight * jnp.sum((q - target) ** 2, axis=0), axis=0)


def priorities(q: jax.Array, target: jax.Array, step_weight: jax.Array, clamp: float) -> jax.Array:
    """New replay priorities: min(sum_t w_t (|Q1 - y_t| + |Q2 - y_t|), clamp) for q [2, H, B], y [H, B]."""
    return jnp.minimum(jnp.sum(step_weight * jnp.sum(jnp.abs(q - target), axis=0), axis=0), clamp)


def total_loss(consistency: jax.Array, reward: jax.Array, value: jax.Array, cfg: TDMPCConfig) -> jax.Array:
    """Per sample [B]: the three losses, each clamped at cfg.loss_clamp, weighted by cfg's coefficients."""
    clamp = lambda x: jnp.minimum(x, cfg.loss_clamp)  # noqa: E731
    return cfg.consistency_coef * clamp(consistency) + cfg.reward_coef * clamp(reward) + cfg.value_coef * clamp(value)


def policy_loss(q: jax.Array, rho: jax.Array, mask=None) -> jax.Array:
    """-sum_t rho^t mean_b min(Q1, Q2)(z_t, pi(z_t)) for q [H+1, B] and rho [H+1, 1]; with `mask` [H+1, B]
    (which latents lie in the window's episode) the others count zero (still divided by B)."""
    if mask is not None:
        q = q * mask
    return jnp.sum(rho * -q.mean(axis=-1, keepdims=True))


def ema(target, params, tau: float, apply: jax.Array):
    """target + tau * (params - target) for every leaf where `apply` (a traced bool); `target` otherwise."""
    return jax.tree.map(lambda t, p: jnp.where(apply, t + tau * (p - t), t), target, params)


class AgentState(NamedTuple):
    params: Any  # {"encoder", "dynamics", "reward", "pi", "qs" (stacked twin Q)}
    target: Any  # EMA copy of the whole of params
    model_opt: Any  # Adam state of encoder / dynamics / reward / Qs
    pi_opt: Any  # Adam state of the policy
    updates: jax.Array  # number of updates applied


# ------------------------------------------------------------------------------------------ layers

orthogonal = nn.initializers.orthogonal()


class ELUMLP(nn.Module):
    """Linear -> ELU per hidden width, then a Linear head (zero-initialised with `zero_out`)."""

    hidden: Sequence[int]
    out: int
    zero_out: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = jax.nn.elu(nn.Dense(width, kernel_init=orthogonal, bias_init=nn.initializers.zeros)(x))
        kernel_init = nn.initializers.zeros if self.zero_out else orthogonal
        return nn.Dense(self.out, kernel_init=kernel_init, bias_init=nn.initializers.zeros)(x)


class QNet(nn.Module):
    """TD-MPC's Q-function: Linear -> LayerNorm -> Tanh -> Linear -> ELU -> Linear(1), last layer zero."""

    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.width, kernel_init=orthogonal, bias_init=nn.initializers.zeros)(x)
        x = jnp.tanh(nn.LayerNorm(epsilon=1e-5)(x))
        x = jax.nn.elu(nn.Dense(self.width, kernel_init=orthogonal, bias_init=nn.initializers.zeros)(x))
        return nn.Dense(1, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)(x)[..., 0]


# --------------------------------------------------------------------------------------- algorithm


class TDMPC:
    """TD-MPC for one task: a static config plus pure functions of (AgentState, arrays)."""

    name = "tdmpc"
    Config = TDMPCConfig
    PRESETS = {
        "paper": {},
        "cpu-small": dict(num_envs=8, mlp_dim=128, enc_dim=128, num_samples=67, num_elites=8, iterations=3,
                          batch_size=64),
    }

    @classmethod
    def base_config(cls, domain: str, args) -> TDMPCConfig:
        """The paper's single size with the domain's settings (DOMAIN_DEFAULTS)."""
        if args.model_size != type(args)().model_size:
            raise ConfigError("--model_size is a TD-MPC2 preset; tdmpc has one size (override --enc_dim, --mlp_dim, "
                              "--latent_dim instead)")
        values = {k: v for k, v in DOMAIN_DEFAULTS.get(domain, {}).items() if k != "action_repeat"}
        return TDMPCConfig(**values)

    @classmethod
    def default_action_repeat(cls, domain: str) -> int:
        return DOMAIN_DEFAULTS.get(domain, {}).get("action_repeat", ACTION_REPEAT)

    @classmethod
    def single_env_seed_steps(cls, episode_length: int) -> int:
        return SEED_STEPS

    def __init__(self, cfg: TDMPCConfig, obs_dim: int, action_dim: int, episode_length: int,
                 axis_name: str | None = None):
        self.cfg = cfg
        # data-parallel training: gradients are averaged over this device axis
        self.axis_name = axis_name
        self.obs_dim, self.action_dim, self.episode_length = obs_dim, action_dim, episode_length
        self.discount = cfg.discount
        self.iterations = cfg.iterations
        self.prioritization = Prioritization(cfg.per_alpha, cfg.per_beta)
        hidden = (cfg.mlp_dim, cfg.mlp_dim)
        self.encoder = ELUMLP((cfg.enc_dim,), cfg.latent_dim)
        self.dynamics = ELUMLP(hidden, cfg.latent_dim)
        self.reward_net = ELUMLP(hidden, 1, zero_out=True)
        self.pi_net = ELUMLP(hidden, action_dim)
        self.q_net = QNet(cfg.mlp_dim)
        self.model_optim = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), optax.adam(cfg.lr))
        self.pi_optim = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), optax.adam(cfg.lr))

    # ------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array) -> AgentState:
        cfg = self.cfg
        k_enc, k_dyn, k_rew, k_pi, k_q = jax.random.split(rng, 5)
        za = jnp.zeros((1, cfg.latent_dim + self.action_dim))
        # the twin Qs: two inits stacked (layers.init_ensemble's vmapped init of a QNet of width 512 does not
        # finish compiling on XLA:CPU in jax 0.10.2); applying the stacked pair under vmap is fine
        q_members = [self.q_net.init(k, za)["params"] for k in jax.random.split(k_q, 2)]
        params = {
            "encoder": self.encoder.init(k_enc, jnp.zeros((1, self.obs_dim)))["params"],
            "dynamics": self.dynamics.init(k_dyn, za)["params"],
            "reward": self.reward_net.init(k_rew, za)["params"],
            "pi": self.pi_net.init(k_pi, jnp.zeros((1, cfg.latent_dim)))["params"],
            "qs": jax.tree.map(lambda *m: jnp.stack(m), *q_members),
        }
        return AgentState(
            params=params,
            target=params,
            model_opt=self.model_optim.init(layers.model_part(params)),
            pi_opt=self.pi_optim.init(params["pi"]),
            updates=jnp.zeros((), jnp.int32),
        )

    # ------------------------------------------------------------------------- model pieces

    def encode(self, params, obs: jax.Array) -> jax.Array:
        return self.encoder.apply({"params": params["encoder"]}, obs)

    def next(self, params, z: jax.Array, a: jax.Array) -> jax.Array:
        return self.dynamics.apply({"params": params["dynamics"]}, jnp.concatenate([z, a], -1))

    def reward(self, params, z: jax.Array, a: jax.Array) -> jax.Array:
        return self.reward_net.apply({"params": params["reward"]}, jnp.concatenate([z, a], -1))[..., 0]

    def q(self, q_params, z: jax.Array, a: jax.Array) -> jax.Array:
        """Both Q-functions -> [2, ...]."""
        return layers.apply_ensemble(self.q_net, q_params, jnp.concatenate([z, a], -1))

    def pi_mean(self, pi_params, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.pi_net.apply({"params": pi_params}, z))

    def pi(self, pi_params, z: jax.Array, rng: jax.Array) -> jax.Array:
        """tanh mean + clip(min_std * N(0, 1), +-0.3), clamped to (-1, 1) with a straight-through gradient."""
        cfg = self.cfg
        mu = self.pi_mean(pi_params, z)
        x = mu + jnp.clip(cfg.min_std * jax.random.normal(rng, mu.shape), -cfg.pi_noise_clip, cfg.pi_noise_clip)
        return x + jax.lax.stop_gradient(jnp.clip(x, -1.0 + 1e-6, 1.0 - 1e-6) - x)

    # ------------------------------------------------------------------------------ planning

    def estimate_value(self, params, z: jax.Array, actions: jax.Array, horizon: jax.Array, rng: jax.Array):
        """sum_{t<h} gamma^t R(z_t, a_t) + gamma^h min(Q1, Q2)(z_h, pi(z_h)) for sequences [H, S, A], h traced."""
        ret, zs = jnp.zeros(z.shape[:-1]), [z]
        for t in range(self.cfg.horizon):
            r = self.reward(params, z, actions[t])
            ret = ret + jnp.where(t < horizon, self.discount**t * r, 0.0)
            z = self.next(params, z, actions[t])
            zs.append(z)
        z_h = jax.lax.dynamic_index_in_dim(jnp.stack(zs), horizon, axis=0, keepdims=False)
        q = jnp.min(self.q(params["qs"], z_h, self.pi(params["pi"], z_h, rng)), axis=0)
        return ret + jnp.power(self.discount, horizon.astype(jnp.float32)) * q

    def plan(self, params, obs: jax.Array, prev_mean: jax.Array, rng: jax.Array, eval_mode: bool, step):
        """MPPI for ONE observation [obs_dim] -> (action [A], new mean [H, A]); vmapped by `act`."""
        cfg, A, H = self.cfg, self.action_dim, self.cfg.horizon
        horizon, min_std = planning_horizon(cfg, step), std_floor(cfg, step)
        active = (jnp.arange(H) < horizon)[:, None]  # [H, 1] rows inside the current planning horizon
        k_pi, k_iter, k_pick, k_noise = jax.random.split(rng, 4)
        z = self.encode(params, obs)

        # sequences proposed by the policy (noisy, as the official planner)
        pi_actions = mppi.policy_sequences(lambda zp, k: self.pi(params["pi"], zp, k),
                                           lambda zp, a: self.next(params, zp, a), z, cfg.num_pi_trajs, H, A, k_pi)

        # warm start: previous mean shifted by one step (zeros at an episode start / beyond the horizon)
        mean = jnp.where(active, jnp.concatenate([prev_mean[1:], jnp.zeros((1, A))], axis=0), 0.0)
        std = jnp.full((H, A), cfg.max_std)
        zs = jnp.broadcast_to(z, (cfg.num_samples, z.shape[-1]))

        def mppi_iteration(carry, key):
            mean, std = carry
            k_sample, k_value = jax.random.split(key)
            noise = jax.random.normal(k_sample, (H, cfg.num_samples - cfg.num_pi_trajs, A))
            sampled = jnp.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0)
            actions = jnp.concatenate([sampled, pi_actions], axis=1)
            value = jnp.nan_to_num(self.estimate_value(params, zs, actions, horizon, k_value))
            elite_actions, score, new_mean, new_std = mppi.refit(actions, value, cfg.num_elites, cfg.temperature)
            new_std = jnp.clip(new_std, min_std, cfg.max_std)
            mean = cfg.momentum * mean + (1.0 - cfg.momentum) * new_mean
            mean = jnp.where(active, mean, 0.0)
            std = jnp.where(active, new_std, cfg.max_std)
            return (mean, std), (elite_actions, score)

        (mean, std), (elites, scores) = jax.lax.scan(
            mppi_iteration, (mean, std), jax.random.split(k_iter, self.iterations)
        )
        # one of the last iteration's elites, drawn by score
        return mppi.executed_action(k_pick, k_noise, elites[-1], scores[-1], std[0], eval_mode), mean

    def act(self, state: AgentState, obs: jax.Array, plan_mean: jax.Array, rng: jax.Array, eval_mode: bool,
            agent_steps):
        """Plan for a batch of observations [N, obs_dim] with warm starts [N, H, A] at `agent_steps` (the
        schedules' step)."""
        keys = jax.random.split(rng, obs.shape[0])
        step = jnp.asarray(agent_steps, jnp.int32)
        return jax.vmap(lambda o, m, k: self.plan(state.params, o, m, k, eval_mode, step))(obs, plan_mean, keys)

    def initial_plan_mean(self, num_envs: int) -> jax.Array:
        return jnp.zeros((num_envs, self.cfg.horizon, self.action_dim))

    # ------------------------------------------------------------------------------ learning

    def update(self, state: AgentState, batch, rng: jax.Array):
        """One update on a batch of sequences: obs [H+1, B, D], action [H, B, A], reward [H, B], weight [B].

        Also returns new priorities [B] for the batch's window starts.
        """
        cfg, H = self.cfg, self.cfg.horizon
        k_td, k_pi = jax.random.split(rng)
        params = state.params
        weight = batch.weight if batch.weight is not None else jnp.ones(batch.reward.shape[1], jnp.float32)
        rho = (cfg.rho ** jnp.arange(H + 1, dtype=jnp.float32))[:, None]  # [H+1, 1]
        # per-step weights: rho^t, times batch.mask [H, B] where episodic windows run past their episode's end
        # (replay.py: those steps count zero); latent_mask [H+1, B] marks the rollout's latents in the episode
        step_weight = rho[:H] if batch.mask is None else rho[:H] * batch.mask
        latent_mask = None if batch.mask is None else jnp.concatenate([jnp.ones_like(batch.mask[:1]), batch.mask])

        # targets: target encoder for consistency; online encoder + policy and target Qs for the TD target
        next_z_target = self.encode(state.target, batch.obs[1:])
        next_z = self.encode(params, batch.obs[1:])
        next_q = self.q(state.target["qs"], next_z, self.pi(params["pi"], next_z, k_td))
        td = jax.lax.stop_gradient(td_target(batch.reward, next_q, self.discount, batch.terminated))  # [H, B]
        next_z_target = jax.lax.stop_gradient(next_z_target)

        def model_loss(model_params):
            p = {**params, **model_params}
            zs = layers.latent_rollout(self.encode(p, batch.obs[0]), batch.action, lambda z, a: self.next(p, z, a))
            zs = jnp.stack(zs)  # [H+1, B, L]
            q = self.q(p["qs"], zs[:-1], batch.action)  # [2, H, B]
            r = self.reward(p, zs[:-1], batch.action)  # [H, B]
            consistency = consistency_loss(zs[1:], next_z_target, step_weight)
            reward = reward_loss(r, batch.reward, step_weight)
            value = value_loss(q, td, step_weight)
            priority = priorities(q, td, step_weight, cfg.loss_clamp)
            total = total_loss(consistency, reward, value, cfg)
            weighted = jnp.mean(total * weight)
            metrics = {"consistency_loss": consistency.mean(), "reward_loss": reward.mean(),
                       "value_loss": value.mean(), "total_loss": total.mean(), "weighted_loss": weighted}
            return weighted / H, (zs, metrics, priority)  # the official code scales this gradient by 1 / H

        model_step = gradients.step(model_loss, self.model_optim, layers.model_part(params), state.model_opt,
                                    axis_name=self.axis_name, has_aux=True)
        _, (zs, metrics, priority) = model_step.loss
        params = {**params, **model_step.params}
        metrics["grad_norm"] = model_step.grad_norm
        priority = jax.lax.stop_gradient(priority)

        # policy: maximise min(Q1, Q2) of the updated Qs along the detached rollout, weighted by rho^t
        zs = jax.lax.stop_gradient(zs)

        def pi_loss(pi_params):
            q = jnp.min(self.q(params["qs"], zs, self.pi(pi_params, zs, k_pi)), axis=0)  # [H+1, B]
            return policy_loss(q, rho, latent_mask)

        pi_step = gradients.step(pi_loss, self.pi_optim, params["pi"], state.pi_opt, axis_name=self.axis_name)
        params = {**params, "pi": pi_step.params}

        # target model: EMA of every parameter, every `update_freq` updates (counted before this one)
        target = ema(state.target, params, cfg.tau, state.updates % cfg.update_freq == 0)

        metrics.update(pi_loss=pi_step.loss, pi_grad_norm=pi_step.grad_norm)
        new_state = AgentState(params, target, model_step.opt_state, pi_step.opt_state, state.updates + 1)
        return new_state, metrics, priority
