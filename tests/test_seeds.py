"""Vmapped seeds (`--num_seeds`): S agents in one program equal S single runs (see tests/test_parallel.py
for the shared worker)."""

import numpy as np

from conftest import worker


def test_seeds_vmapped_equal_single_runs():
    out = worker("seeds", 1)
    # seed s of a 3-seed run starts from exactly the state (parameters, envs, buffer, keys) of the run --seed s
    assert out["init_equal"]
    together, alone = np.array(out["losses_together"]), np.array([np.array(r)[:, 0] for r in out["losses_alone"]])
    # batched (vmapped) matmuls round differently from unbatched ones, and training amplifies float32 noise once
    # it changes an action (then runs differ like reruns on another machine): the 80 pretraining updates agree to
    # 1e-6 and the first 32 updates with planning to < 1e-3; how far the next 32 drift depends on the machine
    # (< 1e-3 where this was written; 3.6% for one seed on a later AMD EPYC machine, the same with and without
    # the chunking of session/trainer.py), and 30-iteration chunks drifted apart by up to 8% after ~300 updates.
    # So the losses are compared up to the first chunk with planning, and the parameters after the last one.
    np.testing.assert_allclose(together[0], alone[:, 0], rtol=1e-5)
    np.testing.assert_allclose(together[1], alone[:, 1], rtol=1e-2)
    assert max(out["param_rel_diff"]) < 1e-2 < out["seed_rel_diff"], out
    assert len({round(x, 3) for x in together[0]}) == 3  # the three seeds are different runs


def test_cli_logs_every_seed_and_resumes(tmp_path, capsys):
    """`--num_seeds 2` through the CLI: per-seed columns with mean / min / max, curves, checkpoints; `--resume`
    of the finished run restores the 2-seed checkpoint and adds nothing."""
    import json

    from conftest import TINY, run_main

    run_dir = tmp_path / "run"
    argv = TINY + ["--num_seeds", "2", "--seed", "3", "--run_dir", str(run_dir)]
    assert run_main(argv) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    for key in ("eval/episode_return", "train/episode_return", "train/total_loss"):
        seeds = [last[f"{key}/seed_3"], last[f"{key}/seed_4"]]
        assert last[f"{key}/min"] == min(seeds) and last[f"{key}/max"] == max(seeds)
        assert abs(last[key] - sum(seeds) / 2) < 1e-9
    assert last["eval/episode_return/seed_3"] != last["eval/episode_return/seed_4"]
    assert (run_dir / "curves.png").exists()
    assert json.loads((run_dir / "config.json").read_text())["parallel"]["seeds"] == [3, 4]
    capsys.readouterr()
    assert run_main(argv + ["--resume"]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == rows
    # each seed of the run evaluates to about the return the run logged for it (python -m anakin_tdmpc.evaluate;
    # the same keys, a program compiled anew: float rounding can tip a planner's choice)
    from anakin_tdmpc import evaluate

    evaluate.main(["--run_dir", str(run_dir), "--episodes", "2"])
    result = json.loads((run_dir / "eval_480.json").read_text())
    for seed in ("3", "4"):
        logged = last[f"eval/episode_return/seed_{seed}"]
        assert abs(result["per_seed"][seed]["mean"] - logged) <= 0.02 * abs(logged), (seed, result, logged)
    assert "seed 4:" in capsys.readouterr().out

