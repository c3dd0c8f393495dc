"""Every error the package raises on purpose, one type per layer. Each carries a one-line message that the
command line prints as `error: ...`; `RunError` also carries the process exit code."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot run (config.py, the agents' Configs); the CLI exits with code 2."""


class EnvError(ValueError):
    """A task that cannot be made, or an env of your own that breaks the protocol (envs/)."""


class UnknownTaskError(EnvError):
    """A task name that is not registered."""


class ParallelError(ValueError):
    """Devices or processes that do not fit the run (loop/parallel.py)."""


class RunError(Exception):
    """A run that cannot start or go on (session/): a one-line message and the process exit code (2 bad input,
    3 diverged, 4 outputs unwritable, 128 + n stopped by signal n)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class RunDirBusy(RunError):
    """Another live process holds the run dir's lock."""


class CheckpointError(RunError):
    """A checkpoint or run folder that cannot be resumed or read."""


class TrackingError(RunError):
    """Weights & Biases could not start."""


class EvalError(Exception):
    """`python -m anakin_tdmpc.evaluate` cannot evaluate the run it was given."""


class PlotError(Exception):
    """`python -m anakin_tdmpc.plot` cannot draw what it was asked for."""


class OutputError(Exception):
    """A checkpoint or metrics row that could not be written (disk full, quota, I/O error) after training began;
    the trainer stops with exit code 4 and names the last complete checkpoint."""
