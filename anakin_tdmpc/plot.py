"""`python -m anakin_tdmpc.plot RUN_DIR... [--out FILE] [--at STEPS...] [--group_by FLAG...]`: many runs on
one figure, and a table.

Runs are grouped by task and algorithm (and by the values of any `--group_by` flags, e.g. `--group_by lr`
for a sweep); a `--num_seeds` run counts as its seeds. Per task, each group's eval return is drawn against
env steps as the mean over seeds with a 95% bootstrap confidence interval of that mean, the official
published curve of the same algorithm behind it (mean and seed range). With more than one task, a last
panel aggregates each group over tasks: the interquartile mean (IQM) of the returns / 1000 (DMC returns lie
in [0, 1000]) with a 95% stratified-bootstrap confidence interval, both computed by `rliable` (Agarwal et
al., 2021). Seeds whose evaluations fall on other env steps are read off straight lines between their own
evaluations; a step past a seed's last evaluation leaves it out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Annotated, Optional

import numpy as np
import tyro

from anakin_tdmpc import reference
from anakin_tdmpc.errors import PlotError

REPS = 2000  # bootstrap resamples per confidence interval


@dataclasses.dataclass
class PlotArgs:
    """Plot the eval returns of many runs (seeds, variants, tasks) with the official curves behind them."""

    run_dirs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR...",
                                                                           help_behavior_hint="(required)")]
    """run dirs written by python -m anakin_tdmpc.run, or folders holding them"""
    out: str = "plot.png"
    """the figure to write"""
    at: Annotated[tuple[int, ...], tyro.conf.arg(metavar="STEPS...", help_behavior_hint="(default: every 100k "
                                                 "up to the last step all runs reached, and that step)")] = ()
    """env steps of the printed table"""
    group_by: Annotated[tuple[str, ...], tyro.conf.arg(metavar="FLAG...", help_behavior_hint="(default: none)")] = ()
    """flags whose values split a task's runs into groups, e.g. lr or num_envs"""


@dataclasses.dataclass
class Curve:
    """One seed's eval returns."""

    steps: np.ndarray
    returns: np.ndarray

    def at(self, step: int) -> Optional[float]:
        if len(self.steps) == 0 or not self.steps[0] <= step <= self.steps[-1]:
            return None
        return float(np.interp(step, self.steps, self.returns))


def find_runs(paths) -> list[str]:
    """The run dirs in `paths`: each path that holds a config.json, else its sub-folders that do."""
    runs = []
    for path in paths:
        if os.path.isfile(os.path.join(path, "config.json")):
            runs.append(path)
        elif os.path.isdir(path):
            found = sorted(os.path.join(path, d) for d in os.listdir(path)
                           if os.path.isfile(os.path.join(path, d, "config.json")))
            if not found:
                raise PlotError(f"{path} holds no run (no config.json in it or its sub-folders)")
            runs += found
        else:
            raise PlotError(f"no run dir {path}")
    return runs


def read_run(path: str) -> tuple[dict, dict[int, Curve]]:
    """(config.json, seed -> eval curve) of one run dir."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        with open(os.path.join(path, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise PlotError(f"cannot read the run in {path} ({' '.join(str(e).split())[:200]})") from None
    args = config["args"]
    seeds = config.get("parallel", {}).get("seeds") or [args["seed"]]
    curves = {}
    for seed in seeds:
        key = "eval/episode_return" if len(seeds) == 1 else f"eval/episode_return/seed_{seed}"
        points = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
        steps, returns = zip(*points) if points else ((), ())
        curves[seed] = Curve(np.asarray(steps, float), np.asarray(returns, float))
    return config, curves


def group_runs(paths, group_by=()) -> dict[tuple, list[Curve]]:
    """(task, algo, group values...) -> every seed's curve, over all runs."""
    groups: dict[tuple, list[Curve]] = {}
    for path in find_runs(paths):
        config, curves = read_run(path)
        args = config["args"]
        missing = [flag for flag in group_by if flag not in args]
        if missing:
            raise PlotError(f"--group_by {missing[0]}: not a flag of the run in {path}")
        key = (config.get("task", args["task"]), args["algo"], *(f"{flag}={args[flag]}" for flag in group_by))
        groups.setdefault(key, []).extend(c for c in curves.values() if len(c.steps))
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise PlotError("none of the runs has an evaluation yet")
    return groups


def _bootstrap(scores, func) -> tuple[float, float, float]:
    """(point estimate, 95% CI low, high) of `func` over `scores` (rliable's score-dict entry: an array
    [runs, tasks], or a list of per-task arrays for a stratified bootstrap)."""
    from rliable import library as rly

    state = np.random.get_state()
    np.random.seed(0)  # rliable draws from numpy's global generator: fixed, so the same runs give the same plot
    try:
        point, interval = rly.get_interval_estimates({"x": scores}, func, reps=REPS)
    finally:
        np.random.set_state(state)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean over seeds with its 95% bootstrap CI."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    return _bootstrap(np.asarray(values, float)[:, None], lambda x: np.array([np.mean(x)]))


