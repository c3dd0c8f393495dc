"""TD-MPC2 (Hansen, Su, Wang; ICLR 2024, arXiv 2310.16828) in JAX, read top to bottom.

  world model   encoder h(s) -> z (SimNorm latent), dynamics d(z, a) -> z', reward R(z, a) (two-hot),
                policy prior pi(z) (tanh Gaussian), ensemble of Q(z, a) (two-hot, dropout), target Qs
  planning      MPPI in latent space, warm-started from the previous step's mean shifted by one,
                with `num_pi_trajs` trajectories proposed by the policy prior
  learning      one update = model losses (consistency, reward, value) on a latent rollout of H steps,
                then the policy loss on the detached rollout, then a Polyak step of the target Qs
  episodic      tasks that terminate (`episodic`, set by the task): a termination head T(z) (logit) with a
                binary cross-entropy loss on the rollout's latents, and planning that stops counting reward
                and the terminal Q once T predicts termination; TD targets never bootstrap past a terminal
                observation (in every task; DMC never terminates). Windows may run past their episode's
                end there (loop/replay.py): `batch.mask` zeroes every loss term of the steps after it

The class `TDMPC2` satisfies the agent contract of agents/base.py: its config, presets and per-task
defaults, then `init`, `act` (for a batch of N observations) and `update`, all pure functions of arrays;
the configuration is static Python data held by the instance.

Defaults follow the paper and the official code's config.yaml (nicklashansen/tdmpc2). Two details come
from the official code rather than the paper text: "avg" Q estimates (planning, policy loss) average
two randomly chosen ensemble members, and the entropy bonus is the pre-squash Gaussian entropy scaled
by the action dimension ("scaled_entropy").

One numerical choice is ours: planning multiplies in bfloat16 (float32 accumulation and everything else in
float32; `planner_bf16`), which makes a plan cheaper on a CPU; docs/experiments.md compares it with float32
planning. Updates are float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from anakin_tdmpc.agents import gradients, layers, mppi
from anakin_tdmpc.errors import ConfigError

# Model sizes (--model_size, millions of parameters): encoder width, MLP width, latent size, encoder layers,
# Q-functions; from the paper's appendix and the official config.
MODEL_SIZES = {
    1: dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    5: dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    19: dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    48: dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    317: dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}


@dataclasses.dataclass(frozen=True)
class TDMPC2Config:
    # model (the 5M size; see MODEL_SIZES)
    latent_dim: int = 512
    enc_dim: int = 256
    num_enc_layers: int = 2
    mlp_dim: int = 512
    num_q: int = 5
    dropout: float = 0.01
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    # optimisation
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    pi_adam_eps: float = 1e-5
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    batch_size: int = 256
    rho: float = 0.5
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    entropy_coef: float = 1e-4
    termination_coef: float = 1.0
    scale_tau: float = 0.01
    # planning
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5
    # bfloat16 matmul operands in planning only (float32 accumulation; LayerNorm, SimNorm, softmax and the MPPI
    # statistics stay float32): ~1.5x faster plans on CPUs with AVX512-BF16. Updates always run in float32.
    planner_bf16: bool = True
    # discount heuristic
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    # the task terminates (set from the task, not a flag): termination head, its loss, masked planning value
    episodic: bool = False

    def validate(self) -> "TDMPC2Config":
        """ConfigError for a setting the algorithm cannot run with; else the config itself."""
        if self.latent_dim % self.simnorm_dim:
            raise ConfigError(f"--latent_dim must be a multiple of {self.simnorm_dim}, got {self.latent_dim}")
        if self.num_q < 2:
            raise ConfigError(f"--num_q must be at least 2, got {self.num_q}")
        if not 0 <= self.num_pi_trajs < self.num_samples:
            raise ConfigError(f"--num_pi_trajs must be in [0, num_samples), got {self.num_pi_trajs}")
        if self.num_elites > self.num_samples:
            raise ConfigError(f"--num_elites ({self.num_elites}) must not exceed --num_samples ({self.num_samples})")
        return self


def discount_for(episode_length: int, denom: float = 5.0, lo: float = 0.95, hi: float = 0.995) -> float:
    """TD-MPC2's heuristic: frac = L / denom, gamma = clip((frac - 1) / frac, lo, hi) (0.99 for L = 500)."""
    frac = episode_length / denom
    return float(min(max((frac - 1) / frac, lo), hi))


