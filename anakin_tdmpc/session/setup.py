"""The steps of a run's set-up (session/trainer.py: `Trainer.setup` calls them in order), each a small function
of what the steps before it made. Errors are one-line exceptions of errors.py; `one_line_errors` turns those of
the lower layers into the session's RunError."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Optional

from anakin_tdmpc import __version__
from anakin_tdmpc.errors import ConfigError, EnvError, ParallelError, RunError


@contextlib.contextmanager
def one_line_errors():
    """A bad setting, task or device choice inside the block becomes the RunError the CLI prints (exit code 2)."""
    try:
        yield
    except (ConfigError, EnvError, ParallelError) as e:
        raise RunError(str(e)) from None


def check_run_management(args) -> None:
    """The flags of config.RUN_MANAGEMENT_FLAGS, checked before anything is built or written; config.resolve
    checks every other flag."""
    from anakin_tdmpc.config import RUN_MANAGEMENT_FLAGS, check_finite

    check_finite(args, RUN_MANAGEMENT_FLAGS)
    if args.checkpoint_every <= 0:
        raise ConfigError(f"--checkpoint_every must be positive, got {args.checkpoint_every}")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep_checkpoints must be at least 1, got {args.keep_checkpoints}")
    if not args.max_chunk_seconds > 0:
        raise ConfigError(f"--max_chunk_seconds must be positive, got {args.max_chunk_seconds:g}")
    if args.resume and not args.run_dir:
        raise ConfigError("--resume needs --run_dir, the run to continue")
    if args.track and not args.wandb_project.strip():
        raise ConfigError("--wandb_project must not be empty")


def devices(args) -> list:
    """The run's devices, after joining a multi-process run (before anything else touches JAX's devices)."""
    from anakin_tdmpc.loop import parallel

    parallel.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    return parallel.select_devices(args.num_devices)


def is_primary() -> bool:
    """Whether this process writes the run's outputs (process 0)."""
    import jax

    return jax.process_index() == 0


def resume_point(args, num_devices: int):
    """With --resume, what the run dir holds to continue (checkpoint.ResumePoint), checked against these flags
    and devices; None for a new run."""
    from anakin_tdmpc.session import checkpoint

    if not args.resume:
        return None
    resume = checkpoint.find_resume_point(args.run_dir, dataclasses.asdict(args), args.keep_checkpoints,
                                          defaults=dataclasses.asdict(type(args)()))
    checkpoint.check_devices(resume and resume.meta, num_devices, f"the checkpoint in {args.run_dir}")
    return resume


def run_seed_steps(resume, args) -> Optional[int]:
    """A resumed run keeps the seeding it started with, also where the default rule has changed since."""
    if resume is None or args.seed_steps is not None:
        return None
    return (resume.meta or {}).get("config", {}).get("schedule", {}).get("seed_steps")


def render_backend(args, primary: bool):
    """With --capture_video on process 0: (OpenGL backend or None, why), chosen before MuJoCo loads its GL."""
    if not (args.capture_video and primary):
        return None
    from anakin_tdmpc.session.video import choose_backend_here

    return choose_backend_here()


def run_dir(args) -> str:
    """--run_dir, or the default name (process 0's clock in every process of a multi-process run)."""
    import jax

    from anakin_tdmpc.session.run_dir import default_run_dir

    return args.run_dir or default_run_dir(args, same_time_everywhere=jax.process_count() > 1)


def config_record(spec, env, agent) -> dict:
    """config.json: the flags as given, the resolved settings, the env, the schedule, the devices."""
    import jax

    from anakin_tdmpc.config import CONFIG_FORMAT

    return {
        "version": __version__,  # of the code that starts the run; a resumed run keeps its config.json
        "format": CONFIG_FORMAT,
        "args": dataclasses.asdict(spec.args),
        "algo_config": dataclasses.asdict(dataclasses.replace(agent.cfg, batch_size=spec.agent_config.batch_size)),
        "task": env.name,
        "env": {"obs_dim": env.obs_dim, "action_dim": env.action_dim, "action_repeat": env.action_repeat,
                "episode_length": env.episode_length, "episodic": env.episodic},
        "discount": agent.discount,
        "planner_iterations": agent.iterations,
        "schedule": dataclasses.asdict(spec.schedule),
        "jax": {"version": jax.__version__, "backend": jax.default_backend(), "devices": len(jax.devices())},
        "parallel": {"devices": spec.num_devices, "processes": jax.process_count(), "seeds": spec.seeds,
                     "envs_per_device": spec.envs_per_device, "batch_per_device": spec.batch_per_device},
    }


def check_memory(spec, par, k_init, devices) -> tuple[int, Optional[int]]:
    """(training state bytes per device, the device's memory or None); RunError when the state cannot fit."""
    import jax

    from anakin_tdmpc.loop import parallel

    state_bytes = par.state_bytes_per_device(k_init)
    local = next(d for d in devices if d.process_index == jax.process_index())
    limit = parallel.device_memory_bytes(local)
    if limit is not None and state_bytes > limit:
        raise RunError(f"the training state needs {state_bytes / 2**30:.1f} GiB per device ({spec.args.num_seeds} "
                       f"seed(s) x {spec.envs_per_device} envs, buffer {spec.buffer_per_device:,} per device) but a "
                       f"{devices[0].platform} device has {limit / 2**30:.1f} GiB; lower --buffer_size, "
                       "--num_seeds or --num_envs, or add devices")
    return state_bytes, limit


def restore(directory: str, resume, par, k_init, keep: int):
    """(carry, checkpoint meta) of the checkpoint to resume from, or None; a damaged or foreign checkpoint is
    refused (CheckpointError) before anything is written."""
    import jax

    from anakin_tdmpc.session import checkpoint

    if resume is None or resume.step is None:
        return None
    reader = checkpoint.Checkpointer(directory, keep, create=False)
    try:
        abstract = par.saved_view(jax.eval_shape(par.init, k_init))
        return reader.restore(resume.step, abstract, resume.meta, place=par.place)
    finally:
        reader.close()


def open_run_dir(directory: str, resume, config: dict, primary: bool) -> list[dict]:
    """A new run's folder and config.json, or, on --resume, metrics.jsonl cut back to the checkpoint (the
    continuation logs the later rows again) -> the rows kept."""
    from anakin_tdmpc.session import checkpoint
    from anakin_tdmpc.session.run_dir import prepare

    if not primary:
        return []
    if resume is None:
        prepare(directory, config)
        return []
    return checkpoint.truncate_metrics(os.path.join(directory, "metrics.jsonl"), resume.step or 0)
