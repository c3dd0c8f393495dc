"""`<run_dir>/curves.png`: train and eval return vs env steps, with the official published curve of the same
algorithm on the same task behind them (mean and seed range; anakin_tdmpc/reference.py).

Redrawn (matplotlib, Agg backend, written atomically) at each evaluation and at the end of a run.
"""

from __future__ import annotations

import os

from anakin_tdmpc import reference


def plot_curves(path: str, rows: list[dict], task: str, algo: str, total_env_steps: int) -> None:
    """Draw the learning curves of `rows` (metrics.jsonl rows) to `path`."""
    fig = curves_figure(rows, task, algo, total_env_steps)
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)


def curves_figure(rows: list[dict], task: str, algo: str, total_env_steps: int):
    """The matplotlib Figure of plot_curves."""
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
    official = reference.band(algo, task, total_env_steps)
    if official is not None:
        steps, mean, low, high = official
        ax.plot(steps, mean, color="black", lw=1.2, ls="--", marker="*", ms=7,
                label=f"official {reference.NAMES[algo]} ({len(reference.curve(algo, task))} seeds)")
        ax.fill_between(steps, low, high, color="black", alpha=0.08)
    ax.set_xlim(0, total_env_steps)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{algo} on {task}")
    ax.grid(alpha=0.3)
    if train or evals or official is not None:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
