"""Learning suite: train a list of (algorithm, task, variant) x seeds and put our eval returns next to the
official published curves at the same env steps.

    uv run python -m benchmarks.learning                      # the CPU suite (--suite cpu), preset cpu-small
    uv run python -m benchmarks.learning --suite paper        # TD-MPC2, 5M model, the 39 tasks, 1M env steps
    uv run python -m benchmarks.learning --tasks walker-walk --algos tdmpc2 --seeds 1 --dry_run

Every run is an ordinary run dir, <runs_dir>/<preset>/<algo>__<task>[__<variant>]__s<seeds>: a finished run
with the same flags is read, not retrained, and so is a row the outputs already hold at the full budget for
every seed when its run dirs are gone (delete the outputs, or choose another --tag, to train it again); an unfinished one continues with --resume (a suite cut short
continues where it stopped); a dir holding other flags stops the suite with one line. Runs go one at a
time, each in its own `python -m anakin_tdmpc.run` process (Ctrl-C or SIGTERM stops it at a checkpoint and
stops the suite). With --num_seeds S, seeds train S at a time vmapped in one run.

Outputs: benchmarks/results/learning_<tag>.{json,md,png} (tag: the preset unless --tag), written after every
run, so finished rows are there while the suite goes on; rows already in those outputs (same preset, seeds,
budget, eval period) that this invocation has no evals for are kept, so a suite continued on another machine or
run a few tasks at a time adds its rows to the table. The official numbers come from
anakin_tdmpc/reference_results (published every 100k env steps): the table shows them at the eval points that
fall on a published step, the figure draws the published points with their seed range.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from typing import Optional

import numpy as np
import tyro

from anakin_tdmpc import reference
from benchmarks import commit
from benchmarks.tables import learning_table


@dataclasses.dataclass(frozen=True)
class Entry:
    """One line of a suite: an algorithm on a task, optionally a named variant with extra flags."""

    algo: str
    task: str
    variant: str = ""
    flags: str = ""

    @property
    def name(self) -> str:
        return f"{self.algo}__{self.task}" + (f"__{self.variant}" if self.variant else "")


@dataclasses.dataclass(frozen=True)
class Suite:
    entries: tuple[Entry, ...]
    preset: str
    seeds: tuple[int, ...]
    total_timesteps: int
    eval_every: int


_CPU_TDMPC2 = ("walker-walk", "walker-run", "cheetah-run", "finger-spin", "cup-catch", "quadruped-walk",
               "reacher-three-easy", "cartpole-balance-sparse")
_CPU_TDMPC = ("walker-walk", "cheetah-run", "finger-spin", "cup-catch")
_PAPER_TASKS = tuple(sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(reference.DATA_DIR, "tdmpc2"))))

SUITES = {
    # the CPU suite: a small model for 100k env steps; float32 planning beside the default bf16 on two tasks.
    # Evaluations every 20k env steps: a multiple of every run's env steps per iteration (8 envs x action
    # repeat 2 or 4), so they fall exactly on 20k, 40k, ... 100k, the last on a published point.
    # Training order: the three hardest-to-match TD-MPC2 rows, then the rows that answer a question (float32
    # planning on cheetah-run, TD-MPC beside TD-MPC2), then the rest; the tables list the same order.
    "cpu": Suite(
        entries=tuple(Entry("tdmpc2", t) for t in _CPU_TDMPC2[:3])
        + (Entry("tdmpc2", "cheetah-run", "fp32planner", "--no_planner_bf16"),)
        + tuple(Entry("tdmpc", t) for t in _CPU_TDMPC[:2])
        + tuple(Entry("tdmpc2", t) for t in _CPU_TDMPC2[3:])
        + tuple(Entry("tdmpc", t) for t in _CPU_TDMPC[2:])
        + (Entry("tdmpc2", "walker-walk", "fp32planner", "--no_planner_bf16"),),
        preset="cpu-small", seeds=(1, 2), total_timesteps=100_000, eval_every=20_000),
    # the paper's setting: TD-MPC2's 5M model on the 39 tasks, 3 seeds, 1M env steps (an accelerator's job)
    "paper": Suite(entries=tuple(Entry("tdmpc2", t) for t in _PAPER_TASKS), preset="paper", seeds=(1, 2, 3),
                   total_timesteps=1_000_000, eval_every=100_000),
}


@dataclasses.dataclass
class Learn:
    """Train a learning suite and compare its eval returns with the official published curves."""

    suite: str = "cpu"
    """named suite: cpu (TD-MPC2 on 8 tasks, TD-MPC on 4, float32 planning on 2; cpu-small, 100k env steps,
    seeds 1-2) or paper (TD-MPC2 on the 39 tasks, 5M model, 1M env steps, seeds 1-3)"""
    tasks: Optional[tuple[str, ...]] = None
    """keep only these tasks of the suite, or with --algos a new list: these tasks for those algorithms"""
    algos: Optional[tuple[str, ...]] = None
    """keep only these algorithms of the suite (with --tasks: train these algorithms on those tasks)"""
    preset: Optional[str] = None
    """--preset of every run (default: the suite's)"""
    seeds: Optional[tuple[int, ...]] = None
    """seeds (default: the suite's)"""
    num_seeds: int = 1
    """seeds trained together, vmapped in one run (consecutive seeds; must divide the number of seeds)"""
    total_timesteps: Optional[int] = None
    """env steps per run (default: the suite's)"""
    eval_every: Optional[int] = None
    """env steps between evaluations (default: the suite's)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    flags: str = ""
    """extra flags for every run, e.g. --flags="--num_envs 16" """
    runs_dir: str = "runs/learning"
    """parent folder of the run dirs"""
    out_dir: str = "benchmarks/results"
    """folder for learning_<tag>.{json,md,png}"""
    tag: Optional[str] = None
    """suffix of the output files (default: the preset)"""
    dry_run: bool = False
    """print each run's command and whether it would train, resume or be read; train nothing"""
    report_only: bool = False
    """write the outputs from the runs already there; train nothing"""


@dataclasses.dataclass(frozen=True)
class Run:
    entry: Entry
    seeds: tuple[int, ...]
    path: str
    argv: tuple[str, ...]


def resolve(learn: Learn) -> tuple[Suite, list[Run]]:
    """The suite after the command line's filters and overrides, and its runs in training order."""
    if learn.suite not in SUITES:
        raise SystemExit(f"error: unknown --suite '{learn.suite}'; valid: {', '.join(SUITES)}")
    suite = SUITES[learn.suite]
    entries = suite.entries
    if learn.tasks and learn.algos:
        entries = tuple(Entry(a, t) for a in learn.algos for t in learn.tasks)
    elif learn.tasks:
        entries = tuple(e for e in entries if e.task in learn.tasks)
    elif learn.algos:
        entries = tuple(e for e in entries if e.algo in learn.algos)
    suite = Suite(entries, learn.preset or suite.preset, learn.seeds or suite.seeds,
                  learn.total_timesteps or suite.total_timesteps, learn.eval_every or suite.eval_every)
    if not suite.entries:
        raise SystemExit("error: no runs left after --tasks / --algos")
    if learn.num_seeds < 1 or len(suite.seeds) % learn.num_seeds:
        raise SystemExit(f"error: --num_seeds {learn.num_seeds} must divide the {len(suite.seeds)} seeds")
    runs = []
    for entry in suite.entries:
        for i in range(0, len(suite.seeds), learn.num_seeds):
            group = suite.seeds[i:i + learn.num_seeds]
            if list(group) != list(range(group[0], group[0] + len(group))):
                raise SystemExit(f"error: vmapped seeds must be consecutive, got {group}")
            label = f"s{group[0]}" + (f"-{group[-1]}" if len(group) > 1 else "")
            path = os.path.join(learn.runs_dir, suite.preset, f"{entry.name}__{label}")
            argv = ["--algo", entry.algo, "--task", entry.task, "--preset", suite.preset, "--seed", str(group[0]),
                    "--num_seeds", str(len(group)), "--total_timesteps", str(suite.total_timesteps),
                    "--eval_every", str(suite.eval_every), "--log_every", str(suite.eval_every),
                    "--checkpoint_every", str(suite.eval_every),
                    "--eval_episodes", str(learn.eval_episodes), "--run_dir", path]
            argv += shlex.split(entry.flags) + shlex.split(learn.flags)
            runs.append(Run(entry, group, path, tuple(argv)))
    return suite, runs


# ------------------------------------------------------------------------------------------- runs


def read_rows(path: str) -> list[dict]:
    try:
        with open(os.path.join(path, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def state(run: Run, total: int) -> str:
    """"done" (the same run, finished), "resume" (the same run, unfinished), "new" (nothing there yet), or
    "other" (the dir holds a run with other flags)."""
    config_path = os.path.join(run.path, "config.json")
    if not os.path.exists(config_path):
        return "new"
    from anakin_tdmpc.run import parse_args

    try:
        with open(config_path) as f:
            saved = json.load(f)["args"]
    except (OSError, ValueError, KeyError):
        return "other"
    from anakin_tdmpc.config import Args
    from anakin_tdmpc.session.checkpoint import config_differences

    # the resume rule: a flag added to the code since the run was written counts as the same at its default
    if config_differences(saved, dataclasses.asdict(parse_args(list(run.argv))), dataclasses.asdict(Args())):
        return "other"
    rows = read_rows(run.path)
    return "done" if rows and rows[-1].get("env_steps", 0) >= total else "resume"


def train(run: Run, how: str) -> None:
    """One run in its own process; a stop signal to the suite reaches it, and it saves a checkpoint."""
    argv = [sys.executable, "-m", "anakin_tdmpc.run", *run.argv] + (["--resume"] if how == "resume" else [])
    print(("resuming: " if how == "resume" else "") + shlex.join(argv[1:]), flush=True)
    child = subprocess.Popen(argv)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        raise SystemExit(f"error: {run.path} stopped with exit code {code}; the suite stops here (run it again to "
                         "continue from the run's last checkpoint)")


# ---------------------------------------------------------------------------------------- summary


def eval_returns(rows: list[dict], seeds: tuple[int, ...]) -> dict[int, dict[int, float]]:
    """env step -> {seed: eval return} of one run dir's rows (a vmapped run has a column per seed)."""
    out = {}
    for row in rows:
        if row.get("eval/episode_return") is None:
            continue
        if len(seeds) == 1:
            out[row["env_steps"]] = {seeds[0]: row["eval/episode_return"]}
        else:
            out[row["env_steps"]] = {s: row[f"eval/episode_return/seed_{s}"] for s in seeds}
    return out


def summarise(suite: Suite, runs: list[Run]) -> list[dict]:
    """Per entry: our mean / min / max over seeds at each eval step, the official numbers at that step where
    published, and training wall-clock per 100k env steps (compilation excluded, evaluations included)."""
    table = []
    for entry in suite.entries:
        mine = [r for r in runs if r.entry == entry]
        per_step: dict[int, dict[int, float]] = {}
        walls = []
        for run in mine:
            rows = read_rows(run.path)
            for step, values in eval_returns(rows, run.seeds).items():
                per_step.setdefault(step, {}).update(values)
            if rows and rows[-1]["env_steps"] > 0:
                walls.append(1e5 * rows[-1]["time"] / rows[-1]["env_steps"])
        points = []
        for step in sorted(per_step):
            values = list(per_step[step].values())
            official = reference.at(entry.algo, entry.task, step)
            points.append({"env_steps": step, "seeds": sorted(per_step[step]),
                           "values": [per_step[step][s] for s in sorted(per_step[step])],
                           "mean": float(np.mean(values)),
                           "min": float(np.min(values)), "max": float(np.max(values)),
                           "official": dataclasses.asdict(official) if official else None})
        table.append({"algo": entry.algo, "task": entry.task, "variant": entry.variant, "flags": entry.flags,
                      "commit": commit(), "points": points,
                      "seconds_per_100k": float(np.mean(walls)) if walls else None})
    return table


def markdown(suite: Suite, table: list[dict], command: str) -> str:
    text = learning_table(table, lambda r: f"{r['algo']} | {r['task']} | {r['variant'] or '-'}",
                          ("algo", "task", "variant"))
    return text + (
        f"\nEval return (mean over {len(suite.seeds)} seeds, range in brackets; each seed's number is the mean "
        f"of its eval episodes) at each eval point; official: the published curve of the same algorithm (mean, "
        f"seed range) at 100k env steps; **bold**: below the official seed range at 100k. "
        f"--preset {suite.preset}, {suite.total_timesteps:,} env steps. "
        f"min / 100k: training wall-clock per 100k env steps (compilation excluded, evaluations included), "
        f"{machine()}.\n\n`{command}`\n")


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    return f"{jax.default_backend()} ({jax.devices()[0].device_kind}), {os.cpu_count()} cores, {cpu}"


def _key(row: dict) -> tuple[str, str, str]:
    return row["algo"], row["task"], row["variant"]


def _previous(stem: str, suite: Suite) -> list[dict]:
    """The rows of the outputs already at ``stem``.json when they are of the same preset, seeds, budget and
    eval period, else none."""
    try:
        with open(stem + ".json") as f:
            previous = json.load(f)
    except (OSError, ValueError):
        return []
    same = (previous.get("preset"), previous.get("seeds"), previous.get("total_timesteps"),
            previous.get("eval_every")) == (suite.preset, list(suite.seeds), suite.total_timesteps, suite.eval_every)
    return previous.get("table", []) if same else []


def _complete(row: dict, suite: Suite) -> bool:
    """The row has an eval at the full budget from every seed of the suite."""
    return any(p["env_steps"] >= suite.total_timesteps and p["seeds"] == sorted(suite.seeds) for p in row["points"])


def reported(stem: str, suite: Suite) -> set[tuple[str, str, str]]:
    """(algo, task, variant) of the rows in the outputs at ``stem`` that finished (:func:`_complete`)."""
    return {_key(row) for row in _previous(stem, suite) if _complete(row, suite)}


def merge_previous(stem: str, suite: Suite, table: list[dict]) -> list[dict]:
    """``table`` with the rows of the outputs already at ``stem``.json that it has no eval points for (a row
    finished earlier whose run dirs are gone, e.g. on another machine, or one left out by --tasks / --algos),
    when those outputs are of the same preset, seeds, budget and eval period; the earlier rows keep their
    order, rows new to the file come after them."""
    previous = _previous(stem, suite)
    if not previous:
        return table
    fresh = {_key(row): row for row in table if row["points"]}
    merged = []
    for row in previous:
        new = fresh.get(_key(row))
        # the fresh row replaces the earlier one, unless only the earlier one is complete (some of its seeds'
        # run dirs are gone: the fresh row holds the other seeds alone)
        keep_earlier = new is None or (_complete(row, suite) and not _complete(new, suite))
        merged.append(row if keep_earlier else new)
    known = {_key(row) for row in merged}
    return merged + [row for row in table if _key(row) not in known]


def _stem(learn: Learn, suite: Suite) -> str:
    return os.path.join(learn.out_dir, f"learning_{learn.tag or suite.preset}")


def write_outputs(learn: Learn, suite: Suite, runs: list[Run], command: str) -> str:
    stem = _stem(learn, suite)
    table = merge_previous(stem, suite, summarise(suite, runs))
    os.makedirs(learn.out_dir, exist_ok=True)
    text = markdown(suite, table, command)
    with open(stem + ".json", "w") as f:
        json.dump({"suite": learn.suite, "preset": suite.preset, "seeds": list(suite.seeds),
                   "total_timesteps": suite.total_timesteps, "eval_every": suite.eval_every,
                   "machine": machine(), "command": command, "extra_flags": learn.flags, "table": table}, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(text)
    from benchmarks.report import learning_figure

    learning_figure(table, stem + ".png")
    return text


def main(learn: Learn, command: str = "python -m benchmarks.learning") -> list[dict]:
    suite, runs = resolve(learn)
    finished = reported(_stem(learn, suite), suite)
    for run in runs:
        how = state(run, suite.total_timesteps)
        if how == "new" and _key(dataclasses.asdict(run.entry)) in finished:
            how = "reported"  # finished earlier, its run dir gone (e.g. another machine): its row is kept
        if how == "other":
            raise SystemExit(f"error: {run.path} holds a run with other flags; delete it or choose another "
                             "--runs_dir")
        if learn.dry_run:
            print(f"[{how}] python -m anakin_tdmpc.run " + shlex.join(run.argv)
                  + (" --resume" if how == "resume" else ""))
            continue
        if learn.report_only or how in ("done", "reported"):
            continue
        train(run, how)
        write_outputs(learn, suite, runs, command)
    if learn.dry_run:
        return []
    text = write_outputs(learn, suite, runs, command)
    print("\n" + text)
    return summarise(suite, runs)


if __name__ == "__main__":
    main(tyro.cli(Learn, prog="python -m benchmarks.learning", use_underscores=True),
         "python -m benchmarks.learning " + shlex.join(sys.argv[1:]))
