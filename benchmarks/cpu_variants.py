"""Speed variants of TD-MPC2's compute, measured against the current code in the same process (CPU profiling).

    uv run python -m benchmarks.cpu_variants                  # fused loop, N = 1, 5M model, paper planner
    uv run python -m benchmarks.cpu_variants --phases         # also plan alone / update alone, and XLA options

Nothing in anakin_tdmpc/ is changed: each variant is a shallow copy of the built algorithm with some methods
replaced (monkeypatched), driven by a copy of the fused loop with its own jitted chunk. Timings alternate
between the baseline and a variant (paired rounds) and the median of the per-round ratios is reported, so a
shared, noisy machine affects both sides alike. Variants:

- mish1exp: mish(x) = x * tanh(softplus(x)) computed with one exp: with n = e^x (e^x + 2),
  tanh(softplus(x)) = n / (n + 2) (identity for x > 20). XLA:CPU's log1p/tanh path costs ~4x more per element.
- bf16 planner: the planner's matmuls with bf16 operands and fp32 accumulation (AVX512-BF16 doubles the
  matmul rate on this CPU); everything else (LayerNorm, SimNorm, softmax, MPPI statistics) stays fp32.
- bf16 update: the same for the update's forward matmuls (parameters and optimiser stay fp32).
- XLA options (per compilation): YNNPACK fusions off, XNNPACK off, oneDNN, fast math, 512-bit vectors.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from anakin_tdmpc import buffer as replay
from anakin_tdmpc import networks as nets
from anakin_tdmpc.config import Args
from anakin_tdmpc.run import build
from benchmarks.throughput import act_fn


@dataclasses.dataclass
class Options:
    task: str = "cheetah-run"
    num_envs: int = 1
    model_size: int = 5
    iters: int = 2
    """fused iterations per timing"""
    rounds: int = 5
    """paired rounds (baseline, variant)"""
    phases: bool = False
    """also time plan alone and update alone, and XLA compile options"""


# ------------------------------------------------------------------------------------------ the tricks


def mish1exp(x: jax.Array) -> jax.Array:
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    return jnp.where(x > 20.0, x, x * n / (n + 2.0))


def with_mish1exp(algo):
    """The same flax networks with the one-exp mish."""
    algo = copy.copy(algo)
    for name in ("encoder", "dynamics", "reward_net", "pi_net", "q_net"):
        setattr(algo, name, getattr(algo, name).clone(act=mish1exp))
    return algo


def functional_networks(algo, bf16: bool):
    """Replace the flax applies by functional ones on the same parameters: matmuls in bf16 (fp32 accumulation)
    when `bf16`, the one-exp mish, and (z, a) first layers as z @ Wz + a @ Wa (no concatenation)."""
    algo, cfg, latent_dim = copy.copy(algo), algo.cfg, algo.cfg.latent_dim

    def mm(x, w):
        if bf16:
            return jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), preferred_element_type=jnp.float32)
        return x @ w

    def norm_act(p, h, act):
        mean = jnp.mean(h, -1, keepdims=True)
        var = jnp.maximum(jnp.mean(jnp.square(h), -1, keepdims=True) - jnp.square(mean), 0.0)
        return act((h - mean) * jax.lax.rsqrt(var + 1e-5) * p["LayerNorm_0"]["scale"] + p["LayerNorm_0"]["bias"])

    def mlp(p, h, out_act=None, dropout=None):
        """`h` is the first layer's pre-activation; runs LayerNorm + activation and the remaining layers."""
        layers = sorted((k for k in p if k.startswith("NormedLinear")), key=lambda k: int(k.split("_")[1]))
        for i, name in enumerate(layers):
            if i > 0:
                h = mm(h, p[name]["Dense_0"]["kernel"]) + p[name]["Dense_0"]["bias"]
            if i == 0 and dropout is not None:
                h = dropout(h)
            last = i == len(layers) - 1 and out_act is not None
            h = norm_act(p[name], h, out_act if last else mish1exp)
        return mm(h, p["Dense_0"]["kernel"]) + p["Dense_0"]["bias"] if "Dense_0" in p else h

    def first(p, x):
        return mm(x, p["NormedLinear_0"]["Dense_0"]["kernel"]) + p["NormedLinear_0"]["Dense_0"]["bias"]

    def first_za(p, z, a):
        k = p["NormedLinear_0"]["Dense_0"]["kernel"]
        return mm(z, k[:latent_dim]) + mm(a, k[latent_dim:]) + p["NormedLinear_0"]["Dense_0"]["bias"]

    simnorm = lambda x: nets.simnorm(x, cfg.simnorm_dim)
    algo.encode = lambda params, obs: mlp(params["encoder"], first(params["encoder"], obs), simnorm)
    algo.next = lambda params, z, a: mlp(params["dynamics"], first_za(params["dynamics"], z, a), simnorm)
    algo.reward_logits = lambda params, z, a: mlp(params["reward"], first_za(params["reward"], z, a))

    class PiNet:  # `algo.pi` calls self.pi_net.apply({"params": p}, z)
        @staticmethod
        def apply(variables, z):
            p = variables["params"]
            return mlp(p, first(p, z))

    algo.pi_net = PiNet()

    def q_all(q_params, z, a, dropout_rng=None):
        keys = None if dropout_rng is None else jax.random.split(dropout_rng, jax.tree.leaves(q_params)[0].shape[0])

        def member(p, key):
            drop = None
            if key is not None:
                keep = 1.0 - cfg.dropout
                drop = lambda h: jnp.where(jax.random.bernoulli(key, keep, h.shape), h / keep, 0.0)
            return mlp(p, first_za(p, z, a), dropout=drop)

        return jax.vmap(member)(q_params, keys) if keys is not None else jax.vmap(lambda p: member(p, None))(q_params)

    algo.q_all = q_all
    return algo


