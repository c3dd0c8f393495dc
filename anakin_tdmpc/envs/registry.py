"""The one table of tasks (:data:`TASKS`), task names and construction of batched environments.

Canonical task names follow the TD-MPC2 paper (``domain-task``, lower case,
hyphen separated, e.g. ``cheetah-run``, ``cup-catch``, ``point_mass-easy``).
:func:`canonical_task_name` also accepts gymnasium/shimmy ids
(``dm_control/cheetah-run-v0``), dm_control domain names (``ball_in_cup-catch``),
underscore/hyphen variants (``point-mass-easy``) and playground env names
(``CheetahRun``).  brax's Gym-style tasks are ``brax/<name>`` (``brax/hopper``: see brax_tasks.py).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable

import jax

from anakin_tdmpc.envs import brax_tasks
from anakin_tdmpc.envs.protocol import check_env, is_positive_int
from anakin_tdmpc.errors import EnvError, UnknownTaskError
from anakin_tdmpc.envs.wrapper import Env


@dataclasses.dataclass(frozen=True)
class Task:
    """Where a built-in task comes from and how it is made."""

    module: str
    """``suite`` (dm_control's tasks on playground's models, corrected to dm_control's MDP), ``tdmpc2`` (TD-MPC2's
    extra tasks), ``quadruped`` or ``dog`` (dm_control's own models): a module of ``anakin_tdmpc.envs.dmc``; or
    ``brax`` (brax_tasks.py)."""
    make: str = ""
    """The class of the module that makes the env (a ``DmcTask``), called with :attr:`kwargs`."""
    kwargs: tuple[tuple[str, Any], ...] = ()
    replaces: str | None = None
    """The mujoco_playground env this task corrects (its name is accepted as an alias)."""
    aliases: tuple[str, ...] = ()
    """Other accepted names (dm_control's domain name where it differs from TD-MPC2's)."""


def _dmc(module: str, make: str, replaces: str | None = None, aliases: tuple[str, ...] = (), **kwargs: Any) -> Task:
    """The :class:`Task` made by ``module.make(**kwargs)``."""
    return Task(module, make, tuple(kwargs.items()), replaces, aliases)


TASKS: dict[str, Task] = {
    # dm_control's tasks on playground's models (speeds and sizes: playground's constants of each domain)
    "walker-stand": _dmc("suite", "Walker", "WalkerStand", move_speed=0.0),
    "walker-walk": _dmc("suite", "Walker", "WalkerWalk", move_speed=1),
    "walker-run": _dmc("suite", "Walker", "WalkerRun", move_speed=8),
    "pendulum-swingup": _dmc("suite", "Pendulum", "PendulumSwingup"),
    "cheetah-run": _dmc("suite", "CheetahRun", "CheetahRun"),
    "cartpole-balance": _dmc("suite", "Cartpole", "CartpoleBalance", swing_up=False, sparse=False),
    "cartpole-balance-sparse": _dmc("suite", "Cartpole", "CartpoleBalanceSparse", swing_up=False, sparse=True),
    "cartpole-swingup": _dmc("suite", "Cartpole", "CartpoleSwingup", swing_up=True, sparse=False),
    "cartpole-swingup-sparse": _dmc("suite", "Cartpole", "CartpoleSwingupSparse", swing_up=True, sparse=True),
    "cup-catch": _dmc("suite", "CupCatch", "BallInCup", aliases=("ball_in_cup-catch",)),
    "acrobot-swingup": _dmc("suite", "Acrobot", "AcrobotSwingup", sparse=False),
    "acrobot-swingup-sparse": _dmc("suite", "Acrobot", "AcrobotSwingupSparse", sparse=True),
    "point_mass-easy": _dmc("suite", "PointMass", "PointMass"),
    "reacher-easy": _dmc("suite", "Reacher", "ReacherEasy", target_size=0.05),
    "reacher-hard": _dmc("suite", "Reacher", "ReacherHard", target_size=0.015),
    "hopper-stand": _dmc("suite", "Hopper", "HopperStand", hopping=False),
    "hopper-hop": _dmc("suite", "Hopper", "HopperHop", hopping=True),
    "swimmer-swimmer6": _dmc("suite", "Swimmer", "SwimmerSwimmer6", n_links=6),
    "fish-swim": _dmc("suite", "FishSwim", "FishSwim"),
    "humanoid-stand": _dmc("suite", "Humanoid", "HumanoidStand", move_speed=0.0),
    "humanoid-walk": _dmc("suite", "Humanoid", "HumanoidWalk", move_speed=1.0),
    "humanoid-run": _dmc("suite", "Humanoid", "HumanoidRun", move_speed=10.0),
    "finger-spin": _dmc("suite", "FingerSpin", "FingerSpin"),
    "finger-turn-easy": _dmc("suite", "FingerTurn", "FingerTurnEasy", target_radius=0.07),
    "finger-turn-hard": _dmc("suite", "FingerTurn", "FingerTurnHard", target_radius=0.03),
    # TD-MPC2's extra tasks
    "walker-walk-backwards": _dmc("tdmpc2", "WalkerBackwards", move_speed=1),
    "walker-run-backwards": _dmc("tdmpc2", "WalkerBackwards", move_speed=8),
    "cheetah-run-backwards": _dmc("tdmpc2", "CheetahCustom", goal="run-backwards"),
    "cheetah-run-front": _dmc("tdmpc2", "CheetahCustom", goal="run-front"),
    "cheetah-run-back": _dmc("tdmpc2", "CheetahCustom", goal="run-back"),
    "cheetah-jump": _dmc("tdmpc2", "CheetahCustom", goal="jump"),
    "hopper-hop-backwards": _dmc("tdmpc2", "HopperBackwards"),
    "reacher-three-easy": _dmc("tdmpc2", "ReacherThree", target_size=0.05),
    "reacher-three-hard": _dmc("tdmpc2", "ReacherThree", target_size=0.015),
    "cup-spin": _dmc("tdmpc2", "CupSpin"),
    "pendulum-spin": _dmc("tdmpc2", "PendulumSpin"),
    # dm_control's quadruped and dog on dm_control's own models
    "quadruped-walk": _dmc("quadruped", "QuadrupedMove", desired_speed=0.5),
    "quadruped-run": _dmc("quadruped", "QuadrupedMove", desired_speed=5.0),
    "dog-stand": _dmc("dog", "Dog", move_speed=None),
    "dog-walk": _dmc("dog", "Dog", move_speed=1.0),
    "dog-trot": _dmc("dog", "Dog", move_speed=3.0),
    "dog-run": _dmc("dog", "Dog", move_speed=9.0),
    # brax's Gym-style tasks
    **{name: Task("brax") for name in brax_tasks.BRAX_TASKS},
}
"""Every built-in task: canonical name -> :class:`Task`. The lists below are views of it."""

OUR_TASKS: dict[str, str] = {name: task.module for name, task in TASKS.items() if task.module != "brax"}
"""Canonical task name -> module of ``anakin_tdmpc.envs.dmc`` holding our MJX port."""

REPLACED: dict[str, str] = {name: task.replaces for name, task in TASKS.items() if task.replaces}
"""Our corrected task -> the mujoco_playground env it replaces (whose name is still accepted as an alias): all 25
of playground's DMC envs."""

TASK_SOURCES: dict[str, str] = {name: "brax" if task.module == "brax" else "ours" for name, task in TASKS.items()}
"""Every supported canonical task name -> where its MJX env comes from (``ours`` or ``brax``)."""

_GYM_PREFIX = "dm_control/"
_VERSION_SUFFIX = re.compile(r"-v(\d+)$")
_VERSIONS = ("0",)  # the gymnasium/shimmy version of every DMC task


# Your own envs (see `register`): task name -> a function of no arguments that returns the env.
_REGISTERED: dict[str, Callable[[], Any]] = {}


def _normalise(name: str) -> str:
    """Lower-cases, strips a gym prefix/version suffix and maps ``_`` to ``-``."""
    key = name.strip().lower()
    if key.startswith(_GYM_PREFIX):
        key = key[len(_GYM_PREFIX) :]
    key = _VERSION_SUFFIX.sub("", key)
    return key.replace("_", "-")


def _build_lookup() -> dict[str, str]:
    """Maps every accepted (normalised) spelling to its canonical name."""
    lookup = {_normalise(canonical): canonical for canonical in TASKS}
    for canonical, task in TASKS.items():
        for alias in (task.replaces, *task.aliases):
            if alias:
                lookup[_normalise(alias)] = canonical
    return lookup


_LOOKUP = _build_lookup()


def canonical_task_name(name: str) -> str:
    """Returns the canonical TD-MPC2 name of ``name``, or ``name`` itself for a task of your own
    (:func:`register`, or ``package.module:function`` on first use).

    Raises:
        UnknownTaskError: if ``name`` is not a supported task, or names a version other than ``-v0``; the
            one-line message lists the valid canonical names.
    """
    if isinstance(name, str) and name in _REGISTERED:
        return name
    if isinstance(name, str) and ":" in name:
        return _import_task(name)
    version = _VERSION_SUFFIX.search(name.strip()) if isinstance(name, str) else None
    if version and version.group(1) not in _VERSIONS:
        known = _LOOKUP.get(_normalise(name))
        hint = f"; {known} exists as -v0" if known else ""
        raise UnknownTaskError(f"unknown task version {name!r}: only -v0 exists{hint}")
    canonical = _LOOKUP.get(_normalise(name)) if isinstance(name, str) else None
    if canonical is None:
        valid = ", ".join(sorted(TASK_SOURCES))
        own = f"; yours: {', '.join(sorted(_REGISTERED))}" if _REGISTERED else ""
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {valid}{own} (or package.module:function "
                               "returning your own env)")
    return canonical


def register(name: str, make: Callable[[], Any]) -> None:
    """Makes your own env trainable as task ``name`` (``Args(task=name)``, ``make_env(name)``), in this process.

    ``make()`` returns ONE environment in mujoco_playground's ``MjxEnv`` form (a subclass of
    ``mujoco_playground.MjxEnv`` is one; nothing else is required of its type):

    * ``reset(rng) -> state`` and ``step(state, action) -> state``, pure and jit-able; ``state`` is a pytree
      whose structure, shapes and dtypes ``step`` keeps, with the fields ``obs`` (``[observation_size]``
      float), ``reward`` (``[]`` float) and ``done`` (``[]`` bool / float / int: nonzero ends the episode).
    * ``observation_size`` and ``action_size`` (ints: flat vectors), ``dt`` (seconds per ``step``).
    * optional ``episodic`` (default ``False``): ``True`` says ``done`` is a *termination* (the robot fell:
      no reward follows, TD targets do not bootstrap past it, TD-MPC2 learns a termination head); ``False``
      says ``done`` only flags a broken episode (e.g. diverged physics) and episodes otherwise run into the
      time limit (``--episode_length``), which is a truncation: bootstrapping goes on through it.
    * optional ``mj_model`` (the ``mujoco.MjModel`` of an ``mjx.Data`` kept as ``state.data``): actions are
      then mapped from [-1, 1] onto its actuators' control ranges, and eval videos render it. Without it the
      agent's actions in [-1, 1] go to ``step`` as they are and ``--capture_video`` is unavailable.
    * optional ``compiler_options``: XLA options for every program that steps the env.

    From the command line, ``--task package.module:function`` imports the module and registers its
    function under that name. The env is checked (with ``jax.eval_shape``, nothing compiles) when the task
    is built: a field of the wrong shape or dtype is an :class:`EnvError` naming it.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"a task name is a non-empty string without surrounding spaces, got {name!r}")
    if not callable(make):
        raise ValueError(f"register({name!r}, make): make must be callable, got {make!r}")
    if ":" not in name and _normalise(name) in _LOOKUP:
        raise ValueError(f"task name {name!r} is taken by the built-in task {_LOOKUP[_normalise(name)]}")
    _REGISTERED[name] = make
    _load_registered.cache_clear()


def _import_task(name: str) -> str:
    """Registers ``package.module:function`` (the function returns the env) under that name."""
    import importlib

    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UnknownTaskError(f"task {name!r}: your own env is given as package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module: any error while importing it
        raise UnknownTaskError(f"task {name!r}: cannot import {module_name}: {type(e).__name__}: {e}") from None
    make = getattr(module, attr, None)
    if not callable(make):
        raise UnknownTaskError(f"task {name!r}: {module_name} has no function {attr}")
    register(name, make)
    return name


def domain(task: str) -> str:
    """The DMC domain of ``task`` (``cheetah`` of ``cheetah-run``), whose per-domain settings the agents use;
    ``""`` for a task of your own or of brax."""
    name = canonical_task_name(task)
    return "" if name in _REGISTERED or name in brax_tasks.BRAX_TASKS else name.split("-")[0]


def task_action_repeat(task: str) -> int | None:
    """The action repeat a task sets whatever the algorithm (brax's tasks: 1), or ``None``: the algorithm's."""
    return brax_tasks.ACTION_REPEAT if canonical_task_name(task) in brax_tasks.BRAX_TASKS else None


def _ensure_mjspec_find_body() -> None:
    """Works around a version check in playground 0.2.0's reacher.

    ``reacher._make_model`` compares ``mujoco.__version__ >= "3.3.0"`` as
    strings, which is False for ``"3.17.0"``, and then calls the pre-3.3 API
    ``MjSpec.find_body`` (since removed). Alias it to its successor
    ``MjSpec.body`` when missing, so ReacherEasy/ReacherHard load.
    """
    import mujoco

    if not hasattr(mujoco.MjSpec, "find_body"):
        mujoco.MjSpec.find_body = mujoco.MjSpec.body


def _positive_int(what: str, value: Any) -> int:
    """Returns ``value`` as a Python int, or raises a one-line ValueError unless it is an integer >= 1."""
    if not is_positive_int(value):
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=None)
def _load_our_env(name: str) -> Any:
    """Loads (once) our own MJX port of task ``name`` (see :data:`TASKS`), with ``impl='jax'``."""
    import importlib

    _ensure_mjspec_find_body()  # (the reacher of envs/dmc/suite.py builds on playground's)
    task = TASKS[name]
    module = importlib.import_module(f"anakin_tdmpc.envs.dmc.{task.module}")
    return getattr(module, task.make)(**dict(task.kwargs), config_overrides={"impl": "jax"})


@functools.lru_cache(maxsize=None)
def _load_registered(name: str) -> Any:
    """Builds (once per process) the env of a registered task and checks it against the protocol."""
    try:
        env = _REGISTERED[name]()
    except Exception as e:  # the user's code
        raise EnvError(f"task {name!r}: making the env failed: {type(e).__name__}: {e}") from None
    check_env(name, env)
    return env


def _load_env(name: str) -> Any:
    """The single-environment env of canonical task ``name``: ours, brax's, or yours (checked)."""
    if name in _REGISTERED:
        return _load_registered(name)
    if name in brax_tasks.BRAX_TASKS:
        return _load_brax_env(name)
    return _load_our_env(name)


@functools.lru_cache(maxsize=None)
def _load_brax_env(name: str) -> Any:
    """Loads (once) brax's MJX env of task ``name`` in the env protocol (see brax_tasks.py)."""
    return brax_tasks.load(name)


def default_episode_length(action_repeat: int) -> int:
    """Agent steps of a DMC episode: 1000 control steps divided by the action repeat."""
    return max(1, 1000 // action_repeat)


def _model_to_local_device(env) -> None:
    """In a multi-process run, put the env's MJX model on this process's first device.

    `mjx.put_model` places the model on `jax.devices()[0]`, which in a multi-process run belongs to process 0:
    the other processes could not use it. Every MJX env here (ours, on playground's base class) keeps its MuJoCo model in
    `_mj_model` and the MJX copy in `_mjx_model`."""
    if jax.process_count() == 1 or not hasattr(env, "_mjx_model"):
        return
    from mujoco import mjx

    env._mjx_model = mjx.put_model(env._mj_model, device=jax.local_devices()[0], impl="jax")


def control_range(mj_model: Any) -> tuple[tuple[float, float], ...] | None:
    """Each actuator's ``(low, high)`` control range, or ``None`` if every one is limited to exactly ``[-1, 1]``.

    Only quadruped's differ among the 39 tasks (yaw [-1, 1], lift [-1, 1.1], extend [-0.8, 0.8]); dm_control's
    ``action_scale.Wrapper(-1, 1)``, which the official trainers use, maps the agent's [-1, 1] onto them.
    An unlimited actuator has no range to map onto and is refused.
    """
    import numpy as np

    limited = np.asarray(mj_model.actuator_ctrllimited, bool)
    ranges = np.asarray(mj_model.actuator_ctrlrange, np.float64).reshape(-1, 2)
    if not limited.all():
        raise ValueError(f"actuators {np.flatnonzero(~limited).tolist()} have no control range")
    if np.array_equal(ranges, np.tile([-1.0, 1.0], (len(ranges), 1))):
        return None
    return tuple((float(lo), float(hi)) for lo, hi in ranges)


def make_env(task: str, action_repeat: int = 2, episode_length: int | None = None) -> Env:
    """Builds the batched, auto-resetting environment for ``task``.

    Args:
        task: any accepted task name (see :func:`canonical_task_name`).
        action_repeat: control steps per agent step (rewards summed), >= 1.
        episode_length: episode length in agent steps, >= 1; ``None`` keeps
            DMC's 1000 control steps, i.e. ``1000 // action_repeat``.

    Raises:
        UnknownTaskError: for an unknown task; EnvError: for an env of your own that breaks the protocol
            (see :func:`register`).
        ValueError: for an invalid ``action_repeat`` or ``episode_length``.
    """
    name = canonical_task_name(task)
    action_repeat = _positive_int("action_repeat", action_repeat)
    if episode_length is None:
        episode_length = default_episode_length(action_repeat)
    episode_length = _positive_int("episode_length", episode_length)

    playground_env = _load_env(name)
    obs_dim, action_dim = int(playground_env.observation_size), int(playground_env.action_size)
    _model_to_local_device(playground_env)
    mj_model = getattr(playground_env, "mj_model", None)
    try:
        ctrl_range = None if mj_model is None else control_range(mj_model)
    except ValueError as e:
        raise EnvError(f"task {name!r}: {e}") from None
    return Env(
        name=name,
        obs_dim=obs_dim,
        action_dim=action_dim,
        action_repeat=action_repeat,
        episode_length=episode_length,
        playground_env=playground_env,
        ctrl_range=ctrl_range,
        episodic=bool(getattr(playground_env, "episodic", False)),
    )