def planner_iterations(cfg: TDMPC2Config, action_dim: int) -> int:
    """MPPI iterations: the configured number, +2 for large action spaces (action dim >= 20)."""
    return cfg.iterations + 2 * int(action_dim >= 20)


def consistency_loss(pred: list, target: jax.Array, rho: jax.Array, mask=None) -> jax.Array:
    """(1 / H) sum_t rho^t mean((pred_t - target_t)^2): predicted latents z_1..z_H (a list) against the encoded
    next observations [H, B, L]; `rho` holds rho^t. With `mask` [H, B] (episodic windows, replay.py) each
    entry's squared error counts only where its step lies in the window's episode (still divided by B)."""
    total = 0.0
    for t, z in enumerate(pred):
        sq = (z - target[t]) ** 2
        total = total + rho[t] * (jnp.mean(sq) if mask is None else jnp.mean(jnp.mean(sq, -1) * mask[t]))
    return total / len(pred)


def termination_loss(logits: jax.Array, terminated: jax.Array, mask=None) -> jax.Array:
    """Binary cross-entropy with logits, mean over [H, B]: the termination head's predictions at the rollout's
    latents z_1..z_H against the batch's terminal flags of the next observations (zero where `mask` is)."""
    bce = jnp.maximum(logits, 0.0) - logits * terminated + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.mean(bce if mask is None else bce * mask)


def next_scale(scale: jax.Array, lo: jax.Array, hi: jax.Array, tau: float) -> jax.Array:
    """The policy loss's running Q scale: an EMA (rate tau) of max(1, P95 - P5) of Q at the first step."""
    return scale + tau * (jnp.maximum(hi - lo, 1.0) - scale)


def policy_loss(q: jax.Array, scaled_entropy: jax.Array, scale: jax.Array, entropy_coef: float,
                rho: jax.Array, mask=None) -> jax.Array:
    """mean_t rho^t * mean_b -(entropy_coef * scaled_entropy + Q / scale) over q, scaled_entropy [H+1, B];
    with `mask` [H+1, B] (which latents lie in the window's episode) the others count zero."""
    objective = entropy_coef * scaled_entropy + q / scale
    if mask is not None:
        objective = objective * mask
    return jnp.mean(-objective.mean(-1) * rho)


class AgentState(NamedTuple):
    params: Any  # {"encoder", "dynamics", "reward", "pi", "qs" (stacked ensemble)}
    target_qs: Any  # Polyak-averaged copy of params["qs"]
    model_opt: Any  # Adam state of encoder / dynamics / reward / Qs
    pi_opt: Any  # Adam state of the policy prior
    scale: jax.Array  # running scale of Q-values in the policy loss (starts at 1)
    updates: jax.Array  # number of updates applied


