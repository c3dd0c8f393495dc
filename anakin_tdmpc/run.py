"""`python -m anakin_tdmpc.run`: parse flags, build env + algorithm + fused loop, drive compiled chunks,
evaluate, and write <run_dir>/config.json, metrics.jsonl, curves.png, checkpoints/ (and videos/ with
--capture_video, wandb with --track); --resume continues a run exactly from its latest checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time

import numpy as np

from anakin_tdmpc import __version__


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def default_run_dir(args, same_time_everywhere: bool = False) -> str:
    """runs/<task>__<algo>__<seed>__<time>; in a multi-process run every process takes process 0's time."""
    now = int(time.time())
    if same_time_everywhere:
        from jax.experimental import multihost_utils

        now = int(multihost_utils.broadcast_one_to_all(np.int64(now)))
    task = args.task.replace("/", "_")
    return os.path.join("runs", f"{task}__{args.algo}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}")


def seed_columns(row: dict, key: str, values, seeds) -> None:
    """One metric of S seeds into `row`: `key` alone for one seed; else the mean over seeds at `key` plus
    `key/min`, `key/max` and `key/seed_<seed>` for each seed (NaN entries, e.g. a seed with no finished
    episode in a chunk, are left out of mean / min / max)."""
    values = np.asarray(values, dtype=np.float64)
    if len(seeds) == 1:
        row[key] = float(values[0])
        return
    finite = values[~np.isnan(values)]
    row[key] = float(finite.mean()) if finite.size else float("nan")
    row[f"{key}/min"] = float(finite.min()) if finite.size else float("nan")
    row[f"{key}/max"] = float(finite.max()) if finite.size else float("nan")
    for seed, value in zip(seeds, values):
        row[f"{key}/seed_{seed}"] = float(value)


