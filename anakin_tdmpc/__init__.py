"""TD-MPC and TD-MPC2 trained as one compiled JAX program on MJX DeepMind Control tasks.

    from anakin_tdmpc import Args, train
    result = train(Args(task="walker-walk", preset="cpu-small", total_timesteps=100_000))
    result.run_dir, result.final_eval, result.rows[-1]

`train` mirrors `python -m anakin_tdmpc.run`: fields left at their defaults take --preset's values; a run
that cannot start or stops early raises `RunError` (its message is the CLI's one line, `.exit_code` its
exit code). `build(args)` gives the pieces (env, agent, fused loop, schedule) for your own jitted loops.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("anakin-tdmpc")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"

__all__ = ["Args", "RunError", "TrainResult", "build", "train"]


def train(args):
    """Train for `args` (an `Args`; fields at their default take its preset's values) -> TrainResult(run_dir,
    rows, final_eval). Raises RunError for bad settings or a run that stops early."""
    from anakin_tdmpc.config import ConfigError, apply_preset
    from anakin_tdmpc.session.run_dir import RunError
    from anakin_tdmpc.session.trainer import train as run_training

    try:
        args = apply_preset(args)
    except ConfigError as e:
        raise RunError(str(e)) from None
    return run_training(args)


def __getattr__(name):  # the heavy imports (JAX, MuJoCo) only when asked for
    if name == "Args":
        from anakin_tdmpc.config import Args

        return Args
    if name == "RunError":
        from anakin_tdmpc.session.run_dir import RunError

        return RunError
    if name == "TrainResult":
        from anakin_tdmpc.session.trainer import TrainResult

        return TrainResult
    if name == "build":
        from anakin_tdmpc.build import build

        return build
    raise AttributeError(f"module 'anakin_tdmpc' has no attribute {name!r}")
