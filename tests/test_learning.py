"""Learning test: a small TD-MPC2 learns cartpole-balance on this CPU within a few minutes.

Measured on dm_control's cartpole (RK4, reward after the step; 2-core CPU, one core, seed 1): a random policy
scores ~321; this config's evals of 8 episodes read 345, 393, 494, 445, 622 at 4k ... 20k env steps and 862 at
30k, after ~3 minutes of training plus ~70 s compiling the chunk. The bar (>= 700 and >= random + 250) is far
above random and leaves room for seed noise (20k env steps left it 22 points above a bar of 600)."""

import json

from conftest import random_policy_return

from anakin_tdmpc.run import main

CONFIG = ["--algo", "tdmpc2", "--task", "cartpole-balance", "--total_timesteps", "30000", "--num_envs", "8",
          "--utd", "1", "--model_size", "1", "--latent_dim", "64", "--mlp_dim", "128", "--enc_dim", "128",
          "--num_q", "2", "--num_samples", "64", "--num_elites", "8", "--num_pi_trajs", "4", "--iterations", "3",
          "--batch_size", "64", "--seed_steps", "1000", "--eval_every", "15000", "--eval_episodes", "8",
          "--log_every", "4000", "--seed", "1"]


def test_tdmpc2_learns_cartpole_balance(tmp_path):
    random_return = random_policy_return("cartpole-balance")
    assert 200 < random_return < 450  # measured ~321
    main(CONFIG + ["--run_dir", str(tmp_path / "run")])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]["eval/episode_return"]
    print(f"random {random_return:.1f} -> TD-MPC2 eval {final:.1f} at {rows[-1]['env_steps']} env steps "
          f"in {rows[-1]['time']:.0f}s")
    assert final >= 700 and final >= random_return + 250, (random_return, final)
