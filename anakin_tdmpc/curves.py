"""`<run_dir>/curves.png`: train and eval return vs env steps, with the TD-MPC2 paper's numbers.

Redrawn (matplotlib, Agg backend, written atomically) at each evaluation and at the end of a run.
"""

from __future__ import annotations

import os

# Published TD-MPC2 DMC returns (mean of 3 seeds) at 100k / 500k / 1M env steps, from the TD-MPC2 paper
# (arXiv 2310.16828; see shared/REFERENCE.md). Seed spread is large; mujoco_playground's ports also differ
# slightly from dm_control.
PAPER_TDMPC2 = {
    "cheetah-run": {100_000: 519, 500_000: 758, 1_000_000: 844},
    "walker-walk": {100_000: 962, 500_000: 979, 1_000_000: 980},
    "walker-run": {100_000: 723, 500_000: 820, 1_000_000: 842},
    "quadruped-run": {100_000: 239, 500_000: 940, 1_000_000: 938},
    "hopper-hop": {100_000: 14, 500_000: 303, 1_000_000: 338},
    "humanoid-walk": {100_000: 1.5, 500_000: 278, 1_000_000: 628},
    "reacher-hard": {100_000: 414, 500_000: 914, 1_000_000: 981},
    "cartpole-swingup": {100_000: 839, 500_000: 876, 1_000_000: 876},
    "finger-spin": {100_000: 948, 500_000: 985, 1_000_000: 986},
    "cup-catch": {100_000: 981, 500_000: 985, 1_000_000: 986},
}


def plot_curves(path: str, rows: list[dict], task: str, algo: str, total_env_steps: int) -> None:
    """Draw the learning curves of `rows` (metrics.jsonl rows) to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any backend

    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    train = [(r["env_steps"], r["train/episode_return"]) for r in rows if r.get("train/episode_return") is not None]
    evals = [(r["env_steps"], r["eval/episode_return"], r.get("eval/episode_return_std") or 0.0)
             for r in rows if r.get("eval/episode_return") is not None]
    if train:
        x, y = zip(*train)
        ax.plot(x, y, color="tab:blue", alpha=0.45, lw=1, label="train episodes")
    seed_keys = sorted({k for r in rows for k in r if k.startswith("eval/episode_return/seed_")},
                       key=lambda k: int(k.rsplit("_", 1)[1]))
    for i, key in enumerate(seed_keys):  # --num_seeds > 1: every seed's eval curve, the mean over seeds in bold
        points = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), color="tab:blue", alpha=0.35, lw=1, label="eval, each seed" if i == 0 else None)
    if evals:
        x, y, s = zip(*evals)
        ax.plot(x, y, color="tab:blue", marker="o", ms=3, lw=2, label="eval (mean over seeds)" if seed_keys else "eval (mean)")
        if not seed_keys:  # one seed: +- the std over eval episodes
            ax.fill_between(x, [a - b for a, b in zip(y, s)], [a + b for a, b in zip(y, s)], color="tab:blue", alpha=0.15)
    paper = {k: v for k, v in PAPER_TDMPC2.get(task, {}).items() if k <= total_env_steps}
    if paper:
        ax.plot(list(paper), list(paper.values()), "k*", ms=10, ls="none", label="TD-MPC2 paper (3 seeds)")
    ax.set_xlim(0, total_env_steps)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{algo} on {task}")
    ax.grid(alpha=0.3)
    if train or evals or paper:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
