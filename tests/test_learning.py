"""Learning test: a small TD-MPC2 learns cartpole-balance on this CPU within a few minutes.

Measured when written (2-core CPU, seed 1): random policy ~325, this config reaches ~750 at 20k env steps
in ~3 minutes. The bar (>= 600 and >= random + 250) is far above random and leaves room for seed noise."""

import json

from conftest import random_policy_return

from anakin_tdmpc.run import main

CONFIG = ["--algo", "tdmpc2", "--task", "cartpole-balance", "--total_timesteps", "20000", "--num_envs", "8",
          "--utd", "1", "--model_size", "1", "--latent_dim", "64", "--mlp_dim", "128", "--enc_dim", "128",
          "--num_q", "2", "--num_samples", "64", "--num_elites", "8", "--num_pi_trajs", "4", "--iterations", "3",
          "--batch_size", "64", "--seed_steps", "1000", "--eval_every", "10000", "--eval_episodes", "8",
          "--log_every", "4000", "--seed", "1"]


def test_tdmpc2_learns_cartpole_balance(tmp_path):
    random_return = random_policy_return("cartpole-balance")
    assert 200 < random_return < 450  # measured ~325
    main(CONFIG + ["--run_dir", str(tmp_path / "run")])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]["eval/episode_return"]
    print(f"random {random_return:.1f} -> TD-MPC2 eval {final:.1f} at {rows[-1]['env_steps']} env steps "
          f"in {rows[-1]['time']:.0f}s")
    assert final >= 600 and final >= random_return + 250, (random_return, final)
