"""Shared building blocks: symlog / two-hot regression, SimNorm, NormedLinear MLPs and MLP ensembles.

Everything here is a pure function or a small flax.linen module, so each piece can be unit-tested on
its own (tests/test_layers.py). The math follows the TD-MPC2 paper (arXiv 2310.16828, appendix)
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


@jax.custom_jvp
def mish(x: jax.Array) -> jax.Array:
    """x * tanh(softplus(x)), computed with a single exp: with n = e^x (e^x + 2), tanh(log(1 + e^x)) = n / (n + 2).

    The textbook form costs an exp, a log1p and a tanh per element (and more in its derivative), which made
    Mish a large share of the elementwise time on CPU; this is the same function to float rounding. For
    x > 20, n / (n + 2) is 1 in float32, so x is returned as is (e^x is clamped so that nothing overflows).
    """
    return _mish_parts(x)[0]


def _mish_parts(x: jax.Array):
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    t = jnp.where(x > 20.0, 1.0, n / (n + 2.0))  # tanh(softplus(x))
    return x * t, e, t


@mish.defjvp
def _mish_jvp(primals, tangents):
    """d mish / dx = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), from the same exp as the value."""
    (x,), (dx,) = primals, tangents
    y, e, t = _mish_parts(x)
    return y, (t + x * (e / (1.0 + e)) * (1.0 - t * t)) * dx


def simnorm(x: jax.Array, group_size: int = 8) -> jax.Array:
    """Simplicial normalisation: softmax over consecutive groups of `group_size` features."""
    shape = x.shape
    groups = x.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    return jax.nn.softmax(groups, axis=-1).reshape(shape)


def dropout(rng: jax.Array, x: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout: zero each element with probability `rate`, scale the rest by 1 / (1 - rate).

    The keep test uses 16 random bits per element, two per 32-bit draw: threefry costs about as much as a
    matmul layer at TD-MPC2's sizes on CPU, and halving its draws halves that. The keep probability is
    exact to 1 / 65536.
    """
    size = x.size
    bits = jax.random.bits(rng, ((size + 1) // 2,), jnp.uint32)
    halves = jnp.concatenate([bits & 0xFFFF, bits >> 16])[:size].reshape(x.shape)
    keep = halves < round((1.0 - rate) * 65536)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


# TD-MPC2 initialises every Linear layer with a truncated normal of std 0.02 and zero bias.
dense_init = nn.initializers.truncated_normal(stddev=0.02)


class Linear(nn.Module):
    """y = x W + b with `nn.Dense`'s parameters (one kernel, one bias), with two extras used by the planner.

    - `x` may be a tuple of the parts of a concatenated input (arrays that broadcast against each other except
      in their last axis): one matmul per part, no concatenation built. The planner's latent z is the same
      for all of its samples at the first step, so z's share of the first layer runs once for one row.
    - The matmul runs in the kernel's dtype, accumulating and returning float32: float32 parameters give the
      usual layer; kernels cast to bfloat16 (`bf16_kernels`) give bf16 matmuls (AVX512-BF16 on CPU).
    """

    features: int
    kernel_init: Callable = dense_init

    @nn.compact
    def __call__(self, x) -> jax.Array:
        parts = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        sizes = [p.shape[-1] for p in parts]
        kernel = self.param("kernel", self.kernel_init, (sum(sizes), self.features))
        out, start = self.param("bias", nn.initializers.zeros, (self.features,)), 0
        for part, size in zip(parts, sizes):
            w = kernel[start:start + size]
            out = out + jnp.dot(part.astype(w.dtype), w, preferred_element_type=jnp.float32)
            start += size
        return out


def bf16_kernels(params):
    """`params` with every matmul kernel cast to bfloat16 (biases and LayerNorm parameters stay float32)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.astype(jnp.bfloat16) if getattr(path[-1], "key", None) == "kernel" else p, params)


class NormedLinear(nn.Module):
    """Linear -> (Dropout) -> LayerNorm -> activation. `x` may be a tuple of parts of a concatenated input."""

    features: int
    act: Callable[[jax.Array], jax.Array] = mish
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False) -> jax.Array:
        x = Linear(self.features, name="Dense_0")(x)
        if self.dropout > 0 and train:
            x = dropout(self.make_rng("dropout"), x, self.dropout)
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
    def __call__(self, x, train: bool = False) -> jax.Array:
        """`x`: an array, or a tuple of the parts of a concatenated input (see `Linear`)."""
        for i, width in enumerate(self.hidden):
            x = NormedLinear(width, self.act, self.dropout if i == 0 else 0.0)(x, train)
        if self.out_act is not None:
            return NormedLinear(self.out, self.out_act)(x, train)
        kernel_init = nn.initializers.zeros if self.zero_out else dense_init
        return Linear(self.out, kernel_init, name="Dense_0")(x)


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


def model_part(params: dict) -> dict:
    """The world model's parameters (encoder, dynamics, reward, Q-functions, and a termination head where
    there is one): what the model optimiser updates; the policy has its own."""
    return {k: params[k] for k in ("encoder", "dynamics", "reward", "qs", "termination") if k in params}


def latent_rollout(z: jax.Array, actions: jax.Array, dynamics) -> list:
    """[z_0, ..., z_H]: the latent z_0 rolled through the model's `dynamics(z, a)` by actions [H, ...]."""
    zs = [z]
    for a in actions:
        z = dynamics(z, a)
        zs.append(z)
    return zs
