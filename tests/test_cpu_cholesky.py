"""The chunked CPU Cholesky (anakin_tdmpc/envs/cpu_cholesky.py): same factors, and no hang."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jp
import numpy as np

from anakin_tdmpc.envs import cpu_cholesky


def _spd(key, batch, n):
    a = jax.random.normal(key, (batch, n, n))
    return a @ jp.swapaxes(a, -1, -2) + n * jp.eye(n)


def test_installed_on_import_of_envs():
    """Importing anakin_tdmpc.envs put the chunked lowering in place: a batch above the chunk size lowers to a
    loop over chunks (lax.map: a while loop), one below it to the plain LAPACK call."""
    def lowered(batch):
        return jax.jit(jp.linalg.cholesky).lower(jax.ShapeDtypeStruct((batch, 22, 22), jp.float32)).as_text()

    assert 256 * 22 * 22 > cpu_cholesky.CHUNK_ELEMENTS > 16 * 22 * 22
    big, small = lowered(256), lowered(16)
    assert "stablehlo.while" in big and "stablehlo.while" not in small
    assert "lapack_spotrf" in big and "lapack_spotrf" in small
    assert cpu_cholesky.install()  # and installing again keeps it


def test_chunked_batch_equals_one_matrix_at_a_time():
    """A batch far above the chunk size, odd leading dims: factors equal LAPACK's on each matrix alone."""
    n = 22
    a = _spd(jax.random.key(0), 6 * 64, n).reshape(6, 64, n, n)  # 384 x 484 elements: 12 chunks of 32
    assert 384 * n * n > cpu_cholesky.CHUNK_ELEMENTS
    batched = np.asarray(jax.jit(jp.linalg.cholesky)(a))
    single = jax.jit(jp.linalg.cholesky)
    for i, j in [(0, 0), (2, 31), (3, 32), (5, 63)]:
        np.testing.assert_array_equal(batched[i, j], np.asarray(single(a[i, j])))
    reference = np.linalg.cholesky(np.asarray(a, np.float64))
    np.testing.assert_allclose(batched, reference, atol=1e-5)


def test_not_positive_definite_gives_nan_as_lapack_does():
    a = _spd(jax.random.key(1), 64, 22)
    a = a.at[7].set(-jp.eye(22))
    out = np.asarray(jax.jit(jp.linalg.cholesky)(a))
    assert np.isnan(out[7][np.tril_indices(22)]).all()  # LAPACK's failure -> NaN factor (upper part stays 0)
    assert np.isfinite(out[np.arange(64) != 7]).all()


def test_gradient_through_cho_factor():
    a = _spd(jax.random.key(2), 256, 9)
    grad = jax.jit(jax.grad(lambda x: jax.scipy.linalg.cho_factor(x)[0].sum()))(a)
    assert np.isfinite(np.asarray(grad)).all()


def test_two_concurrent_large_factorisations_finish():
    """The pattern that hung jaxlib's batched potrf on 2 cores: two independent 256 x 22 x 22 batches."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jp
        import anakin_tdmpc.envs  # installs the chunked lowering
        def spd(key):
            a = jax.random.normal(key, (256, 22, 22))
            return a @ jp.swapaxes(a, -1, -2) + 22 * jp.eye(22)
        @jax.jit
        def f(a, b):
            def body(i, c):
                x, y = c
                lx, ly = jax.scipy.linalg.cho_factor(x)[0], jax.scipy.linalg.cho_factor(y)[0]
                return x + 1e-3 * lx @ jp.swapaxes(lx, -1, -2), y + 1e-3 * ly @ jp.swapaxes(ly, -1, -2)
            return jax.lax.fori_loop(0, 50, body, (a, b))
        k1, k2 = jax.random.split(jax.random.key(0))
        jax.block_until_ready(f(spd(k1), spd(k2)))
        print("done")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout
