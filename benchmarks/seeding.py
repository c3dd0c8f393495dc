"""Seeding rule at N = 16 envs: the default (every env finishes one random episode: 8000 agent steps) against the
rule before it (2500 agent steps summed over the envs, `--seed_steps 2500`), same seeds, eval returns side by
side at equal env steps.

    uv run python -m benchmarks.seeding                      # cartpole-swingup, seeds 1 2, 100k env steps

Each run is an ordinary run dir under --runs_dir (<rule>_<seed>); one that already holds a finished run is read,
not retrained. Writes benchmarks/results/seeding_n16.{json,md}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex

import tyro

from anakin_tdmpc.run import main as train

# the README's small CPU model at N = 16
SMALL = ("--num_envs 16 --model_size 1 --latent_dim 64 --mlp_dim 128 --enc_dim 128 --num_q 2 --num_samples 64 "
         "--num_elites 8 --num_pi_trajs 4 --iterations 3 --batch_size 64 --eval_episodes 8 --log_every 10000")
RULES = {"default": [], "old_2500": ["--seed_steps", "2500"]}


@dataclasses.dataclass
class Seeding:
    task: str = "cartpole-swingup"
    seeds: tuple[int, ...] = (1, 2)
    total_timesteps: int = 100_000
    eval_every: int = 20_000
    runs_dir: str = "runs/seeding"
    out: str = "benchmarks/results/seeding_n16"


def evals(run_dir: str) -> dict[int, float]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["env_steps"]: r["eval/episode_return"] for r in rows if "eval/episode_return" in r}


def main(opts: Seeding) -> None:
    results = {}
    for rule, extra in RULES.items():
        for seed in opts.seeds:
            run_dir = os.path.join(opts.runs_dir, f"{rule}_{seed}")
            done = os.path.exists(os.path.join(run_dir, "metrics.jsonl")) and max(evals(run_dir), default=0) >= \
                opts.total_timesteps
            if not done:
                train(["--task", opts.task, "--seed", str(seed), "--total_timesteps", str(opts.total_timesteps),
                       "--eval_every", str(opts.eval_every), "--run_dir", run_dir, *shlex.split(SMALL), *extra])
            results[f"{rule}/{seed}"] = evals(run_dir)
    steps = sorted(next(iter(results.values())))
    lines = [f"# Seeding at N = 16: {opts.task}, eval return (8 episodes) at equal env steps", "",
             "| env steps | " + " | ".join(results) + " | mean default | mean old |",
             "|---" * (len(results) + 3) + "|"]
    for step in steps:
        values = [results[k].get(step, float("nan")) for k in results]
        mean = {rule: sum(results[f"{rule}/{s}"][step] for s in opts.seeds) / len(opts.seeds) for rule in RULES}
        lines.append(f"| {step:,} | " + " | ".join(f"{v:.1f}" for v in values)
                     + f" | {mean['default']:.1f} | {mean['old_2500']:.1f} |")
    lines += ["", f"Model and planner: `{SMALL}`; default seeding = max(2500, 16 x 500) = 8000 agent steps "
              "(16k env steps) and 8000 pretraining updates; old = 2500 and 2500."]
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    with open(opts.out + ".json", "w") as f:
        json.dump({"task": opts.task, "flags": SMALL, "evals": results}, f, indent=1)
    with open(opts.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Seeding))
