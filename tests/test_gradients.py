"""Unit tests of anakin_tdmpc.agents.gradients: one optimiser step, on one device and averaged over devices."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from anakin_tdmpc.agents import gradients


def half_square(p, x):
    """sum((p - x)^2) / 2: its gradient is p - x."""
    return jnp.sum((p - x) ** 2) / 2


def test_one_step_on_one_device():
    p, x = jnp.array([1.0, 2.0]), jnp.zeros(2)
    optimizer = optax.sgd(0.5)
    out = gradients.step(half_square, optimizer, p, optimizer.init(p), x)
    # gradient [1, 2]: loss (1 + 4) / 2, new p = p - 0.5 * [1, 2], norm sqrt(5)
    assert float(out.loss) == 2.5
    np.testing.assert_array_equal(out.params, [0.5, 1.0])
    assert float(out.grad_norm) == pytest.approx(np.sqrt(5.0))


def test_aux_and_a_clipping_optimizer_see_the_gradient_it_reports():
    p, x = jnp.array([3.0, 4.0]), jnp.zeros(2)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
    out = gradients.step(lambda p, x: (half_square(p, x), x + 7.0), optimizer, p, optimizer.init(p), x,
                         has_aux=True)
    loss, aux = out.loss
    assert float(loss) == 12.5 and np.array_equal(aux, [7.0, 7.0])
    # gradient [3, 4] of norm 5, clipped to norm 1: p - [0.6, 0.8]; the reported norm is the unclipped one
    np.testing.assert_allclose(out.params, [2.4, 3.2], rtol=1e-6)
    assert float(out.grad_norm) == pytest.approx(5.0)


def test_the_gradient_is_averaged_over_the_device_axis():
    """Two 'devices' (a vmap with an axis name, as shard_map's axis in loop/parallel.py) with their own data:
    gradients [1, 2] and [-3, 2] average to [-1, 2], and both take that step from the same parameters."""
    p = jnp.array([1.0, 2.0])
    xs = jnp.array([[0.0, 0.0], [4.0, 0.0]])
    optimizer = optax.sgd(0.5)
    state = optimizer.init(p)
    out = jax.vmap(lambda x: gradients.step(half_square, optimizer, p, state, x, axis_name="devices"),
                   axis_name="devices")(xs)
    np.testing.assert_array_equal(out.loss, [2.5, 6.5])  # each device's own loss
    np.testing.assert_array_equal(out.params, [[1.5, 1.0], [1.5, 1.0]])  # p - 0.5 * [-1, 2]
    np.testing.assert_allclose(out.grad_norm, [np.sqrt(5.0)] * 2, rtol=1e-6)
    np.testing.assert_array_equal(gradients.device_mean(xs, None), xs)  # no axis: identity
