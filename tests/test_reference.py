"""The official published curves (anakin_tdmpc/reference_results) and their lookup."""

from __future__ import annotations

import os

import pytest

from anakin_tdmpc import reference
from anakin_tdmpc.envs import TASK_SOURCES


def test_every_paper_task_has_every_algorithm():
    for algo in reference.ALGOS:
        files = sorted(os.listdir(os.path.join(reference.DATA_DIR, algo)))
        assert len(files) == 39, algo
        for name in files:
            assert name[:-4] in TASK_SOURCES, name  # every curve is one of our tasks


def test_lookup_by_hand():
    # tdmpc2/walker-walk.csv at 100k: seeds 1, 2, 3 score 966.7, 947.7, 971.3
    point = reference.at("tdmpc2", "walker-walk", 100_000)
    assert point.seeds == 3
    assert point.mean == pytest.approx((966.7 + 947.7 + 971.3) / 3)
    assert (point.low, point.high) == (947.7, 971.3)
    # between published points only on request: halfway between 0 (27.9, 24.8, 31.4) and 100k
    assert reference.at("tdmpc2", "walker-walk", 50_000) is None
    half = reference.at("tdmpc2", "walker-walk", 50_000, interpolate=True)
    assert half.mean == pytest.approx(((27.9 + 966.7) + (24.8 + 947.7) + (31.4 + 971.3)) / 6)


def test_no_curve_is_none():
    assert reference.curve("tdmpc2", "point_mass-easy") is None  # ours, not one of the paper's 39
    assert reference.at("tdmpc2", "point_mass-easy", 100_000) is None
    assert reference.at("ppo", "walker-walk", 100_000) is None
    assert reference.at("tdmpc2", "walker-walk", 10**9) is None  # past the last point


def test_band_stops_at_the_asked_step():
    steps, mean, low, high = reference.band("tdmpc", "cheetah-run", 200_000)
    assert list(steps) == [0, 100_000, 200_000]
    assert (low <= mean).all() and (mean <= high).all()


def test_curves_png_draws_the_official_curve_of_the_runs_algorithm():
    from anakin_tdmpc.session.curves import curves_figure

    rows = [{"env_steps": 100_000, "eval/episode_return": 500.0, "train/episode_return": 400.0}]
    for algo, name in (("tdmpc2", "TD-MPC2"), ("tdmpc", "TD-MPC")):
        ax = curves_figure(rows, "cheetah-run", algo, 300_000).axes[0]
        (official,) = [line for line in ax.get_lines() if line.get_label().startswith("official")]
        assert official.get_label() == f"official {name} (3 seeds)"
        steps, mean, _, _ = reference.band(algo, "cheetah-run", 300_000)
        assert list(official.get_xdata()) == [0, 100_000, 200_000, 300_000] == list(steps)
        assert list(official.get_ydata()) == list(mean)
    ax = curves_figure(rows, "point_mass-easy", "tdmpc2", 300_000).axes[0]  # no published curve: none drawn
    assert not [line for line in ax.get_lines() if line.get_label().startswith("official")]
