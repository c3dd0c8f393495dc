"""Command-line configuration: one `Args` dataclass (its docstrings are `--help`), model-size presets, and
the step accounting that turns env-step budgets into loop iterations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from anakin_tdmpc.tdmpc import TDMPCConfig
from anakin_tdmpc.tdmpc2 import TDMPC2Config

ALGOS = ("tdmpc2", "tdmpc")

# TD-MPC2 model-size presets (millions of parameters): encoder width, MLP width, latent size,
# encoder layers, Q-functions. From the paper's appendix / official config.
MODEL_SIZES = {
    1: dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    5: dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    19: dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    48: dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    317: dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}


# TD-MPC (original) per-domain defaults: every value of the official cfgs/tasks/*.yaml (cartpole, walker,
# humanoid, dog; 4 is default.yaml's action repeat) plus the paper's action repeat 2 for finger (the official
# repository has no finger file). TD-MPC has a single model size (enc 256, mlp 512, latent 50) and seeds 5000
# agent steps in its single-env trainer.
TDMPC_DOMAIN_DEFAULTS = {
    "cartpole": dict(action_repeat=8),
    "walker": dict(action_repeat=2),
    "finger": dict(action_repeat=2),
    "humanoid": dict(action_repeat=2, iterations=12, latent_dim=100),
    "dog": dict(action_repeat=2, iterations=8, latent_dim=100, batch_size=2048, lr=3e-4),
}
TDMPC_ACTION_REPEAT = 4
TDMPC_SEED_STEPS = 5000
TDMPC2_ACTION_REPEAT = 2


# Named configurations (--preset): flag values per algorithm, applied under the flags given explicitly.
# "paper" is the papers' own settings (every flag at its default); "cpu-small" is a model and planner small
# enough to learn the easy tasks on a laptop CPU in minutes and 100k env steps in well under an hour.
PRESETS = {
    "paper": {"tdmpc2": {}, "tdmpc": {}},
    "cpu-small": {
        "tdmpc2": dict(num_envs=8, model_size=1, latent_dim=64, mlp_dim=128, enc_dim=128, num_q=2, num_samples=64,
                       num_elites=8, num_pi_trajs=4, iterations=3, batch_size=64),
        "tdmpc": dict(num_envs=8, mlp_dim=128, enc_dim=128, num_samples=64, num_elites=8, iterations=3,
                      batch_size=64),
    },
}


class ConfigError(ValueError):
    """A bad setting; the CLI prints its one-line message and exits with code 2."""


@dataclasses.dataclass
class Args:
    """Train TD-MPC2 or TD-MPC on an MJX DeepMind Control task, fused into one compiled JAX program."""

    algo: str = "tdmpc2"
    """algorithm to train: tdmpc2 (TD-MPC2, ICLR 2024) or tdmpc (the original TD-MPC, ICML 2022: prioritized
    replay, planning horizon and exploration std scheduled over its first 25k agent steps)"""
    task: str = "cheetah-run"
    """DMC task, e.g. cheetah-run, walker-walk, cup-catch or dm_control/cheetah-run-v0"""
    preset: str = "paper"
    """named configuration, applied under the flags given explicitly: paper (the paper's settings, every flag
    at its default) or cpu-small (tdmpc2: --num_envs 8 --model_size 1 --latent_dim 64 --mlp_dim 128 --enc_dim
    128 --num_q 2 --num_samples 64 --num_elites 8 --num_pi_trajs 4 --iterations 3 --batch_size 64; tdmpc:
    --num_envs 8 --mlp_dim 128 --enc_dim 128 --num_samples 64 --num_elites 8 --iterations 3 --batch_size 64)"""
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
    its paper: cartpole 8, walker / finger / humanoid / dog 2, others 4)"""
    episode_length: Optional[int] = None
    """agent steps per episode (default: 1000 control steps / action_repeat, e.g. 500 at action repeat 2)"""
    seed_steps: Optional[int] = None
    """agent steps of uniform random actions before learning, summed over envs (default: the official
    single-env amount, tdmpc2 max(1000, 5 x episode_length), tdmpc 5000, or num_envs x episode_length if that
    is more, so every env finishes a whole random episode); followed by that many pretraining updates"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions (capped at the run's total agent steps)"""
    batch_size: Optional[int] = None
    """sequences of horizon+1 steps per update (default: 256 for tdmpc2, 512 for tdmpc, 2048 for tdmpc on dog)"""
    eval_every: int = 100_000
    """env steps between evaluations (and one at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation, run in parallel with deterministic planning"""
    log_every: int = 10_000
    """env steps between log lines / metrics.jsonl rows (one compiled chunk each; a chunk is never longer
    than --eval_every or --checkpoint_every)"""
    run_dir: Optional[str] = None
    """output folder (default: runs/<task>__<algo>__<seed>__<time>)"""
    # planner overrides
    horizon: Optional[int] = None
    """planning / training horizon H (default 3 for tdmpc2; 5 for tdmpc, whose planning horizon grows
    linearly from 1 to H over its first 25k agent steps)"""
    iterations: Optional[int] = None
    """MPPI iterations (default 6; tdmpc2 +2 when the action dim is >= 20; tdmpc 12 on humanoid, 8 on dog)"""
    num_samples: Optional[int] = None
    """MPPI action sequences per iteration (default 512; tdmpc adds its policy sequences on top)"""
    num_elites: Optional[int] = None
    """elite sequences refitting the MPPI distribution (default 64)"""
    num_pi_trajs: Optional[int] = None
    """sequences proposed by the policy prior (default 24 for tdmpc2; 5% of num_samples for tdmpc)"""
    # network overrides (on top of --model_size)
    enc_dim: Optional[int] = None
    """encoder hidden width"""
    mlp_dim: Optional[int] = None
    """hidden width of dynamics, reward, policy and Q networks"""
    latent_dim: Optional[int] = None
    """latent size (tdmpc2: a multiple of 8, the SimNorm group; tdmpc: 50, 100 on humanoid and dog)"""
    num_q: Optional[int] = None
    """Q-functions in the ensemble (>= 2; tdmpc2 only, tdmpc has twin Qs)"""
    num_enc_layers: Optional[int] = None
    """encoder layers (tdmpc2 only)"""
    lr: Optional[float] = None
    """learning rate (default 3e-4 for tdmpc2, encoder x 0.3; 1e-3 for tdmpc, 3e-4 on dog)"""
    planner_bf16: bool = True
    """tdmpc2: plan with bfloat16 matmuls (float32 accumulation, norms and MPPI statistics); ~1.5x faster
    planning on CPU; --no_planner_bf16 plans in float32 as the official code (updates are always float32)"""
    # outputs: videos, wandb, checkpoints (may differ between a run and its --resume)
    capture_video: bool = False
    """at each evaluation, render one eval episode to <run_dir>/videos/<env_steps>.mp4 (needs EGL or OSMesa;
    the run goes on without videos if neither works)"""
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


