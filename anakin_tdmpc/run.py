"""`python -m anakin_tdmpc.run`: parse flags, build env + algorithm + fused loop, drive compiled chunks,
evaluate, and write <run_dir>/config.json and <run_dir>/metrics.jsonl."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def default_run_dir(args) -> str:
    task = args.task.replace("/", "_")
    return os.path.join("runs", f"{task}__{args.algo}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_run_dir(run_dir: str, config: dict) -> None:
    """Create the run folder; refuse one that already holds a run (nothing is overwritten)."""
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path) or os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        try:
            with open(path) as f:
                same = json.load(f).get("args") == config["args"]
        except (OSError, ValueError):
            same = False
        what = "this same configuration" if same else "a different run"
        _fail(f"run dir {run_dir} already holds {what}; choose a new --run_dir")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        _fail(f"run dir {run_dir} exists and is not a folder")
    os.makedirs(run_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def build(args):
    """Validate everything that can be validated before any compilation -> (env, algo, loop, schedule)."""
    from anakin_tdmpc import anakin, config, envs, tdmpc2

    if args.algo not in config.ALGOS:
        raise config.ConfigError(f"unknown algo '{args.algo}'; valid: {', '.join(config.ALGOS)}")
    if args.action_repeat <= 0:
        raise config.ConfigError(f"--action_repeat must be positive, got {args.action_repeat}")
    if args.episode_length is not None and args.episode_length <= 0:
        raise config.ConfigError(f"--episode_length must be positive, got {args.episode_length}")
    # everything that can be checked is checked before the (slow, noisy) env load
    envs.canonical_task_name(args.task)
    cfg = config.algo_config(args)
    episode_length = args.episode_length or envs.default_episode_length(args.action_repeat)
    schedule = config.make_schedule(args, episode_length, cfg.horizon)
    env = envs.make_env(args.task, action_repeat=args.action_repeat, episode_length=episode_length)
    algo = tdmpc2.TDMPC2(cfg, env.obs_dim, env.action_dim, env.episode_length)
    loop = anakin.Anakin(
        algo,
        env,
        num_envs=args.num_envs,
        buffer_capacity=schedule.buffer_capacity,
        seed_steps=schedule.seed_steps,
        updates_per_iter=schedule.updates_per_iter,
        pretrain_updates=schedule.pretrain_updates,
    )
    return env, algo, loop, schedule


def train(args) -> str:
    """Run training for parsed `args`; returns the run dir."""
    import jax

    from anakin_tdmpc import buffer as replay
    from anakin_tdmpc.config import ConfigError
    from anakin_tdmpc.envs import UnknownTaskError
    from anakin_tdmpc.logger import RunLogger, format_duration

    try:
        env, algo, loop, schedule = build(args)
    except (ConfigError, UnknownTaskError) as e:
        _fail(str(e))
    run_dir = args.run_dir or default_run_dir(args)
    config = {
        "args": dataclasses.asdict(args),
        "algo_config": dataclasses.asdict(algo.cfg),
        "task": env.name,
        "env": {"obs_dim": env.obs_dim, "action_dim": env.action_dim, "action_repeat": env.action_repeat,
                "episode_length": env.episode_length},
        "discount": algo.discount,
        "planner_iterations": algo.iterations,
        "schedule": dataclasses.asdict(schedule),
        "jax": {"version": jax.__version__, "backend": jax.default_backend(), "devices": len(jax.devices())},
    }
    prepare_run_dir(run_dir, config)
    log = RunLogger(run_dir, schedule.total_env_steps)
    mem = replay.memory_bytes(schedule.buffer_capacity, args.num_envs, env.obs_dim, env.action_dim, algo.cfg.horizon + 1)
    log.message(
        f"{args.algo} on {env.name} | obs {env.obs_dim} act {env.action_dim} | {args.num_envs} envs x action repeat "
        f"{env.action_repeat} | {schedule.updates_per_iter} updates/iter after {schedule.seed_steps} seed steps | "
        f"buffer {schedule.buffer_capacity:,} ({mem / 2**20:.0f} MiB) | {jax.default_backend()} | {run_dir}"
    )

    rng = jax.random.key(args.seed)
    k_init, k_eval = jax.random.split(rng)
    carry = loop.init(k_init)
    t_compile = time.time()
    chunk = loop.chunk.lower(carry, np.int32(schedule.iters_per_chunk)).compile()
    log.message(f"compiled training chunk in {time.time() - t_compile:.1f}s")

    iters_done, next_eval, t_start = 0, args.eval_every, time.time()
    last_eval = None
    burst_iter = -(-schedule.seed_steps // schedule.agent_steps_per_iter) - 1  # completes seeding
    while iters_done < schedule.total_iters:
        n = min(schedule.iters_per_chunk, schedule.total_iters - iters_done)
        if iters_done <= burst_iter < iters_done + n:
            log.message(f"this chunk ends seeding and pretrains: {schedule.pretrain_updates} updates on the seed data")
        t0 = time.time()
        carry, stats = chunk(carry, np.int32(n))
        stats = jax.device_get(stats)
        dt = time.time() - t0
        iters_done += n
        env_steps = iters_done * schedule.env_steps_per_iter
        row = {
            "env_steps": env_steps,
            "agent_steps": iters_done * schedule.agent_steps_per_iter,
            "updates": int(jax.device_get(carry.agent.updates)),
            "sps": n * schedule.env_steps_per_iter / dt,
            "time": time.time() - t_start,
        }
        if stats.episodes > 0:
            row["train/episode_return"] = float(stats.return_sum / stats.episodes)
            row["train/episodes"] = int(stats.episodes)
        if stats.num_updates > 0:
            row.update({f"train/{k}": float(v / stats.num_updates) for k, v in stats.update_sums.items()})
        done = iters_done == schedule.total_iters
        if args.eval_episodes > 0 and (env_steps >= next_eval or done):
            t_eval = time.time()
            returns = jax.device_get(loop.evaluate(carry.agent, jax.random.fold_in(k_eval, iters_done), args.eval_episodes))
            last_eval = float(np.mean(returns))
            row["eval/episode_return"] = last_eval
            row["eval/episode_return_std"] = float(np.std(returns))
            row["eval/time"] = time.time() - t_eval
            while next_eval <= env_steps:
                next_eval += args.eval_every
        log.log(row)
    wall = time.time() - t_start
    log.message(
        f"done: {schedule.total_env_steps:,} env steps in {format_duration(wall)} "
        f"({schedule.total_env_steps / wall:,.0f} env steps/s)"
        + (f", final eval return {last_eval:.1f}" if last_eval is not None else "")
    )
    log.close()
    return run_dir


def parse_args(argv=None):
    """Parse flags with tyro; a parsing error becomes one `error: ...` line and exit code 2."""
    import contextlib
    import io

    import tyro

    from anakin_tdmpc.config import Args

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(Args, args=argv, use_underscores=True)
    except SystemExit as e:
        if not e.code:  # --help
            sys.stderr.write(captured.getvalue())
            raise
        lines = [line.strip(" \t│╭╮╰╯─|+-") for line in captured.getvalue().splitlines()]
        reason = next((line for line in lines if ": " in line), "could not parse the command line")
        _fail(f"{reason} (see --help)")


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
