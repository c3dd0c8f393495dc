"""Unit tests of the math and layers in anakin_tdmpc.networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc import networks as nets

BINS, VMIN, VMAX = 101, -10.0, 10.0


def test_symlog_symexp_inverse():
    x = jnp.array([-1e4, -3.0, -0.5, 0.0, 0.25, 7.0, 1e5])
    np.testing.assert_allclose(nets.symexp(nets.symlog(x)), x, rtol=1e-5)
    assert float(nets.symlog(jnp.array(np.e - 1))) == pytest.approx(1.0)


def test_two_hot_is_a_distribution_with_two_neighbouring_bins():
    x = jnp.array([-500.0, -1.3, 0.0, 0.7, 42.0, 1e9])
    enc = nets.two_hot(x, BINS, VMIN, VMAX)
    assert enc.shape == (6, BINS)
    np.testing.assert_allclose(enc.sum(-1), 1.0, rtol=1e-6)
    assert bool(jnp.all(enc >= 0))
    nonzero = np.asarray(enc > 1e-7)
    for row in nonzero:
        idx = np.flatnonzero(row)
        assert len(idx) <= 2 and (len(idx) < 2 or idx[1] == idx[0] + 1)


def test_two_hot_round_trip_inside_range():
    x = jnp.linspace(-2000.0, 2000.0, 257)  # symlog(2000) = 7.6 < 10
    logits = jnp.log(nets.two_hot(x, BINS, VMIN, VMAX) + 1e-30)
    np.testing.assert_allclose(nets.two_hot_inv(logits, BINS, VMIN, VMAX), x, rtol=1e-3, atol=1e-3)


def test_two_hot_clamps_outside_range():
    logits = jnp.log(nets.two_hot(jnp.array([1e7, -1e7]), BINS, VMIN, VMAX) + 1e-30)
    np.testing.assert_allclose(nets.two_hot_inv(logits, BINS, VMIN, VMAX), [np.expm1(10.0), -np.expm1(10.0)], rtol=1e-3)


def test_bin_centre_is_one_hot():
    centre = nets.bin_centers(BINS, VMIN, VMAX)[60]
    enc = nets.two_hot(nets.symexp(centre), BINS, VMIN, VMAX)
    assert float(enc[60]) == pytest.approx(1.0, abs=1e-4)


def test_soft_ce_of_uniform_logits_is_log_bins_and_minimal_at_target():
    target = jnp.array([3.0, -20.0])
    ce = nets.soft_ce(jnp.zeros((2, BINS)), target, BINS, VMIN, VMAX)
    np.testing.assert_allclose(ce, np.log(BINS), rtol=1e-6)
    good = jnp.log(nets.two_hot(target, BINS, VMIN, VMAX) + 1e-8)
    assert bool(jnp.all(nets.soft_ce(good, target, BINS, VMIN, VMAX) < ce))


def test_simnorm_groups_are_simplices():
    x = jax.random.normal(jax.random.key(0), (4, 3, 32)) * 5
    y = nets.simnorm(x, 8)
    assert y.shape == x.shape
    groups = y.reshape(4, 3, 4, 8)
    np.testing.assert_allclose(groups.sum(-1), 1.0, rtol=1e-5)
    assert bool(jnp.all(y >= 0))
    # softmax within each group, independent of the other groups
    np.testing.assert_allclose(groups[0, 0, 1], jax.nn.softmax(x[0, 0, 8:16]), rtol=1e-5)


def test_mish():
    x = jnp.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(nets.mish(x), x * np.tanh(np.log1p(np.exp(x))), rtol=1e-6)


def test_mlp_zero_head_and_layer_structure():
    mlp = nets.MLP((16, 16), 5, zero_out=True, dropout=0.5)
    params = mlp.init(jax.random.key(0), jnp.ones((2, 3)))["params"]
    assert set(params) == {"NormedLinear_0", "NormedLinear_1", "Dense_0"}
    out = mlp.apply({"params": params}, jnp.ones((2, 3)))
    np.testing.assert_array_equal(out, 0.0)
    # dropout only acts in training mode, first layer only
    x = jax.random.normal(jax.random.key(1), (2, 3))
    a = nets.MLP((16, 16), 5, dropout=0.5).init(jax.random.key(0), x)["params"]
    m = nets.MLP((16, 16), 5, dropout=0.5)
    eval_out = m.apply({"params": a}, x)
    np.testing.assert_array_equal(eval_out, m.apply({"params": a}, x))
    train_out = m.apply({"params": a}, x, True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_out, eval_out)


def test_simnorm_head():
    mlp = nets.MLP((16,), 24, out_act=lambda x: nets.simnorm(x, 8))
    params = mlp.init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    out = mlp.apply({"params": params}, jax.random.normal(jax.random.key(3), (5, 3)))
    np.testing.assert_allclose(out.reshape(5, 3, 8).sum(-1), 1.0, rtol=1e-5)


def test_ensemble_members_are_independent_and_selectable():
    mlp = nets.MLP((8,), 4)
    params = nets.init_ensemble(mlp, jax.random.key(0), 5, jnp.ones((1, 3)))
    x = jax.random.normal(jax.random.key(1), (7, 3))
    out = nets.apply_ensemble(mlp, params, x)
    assert out.shape == (5, 7, 4)
    assert not np.allclose(out[0], out[1])
    sub = nets.select_members(params, jnp.array([3, 1]))
    np.testing.assert_allclose(nets.apply_ensemble(mlp, sub, x), out[jnp.array([3, 1])], rtol=1e-6)
