"""Throughput of the fused ("Anakin") training loop, and where its time goes.

    uv run python -m benchmarks.throughput            # full run (meant for a GPU)
    uv run python -m benchmarks.throughput --quick    # a few minutes on a small CPU (fewer sizes and iterations)
    uv run python -m benchmarks.throughput --quick --algo tdmpc    # the original TD-MPC instead

For each model (TD-MPC2: the default 5M with the paper's planner, the 1M preset with a reduced planner, and the
learning test's tiny model;
TD-MPC: its one model with the paper's planner, and with a reduced planner) and each number of parallel envs
N, in one process:

1. fused training: env steps/s, agent steps/s and updates/s of `loop.chunk` after seeding, with the UTD,
   the compile time of the chunk, its XLA memory footprint and the process's peak memory;
2. phase split: one env step of the N envs alone, one plan (`algo.act` batched over N) alone, one update
   (on a sampled batch) alone, against one fused iteration (= plan + env + insert + utd x N sample + update);
3. host-loop baseline (N = 1): the same networks and planner driven the conventional way, as the official
   TD-MPC2 and its JAX port run: a Python loop with one jitted act and one jitted update per agent step, a
   NumPy replay buffer on the host and the env stepped one call per step, with device->host transfers;
   timed in alternation with the fused loop, so the speed-up is a side-by-side ratio at equal UTD;
4. FLOPs: per plan and per update from XLA's cost analysis (loops unrolled so that every MPPI iteration is
   counted), the achieved FLOP/s of the fused loop, and its fraction of a measured fp32 matmul peak.

Each table is printed as markdown; everything goes to benchmarks/results/throughput[_quick][_tdmpc].{json,md}.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import resource
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from anakin_tdmpc.loop import replay
from anakin_tdmpc.config import Args
from anakin_tdmpc.build import build
from benchmarks.tables import throughput_report

# algorithm -> model name -> Args overrides; the first model of each is the default-size one
MODELS = {
    "tdmpc2": {
        "5M": dict(model_size=5),  # default: paper planner (512 samples x 6 iterations, 64 elites, 24 pi)
        "1M": dict(model_size=1, num_samples=128, num_elites=16, num_pi_trajs=6, iterations=3),  # small planner
        # the learning test's model (tests/test_learning.py): where per-step overhead is a large part of a step
        "tiny": dict(model_size=1, latent_dim=64, mlp_dim=128, enc_dim=128, num_q=2, num_samples=64, num_elites=8,
                     num_pi_trajs=4, iterations=3, batch_size=64),
    },
    "tdmpc": {
        "paper": dict(),  # its one model (latent 50, mlp 512): 512 + 25 pi samples x 6 iterations, 64 elites
        "small": dict(num_samples=128, num_elites=16, iterations=3),  # the same model, a reduced planner
    },
}


OPT_IN = {"tiny"}
"""models measured only when named in --models (keeps --quick under 5 minutes)"""


@dataclasses.dataclass
class Bench:
    """Fused-loop throughput, phase split, host-loop baseline and FLOP/s."""

    algo: str = "tdmpc2"
    """algorithm to measure: tdmpc2 or tdmpc"""
    task: Optional[str] = None
    """task to train on (default: cheetah-run; cartpole-balance with --quick, whose env compiles faster)"""
    models: Optional[tuple[str, ...]] = None
    """models to measure (default: the algorithm's 5M/1M or paper/small): tdmpc2 5M (paper planner), 1M (1M preset,
    128 samples x 3 MPPI iterations) and/or tiny (the learning test's: latent 64, MLPs 128, 2 Qs, 64 samples x 3
    iterations, batch 64); tdmpc paper and/or small (128 samples x 3 MPPI iterations)"""
    num_envs: tuple[int, ...] = (1, 4, 16, 64, 256)
    """parallel env counts"""
    utd: float = 1.0
    """updates per agent step (the paper: 1)"""
    iters: int = 10
    """timed fused iterations per configuration"""
    reps: int = 5
    """repetitions of each timing (fused chunks of `iters` iterations, phases alone); medians reported"""
    host_steps: int = 20
    """agent steps of the host loop per round (and fused iterations per round at N = 1)"""
    rounds: int = 3
    """alternating host / fused rounds for the side-by-side speed-up"""
    host_baseline: bool = True
    """measure the conventional host loop at N = 1"""
    quick: bool = False
    """a few minutes on a small CPU: N in (1, 4) (default-size model: N = 1 only), few iterations"""
    out_dir: str = "benchmarks/results"
    """folder for throughput[_quick].json / .md"""

    def resolved(self) -> "Bench":
        if self.algo not in MODELS:
            raise SystemExit(f"error: unknown algo '{self.algo}'; valid: {', '.join(MODELS)}")
        models = self.models or tuple(m for m in MODELS[self.algo] if m not in OPT_IN)
        unknown = [m for m in models if m not in MODELS[self.algo]]
        if unknown:
            raise SystemExit(f"error: unknown model(s) {unknown} for {self.algo}; valid: {', '.join(MODELS[self.algo])}")
        if not self.quick:
            return dataclasses.replace(self, models=models, task=self.task or "cheetah-run")
        return dataclasses.replace(self, models=models, task=self.task or "cartpole-balance",
                                   num_envs=tuple(n for n in self.num_envs if n <= 4) or (1,), iters=2, reps=3,
                                   host_steps=2, rounds=3)


# ------------------------------------------------------------------------------------------- helpers


def timed(fn: Callable, *args) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def median_time(fn: Callable, *args, reps: int) -> float:
    jax.block_until_ready(fn(*args))  # warm (compile happens here)
    return float(np.median([timed(fn, *args)[1] for _ in range(reps)]))


def act_fn(algo) -> Callable:
    """`algo.act` in training mode as f(agent, obs, plan_mean, rng, agent_steps)."""

    def act(agent, obs, plan_mean, rng, agent_steps):
        return algo.act(agent, obs, plan_mean, rng, False, agent_steps)

    return act


def peak_memory() -> tuple[int, str]:
    """Peak device memory where the backend reports it (GPU), else the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def footprint(compiled) -> int:
    """Bytes XLA allocates for one call of a compiled function: arguments + outputs + temporaries - aliased."""
    m = compiled.memory_analysis()
    if m is None:
        return 0
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


