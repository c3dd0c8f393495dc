"""Seeding rule at N = 16 envs: every env finishes one random episode first (`--seed_steps 8000`) against the
official single-env amount summed over the envs (`--seed_steps 2500`, the default), same seeds, eval returns
side by side at equal env steps.

    uv run python -m benchmarks.seeding                          # cartpole-swingup, seeds 1 2, 100k env steps
    uv run python -m benchmarks.seeding --task walker-walk --num_seeds 2   # both seeds vmapped in one run a rule

Each run is an ordinary run dir under --runs_dir (<task>/<rule>_<seed>[_<num_seeds>]); one that already holds a
finished run is read, not retrained. Writes benchmarks/results/seeding_n16[_<task>].{json,md} (no suffix for
cartpole-swingup).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex

import tyro

from anakin_tdmpc.run import main as train
from benchmarks.learning import eval_returns
from benchmarks.tables import seeding_table

# the small CPU model (--preset cpu-small's TD-MPC2) at N = 16
SMALL = ("--num_envs 16 --model_size 1 --latent_dim 64 --mlp_dim 128 --enc_dim 128 --num_q 2 --num_samples 64 "
         "--num_elites 8 --num_pi_trajs 4 --iterations 3 --batch_size 64 --eval_episodes 8 --log_every 10000")
RULES = {"whole_episode": ["--seed_steps", "8000"], "single_env": ["--seed_steps", "2500"]}


@dataclasses.dataclass
class Seeding:
    task: str = "cartpole-swingup"
    seeds: tuple[int, ...] = (1, 2)
    num_seeds: int = 1
    """seeds trained together, vmapped in one run (consecutive seeds; must divide the number of seeds)"""
    total_timesteps: int = 100_000
    eval_every: int = 20_000
    runs_dir: str = "runs/seeding"
    out: str = ""
    """output path without suffix (default benchmarks/results/seeding_n16[_<task>])"""


def evals(run_dir: str, seeds: tuple[int, ...]) -> dict[int, dict[int, float]]:
    """env step -> {seed: eval return} of a run dir (empty if it has none yet)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return eval_returns([json.loads(line) for line in f if line.strip()], seeds)


def main(opts: Seeding) -> None:
    if opts.num_seeds < 1 or len(opts.seeds) % opts.num_seeds:
        raise SystemExit(f"error: --num_seeds {opts.num_seeds} must divide the {len(opts.seeds)} seeds")
    out = opts.out or "benchmarks/results/seeding_n16" + ("" if opts.task == "cartpole-swingup" else f"_{opts.task}")
    results = {}
    for rule, extra in RULES.items():
        for i in range(0, len(opts.seeds), opts.num_seeds):
            group = opts.seeds[i:i + opts.num_seeds]
            name = f"{rule}_{group[0]}" + (f"_{len(group)}" if len(group) > 1 else "")
            run_dir = os.path.join(opts.runs_dir, opts.task, name)
            if max(evals(run_dir, group), default=0) < opts.total_timesteps:
                vmapped = ["--num_seeds", str(len(group))] if len(group) > 1 else []
                resume = ["--resume"] if os.path.exists(os.path.join(run_dir, "config.json")) else []
                train(["--task", opts.task, "--seed", str(group[0]), "--total_timesteps", str(opts.total_timesteps),
                       "--eval_every", str(opts.eval_every), "--checkpoint_every", str(opts.eval_every),
                       "--run_dir", run_dir, *shlex.split(SMALL), *extra,
                       *vmapped, *resume])
            per_step = evals(run_dir, group)
            for seed in group:
                results[f"{rule}/{seed}"] = {step: v[seed] for step, v in per_step.items()}
    lines = [f"# Seeding at N = 16: {opts.task}, eval return (8 episodes) at equal env steps", "",
             seeding_table(results, tuple(RULES)).rstrip("\n")]
    lines += ["", f"Model and planner: `{SMALL}`; whole_episode = 16 x 500 = 8000 agent steps (16k env steps) "
              "and 8000 pretraining updates; single_env = 2500 and 2500 (the default)."]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"task": opts.task, "flags": SMALL, "evals": results}, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Seeding, prog="python -m benchmarks.seeding", use_underscores=True))
