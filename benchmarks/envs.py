"""Env-step throughput of our own MJX ports (TD-MPC2's custom tasks, quadruped, dog) and brax's MJX tasks.

    uv run python -m benchmarks.envs                                  # every task in OUR_TASKS, N = 256
    uv run python -m benchmarks.envs --tasks quadruped-run dog-walk --num_envs 256
    uv run python -m benchmarks.envs --tasks brax/hopper brax/ant     # brax's tasks (not in the default set)

For each task, N single-task envs (one env step = one control step, i.e. action repeat 1) are reset
with ``vmap`` and stepped with uniformly random actions by a jitted ``lax.scan`` of ``--steps`` vmapped
``env.step`` calls. The first call (compile + run) is the warm-up; then ``--repeats`` timed calls give
env-steps/s = N x steps / seconds (median and best). No auto-reset, no learner: the physics alone.
The machine's load average is recorded with each task, since other jobs may share the CPU.

The baseline: for each of our corrected suite tasks (``envs/dmc/suite.py``), the mujoco_playground env it replaces
(``REPLACED``, ``impl='jax'``) is measured the same way in the same run, right after ours, and the table gives
ours / playground's: what dm_control's MDP and numerics (implicit damping, uncapped collisions, more solver
iterations) cost in throughput. ``--no-baseline`` skips it.

Prints a markdown table of this run; results are merged by task into ``benchmarks/results/envs.json`` and
the table of every task measured so far is written to ``benchmarks/results/envs.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np
import tyro

from anakin_tdmpc.envs import OUR_TASKS, TASK_SOURCES, make_env
from anakin_tdmpc.envs.brax_tasks import BRAX_TASKS
from anakin_tdmpc.envs.registry import REPLACED
from benchmarks import commit
from benchmarks.tables import envs_table

RESULTS = Path(__file__).parent / "results" / "envs.json"


@dataclasses.dataclass
class EnvBench:
    """Env-steps/s of our MJX ports at N parallel envs."""

    tasks: tuple[str, ...] = ()
    """tasks to measure (default: every task in OUR_TASKS; brax/<name> tasks on request)"""
    num_envs: int = 256
    """N, the number of vmapped envs"""
    steps: int = 50
    """control steps per timed scan"""
    repeats: int = 3
    """timed scans after the warm-up"""
    baseline: bool = True
    """also measure the playground env each corrected suite task replaces, in the same run (module docstring)"""
    out: Path = RESULTS
    """JSON file the results are merged into (by task)"""


def _rates(env, jit, num_envs: int, steps: int, repeats: int) -> tuple[float, np.ndarray]:
    """(compile + first run seconds, env-steps/s of each timed call) of ``env`` (see the module docstring)."""

    @jit
    def rollout(key):
        reset_key, action_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
        actions = jax.random.uniform(action_key, (steps, num_envs, env.action_size), minval=-1, maxval=1)

        def body(state, action):
            state = jax.vmap(env.step)(state, action)
            return state, state.reward

        state, rewards = jax.lax.scan(body, state, actions)
        return rewards.sum(), state.obs

    start = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.key(0)))
    compile_s = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        _, obs = jax.block_until_ready(rollout(jax.random.key(i + 1)))
        times.append(time.perf_counter() - start)
    assert np.all(np.isfinite(np.asarray(obs)))
    # The timed call includes one vmapped reset; it is small next to `steps` steps for every task here.
    return compile_s, num_envs * steps / np.asarray(times)


def measure(task: str, num_envs: int, steps: int, repeats: int, baseline: bool) -> dict:
    """Compile time and env-steps/s of ``task`` at ``num_envs`` envs, and of the playground env it replaces
    when ``baseline`` and there is one (see the module docstring)."""
    wrapped = make_env(task, action_repeat=1)
    env = wrapped.playground_env
    load_before = os.getloadavg()[0]
    compile_s, rates = _rates(env, wrapped.jit, num_envs, steps, repeats)  # the env's XLA options (dog's on CPU)
    row = {
        "task": task,
        "module": OUR_TASKS.get(task, TASK_SOURCES[task]),
        "num_envs": num_envs,
        "steps": steps,
        "ctrl_dt": float(env.dt),
        "substeps": int(env.n_substeps),
        "compile_plus_first_run_s": round(compile_s, 1),
        "env_steps_per_s_median": round(float(np.median(rates)), 1),
        "env_steps_per_s_best": round(float(rates.max()), 1),
    }
    if baseline and task in REPLACED:
        from mujoco_playground import registry

        stock = registry.load(REPLACED[task], config_overrides={"impl": "jax"})
        _, stock_rates = _rates(stock, jax.jit, num_envs, steps, repeats)
        row["playground_env"] = REPLACED[task]
        row["playground_ctrl_dt"] = float(stock.dt)
        row["playground_env_steps_per_s_median"] = round(float(np.median(stock_rates)), 1)
    row["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    row["commit"] = commit()
    return row


def table(rows: list[dict]) -> str:
    return envs_table(rows)


def main(bench: EnvBench) -> list[dict]:
    tasks = list(bench.tasks) or sorted(OUR_TASKS)
    unknown = sorted(set(tasks) - set(OUR_TASKS) - set(BRAX_TASKS))
    if unknown:
        raise SystemExit(f"not one of our ports or brax's tasks: {unknown}; choose from "
                         f"{sorted(OUR_TASKS) + sorted(BRAX_TASKS)}")
    previous = json.loads(bench.out.read_text()) if bench.out.exists() else {}
    results = previous.get("tasks", {})
    rows = []
    for task in tasks:
        row = measure(task, bench.num_envs, bench.steps, bench.repeats, bench.baseline)
        print(f"{task}: {row['env_steps_per_s_median']:,.0f} env-steps/s", flush=True)
        rows.append(row)
        results[task] = row
        bench.out.parent.mkdir(parents=True, exist_ok=True)
        bench.out.write_text(json.dumps({
            "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "jax": jax.__version__, "backend": jax.default_backend()},
            "tasks": dict(sorted(results.items())),
        }, indent=1) + "\n")
    print(table(rows))
    bench.out.with_suffix(".md").write_text(table([results[t] for t in sorted(results)]) + "\n")
    return rows


if __name__ == "__main__":
    main(tyro.cli(EnvBench, prog="python -m benchmarks.envs", use_underscores=True))