@contextlib.contextmanager
def unrolled_loops():
    """Trace `lax.scan` / static `lax.fori_loop` fully unrolled: XLA's cost analysis counts a loop body once,
    whatever its trip count, so FLOPs are only right for straight-line code."""
    scan, fori = jax.lax.scan, jax.lax.fori_loop

    def scan_unrolled(*args, **kwargs):
        return scan(*args, **{**kwargs, "unroll": True})

    def fori_unrolled(lower, upper, body, init, **kwargs):
        if isinstance(lower, int) and isinstance(upper, int):
            return fori(lower, upper, body, init, unroll=True)
        return fori(lower, upper, body, init, **kwargs)

    jax.lax.scan, jax.lax.fori_loop = scan_unrolled, fori_unrolled
    try:
        yield
    finally:
        jax.lax.scan, jax.lax.fori_loop = scan, fori


def flops_of(lowered) -> float:
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def matmul_peak(n: int, reps: int = 10) -> float:
    """Best fp32 FLOP/s of an n x n x n jnp.dot at the default precision (what the networks use)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))
    return 2 * n**3 / min(timed(dot, a, b)[1] for _ in range(reps))


# --------------------------------------------------------------------------------------- fused loop


@dataclasses.dataclass
class Setup:
    """One (model, N) configuration: built objects, a compiled chunk and a carry past seeding."""

    model: str
    num_envs: int
    env: Any
    algo: Any
    loop: Any
    schedule: Any
    chunk: Any
    carry: Any
    compile_s: float
    footprint: int


def make_setup(bench: Bench, model: str, num_envs: int) -> Setup:
    args = Args(algo=bench.algo, task=bench.task, num_envs=num_envs, utd=bench.utd, total_timesteps=10**9,
                eval_episodes=0, seed_steps=4 * num_envs, **MODELS[bench.algo][model])
    env, algo, loop, schedule = build(args)
    carry = loop.init(jax.random.key(0))
    t0 = time.perf_counter()
    chunk = loop.chunk.lower(carry, np.int32(1)).compile()
    compile_s = time.perf_counter() - t0
    # seeding (random actions), the pretraining burst, then one warm iteration
    (carry, _), _ = timed(chunk, carry, np.int32(math.ceil(schedule.seed_steps / num_envs) + 1))
    return Setup(model, num_envs, env, algo, loop, schedule, chunk, carry, compile_s, footprint(chunk))


def run_fused(s: Setup, iters: int) -> tuple[float, int]:
    """Seconds and updates of `iters` fused iterations (the carry advances)."""
    (s.carry, stats), dt = timed(s.chunk, s.carry, np.int32(iters))
    return dt, int(stats.num_updates)


def fused_row(bench: Bench, s: Setup) -> dict:
    runs = [run_fused(s, bench.iters) for _ in range(bench.reps)]
    dt = float(np.median([t for t, _ in runs]))  # seconds per `iters` iterations
    updates = sum(u for _, u in runs) / len(runs)
    agent_steps = bench.iters * s.num_envs
    mem, mem_kind = peak_memory()
    return {
        "model": s.model, "num_envs": s.num_envs, "utd": bench.utd, "updates_per_iter": s.schedule.updates_per_iter,
        "mppi_samples": s.algo.cfg.num_samples, "mppi_iterations": s.algo.iterations,
        "iteration_ms": 1e3 * dt / bench.iters,
        "env_steps_per_s": agent_steps * s.env.action_repeat / dt, "agent_steps_per_s": agent_steps / dt,
        "updates_per_s": updates / dt, "compile_s": s.compile_s, "chunk_footprint_bytes": s.footprint,
        "peak_memory_bytes": mem, "peak_memory_kind": mem_kind,
    }


# -------------------------------------------------------------------------------------- phase split


def phase_fns(s: Setup, shared: dict) -> dict:
    """Jitted single phases of one iteration on the setup's shapes. Compiled once and shared: the env step per N
    (the same task for every model), the update per model (its shapes do not depend on N)."""
    env = shared.setdefault(("env", s.num_envs), s.env.jit(s.env.step))
    update = shared.setdefault(("update", s.model), jax.jit(s.algo.update))
    return {"env": env, "plan": jax.jit(act_fn(s.algo)), "update": update}


def sample_batch(s: Setup, rng: jax.Array):
    cfg = s.algo.cfg
    return replay.sample(s.carry.buffer, rng, cfg.batch_size, cfg.horizon + 1)


def phase_row(bench: Bench, s: Setup, fns: dict, fused: dict) -> dict:
    c, rng = s.carry, jax.random.key(1)
    actions = jax.random.uniform(rng, (s.num_envs, s.env.action_dim), minval=-1.0, maxval=1.0)
    env_s = median_time(fns["env"], c.env_state, actions, reps=bench.reps)
    plan_s = median_time(fns["plan"], c.agent, c.env_state.obs, c.plan_mean, rng, c.agent_steps, reps=bench.reps)
    update_s = median_time(fns["update"], c.agent, sample_batch(s, rng), rng, reps=bench.reps)
    k = s.schedule.updates_per_iter
    total = env_s + plan_s + k * update_s
    fused_s = fused["iteration_ms"] / 1e3
    return {
        "model": s.model, "num_envs": s.num_envs, "updates_per_iter": k, "env_ms": 1e3 * env_s, "plan_ms": 1e3 * plan_s,
        "update_ms": 1e3 * update_s, "sum_ms": 1e3 * total, "fused_ms": 1e3 * fused_s,
        "share_env": env_s / total, "share_plan": plan_s / total, "share_updates": k * update_s / total,
    }


# -------------------------------------------------------------------------------- host-loop baseline


class HostReplay:
    """The conventional replay buffer: NumPy arrays on the host, windows of H+1 steps within one episode."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, horizon: int, seed: int = 0):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.episode_step = np.full(capacity, -1, np.int64)
        self.size, self.horizon, self.rng = 0, horizon, np.random.default_rng(seed)

    def add(self, obs, action, reward, episode_step) -> None:
        i = self.size % len(self.reward)
        self.obs[i], self.action[i], self.reward[i], self.episode_step[i] = obs, action, reward, episode_step
        self.size += 1

    def sample(self, batch_size: int):
        h, n = self.horizon, min(self.size, len(self.reward))
        starts = np.empty(0, np.int64)
        while len(starts) < batch_size:
            cand = self.rng.integers(0, n - h, size=2 * batch_size)
            starts = np.concatenate([starts, cand[self.episode_step[cand + h] == self.episode_step[cand] + h]])
        idx = starts[:batch_size][None] + np.arange(h + 1)[:, None]  # [H+1, B]
        return self.obs[idx], self.action[idx[:-1]], self.reward[idx[:-1]], starts[:batch_size]


