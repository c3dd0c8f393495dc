"""The published learning curves: the official TD-MPC2 repository's per-seed eval returns of TD-MPC2, TD-MPC,
SAC and DreamerV3 on the 39 DMC tasks (data in `reference_results/`, copied unchanged; source and licence in
its README). Used by curves.png, `python -m anakin_tdmpc.plot` and `benchmarks/learning.py`.

Each curve is a set of seeds, each seed a return every 100k env steps (action repeat counted); `at` reads
between two published points only when asked to (a straight line is a poor guess of a learning curve).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(__file__), "reference_results")
ALGOS = ("tdmpc2", "tdmpc", "sac", "dreamerv3")
NAMES = {"tdmpc2": "TD-MPC2", "tdmpc": "TD-MPC", "sac": "SAC", "dreamerv3": "DreamerV3"}


@dataclasses.dataclass(frozen=True)
class Point:
    """The official returns at one env step: mean, min and max over seeds, and the number of seeds."""

    mean: float
    low: float
    high: float
    seeds: int


@functools.lru_cache(maxsize=None)
def curve(algo: str, task: str) -> dict[int, dict[int, float]] | None:
    """seed -> {env step: return} of the official `algo` on `task` (canonical name, e.g. "walker-walk"), or
    None where the data has no such curve (a task outside the 39, or one of our own tasks)."""
    path = os.path.join(DATA_DIR, algo, f"{task}.csv")
    if algo not in ALGOS or not os.path.isfile(path):
        return None
    seeds: dict[int, dict[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            seeds.setdefault(int(row["seed"]), {})[int(float(row["step"]))] = float(row["reward"])
    return seeds


def at(algo: str, task: str, env_steps: int, interpolate: bool = False) -> Point | None:
    """The official returns at `env_steps`, or None where there is no curve, `env_steps` lies beyond a seed's
    last point, or (without `interpolate`) is not a published point of every seed."""
    seeds = curve(algo, task)
    if not seeds:
        return None
    values = []
    for points in seeds.values():
        steps = sorted(points)
        if not steps[0] <= env_steps <= steps[-1] or (not interpolate and env_steps not in points):
            return None
        values.append(float(np.interp(env_steps, steps, [points[s] for s in steps])))
    return Point(float(np.mean(values)), min(values), max(values), len(values))


def band(algo: str, task: str, up_to: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(env steps, mean, min, max) of the official curve at its published points up to `up_to` env steps
    (where every seed has the point), for plotting; None without a curve."""
    seeds = curve(algo, task)
    if not seeds:
        return None
    common = sorted(set.intersection(*(set(p) for p in seeds.values())))
    steps = [s for s in common if s <= up_to]
    if not steps:
        return None
    values = np.array([[seeds[k][s] for s in steps] for k in seeds])
    return np.array(steps), values.mean(0), values.min(0), values.max(0)
