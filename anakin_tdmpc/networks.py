"""Shared building blocks: symlog / two-hot regression, SimNorm, NormedLinear MLPs and MLP ensembles.

Everything here is a pure function or a small flax.linen module, so each piece can be unit-tested on
its own (tests/test_networks.py). The math follows the TD-MPC2 paper (arXiv 2310.16828, appendix)
and its official code; the layers are written for JAX from those descriptions.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# ---------------------------------------------------------------------------------------------
# symlog / two-hot discrete regression
# ---------------------------------------------------------------------------------------------


def device_mean(tree, axis_name: Optional[str]):
    """Mean of `tree` over the data-parallel device axis `axis_name` (identity when None: one device).

    Data-parallel training (anakin.py) averages gradients and batch statistics with this, so that every
    device applies the same step and parameters stay identical."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def symlog(x: jax.Array) -> jax.Array:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity-like near 0."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """Inverse of `symlog`."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def bin_centers(num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Bin locations (in symlog space) of the two-hot encoding."""
    return jnp.linspace(vmin, vmax, num_bins)


def two_hot(x: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Soft two-hot encoding of scalars `x` (any shape) in symlog space -> [..., num_bins].

    The two neighbouring bins of symlog(x) share the mass linearly, so that the expectation over
    `bin_centers` recovers symlog(x) exactly for values inside [vmin, vmax] (clamped outside).
    """
    bin_size = (vmax - vmin) / (num_bins - 1)
    y = jnp.clip(symlog(x), vmin, vmax)
    pos = (y - vmin) / bin_size
    lower = jnp.clip(jnp.floor(pos), 0, num_bins - 1)
    upper_weight = pos - lower
    lower_idx = lower.astype(jnp.int32)
    upper_idx = jnp.minimum(lower_idx + 1, num_bins - 1)
    return (1.0 - upper_weight)[..., None] * jax.nn.one_hot(lower_idx, num_bins) + upper_weight[
        ..., None
    ] * jax.nn.one_hot(upper_idx, num_bins)


def two_hot_inv(logits: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Scalar prediction of two-hot logits [..., num_bins] -> [...]: symexp of the softmax expectation."""
    probs = jax.nn.softmax(logits, axis=-1)
    return symexp(jnp.sum(probs * bin_centers(num_bins, vmin, vmax), axis=-1))


def soft_ce(logits: jax.Array, target: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Cross-entropy between predicted logits [..., num_bins] and the two-hot encoding of `target` [...]."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(two_hot(target, num_bins, vmin, vmax) * log_probs, axis=-1)


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def mish(x: jax.Array) -> jax.Array:
    """x * tanh(softplus(x))."""
    return x * jnp.tanh(jax.nn.softplus(x))


def simnorm(x: jax.Array, group_size: int = 8) -> jax.Array:
    """Simplicial normalisation: softmax over consecutive groups of `group_size` features."""
    shape = x.shape
    groups = x.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    return jax.nn.softmax(groups, axis=-1).reshape(shape)


# TD-MPC2 initialises every Linear layer with a truncated normal of std 0.02 and zero bias.
dense_init = nn.initializers.truncated_normal(stddev=0.02)


class NormedLinear(nn.Module):
    """Linear -> (Dropout) -> LayerNorm -> activation."""

    features: int
    act: Callable[[jax.Array], jax.Array] = mish
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.Dense(self.features, kernel_init=dense_init, bias_init=nn.initializers.zeros)(x)
        if self.dropout > 0:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.LayerNorm(epsilon=1e-5)(x)
        return self.act(x)


class MLP(nn.Module):
    """NormedLinear hidden layers, then either a NormedLinear with `out_act` or a plain Linear head.

    `dropout` applies to the first layer only (as TD-MPC2's Q-functions); `zero_out` zero-initialises
    the plain Linear head (TD-MPC2's reward and Q heads start predicting exactly 0).
    """

    hidden: Sequence[int]
    out: int
    out_act: Optional[Callable[[jax.Array], jax.Array]] = None
    dropout: float = 0.0
    zero_out: bool = False
    act: Callable[[jax.Array], jax.Array] = mish

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, width in enumerate(self.hidden):
            x = NormedLinear(width, self.act, self.dropout if i == 0 else 0.0)(x, train)
        if self.out_act is not None:
            return NormedLinear(self.out, self.out_act)(x, train)
        kernel_init = nn.initializers.zeros if self.zero_out else dense_init
        return nn.Dense(self.out, kernel_init=kernel_init, bias_init=nn.initializers.zeros)(x)


def init_ensemble(module: nn.Module, rng: jax.Array, size: int, example: jax.Array):
    """Parameters of `size` independent copies of `module`, stacked on a leading axis."""
    return jax.vmap(lambda k: module.init(k, example)["params"])(jax.random.split(rng, size))


def apply_ensemble(module: nn.Module, params, x: jax.Array, dropout_rng: Optional[jax.Array] = None):
    """Apply every member of a stacked ensemble to the same input -> [size, ...].

    With `dropout_rng`, runs in training mode with an independent dropout mask per member.
    """
    size = jax.tree.leaves(params)[0].shape[0]
    if dropout_rng is None:
        return jax.vmap(lambda p: module.apply({"params": p}, x))(params)
    keys = jax.random.split(dropout_rng, size)
    return jax.vmap(lambda p, k: module.apply({"params": p}, x, True, rngs={"dropout": k}))(params, keys)


def select_members(params, idx: jax.Array):
    """The sub-ensemble `idx` (e.g. two random Q-functions) of stacked ensemble parameters."""
    return jax.tree.map(lambda p: p[idx], params)
