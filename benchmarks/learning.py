"""Learning benchmark: eval returns against the TD-MPC2 paper's, and wall-clock per 100k env steps.

    uv run python -m benchmarks.learning                                  # paper tasks x 3 seeds, 1M env steps
    uv run python -m benchmarks.learning --tasks cartpole-balance --seeds 1 --total_timesteps 20000 \
        --eval_every 10000 --milestones 10000 20000 --small                 # a few minutes on a CPU

Each (task, seed) trains through `anakin_tdmpc.run.main` into its own run dir (<runs_dir>/<task>__<algo>__<seed>);
a run dir that already holds the same finished run is read, not retrained. The table gives, per task, the mean
(and spread over seeds) of the eval return nearest each milestone next to the paper's number, plus
wall-clock per 100k env steps; a plot of the eval curves with the paper's points goes next to it. Outputs:
benchmarks/results/learning[_<tag>].{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from typing import Optional

import numpy as np
import tyro

from anakin_tdmpc.curves import PAPER_TDMPC2

# Published TD-MPC2 DMC eval returns (mean of 3 seeds) at 100k / 500k / 1M env steps (shared/REFERENCE.md):
# the same table curves.png draws.
PAPER = PAPER_TDMPC2
# the paper's tasks that mujoco_playground ports (quadruped is not there)
PAPER_TASKS = tuple(t for t in PAPER if t != "quadruped-run")

# the README's small CPU configuration (1M preset shrunk, small planner)
SMALL = ("--num_envs 8 --model_size 1 --latent_dim 64 --mlp_dim 128 --enc_dim 128 --num_q 2 --num_samples 64 "
         "--num_elites 8 --num_pi_trajs 4 --iterations 3 --batch_size 64 --seed_steps 1000 --eval_episodes 8")


@dataclasses.dataclass
class Learn:
    """Train a task list x seeds and compare eval returns with the TD-MPC2 paper."""

    tasks: tuple[str, ...] = PAPER_TASKS
    """tasks to train"""
    seeds: tuple[int, ...] = (1, 2, 3)
    """seeds per task"""
    total_timesteps: int = 1_000_000
    """env steps per run (counting action repeat)"""
    eval_every: int = 100_000
    """env steps between evaluations"""
    milestones: tuple[int, ...] = (100_000, 500_000, 1_000_000)
    """env steps at which to report the eval return (nearest evaluation)"""
    algo: str = "tdmpc2"
    """algorithm"""
    small: bool = False
    """use the README's small CPU configuration"""
    flags: str = ""
    """extra flags for anakin_tdmpc.run, e.g. --flags="--num_envs 32 --model_size 1" """
    runs_dir: str = "runs/learning"
    """parent folder of the run dirs"""
    out_dir: str = "benchmarks/results"
    """folder for learning[_<tag>].{json,md,png}"""
    tag: Optional[str] = None
    """suffix of the output files (default: none for the full benchmark, "small" with --small)"""


# ------------------------------------------------------------------------------------------- runs


def run_dir(learn: Learn, task: str, seed: int) -> str:
    return os.path.join(learn.runs_dir, f"{task}__{learn.algo}__{seed}")


