"""Jitted evaluation episodes that also return the first episode's trajectory for a video.

`episodes(algo, env, agent, rng, num_episodes, agent_steps)` (jitted: `make_evaluate(algo, env)`):
`num_episodes` full episodes run in parallel (vmapped envs, one `lax.scan` over the episode) with
deterministic planning (the algorithm's step schedules read the training carry's `agent_steps`), returning an `EvalResult`: every episode's return, plus the MuJoCo positions of episode 0 at each agent
step (qpos, and mocap bodies, which some tasks use for targets), so the host can render frames with
`mujoco.Renderer` without ever shipping whole MJX states. The trajectory is computed whether or not a
video is wanted, so `--capture_video` never changes the compiled program or the metrics.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class EvalResult(NamedTuple):
    returns: jax.Array  # [E] return of each episode
    qpos: jax.Array  # [T, nq] episode 0's positions before each of its T agent steps
    mocap_pos: jax.Array  # [T, nmocap, 3]
    mocap_quat: jax.Array  # [T, nmocap, 4]


def episodes(algo, env, agent, rng, num_episodes: int, agent_steps, frames: bool = True) -> EvalResult:
    """`num_episodes` eval episodes of `agent` (traceable; `num_episodes` static). `frames=False`: returns
    only (qpos etc. are None), for envs without MuJoCo physics."""
    agent_steps = jnp.asarray(agent_steps, jnp.int32)
    k_reset, k_loop = jax.random.split(rng)
    state = env.reset(k_reset, num_episodes)

    def step(state_mean, key):
        state, mean = state_mean
        frame = None
        if frames:
            data = state.physics.data
            frame = (data.qpos[0], data.mocap_pos[0], data.mocap_quat[0])
        action, mean = algo.act(agent, state.obs, mean, key, True, agent_steps)
        state, out = env.step(state, action)
        return (state, mean), (out.reward, frame)

    init = (state, algo.initial_plan_mean(num_episodes))
    _, (rewards, frame) = jax.lax.scan(step, init, jax.random.split(k_loop, env.episode_length))
    return EvalResult(jnp.sum(rewards, axis=0), *(frame if frames else (None, None, None)))


def make_evaluate(algo, env):
    """A jitted `evaluate(agent, rng, num_episodes, agent_steps) -> EvalResult` (num_episodes static)."""
    return env.jit(lambda agent, rng, n, steps: episodes(algo, env, agent, rng, n, steps), static_argnums=2)