def prepare_run_dir(run_dir: str, config: dict) -> None:
    """Create the run folder; refuse one that already holds a run (nothing is overwritten)."""
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path) or os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        try:
            with open(path) as f:
                same = json.load(f).get("args") == config["args"]
        except (OSError, ValueError):
            same = False
        what = "this same configuration" if same else "a different run"
        _fail(f"run dir {run_dir} already holds {what}; choose a new --run_dir"
              + (" or add --resume to continue it" if same else ""))
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        _fail(f"run dir {run_dir} exists and is not a folder")
    os.makedirs(run_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def build(args, num_devices: int = 1, run_seed_steps: int | None = None):
    """Validate everything that can be validated before any compilation -> (env, algo, loop, schedule).

    `run_seed_steps`: a resumed run's own seed steps (see config.make_schedule).

    With `num_devices` > 1, `loop` (and `algo`) are one device's share of a data-parallel run
    (parallel.py): num_envs / D envs, buffer capacity / D, batch_size / D, gradients averaged over devices.
    """
    from anakin_tdmpc import anakin, config, envs, parallel, tdmpc, tdmpc2

    if args.algo not in config.ALGOS:
        raise config.ConfigError(f"unknown algo '{args.algo}'; valid: {', '.join(config.ALGOS)}")
    envs.canonical_task_name(args.task)
    args = config.resolve_args(args)  # the algorithm's defaults for action repeat, batch size, seed steps
    if args.action_repeat <= 0:
        raise config.ConfigError(f"--action_repeat must be positive, got {args.action_repeat}")
    if args.episode_length is not None and args.episode_length <= 0:
        raise config.ConfigError(f"--episode_length must be positive, got {args.episode_length}")
    # everything that can be checked is checked before the (slow, noisy) env load
    envs.canonical_task_name(args.task)
    cfg = config.algo_config(args)
    if args.num_seeds < 1:
        raise config.ConfigError(f"--num_seeds must be positive, got {args.num_seeds}")
    if args.num_envs % num_devices:
        raise config.ConfigError(f"--num_envs {args.num_envs} must be divisible by the {num_devices} devices")
    if cfg.batch_size % num_devices:
        raise config.ConfigError(f"--batch_size {cfg.batch_size} must be divisible by the {num_devices} devices")
    episode_length = args.episode_length or envs.default_episode_length(args.action_repeat)
    schedule = config.make_schedule(args, episode_length, cfg.horizon, run_seed_steps)
    env = envs.make_env(args.task, action_repeat=args.action_repeat, episode_length=episode_length)
    algo_class = {"tdmpc2": tdmpc2.TDMPC2, "tdmpc": tdmpc.TDMPC}[args.algo]
    algo = algo_class(dataclasses.replace(cfg, batch_size=cfg.batch_size // num_devices), env.obs_dim,
                      env.action_dim, env.episode_length)
    if num_devices > 1:
        algo.axis_name = parallel.AXIS
    loop = anakin.Anakin(
        algo,
        env,
        num_envs=args.num_envs // num_devices,
        buffer_capacity=-(-schedule.buffer_capacity // num_devices),
        seed_steps=schedule.seed_steps,
        updates_per_iter=schedule.updates_per_iter,
        pretrain_updates=schedule.pretrain_updates,
        steps_per_iter=args.num_envs,
    )
    return env, algo, loop, schedule


def train(args) -> str:
    """Run training for `args` (an Args built in Python: fields still at their default take --preset's
    values); returns the run dir. The run dir's lock is released when it returns or raises, so one Python
    process can run several trainings one after another."""
    from anakin_tdmpc.config import ConfigError, apply_preset

    try:
        args = apply_preset(args)
    except ConfigError as e:
        _fail(str(e))
    return _train_unlocking(args)


def _train_unlocking(args) -> str:
    held = len(_LOCKS)
    try:
        return _train(args)
    finally:
        while len(_LOCKS) > held:
            _LOCKS.pop().close()  # closing the file drops its flock


def _train(args) -> str:
    from anakin_tdmpc.config import ConfigError, check_finite

    try:
        check_finite(args)
    except ConfigError as e:
        _fail(str(e))
    _check_output_flags(args)
    from anakin_tdmpc import parallel

    try:  # before anything else touches JAX's devices
        parallel.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
        devices = parallel.select_devices(args.num_devices)
    except parallel.ParallelError as e:
        _fail(str(e))
    import jax

    from anakin_tdmpc import buffer as replay
    from anakin_tdmpc import checkpoint
    from anakin_tdmpc.config import ConfigError
    from anakin_tdmpc.envs import UnknownTaskError
    from anakin_tdmpc.logger import QuietLogger, RunLogger, format_duration

    primary = jax.process_index() == 0  # only process 0 writes logs, metrics, curves, videos, wandb
    num_devices, seeds = len(devices), list(range(args.seed, args.seed + args.num_seeds))
    resume = None  # checkpoint.ResumePoint with --resume when the run dir holds a run
    if args.resume:
        try:
            resume = checkpoint.find_resume_point(args.run_dir, dataclasses.asdict(args), args.keep_checkpoints,
                                                  defaults=dataclasses.asdict(type(args)()))
            checkpoint.check_devices(resume and resume.meta, num_devices, f"the checkpoint in {args.run_dir}")
        except checkpoint.CheckpointError as e:
            _fail(str(e))
    render = _choose_render_backend() if args.capture_video and primary else None  # before mujoco's GL is used
    # a resumed run keeps the seeding it started with, also where the default rule has changed since
    run_seed_steps = ((resume.meta or {}).get("config", {}).get("schedule", {}).get("seed_steps")
                      if resume is not None and args.seed_steps is None else None)
    try:
        env, algo, loop, schedule = build(args, num_devices, run_seed_steps)
    except (ConfigError, UnknownTaskError) as e:
        _fail(str(e))
    par = parallel.Parallel(loop, args.num_seeds, devices)
    run_dir = args.run_dir or default_run_dir(args, same_time_everywhere=jax.process_count() > 1)
    config = {
        "version": __version__,  # of the code that starts the run; a resumed run keeps its config.json
        "args": dataclasses.asdict(args),
        "algo_config": dataclasses.asdict(dataclasses.replace(algo.cfg, batch_size=algo.cfg.batch_size * num_devices)),
        "task": env.name,
        "env": {"obs_dim": env.obs_dim, "action_dim": env.action_dim, "action_repeat": env.action_repeat,
                "episode_length": env.episode_length},
        "discount": algo.discount,
        "planner_iterations": algo.iterations,
        "schedule": dataclasses.asdict(schedule),
        "jax": {"version": jax.__version__, "backend": jax.default_backend(), "devices": len(jax.devices())},
        "parallel": {"devices": num_devices, "processes": jax.process_count(), "seeds": seeds,
                     "envs_per_device": loop.num_envs, "batch_per_device": algo.cfg.batch_size},
    }
    k_init, k_eval = par.seed_keys(args.seed)  # [S] each: seed s gets the keys a run with --seed s gets
    state_bytes = par.state_bytes_per_device(k_init)
    local = next(d for d in devices if d.process_index == jax.process_index())
    limit = parallel.device_memory_bytes(local)
    if limit is not None and state_bytes > limit:
        _fail(f"the training state needs {state_bytes / 2**30:.1f} GiB per device ({args.num_seeds} seed(s) x "
              f"{loop.num_envs} envs, buffer {loop.buffer_capacity:,} per device) but a {devices[0].platform} device "
              f"has {limit / 2**30:.1f} GiB; lower --buffer_size, --num_seeds or --num_envs, or add devices")
    if primary:
        try:  # held until this process ends (a crash included): one process per run dir
            lock_run_dir(run_dir)
        except RunDirBusy as e:
            _fail(str(e))
    restored = None  # (carry, checkpoint meta) when resuming from a checkpoint
    if resume is not None and resume.step is not None:
        reader = checkpoint.Checkpointer(run_dir, args.keep_checkpoints, create=False)
        try:  # damaged or foreign checkpoints are refused here, before anything is written
            abstract = par.saved_view(jax.eval_shape(par.init, k_init))
            restored = reader.restore(resume.step, abstract, resume.meta, place=par.place)
        except checkpoint.CheckpointError as e:
            _fail(str(e))
        finally:
            reader.close()
    rows = []
    if resume is None:
        if primary:
            prepare_run_dir(run_dir, config)
    elif primary:  # drop the rows logged after the checkpoint: the continuation logs them again
        try:
            rows = checkpoint.truncate_metrics(os.path.join(run_dir, "metrics.jsonl"), resume.step or 0)
        except checkpoint.CheckpointError as e:
            _fail(str(e))
    host = dict(restored[1]["host"]) if restored else {}
    tracker = None
    if args.track and primary:
        from anakin_tdmpc.tracking import TrackingError, WandbTracker

        try:
            tracker = WandbTracker(args.wandb_project, args.wandb_entity, args.wandb_group, run_dir, config,
                                   run_id=host.get("wandb_id"))
        except TrackingError as e:
            _fail(str(e))
    log = RunLogger(run_dir, schedule.total_env_steps) if primary else QuietLogger()
    mem = replay.memory_bytes(schedule.buffer_capacity, args.num_envs, env.obs_dim, env.action_dim, algo.cfg.horizon + 1,
                              prioritized=getattr(algo, "replay_priority", None) is not None)
    log.message(
        f"{args.algo} on {env.name} | obs {env.obs_dim} act {env.action_dim} | {args.num_envs} envs x action repeat "
        f"{env.action_repeat} | {schedule.updates_per_iter} updates/iter after {schedule.seed_steps} seed steps | "
        f"buffer {schedule.buffer_capacity:,} ({mem / 2**20:.0f} MiB) | {jax.default_backend()} | {run_dir}"
    )
    if num_devices > 1 or args.num_seeds > 1 or jax.process_count() > 1:
        log.message(
            f"scaling out: {num_devices} {devices[0].platform} device(s) in {jax.process_count()} process(es), "
            f"{loop.num_envs} envs and batch {algo.cfg.batch_size} per device | {args.num_seeds} seed(s) "
            f"{seeds[0]}..{seeds[-1]} | training state {state_bytes / 2**20:,.0f} MiB per device"
            + (f" of {limit / 2**30:.0f} GiB" if limit else ""))

    from anakin_tdmpc.curves import plot_curves
    from anakin_tdmpc.guard import DIVERGED_EXIT_CODE, DivergenceGuard

    checkpointer = checkpoint.Checkpointer(run_dir, args.keep_checkpoints)
    if restored:
        carry = restored[0]
        written_by = restored[1].get("config", {}).get("version", "an unversioned one")
        log.message(f"resuming from {checkpointer.path(resume.step)} (env step {resume.step:,}, written by version "
                    f"{written_by}; this is {__version__}); metrics.jsonl keeps its first {len(rows)} rows")
    else:
        if resume is not None:
            log.message(f"--resume: {run_dir} has no checkpoint yet; starting its run over")
        carry = par.init(k_init)
    recorder = None
    if render is not None:
        backend, why = render
        if backend is None:
            log.message(f"warning: --capture_video: no OpenGL backend for MuJoCo works here ({why}); continuing "
                        "without videos (README: Rendering)")
        else:
            from anakin_tdmpc.video import VideoRecorder

            recorder = VideoRecorder(env.render_model, 1.0 / env.control_dt, log.message)
            log.message(f"eval videos: rendering with MUJOCO_GL={backend}" + (f" (unavailable: {why})" if why else ""))
    t_compile = time.time()
    chunk = par.chunk.lower(carry, np.int32(schedule.iters_per_chunk)).compile()
    log.message(f"compiled training chunk in {time.time() - t_compile:.1f}s")
    guard = DivergenceGuard(parallel.float_leaf_names(jax.eval_shape(algo.init, jax.random.key(0))), seeds)

    # host state of the loop: restored from the checkpoint on --resume, so the continuation is exact
    iters_done = int(host.get("iters_done", 0))
    updates = int(host.get("updates", 0))
    next_eval = int(host.get("next_eval", args.eval_every))
    last_eval, last_eval_std = host.get("last_eval"), host.get("last_eval_std")
    env_steps = iters_done * schedule.env_steps_per_iter
    next_checkpoint = (env_steps // args.checkpoint_every + 1) * args.checkpoint_every
    saved_step = resume.step if restored else None
    t_start = time.time() - float(host.get("time", 0.0))  # training time of earlier sessions counts
    curves_ok = True

    def save_checkpoint():
        """Checkpoint the carry a chunk just returned (before the next chunk takes it) + the host state."""
        nonlocal saved_step
        state = {"iters_done": iters_done, "updates": updates, "next_eval": next_eval, "last_eval": last_eval,
                 "last_eval_std": last_eval_std, "time": time.time() - t_start,
                 "wandb_id": tracker.id if tracker else host.get("wandb_id")}
        try:
            checkpointer.save(env_steps, par.saved_view(carry), state, config)
        except Exception as e:  # noqa: BLE001 - disk full, quota, I/O error: stop with one line
            raise _OutputError(f"could not save the checkpoint of env step {env_steps:,} "
                               f"({checkpoint._one_line(e, 300)})") from e
        saved_step = env_steps

    def log_row(row):
        try:
            log.log(row)
        except OSError as e:
            raise _OutputError(f"could not write metrics.jsonl at env step {row['env_steps']:,} "
                               f"({e.strerror or e})") from e

    def draw_curves():
        nonlocal curves_ok
        if curves_ok:
            try:
                plot_curves(os.path.join(run_dir, "curves.png"), rows, env.name, args.algo, schedule.total_env_steps)
            except Exception as e:  # noqa: BLE001 - a plot never stops training
                curves_ok = False
                log.message(f"warning: could not draw curves.png ({' '.join(str(e).split())[:200]})")

    exit_code, exit_message = 0, None
    burst_iter = -(-schedule.seed_steps // schedule.agent_steps_per_iter) - 1  # completes seeding
    try:
        with _Interrupt(log) as interrupt:
            while True:
                if interrupt.requested:  # a stop signal: save the last completed chunk's carry, then stop
                    if saved_step != env_steps:
                        save_checkpoint()
                    exit_code = interrupt.exit_code
                    exit_message = (f"stopped by {signal.Signals(interrupt.signum).name} at env step {env_steps:,}; "
                                    f"saved {checkpointer.path(env_steps)}; continue with --resume --run_dir {run_dir}")
                    break
                if iters_done >= schedule.total_iters:
                    break
                n = min(schedule.iters_per_chunk, schedule.total_iters - iters_done)
                if iters_done <= burst_iter < iters_done + n:
                    log.message(f"this chunk ends seeding and pretrains: {schedule.pretrain_updates} updates on the seed data")
                t0 = time.time()
                carry, report = chunk(carry, np.int32(n))
                report = jax.device_get(report)
                stats = report.stats  # leaves [S]: one entry per seed
                dt = time.time() - t0
                iters_done += n
                updates += int(stats.num_updates[0])
                env_steps = iters_done * schedule.env_steps_per_iter
                row = {
                    "env_steps": env_steps,
                    "agent_steps": iters_done * schedule.agent_steps_per_iter,
                    "updates": updates,
                    "sps": n * schedule.env_steps_per_iter / dt,  # per seed; x num_seeds for all agents
                    "time": time.time() - t_start,
                }
                if stats.episodes.sum() > 0:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        seed_columns(row, "train/episode_return", stats.return_sum / stats.episodes, seeds)
                    row["train/episodes"] = int(stats.episodes.sum())
                if stats.num_updates[0] > 0:
                    for k, v in stats.update_sums.items():
                        seed_columns(row, f"train/{k}", v / stats.num_updates, seeds)
                bad = guard.check(row, [f"train/{k}" for k in stats.update_sums], report.finite)
                if not bad and not report.replicas_equal:
                    bad = "the agent's parameters differ between devices (data-parallel replicas out of step)"
                if bad:  # stop without saving the bad state: the last checkpoint stays the last good one
                    log_row(row)
                    exit_code = DIVERGED_EXIT_CODE
                    exit_message = f"training diverged at env step {env_steps:,}: {bad}; " + (
                        f"the last good checkpoint is {checkpointer.path(saved_step)}" if saved_step is not None
                        else "no checkpoint was saved")
                    break
                done = iters_done == schedule.total_iters
                result = None
                if args.eval_episodes > 0 and (env_steps >= next_eval or done):
                    t_eval = time.time()
                    k_episodes = jax.vmap(lambda k: jax.random.fold_in(k, iters_done))(k_eval)
                    result = jax.device_get(par.evaluate(carry.agent, k_episodes, args.eval_episodes,
                                                         carry.agent_steps))
                    seed_columns(row, "eval/episode_return", result.returns.mean(axis=1), seeds)
                    seed_columns(row, "eval/episode_return_std", result.returns.std(axis=1), seeds)
                    last_eval, last_eval_std = row["eval/episode_return"], row["eval/episode_return_std"]
                    row["eval/time"] = time.time() - t_eval
                    while next_eval <= env_steps:
                        next_eval += args.eval_every
                log_row(row)
                rows.append(row)
                if tracker:
                    tracker.log(row)
                if result is not None:
                    video = recorder and recorder.record(
                        os.path.join(run_dir, "videos", f"{env_steps}.mp4"), result.qpos, result.mocap_pos,
                        result.mocap_quat)
                    if video and tracker:
                        tracker.log_video(video, env_steps, recorder.fps)
                    if primary:
                        draw_curves()
                if env_steps >= next_checkpoint or done:
                    save_checkpoint()
                    while next_checkpoint <= env_steps:
                        next_checkpoint += args.checkpoint_every
        if exit_code == 0 and saved_step != env_steps:
            save_checkpoint()  # e.g. a run resumed from a checkpoint older than its end
    except _OutputError as e:
        exit_code = OUTPUT_ERROR_EXIT_CODE
        exit_message = f"{e}; " + (f"the last complete checkpoint is {checkpointer.path(saved_step)}"
                                   if saved_step is not None else "no checkpoint was saved")
    except BaseException:
        exit_code = exit_code or 1
        raise
    finally:
        if recorder:
            recorder.close()
        if tracker:
            tracker.finish(exit_code)
        with _quiet_on_full_disk(exit_code):
            checkpointer.close()
        if exit_code:
            with _quiet_on_full_disk(exit_code):
                log.close()
    if exit_code > 128:  # stopped by a signal, checkpoint saved
        print(exit_message, file=sys.stderr)
        raise SystemExit(exit_code)
    if exit_code:
        _fail(exit_message, exit_code)
    if primary and (not rows or not os.path.exists(os.path.join(run_dir, "curves.png"))):
        draw_curves()
    wall = time.time() - t_start
    log.message(
        f"done: {env_steps:,} env steps in {format_duration(wall)} "
        f"({env_steps / wall:,.0f} env steps/s)"
        + (f", final eval return {last_eval:.1f}" if last_eval is not None else "")
    )
    log.summary("summary", [
        ("env steps", f"{env_steps:,}"),
        ("agent steps / updates", f"{iters_done * schedule.agent_steps_per_iter:,} / {updates:,}"),
        ("training time", format_duration(wall)),
        ("SPS (env steps/s)", f"{env_steps / wall:,.0f}"),
        ("final eval return", f"{last_eval:.1f} ± {last_eval_std:.1f}" if last_eval is not None else "-"),
        ("outputs", run_dir),
    ])
    log.close()
    return run_dir


OUTPUT_ERROR_EXIT_CODE = 4
"""Exit code when the run's outputs could not be written (disk full, quota, I/O error) after training began."""


class _OutputError(Exception):
    """A checkpoint or metrics row that could not be written; the message is one line."""


class _quiet_on_full_disk:
    """After an output error, closing files may fail the same way: keep that from hiding the one-line error."""

    def __init__(self, exit_code: int):
        self.exit_code = exit_code

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return self.exit_code == OUTPUT_ERROR_EXIT_CODE and kind is not None and issubclass(kind, OSError)


class RunDirBusy(Exception):
    """Another live process holds the run dir's lock."""


_LOCKS = []  # open lock files of this process's running trainings (train() closes them when it ends)


def lock_run_dir(run_dir: str) -> None:
    """Take `<run_dir>/.lock` (an exclusive `flock`, created with the folder if needed) until `train` ends, or
    raise RunDirBusy naming the holder. The kernel drops the lock when its holder exits, however it exits, so a
    lock file left by a dead process never blocks a `--resume`."""
    import fcntl

    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, ".lock")
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise RunDirBusy(f"run dir {run_dir} is in use by another process (pid {holder}); wait for it to end or "
                         "choose another --run_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _LOCKS.append(handle)


def check_run_dir_writable(run_dir: str) -> None:
    """Refuse (one `error:` line, exit 2) a run dir that could not be created or written, before anything is
    loaded: a file where it or a parent folder should be, no permission, a read-only filesystem. Creates
    nothing: a temporary file in the nearest existing folder is written and removed."""
    import tempfile

    path = os.path.abspath(run_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        _fail(f"run dir {run_dir} exists and is not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        _fail(f"cannot create run dir {run_dir}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        _fail(f"cannot write run dir {run_dir}: {existing}: {e.strerror or e}")


def _check_output_flags(args) -> None:
    """The output / resume flags, checked before anything is built or written."""
    if args.checkpoint_every <= 0:
        _fail(f"--checkpoint_every must be positive, got {args.checkpoint_every}")
    if args.keep_checkpoints < 1:
        _fail(f"--keep_checkpoints must be at least 1, got {args.keep_checkpoints}")
    if args.resume and not args.run_dir:
        _fail("--resume needs --run_dir, the run to continue")
    if args.track and not args.wandb_project.strip():
        _fail("--wandb_project must not be empty")
    check_run_dir_writable(args.run_dir or "runs")


def _choose_render_backend():
    """(MUJOCO_GL backend or None, why others failed): EGL first on GPU machines, OSMesa first on CPU."""
    import jax

    from anakin_tdmpc.video import choose_backend

    return choose_backend(prefer_gpu=jax.default_backend() == "gpu")


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")
"""Signals that stop a run cleanly: Ctrl-C, what SLURM / Kubernetes / cloud preemption send, SLURM's
`--signal` warning. The running chunk finishes, a checkpoint is saved, the exit code is 128 + the signal's
number (130, 143, 138)."""


class _Interrupt:
    """A stop signal while training (STOP_SIGNALS): finish the running chunk, save a checkpoint, exit with
    128 + the first signal's number. A second Ctrl-C stops at once; repeated SIGTERM / SIGUSR1 (a scheduler's
    warning followed by its stop) keep waiting for the save. Installed only for the chunk loop, and only in
    the main thread."""

    def __init__(self, log):
        self.log, self.signum, self._previous = log, None, {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    sig = getattr(signal, name)
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signum = signum
        name = signal.Signals(signum).name
        self.log.message(f"{name}: saving a checkpoint after this chunk"
                         + (" (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""))

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False


def parse_args(argv=None):
    """Parse flags with tyro; a parsing error becomes one `error: ...` line and exit code 2."""
    import contextlib
    import io

    import tyro

    from anakin_tdmpc.config import Args, ConfigError, apply_preset, explicit_flags, normalise_numeric_argv

    try:
        argv = normalise_numeric_argv(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as e:
        _fail(str(e))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            args = tyro.cli(Args, args=argv, use_underscores=True, prog="python -m anakin_tdmpc.run")
    except SystemExit as e:
        if not e.code:  # --help
            sys.stderr.write(captured.getvalue())
            raise
        lines = [line.strip(" \t│╭╮╰╯─|+-") for line in captured.getvalue().splitlines()]
        reason = next((line for line in lines if ": " in line), "could not parse the command line")
        _fail(f"{reason} (see --help)")
    try:  # flags given on the command line win over the preset's values
        return apply_preset(args, explicit_flags(argv))
    except ConfigError as e:
        _fail(str(e))


def main(argv=None) -> None:
    _train_unlocking(parse_args(argv))


if __name__ == "__main__":
    main()
