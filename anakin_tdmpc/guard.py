"""Divergence guard: after every chunk, the chunk's update metrics (sums over all its updates, so one
NaN anywhere shows) and every floating-point leaf of the agent state (parameters, target Qs, optimiser
moments, running scale) must be finite. The first offender is named; the run then stops with exit code
3 *without* saving the bad state, so the last checkpoint on disk is the last good one."""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

DIVERGED_EXIT_CODE = 3


class DivergenceGuard:
    def __init__(self, agent):
        leaves = jax.tree_util.tree_flatten_with_path(agent)[0]
        self._index = [i for i, (_, x) in enumerate(leaves) if jnp.issubdtype(x.dtype, jnp.inexact)]
        self._names = ["agent" + jax.tree_util.keystr(leaves[i][0]) for i in self._index]
        index = self._index

        def finite(agent):
            xs = jax.tree_util.tree_leaves(agent)
            return jnp.stack([jnp.all(jnp.isfinite(xs[i])) for i in index])

        self._finite = jax.jit(finite)

    def check(self, row: dict, metric_keys, agent) -> Optional[str]:
        """None if all is finite, else what is not (e.g. 'non-finite train/total_loss (nan)')."""
        for key in metric_keys:
            value = row.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                return f"non-finite {key} ({value})"
        if self._index:
            ok = np.asarray(jax.device_get(self._finite(agent)))
            if not ok.all():
                return f"non-finite parameter {self._names[int(np.argmin(ok))]}"
        return None
