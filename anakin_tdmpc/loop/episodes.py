"""Jitted evaluation episodes that also return the first episode's trajectory for a video.

`episodes(agent, env, state, rng, num_episodes, agent_steps)`: `num_episodes` whole episodes run in parallel (vmapped envs, one `lax.scan` over the longest episode) with
deterministic planning (the algorithm's step schedules read the training carry's `agent_steps`), returning an `EvalResult`: every episode's return, plus the MuJoCo positions of episode 0 at each agent
step (qpos, and mocap bodies, which some tasks use for targets), so the host can render frames with
`mujoco.Renderer` without ever shipping whole MJX states. The trajectory is computed whether or not a
video is wanted, so `--capture_video` never changes the compiled program or the metrics. An episode that
terminates early (episodic tasks) counts the rewards up to its end only: the env auto-resets and runs on for
the rest of the scan, but nothing after the end is counted, and episode 0's frames stop at its end.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class EvalResult(NamedTuple):
    returns: jax.Array  # [E] return of each episode
    lengths: jax.Array  # [E] its length in agent steps
    qpos: jax.Array  # [T, nq] episode 0's positions before each of its T agent steps
    mocap_pos: jax.Array  # [T, nmocap, 3]
    mocap_quat: jax.Array  # [T, nmocap, 4]

    def first_episode_frames(self):
        """(qpos, mocap_pos, mocap_quat) of episode 0 up to its end, as NumPy, for a video. `lengths` may hold
        a seed axis ([S, E], as parallel.py returns it): episode 0 of seed 0 is the one recorded."""
        import numpy as np

        length = int(np.asarray(self.lengths).reshape(-1)[0])
        return tuple(np.asarray(x)[:length] for x in (self.qpos, self.mocap_pos, self.mocap_quat))


def episodes(agent, env, state, rng, num_episodes: int, agent_steps, frames: bool = True) -> EvalResult:
    """`num_episodes` eval episodes of `agent` (the algorithm) with parameters `state` (traceable;
    `num_episodes` static). `frames=False`: returns only (qpos etc. are None), for envs without MuJoCo
    physics."""
    agent_steps = jnp.asarray(agent_steps, jnp.int32)
    k_reset, k_loop = jax.random.split(rng)
    env_state = env.reset(k_reset, num_episodes)

    def step(carry, key):
        env_state, mean, running = carry
        frame = None
        if frames:
            data = env_state.physics.data
            frame = (data.qpos[0], data.mocap_pos[0], data.mocap_quat[0])
        action, mean = agent.act(state, env_state.obs, mean, key, True, agent_steps)
        env_state, out = env.step(env_state, action)
        return (env_state, mean, running & ~out.done), (jnp.where(running, out.reward, 0.0), running, frame)

    init = (env_state, agent.initial_plan_mean(num_episodes), jnp.ones((num_episodes,), bool))
    _, (rewards, running, frame) = jax.lax.scan(step, init, jax.random.split(k_loop, env.episode_length))
    lengths = jnp.sum(running, axis=0, dtype=jnp.int32)
    if not frames:
        return EvalResult(jnp.sum(rewards, axis=0), lengths, None, None, None)
    return EvalResult(jnp.sum(rewards, axis=0), lengths, *frame)