_INT_TYPES, _FLOAT_TYPES = ("int", "Optional[int]"), ("float", "Optional[float]")


def _numeric_fields() -> dict[str, str]:
    """Args field -> "int" / "float" for the numeric flags."""
    kinds = {}
    for field in dataclasses.fields(Args):
        kind = str(field.type)
        if kind in _INT_TYPES:
            kinds[field.name] = "int"
        elif kind in _FLOAT_TYPES:
            kinds[field.name] = "float"
    return kinds


def normalise_numeric_argv(argv: list[str]) -> list[str]:
    """Checks every numeric flag's value on the command line before it is parsed -> argv, with integer flags
    written in float notation (`--total_timesteps 1e6`, `2.0`) turned into plain integers when exact.

    Raises ConfigError naming the flag and its value for a value that is not a number, a non-integer given to
    an integer flag (`--batch_size 2.5`), a number that is not finite (`--lr nan`, `--utd inf`), or a flag
    with no value."""
    kinds, out, i = _numeric_fields(), [], 0
    while i < len(argv):
        token = argv[i]
        name, value, inline = None, None, False
        if token.startswith("--"):
            flag, sep, rest = token[2:].partition("=")
            if flag.replace("-", "_") in kinds:
                name, inline = flag.replace("-", "_"), bool(sep)
                if inline:
                    value = rest
                elif i + 1 < len(argv) and not (argv[i + 1].startswith("--") and not _is_number(argv[i + 1])):
                    value = argv[i + 1]
                else:
                    raise ConfigError(f"--{name} needs a value")
        if name is None:
            out.append(token)
            i += 1
            continue
        value = _check_number(name, kinds[name], value)
        out += [f"--{name}={value}"] if inline else [token, value]
        i += 1 if inline else 2
    return out