def read_metrics(path: str) -> list[dict]:
    try:
        with open(os.path.join(path, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def finished(rows: list[dict], total: int) -> bool:
    return bool(rows) and rows[-1].get("env_steps", 0) >= total


def run_argv(learn: Learn, task: str, seed: int) -> list[str]:
    argv = ["--algo", learn.algo, "--task", task, "--seed", str(seed), "--total_timesteps", str(learn.total_timesteps),
            "--eval_every", str(learn.eval_every), "--run_dir", run_dir(learn, task, seed)]
    return argv + shlex.split(SMALL if learn.small else "") + shlex.split(learn.flags)


def same_config(path: str, argv: list[str]) -> bool:
    """Whether the run in `path` was started with the flags `argv` would give."""
    from anakin_tdmpc.run import parse_args

    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f)["args"] == dataclasses.asdict(parse_args(argv))
    except (OSError, ValueError, KeyError):
        return False


def train(learn: Learn, task: str, seed: int) -> list[dict]:
    """Train one run (unless its dir already holds the same, finished run) and return its metrics rows."""
    from anakin_tdmpc.run import main

    path, argv = run_dir(learn, task, seed), run_argv(learn, task, seed)
    if os.path.exists(path):
        if finished(read_metrics(path), learn.total_timesteps) and same_config(path, argv):
            print(f"{path}: the same finished run is there, not retraining", flush=True)
            return read_metrics(path)
        raise SystemExit(f"error: {path} holds an unfinished or different run; delete it or pass another --runs_dir")
    print("python -m anakin_tdmpc.run " + " ".join(argv), flush=True)
    main(argv)
    return read_metrics(path)


# ---------------------------------------------------------------------------------------- summary


def eval_curve(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    evals = [(r["env_steps"], r["eval/episode_return"]) for r in rows if "eval/episode_return" in r]
    steps, returns = zip(*evals) if evals else ((), ())
    return np.asarray(steps, float), np.asarray(returns, float)


def nearest_eval(rows: list[dict], milestone: int, eval_every: int) -> Optional[float]:
    """Eval return nearest `milestone`, if an evaluation lies within half an eval period of it."""
    steps, returns = eval_curve(rows)
    if len(steps) == 0:
        return None
    i = int(np.argmin(np.abs(steps - milestone)))
    return float(returns[i]) if abs(steps[i] - milestone) <= eval_every / 2 else None


def seconds_per_100k(rows: list[dict]) -> Optional[float]:
    """Training wall-clock (after compilation, evaluations included) per 100k env steps."""
    if not rows or rows[-1].get("env_steps", 0) <= 0:
        return None
    return 1e5 * rows[-1]["time"] / rows[-1]["env_steps"]


def summarise(learn: Learn, runs: dict) -> list[dict]:
    table = []
    for task in learn.tasks:
        seeds = runs[task]
        row = {"task": task, "seeds": len(seeds), "milestones": {}}
        for m in learn.milestones:
            ours = [v for v in (nearest_eval(r, m, learn.eval_every) for r in seeds.values()) if v is not None]
            row["milestones"][m] = {
                "ours_mean": float(np.mean(ours)) if ours else None,
                "ours_min": float(np.min(ours)) if ours else None,
                "ours_max": float(np.max(ours)) if ours else None,
                "paper": PAPER.get(task, {}).get(m),
            }
        walls = [w for w in (seconds_per_100k(r) for r in seeds.values()) if w is not None]
        row["seconds_per_100k"] = float(np.mean(walls)) if walls else None
        table.append(row)
    return table


def fmt_steps(m: int) -> str:
    return f"{m // 1_000_000}M" if m % 1_000_000 == 0 else f"{m // 1000}k"


def markdown(learn: Learn, table: list[dict]) -> str:
    header = ["task", "seeds"]
    for m in learn.milestones:
        header += [f"{fmt_steps(m)} ours", f"{fmt_steps(m)} paper"]
    header.append("min / 100k env steps")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in table:
        cells = [row["task"], str(row["seeds"])]
        for m in learn.milestones:
            r = row["milestones"][m]
            ours = "—" if r["ours_mean"] is None else f"{r['ours_mean']:.0f}"
            if r["ours_mean"] is not None and row["seeds"] > 1:
                ours += f" ({r['ours_min']:.0f}–{r['ours_max']:.0f})"
            cells += [ours, "—" if r["paper"] is None else f"{r['paper']:g}"]
        cells.append("—" if row["seconds_per_100k"] is None else f"{row['seconds_per_100k'] / 60:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    config = "README small config" if learn.small else "default (5M model, paper planner)"
    notes = (f"\n{learn.algo}, {config}{' + ' + learn.flags if learn.flags else ''}; eval return = mean over the eval "
             "episodes at the evaluation nearest each milestone, mean over seeds (min–max); paper: TD-MPC2, mean of "
             "3 seeds. Wall-clock excludes compilation, includes evaluations.\n")
    return "\n".join(lines) + "\n" + notes


def plot(learn: Learn, runs: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(learn.tasks), 3)
    rows = -(-len(learn.tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, learn.tasks):
        for seed, rws in runs[task].items():
            steps, returns = eval_curve(rws)
            ax.plot(steps, returns, marker="o", ms=3, lw=1, alpha=0.8, label=f"seed {seed}")
        paper = PAPER.get(task)
        if paper:
            ax.plot(list(paper), list(paper.values()), "k*", ms=9, label="TD-MPC2 paper")
        ax.set_title(task)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.set_ylim(0, 1000)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(learn.tasks):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(learn: Learn) -> list[dict]:
    runs = {task: {seed: train(learn, task, seed) for seed in learn.seeds} for task in learn.tasks}
    table = summarise(learn, runs)
    text = markdown(learn, table)
    print("\n" + text)
    tag = learn.tag if learn.tag is not None else ("small" if learn.small else "")
    stem = os.path.join(learn.out_dir, "learning" + (f"_{tag}" if tag else ""))
    os.makedirs(learn.out_dir, exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump({"config": dataclasses.asdict(learn), "table": table,
                   "curves": {t: {str(s): [list(map(float, c)) for c in eval_curve(r)] for s, r in v.items()}
                              for t, v in runs.items()}}, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(text)
    plot(learn, runs, stem + ".png")
    print(f"wrote {stem}.json, {stem}.md and {stem}.png")
    return table


if __name__ == "__main__":
    main(tyro.cli(Learn, use_underscores=True))
