"""The command line: bad input gives one `error:` line and exit code 2 (nothing overwritten); a tiny run
writes config.json and metrics.jsonl with the documented keys."""

import json
import os
import subprocess
import sys

import pytest

from conftest import TINY, TINY_TDMPC, check_tiny_run, run_main

@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "nope-run"], "unknown task 'nope-run'; valid tasks: acrobot-swingup"),
        (["--algo", "ppo"], "unknown algo 'ppo'"),
        (["--total_timesteps", "0"], "--total_timesteps must be positive"),
        (["--num_envs", "-3"], "--num_envs must be positive"),
        (["--batch_size", "5000", "--buffer_size", "4000"], "--batch_size 5000 is larger than the replay buffer"),
        (["--num_envs", "3", "--utd", "0.5"], "whole number of updates per iteration"),
        (["--latent_dim", "20"], "--latent_dim must be a multiple of 8"),
        (["--model_size", "7"], "--model_size must be one of"),
        (["--total_timesteps", "1000"], "leaves no learning after"),
        (["--num_envs", "many"], "--num_envs"),
        (["--no_such_flag", "1"], "Unrecognized options"),
        (["--lr", "nan"], "--lr must be a finite number, got 'nan'"),
        (["--utd", "nan"], "--utd must be a finite number, got 'nan'"),
        (["--utd", "inf"], "--utd must be a finite number, got 'inf'"),
        (["--batch_size", "2.5"], "--batch_size expects an integer, got '2.5'"),
        (["--total_timesteps", "1234.5"], "--total_timesteps expects an integer, got '1234.5'"),
        (["--seed", "abc"], "--seed expects an integer, got 'abc'"),
        (["--log_every"], "--log_every needs a value"),
        (["--checkpoint_every", "0"], "--checkpoint_every must be positive"),
        (["--max_chunk_seconds", "0"], "--max_chunk_seconds must be positive, got 0"),
        (["--task", "dm_control/cheetah-run-v1"], "unknown task version 'dm_control/cheetah-run-v1'"),
        (["--num_devices", "3"], "--num_devices 3 asks for more devices than the"),
        (["--num_devices", "0"], "--num_devices must be positive"),
        (["--num_seeds", "0"], "--num_seeds must be positive"),
        (["--num_processes", "2"], "a multi-process run needs all of --coordinator_address"),
        (["--coordinator_address", "127.0.0.1:1", "--num_processes", "2", "--process_id", "2"],
         "--process_id must be in [0, --num_processes)"),
        (["--buffer_size", "100000000000", "--total_timesteps", "400000000000", "--num_seeds", "64", "--task",
          "point_task:make_env"], "the training state needs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code = run_main(argv + ["--run_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_integer_flags_in_float_notation_are_accepted_when_exact():
    from anakin_tdmpc.run import parse_args

    args = parse_args(["--total_timesteps", "1e6", "--num_envs=32.0", "--lr", "3e-4"])
    assert (args.total_timesteps, args.num_envs, args.lr) == (1_000_000, 32, 3e-4)


def test_python_args_with_non_finite_numbers_are_refused(tmp_path):
    from anakin_tdmpc import Args, RunError, train

    with pytest.raises(RunError) as info:
        train(Args(lr=float("nan"), run_dir=str(tmp_path / "run")))
    assert info.value.exit_code == 2 and str(info.value) == "--lr must be a finite number, got nan"
    assert not (tmp_path / "run").exists()


def test_unwritable_run_dir_is_refused_before_anything_loads(capsys, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    for run_dir, message in [(tmp_path / "file", "exists and is not a folder"),
                             (tmp_path / "file" / "run", "is a file, not a folder")]:
        assert run_main(TINY + ["--run_dir", str(run_dir)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    # a read-only filesystem or a folder without write permission (root ignores permissions, so the write
    # test itself is made to fail as the kernel would)
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert run_main(TINY + ["--run_dir", str(tmp_path / "ro" / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write run dir {tmp_path / 'ro' / 'run'}: {tmp_path}: Read-only file system"]
    assert not (tmp_path / "ro").exists()


def test_refuses_a_run_dir_holding_another_run(capsys, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"args": {"task": "walker-walk"}}))
    (run_dir / "metrics.jsonl").write_text('{"env_steps": 1}\n')
    code = run_main(TINY + ["--run_dir", str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already holds a different run" in err[0]
    assert json.loads((run_dir / "config.json").read_text()) == {"args": {"task": "walker-walk"}}
    assert (run_dir / "metrics.jsonl").read_text() == '{"env_steps": 1}\n'


def _python_train(argv, run_dir):
    """The Python entry with the flags of `argv`: anakin_tdmpc.train(Args(...)) -> TrainResult."""
    from anakin_tdmpc import Args, train
    from anakin_tdmpc.run import parse_args

    args = parse_args(argv)  # the same values, then built as a user would build them in Python
    fields = {k: v for k, v in vars(args).items() if v != getattr(Args(), k)}
    return train(Args(**fields, run_dir=str(run_dir)))


def test_tiny_tdmpc_run_through_the_python_entry(tmp_path, capsys):
    """TD-MPC through the Python entry, anakin_tdmpc.train(Args(...)) (TD-MPC2 through the CLI: the reference
    run of tests/test_run_outputs.py)."""
    run_dir = tmp_path / "run"
    result = _python_train(TINY_TDMPC, run_dir)
    assert result.run_dir == str(run_dir)
    rows = check_tiny_run(run_dir, "tdmpc")
    assert result.rows == rows and result.final_eval == rows[-1]["eval/episode_return"]
    out = capsys.readouterr().err
    assert "env steps 480/480" in out and "final eval return" in out
    # the same command again is refused: the run dir is taken
    assert run_main(TINY_TDMPC + ["--run_dir", str(run_dir)]) == 2


def test_module_entry_point_help_and_error():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    help_run = subprocess.run([sys.executable, "-m", "anakin_tdmpc.run", "--help"], capture_output=True, text=True, env=env)
    assert help_run.returncode == 0
    for flag in ("--algo", "--task", "--total_timesteps", "--seed", "--num_envs", "--utd", "--model_size",
                 "--action_repeat", "--eval_every", "--eval_episodes", "--run_dir", "--num_samples", "--iterations",
                 "--horizon", "--mlp_dim", "--latent_dim"):
        assert flag in help_run.stdout, flag
    bad = subprocess.run([sys.executable, "-m", "anakin_tdmpc.run", "--task", "cheetah-fly"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "unknown task 'cheetah-fly'" in bad.stderr


def test_help_shows_every_flag_in_its_group():
    """`--help` groups the flags by the table in anakin_tdmpc/help.py; a field the table does not name (one added
    to Args since) is still shown, under "other"."""
    import dataclasses

    from anakin_tdmpc.config import Args
    from anakin_tdmpc.help import GROUPS, OTHER, format_help, grouped

    text = format_help(Args, width=100)
    for field in dataclasses.fields(Args):
        assert f"  --{field.name} " in text or f"  --{field.name} / --no_{field.name}" in text, field.name
    assert text.startswith("usage: python -m anakin_tdmpc.run") and "examples:" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("  python")) <= 100
    words = " ".join(text.split())
    assert words.count("Default: 1,000,000.") == 2 and "default" not in words.split("--buffer_size")[1].split("--")[0]
    names = [n for fields in grouped(Args).values() for n in fields]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(Args))
    assert set(grouped(Args)) <= set(GROUPS) | {OTHER}

    Newer = dataclasses.make_dataclass("Newer", [("brand_new_flag", int, dataclasses.field(default=7))], bases=(Args,))
    assert grouped(Newer)[OTHER][-1] == "brand_new_flag"
    assert "  --brand_new_flag INT\n      Default: 7." in format_help(Newer, width=100)