def explicit_flags(argv: list[str]) -> set[str]:
    """Args fields named on a command line (`--num_envs 8`, `--lr=1e-3`, `--no_planner_bf16`)."""
    names = {f.name for f in dataclasses.fields(Args)}
    found = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].partition("=")[0].replace("-", "_")
            if name.startswith("no_") and name[3:] in names:
                name = name[3:]
            if name in names:
                found.add(name)
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_number(name: str, kind: str, text: str) -> str:
    if text == "None":
        return text  # an optional flag set back to its default
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"--{name} expects {'an integer' if kind == 'int' else 'a number'}, got {text!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"--{name} must be a finite number, got {text!r}")
    if kind == "float":
        return text
    try:
        return str(int(text))
    except ValueError:
        pass
    if number != int(number):
        raise ConfigError(f"--{name} expects an integer, got {text!r}")
    return str(int(number))  # 1e6 -> 1000000


def check_finite(args: Args) -> None:
    """Every numeric setting is a finite number (the CLI checks the command line; this covers Args built in
    Python)."""
    for name in _numeric_fields():
        value = getattr(args, name)
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
            raise ConfigError(f"--{name} must be a finite number, got {value!r}")


def apply_preset(args: Args, explicit: Optional[set[str]] = None) -> Args:
    """`args` with its preset's values for every flag not in `explicit` (the flags given on the command
    line). Without `explicit` (Args built in Python), a field still at its default takes the preset's value."""
    if args.preset not in PRESETS:
        raise ConfigError(f"unknown --preset '{args.preset}'; valid: {', '.join(PRESETS)}")
    if args.algo not in ALGOS:
        raise ConfigError(f"unknown algo '{args.algo}'; valid: {', '.join(ALGOS)}")
    defaults = Args()
    if explicit is None:
        explicit = {f.name for f in dataclasses.fields(Args) if getattr(args, f.name) != getattr(defaults, f.name)}
    values = {k: v for k, v in PRESETS[args.preset][args.algo].items() if k not in explicit}
    return dataclasses.replace(args, **values)


def _domain(task: str) -> str:
    from anakin_tdmpc.envs import canonical_task_name

    return canonical_task_name(task).split("-")[0]


def _tdmpc_domain(task: str) -> dict:
    return TDMPC_DOMAIN_DEFAULTS.get(_domain(task), {})


def resolve_args(args: Args) -> Args:
    """Fill the flags whose default (None) depends on the algorithm and task: action repeat and batch size
    (per domain for tdmpc). Seed steps depend on the episode length and env count: see make_schedule."""
    tdmpc = args.algo == "tdmpc"
    domain = _tdmpc_domain(args.task) if tdmpc else {}
    values = {}
    if args.action_repeat is None:
        values["action_repeat"] = domain.get("action_repeat", TDMPC_ACTION_REPEAT) if tdmpc else TDMPC2_ACTION_REPEAT
    if args.batch_size is None:
        values["batch_size"] = domain.get("batch_size", TDMPCConfig.batch_size) if tdmpc else TDMPC2Config.batch_size
    return dataclasses.replace(args, **values) if values else args


