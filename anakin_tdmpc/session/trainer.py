"""The host side of training: `train(args)` sets up a run (or its `--resume`), then drives compiled chunks:

    chunk -> metrics row -> (evaluation, video, curves) -> (checkpoint) -> next chunk, until the budget ends
    or a stop signal / divergence / unwritable output ends it with a checkpoint on disk.

Everything the host loop keeps between chunks is `HostState`, saved in every checkpoint, so a resumed run
writes the same metrics rows as an uninterrupted one. Only process 0 of a multi-process run writes logs,
metrics, curves, videos and wandb; all processes run the same chunks in lockstep.

Longer than our other modules (~550 lines) on purpose: a run's whole host side, from the checks before
anything loads to the last summary line, reads top to bottom in this one file.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import NamedTuple, Optional

import numpy as np

from anakin_tdmpc import __version__
from anakin_tdmpc.session.run_dir import Lock, RunError

DIVERGED_EXIT_CODE = 3
"""Exit code when training diverged (non-finite metrics or parameters); the bad state is not saved."""
OUTPUT_ERROR_EXIT_CODE = 4
"""Exit code when the run's outputs could not be written (disk full, quota, I/O error) after training began."""
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")
"""Signals that stop a run cleanly: Ctrl-C, what SLURM / Kubernetes / cloud preemption send, SLURM's
`--signal` warning. The running chunk finishes, a checkpoint is saved, the exit code is 128 + the signal's
number (130, 143, 138)."""


@dataclasses.dataclass
class HostState:
    """The host loop's state between chunks (a checkpoint's `host` entry)."""

    iters_done: int = 0
    updates: int = 0
    next_eval: int = 0
    last_eval: Optional[float] = None
    last_eval_std: Optional[float] = None
    time: float = 0.0  # training seconds so far, earlier sessions of a resumed run included
    wandb_id: Optional[str] = None

    @classmethod
    def restored(cls, saved: dict, eval_every: int) -> "HostState":
        return cls(iters_done=int(saved.get("iters_done", 0)), updates=int(saved.get("updates", 0)),
                   next_eval=int(saved.get("next_eval", eval_every)), last_eval=saved.get("last_eval"),
                   last_eval_std=saved.get("last_eval_std"), time=float(saved.get("time", 0.0)),
                   wandb_id=saved.get("wandb_id"))


class TrainResult(NamedTuple):
    """What `train` returns: the run dir, every metrics row (the resumed part included), the last eval."""

    run_dir: str
    rows: list
    final_eval: Optional[float]


def train(args) -> TrainResult:
    """Train for `args` (flags already resolved: see config.apply_preset). Raises RunError (one-line message,
    exit code) when the run cannot start or stops early; the run dir's lock is released however it ends, so
    one Python process can run several trainings one after another."""
    trainer = Trainer(args)
    try:
        trainer.setup()
        return trainer.run()
    finally:
        trainer.close()


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


class _OutputError(Exception):
    """A checkpoint or metrics row that could not be written; the message is one line."""


