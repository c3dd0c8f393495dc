"""Divergence guard: after every chunk, the chunk's update metrics (sums over all its updates, so one
NaN anywhere shows) and every floating-point leaf of the agent state (parameters, target Qs, optimiser
moments, running scale; checked on device, `loop.parallel.Report.finite`) must be finite. The first offender
is named; the trainer then stops the run with exit code 3 *without* saving the bad state, so the last checkpoint on
disk is the last good one."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


class DivergenceGuard:
    def __init__(self, leaf_names: Sequence[str], seeds: Sequence[int]):
        self.leaf_names, self.seeds = list(leaf_names), list(seeds)

    def check(self, row: dict, metric_keys, finite) -> Optional[str]:
        """None if all is finite, else what is not (e.g. 'non-finite train/total_loss (nan)').
        `finite`: [S, L] flags of the agent's floating leaves per seed."""
        for key in metric_keys:
            value = row.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                return f"non-finite {key} ({value})"
        finite = np.asarray(finite)
        if finite.size and not finite.all():
            s, leaf = np.argwhere(~finite)[0]
            where = f" (seed {self.seeds[s]})" if len(self.seeds) > 1 else ""
            return f"non-finite parameter {self.leaf_names[leaf]}{where}"
        return None
