"""Works around a deadlock of jaxlib's batched CPU Cholesky (LAPACK ``potrf``) on machines with few cores.

MJX factorises an ``nv x nv`` matrix several times per physics sub-step (the mass matrix, the Newton
solver's Hessian, Euler damping), with ``jax.scipy.linalg.cho_factor``. Under ``vmap`` over N envs this is
one batched ``cholesky`` call. On CPU, jaxlib (0.10.2) runs a large enough batch (about 64k matrix elements
or more, e.g. 192 x 22 x 22 or 16 x 79 x 79) as parallel tasks on XLA's intra-op thread pool and blocks the
calling pool thread until they finish. When XLA runs as many of these calls at once as the pool has
threads (2 on a 2-core machine: two independent factorisations in one program suffice), every thread
waits for tasks no thread is free to run (both pool threads wait in ``CholeskyFactorizationKernel`` on a
``BlockingCounter``): the program hangs forever at 0% CPU, e.g. quadruped at N=256 or the dog.

:func:`install` re-registers the CPU lowering of ``cholesky``: a batch above :data:`CHUNK_ELEMENTS`
elements is split into chunks below it, factorised one chunk after another (``lax.map``) by the same
LAPACK kernel, which then runs each chunk on its own thread. Results are bitwise those of LAPACK. Other
platforms (GPU) are not touched. Installed on import of ``anakin_tdmpc.envs``.
"""

from __future__ import annotations

import math

import jax
from jax.interpreters import mlir

CHUNK_ELEMENTS = 16_384
"""Largest batch (in matrix elements, batch x n x n) handed to LAPACK in one call: 4x below where it hangs."""

_installed = False


def _lapack_lowering():
    """jaxlib's own CPU lowering of ``cholesky`` (LAPACK potrf), or None if this jax has none by that name."""
    try:
        from jax._src.lax import linalg as jax_linalg
    except ImportError:  # pragma: no cover - jax moved its internals
        return None
    return getattr(jax_linalg, "_cholesky_cpu_lowering", None)


def install() -> bool:
    """Registers the chunked CPU lowering (once per process). Returns whether it is in place."""
    global _installed
    if _installed:
        return True
    lapack = _lapack_lowering()
    if lapack is None:  # pragma: no cover - only with another jax version than the one pinned
        return False
    cholesky_p = jax.lax.linalg.cholesky_p

    def chunked(ctx, operand):
        (aval,) = ctx.avals_in
        n = aval.shape[-1]
        batch = math.prod(aval.shape[:-2])
        chunk = max(1, CHUNK_ELEMENTS // (n * n))
        if batch <= chunk:
            return lapack(ctx, operand)
        while batch % chunk:  # an even split keeps every chunk the same shape
            chunk -= 1

        def factor(x):
            parts = x.reshape((batch // chunk, chunk, n, n))
            return jax.lax.map(cholesky_p.bind, parts).reshape(x.shape)

        return mlir.lower_fun(factor, multiple_results=False)(ctx, operand)

    mlir.register_lowering(cholesky_p, chunked, platform="cpu")
    _installed = True
    return True