class Trainer:
    """One run: `setup()` checks, builds, restores and compiles; `run()` trains; `close()` releases."""

    def __init__(self, args):
        self.args = args
        self.lock: Optional[Lock] = None
        self.rows: list[dict] = []

    # ------------------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        from anakin_tdmpc.build import build
        from anakin_tdmpc.config import ConfigError, check_finite, check_output_flags
        from anakin_tdmpc.loop import parallel
        from anakin_tdmpc.session.run_dir import check_writable

        args = self.args
        try:
            check_finite(args)
            check_output_flags(args)
        except ConfigError as e:
            raise RunError(str(e)) from None
        check_writable(args.run_dir or "runs")
        try:  # before anything else touches JAX's devices
            parallel.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
            devices = parallel.select_devices(args.num_devices)
        except parallel.ParallelError as e:
            raise RunError(str(e)) from None
        import jax

        from anakin_tdmpc.envs import EnvError
        from anakin_tdmpc.session import checkpoint

        self.primary = jax.process_index() == 0
        self.num_devices, self.seeds = len(devices), list(range(args.seed, args.seed + args.num_seeds))
        resume = None  # checkpoint.ResumePoint with --resume when the run dir holds a run
        if args.resume:
            try:
                resume = checkpoint.find_resume_point(args.run_dir, dataclasses.asdict(args), args.keep_checkpoints,
                                                      defaults=dataclasses.asdict(type(args)()))
                checkpoint.check_devices(resume and resume.meta, self.num_devices, f"the checkpoint in {args.run_dir}")
            except checkpoint.CheckpointError as e:
                raise RunError(str(e)) from None
        from anakin_tdmpc.session.video import choose_backend_here

        render = choose_backend_here() if args.capture_video and self.primary else None  # before mujoco's GL
        # a resumed run keeps the seeding it started with, also where the default rule has changed since
        run_seed_steps = ((resume.meta or {}).get("config", {}).get("schedule", {}).get("seed_steps")
                          if resume is not None and args.seed_steps is None else None)
        try:
            self.env, self.agent, self.loop, self.schedule = build(args, self.num_devices, run_seed_steps)
        except (ConfigError, EnvError) as e:
            raise RunError(str(e)) from None
        env, agent, loop, schedule = self.env, self.agent, self.loop, self.schedule
        self.par = par = parallel.Parallel(loop, args.num_seeds, devices)
        from anakin_tdmpc.session.run_dir import default_run_dir

        self.run_dir = run_dir = args.run_dir or default_run_dir(args, same_time_everywhere=jax.process_count() > 1)
        self.config = {
            "version": __version__,  # of the code that starts the run; a resumed run keeps its config.json
            "args": dataclasses.asdict(args),
            "algo_config": dataclasses.asdict(dataclasses.replace(agent.cfg, batch_size=agent.cfg.batch_size * self.num_devices)),
            "task": env.name,
            "env": {"obs_dim": env.obs_dim, "action_dim": env.action_dim, "action_repeat": env.action_repeat,
                    "episode_length": env.episode_length, "episodic": env.episodic},
            "discount": agent.discount,
            "planner_iterations": agent.iterations,
            "schedule": dataclasses.asdict(schedule),
            "jax": {"version": jax.__version__, "backend": jax.default_backend(), "devices": len(jax.devices())},
            "parallel": {"devices": self.num_devices, "processes": jax.process_count(), "seeds": self.seeds,
                         "envs_per_device": loop.num_envs, "batch_per_device": agent.cfg.batch_size},
        }
        k_init, self.k_eval = par.seed_keys(args.seed)  # [S] each: seed s gets the keys a run with --seed s gets
        state_bytes = par.state_bytes_per_device(k_init)
        local = next(d for d in devices if d.process_index == jax.process_index())
        limit = parallel.device_memory_bytes(local)
        if limit is not None and state_bytes > limit:
            raise RunError(f"the training state needs {state_bytes / 2**30:.1f} GiB per device ({args.num_seeds} seed(s) "
                           f"x {loop.num_envs} envs, buffer {loop.buffer_capacity:,} per device) but a "
                           f"{devices[0].platform} device has {limit / 2**30:.1f} GiB; lower --buffer_size, "
                           "--num_seeds or --num_envs, or add devices")
        if self.primary:  # held until `close`: one process per run dir
            self.lock = Lock(run_dir)
        restored = None  # (carry, checkpoint meta) when resuming from a checkpoint
        if resume is not None and resume.step is not None:
            reader = checkpoint.Checkpointer(run_dir, args.keep_checkpoints, create=False)
            try:  # damaged or foreign checkpoints are refused here, before anything is written
                abstract = par.saved_view(jax.eval_shape(par.init, k_init))
                restored = reader.restore(resume.step, abstract, resume.meta, place=par.place)
            except checkpoint.CheckpointError as e:
                raise RunError(str(e)) from None
            finally:
                reader.close()
        if resume is None:
            if self.primary:
                from anakin_tdmpc.session.run_dir import prepare

                prepare(run_dir, self.config)
        elif self.primary:  # drop the rows logged after the checkpoint: the continuation logs them again
            try:
                self.rows = checkpoint.truncate_metrics(os.path.join(run_dir, "metrics.jsonl"), resume.step or 0)
            except checkpoint.CheckpointError as e:
                raise RunError(str(e)) from None
        self.host = HostState.restored(restored[1]["host"] if restored else {}, args.eval_every)
        self.tracker = None
        if args.track and self.primary:
            from anakin_tdmpc.session.tracking import TrackingError, WandbTracker

            try:
                self.tracker = WandbTracker(args.wandb_project, args.wandb_entity, args.wandb_group, run_dir,
                                            self.config, run_id=self.host.wandb_id)
            except TrackingError as e:
                raise RunError(str(e)) from None
        self._open_outputs(render, resume, restored, k_init, state_bytes, limit, devices)

    def _open_outputs(self, render, resume, restored, k_init, state_bytes, limit, devices) -> None:
        """Logger, checkpointer, carry (restored or new), video recorder, compiled chunk, guard."""
        import jax

        from anakin_tdmpc.loop import parallel, replay
        from anakin_tdmpc.session import checkpoint
        from anakin_tdmpc.session.guard import DivergenceGuard
        from anakin_tdmpc.session.logger import QuietLogger, RunLogger

        args, env, agent, loop, schedule, par = self.args, self.env, self.agent, self.loop, self.schedule, self.par
        self.log = log = RunLogger(self.run_dir, schedule.total_env_steps) if self.primary else QuietLogger()
        self.tensorboard = None
        if args.tensorboard and self.primary:
            from anakin_tdmpc.session.tensorboard import TensorBoardWriter

            self.tensorboard = TensorBoardWriter(self.run_dir, resume.step if restored else None)
        mem = replay.memory_bytes(schedule.buffer_capacity, args.num_envs, env.obs_dim, env.action_dim,
                                  agent.cfg.horizon + 1, prioritized=agent.prioritization is not None)
        log.message(
            f"{args.algo} on {env.name} | obs {env.obs_dim} act {env.action_dim} | {args.num_envs} envs x action "
            f"repeat {env.action_repeat} | {schedule.updates_per_iter} updates/iter after {schedule.seed_steps} seed "
            f"steps | buffer {schedule.buffer_capacity:,} ({mem / 2**20:.0f} MiB) | {jax.default_backend()} | "
            f"{self.run_dir}"
        )
        if self.num_devices > 1 or args.num_seeds > 1 or jax.process_count() > 1:
            log.message(
                f"scaling out: {self.num_devices} {devices[0].platform} device(s) in {jax.process_count()} "
                f"process(es), {loop.num_envs} envs and batch {agent.cfg.batch_size} per device | {args.num_seeds} "
                f"seed(s) {self.seeds[0]}..{self.seeds[-1]} | training state {state_bytes / 2**20:,.0f} MiB per device"
                + (f" of {limit / 2**30:.0f} GiB" if limit else ""))
        self.checkpointer = checkpoint.Checkpointer(self.run_dir, args.keep_checkpoints)
        if restored:
            self.carry = restored[0]
            written_by = restored[1].get("config", {}).get("version", "an unversioned one")
            log.message(f"resuming from {self.checkpointer.path(resume.step)} (env step {resume.step:,}, written by "
                        f"version {written_by}; this is {__version__}); metrics.jsonl keeps its first "
                        f"{len(self.rows)} rows")
        else:
            if resume is not None:
                log.message(f"--resume: {self.run_dir} has no checkpoint yet; starting its run over")
            self.carry = par.init(k_init)
        self.recorder = None
        if render is not None:
            backend, why = render
            if env.render_model is None:
                log.message(f"warning: --capture_video: task {env.name} has no mj_model to render; continuing "
                            "without videos")
            elif backend is None:
                log.message(f"warning: --capture_video: no OpenGL backend for MuJoCo works here ({why}); continuing "
                            "without videos (docs/outputs-and-resume.md: Rendering)")
            else:
                from anakin_tdmpc.session.video import VideoRecorder

                self.recorder = VideoRecorder(env.render_model, 1.0 / env.control_dt, log.message)
                log.message(f"eval videos: rendering with MUJOCO_GL={backend}" + (f" (unavailable: {why})" if why else ""))
        t_compile = time.time()
        self.chunk = par.chunk.lower(self.carry, np.int32(schedule.iters_per_chunk)).compile()
        log.message(f"compiled training chunk in {time.time() - t_compile:.1f}s")
        self.guard = DivergenceGuard(parallel.float_leaf_names(jax.eval_shape(agent.init, jax.random.key(0))),
                                     self.seeds)
        self.env_steps = self.host.iters_done * schedule.env_steps_per_iter
        self.next_checkpoint = (self.env_steps // args.checkpoint_every + 1) * args.checkpoint_every
        self.saved_step = resume.step if restored else None
        self.curves_ok = True

    # --------------------------------------------------------------------------------------------- run

    def run(self) -> TrainResult:
        args, schedule, host, log = self.args, self.schedule, self.host, self.log
        t_start = time.time() - host.time  # training time of earlier sessions counts
        self.t_start = t_start
        exit_code, exit_message, estimated = 0, None, False
        burst_iter = -(-schedule.seed_steps // schedule.agent_steps_per_iter) - 1  # completes seeding
        try:
            with _Interrupt(log) as interrupt:
                while True:
                    if interrupt.requested:  # a stop signal: save the last completed chunk's carry, then stop
                        if self.saved_step != self.env_steps:
                            self._save_checkpoint()
                        exit_code = interrupt.exit_code
                        exit_message = (f"stopped by {signal.Signals(interrupt.signum).name} at env step "
                                        f"{self.env_steps:,}; saved {self.checkpointer.path(self.env_steps)}; "
                                        f"continue with --resume --run_dir {self.run_dir}")
                        break
                    if host.iters_done >= schedule.total_iters:
                        break
                    n = min(schedule.iters_per_chunk, schedule.total_iters - host.iters_done)
                    if host.iters_done <= burst_iter < host.iters_done + n:
                        log.message(f"this chunk ends seeding and pretrains: {schedule.pretrain_updates} updates on "
                                    "the seed data")
                    bad = self._train_chunk(n)
                    if not estimated and host.iters_done > burst_iter + 1 and n == schedule.iters_per_chunk:
                        estimated = True  # a whole chunk after the pretraining burst: representative
                        self._estimate(n)
                    if bad:  # stop without saving the bad state: the last checkpoint stays the last good one
                        exit_code = DIVERGED_EXIT_CODE
                        exit_message = f"training diverged at env step {self.env_steps:,}: {bad}; " + (
                            f"the last good checkpoint is {self.checkpointer.path(self.saved_step)}"
                            if self.saved_step is not None else "no checkpoint was saved")
                        break
                    done = host.iters_done == schedule.total_iters
                    if self.env_steps >= self.next_checkpoint or done:
                        self._save_checkpoint()
                        while self.next_checkpoint <= self.env_steps:
                            self.next_checkpoint += args.checkpoint_every
            if exit_code == 0 and self.saved_step != self.env_steps:
                self._save_checkpoint()  # e.g. a run resumed from a checkpoint older than its end
        except _OutputError as e:
            exit_code = OUTPUT_ERROR_EXIT_CODE
            exit_message = f"{e}; " + (f"the last complete checkpoint is {self.checkpointer.path(self.saved_step)}"
                                       if self.saved_step is not None else "no checkpoint was saved")
        except BaseException:
            exit_code = exit_code or 1
            raise
        finally:
            self._close_outputs(exit_code)
        if exit_code:
            raise RunError(exit_message, exit_code)
        if self.primary and (not self.rows or not os.path.exists(os.path.join(self.run_dir, "curves.png"))):
            self._draw_curves()
        self._summary(time.time() - t_start)
        return TrainResult(self.run_dir, self.rows, host.last_eval)

    def _train_chunk(self, n: int) -> Optional[str]:
        """One compiled chunk of `n` iterations, its metrics row, an evaluation when due; returns what
        diverged, if anything (the row is logged either way)."""
        import jax

        args, schedule, host, seeds = self.args, self.schedule, self.host, self.seeds
        t0 = time.time()
        self.carry, report = self.chunk(self.carry, np.int32(n))
        report = jax.device_get(report)
        stats = report.stats  # leaves [S]: one entry per seed
        dt = time.time() - t0
        self.last_chunk_seconds = dt
        host.iters_done += n
        host.updates += int(stats.num_updates[0])
        self.env_steps = host.iters_done * schedule.env_steps_per_iter
        row = {
            "env_steps": self.env_steps,
            "agent_steps": host.iters_done * schedule.agent_steps_per_iter,
            "updates": host.updates,
            "sps": n * schedule.env_steps_per_iter / dt,  # per seed; x num_seeds for all agents
            "time": time.time() - self.t_start,
        }
        if stats.episodes.sum() > 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                seed_columns(row, "train/episode_return", stats.return_sum / stats.episodes, seeds)
            row["train/episodes"] = int(stats.episodes.sum())
        if stats.num_updates[0] > 0:
            for k, v in stats.update_sums.items():
                seed_columns(row, f"train/{k}", v / stats.num_updates, seeds)
        bad = self.guard.check(row, [f"train/{k}" for k in stats.update_sums], report.finite)
        if not bad and not report.replicas_equal:
            bad = "the agent's parameters differ between devices (data-parallel replicas out of step)"
        if bad:
            self._log_row(row)
            return bad
        done = host.iters_done == schedule.total_iters
        result = None
        if args.eval_episodes > 0 and (self.env_steps >= host.next_eval or done):
            result = self._evaluate(row)
        self._log_row(row)
        self.rows.append(row)
        if self.tensorboard:
            self.tensorboard.log(row)
        if self.tracker:
            self.tracker.log(row)
        if result is not None:
            video = self.recorder and self.recorder.record(
                os.path.join(self.run_dir, "videos", f"{self.env_steps}.mp4"), *result.first_episode_frames())
            if video and self.tracker:
                self.tracker.log_video(video, self.env_steps, self.recorder.fps)
            if self.primary:
                self._draw_curves()
        return None

    def _estimate(self, n: int) -> None:
        """Say once how long the whole run will take at the speed of the chunk just timed, with a hint at
        --preset cpu-small when that is long on a machine without an accelerator."""
        import jax

        from anakin_tdmpc.session.logger import format_duration

        per_iter = self.last_chunk_seconds / n
        left = (self.schedule.total_iters - self.host.iters_done) * per_iter
        total = self.schedule.total_iters * per_iter
        message = (f"estimated training time: {format_duration(total)} for {self.schedule.total_env_steps:,} env "
                   f"steps ({format_duration(left)} left, evaluations not counted)")
        if jax.default_backend() == "cpu" and left > 3600 and self.args.preset != "cpu-small":
            message += ("; this machine has no accelerator: --preset cpu-small trains a small model that learns "
                        "the easy tasks in minutes")
        self.log.message(message)

    def _evaluate(self, row: dict):
        """Deterministic eval episodes of every seed into `row`; returns the EvalResult (for a video)."""
        import jax

        host, args = self.host, self.args
        t_eval = time.time()
        k_episodes = jax.vmap(lambda k: jax.random.fold_in(k, host.iters_done))(self.k_eval)
        result = jax.device_get(self.par.evaluate(self.carry.agent, k_episodes, args.eval_episodes,
                                                  self.carry.agent_steps))
        seed_columns(row, "eval/episode_return", result.returns.mean(axis=1), self.seeds)
        seed_columns(row, "eval/episode_return_std", result.returns.std(axis=1), self.seeds)
        host.last_eval, host.last_eval_std = row["eval/episode_return"], row["eval/episode_return_std"]
        row["eval/time"] = time.time() - t_eval
        while host.next_eval <= self.env_steps:
            host.next_eval += args.eval_every
        return result

    # ----------------------------------------------------------------------------------------- outputs

    def _save_checkpoint(self) -> None:
        """Checkpoint the carry a chunk just returned (before the next chunk takes it) + the host state."""
        from anakin_tdmpc.session import checkpoint

        host = self.host
        host.time = time.time() - self.t_start
        host.wandb_id = self.tracker.id if self.tracker else host.wandb_id
        try:
            self.checkpointer.save(self.env_steps, self.par.saved_view(self.carry), dataclasses.asdict(host),
                                   self.config)
        except Exception as e:  # noqa: BLE001 - disk full, quota, I/O error: stop with one line
            raise _OutputError(f"could not save the checkpoint of env step {self.env_steps:,} "
                               f"({checkpoint.one_line(e, 300)})") from e
        self.saved_step = self.env_steps

    def _log_row(self, row: dict) -> None:
        try:
            self.log.log(row)
        except OSError as e:
            raise _OutputError(f"could not write metrics.jsonl at env step {row['env_steps']:,} "
                               f"({e.strerror or e})") from e

    def _draw_curves(self) -> None:
        from anakin_tdmpc.session.curves import plot_curves

        if self.curves_ok:
            try:
                plot_curves(os.path.join(self.run_dir, "curves.png"), self.rows, self.env.name, self.args.algo,
                            self.schedule.total_env_steps)
            except Exception as e:  # noqa: BLE001 - a plot never stops training
                self.curves_ok = False
                self.log.message(f"warning: could not draw curves.png ({' '.join(str(e).split())[:200]})")

    def _close_outputs(self, exit_code: int) -> None:
        if self.recorder:
            self.recorder.close()
        if self.tensorboard:
            with _QuietOnFullDisk(exit_code):
                self.tensorboard.close()
        if self.tracker:
            self.tracker.finish(exit_code)
        with _QuietOnFullDisk(exit_code):
            self.checkpointer.close()
        if exit_code:
            with _QuietOnFullDisk(exit_code):
                self.log.close()

    def _summary(self, wall: float) -> None:
        from anakin_tdmpc.session.logger import format_duration

        host, env_steps, log = self.host, self.env_steps, self.log
        log.message(
            f"done: {env_steps:,} env steps in {format_duration(wall)} "
            f"({env_steps / wall:,.0f} env steps/s)"
            + (f", final eval return {host.last_eval:.1f}" if host.last_eval is not None else "")
        )
        log.summary("summary", [
            ("env steps", f"{env_steps:,}"),
            ("agent steps / updates", f"{host.iters_done * self.schedule.agent_steps_per_iter:,} / {host.updates:,}"),
            ("training time", format_duration(wall)),
            ("SPS (env steps/s)", f"{env_steps / wall:,.0f}"),
            ("final eval return", f"{host.last_eval:.1f} ± {host.last_eval_std:.1f}"
             if host.last_eval is not None else "-"),
            ("outputs", self.run_dir),
        ])
        log.close()

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


class _QuietOnFullDisk:
    """After an output error, closing files may fail the same way: keep that from hiding the one-line error."""

    def __init__(self, exit_code: int):
        self.exit_code = exit_code

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return self.exit_code == OUTPUT_ERROR_EXIT_CODE and kind is not None and issubclass(kind, OSError)


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