def with_planner_of(algo, planner_algo):
    """`algo` for learning, `planner_algo`'s networks for planning."""
    algo = copy.copy(algo)
    algo.plan = planner_algo.plan
    return algo


def variants(algo) -> dict[str, Callable]:
    return {
        "mish1exp": lambda: with_mish1exp(algo),
        "mish1exp + bf16 planner": lambda: with_planner_of(with_mish1exp(algo), functional_networks(algo, bf16=True)),
        "mish1exp + bf16 planner + bf16 update": lambda: functional_networks(algo, bf16=True),
    }


XLA_OPTIONS = {
    "YNNPACK fusions off": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "XNNPACK off": {"xla_cpu_use_xnnpack": False},
    "oneDNN on": {"xla_cpu_use_onednn": True},
    "fast math": {"xla_cpu_enable_fast_math": True},
    "512-bit vectors": {"xla_cpu_prefer_vector_width": 512},
}


# ------------------------------------------------------------------------------------------- timing


def seconds(fn: Callable, *args) -> tuple:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def paired(base: Callable, variant: Callable, rounds: int) -> float:
    """Median over rounds of time(base) / time(variant); each callable runs once per round."""
    return float(np.median([base() / variant() for _ in range(rounds)]))


def fused_table(opts: Options, loop, carry) -> list[tuple[str, float]]:
    base = loop.chunk.lower(carry, np.int32(1)).compile()
    state = {"base": carry}

    def runner(name, chunk):
        def run():
            (state[name], _), dt = seconds(chunk, state[name], np.int32(opts.iters))
            return dt
        return run

    run_base = runner("base", base)
    run_base()
    rows = []
    for name, make in variants(loop.algo).items():
        v = copy.copy(loop)
        v.algo = make()
        v.chunk = jax.jit(v._chunk, donate_argnums=0)
        state[name] = jax.tree.map(jnp.copy, state["base"])
        chunk = v.chunk.lower(state[name], np.int32(1)).compile()
        run = runner(name, chunk)
        run()
        rows.append((name, paired(run_base, run, opts.rounds)))
        print(f"  fused loop, {name}: x{rows[-1][1]:.2f}", flush=True)
    return rows


def phase_table(opts: Options, algo, carry) -> list[tuple[str, float, float]]:
    cfg = algo.cfg
    batch = replay.sample(carry.buffer, jax.random.key(1), cfg.batch_size, cfg.horizon + 1)
    plan_args = (carry.agent, carry.env_state.obs, carry.plan_mean, jax.random.key(2), carry.agent_steps)
    update_args = (carry.agent, batch, jax.random.key(3))

    def compiled(a, options=None):
        return (jax.jit(act_fn(a)).lower(*plan_args).compile(options),
                jax.jit(a.update).lower(*update_args).compile(options))

    def timer(fn, args):
        return lambda: seconds(fn, *args)[1]

    base_plan, base_update = compiled(algo)
    cases = {name: (lambda make=make: compiled(make())) for name, make in variants(algo).items()}
    cases.update({name: (lambda o=o: compiled(algo, o)) for name, o in XLA_OPTIONS.items()})
    rows = []
    for name, make in cases.items():
        plan, update = make()
        rows.append((name, paired(timer(base_plan, plan_args), timer(plan, plan_args), opts.rounds),
                     paired(timer(base_update, update_args), timer(update, update_args), opts.rounds)))
        print(f"  {name}: plan x{rows[-1][1]:.2f}, update x{rows[-1][2]:.2f}", flush=True)
    return rows


def main(opts: Options) -> None:
    n = opts.num_envs
    args = Args(task=opts.task, num_envs=n, model_size=opts.model_size, total_timesteps=10**9, seed_steps=4 * n,
                eval_episodes=0)
    _, algo, loop, _ = build(args)
    carry = loop.init(jax.random.key(0))
    carry, _ = loop.chunk(carry, np.int32(5))  # past seeding and the pretraining burst
    print(f"\n{opts.task}, {opts.model_size}M, N={n}, {jax.default_backend()}: speed-up = baseline time / variant "
          f"time, median of {opts.rounds} paired rounds\n")
    if opts.phases:
        rows = phase_table(opts, algo, carry)
        print("\n| variant | plan alone | update alone |\n|---|---:|---:|")
        for name, p, u in rows:
            print(f"| {name} | x{p:.2f} | x{u:.2f} |")
    rows = fused_table(opts, loop, carry)
    print("\n| variant | fused loop |\n|---|---:|")
    for name, r in rows:
        print(f"| {name} | x{r:.2f} |")


if __name__ == "__main__":
    main(tyro.cli(Options, use_underscores=True))