class HostLoop:
    """TD-MPC2 driven the conventional way for one env: per agent step, obs to the host, one jitted act,
    the action to the host, one jitted env step, NumPy insert, then `utd` x (NumPy sample -> device ->
    one jitted update)."""

    def __init__(self, s: Setup, fns: dict, utd: float):
        self.s, self.act, self.step, self.update = s, fns["plan"], fns["env"], fns["update"]
        cfg = s.algo.cfg
        self.batch_size, self.utd = cfg.batch_size, utd
        # the Batch type the algorithm expects (whatever fields the on-device buffer adds)
        self.batch_template = jax.eval_shape(
            functools.partial(replay.sample, batch_size=cfg.batch_size, seq_len=cfg.horizon + 1), s.carry.buffer,
            s.carry.rng)
        self.buffer = HostReplay(100_000, s.env.obs_dim, s.env.action_dim, cfg.horizon)
        self.agent = s.carry.agent
        self.state = jax.tree.map(jnp.copy, s.carry.env_state)  # N = 1 envs, not donated to the fused chunk
        self.plan_mean = s.algo.initial_plan_mean(1)
        self.episode_step, self.t, self.key = 0, 0, jax.random.key(3)
        self.updates_done = 0.0
        self.steps(cfg.horizon + 2, learn=False)  # enough data for one window

    def to_batch(self, obs, action, reward, starts):
        fill = {"obs": obs, "action": action, "reward": reward, "row": starts, "env": np.zeros_like(starts)}
        fields = {}
        for name, spec in self.batch_template._asdict().items():
            value = fill[name] if name in fill else np.ones(spec.shape)
            fields[name] = jnp.asarray(np.asarray(value, spec.dtype).reshape(spec.shape))  # host -> device
        return type(self.batch_template)(**fields)

    def steps(self, n: int, learn: bool = True) -> None:
        for _ in range(n):
            self.t += 1
            k_act, k_update, k_random = jax.random.split(jax.random.fold_in(self.key, self.t), 3)
            obs = np.asarray(self.state.obs)  # device -> host: where a host env hands over its observation
            if learn:
                action, self.plan_mean = self.act(self.agent, jnp.asarray(obs), self.plan_mean, k_act,
                                                  jnp.int32(self.t))
                action = np.asarray(action)  # device -> host, for the env
            else:
                action = np.asarray(jax.random.uniform(k_random, (1, self.s.env.action_dim), minval=-1, maxval=1))
            self.state, out = self.step(self.state, jnp.asarray(action))
            reward, done = np.asarray(out.reward), np.asarray(out.done)
            self.buffer.add(obs[0], action[0], reward[0], self.episode_step)
            self.episode_step = 0 if done[0] else self.episode_step + 1
            if done[0]:
                self.plan_mean = jnp.zeros_like(self.plan_mean)
            if learn:
                self.updates_done += self.utd
                while self.updates_done >= 1:
                    self.updates_done -= 1
                    batch = self.to_batch(*self.buffer.sample(self.batch_size))
                    self.agent, _, _ = self.update(self.agent, batch, k_update)
        jax.block_until_ready(self.agent)


