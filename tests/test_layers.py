"""Unit tests of the math and layers in anakin_tdmpc.agents.layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.agents import layers

BINS, VMIN, VMAX = 101, -10.0, 10.0


def test_symlog_symexp_inverse():
    x = jnp.array([-1e4, -3.0, -0.5, 0.0, 0.25, 7.0, 1e5])
    np.testing.assert_allclose(layers.symexp(layers.symlog(x)), x, rtol=1e-5)
    assert float(layers.symlog(jnp.array(np.e - 1))) == pytest.approx(1.0)


def test_two_hot_is_a_distribution_with_two_neighbouring_bins():
    x = jnp.array([-500.0, -1.3, 0.0, 0.7, 42.0, 1e9])
    enc = layers.two_hot(x, BINS, VMIN, VMAX)
    assert enc.shape == (6, BINS)
    np.testing.assert_allclose(enc.sum(-1), 1.0, rtol=1e-6)
    assert bool(jnp.all(enc >= 0))
    nonzero = np.asarray(enc > 1e-7)
    for row in nonzero:
        idx = np.flatnonzero(row)
        assert len(idx) <= 2 and (len(idx) < 2 or idx[1] == idx[0] + 1)


def test_two_hot_round_trip_inside_range():
    x = jnp.linspace(-2000.0, 2000.0, 257)  # symlog(2000) = 7.6 < 10
    logits = jnp.log(layers.two_hot(x, BINS, VMIN, VMAX) + 1e-30)
    np.testing.assert_allclose(layers.two_hot_inv(logits, BINS, VMIN, VMAX), x, rtol=1e-3, atol=1e-3)


def test_two_hot_clamps_outside_range():
    logits = jnp.log(layers.two_hot(jnp.array([1e7, -1e7]), BINS, VMIN, VMAX) + 1e-30)
    np.testing.assert_allclose(layers.two_hot_inv(logits, BINS, VMIN, VMAX), [np.expm1(10.0), -np.expm1(10.0)], rtol=1e-3)


def test_bin_centre_is_one_hot():
    centre = layers.bin_centers(BINS, VMIN, VMAX)[60]
    enc = layers.two_hot(layers.symexp(centre), BINS, VMIN, VMAX)
    assert float(enc[60]) == pytest.approx(1.0, abs=1e-4)


def test_soft_ce_of_uniform_logits_is_log_bins_and_minimal_at_target():
    target = jnp.array([3.0, -20.0])
    ce = layers.soft_ce(jnp.zeros((2, BINS)), target, BINS, VMIN, VMAX)
    np.testing.assert_allclose(ce, np.log(BINS), rtol=1e-6)
    good = jnp.log(layers.two_hot(target, BINS, VMIN, VMAX) + 1e-8)
    assert bool(jnp.all(layers.soft_ce(good, target, BINS, VMIN, VMAX) < ce))


def test_simnorm_groups_are_simplices():
    x = jax.random.normal(jax.random.key(0), (4, 3, 32)) * 5
    y = layers.simnorm(x, 8)
    assert y.shape == x.shape
    groups = y.reshape(4, 3, 4, 8)
    np.testing.assert_allclose(groups.sum(-1), 1.0, rtol=1e-5)
    assert bool(jnp.all(y >= 0))
    # softmax within each group, independent of the other groups
    np.testing.assert_allclose(groups[0, 0, 1], jax.nn.softmax(x[0, 0, 8:16]), rtol=1e-5)


def test_mish():
    x = jnp.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(layers.mish(x), x * np.tanh(np.log1p(np.exp(x))), rtol=1e-6)


def test_one_exp_mish_matches_the_textbook_form_and_its_gradient():
    x = jnp.linspace(-100.0, 100.0, 20001)
    reference = lambda v: v * jnp.tanh(jax.nn.softplus(v))  # noqa: E731
    np.testing.assert_allclose(layers.mish(x), reference(x), atol=1e-5, rtol=1e-5)
    grad, ref_grad = jax.vmap(jax.grad(layers.mish))(x), jax.vmap(jax.grad(reference))(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(grad, ref_grad, atol=1e-5, rtol=1e-5)


def test_dropout_rate_and_scale():
    x = jnp.ones((5, 999, 7))  # odd size: one 32-bit draw serves two elements
    y = layers.dropout(jax.random.key(0), x, 0.01)
    kept = y > 0
    assert abs(float(kept.mean()) - 0.99) < 0.001  # 35k elements: std of the mean ~5e-4
    np.testing.assert_allclose(y[kept], 1 / 0.99, rtol=1e-6)
    y2 = layers.dropout(jax.random.key(1), x, 0.5)
    assert abs(float((y2 > 0).mean()) - 0.5) < 0.01
    assert not np.array_equal(y2, layers.dropout(jax.random.key(2), x, 0.5))


def test_linear_on_parts_equals_linear_on_the_concatenation():
    mlp = layers.MLP((16,), 4, dropout=0.0)
    z, a = jax.random.normal(jax.random.key(0), (6, 10)), jax.random.normal(jax.random.key(1), (6, 3))
    params = mlp.init(jax.random.key(2), jnp.concatenate([z, a], -1))["params"]
    assert params["NormedLinear_0"]["Dense_0"]["kernel"].shape == (13, 16)  # nn.Dense's parameters
    full = mlp.apply({"params": params}, jnp.concatenate([z, a], -1))
    np.testing.assert_allclose(mlp.apply({"params": params}, (z, a)), full, rtol=1e-5, atol=1e-6)
    # a part shared by every row may be given once: [1, 10] broadcasts against [6, 3]
    shared = mlp.apply({"params": params}, (z[:1], a))
    np.testing.assert_allclose(shared, mlp.apply({"params": params}, jnp.concatenate([jnp.repeat(z[:1], 6, 0), a], -1)),
                               rtol=1e-5, atol=1e-6)


def test_bf16_kernels_cast_only_matmul_kernels_and_stay_close():
    mlp = layers.MLP((32, 32), 8)
    x = jax.random.normal(jax.random.key(0), (5, 12))
    params = mlp.init(jax.random.key(1), x)["params"]
    low = layers.bf16_kernels(params)
    assert low["Dense_0"]["kernel"].dtype == jnp.bfloat16 and low["Dense_0"]["bias"].dtype == jnp.float32
    assert low["NormedLinear_0"]["LayerNorm_0"]["scale"].dtype == jnp.float32
    out, out_low = mlp.apply({"params": params}, x), mlp.apply({"params": low}, x)
    assert out_low.dtype == jnp.float32
    np.testing.assert_allclose(out_low, out, atol=0.05 * float(jnp.abs(out).max()))


def test_mlp_zero_head_and_layer_structure():
    mlp = layers.MLP((16, 16), 5, zero_out=True, dropout=0.5)
    params = mlp.init(jax.random.key(0), jnp.ones((2, 3)))["params"]
    assert set(params) == {"NormedLinear_0", "NormedLinear_1", "Dense_0"}
    out = mlp.apply({"params": params}, jnp.ones((2, 3)))
    np.testing.assert_array_equal(out, 0.0)
    # dropout only acts in training mode, first layer only
    x = jax.random.normal(jax.random.key(1), (2, 3))
    a = layers.MLP((16, 16), 5, dropout=0.5).init(jax.random.key(0), x)["params"]
    m = layers.MLP((16, 16), 5, dropout=0.5)
    eval_out = m.apply({"params": a}, x)
    np.testing.assert_array_equal(eval_out, m.apply({"params": a}, x))
    train_out = m.apply({"params": a}, x, True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_out, eval_out)


def test_simnorm_head():
    mlp = layers.MLP((16,), 24, out_act=lambda x: layers.simnorm(x, 8))
    params = mlp.init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    out = mlp.apply({"params": params}, jax.random.normal(jax.random.key(3), (5, 3)))
    np.testing.assert_allclose(out.reshape(5, 3, 8).sum(-1), 1.0, rtol=1e-5)


def test_ensemble_members_are_independent_and_selectable():
    mlp = layers.MLP((8,), 4)
    params = layers.init_ensemble(mlp, jax.random.key(0), 5, jnp.ones((1, 3)))
    x = jax.random.normal(jax.random.key(1), (7, 3))
    out = layers.apply_ensemble(mlp, params, x)
    assert out.shape == (5, 7, 4)
    assert not np.allclose(out[0], out[1])
    sub = layers.select_members(params, jnp.array([3, 1]))
    np.testing.assert_allclose(layers.apply_ensemble(mlp, sub, x), out[jnp.array([3, 1])], rtol=1e-6)
