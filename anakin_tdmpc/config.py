"""The run's configuration, resolved once: `Args` (the flags; their docstrings are `--help`) with its preset
applied -> `resolve` -> one frozen `RunSpec` that the build, the trainer, `evaluate` and config.json read.

    args = apply_preset(Args(task="walker-walk", preset="cpu-small"))
    spec = resolve(args, num_devices=1)
    spec.agent_config, spec.schedule, spec.envs_per_device, ...

`resolve` checks every value (one `ConfigError` naming the flag), fills every default that depends on the
algorithm, the task or the devices, and works out the step accounting; nothing after it re-resolves or
re-checks. Per-algorithm defaults live with each algorithm (agents/), per-task ones with the task (envs/)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from anakin_tdmpc.agents import AGENTS, agent_class
from anakin_tdmpc.errors import ConfigError

# --preset names: every agent defines each of them (its PRESETS); "paper" is every flag at its default
PRESETS = tuple(next(iter(AGENTS.values())).PRESETS)


@dataclasses.dataclass
class Args:
    """Train TD-MPC2 or TD-MPC on an MJX DeepMind Control task, fused into one compiled JAX program."""

    algo: str = "tdmpc2"
    """algorithm to train: tdmpc2 (TD-MPC2, ICLR 2024) or tdmpc (the original TD-MPC, ICML 2022: prioritized
    replay, planning horizon and exploration std scheduled over its first 25k agent steps)"""
    task: str = "cheetah-run"
    """DMC task, e.g. cheetah-run, walker-walk, cup-catch or dm_control/cheetah-run-v0; brax's MJX tasks as
    brax/hopper, brax/inverted_pendulum, ... (episodic); or your own env as package.module:function
    (docs/episodic-and-own-env.md)"""
    preset: str = "paper"
    """named configuration, applied under the flags given explicitly: paper (the paper's settings, every flag
    at its default) or cpu-small (tdmpc2: --num_envs 8 --model_size 1 --latent_dim 64 --mlp_dim 128 --enc_dim
    128 --num_q 2 --num_samples 64 --num_elites 8 --num_pi_trajs 4 --iterations 3 --batch_size 64; tdmpc:
    --num_envs 8 --mlp_dim 128 --enc_dim 128 --num_samples 67 --num_elites 8 --iterations 3 --batch_size 64)"""
    total_timesteps: int = 1_000_000
    """env steps to train for, counting action repeat (as the TD-MPC2 paper's curves)"""
    seed: int = 1
    """random seed (same seed + config + machine = same run)"""
    num_envs: int = 16
    """parallel environments stepped together on the device"""
    utd: float = 1.0
    """gradient updates per agent step (the paper: 1); each iteration runs utd x num_envs updates"""
    model_size: int = 5
    """TD-MPC2 preset in millions of parameters: 1, 5, 19, 48 or 317 (tdmpc has one size: enc 256, mlp 512,
    latent 50, 100 on humanoid)"""
    action_repeat: Optional[int] = None
    """times each action is repeated in the env (default: the algorithm's: 2 for tdmpc2; for tdmpc per task as
    its paper: cartpole 8, walker / finger / humanoid / dog 2, others 4; brax/* tasks: 1)"""
    episode_length: Optional[int] = None
    """agent steps per episode (default: 1000 control steps / action_repeat, e.g. 500 at action repeat 2)"""
    seed_steps: Optional[int] = None
    """agent steps of uniform random actions before learning, summed over envs (default: the official
    single-env amount, tdmpc2 max(1000, 5 x episode_length), tdmpc 5000, at any num_envs; at least
    num_envs x (horizon + 1)); followed by that many pretraining updates"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions (capped at the run's total agent steps)"""
    batch_size: Optional[int] = None
    """sequences of horizon+1 steps per update (default: 256 for tdmpc2, 512 for tdmpc, 2048 for tdmpc on dog)"""
    eval_every: int = 100_000
    """env steps between evaluations (and one at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation, run in parallel with deterministic planning"""
    log_every: int = 10_000
    """env steps between log lines / metrics.jsonl rows (a log period is never longer than --eval_every or
    --checkpoint_every; it runs as compiled chunks of at most --max_chunk_seconds each)"""
    run_dir: Optional[str] = None
    """output folder (default: runs/<task>__<algo>__<seed>__<time>)"""
    # planner overrides
    horizon: Optional[int] = None
    """planning / training horizon H (default 3 for tdmpc2; 5 for tdmpc, whose planning horizon grows
    linearly from 1 to H over its first 25k agent steps)"""
    iterations: Optional[int] = None
    """MPPI iterations (default 6; tdmpc2 +2 when the action dim is >= 20; tdmpc 12 on humanoid, 8 on dog)"""
    num_samples: Optional[int] = None
    """MPPI action sequences per iteration, the policy's included (default 512 for tdmpc2; 537 for tdmpc: the
    official TD-MPC's 512 Gaussian sequences plus its 5% from the policy, 25, which its code counts apart)"""
    num_elites: Optional[int] = None
    """elite sequences refitting the MPPI distribution (default 64)"""
    num_pi_trajs: Optional[int] = None
    """of --num_samples, the sequences proposed by the policy prior (default 24 for tdmpc2; num_samples // 21
    for tdmpc, 5% of the Gaussian ones)"""
    # network overrides (on top of --model_size)
    enc_dim: Optional[int] = None
    """encoder hidden width (default: from --model_size for tdmpc2, 256 at 5M; 256 for tdmpc)"""
    mlp_dim: Optional[int] = None
    """hidden width of dynamics, reward, policy and Q networks (default: from --model_size for tdmpc2, 512 at
    5M; 512 for tdmpc)"""
    latent_dim: Optional[int] = None
    """latent size (default: from --model_size for tdmpc2, 512 at 5M, a multiple of 8, the SimNorm group;
    tdmpc: 50, 100 on humanoid and dog)"""
    num_q: Optional[int] = None
    """Q-functions in the ensemble (default: from --model_size, 5 at 5M; >= 2; tdmpc2 only, tdmpc has twin Qs)"""
    num_enc_layers: Optional[int] = None
    """encoder layers (default: from --model_size, 2 at 5M; tdmpc2 only)"""
    lr: Optional[float] = None
    """learning rate (default 3e-4 for tdmpc2, encoder x 0.3; 1e-3 for tdmpc, 3e-4 on dog)"""
    planner_bf16: bool = True
    """tdmpc2: plan with bfloat16 matmuls (float32 accumulation, norms and MPPI statistics), cheaper on a CPU;
    --no_planner_bf16 plans in float32 as the official code (updates are always float32)"""
    # outputs: videos, wandb, checkpoints (may differ between a run and its --resume)
    capture_video: bool = False
    """at each evaluation, render one eval episode to <run_dir>/videos/<env_steps>.mp4 (needs EGL or OSMesa;
    the run goes on without videos if neither works)"""
    tensorboard: bool = True
    """write TensorBoard event files to <run_dir>/tensorboard (the same scalars as metrics.jsonl)"""
    track: bool = False
    """log metrics, config and videos to Weights & Biases (WANDB_MODE=offline works without an account)"""
    wandb_project: str = "anakin_tdmpc"
    """wandb project (with --track)"""
    wandb_entity: Optional[str] = None
    """wandb entity, a user or team (with --track; default: your default entity)"""
    wandb_group: Optional[str] = None
    """wandb group, e.g. to gather seeds of one experiment (with --track)"""
    checkpoint_every: int = 100_000
    """env steps between checkpoints of the whole training state, at chunk boundaries (and one at the end)"""
    keep_checkpoints: int = 3
    """checkpoints kept in <run_dir>/checkpoints (the oldest are deleted)"""
    max_chunk_seconds: float = 20.0
    """seconds one compiled chunk may take at most: a stop signal (Ctrl-C, SIGTERM, SIGUSR1) waits that long at
    most, then a checkpoint is saved; chunks are sized from the measured time per iteration and never change the
    results (docs/outputs-and-resume.md: Stopping)"""
    resume: bool = False
    """continue the run in --run_dir from its latest checkpoint (same config required); a resumed run writes
    the same metrics as an uninterrupted one"""
    # scaling out: devices, processes, seeds
    num_devices: Optional[int] = None
    """data-parallel devices (default: all): each runs num_envs / D envs, keeps its own buffer shard and
    takes batch_size / D of every batch; gradients are averaged, parameters stay identical"""
    num_seeds: int = 1
    """independent agents trained in one program (seeds seed .. seed+num_seeds-1, vmapped); metrics per
    seed and as mean / min / max"""
    coordinator_address: Optional[str] = None
    """host:port of process 0, for a multi-process run through jax.distributed (or JAX_COORDINATOR_ADDRESS)"""
    num_processes: Optional[int] = None
    """processes of a multi-process run (or JAX_NUM_PROCESSES)"""
    process_id: Optional[int] = None
    """this process's index in [0, num_processes) (or JAX_PROCESS_ID); only process 0 logs and renders"""


CONFIG_FORMAT = 2
"""The meaning of config.json's flags: 2 since --num_samples counts TD-MPC's policy sequences too (1 before)."""


def upgrade_saved_args(saved: dict, config_format: int) -> dict:
    """The flags a run recorded in an older config.json format, as this format writes the same run."""
    if config_format < 2 and saved.get("algo") == "tdmpc" and saved.get("num_samples") is not None:
        gaussian, pi = saved["num_samples"], saved.get("num_pi_trajs")
        saved = {**saved, "num_samples": gaussian + (int(0.05 * gaussian) if pi is None else pi)}
    return saved


# flags that only say where / how a run is recorded; they may differ between a run and its --resume
RUN_MANAGEMENT_FLAGS = frozenset(
    {"run_dir", "resume", "tensorboard", "track", "wandb_project", "wandb_entity", "wandb_group", "capture_video",
     "checkpoint_every", "keep_checkpoints", "max_chunk_seconds", "coordinator_address", "process_id"}
)
# flags that must be positive when set (None: the algorithm's or the task's default); --num_devices is the
# device layer's (loop/parallel.py: select_devices)
POSITIVE_FLAGS = ("total_timesteps", "num_envs", "utd", "eval_every", "log_every", "buffer_size", "num_seeds",
                  "action_repeat", "episode_length", "seed_steps", "batch_size", "horizon", "iterations",
                  "num_samples", "num_elites", "enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "lr")


def apply_preset(args: Args, explicit: Optional[set[str]] = None) -> Args:
    """`args` with its preset's values for every flag not in `explicit` (the flags given on the command
    line). Without `explicit` (Args built in Python), a field still at its default takes the preset's value."""
    if args.preset not in PRESETS:
        raise ConfigError(f"unknown --preset '{args.preset}'; valid: {', '.join(PRESETS)}")
    preset = agent_class(args.algo).PRESETS[args.preset]
    defaults = Args()
    if explicit is None:
        explicit = {f.name for f in dataclasses.fields(Args) if getattr(args, f.name) != getattr(defaults, f.name)}
    values = {k: v for k, v in preset.items() if k not in explicit}
    return dataclasses.replace(args, **values)


# ------------------------------------------------------------------------------------------- checks


def numeric_fields() -> dict[str, str]:
    """Args field -> "int" / "float" for the numeric flags."""
    kinds = {"int": "int", "Optional[int]": "int", "float": "float", "Optional[float]": "float"}
    return {f.name: kinds[str(f.type)] for f in dataclasses.fields(Args) if str(f.type) in kinds}


def check_finite(args: Args, names) -> None:
    """Each numeric flag in `names` is a finite number (the CLI checks the command line; this covers Args built
    in Python)."""
    for name in numeric_fields().keys() & set(names):
        value = getattr(args, name)
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
            raise ConfigError(f"--{name} must be a finite number, got {value!r}")


def _check_flags(args: Args) -> None:
    """Every flag outside RUN_MANAGEMENT_FLAGS (the session checks those: session/setup.py) that has a range of
    its own; the algorithm's Config.validate checks how its settings fit together."""
    check_finite(args, numeric_fields().keys() - RUN_MANAGEMENT_FLAGS)
    for name in POSITIVE_FLAGS:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name} must be positive, got {value}")
    if args.eval_episodes < 0:
        raise ConfigError(f"--eval_episodes must be >= 0, got {args.eval_episodes}")
    if args.num_pi_trajs is not None and args.num_pi_trajs < 0:
        raise ConfigError(f"--num_pi_trajs must be >= 0, got {args.num_pi_trajs}")
    updates = args.utd * args.num_envs
    if abs(updates - round(updates)) > 1e-6:
        raise ConfigError(f"--utd x --num_envs must be a whole number of updates per iteration, got {updates:g}")


# ----------------------------------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Step accounting. Agent steps are summed over envs; env steps = agent steps x action repeat."""

    agent_steps_per_iter: int  # = num_envs
    env_steps_per_iter: int  # = num_envs x action_repeat
    total_iters: int
    seed_steps: int  # agent steps of random actions (summed over envs)
    pretrain_updates: int
    updates_per_iter: int
    iters_per_period: int  # iterations of one log period
    buffer_capacity: int

    @property
    def total_env_steps(self) -> int:
        return self.total_iters * self.env_steps_per_iter


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a run is built from, resolved once (`resolve`)."""

    args: Args  # the flags, preset applied: what config.json records and --resume compares
    task: str  # the canonical task name
    action_repeat: int
    episode_length: int  # agent steps
    agent_config: Any  # the algorithm's Config for the whole run (batch_size summed over devices)
    schedule: Schedule
    num_devices: int  # data-parallel devices; each runs one share:
    envs_per_device: int
    batch_per_device: int
    buffer_per_device: int  # replay capacity in transitions

    @property
    def agent_class(self) -> type:
        return agent_class(self.args.algo)

    @property
    def seeds(self) -> list[int]:
        return list(range(self.args.seed, self.args.seed + self.args.num_seeds))


def resolve(args: Args, num_devices: int = 1, run_seed_steps: Optional[int] = None) -> RunSpec:
    """`args` (preset applied) -> the run's RunSpec on `num_devices` data-parallel devices; ConfigError (or
    envs' EnvError for an unknown task) with one line naming the first setting that cannot run.

    `run_seed_steps`: on --resume, the seed steps the run was started with; they stay the run's (unless
    --seed_steps is given) even where the default rule has changed since."""
    from anakin_tdmpc import envs

    _check_flags(args)
    algo = agent_class(args.algo)
    task = envs.canonical_task_name(args.task)
    domain = envs.domain(task)
    action_repeat = args.action_repeat or envs.task_action_repeat(task) or algo.default_action_repeat(domain)
    episode_length = args.episode_length or envs.default_episode_length(action_repeat)
    cfg = agent_config(algo, domain, args)
    schedule = _schedule(args, cfg, action_repeat, episode_length, run_seed_steps)
    for flag, value in (("--num_envs", args.num_envs), ("--batch_size", cfg.batch_size)):
        if value % num_devices:
            raise ConfigError(f"{flag} {value} must be divisible by the {num_devices} devices")
    return RunSpec(args=args, task=task, action_repeat=action_repeat, episode_length=episode_length,
                   agent_config=cfg, schedule=schedule, num_devices=num_devices,
                   envs_per_device=args.num_envs // num_devices, batch_per_device=cfg.batch_size // num_devices,
                   buffer_per_device=-(-schedule.buffer_capacity // num_devices))


# Args fields that set a field of the same name in some agent's Config (the agent-specific flags)
_AGENT_FIELDS = {f.name for agent in AGENTS.values() for f in dataclasses.fields(agent.Config)}


def agent_config(algo: type, domain: str, args: Args):
    """The algorithm's Config: its base for the domain (model size, per-domain defaults), then every flag
    given that names one of its Config fields, checked by its `validate`. A flag that only another algorithm
    has is refused."""
    base = algo.base_config(domain, args)
    own = {f.name for f in dataclasses.fields(algo.Config)}
    defaults, values = Args(), {}
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.name in own:
            if value is not None:
                values[field.name] = value
        elif field.name in _AGENT_FIELDS and value != getattr(defaults, field.name):
            others = [name for name, a in AGENTS.items() if field.name in {f.name for f in dataclasses.fields(a.Config)}]
            raise ConfigError(f"--{field.name} applies to {' and '.join(others)} only")
    return dataclasses.replace(base, **values).validate()


def default_seed_steps(algo: str, episode_length: int, num_envs: int, horizon: int) -> int:
    """Agent steps of random actions, summed over envs: the official single-env trainer's amount (tdmpc2
    max(1000, 5 x episode length); tdmpc 5000), the same number of env steps at any num_envs, or
    num_envs x (horizon + 1) if that is more (every env must hold one training window). Letting every env
    finish a whole episode first (num_envs x episode length) was measured worse at equal env steps at 16 envs
    on cartpole-swingup and walker-walk (docs/cli.md: Step accounting)."""
    return max(agent_class(algo).single_env_seed_steps(episode_length), num_envs * (horizon + 1))


def _schedule(args: Args, cfg, action_repeat: int, episode_length: int, run_seed_steps: Optional[int]) -> Schedule:
    """The loop's iteration counts from the env-step budgets, checked to leave learning and a training window."""
    n, env_per_iter, horizon = args.num_envs, args.num_envs * action_repeat, cfg.horizon
    total_iters = math.ceil(args.total_timesteps / env_per_iter)
    seed_steps = args.seed_steps or run_seed_steps or default_seed_steps(args.algo, episode_length, n, horizon)
    if seed_steps >= total_iters * n:
        raise ConfigError(
            f"--total_timesteps {args.total_timesteps} leaves no learning after {seed_steps} seed steps "
            f"({seed_steps * action_repeat} env steps); raise it or lower --seed_steps")
    capacity = min(args.buffer_size, total_iters * n)
    rows = math.ceil(capacity / n)
    # a sample needs a whole window of horizon+1 steps inside one episode and inside the buffer
    if episode_length < horizon + 1:
        raise ConfigError(f"episode length {episode_length} is shorter than a training window of {horizon + 1} steps")
    if rows < horizon + 1 or seed_steps // n < horizon + 1:
        raise ConfigError(
            f"the buffer cannot hold a training window: {rows} rows per env (buffer {capacity}, seeding "
            f"{seed_steps // n} steps per env) for horizon+1 = {horizon + 1}; raise --buffer_size or --seed_steps")
    if cfg.batch_size > capacity:
        raise ConfigError(f"--batch_size {cfg.batch_size} is larger than the replay buffer ({capacity} transitions)")
    return Schedule(
        agent_steps_per_iter=n, env_steps_per_iter=env_per_iter, total_iters=total_iters, seed_steps=seed_steps,
        pretrain_updates=seed_steps, updates_per_iter=int(round(args.utd * n)),
        # a log period spans at most the shortest of the log, eval and checkpoint periods, so none of them can
        # stretch to the whole run
        iters_per_period=max(1, min(args.log_every, args.eval_every, args.checkpoint_every) // env_per_iter),
        buffer_capacity=capacity,
    )