class TDMPC2:
    """TD-MPC2 for one task: a static config plus pure functions of (AgentState, arrays)."""

    name = "tdmpc2"
    Config = TDMPC2Config
    PRESETS = {
        "paper": {},
        "cpu-small": dict(num_envs=8, model_size=1, latent_dim=64, mlp_dim=128, enc_dim=128, num_q=2,
                          num_samples=64, num_elites=8, num_pi_trajs=4, iterations=3, batch_size=64),
    }
    prioritization = None  # uniform replay

    @classmethod
    def base_config(cls, domain: str, args) -> TDMPC2Config:
        """The --model_size preset; TD-MPC2 has no per-task settings."""
        if args.model_size not in MODEL_SIZES:
            raise ConfigError(f"--model_size must be one of {sorted(MODEL_SIZES)}, got {args.model_size}")
        return TDMPC2Config(**MODEL_SIZES[args.model_size])

    @classmethod
    def default_action_repeat(cls, domain: str) -> int:
        return 2

    @classmethod
    def single_env_seed_steps(cls, episode_length: int) -> int:
        """The official trainer's seeding: max(1000, 5 episodes)."""
        return max(1000, 5 * episode_length)

    def __init__(self, cfg: TDMPC2Config, obs_dim: int, action_dim: int, episode_length: int,
                 axis_name: str | None = None):
        self.cfg = cfg
        # data-parallel training: gradients and the Q scale statistic are averaged over this device axis
        self.axis_name = axis_name
        self.obs_dim, self.action_dim, self.episode_length = obs_dim, action_dim, episode_length
        self.discount = discount_for(episode_length, cfg.discount_denom, cfg.discount_min, cfg.discount_max)
        self.iterations = planner_iterations(cfg, action_dim)
        latent_act = lambda x: layers.simnorm(x, cfg.simnorm_dim)  # noqa: E731
        hidden = (cfg.mlp_dim, cfg.mlp_dim)
        self.encoder = layers.MLP((cfg.enc_dim,) * (cfg.num_enc_layers - 1), cfg.latent_dim, out_act=latent_act)
        self.dynamics = layers.MLP(hidden, cfg.latent_dim, out_act=latent_act)
        self.reward_net = layers.MLP(hidden, cfg.num_bins, zero_out=True)
        self.pi_net = layers.MLP(hidden, 2 * action_dim)
        self.q_net = layers.MLP(hidden, cfg.num_bins, dropout=cfg.dropout, zero_out=True)
        self.termination_net = layers.MLP(hidden, 1) if cfg.episodic else None
        enc_labels = lambda p: {k: jax.tree.map(lambda _: "enc" if k == "encoder" else "rest", v) for k, v in p.items()}  # noqa: E731
        self.model_optim = optax.chain(
            optax.clip_by_global_norm(cfg.grad_clip_norm),
            optax.multi_transform(
                {"enc": optax.adam(cfg.lr * cfg.enc_lr_scale), "rest": optax.adam(cfg.lr)}, enc_labels
            ),
        )
        self.pi_optim = optax.chain(
            optax.clip_by_global_norm(cfg.grad_clip_norm), optax.adam(cfg.lr, eps=cfg.pi_adam_eps)
        )

    # ----------------------------------------------------------------------------------- init

    def init(self, rng: jax.Array) -> AgentState:
        cfg = self.cfg
        k_enc, k_dyn, k_rew, k_pi, k_q = jax.random.split(rng, 5)
        k_term = jax.random.fold_in(rng, 5)  # its own stream: the other heads start as in a task without one
        obs = jnp.zeros((1, self.obs_dim))
        za = jnp.zeros((1, cfg.latent_dim + self.action_dim))
        params = {
            "encoder": self.encoder.init(k_enc, obs)["params"],
            "dynamics": self.dynamics.init(k_dyn, za)["params"],
            "reward": self.reward_net.init(k_rew, za)["params"],
            "pi": self.pi_net.init(k_pi, jnp.zeros((1, cfg.latent_dim)))["params"],
            "qs": layers.init_ensemble(self.q_net, k_q, cfg.num_q, za),
        }
        if cfg.episodic:
            params["termination"] = self.termination_net.init(k_term, jnp.zeros((1, cfg.latent_dim)))["params"]
        return AgentState(
            params=params,
            target_qs=params["qs"],
            model_opt=self.model_optim.init(layers.model_part(params)),
            pi_opt=self.pi_optim.init(params["pi"]),
            scale=jnp.ones((), jnp.float32),
            updates=jnp.zeros((), jnp.int32),
        )

    # ------------------------------------------------------------------------- model pieces

    def encode(self, params, obs: jax.Array) -> jax.Array:
        return self.encoder.apply({"params": params["encoder"]}, obs)

    def next(self, params, z: jax.Array, a: jax.Array) -> jax.Array:
        return self.dynamics.apply({"params": params["dynamics"]}, (z, a))

    def reward_logits(self, params, z: jax.Array, a: jax.Array) -> jax.Array:
        return self.reward_net.apply({"params": params["reward"]}, (z, a))

    def termination_logit(self, params, z: jax.Array) -> jax.Array:
        """Logit of "z is a terminal state" (episodic tasks only) -> [...]."""
        return self.termination_net.apply({"params": params["termination"]}, z)[..., 0]

    def scalar(self, logits: jax.Array) -> jax.Array:
        cfg = self.cfg
        return layers.two_hot_inv(logits, cfg.num_bins, cfg.vmin, cfg.vmax)

    def pi(self, pi_params, z: jax.Array, rng: jax.Array):
        """Sample from the squashed Gaussian policy prior -> (action, mean action, scaled entropy)."""
        cfg = self.cfg
        mu, raw_log_std = jnp.split(self.pi_net.apply({"params": pi_params}, z), 2, axis=-1)
        log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (jnp.tanh(raw_log_std) + 1)
        eps = jax.random.normal(rng, mu.shape)
        gaussian_log_prob = jnp.sum(-0.5 * eps**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
        action = jnp.tanh(mu + eps * jnp.exp(log_std))
        scaled_entropy = -gaussian_log_prob * self.action_dim
        return action, jnp.tanh(mu), scaled_entropy

    def q_all(self, q_params, z: jax.Array, a: jax.Array, dropout_rng=None) -> jax.Array:
        """Logits of every ensemble member -> [num_q, ..., num_bins]."""
        return layers.apply_ensemble(self.q_net, q_params, (z, a), dropout_rng)

    def q_two(self, q_params, z: jax.Array, a: jax.Array, rng: jax.Array, reduce: str, dropout_rng=None) -> jax.Array:
        """Min ("min") or mean ("avg") of two randomly chosen ensemble members, as scalars (with dropout when
        `dropout_rng` is given: the members in train mode)."""
        idx = jax.random.choice(rng, self.cfg.num_q, (2,), replace=False)
        q = self.scalar(self.q_all(layers.select_members(q_params, idx), z, a, dropout_rng))
        return jnp.min(q, axis=0) if reduce == "min" else jnp.mean(q, axis=0)

    # ------------------------------------------------------------------------------ planning

    def estimate_value(self, params, z: jax.Array, actions: jax.Array, rng: jax.Array) -> jax.Array:
        """Discounted model return of action sequences [H, S, A] from latents [S, L], plus terminal Q.

        `z` may also be one latent [1, L] shared by all S sequences (the planner's case): its part of the first
        layers of the reward and dynamics nets is then computed once instead of S times.
        In an episodic task, a sequence stops counting reward and the terminal Q after the first latent the
        termination head predicts terminal (probability > 0.5): the reward of the step into it still counts."""
        ret, disc = jnp.zeros(z.shape[:-1]), 1.0
        alive = 1.0
        for t in range(self.cfg.horizon):
            ret = ret + disc * alive * self.scalar(self.reward_logits(params, z, actions[t]))
            z = self.next(params, z, actions[t])
            disc = disc * self.discount
            if self.cfg.episodic:
                alive = alive * (self.termination_logit(params, z) <= 0.0)  # sigmoid(logit) > 0.5 ends it
        k_pi, k_q = jax.random.split(rng)
        a, _, _ = self.pi(params["pi"], z, k_pi)
        return ret + disc * alive * self.q_two(params["qs"], z, a, k_q, "avg")

    def plan(self, params, obs: jax.Array, prev_mean: jax.Array, rng: jax.Array, eval_mode: bool):
        """MPPI for ONE observation [obs_dim] -> (action [A], new mean [H, A]); vmapped by `act`."""
        cfg, A, H = self.cfg, self.action_dim, self.cfg.horizon
        num_sampled = cfg.num_samples - cfg.num_pi_trajs
        k_pi, k_iter, k_pick, k_noise = jax.random.split(rng, 4)
        z = self.encode(params, obs)

        # trajectories proposed by the policy prior
        pi_actions = mppi.policy_sequences(lambda zp, k: self.pi(params["pi"], zp, k)[0],
                                           lambda zp, a: self.next(params, zp, a), z, cfg.num_pi_trajs, H, A, k_pi)

        # warm start: previous mean shifted by one step (zeros at an episode start)
        mean = jnp.concatenate([prev_mean[1:], jnp.zeros((1, A))], axis=0)
        std = jnp.full((H, A), cfg.max_std)

        def mppi_iteration(carry, key):
            mean, std = carry
            k_sample, k_value = jax.random.split(key)
            noise = jax.random.normal(k_sample, (H, num_sampled, A))
            sampled = jnp.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0)
            actions = jnp.concatenate([pi_actions, sampled], axis=1)
            value = jnp.nan_to_num(self.estimate_value(params, z[None], actions, k_value))
            elite_actions, score, mean, std = mppi.refit(actions, value, cfg.num_elites, cfg.temperature)
            return (mean, jnp.clip(std, cfg.min_std, cfg.max_std)), (elite_actions, score)

        (mean, std), (elites, scores) = jax.lax.scan(
            mppi_iteration, (mean, std), jax.random.split(k_iter, self.iterations)
        )
        # one of the last iteration's elites, drawn by score
        return mppi.executed_action(k_pick, k_noise, elites[-1], scores[-1], std[0], eval_mode), mean

    def act(self, state: AgentState, obs: jax.Array, plan_mean: jax.Array, rng: jax.Array, eval_mode: bool = False,
            agent_steps=None):
        """Plan for a batch of observations [N, obs_dim] with warm starts [N, H, A] (TD-MPC2 has no step
        schedule: `agent_steps` is unused)."""
        keys = jax.random.split(rng, obs.shape[0])
        params = layers.bf16_kernels(state.params) if self.cfg.planner_bf16 else state.params
        return jax.vmap(lambda o, m, k: self.plan(params, o, m, k, eval_mode))(obs, plan_mean, keys)

    def initial_plan_mean(self, num_envs: int) -> jax.Array:
        return jnp.zeros((num_envs, self.cfg.horizon, self.action_dim))

    # ------------------------------------------------------------------------------ learning

    def td_target(self, params, target_qs, next_z: jax.Array, reward: jax.Array, rng: jax.Array,
                  terminated=None) -> jax.Array:
        """r + discount * (1 - terminated) * min of two random target Qs at (z', pi(z')), for next latents
        [H, B, L], rewards and terminal flags [H, B] (None: nothing terminated)."""
        k_tpi, k_tq = jax.random.split(rng)
        next_a, _, _ = self.pi(params["pi"], next_z, k_tpi)
        bootstrap = self.q_two(target_qs, next_z, next_a, k_tq, "min")
        if terminated is not None:
            bootstrap = (1.0 - terminated) * bootstrap
        return reward + self.discount * bootstrap

    def update(self, state: AgentState, batch, rng: jax.Array):
        """One gradient step on a batch of sequences: obs [H+1, B, D], action [H, B, A], reward [H, B]."""
        cfg, H = self.cfg, self.cfg.horizon
        k_target, k_dropout, k_pi, k_qpi = jax.random.split(rng, 4)
        params = state.params
        rho = cfg.rho ** jnp.arange(H + 1, dtype=jnp.float32)
        # episodic windows may run past their episode's end: mask [H, B] marks the transitions inside it, and
        # latent_mask [H + 1, B] the latents z_0..z_H (z_0 always); None: every step counts (DMC)
        mask = batch.mask
        latent_mask = None if mask is None else jnp.concatenate([jnp.ones_like(mask[:1]), mask])

        # targets: online encoder for the next latents, min of two random target Qs for the TD target
        next_z = jax.lax.stop_gradient(self.encode(params, batch.obs[1:]))
        td_target = jax.lax.stop_gradient(
            self.td_target(params, state.target_qs, next_z, batch.reward, k_target, batch.terminated))

        def model_loss(model_params):
            p = {**params, **model_params}
            zs = layers.latent_rollout(self.encode(p, batch.obs[0]), batch.action, lambda z, a: self.next(p, z, a))
            consistency = consistency_loss(zs[1:], next_z, rho, mask)
            zs = jnp.stack(zs)
            reward_ce = layers.soft_ce(
                self.reward_logits(p, zs[:-1], batch.action), batch.reward, cfg.num_bins, cfg.vmin, cfg.vmax
            )  # [H, B]
            q_ce = layers.soft_ce(
                self.q_all(p["qs"], zs[:-1], batch.action, k_dropout), td_target[None], cfg.num_bins, cfg.vmin, cfg.vmax
            )  # [num_q, H, B]
            if mask is not None:  # steps past the window's episode end count zero
                reward_ce, q_ce = reward_ce * mask, q_ce * mask
            reward_loss = jnp.sum(rho[:H] * reward_ce.mean(-1)) / H
            value_loss = jnp.sum(rho[:H] * q_ce.mean(-1).sum(0)) / (H * cfg.num_q)
            total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
            losses = {"consistency_loss": consistency, "reward_loss": reward_loss, "value_loss": value_loss}
            if cfg.episodic:
                terminated = jnp.zeros_like(batch.reward) if batch.terminated is None else batch.terminated
                losses["termination_loss"] = termination_loss(self.termination_logit(p, zs[1:]), terminated, mask)
                total = total + cfg.termination_coef * losses["termination_loss"]
            return total, (zs, {**losses, "total_loss": total})

        model_step = gradients.step(model_loss, self.model_optim, layers.model_part(params), state.model_opt,
                                    axis_name=self.axis_name, has_aux=True)
        _, (zs, metrics) = model_step.loss
        params = {**params, **model_step.params}
        metrics["grad_norm"] = model_step.grad_norm

        # policy prior: maximise scaled Q (avg of two random members, dropout on: the official code reads its
        # Q-ensemble in train mode here) + entropy on the detached rollout
        zs = jax.lax.stop_gradient(zs)
        k_pick, k_qdrop = jax.random.split(k_qpi)

        def pi_loss(pi_params, scale):
            a, _, scaled_entropy = self.pi(pi_params, zs, k_pi)
            q = self.q_two(params["qs"], zs, a, k_pick, "avg", k_qdrop)  # [H+1, B]
            lo, hi = jnp.percentile(jax.lax.stop_gradient(q[0]), jnp.array([5.0, 95.0]))
            lo, hi = gradients.device_mean((lo, hi), self.axis_name)
            scale = next_scale(scale, lo, hi, cfg.scale_tau)
            loss = policy_loss(q, scaled_entropy, scale, cfg.entropy_coef, rho, latent_mask)
            entropy = (scaled_entropy.mean() if latent_mask is None
                       else jnp.sum(scaled_entropy * latent_mask) / jnp.sum(latent_mask))
            return loss, (scale, entropy)

        pi_step = gradients.step(pi_loss, self.pi_optim, params["pi"], state.pi_opt, state.scale,
                                 axis_name=self.axis_name, has_aux=True)
        pi_value, (scale, entropy) = pi_step.loss
        params = {**params, "pi": pi_step.params}
        target_qs = optax.incremental_update(params["qs"], state.target_qs, cfg.tau)

        metrics.update(pi_loss=pi_value, pi_grad_norm=pi_step.grad_norm, pi_scale=scale, pi_entropy=entropy)
        new_state = AgentState(params, target_qs, model_step.opt_state, pi_step.opt_state,
                               jax.lax.stop_gradient(scale), state.updates + 1)
        return new_state, metrics, None
