"""Flag resolution (anakin_tdmpc/config.py): per-domain defaults of TD-MPC as its official configs set them,
and the seeding rule for N parallel envs."""

from __future__ import annotations

import pytest

from anakin_tdmpc import config
from anakin_tdmpc.config import Args

# one task per domain -> TD-MPC's (action_repeat, iterations, latent_dim, batch_size, lr): the official
# cfgs/tasks/{domain}.yaml over cfgs/default.yaml (iterations 6, latent 50, batch 512, lr 1e-3, repeat 4),
# finger's repeat 2 from the paper
TDMPC_BY_DOMAIN = {
    "acrobot-swingup": (4, 6, 50, 512, 1e-3),
    "cartpole-swingup": (8, 6, 50, 512, 1e-3),
    "cheetah-run": (4, 6, 50, 512, 1e-3),
    "cup-catch": (4, 6, 50, 512, 1e-3),
    "dog-run": (2, 8, 100, 2048, 3e-4),
    "finger-spin": (2, 6, 50, 512, 1e-3),
    "fish-swim": (4, 6, 50, 512, 1e-3),
    "hopper-hop": (4, 6, 50, 512, 1e-3),
    "humanoid-walk": (2, 12, 100, 512, 1e-3),
    "pendulum-swingup": (4, 6, 50, 512, 1e-3),
    "point_mass-easy": (4, 6, 50, 512, 1e-3),
    "quadruped-run": (4, 6, 50, 512, 1e-3),
    "reacher-hard": (4, 6, 50, 512, 1e-3),
    "swimmer-swimmer6": (4, 6, 50, 512, 1e-3),
    "walker-walk": (2, 6, 50, 512, 1e-3),
}


def _tdmpc(task, **flags):
    args = config.resolve_args(Args(algo="tdmpc", task=task, **flags))
    cfg = config.agent_config(args)
    return args.action_repeat, cfg.iterations, cfg.latent_dim, cfg.batch_size, cfg.lr


@pytest.mark.parametrize("task", sorted(TDMPC_BY_DOMAIN))
def test_tdmpc_resolves_the_official_per_domain_settings(task):
    assert _tdmpc(task) == TDMPC_BY_DOMAIN[task]
    assert _tdmpc(f"dm_control/{task}-v0") == TDMPC_BY_DOMAIN[task]


def test_explicit_flags_win_over_domain_defaults_and_domain_over_generic():
    assert _tdmpc("dog-walk", batch_size=256, lr=1e-3, iterations=3, latent_dim=64, action_repeat=4) == (
        4, 3, 64, 256, 1e-3)
    assert _tdmpc("dog-walk", num_samples=64)[3] == 2048  # an unrelated flag leaves the dog's batch alone
    # the domain values are tdmpc's: tdmpc2 on dog keeps its own defaults
    args = config.resolve_args(Args(task="dog-run"))
    cfg = config.agent_config(args)
    assert (args.action_repeat, args.batch_size, cfg.lr, cfg.latent_dim) == (2, 256, 3e-4, 512)


@pytest.mark.parametrize(
    ("algo", "num_envs", "episode_length", "expected"),
    [
        ("tdmpc2", 1, 500, 2500),  # the official single-env rule max(1000, 5 x 500)
        ("tdmpc2", 16, 500, 2500),  # the same env steps at any N: 157 agent steps per env
        ("tdmpc2", 256, 500, 2500),
        ("tdmpc2", 16, 100, 1000),  # max(1000, 5 x 100)
        ("tdmpc2", 1024, 500, 4096),  # every env holds a training window: 1024 x (horizon 3 + 1)
        ("tdmpc", 1, 250, 5000),
        ("tdmpc", 16, 250, 5000),
    ],
)
def test_default_seed_steps_are_the_single_env_trainers(algo, num_envs, episode_length, expected):
    horizon = 3 if algo == "tdmpc2" else 5
    assert config.default_seed_steps(algo, episode_length, num_envs, horizon) == expected
    schedule = config.make_schedule(
        Args(algo=algo, task="cheetah-run", num_envs=num_envs, total_timesteps=10**7, action_repeat=2),
        episode_length, horizon)
    assert schedule.seed_steps == expected and schedule.pretrain_updates == expected
    assert schedule.seed_steps // num_envs >= horizon + 1  # a training window in every env


