"""Learning test on brax's inverted pendulum (MJX, episodic: the episode ends when the pole leaves +-0.2 rad),
at 200-step episodes, under `-m slow` (about 5 minutes on one core). CI's learning test of the episodic pieces
runs on the falling point (tests/test_episodic.py: no MuJoCo, compiles in a minute)."""

import numpy as np
import pytest
from conftest import train_optimized

SMALL = ["--algo", "tdmpc2", "--model_size", "1", "--latent_dim", "64", "--mlp_dim", "128", "--enc_dim", "128",
         "--num_q", "2", "--num_samples", "64", "--num_elites", "8", "--num_pi_trajs", "4", "--iterations", "3",
         "--batch_size", "64", "--num_envs", "8", "--eval_episodes", "8", "--seed", "1"]


@pytest.mark.slow
def test_tdmpc2_learns_brax_inverted_pendulum(tmp_path):
    rows = train_optimized(SMALL + ["--task", "brax/inverted_pendulum", "--episode_length", "200",
                                    "--total_timesteps", "12000", "--seed_steps", "1000", "--eval_every", "4000",
                                    "--log_every", "4000"], tmp_path / "run")
    final = rows[-1]["eval/episode_return"]
    print(f"TD-MPC2 eval {final:.1f} of 200 at {rows[-1]['env_steps']} env steps")
    assert final >= 150, final  # measured 172.5; a random policy lasts ~5 steps
    assert np.isfinite(rows[-1]["train/termination_loss"])
