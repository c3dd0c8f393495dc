"""From a resolved RunSpec (config.resolve) to the pieces of a run: the env, the agent and the fused loop.

    env, agent, loop, schedule = build(args)           # = assemble(config.resolve(args)) + the schedule
    carry = loop.init(jax.random.key(0))               # jitted pure functions of one device and one seed
    carry, stats = loop.chunk(carry, jnp.int32(100))   # 100 fused iterations

For several devices or vmapped seeds, wrap the loop in `loop.parallel.Parallel` (as session/trainer.py does).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from anakin_tdmpc import config, envs
from anakin_tdmpc.loop import fused, parallel


def build(args: config.Args, num_devices: int = 1, run_seed_steps: Optional[int] = None):
    """`args` -> (env, agent, loop, schedule) of one device's share of the run, as `train(args)` would build it
    (fields left at their defaults take --preset's values); ConfigError or EnvError (one line) if they cannot
    run. See config.resolve for `run_seed_steps`."""
    spec = config.resolve(config.apply_preset(args), num_devices, run_seed_steps)
    return (*assemble(spec), spec.schedule)


def assemble(spec: config.RunSpec):
    """(env, agent, loop) of one device's share of `spec`: num_envs / D envs, buffer capacity / D, batch_size / D,
    gradients averaged over the devices (loop/parallel.py) when D > 1."""
    env = envs.make_env(spec.task, action_repeat=spec.action_repeat, episode_length=spec.episode_length)
    # the fields of the agent's Config that the build sets (agents/base.py): its share of the batch, the task's
    # terminations
    cfg = dataclasses.replace(spec.agent_config, batch_size=spec.batch_per_device, episodic=env.episodic)
    agent = spec.agent_class(cfg, env.obs_dim, env.action_dim, env.episode_length,
                             axis_name=parallel.AXIS if spec.num_devices > 1 else None)
    schedule = spec.schedule
    loop = fused.FusedLoop(
        agent,
        env,
        num_envs=spec.envs_per_device,
        buffer_capacity=spec.buffer_per_device,
        seed_steps=schedule.seed_steps,
        updates_per_iter=schedule.updates_per_iter,
        pretrain_updates=schedule.pretrain_updates,
        steps_per_iter=spec.args.num_envs,
    )
    return env, agent, loop