def host_row(bench: Bench, s: Setup, fns: dict) -> dict:
    """Host loop vs fused loop at N = 1 and equal UTD, timed in alternating rounds."""
    host = HostLoop(s, fns, bench.utd)
    host.steps(1)  # compile the update
    host_t, fused_t = [], []
    for _ in range(bench.rounds):
        t0 = time.perf_counter()
        host.steps(bench.host_steps)
        host_t.append((time.perf_counter() - t0) / bench.host_steps)
        fused_t.append(run_fused(s, bench.host_steps)[0] / bench.host_steps)
    host_sps, fused_sps = 1 / np.median(host_t), 1 / np.median(fused_t)
    return {
        "model": s.model, "utd": bench.utd, "host_agent_steps_per_s": host_sps, "fused_agent_steps_per_s": fused_sps,
        "speedup": float(np.median(np.array(host_t) / np.array(fused_t))), "rounds": bench.rounds,
        "steps_per_round": bench.host_steps,
    }


# -------------------------------------------------------------------------------------------- FLOPs


def flops_row(s: Setup, peak: float) -> dict:
    """FLOPs of one plan (1 env) and one update, from XLA's cost analysis of the loop-unrolled programs (the
    lowered module: the same count as after compilation within 1%, without compiling the unrolled planner)."""
    c = s.carry
    with unrolled_loops():
        plan = jax.jit(act_fn(s.algo)).lower(c.agent, c.env_state.obs[:1], c.plan_mean[:1], jax.random.key(0),
                                             c.agent_steps)
        update = jax.jit(s.algo.update).lower(c.agent, sample_batch(s, jax.random.key(1)), jax.random.key(2))
    return {"model": s.model, "plan_flops": flops_of(plan), "update_flops": flops_of(update),
            "matmul_peak_flops": peak}


