"""`python -m anakin_tdmpc.plot` on synthetic run dirs (numbers by hand); a real run is plotted in
test_run_outputs.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anakin_tdmpc import plot


def fake_run(path, task, algo, seeds, evals, **args):
    """A run dir whose metrics.jsonl holds `evals`: env step -> one eval return per seed."""
    path.mkdir(parents=True)
    config = {"task": task, "args": {"task": task, "algo": algo, "seed": seeds[0], "lr": None, **args},
              "parallel": {"seeds": list(seeds)}}
    (path / "config.json").write_text(json.dumps(config))
    rows = []
    for step, values in evals.items():
        row = {"env_steps": step, "eval/episode_return": float(np.mean(values))}
        if len(seeds) > 1:
            row.update({f"eval/episode_return/seed_{s}": v for s, v in zip(seeds, values)})
        rows.append(row)
        rows.append({"env_steps": step + 10})  # a row without an evaluation
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_groups_seeds_of_several_runs_and_tables_them(tmp_path, capsys):
    fake_run(tmp_path / "a", "walker-walk", "tdmpc2", [1, 2], {50_000: [100, 300], 100_000: [800, 900]})
    fake_run(tmp_path / "b", "walker-walk", "tdmpc2", [3], {50_000: [200], 100_000: [850]})
    fake_run(tmp_path / "c", "walker-walk", "tdmpc2", [1], {40_000: [400], 100_000: [500]}, lr=0.001)
    groups = plot.group_runs([str(tmp_path / n) for n in "abc"], group_by=("lr",))
    assert sorted(groups) == [("walker-walk", "tdmpc2", "lr=0.001"), ("walker-walk", "tdmpc2", "lr=None")]
    curves = groups[("walker-walk", "tdmpc2", "lr=None")]
    assert plot.values_at(curves, 100_000) == [800, 900, 850]
    assert plot.values_at(groups[("walker-walk", "tdmpc2", "lr=0.001")], 70_000) == [450]  # read off the line
    mean, low, high = plot.mean_interval([800, 900, 850])
    assert mean == 850 and 800 <= low < 850 < high <= 900
    text = plot.main([str(tmp_path), "--group_by", "lr", "--out", str(tmp_path / "p.png"), "--at", "50000", "100000"])
    assert "| walker-walk | tdmpc2 | lr=None | 3 | 200 [" in text
    assert "| walker-walk | tdmpc2 | lr=0.001 | 1 | 417 | 500 | 962 (948–971) |" in text  # 400 + 100 x 10k / 60k
    assert (tmp_path / "p.png").stat().st_size > 0
    assert "wrote" in capsys.readouterr().out


def test_aggregate_iqm_over_tasks(tmp_path):
    fake_run(tmp_path / "w", "walker-walk", "tdmpc2", [1, 2], {100_000: [1000, 0]})
    fake_run(tmp_path / "c", "cheetah-run", "tdmpc2", [1, 2], {100_000: [500, 250]})
    groups = plot.group_runs([str(tmp_path)])
    # IQM of {1.0, 0.0, 0.5, 0.25}: the middle half {0.25, 0.5} -> 0.375
    iqm, low, high = plot.iqm_interval([plot.values_at(c, 100_000) for c in plot._aggregate_groups(groups)["tdmpc2"]])
    assert iqm == pytest.approx(0.375) and 0 <= low <= iqm <= high <= 1
    assert plot.iqm_interval([[1000, 0], [500, 250]]) == (iqm, low, high)  # the same draws every time
    text = plot.table(groups, [100_000])
    assert "| IQM tdmpc2 | 0.375 [" in text


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent"], "no run dir /nonexistent"),
    (["--at", "x", "RUN"], "--at expects an integer"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("RUN", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as e:
        plot.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err


def test_an_empty_folder_and_a_flag_that_is_not_there(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path)])
    assert "holds no run" in capsys.readouterr().err
    fake_run(tmp_path / "a", "walker-walk", "tdmpc2", [1], {100: [1.0]})
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path), "--group_by", "colour"])
    assert "--group_by colour: not a flag" in capsys.readouterr().err


def test_help_names_the_run_dirs_and_each_default_once(capsys):
    with pytest.raises(SystemExit) as stop:
        plot.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "usage: python -m anakin_tdmpc.plot" in text and "RUN_DIR..." in text
    assert "[[STR" not in text and "(default: )" not in text


def test_no_run_dir_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        plot.main([])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == "error: give at least one run dir (see --help)"