def iqm_interval(per_task: list[list[float]]) -> tuple[float, float, float]:
    """IQM of returns / 1000 over every (task, seed) with its 95% stratified-bootstrap CI (tasks as strata,
    seeds resampled within each task), from rliable."""
    from rliable import metrics

    scores = [np.asarray(v, float)[:, None] / 1000.0 for v in per_task]
    return _bootstrap(scores, lambda *s: np.array([metrics.aggregate_iqm(np.concatenate(s))]))


def values_at(curves: list[Curve], step: int) -> list[float]:
    return [v for v in (c.at(step) for c in curves) if v is not None]


def grid(groups: dict) -> list[int]:
    """Every env step some seed was evaluated at, up to the last one all of a group's seeds reached."""
    steps = set()
    for curves in groups.values():
        last = min(c.steps[-1] for c in curves)
        steps |= {int(s) for c in curves for s in c.steps if s <= last}
    return sorted(steps)


def default_table_steps(groups: dict) -> list[int]:
    last = min(int(min(c.steps[-1] for c in curves)) for curves in groups.values())
    return sorted({*range(100_000, last + 1, 100_000), last})


def table(groups: dict, steps) -> str:
    """Markdown: per group, mean [95% CI] over seeds at each step, then the official mean at the largest."""
    header = ["task", "algo", "group", "seeds"] + [f"{s:,}" for s in steps] + [f"official at {steps[-1]:,}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 4 + "---:|" * (len(steps) + 1)]
    for key in sorted(groups):
        task, algo, *rest = key
        curves = groups[key]
        cells = [task, algo, " ".join(rest) or "-", str(len(curves))]
        for step in steps:
            values = values_at(curves, step)
            if not values:
                cells.append("—")
                continue
            mean, low, high = mean_interval(values)
            cells.append(f"{mean:.0f}" + (f" [{low:.0f}, {high:.0f}]" if len(values) > 1 else ""))
        official = reference.at(algo, task, steps[-1])
        cells.append("—" if official is None else f"{official.mean:.0f} ({official.low:.0f}–{official.high:.0f})")
        lines.append("| " + " | ".join(cells) + " |")
    tasks = sorted({k[0] for k in groups})
    if len(tasks) > 1:
        lines.append("")
        lines.append("| aggregate over " + f"{len(tasks)} tasks" + " | " + " | ".join(f"{s:,}" for s in steps) + " |")
        lines.append("|---|" + "---:|" * len(steps))
        for label, per_task in _aggregate_groups(groups).items():
            cells = []
            for step in steps:
                values = [values_at(c, step) for c in per_task]
                if any(not v for v in values):
                    cells.append("—")
                    continue
                iqm, low, high = iqm_interval(values)
                cells.append(f"{iqm:.3f} [{low:.3f}, {high:.3f}]")
            lines.append(f"| IQM {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _aggregate_groups(groups: dict) -> dict[str, list[list[Curve]]]:
    """algo (+ group values) -> per task, its seeds' curves."""
    out: dict[str, list[list[Curve]]] = {}
    for key in sorted(groups):
        _, algo, *rest = key
        out.setdefault(" ".join([algo, *rest]), []).append(groups[key])
    return out


def plot(groups: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    tasks = sorted({k[0] for k in groups})
    panels = len(tasks) + (len(tasks) > 1)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), dpi=100)
    steps = grid(groups)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows, cols, i + 1)
        drawn_official = set()
        for key in sorted(k for k in groups if k[0] == task):
            _, algo, *rest = key
            points = [(s, *mean_interval(v)) for s in steps if (v := values_at(groups[key], s))]
            if not points:
                continue
            x, mean, low, high = map(np.asarray, zip(*points))
            label = " ".join([algo, *rest]) + f" ({len(groups[key])} seeds)"
            line, = ax.plot(x, mean, marker="o", ms=3, label=label)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
            official = reference.band(algo, task, int(x.max())) if algo not in drawn_official else None
            if official is not None:
                drawn_official.add(algo)
                s, m, lo, hi = official
                ax.plot(s, m, color="black", ls="--", lw=1, label=f"official {reference.NAMES[algo]}")
                ax.fill_between(s, lo, hi, color="black", alpha=0.07)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if len(tasks) > 1:
        ax = fig.add_subplot(rows, cols, panels)
        for label, per_task in _aggregate_groups(groups).items():
            points = []
            for s in steps:
                values = [values_at(c, s) for c in per_task]
                if all(values):
                    points.append((s, *iqm_interval(values)))
            if points:
                x, iqm, low, high = map(np.asarray, zip(*points))
                line, = ax.plot(x, iqm, marker="o", ms=3, label=f"{label} ({len(per_task)} tasks)")
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title("aggregate: IQM of return / 1000, 95% CI", fontsize=10)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)


def main(argv=None) -> str:
    from anakin_tdmpc.cli import ConfigError, parse_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_flags(PlotArgs, argv, "python -m anakin_tdmpc.plot", {"at": "int"})
        if not args.run_dirs:
            raise PlotError("give at least one run dir (see --help)")
        groups = group_runs(args.run_dirs, args.group_by)
        steps = sorted(args.at) if args.at else default_table_steps(groups)
        text = table(groups, steps)
        plot(groups, args.out)
    except (ConfigError, PlotError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(text)
    print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