# --------------------------------------------------------------------------------------------- main


def machine() -> dict:
    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": d.device_kind, "devices": jax.device_count(),
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "jax": jax.__version__}


def main(bench: Bench) -> dict:
    bench = bench.resolved()
    info = machine()
    print(f"{info} | {bench}", flush=True)
    peak = max(matmul_peak(n) for n in ((512, 1024, 2048) if info["backend"] == "cpu" else (2048, 4096, 8192)))
    fused, phases, hosts, flops = [], [], [], []
    shared = {}
    for model in bench.models:
        per_model = []
        default_size = model == next(iter(MODELS[bench.algo]))
        sizes = bench.num_envs[:1] if bench.quick and default_size else bench.num_envs
        for n in sizes:
            s = make_setup(bench, model, n)
            fns = phase_fns(s, shared)
            row = fused_row(bench, s)
            fused.append(row)
            per_model.append(row)
            # the whole row, as it is measured: a run stopped at a time limit still leaves its rows in the log
            print(f"  {model} N={n}: {row['env_steps_per_s']:.1f} env steps/s, {row['agent_steps_per_s']:.2f} agent "
                  f"steps/s, {row['updates_per_s']:.1f} updates/s, compile {row['compile_s']:.1f}s, "
                  f"{mib(row['peak_memory_bytes'])} MiB {row['peak_memory_kind']}", flush=True)
            phases.append(phase_row(bench, s, fns, row))
            if n == sizes[0]:
                f = flops_row(s, peak)
            if n == 1 and bench.host_baseline:
                hosts.append(host_row(bench, s, fns))
            del s, fns
        for r in per_model:
            step = f["plan_flops"] + bench.utd * f["update_flops"]
            achieved = step * r["agent_steps_per_s"]
            flops.append({**f, "num_envs": r["num_envs"], "step_flops": step, "achieved_flops": achieved,
                          "fraction_of_peak": achieved / peak})
        best = max(per_model, key=lambda r: r["agent_steps_per_s"])
        for h in hosts:
            if h["model"] == model:  # chain of ratios: (best N / N=1, fused table) x (fused N=1 / host, side by side)
                gain = best["agent_steps_per_s"] / next(r for r in per_model if r["num_envs"] == 1)["agent_steps_per_s"]
                h.update(best_num_envs=best["num_envs"], best_fused_agent_steps_per_s=best["agent_steps_per_s"],
                         best_speedup=h["speedup"] * gain)
    results = {"machine": info, "bench": dataclasses.asdict(bench), "fused": fused, "phases": phases,
               "host_loop": hosts, "flops": flops}
    text = throughput_report(results)
    print("\n" + text, flush=True)
    os.makedirs(bench.out_dir, exist_ok=True)
    stem = os.path.join(bench.out_dir, ("throughput_quick" if bench.quick else "throughput")
                        + ("" if bench.algo == "tdmpc2" else f"_{bench.algo}"))
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(f"wrote {stem}.json and {stem}.md")
    return results


if __name__ == "__main__":
    main(tyro.cli(Bench, prog="python -m benchmarks.throughput", use_underscores=True))
