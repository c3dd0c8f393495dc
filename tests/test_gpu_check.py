"""benchmarks/gpu_check.sh without a GPU: --dry-run prints every step within the 10-minute budget, and each
step's flags parse as the program it calls reads them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import tyro

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def dry_run(**env):
    done = subprocess.run(["bash", SCRIPT, "--dry-run"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("+ ")]


def test_dry_run_lists_the_steps_within_ten_minutes():
    steps = dry_run(OUT="/tmp/gpu_out")
    limits = [int(re.match(r"\+ \[(\d+)s\]", s).group(1)) for s in steps]
    assert sum(limits) <= 600, limits
    commands = [shlex.split(s.split("] ", 1)[1]) for s in steps]
    assert commands[0] == ["uv", "sync", "--extra", "cuda"]
    modules = [c[c.index("-m") + 1] for c in commands[1:]]
    assert modules == ["benchmarks.throughput", "benchmarks.scaling", "anakin_tdmpc.run"]
    assert all("/tmp/gpu_out" in " ".join(c) for c in commands[1:])  # everything under one folder

    from anakin_tdmpc.run import parse_args
    from benchmarks.scaling import Options
    from benchmarks.throughput import Bench

    flags = [c[c.index("-m") + 2:] for c in commands[1:]]
    bench = tyro.cli(Bench, args=flags[0], use_underscores=True)
    assert bench.models == ("5M",) and bench.num_envs == (1, 16, 64, 256) and not bench.host_baseline
    scaling = tyro.cli(Options, args=flags[1], use_underscores=True)
    assert scaling.devices == (1,) and scaling.seeds == (1, 4)
    run = parse_args(flags[2])
    assert (run.task, run.preset, run.total_timesteps, run.model_size) == ("walker-walk", "paper", 200_000, 5)


def test_python_instead_of_uv_and_bad_arguments():
    steps = dry_run(PYTHON="python3")
    assert not any("uv sync" in s for s in steps) and all(" python3 -m " in s for s in steps)
    done = subprocess.run(["bash", SCRIPT, "--fast"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: unknown argument '--fast' (only --dry-run)"
