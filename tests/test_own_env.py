"""Your own env as a task (anakin_tdmpc.envs.register, --task package.module:function): the protocol check
names the broken field in one line, the batched env works, and the README's example trains through the CLI."""

import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import point_task
from conftest import ROOT, TINY, environment, run_main, wandb_history_and_config

from anakin_tdmpc import envs


class _Broken(point_task.Point):
    """The point task with one thing wrong (`what`)."""

    def __init__(self, what):
        self.what = what

    def reset(self, rng):
        state = super().reset(rng)
        if self.what == "obs_shape":
            return state._replace(obs=jnp.zeros(4))
        if self.what == "reward_int":
            return state._replace(reward=jnp.int32(0))
        if self.what == "reward_vector":
            return state._replace(reward=jnp.zeros(2))
        return state

    def step(self, state, action):
        out = super().step(state, action)
        if self.what == "step_dtype":
            return out._replace(physics=out.physics.astype(jnp.float16))
        if self.what == "raises":
            raise RuntimeError("the robot fell over")
        return out


def _error(make):
    name = f"broken-{id(make)}"
    envs.register(name, make)
    with pytest.raises(envs.EnvError) as info:
        envs.make_env(name)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"task {name!r}: ")
    return message


def test_each_broken_field_is_named():
    assert "reset(rng) returns obs as float32[4]; expected floating of shape [3] (observation_size)" in _error(
        lambda: _Broken("obs_shape"))
    assert "reset(rng) returns reward as int32[]; expected floating of shape []" in _error(
        lambda: _Broken("reward_int"))
    assert "returns reward as float32[2]" in _error(lambda: _Broken("reward_vector"))
    assert "step(state, action) returns state.physics as float16[2]; reset(rng) as float32[2]" in _error(
        lambda: _Broken("step_dtype"))
    assert "step(state, action) failed: RuntimeError: the robot fell over" in _error(lambda: _Broken("raises"))
    no_size = type("NoSize", (point_task.Point,), {"observation_size": None})
    assert "observation_size must be a positive int" in _error(no_size)
    assert "making the env failed: ZeroDivisionError" in _error(lambda: 1 / 0)


def test_register_and_import_paths():
    with pytest.raises(ValueError, match="taken by the built-in task cheetah-run"):
        envs.register("dm_control/cheetah-run-v0", point_task.make_env)
    with pytest.raises(envs.UnknownTaskError, match="cannot import no_such_module: ModuleNotFoundError"):
        envs.make_env("no_such_module:make_env")
    with pytest.raises(envs.UnknownTaskError, match="point_task has no function nothing"):
        envs.make_env("point_task:nothing")
    with pytest.raises(envs.UnknownTaskError, match="package.module:function"):
        envs.make_env("no-such-task")
    envs.register("point", point_task.make_env)
    assert envs.canonical_task_name("point") == "point" and envs.domain("point") == ""
    assert envs.domain("walker-walk") == "walker"


def test_the_batched_env_steps_resets_and_repeats_actions():
    env = envs.make_env("point_task:make_env", action_repeat=2, episode_length=3)
    assert (env.name, env.obs_dim, env.action_dim, env.ctrl_range, env.render_model) == (
        "point_task:make_env", 3, 1, None, None)
    state = env.reset(jax.random.key(0), 2)
    step = jax.jit(env.step)
    single = jax.vmap(point_task.Point().step)
    for t in range(3):
        # each agent step is two control steps of the inner env with the same action, rewards summed
        inner = single(state.physics, jnp.full((2, 1), 0.5))
        twice = single(inner, jnp.full((2, 1), 0.5))
        state, out = step(state, jnp.full((2, 1), 0.5))
        np.testing.assert_allclose(out.reward, inner.reward + twice.reward, rtol=1e-6)
        np.testing.assert_allclose(out.final_obs, twice.obs, rtol=1e-6)
        assert out.done.tolist() == [t == 2] * 2  # the third agent step ends the episode (truncation)
    assert state.episode_step.tolist() == [0, 0] and not np.allclose(state.obs, out.final_obs)


def test_a_broken_env_through_the_cli_is_one_error_line(tmp_path, capsys):
    code = run_main(["--task", "point_task:nothing", "--run_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: task 'point_task:nothing'"), err


@pytest.mark.filterwarnings("ignore:os.fork")  # ffmpeg is started from a process that imported JAX
def test_the_readme_example_trains_with_videos_through_the_cli(tmp_path, capsys):
    """README "Your own env": examples/slider.py (an MJX model of our own) as `--task examples.slider:make_env`
    from the repository root: a tiny run to the end with eval videos (its mj_model rendered) logged to
    wandb too, then `python -m anakin_tdmpc.evaluate --capture_video` of its last checkpoint."""
    run_dir = tmp_path / "run"
    args = list(TINY)
    args[args.index("--task") + 1] = "examples.slider:make_env"
    environ = dict(environment(1), WANDB_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "anakin_tdmpc.run", *args, "--run_dir", str(run_dir),
                           "--capture_video", "--track"], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["env_steps"] == 480 and np.isfinite(rows[-1]["eval/episode_return"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "examples.slider:make_env" and config["env"]["action_repeat"] == 2
    assert os.path.exists(run_dir / "checkpoints" / "480")
    if "eval videos: rendering with MUJOCO_GL=" not in done.stderr:
        reason = next((line for line in done.stderr.splitlines() if "--capture_video" in line), "no render backend")
        assert "continuing without videos" in reason  # the run went on
        pytest.skip(f"rendering is not possible here: {reason}")
    import imageio_ffmpeg

    assert sorted(os.listdir(run_dir / "videos")) == ["240.mp4", "480.mp4"]  # one per evaluation
    frames = imageio_ffmpeg.read_frames(str(run_dir / "videos" / "480.mp4"))
    meta = next(frames)
    images = [bytes(f) for f in frames]
    assert meta["size"] == (320, 240) and len(images) == 20  # one frame per agent step of the episode
    assert len(set(images)) > 1  # the cart moves
    (run_file,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    logged, _ = wandb_history_and_config(run_file)
    assert "eval/video" in logged and "eval/episode_return" in logged

    from anakin_tdmpc import evaluate

    sys.path.insert(0, ROOT)  # the run's task is imported from the repository root, as the CLI did
    try:
        evaluate.main(["--run_dir", str(run_dir), "--episodes", "2", "--capture_video"])
    finally:
        sys.path.remove(ROOT)
    result = json.loads((run_dir / "eval_480.json").read_text())
    assert result["videos"] == [str(run_dir / "videos" / "eval_480.mp4")]
    assert os.path.getsize(result["videos"][0]) > 0
