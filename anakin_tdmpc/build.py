"""From `Args` to the pieces of a run: the env, the agent, the fused loop and the step schedule. Everything
that can be checked is checked here, before anything compiles.

    env, agent, loop, schedule = build(args)
    carry = loop.init(jax.random.key(0))             # jitted pure functions of one device and one seed
    carry, stats = loop.chunk(carry, jnp.int32(100))  # 100 fused iterations

For several devices or vmapped seeds, wrap the loop in `loop.parallel.Parallel` (as session/trainer.py does).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from anakin_tdmpc import config, envs
from anakin_tdmpc.agents import agent_class
from anakin_tdmpc.loop import fused, parallel


def build(args: config.Args, num_devices: int = 1, run_seed_steps: Optional[int] = None):
    """Validate `args` -> (env, agent, loop, schedule); ConfigError or envs.EnvError (one line) if they
    cannot run.

    `run_seed_steps`: a resumed run's own seed steps (see config.make_schedule). With `num_devices` > 1,
    `loop` (and `agent`) are one device's share of a data-parallel run (loop/parallel.py): num_envs / D envs,
    buffer capacity / D, batch_size / D, gradients averaged over devices.
    """
    agent_cls = agent_class(args.algo)
    envs.canonical_task_name(args.task)
    args = config.resolve_args(args)  # the algorithm's defaults for action repeat and batch size
    if args.action_repeat <= 0:
        raise config.ConfigError(f"--action_repeat must be positive, got {args.action_repeat}")
    if args.episode_length is not None and args.episode_length <= 0:
        raise config.ConfigError(f"--episode_length must be positive, got {args.episode_length}")
    cfg = config.agent_config(args)
    if args.num_seeds < 1:
        raise config.ConfigError(f"--num_seeds must be positive, got {args.num_seeds}")
    if args.num_envs % num_devices:
        raise config.ConfigError(f"--num_envs {args.num_envs} must be divisible by the {num_devices} devices")
    if cfg.batch_size % num_devices:
        raise config.ConfigError(f"--batch_size {cfg.batch_size} must be divisible by the {num_devices} devices")
    episode_length = args.episode_length or envs.default_episode_length(args.action_repeat)
    schedule = config.make_schedule(args, episode_length, cfg.horizon, run_seed_steps)
    # everything that can be checked is checked before the (slow, noisy) env load
    env = envs.make_env(args.task, action_repeat=args.action_repeat, episode_length=episode_length)
    if hasattr(cfg, "episodic"):  # the algorithm's episodic pieces follow the task (e.g. TD-MPC2's termination head)
        cfg = dataclasses.replace(cfg, episodic=env.episodic)
    agent = agent_cls(dataclasses.replace(cfg, batch_size=cfg.batch_size // num_devices), env.obs_dim,
                      env.action_dim, env.episode_length, axis_name=parallel.AXIS if num_devices > 1 else None)
    loop = fused.FusedLoop(
        agent,
        env,
        num_envs=args.num_envs // num_devices,
        buffer_capacity=-(-schedule.buffer_capacity // num_devices),
        seed_steps=schedule.seed_steps,
        updates_per_iter=schedule.updates_per_iter,
        pretrain_updates=schedule.pretrain_updates,
        steps_per_iter=args.num_envs,
    )
    return env, agent, loop, schedule
