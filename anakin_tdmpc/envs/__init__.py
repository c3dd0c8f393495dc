"""MJX DeepMind Control environments (our ports in `dmc/`, most on mujoco_playground's models), brax's
(`brax_tasks.py`), and your own (`register`, `protocol.py`), batched for Anakin training (`wrapper.py`); the
one table of tasks is `registry.TASKS`."""

import warnings

# mujoco_playground imports brax, which imports jaxopt, which warns on import that it is no longer maintained.
# Nothing here runs jaxopt (brax's generalized pipeline does; its MJX tasks do not): import it once, quietly,
# so that the later imports through playground and brax find it loaded and say nothing.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
    try:
        import jaxopt  # noqa: F401
    except ImportError:  # a brax without jaxopt: nothing to silence
        pass

from anakin_tdmpc.envs import cpu_cholesky
from anakin_tdmpc.envs.registry import (
    OUR_TASKS,
    TASK_SOURCES,
    TASKS,
    EnvError,
    UnknownTaskError,
    canonical_task_name,
    check_env,
    default_episode_length,
    domain,
    make_env,
    register,
    task_action_repeat,
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
    "EnvError",
    "UnknownTaskError",
    "canonical_task_name",
    "check_env",
    "default_episode_length",
    "domain",
    "make_env",
    "register",
    "task_action_repeat",
]
