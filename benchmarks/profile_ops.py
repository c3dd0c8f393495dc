"""Where TD-MPC2's plan and update spend their time, per XLA op, on the current backend.

    uv run python -m benchmarks.profile_ops                 # 5M model, paper planner, plan for N = 4 envs
    uv run python -m benchmarks.profile_ops --num_envs 1 --top 40

Jits `TDMPC2.act` (N envs) and `TDMPC2.update` (one batch) on random inputs of cheetah-run's sizes, runs each
under `jax.profiler.trace`, and sums the trace's per-op events (XLA:CPU thunks: one event per fusion or
custom call) per run. Each op is labelled from the optimised HLO: a matmul (a fusion containing a dot, with
whatever XLA fused around it), Mish / tanh / softplus, exp (softmax, SimNorm), reductions (LayerNorm,
softmax statistics), random bits (threefry), copies / transposes / broadcasts, gathers, sort. Prints the
per-category totals and the top ops with their shapes. On a shared machine the absolute times move with
the load; the shares are what this is for.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import re
import tempfile
import time

import jax
import tyro

from anakin_tdmpc.loop.replay import Batch
from anakin_tdmpc.agents.tdmpc2 import TDMPC2, TDMPC2Config


@dataclasses.dataclass
class Options:
    num_envs: int = 4
    """envs planned for at once (the plan's cost is linear in it)"""
    obs_dim: int = 17
    """observation size (cheetah-run: 17)"""
    action_dim: int = 6
    """action size (cheetah-run: 6)"""
    runs: int = 2
    """traced runs of each function (after a warm-up)"""
    top: int = 20
    """ops listed per function"""


def instructions(hlo: str) -> tuple[dict, dict]:
    """Optimised HLO text -> (instruction name -> its line, computation name -> its body lines)."""
    lines, bodies, current = {}, {}, None
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if m:
            lines.setdefault(m.group(1), line.strip())
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head:
            current = head.group(1)
            bodies[current] = []
        elif current and line.strip() not in ("", "}"):
            bodies[current].append(line.strip())
    return lines, bodies


def label(name: str, lines: dict, bodies: dict) -> tuple[str, str]:
    """(category, output shape) of one op of the trace."""
    line = lines.get(name, "")
    called = re.search(r"calls=%?([\w.\-]+)", line)
    body = " ".join(bodies.get(called.group(1), [])) if called else ""
    text = line + " " + body
    shape = line.split(" = ")[1].split(" ")[0] if " = " in line else ""
    if " dot(" in text or "convolution(" in text:
        return "matmul (+ fused epilogue)", shape
    if "xor(" in text or shape.startswith("u32"):
        return "random bits (threefry)", shape
    if " sort(" in text:
        return "sort / top-k", shape
    if "log-plus-one(" in text or "tanh(" in text:
        return "mish / tanh / softplus", shape
    if "exponential(" in text:
        return "exp (softmax, SimNorm)", shape
    if " gather(" in text or "dynamic-slice(" in text:
        return "gather / select members", shape
    if " reduce(" in text:
        return "reductions (LayerNorm, softmax)", shape
    if "copy(" in text or "transpose(" in text or " broadcast(" in text and text.count("(") <= 4:
        return "copy / transpose / broadcast", shape
    return "other elementwise", shape


def profile(fn, args: tuple, runs: int) -> collections.Counter:
    """Per-op microseconds summed over `runs` traced calls (XLA op events only)."""
    jax.block_until_ready(fn(*args))
    with tempfile.TemporaryDirectory() as out:
        with jax.profiler.trace(out, create_perfetto_trace=True):
            for _ in range(runs):
                jax.block_until_ready(fn(*args))
        trace = json.load(gzip.open(glob.glob(f"{out}/plugins/profile/*/perfetto_trace.json.gz")[0]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    skip = ("ThunkExecutor", "$", "Slinky", "PjRt", "Pjit", "CommonPjRt", "Thunk")
    times = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(skip):
            times[e["name"]] += e.get("dur", 0)
    return times


def report(title: str, compiled, args: tuple, opts: Options) -> None:
    lines, bodies = instructions(compiled.as_text())
    jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    wall = time.perf_counter() - t0
    per_op = profile(compiled, args, opts.runs)
    total = sum(per_op.values())
    by_category = collections.Counter()
    for name, us in per_op.items():
        by_category[label(name, lines, bodies)[0]] += us
    print(f"\n## {title}: {1e3 * wall:.0f} ms per call; op time {total / 1e3 / opts.runs:.0f} ms per call "
          "(summed over ops; exceeds wall time where ops overlap)\n\n| category | ms per call | share |\n|---|---:|---:|")
    for cat, us in by_category.most_common():
        print(f"| {cat} | {us / 1e3 / opts.runs:.1f} | {100 * us / total:.0f}% |")
    print("\n| op | category | shape | ms per call |\n|---|---|---|---:|")
    for name, us in per_op.most_common(opts.top):
        cat, shape = label(name, lines, bodies)
        print(f"| {name} | {cat} | {shape} | {us / 1e3 / opts.runs:.1f} |")


def main(opts: Options) -> None:
    algo = TDMPC2(TDMPC2Config(), opts.obs_dim, opts.action_dim, episode_length=500)
    agent = algo.init(jax.random.key(0))
    # zero-initialised heads would make every value equal; perturb so that the planner sees real spreads
    agent = agent._replace(params=jax.tree.map(
        lambda p: p + 0.01 * jax.random.normal(jax.random.key(1), p.shape), agent.params))
    cfg, n = algo.cfg, opts.num_envs
    k_obs, k_batch_obs, k_action, k_reward = jax.random.split(jax.random.key(2), 4)
    batch = Batch(obs=jax.random.normal(k_batch_obs, (cfg.horizon + 1, cfg.batch_size, opts.obs_dim)),
                  action=jax.random.uniform(k_action, (cfg.horizon, cfg.batch_size, opts.action_dim), minval=-1),
                  reward=jax.random.uniform(k_reward, (cfg.horizon, cfg.batch_size)))
    plan_args = (agent, jax.random.normal(k_obs, (n, opts.obs_dim)), algo.initial_plan_mean(n), jax.random.key(3))
    update_args = (agent, batch, jax.random.key(4))
    act = jax.jit(lambda a, o, m, k: algo.act(a, o, m, k, False)).lower(*plan_args).compile()
    update = jax.jit(algo.update).lower(*update_args).compile()
    print(f"TD-MPC2 5M, {cfg.num_samples} samples x {algo.iterations} MPPI iterations, batch {cfg.batch_size}, "
          f"planner bf16 {cfg.planner_bf16}, {jax.default_backend()}")
    report(f"plan (TDMPC2.act, {n} envs)", act, plan_args, opts)
    report("update (TDMPC2.update, one batch)", update, update_args, opts)


if __name__ == "__main__":
    main(tyro.cli(Options, prog="python -m benchmarks.profile_ops", use_underscores=True))
