"""MJX DeepMind Control environments (mujoco_playground) batched for Anakin training."""

from anakin_tdmpc.envs import cpu_cholesky
from anakin_tdmpc.envs.registry import (
    OUR_TASKS,
    TASK_SOURCES,
    TASKS,
    UnknownTaskError,
    canonical_task_name,
    default_episode_length,
    make_env,
)
from anakin_tdmpc.envs.wrapper import Env, EnvState, StepOut

cpu_cholesky.install()  # before any env is compiled: see cpu_cholesky.py

__all__ = [
    "OUR_TASKS",
    "TASK_SOURCES",
    "TASKS",
    "Env",
    "EnvState",
    "StepOut",
    "UnknownTaskError",
    "canonical_task_name",
    "default_episode_length",
    "make_env",
]
