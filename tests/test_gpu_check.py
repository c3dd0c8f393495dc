"""The prepared GPU call without a GPU: benchmarks/gpu_check.sh --dry-run prints every step within the call's
budget and each step's flags parse as the program it calls reads them; the carried wheels are uv.lock's
versions; benchmarks/gpu_predict.py predicts the same table and counts kernels right; docs/gpu.md shows the
prediction the script wrote."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib

import tyro

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def dry_run(**env):
    done = subprocess.run(["bash", SCRIPT, "--dry-run"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("+ ")]


def commands(steps):
    return [shlex.split(s.split("] ", 1)[1]) for s in steps]


def test_dry_run_lists_the_steps_within_nine_minutes():
    steps = dry_run(WORK="/tmp/gpu_work", SITE="/tmp/gpu_site")
    limits = [int(re.match(r"\+ \[(\d+)s\]", s).group(1)) for s in steps]
    assert sum(limits) <= 540, limits
    cmds = commands(steps)
    assert all(c[0] == "python3" and c[1] == "-m" for c in cmds)
    assert [c[2] for c in cmds] == ["pip", "benchmarks.throughput", "benchmarks.throughput", "anakin_tdmpc.run"]
    # the wheels install as the device tool's notes say: nothing resolved, nothing fetched
    pip = cmds[0]
    assert pip[3:5] == ["install", "-q"] and {"--no-index", "--no-deps", "--upgrade"} <= set(pip)
    assert pip[pip.index("--target") + 1] == "/tmp/gpu_site" and all(a.startswith(".whl/") for a in pip[12:])
    assert all("/tmp/gpu_work" in " ".join(c) for c in cmds[1:])  # everything under one folder

    from anakin_tdmpc.run import parse_args
    from benchmarks.gpu_predict import ROWS
    from benchmarks.throughput import Bench

    benches = [tyro.cli(Bench, args=c[3:], use_underscores=True) for c in cmds[1:3]]
    assert not any(b.host_baseline for b in benches)
    table = [(m, n) for b in benches for m in b.models for n in b.num_envs]
    assert table == [("5M", 1), ("5M", 16), ("5M", 64), ("5M", 256), ("1M", 1024), ("1M", 4096)] == list(ROWS)
    run = parse_args(cmds[3][3:])
    assert (run.task, run.preset, run.algo, run.model_size, run.num_envs) == ("walker-walk", "paper", "tdmpc2", 5, 16)
    assert run.eval_every < run.total_timesteps


def test_python_of_choice_and_bad_arguments():
    steps = dry_run(PYTHON="/opt/py/bin/python3.12")
    assert all(" /opt/py/bin/python3.12 -m " in s for s in steps)
    done = subprocess.run(["bash", SCRIPT, "--fast"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: unknown argument '--fast' (only --dry-run)"


def test_carried_wheels_are_the_locked_versions():
    text = open(os.path.join(ROOT, "benchmarks", "gpu_wheels.sh")).read()
    pins = dict(re.findall(r"^\s+([a-z][a-z0-9\-]*)==([\w.]+)\s", text.split("WHEELS=(")[1].split("\n)")[0], re.M))
    assert {"mujoco", "mujoco-mjx", "playground", "brax", "tyro"} <= set(pins)
    lock = {p["name"]: p["version"] for p in tomllib.load(open(os.path.join(ROOT, "uv.lock"), "rb"))["package"]}
    assert {name: lock.get(name) for name in pins} == pins


def test_kernel_count_of_a_loop():
    import jax
    import jax.numpy as jnp

    from benchmarks.gpu_predict import hlo_kernels

    def f(x, n):
        return jax.lax.fori_loop(0, n, lambda i, x: jnp.tanh(x @ x) + jnp.sum(x), x)

    text = jax.jit(f).lower(jnp.ones((8, 8)), 3).compile().as_text()
    counts = hlo_kernels(text)
    # the loop body's matmul, reduction, tanh + add and counter, and the condition, each once; no fusion body
    # (whose instructions run inside their fusion's kernel) counted on its own
    assert 3 <= counts["fusions"] <= 8, counts
    assert not {"parameter", "tuple", "while", "get-tuple-element"} & set(counts["ops"])


def test_docs_show_the_written_prediction():
    table = open(os.path.join(ROOT, "benchmarks", "results", "gpu", "prediction.md")).read()
    docs = open(os.path.join(ROOT, "docs", "gpu.md")).read()
    rows = [line for line in table.splitlines() if line.startswith("| 5M") or line.startswith("| 1M")]
    assert rows and all(row in docs for row in rows)
