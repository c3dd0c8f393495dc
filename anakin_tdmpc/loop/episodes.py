"""Jitted evaluation episodes that also return the first episode's trajectory for a video.

`episodes(agent, env, agent_state, rng, num_episodes, agent_steps)`: `num_episodes` whole episodes run in parallel
(vmapped envs, one loop over the episode length) with
deterministic planning (the algorithm's step schedules read the training carry's `agent_steps`), returning an `EvalResult`: every episode's return, plus the MuJoCo positions of episode 0 at each agent
step (qpos, and mocap bodies, which some tasks use for targets), so the host can render frames with
`mujoco.Renderer` without ever shipping whole MJX states. The trajectory is computed whether or not a
video is wanted, so `--capture_video` never changes the compiled program or the metrics. An episode that
terminates early (episodic tasks) counts the rewards up to its end only: the env auto-resets and runs on for
the rest of the loop, but nothing after the end is counted, and episode 0's frames stop at its end.

The same episodes can run in pieces (`eval_start`, then `eval_steps` as often as wanted, then `eval_finish`),
so that the host can stop between two pieces of bounded wall-clock: the rewards are kept per step and summed at
the end, so the pieces give the same returns as one call.
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


class EvalState(NamedTuple):
    """Episodes in progress: what `eval_steps` advances, in pieces of any length, to the same result."""

    env_state: object
    plan_mean: jax.Array  # [E, H, A]
    running: jax.Array  # [E] bool: the episode has not ended yet
    rewards: jax.Array  # [T, E] reward of each agent step (0 after an episode's end)
    lengths: jax.Array  # [E] int32
    frames: tuple  # (qpos [T, nq], mocap_pos [T, nmocap, 3], mocap_quat [T, nmocap, 4]) of episode 0, or ()
    keys: jax.Array  # [T] the planner's key of each step
    t: jax.Array  # int32: agent steps done


def eval_start(agent, env, rng, num_episodes: int, frames: bool = True) -> EvalState:
    """`num_episodes` new eval episodes (`frames=False`: no trajectory, for envs without MuJoCo physics)."""
    k_reset, k_loop = jax.random.split(rng)
    env_state = env.reset(k_reset, num_episodes)
    T = env.episode_length
    trajectory = ()
    if frames:
        data = jax.tree.map(lambda x: x[0], (env_state.physics.data.qpos, env_state.physics.data.mocap_pos,
                                            env_state.physics.data.mocap_quat))
        trajectory = tuple(jnp.zeros((T,) + x.shape, x.dtype) for x in data)
    return EvalState(env_state, agent.initial_plan_mean(num_episodes), jnp.ones((num_episodes,), bool),
                     jnp.zeros((T, num_episodes), jnp.float32), jnp.zeros((num_episodes,), jnp.int32), trajectory,
                     jax.random.split(k_loop, T), jnp.zeros((), jnp.int32))


def eval_steps(agent, env, agent_state, episodes_state: EvalState, num_steps, agent_steps) -> EvalState:
    """`num_steps` (traced) more agent steps of every episode, planning deterministically with `agent`'s
    parameters in `agent_state`; the algorithm's step schedules read `agent_steps` (the training carry's)."""
    agent_steps = jnp.asarray(agent_steps, jnp.int32)

    def step(_, ev: EvalState) -> EvalState:
        frames = ev.frames
        if frames:
            data = ev.env_state.physics.data
            frames = tuple(buf.at[ev.t].set(x[0]) for buf, x in zip(frames, (data.qpos, data.mocap_pos,
                                                                               data.mocap_quat)))
        action, mean = agent.act(agent_state, ev.env_state.obs, ev.plan_mean, ev.keys[ev.t], True, agent_steps)
        env_state, out = env.step(ev.env_state, action)
        rewards = ev.rewards.at[ev.t].set(jnp.where(ev.running, out.reward, 0.0))
        return EvalState(env_state, mean, ev.running & ~out.done, rewards, ev.lengths + ev.running, frames, ev.keys,
                         ev.t + 1)

    return jax.lax.fori_loop(0, num_steps, step, episodes_state)


def eval_finish(episodes_state: EvalState) -> EvalResult:
    """The result of episodes run to the episode length."""
    frames = episodes_state.frames or (None, None, None)
    return EvalResult(jnp.sum(episodes_state.rewards, axis=0), episodes_state.lengths, *frames)


def episodes(agent, env, agent_state, rng, num_episodes: int, agent_steps, frames: bool = True) -> EvalResult:
    """`num_episodes` eval episodes of `agent` (the algorithm) with its state `agent_state` (traceable;
    `num_episodes` static), start to end in one call. `frames=False`: returns only (qpos etc. are None), for
    envs without MuJoCo physics."""
    started = eval_start(agent, env, rng, num_episodes, frames)
    return eval_finish(eval_steps(agent, env, agent_state, started, env.episode_length, agent_steps))
