"""Flag resolution (anakin_tdmpc/config.py: resolve -> RunSpec): per-domain defaults of TD-MPC as its official
configs set them, the seeding rule for N parallel envs, device shares, presets."""

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
    spec = config.resolve(Args(algo="tdmpc", task=task, **flags))
    cfg = spec.agent_config
    return spec.action_repeat, cfg.iterations, cfg.latent_dim, cfg.batch_size, cfg.lr


def _schedule(**flags):
    return config.resolve(Args(task="cheetah-run", **flags)).schedule


@pytest.mark.parametrize("task", sorted(TDMPC_BY_DOMAIN))
def test_tdmpc_resolves_the_official_per_domain_settings(task):
    assert _tdmpc(task) == TDMPC_BY_DOMAIN[task]
    assert _tdmpc(f"dm_control/{task}-v0") == TDMPC_BY_DOMAIN[task]


def test_explicit_flags_win_over_domain_defaults_and_domain_over_generic():
    assert _tdmpc("dog-walk", batch_size=256, lr=1e-3, iterations=3, latent_dim=64, action_repeat=4) == (
        4, 3, 64, 256, 1e-3)
    assert _tdmpc("dog-walk", num_samples=64)[3] == 2048  # an unrelated flag leaves the dog's batch alone
    # the domain values are tdmpc's: tdmpc2 on dog keeps its own defaults
    spec = config.resolve(Args(task="dog-run"))
    cfg = spec.agent_config
    assert (spec.action_repeat, cfg.batch_size, cfg.lr, cfg.latent_dim) == (2, 256, 3e-4, 512)


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
    schedule = _schedule(algo=algo, num_envs=num_envs, total_timesteps=10**7, action_repeat=2,
                         episode_length=episode_length)
    assert schedule.seed_steps == expected and schedule.pretrain_updates == expected
    assert schedule.seed_steps // num_envs >= horizon + 1  # a training window in every env


def test_seed_steps_flag_overrides_the_rule():
    schedule = _schedule(num_envs=16, total_timesteps=10**6, seed_steps=8000)
    assert schedule.seed_steps == 8000 and schedule.pretrain_updates == 8000


def test_budget_shorter_than_seeding_is_refused_with_the_numbers():
    with pytest.raises(config.ConfigError, match="2500 seed steps"):
        _schedule(num_envs=16, total_timesteps=4_000)


def test_a_resumed_run_keeps_the_seed_steps_it_started_with():
    args = Args(num_envs=16, total_timesteps=10**6)
    assert config.resolve(args).schedule.seed_steps == 2500
    assert config.resolve(args, run_seed_steps=8000).schedule.seed_steps == 8000  # a run from older code
    explicit = Args(num_envs=16, total_timesteps=10**6, seed_steps=4000)
    assert config.resolve(explicit, run_seed_steps=8000).schedule.seed_steps == 4000


def test_a_chunk_never_spans_more_than_the_eval_or_checkpoint_period():
    # 16 envs x action repeat 2 = 32 env steps per iteration
    schedule = lambda **kw: _schedule(num_envs=16, total_timesteps=10**6, **kw)  # noqa: E731
    assert schedule().iters_per_period == 10_000 // 32  # --log_every decides by default
    assert schedule(log_every=10**9).iters_per_period == 100_000 // 32  # not the whole run: the eval period
    assert schedule(log_every=10**9, eval_every=50_000, checkpoint_every=3200).iters_per_period == 100
    assert schedule(log_every=8).iters_per_period == 1


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
    from anakin_tdmpc.cli import explicit_flags

    assert explicit_flags(["--num_envs", "8", "--lr=1e-3", "--no_planner_bf16", "--task", "x", "8"]) == {
        "num_envs", "lr", "planner_bf16", "task"}


# ---------------------------------------------------------------------------------------- the spec


def test_the_spec_holds_each_devices_share_and_refuses_uneven_ones():
    spec = config.resolve(Args(task="cheetah-run", num_envs=16, batch_size=256, buffer_size=1001), num_devices=4)
    assert (spec.num_devices, spec.envs_per_device, spec.batch_per_device) == (4, 4, 64)
    assert spec.agent_config.batch_size == 256 and spec.buffer_per_device == 251  # ceil(1001 / 4)
    with pytest.raises(config.ConfigError, match="--num_envs 16 must be divisible by the 3 devices"):
        config.resolve(Args(num_envs=16), num_devices=3)
    with pytest.raises(config.ConfigError, match="--batch_size 250 must be divisible by the 4 devices"):
        config.resolve(Args(num_envs=16, batch_size=250), num_devices=4)


@pytest.mark.parametrize("flag", ["horizon", "iterations", "num_samples", "latent_dim", "lr", "seed_steps",
                                  "episode_length", "action_repeat", "eval_every", "buffer_size"])
def test_every_flag_is_checked_once_with_one_line(flag):
    with pytest.raises(config.ConfigError) as info:
        config.resolve(Args(**{flag: 0}))
    assert str(info.value) == f"--{flag} must be positive, got 0"


def test_tdmpc_num_samples_counts_the_policy_sequences_as_tdmpc2s_does():
    # the official TD-MPC: 512 Gaussian sequences + int(0.05 x 512) = 25 policy sequences in each MPPI iteration
    paper = config.resolve(Args(algo="tdmpc")).agent_config
    assert (paper.num_samples, paper.num_pi_trajs) == (537, 25)
    small = config.resolve(config.apply_preset(Args(algo="tdmpc", preset="cpu-small"))).agent_config
    assert (small.num_samples, small.num_pi_trajs) == (67, 3)  # 64 Gaussian + int(0.05 x 64)
    # a run recorded before (format 1: --num_samples counted the Gaussian sequences only) resumes as the same run
    old = {"algo": "tdmpc", "num_samples": 64, "num_pi_trajs": None}
    assert config.upgrade_saved_args(old, 1)["num_samples"] == 67
    assert config.upgrade_saved_args({**old, "num_pi_trajs": 2}, 1)["num_samples"] == 66
    assert config.upgrade_saved_args(old, config.CONFIG_FORMAT) == old
    assert config.upgrade_saved_args({**old, "algo": "tdmpc2"}, 1) == {**old, "algo": "tdmpc2"}
    # for every Gaussian count g, the new default g + g // 20 total keeps int(0.05 g) policy sequences
    for g in range(1, 2000):
        total = g + int(0.05 * g)
        assert config.resolve(Args(algo="tdmpc", num_samples=total, num_elites=1)).agent_config.num_pi_trajs == int(0.05 * g)
