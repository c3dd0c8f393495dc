"""Scaling out: training throughput over data-parallel devices D and vmapped seeds S, side by side.

    uv run python -m benchmarks.scaling --quick     # CPU: 1M model, small planner, cartpole; a few minutes
    uv run python -m benchmarks.scaling             # default 5M model, paper planner, cheetah-run

For every (D, S) in --devices x --seeds: the run's fused chunk under `parallel.Parallel` (global num_envs N
split N/D per device, batch split B/D, gradients averaged; S seeds vmapped, each with N envs), compiled,
run past seeding, then timed. All configurations are timed in alternating rounds in one process (medians),
so the ratios hold on a noisy machine. On a CPU the devices are forced host devices
(XLA_FLAGS=--xla_force_host_platform_device_count, set here before JAX starts) sharing the same cores, so
D > 1 cannot be faster there; the table measures the overhead of the data-parallel program. On GPUs, D is
real devices.

Columns: env steps/s of one seed, of all seeds, the speed-up of the latter over (D=1, S=1), and the scaling
efficiency = SPS_all / (D x S x SPS_11): 1 = D devices give D x the throughput and S seeds cost no more
than one. Results: benchmarks/results/scaling[_quick].{json,md}.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time


@dataclasses.dataclass
class Options:
    algo: str = "tdmpc2"
    task: str = "cheetah-run"
    model_size: int = 5
    """TD-MPC2 preset (1 with --quick, with a reduced planner)"""
    num_envs: int = 16
    """global parallel envs of one seed (split over the devices)"""
    devices: tuple[int, ...] = (1, 2)
    seeds: tuple[int, ...] = (1, 4)
    iters: int = 4
    """fused iterations per timing"""
    rounds: int = 3
    """alternating timing rounds (median)"""
    quick: bool = False
    out_dir: str = "benchmarks/results"


QUICK_PLANNER = dict(num_samples=128, num_elites=16, num_pi_trajs=6, iterations=3)


def force_cpu_devices(n: int) -> None:
    """Let a CPU-only JAX see `n` devices (must run before JAX starts; harmless on GPU machines)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])


def main(opts: Options) -> list[dict]:
    force_cpu_devices(max(opts.devices))
    import jax
    import numpy as np

    from anakin_tdmpc.config import Args
    from anakin_tdmpc.loop.parallel import Parallel
    from benchmarks.tables import scaling_table
    from benchmarks.throughput import machine

    if opts.quick:
        opts = dataclasses.replace(opts, task="cartpole-balance", model_size=1, num_envs=4, iters=2)
    extra = QUICK_PLANNER if opts.quick else {}
    from anakin_tdmpc.build import build

    setups = []
    for d in opts.devices:
        if d > jax.device_count():
            print(f"skipping D={d}: only {jax.device_count()} devices", file=sys.stderr)
            continue
        for s in opts.seeds:
            args = Args(algo=opts.algo, task=opts.task, num_envs=opts.num_envs, model_size=opts.model_size,
                        total_timesteps=10**9, eval_episodes=0, seed_steps=4 * opts.num_envs, **extra)
            _, _, loop, schedule = build(args, d)
            par = Parallel(loop, s, jax.devices()[:d])
            carry = par.init(par.seed_keys(1)[0])
            t0 = time.perf_counter()
            chunk = par.chunk.lower(carry, np.int32(1)).compile()
            compile_s = time.perf_counter() - t0
            carry, _, _ = jax.block_until_ready(chunk(carry, np.int32(math.ceil(schedule.seed_steps / opts.num_envs) + 1)))
            setups.append({"devices": d, "seeds": s, "chunk": chunk, "carry": carry, "compile_s": compile_s,
                           "env_steps_per_iter": schedule.env_steps_per_iter, "times": []})
            print(f"D={d} S={s}: compiled in {compile_s:.1f}s", file=sys.stderr, flush=True)
    for _ in range(opts.rounds):  # alternate, so slow phases of the machine hit every configuration alike
        for st in setups:
            t0 = time.perf_counter()
            st["carry"], _, _ = jax.block_until_ready(st["chunk"](st["carry"], np.int32(opts.iters)))
            st["times"].append(time.perf_counter() - t0)
    rows = []
    for st in setups:
        sps = opts.iters * st["env_steps_per_iter"] / float(np.median(st["times"]))
        rows.append({"devices": st["devices"], "seeds": st["seeds"], "env_steps_per_s": sps,
                     "env_steps_per_s_all_seeds": sps * st["seeds"], "compile_s": st["compile_s"]})
    base = next((r for r in rows if r["devices"] == 1 and r["seeds"] == 1), rows[0])
    for r in rows:
        r["speedup"] = r["env_steps_per_s_all_seeds"] / base["env_steps_per_s_all_seeds"]
        r["efficiency"] = r["speedup"] / (r["devices"] * r["seeds"])
    info = machine()
    results = {"machine": info, "options": dataclasses.asdict(opts), "rows": rows}
    text = scaling_table(results)
    print("\n" + text, flush=True)
    os.makedirs(opts.out_dir, exist_ok=True)
    stem = os.path.join(opts.out_dir, "scaling" + ("_quick" if opts.quick else ""))
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(text)
    return rows


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Options, prog="python -m benchmarks.scaling", use_underscores=True))