def default_seed_steps(algo: str, episode_length: int, num_envs: int) -> int:
    """Agent steps of random actions, summed over envs: the official single-env trainer's amount (tdmpc2
    max(1000, 5 x episode length); tdmpc 5000), or num_envs x episode length if that is more, so that every
    one of the num_envs envs finishes at least one whole episode of random actions before learning starts."""
    single = TDMPC_SEED_STEPS if algo == "tdmpc" else max(1000, 5 * episode_length)
    return max(single, num_envs * episode_length)


def tdmpc_config(args: Args) -> TDMPCConfig:
    """TD-MPC's config: the paper's defaults, the task domain's (humanoid), then any explicit overrides."""
    args = resolve_args(args)
    if args.model_size != Args.model_size:
        raise ConfigError("--model_size is a TD-MPC2 preset; tdmpc has one size (override --enc_dim, --mlp_dim, "
                          "--latent_dim instead)")
    for name in ("num_q", "num_enc_layers"):
        if getattr(args, name) is not None:
            raise ConfigError(f"--{name} applies to tdmpc2 only")
    values = {k: v for k, v in _tdmpc_domain(args.task).items() if k != "action_repeat"}
    for name in ("horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs", "enc_dim", "mlp_dim",
                 "latent_dim", "lr", "batch_size"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    cfg = dataclasses.replace(TDMPCConfig(), **values)
    for name in ("horizon", "iterations", "num_samples", "num_elites", "enc_dim", "mlp_dim", "latent_dim",
                 "batch_size"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {cfg.lr}")
    num_pi_trajs = cfg.num_pi_trajs if cfg.num_pi_trajs is not None else int(cfg.mixture_coef * cfg.num_samples)
    if num_pi_trajs < 0:
        raise ConfigError(f"--num_pi_trajs must be >= 0, got {num_pi_trajs}")
    if cfg.num_elites > cfg.num_samples + num_pi_trajs:
        raise ConfigError(f"--num_elites ({cfg.num_elites}) must not exceed the {cfg.num_samples + num_pi_trajs} "
                          "sequences (num_samples + num_pi_trajs)")
    return dataclasses.replace(cfg, num_pi_trajs=num_pi_trajs)


def algo_config(args: Args) -> TDMPC2Config | TDMPCConfig:
    """The algorithm's config: the model-size preset (tdmpc2) or the paper's defaults (tdmpc), then any
    explicit overrides."""
    if args.algo == "tdmpc":
        return tdmpc_config(args)
    if args.model_size not in MODEL_SIZES:
        raise ConfigError(f"--model_size must be one of {sorted(MODEL_SIZES)}, got {args.model_size}")
    values = dict(MODEL_SIZES[args.model_size])
    for name in ("horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs", "enc_dim", "mlp_dim",
                 "latent_dim", "num_q", "num_enc_layers", "lr", "batch_size"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    cfg = dataclasses.replace(TDMPC2Config(), planner_bf16=args.planner_bf16, **values)
    positive = ("horizon", "iterations", "num_samples", "num_elites", "enc_dim", "mlp_dim", "latent_dim",
                "num_enc_layers", "batch_size")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {cfg.lr}")
    if cfg.latent_dim % cfg.simnorm_dim:
        raise ConfigError(f"--latent_dim must be a multiple of {cfg.simnorm_dim}, got {cfg.latent_dim}")
    if cfg.num_q < 2:
        raise ConfigError(f"--num_q must be at least 2, got {cfg.num_q}")
    if not 0 <= cfg.num_pi_trajs < cfg.num_samples:
        raise ConfigError(f"--num_pi_trajs must be in [0, num_samples), got {cfg.num_pi_trajs}")
    if cfg.num_elites > cfg.num_samples:
        raise ConfigError(f"--num_elites ({cfg.num_elites}) must not exceed --num_samples ({cfg.num_samples})")
    return cfg


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Step accounting. Agent steps are summed over envs; env steps = agent steps x action repeat."""

    agent_steps_per_iter: int  # = num_envs
    env_steps_per_iter: int  # = num_envs x action_repeat
    total_iters: int
    seed_steps: int  # agent steps of random actions (summed over envs)
    pretrain_updates: int
    updates_per_iter: int
    iters_per_chunk: int
    buffer_capacity: int

    @property
    def total_env_steps(self) -> int:
        return self.total_iters * self.env_steps_per_iter


def make_schedule(args: Args, episode_length: int, horizon: int, run_seed_steps: Optional[int] = None) -> Schedule:
    """Validate the step settings and derive the loop's iteration counts.

    `run_seed_steps`: on --resume, the seed steps the run was started with; they stay the run's (unless
    --seed_steps is given) even where the default rule has changed since."""
    args = resolve_args(args)
    for name in ("total_timesteps", "num_envs", "action_repeat", "eval_every", "log_every", "buffer_size",
                 "checkpoint_every"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.eval_episodes < 0:
        raise ConfigError(f"--eval_episodes must be >= 0, got {args.eval_episodes}")
    if args.utd <= 0:
        raise ConfigError(f"--utd must be positive, got {args.utd}")
    updates = args.utd * args.num_envs
    if abs(updates - round(updates)) > 1e-6:
        raise ConfigError(f"--utd x --num_envs must be a whole number of updates per iteration, got {updates:g}")
    n, env_per_iter = args.num_envs, args.num_envs * args.action_repeat
    total_iters = math.ceil(args.total_timesteps / env_per_iter)
    if args.seed_steps is not None:
        seed_steps = args.seed_steps
    elif run_seed_steps is not None:
        seed_steps = run_seed_steps
    else:
        seed_steps = default_seed_steps(args.algo, episode_length, args.num_envs)
    if seed_steps <= 0:
        raise ConfigError(f"--seed_steps must be positive, got {seed_steps}")
    if seed_steps >= total_iters * n:
        raise ConfigError(
            f"--total_timesteps {args.total_timesteps} leaves no learning after {seed_steps} seed steps "
            f"({seed_steps * args.action_repeat} env steps); raise it or lower --seed_steps"
        )
    capacity = min(args.buffer_size, total_iters * n)
    rows = math.ceil(capacity / n)
    # a sample needs a whole window of horizon+1 steps inside one episode and inside the buffer
    if episode_length < horizon + 1:
        raise ConfigError(f"episode length {episode_length} is shorter than a training window of {horizon + 1} steps")
    if rows < horizon + 1 or seed_steps // n < horizon + 1:
        raise ConfigError(
            f"the buffer cannot hold a training window: {rows} rows per env (buffer {capacity}, seeding "
            f"{seed_steps // n} steps per env) for horizon+1 = {horizon + 1}; raise --buffer_size or --seed_steps"
        )
    if args.batch_size > capacity:
        raise ConfigError(f"--batch_size {args.batch_size} is larger than the replay buffer ({capacity} transitions)")
    return Schedule(
        agent_steps_per_iter=n,
        env_steps_per_iter=env_per_iter,
        total_iters=total_iters,
        seed_steps=seed_steps,
        pretrain_updates=seed_steps,
        updates_per_iter=int(round(updates)),
        # a chunk (one compiled call: no eval, checkpoint or Ctrl-C in between) spans at most the shortest of
        # the log, eval and checkpoint periods, so none of them can stretch to the whole run
        iters_per_chunk=max(1, min(args.log_every, args.eval_every, args.checkpoint_every) // env_per_iter),
        buffer_capacity=capacity,
    )
