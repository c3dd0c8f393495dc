"""benchmarks/learning.py's bookkeeping: which runs it trains, resumes or reads, and its table against the
official curves; on synthetic run dirs (no training)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from anakin_tdmpc.run import parse_args
from benchmarks import learning


def _learn(tmp_path, **kw):
    return learning.Learn(runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "out"), **kw)


def _fake_run(run, rows, argv=None):
    os.makedirs(run.path, exist_ok=True)
    args = dataclasses.asdict(parse_args(list(argv or run.argv)))
    with open(os.path.join(run.path, "config.json"), "w") as f:
        json.dump({"args": args}, f)
    with open(os.path.join(run.path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_the_cpu_suite_is_the_issue_list(tmp_path):
    suite, runs = learning.resolve(_learn(tmp_path))
    names = [e.name for e in suite.entries]
    assert sorted(names) == sorted([f"tdmpc2__{t}" for t in (
        "walker-walk", "walker-run", "cheetah-run", "finger-spin", "cup-catch", "quadruped-walk",
        "reacher-three-easy", "cartpole-balance-sparse")] + [f"tdmpc__{t}" for t in (
            "walker-walk", "cheetah-run", "finger-spin", "cup-catch")] + [
        "tdmpc2__walker-walk__fp32planner", "tdmpc2__cheetah-run__fp32planner"])
    # training order: the float32-planning question on cheetah-run, then TD-MPC, come before the other tasks
    assert names[3:6] == ["tdmpc2__cheetah-run__fp32planner", "tdmpc__walker-walk", "tdmpc__cheetah-run"]
    assert len(runs) == 14 * 2 and {r.seeds for r in runs} == {(1,), (2,)}
    args = parse_args(list(runs[-1].argv))
    assert (args.preset, args.num_envs, args.planner_bf16, args.total_timesteps) == ("cpu-small", 8, False, 100_000)


def test_vmapped_seeds_and_filters(tmp_path):
    suite, runs = learning.resolve(_learn(tmp_path, tasks=("cheetah-run",), num_seeds=2))
    assert [r.path.rsplit("/", 1)[1] for r in runs] == ["tdmpc2__cheetah-run__s1-2",
                                                       "tdmpc2__cheetah-run__fp32planner__s1-2",
                                                       "tdmpc__cheetah-run__s1-2"]
    assert parse_args(list(runs[0].argv)).num_seeds == 2
    with pytest.raises(SystemExit, match="must divide"):
        learning.resolve(_learn(tmp_path, seeds=(1, 2, 3), num_seeds=2))
    with pytest.raises(SystemExit, match="no runs left"):
        learning.resolve(_learn(tmp_path, tasks=("humanoid-walk",)))
    _, runs = learning.resolve(_learn(tmp_path, tasks=("humanoid-walk",), algos=("tdmpc",)))
    assert [r.entry.name for r in runs] == ["tdmpc__humanoid-walk"] * 2


def test_new_resume_done_other(tmp_path):
    _, runs = learning.resolve(_learn(tmp_path, tasks=("walker-walk",), algos=("tdmpc2",), seeds=(1,)))
    run = runs[0]
    assert learning.state(run, 100_000) == "new"
    _fake_run(run, [{"env_steps": 20_000, "time": 60.0}])
    assert learning.state(run, 100_000) == "resume"
    _fake_run(run, [{"env_steps": 100_000, "time": 300.0}])
    assert learning.state(run, 100_000) == "done"
    _fake_run(run, [{"env_steps": 100_000, "time": 300.0}], argv=list(run.argv) + ["--lr", "1e-3"])
    assert learning.state(run, 100_000) == "other"


def test_main_trains_only_what_is_left(tmp_path, monkeypatch):
    learn = _learn(tmp_path, tasks=("walker-walk",), algos=("tdmpc2",), seeds=(1, 2, 3), total_timesteps=40_000)
    _, runs = learning.resolve(learn)
    _fake_run(runs[0], [{"env_steps": 40_000, "time": 100.0, "eval/episode_return": 500.0}])
    _fake_run(runs[1], [{"env_steps": 20_000, "time": 50.0, "eval/episode_return": 200.0}])
    calls = []
    monkeypatch.setattr(learning, "train", lambda run, how: calls.append((run.seeds, how)))
    learning.main(learn)
    assert calls == [((2,), "resume"), ((3,), "new")]
    assert os.path.exists(tmp_path / "out" / "learning_cpu-small.md")
    _fake_run(runs[0], [{"env_steps": 40_000, "time": 1.0}], argv=list(runs[0].argv) + ["--seed_steps", "9"])
    with pytest.raises(SystemExit, match="holds a run with other flags"):
        learning.main(learn)


def test_table_against_the_official_curve(tmp_path):
    learn = _learn(tmp_path, tasks=("walker-walk",), algos=("tdmpc2",), seeds=(1, 2), num_seeds=2)
    suite, runs = learning.resolve(learn)
    rows = [{"env_steps": 50_000, "time": 100.0, "eval/episode_return": 300.0,
             "eval/episode_return/seed_1": 200.0, "eval/episode_return/seed_2": 400.0},
            {"env_steps": 100_000, "time": 250.0, "eval/episode_return": 850.0,
             "eval/episode_return/seed_1": 800.0, "eval/episode_return/seed_2": 900.0}]
    _fake_run(runs[0], rows)
    (row,) = learning.summarise(suite, runs)
    assert [(p["env_steps"], p["mean"], p["min"], p["max"]) for p in row["points"]] == [
        (50_000, 300.0, 200.0, 400.0), (100_000, 850.0, 800.0, 900.0)]
    assert row["points"][0]["official"] is None  # not a published step
    assert row["points"][1]["official"]["low"] == 947.7 and row["points"][1]["official"]["seeds"] == 3
    assert row["seconds_per_100k"] == 250.0
    text = learning.markdown(suite, [row], "cmd")
    assert "| tdmpc2 | walker-walk | - | 300 (200–400) | **850 (800–900)** | 962 (948–971) | 4.2 |" in text  # below: bold


def test_a_run_written_before_a_new_flag_still_counts_as_the_same(tmp_path):
    _, runs = learning.resolve(_learn(tmp_path, tasks=("walker-walk",), algos=("tdmpc2",), seeds=(1,)))
    run = runs[0]
    _fake_run(run, [{"env_steps": 100_000, "time": 1.0}])
    with open(os.path.join(run.path, "config.json")) as f:
        config = json.load(f)
    del config["args"]["tensorboard"]  # as written by a version without --tensorboard
    with open(os.path.join(run.path, "config.json"), "w") as f:
        json.dump(config, f)
    assert learning.state(run, 100_000) == "done"


def test_rows_already_in_the_outputs_are_kept_when_their_runs_are_gone(tmp_path):
    """A suite continued on another machine (its earlier run dirs gone) or a few tasks at a time adds its rows
    to the table and keeps the earlier ones; a table of another budget is replaced."""
    def finish(task, value):
        learn = _learn(tmp_path, tasks=(task,), algos=("tdmpc2",), seeds=(1,), total_timesteps=20_000)
        _, runs = learning.resolve(learn)
        _fake_run(runs[0], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": value}])
        learning.main(learn)
        return runs[0]

    first = finish("walker-walk", 500.0)
    import shutil

    shutil.rmtree(first.path)  # the run dir is gone, its row stays in the outputs
    finish("cheetah-run", 300.0)
    with open(tmp_path / "out" / "learning_cpu-small.json") as f:
        table = json.load(f)["table"]
    assert [(r["task"], r["points"][0]["mean"]) for r in table] == [("walker-walk", 500.0), ("cheetah-run", 300.0)]
    finish("walker-walk", 700.0)  # a new run of a row replaces it in place
    with open(tmp_path / "out" / "learning_cpu-small.json") as f:
        table = json.load(f)["table"]
    assert [(r["task"], r["points"][0]["mean"]) for r in table] == [("walker-walk", 700.0), ("cheetah-run", 300.0)]
    md = (tmp_path / "out" / "learning_cpu-small.md").read_text()
    assert "| tdmpc2 | walker-walk | - | 700 |" in md and "| tdmpc2 | cheetah-run | - | 300 |" in md
    learn = _learn(tmp_path, tasks=("hopper-hop",), algos=("tdmpc2",), seeds=(1,), total_timesteps=40_000)
    _, runs = learning.resolve(learn)
    _fake_run(runs[0], [{"env_steps": 40_000, "time": 60.0, "eval/episode_return": 100.0}])
    learning.main(learn)
    with open(tmp_path / "out" / "learning_cpu-small.json") as f:
        assert [r["task"] for r in json.load(f)["table"]] == ["hopper-hop"]  # another budget: not merged


def test_a_row_reported_at_the_full_budget_is_not_trained_again(tmp_path, monkeypatch, capsys):
    """The suite resumed on a machine without the earlier run dirs trains only the rows its outputs lack: a
    reported row that stopped short of the budget, or lacks a seed, trains again."""
    learn = _learn(tmp_path, tasks=("walker-walk", "cheetah-run", "cup-catch"), algos=("tdmpc2",), seeds=(1, 2),
                   total_timesteps=20_000)
    _, runs = learning.resolve(learn)
    _fake_run(runs[0], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": 500.0}])  # walker s1
    _fake_run(runs[1], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": 600.0}])  # walker s2
    _fake_run(runs[2], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": 300.0}])  # cheetah s1 only
    _fake_run(runs[4], [{"env_steps": 10_000, "time": 60.0, "eval/episode_return": 100.0}])  # cup s1, short
    monkeypatch.setattr(learning, "train", lambda run, how: None)
    learning.main(learn)
    import shutil

    shutil.rmtree(tmp_path / "runs")
    calls = []
    monkeypatch.setattr(learning, "train", lambda run, how: calls.append((run.entry.task, run.seeds, how)))
    learning.main(learn)
    assert calls == [("cheetah-run", (1,), "new"), ("cheetah-run", (2,), "new"),
                     ("cup-catch", (1,), "new"), ("cup-catch", (2,), "new")]
    learning.main(dataclasses.replace(learn, dry_run=True))
    assert capsys.readouterr().out.count("[reported]") == 2  # walker-walk's two seeds


def test_a_complete_row_is_not_replaced_by_the_seeds_left_on_disk(tmp_path, monkeypatch):
    """Seeds trained one per run: with seed 1's run dir gone, the table keeps the earlier row of both seeds
    instead of a row of seed 2 alone."""
    learn = _learn(tmp_path, tasks=("walker-walk",), algos=("tdmpc2",), seeds=(1, 2), total_timesteps=20_000)
    _, runs = learning.resolve(learn)
    _fake_run(runs[0], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": 500.0}])
    _fake_run(runs[1], [{"env_steps": 20_000, "time": 60.0, "eval/episode_return": 700.0}])
    monkeypatch.setattr(learning, "train", lambda run, how: None)
    learning.main(learn)
    import shutil

    shutil.rmtree(runs[0].path)
    learning.main(learn)
    with open(tmp_path / "out" / "learning_cpu-small.json") as f:
        (row,) = json.load(f)["table"]
    assert (row["points"][-1]["seeds"], row["points"][-1]["mean"]) == ([1, 2], 600.0)