def test_seed_steps_flag_overrides_the_rule():
    schedule = config.make_schedule(Args(num_envs=16, total_timesteps=10**6, seed_steps=8000), 500, 3)
    assert schedule.seed_steps == 8000 and schedule.pretrain_updates == 8000


def test_budget_shorter_than_seeding_is_refused_with_the_numbers():
    with pytest.raises(config.ConfigError, match="2500 seed steps"):
        config.make_schedule(Args(num_envs=16, total_timesteps=4_000), 500, 3)


def test_a_resumed_run_keeps_the_seed_steps_it_started_with():
    args = Args(num_envs=16, total_timesteps=10**6)
    assert config.make_schedule(args, 500, 3).seed_steps == 2500
    assert config.make_schedule(args, 500, 3, run_seed_steps=8000).seed_steps == 8000  # a run from older code
    explicit = Args(num_envs=16, total_timesteps=10**6, seed_steps=4000)
    assert config.make_schedule(explicit, 500, 3, run_seed_steps=8000).seed_steps == 4000


def test_a_chunk_never_spans_more_than_the_eval_or_checkpoint_period():
    # 16 envs x action repeat 2 = 32 env steps per iteration
    schedule = lambda **kw: config.make_schedule(Args(num_envs=16, total_timesteps=10**6, **kw), 500, 3)  # noqa: E731
    assert schedule().iters_per_chunk == 10_000 // 32  # --log_every decides by default
    assert schedule(log_every=10**9).iters_per_chunk == 100_000 // 32  # not the whole run: the eval period
    assert schedule(log_every=10**9, eval_every=50_000, checkpoint_every=3200).iters_per_chunk == 100
    assert schedule(log_every=8).iters_per_chunk == 1


# ------------------------------------------------------------------------------------------ presets


def test_preset_fills_the_flags_not_given_on_the_command_line():
    from anakin_tdmpc.run import parse_args

    args = parse_args(["--preset", "cpu-small", "--num_envs", "16", "--lr=1e-3"])
    assert (args.num_envs, args.model_size, args.latent_dim, args.batch_size, args.lr) == (16, 1, 64, 64, 1e-3)
    # a flag given at its default value still wins over the preset
    args = parse_args(["--preset", "cpu-small", "--model_size", "5"])
    assert (args.model_size, args.num_envs) == (5, 8)
    tdmpc = parse_args(["--preset", "cpu-small", "--algo", "tdmpc"])
    assert (tdmpc.num_envs, tdmpc.mlp_dim, tdmpc.num_q, tdmpc.latent_dim) == (8, 128, None, None)
    assert parse_args([]) == Args()  # paper: every flag at its default


def test_preset_in_python_fills_fields_left_at_their_defaults():
    args = config.apply_preset(Args(preset="cpu-small", num_envs=4))
    assert (args.num_envs, args.num_samples, args.num_pi_trajs) == (4, 64, 4)
    assert config.apply_preset(args) == args  # applying twice changes nothing


def test_unknown_preset_is_one_line(capsys):
    from anakin_tdmpc.run import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["--preset", "huge"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unknown --preset 'huge'; valid: paper, cpu-small"


def test_help_lists_every_preset_value():
    import inspect

    from anakin_tdmpc.agents import AGENTS

    source = inspect.getsource(Args).split("preset: str")[1].split('"""')[1]
    text = " ".join(source.split())
    for name in config.PRESETS:
        assert name in text
        for algo, agent in AGENTS.items():
            values = agent.PRESETS[name]
            if values:
                flags = " ".join(f"--{k} {v}" for k, v in values.items())
                assert f"{algo}: {flags}" in text, (algo, flags)


def test_explicit_flags():
    assert config.explicit_flags(["--num_envs", "8", "--lr=1e-3", "--no_planner_bf16", "--task", "x", "8"]) == {
        "num_envs", "lr", "planner_bf16", "task"}
