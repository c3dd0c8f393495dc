"""Learning test: a small TD-MPC learns cartpole-balance on this CPU within a few minutes.

TD-MPC's cartpole action repeat is 8 (125 agent steps per episode), so 12,288 env steps are 1536 agent steps:
500 of random seeding, then 8 updates per iteration of 8 envs (UTD 1), with the official schedules (planning
horizon 1, std floor ~0.47 at this stage), in 3 chunks of 4096 env steps (--log_every; all the one compiled
program: a remainder chunk would compile a second). Measured (this 2-core AMD EPYC CPU, one core, seed 1): a
random policy scores ~270 at action repeat 8 (dm_control's cartpole, 8 episodes); this config's eval at the end
reads 977, after 33 s of training, plus ~80 s compiling the chunk and ~30 s starting up: under 2.5 minutes wall
for the whole test. The bar (>= 600 and >= random + 250) is far above random and leaves room for seed noise."""

import json

from conftest import random_policy_return, train_optimized

CONFIG = ["--algo", "tdmpc", "--task", "cartpole-balance", "--total_timesteps", "12288", "--num_envs", "8",
          "--utd", "1", "--latent_dim", "50", "--mlp_dim", "128", "--enc_dim", "128", "--num_samples", "67",
          "--num_elites", "8", "--iterations", "3", "--batch_size", "64", "--seed_steps", "500",
          "--eval_every", "12288", "--eval_episodes", "8", "--log_every", "4096", "--seed", "1"]


def test_tdmpc_learns_cartpole_balance(tmp_path):
    random_return = random_policy_return("cartpole-balance", action_repeat=8)
    assert 100 < random_return < 450
    rows = train_optimized(CONFIG, tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["env"]["action_repeat"] == 8 and config["algo_config"]["horizon"] == 5
    final = rows[-1]["eval/episode_return"]
    print(f"random {random_return:.1f} -> TD-MPC eval {final:.1f} at {rows[-1]['env_steps']} env steps "
          f"in {rows[-1]['time']:.0f}s")
    assert final >= 600 and final >= random_return + 250, (random_return, final)
