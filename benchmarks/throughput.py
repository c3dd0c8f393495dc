"""Fused-loop throughput: env steps/s of training (planning + env + buffer + updates) after seeding, per
num_envs, with compile time. Prints a markdown table and writes JSON to benchmarks/results/.

    uv run python -m benchmarks.throughput --num_envs 1 16 --model_size 5
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import tyro

from anakin_tdmpc.config import Args
from anakin_tdmpc.run import build


@dataclasses.dataclass
class Bench:
    task: str = "cheetah-run"
    """task to train on"""
    num_envs: Sequence[int] = (1, 16)
    """parallel env counts to measure"""
    model_size: int = 5
    """TD-MPC2 preset (millions of parameters)"""
    utd: float = 1.0
    """updates per agent step"""
    iters: int = 3
    """timed iterations per configuration (after compile, seeding and the pretraining burst)"""
    num_samples: int = 512
    """MPPI samples (paper: 512)"""
    iterations: int = 6
    """MPPI iterations (paper: 6)"""
    out: str = "benchmarks/results/throughput.json"
    """where to write the JSON results"""


def measure(bench: Bench, num_envs: int) -> dict:
    args = Args(task=bench.task, num_envs=num_envs, model_size=bench.model_size, utd=bench.utd,
                total_timesteps=10**9, seed_steps=4 * num_envs, num_samples=bench.num_samples,
                iterations=bench.iterations, eval_episodes=0)
    env, algo, loop, schedule = build(args)
    carry = loop.init(jax.random.key(0))
    t0 = time.time()
    chunk = loop.chunk.lower(carry, jnp.int32(1)).compile()
    compile_s = time.time() - t0
    carry, _ = chunk(carry, jnp.int32(5))  # seeding (4 iterations) + the small pretraining burst
    carry, _ = chunk(carry, jnp.int32(1))  # warm
    jax.block_until_ready(carry)
    t0 = time.time()
    carry, stats = chunk(carry, jnp.int32(bench.iters))
    jax.block_until_ready((carry, stats))
    dt = time.time() - t0
    agent_steps = bench.iters * num_envs
    return {
        "task": env.name, "model_size": bench.model_size, "num_envs": num_envs, "utd": bench.utd,
        "num_samples": bench.num_samples, "mppi_iterations": algo.iterations,
        "env_steps_per_s": agent_steps * env.action_repeat / dt, "agent_steps_per_s": agent_steps / dt,
        "updates_per_s": int(stats.num_updates) / dt, "compile_s": compile_s, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
    }


def main(bench: Bench) -> None:
    rows = [measure(bench, n) for n in bench.num_envs]
    print(f"\n{bench.task}, {bench.model_size}M model, MPPI {bench.num_samples} samples x {rows[0]['mppi_iterations']} "
          f"iterations, UTD {bench.utd} per agent step, {rows[0]['backend']} ({rows[0]['device']})\n")
    print("| num_envs | env steps/s | agent steps/s | updates/s | compile (s) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['num_envs']} | {r['env_steps_per_s']:.2f} | {r['agent_steps_per_s']:.2f} | "
              f"{r['updates_per_s']:.2f} | {r['compile_s']:.1f} |")
    os.makedirs(os.path.dirname(bench.out) or ".", exist_ok=True)
    with open(bench.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main(tyro.cli(Bench, use_underscores=True))
