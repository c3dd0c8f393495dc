"""Batched, auto-resetting wrapper around a mujoco_playground DMC environment.

The wrapper turns a single-environment playground ``MjxEnv`` into a batch of
``N`` environments that can be stepped inside ``jax.jit`` / ``jax.lax.scan``
(and under an outer ``jax.vmap``, e.g. over seeds):

* ``Env.reset(rng, num_envs)`` draws ``num_envs`` independent random initial
  states.
* ``Env.step(state, action)`` clips each action to ``[-1, 1]``, maps it linearly
  onto the actuators' control ranges (as dm_control's
  ``action_scale.Wrapper(minimum=-1, maximum=1)``, which the official TD-MPC /
  TD-MPC2 trainers put around every task), applies it for ``action_repeat``
  control steps (rewards summed), truncates episodes after ``episode_length`` agent
  steps, and auto-resets finished environments with *fresh* random initial
  states (each environment carries its own PRNG key, split on every reset).

The inner env's ``done`` means one of two things.  In an *episodic* task (``Env.episodic``: brax's
Gym-style tasks, or an env of your own with ``episodic = True``) it is a termination: the agent reached a
terminal state (fell, dropped the pole), no return follows, and TD targets must not bootstrap past it.  In
DMC, whose episodes only ever run into their time limit, it only flags diverged physics: the episode is cut
short, its last observation is not a state of the task, and nothing is learned from that end.

Both methods are pure functions of their inputs, so trajectories are fully
determined by the ``rng`` given to ``reset``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class EnvState(NamedTuple):
    """State of a batch of ``N`` environments; every leaf has leading dim ``N``."""

    physics: Any
    """The playground ``State`` pytree of each environment."""
    obs: jax.Array
    """``[N, obs_dim]`` float32 current observation (reset obs right after a reset)."""
    episode_step: jax.Array
    """``[N]`` int32 agent steps taken in the current episode (0 after a reset)."""
    episode_return: jax.Array
    """``[N]`` float32 running return of the current episode."""
    rng: jax.Array
    """``[N]`` PRNG keys, one per environment, consumed by fresh resets."""


class StepOut(NamedTuple):
    """What one batched step reports; every leaf has leading dim ``N``."""

    reward: jax.Array
    """``[N]`` float32 reward, summed over the action repeat."""
    done: jax.Array
    """``[N]`` bool, the episode ended at this step (time limit, termination or diverged physics).

    Where ``done`` the returned state's ``obs`` is the *new* episode's reset
    observation; the last observation of the old episode is ``final_obs``.
    """
    final_obs: jax.Array
    """``[N, obs_dim]`` observation reached by this step, before any reset."""
    terminated: jax.Array
    """``[N]`` bool, the episode ended in a terminal state (an episodic task's inner ``done``)."""
    final: jax.Array
    """``[N]`` bool, the episode ended at this step and ``final_obs`` is a state of the task to learn from
    (``done``, except where diverged physics ended a non-episodic episode)."""
    episode_return: jax.Array
    """``[N]`` float32 return of the episode that just ended (running return where not done)."""
    episode_length: jax.Array
    """``[N]`` int32 length in agent steps of that episode (valid where done)."""


def _strong(tree: Any) -> Any:
    """Drops weak types from every numeric leaf of ``tree``.

    Playground environments produce some scalar leaves (e.g. ``reward``) that
    are weakly typed in ``reset`` but not in ``step`` (or vice versa). Loop
    carries in ``lax.scan`` / ``lax.fori_loop`` / ``lax.cond`` need identical
    types, so every physics state leaving this module is normalised here.
    """

    def convert(x: jax.Array) -> jax.Array:
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return jax.lax.convert_element_type(x, x.dtype)

    return jax.tree_util.tree_map(convert, tree)


def _select(mask: jax.Array, on_true: jax.Array, on_false: jax.Array) -> jax.Array:
    """``jnp.where`` with a ``[N]`` mask broadcast over trailing dims of the leaves."""
    mask = mask.reshape(mask.shape + (1,) * (on_false.ndim - mask.ndim))
    selected = jnp.where(mask, on_true, on_false)
    return selected if selected.dtype == on_false.dtype else selected.astype(on_false.dtype)


def _finite_or_zero(x: jax.Array) -> jax.Array:
    """Replaces NaN/inf entries (diverged physics) by zero."""
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def _split_each(keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits each of ``N`` keys in two: ``(carried keys, keys to consume)``."""
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


@dataclasses.dataclass(frozen=True)
class Env:
    """A batch of auto-resetting DMC environments with action repeat.

    Attributes:
        name: canonical task name, e.g. ``"cheetah-run"``.
        obs_dim: size of the flat float32 observation.
        action_dim: size of the action; actions live in ``[-1, 1]``.
        action_repeat: control steps per agent step (rewards are summed).
        episode_length: episode length in agent steps (episodes are truncated).
        playground_env: the wrapped single-environment playground ``MjxEnv``.
        ctrl_range: ``((low, high), ...)`` per actuator where any actuator's control range is not ``[-1, 1]``
            (quadruped's); the agent's action ``a`` in ``[-1, 1]`` then drives ``low + (a + 1) / 2 * (high - low)``.
            ``None`` where every range is ``[-1, 1]``: actions go to the actuators as they are.
        episodic: the inner env's ``done`` is a termination (see the module docstring); ``False`` for DMC.
    """

    name: str
    obs_dim: int
    action_dim: int
    action_repeat: int
    episode_length: int
    playground_env: Any = dataclasses.field(repr=False, compare=False)
    ctrl_range: tuple[tuple[float, float], ...] | None = None
    episodic: bool = False

    def to_ctrl(self, action: jax.Array) -> jax.Array:
        """The actuator controls ``[..., action_dim]`` of agent actions ``[..., action_dim]``: clipped to
        ``[-1, 1]``, then mapped linearly onto :attr:`ctrl_range` (left as they are where that is ``None``)."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        if self.ctrl_range is None:
            return action
        low, high = (jnp.asarray(x, jnp.float32) for x in zip(*self.ctrl_range))
        return low + (action + 1.0) * (0.5 * (high - low))

    @property
    def compiler_options(self) -> dict[str, Any] | None:
        """XLA options every program that steps these envs must be compiled with (``None``: XLA's defaults).

        Only the dog sets any, on CPU (see ``anakin_tdmpc/envs/dmc/dog.py``). Use :meth:`jit`.
        """
        return getattr(self.playground_env, "compiler_options", None)

    @property
    def render_model(self) -> Any:
        """The ``mujoco.MjModel`` to render this env's ``qpos`` with: the simulated model, except where a port
        strips rendering-only parts MJX cannot carry (the dog's skin) and offers the full one. ``None`` for an
        env of your own without ``mj_model``: it cannot be rendered."""
        return getattr(self.playground_env, "render_model", getattr(self.playground_env, "mj_model", None))

    def jit(self, fn: Any, **kwargs: Any) -> Any:
        """``jax.jit(fn, **kwargs)`` with this env's :attr:`compiler_options`: for programs that step it."""
        return jax.jit(fn, compiler_options=self.compiler_options, **kwargs)

    @property
    def control_dt(self) -> float:
        """Simulated seconds per agent step (playground ``ctrl_dt`` times the action repeat)."""
        return float(self.playground_env.dt) * self.action_repeat

    # ------------------------------------------------------------------ inner

    def _inner_reset(self, keys: jax.Array) -> Any:
        """Fresh random playground states for a ``[N]`` batch of keys."""
        return _strong(jax.vmap(self.playground_env.reset)(keys))

    def _inner_step(self, physics: Any, action: jax.Array) -> Any:
        """One control step of every environment in the batch."""
        return _strong(jax.vmap(self.playground_env.step)(physics, action))

    def _repeat_step(self, physics: Any, action: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """Applies ``action`` for ``action_repeat`` control steps.

        Returns the final physics, the summed reward ``[N]`` and whether the
        inner environment reported ``done`` (diverged physics) at any of the
        control steps ``[N]``. Rewards after an inner ``done`` are ignored and
        non-finite rewards count as zero.
        """
        num_envs = action.shape[0]

        def control_step(_, carry):
            physics, reward, inner_done = carry
            physics = self._inner_step(physics, action)
            reward = reward + jnp.where(inner_done, 0.0, _finite_or_zero(physics.reward))
            inner_done = inner_done | physics.done.astype(bool)
            return physics, reward, inner_done

        init = (physics, jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, bool))
        if self.action_repeat == 1:
            return control_step(0, init)
        return jax.lax.fori_loop(0, self.action_repeat, control_step, init)

    def _reset_where(self, done: jax.Array, state: EnvState) -> EnvState:
        """Replaces the environments where ``done`` by fresh random initial states.

        The reset is computed for the whole batch (one vmapped inner reset) and
        selected leaf by leaf; only the keys of reset environments advance.
        """
        next_rng, reset_keys = _split_each(state.rng)
        fresh = self._inner_reset(reset_keys)
        select = lambda new, old: _select(done, new, old)  # noqa: E731
        return EnvState(
            physics=jax.tree_util.tree_map(select, fresh, state.physics),
            obs=select(fresh.obs.astype(jnp.float32), state.obs),
            episode_step=select(jnp.zeros_like(state.episode_step), state.episode_step),
            episode_return=select(jnp.zeros_like(state.episode_return), state.episode_return),
            rng=select(next_rng, state.rng),
        )

    # ------------------------------------------------------------------ public

    def reset(self, rng: jax.Array, num_envs: int) -> EnvState:
        """Starts ``num_envs`` environments from independent random initial states.

        Args:
            rng: a PRNG key (raw ``uint32[2]`` or typed); fully determines the run.
            num_envs: static batch size ``N``.
        """
        carried, reset_keys = _split_each(jax.random.split(rng, num_envs))
        physics = self._inner_reset(reset_keys)
        return EnvState(
            physics=physics,
            obs=physics.obs.astype(jnp.float32),
            episode_step=jnp.zeros(num_envs, jnp.int32),
            episode_return=jnp.zeros(num_envs, jnp.float32),
            rng=carried,
        )

    def step(self, state: EnvState, action: jax.Array) -> tuple[EnvState, StepOut]:
        """Advances every environment by one agent step and auto-resets finished ones.

        Args:
            state: the batch state from ``reset`` or a previous ``step``.
            action: ``[N, action_dim]`` actions; clipped to ``[-1, 1]`` and mapped onto the control
                ranges (:meth:`to_ctrl`).

        Returns:
            ``(next_state, out)``. Where ``out.done`` the episode ended (after
            ``episode_length`` agent steps, or on an inner ``done``: a termination
            in an episodic task, diverged physics otherwise) and ``next_state``
            already holds a fresh episode.
        """
        physics, reward, inner_done = self._repeat_step(state.physics, self.to_ctrl(action))

        final_obs = _finite_or_zero(physics.obs.astype(jnp.float32))
        episode_step = state.episode_step + 1
        episode_return = state.episode_return + reward
        done = inner_done | (episode_step >= self.episode_length)
        terminated = inner_done if self.episodic else jnp.zeros_like(inner_done)

        out = StepOut(
            reward=reward,
            done=done,
            final_obs=final_obs,
            terminated=terminated,
            final=done & (terminated | ~inner_done),
            episode_return=episode_return,
            episode_length=episode_step,
        )
        stepped = EnvState(
            physics=physics,
            obs=final_obs,
            episode_step=episode_step,
            episode_return=episode_return,
            rng=state.rng,
        )
        next_state = jax.lax.cond(
            jnp.any(done),
            lambda s: self._reset_where(done, s),
            lambda s: s,
            stepped,
        )
        return next_state, out
