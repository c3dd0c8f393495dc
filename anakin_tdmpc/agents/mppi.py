"""The two steps of MPPI that TD-MPC and TD-MPC2 plan with alike (each planner's loop is in its own file)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def policy_sequences(policy: Callable, dynamics: Callable, z: jax.Array, num: int, horizon: int,
                     action_dim: int, rng: jax.Array) -> jax.Array:
    """`num` action sequences [H, num, A] proposed by rolling the policy out from the latent z [L] through
    the model: a_t = policy(z_t, key_t), z_t+1 = dynamics(z_t, a_t)."""
    if num == 0:
        return jnp.zeros((horizon, 0, action_dim))
    zp, actions = jnp.broadcast_to(z, (num, z.shape[-1])), []
    for t, k in enumerate(jax.random.split(rng, horizon)):
        a = policy(zp, k)
        actions.append(a)
        if t < horizon - 1:
            zp = dynamics(zp, a)
    return jnp.stack(actions)


def refit(actions: jax.Array, value: jax.Array, num_elites: int, temperature: float):
    """Keep the `num_elites` best of the action sequences [H, S, A] by value [S] and weight them by
    softmax(temperature x value) -> (elite actions [H, E, A], scores [E], their weighted mean [H, A] and
    std [H, A])."""
    elite_value, elite_idx = jax.lax.top_k(value, num_elites)
    elite_actions = actions[:, elite_idx]
    score = jnp.exp(temperature * (elite_value - jnp.max(elite_value)))
    score = score / jnp.sum(score)
    mean = jnp.sum(score[None, :, None] * elite_actions, axis=1) / (jnp.sum(score) + 1e-9)
    var = jnp.sum(score[None, :, None] * (elite_actions - mean[:, None]) ** 2, axis=1)
    return elite_actions, score, mean, jnp.sqrt(var / (jnp.sum(score) + 1e-9))


def executed_action(k_pick: jax.Array, k_noise: jax.Array, elites: jax.Array, score: jax.Array,
                    std0: jax.Array, eval_mode: bool) -> jax.Array:
    """The first action of one elite [H, E, A] drawn by its score, plus std0 x N(0, 1) exploration noise in
    training, clipped to [-1, 1]."""
    pick = jax.random.categorical(k_pick, jnp.log(score))
    action = elites[0, pick]
    if not eval_mode:
        action = action + std0 * jax.random.normal(k_noise, action.shape)
    return jnp.clip(action, -1.0, 1.0)
