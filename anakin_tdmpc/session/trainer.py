"""The host side of training: `train(args)` sets up a run (or its `--resume`), then drives compiled chunks:

    log period: chunks -> metrics row -> (evaluation, video, curves) -> (checkpoint) -> next period, until the
    budget ends or a stop signal / divergence / unwritable output ends it with a checkpoint on disk.

A log period (`--log_every` env steps) runs as compiled chunks of at most `--max_chunk_seconds` each, sized
from the measured time per iteration (per phase: seeding, learning), per pretraining update and per eval step;
the burst of pretraining updates that ends seeding, and each evaluation, run as chunks of their own. A chunk
continues the statistics of the chunks before it in the period, so the rows, and the training itself, are the
same however a period is cut; a stop signal is honoured between any two chunks.

Everything the host loop keeps between chunks is `HostState`, saved in every checkpoint (with the sums of a
period a stop cut short), so a resumed run writes the same metrics rows as an uninterrupted one. Only process 0
of a multi-process run writes logs, metrics, curves, videos and wandb; all processes run the same chunks in
lockstep.
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
`--signal` warning. The running chunk (at most --max_chunk_seconds) finishes, a checkpoint is saved, the exit
code is 128 + the signal's number (130, 143, 138)."""
CHUNK_FILL = 0.5
"""Chunks are sized to this fraction of --max_chunk_seconds at the last measured speed, leaving the rest of
the bound for a slower stretch."""


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
    pretrained: int = 0  # pretraining updates of the burst done so far
    period: Optional[dict] = None  # a log period a stop cut short: its first iteration, chunk seconds, sums

    @classmethod
    def restored(cls, saved: dict, eval_every: int, burst_iter: int, pretrain_updates: int) -> "HostState":
        iters_done = int(saved.get("iters_done", 0))
        # checkpoints written before bursts ran as chunks of their own always lie before or after a whole burst
        done_before = pretrain_updates if iters_done > burst_iter else 0
        return cls(iters_done=iters_done, updates=int(saved.get("updates", 0)),
                   next_eval=int(saved.get("next_eval", eval_every)), last_eval=saved.get("last_eval"),
                   last_eval_std=saved.get("last_eval_std"), time=float(saved.get("time", 0.0)),
                   wandb_id=saved.get("wandb_id"), pretrained=int(saved.get("pretrained", done_before)),
                   period=saved.get("period"))


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
        # the iteration that completes seeding (its pretraining updates run as chunks of their own after it)
        self.burst_iter = -(-schedule.seed_steps // schedule.agent_steps_per_iter) - 1
        self.host = HostState.restored(restored[1]["host"] if restored else {}, args.eval_every, self.burst_iter,
                                       schedule.pretrain_updates)
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
        self.stats = self._period_stats()
        t_compile = time.time()
        self.chunk = par.chunk.lower(self.carry, np.int32(1), self.stats, np.bool_(False)).compile()
        self.pretrain = None  # compiled only for a run whose burst is still ahead
        if self.host.iters_done <= self.burst_iter + 1 and self.host.pretrained < schedule.pretrain_updates:
            self.pretrain = par.pretrain.lower(self.carry, self.stats, np.int32(0), np.int32(1)).compile()
        if args.eval_episodes > 0:  # ahead, so that a stop at the first evaluation need not wait for a compile
            started = par.eval_start(self.k_eval, args.eval_episodes)
            self.eval_steps = par.eval_steps.lower(self.carry.agent, started, np.int32(1),
                                                   self.carry.agent_steps).compile()
        log.message(f"compiled training chunk in {time.time() - t_compile:.1f}s")
        self.guard = DivergenceGuard(parallel.float_leaf_names(jax.eval_shape(agent.init, jax.random.key(0))),
                                     self.seeds)
        self.env_steps = self.host.iters_done * schedule.env_steps_per_iter
        self.next_checkpoint = (self.env_steps // args.checkpoint_every + 1) * args.checkpoint_every
        self.saved_step = resume.step if restored else None
        self.curves_ok = True

    # --------------------------------------------------------------------------------------------- run

    def run(self) -> TrainResult:
        args, schedule, host = self.args, self.schedule, self.host
        self.t_start = t_start = time.time() - host.time  # training time of earlier sessions counts
        self.per_iter: dict[str, float] = {}  # measured seconds per iteration ("seeding", "learning") / update
        exit_code, exit_message, self.estimated = 0, None, False
        try:
            with _Interrupt(self.log) as interrupt:
                while host.iters_done < schedule.total_iters or host.period is not None:  # (a period a stop cut)
                    bad = self._train_period(interrupt)
                    if bad:  # stop without saving the bad state: the last checkpoint stays the last good one
                        exit_code = DIVERGED_EXIT_CODE
                        exit_message = f"training diverged at env step {self.env_steps:,}: {bad}; " + (
                            f"the last good checkpoint is {self.checkpointer.path(self.saved_step)}"
                            if self.saved_step is not None else "no checkpoint was saved")
                        break
                    if self._stop_requested(interrupt):  # save the last completed chunk's carry, then stop
                        if self.saved_step != self.env_steps:
                            self._save_checkpoint()
                        exit_code = interrupt.exit_code
                        exit_message = (f"stopped by {signal.Signals(interrupt.signum).name} at env step "
                                        f"{self.env_steps:,}; saved {self.checkpointer.path(self.env_steps)}; "
                                        f"continue with --resume --run_dir {self.run_dir}")
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

    # ----------------------------------------------------------------------------------- log periods

    def _burst_left(self) -> int:
        """Pretraining updates still to run now (the iteration that completes seeding has run)."""
        if self.host.iters_done != self.burst_iter + 1:
            return 0
        return self.schedule.pretrain_updates - self.host.pretrained

    def _train_period(self, interrupt) -> Optional[str]:
        """The rest of the current log period, as chunks of bounded wall-clock, then its metrics row and
        evaluation. Returns early, the period left open in `host.period`, when a stop is requested; returns
        what diverged, if anything (the row is logged either way)."""
        host, schedule = self.host, self.schedule
        if host.period is None:
            host.period = {"start": host.iters_done, "seconds": 0.0}
        end = min(host.period["start"] + schedule.iters_per_chunk, schedule.total_iters)
        if host.iters_done <= self.burst_iter < end:
            self.log.message(f"seeding ends at env step {(self.burst_iter + 1) * schedule.env_steps_per_iter:,}, "
                             f"then {schedule.pretrain_updates} pretraining updates on the seed data")
        report = None
        while host.iters_done < end or self._burst_left():
            if self._burst_left():
                report = self._run_chunk("update", self._burst_left())
            else:
                limit = end if host.iters_done > self.burst_iter else min(end, self.burst_iter + 1)
                phase = "learning" if host.iters_done > self.burst_iter else "seeding"
                report = self._run_chunk(phase, limit - host.iters_done)
            if self._stop_requested(interrupt):
                if np.all(report.finite) and report.replicas_equal:
                    return None
                break  # a bad state is never saved: the row below names what diverged
        if report is None:  # resumed from a stop that came after the period's last chunk: read its sums
            report = self._run_chunk("learning", 0)
        return self._close_period(report, interrupt)

    def _run_chunk(self, phase: str, most: int):
        """One compiled call: up to `most` iterations of `phase` ("seeding" / "learning") or pretraining
        updates ("update"), as many as fit in the chunk's share of --max_chunk_seconds at the last measured
        speed (one, to measure it, the first time). Returns its Report."""
        import jax

        host, schedule = self.host, self.schedule
        n = self._chunk_length(phase, most)
        t0 = time.time()
        if phase == "update":
            self.carry, self.stats, report = self.pretrain(self.carry, self.stats, np.int32(host.pretrained),
                                                           np.int32(n))
        else:
            self.carry, self.stats, report = self.chunk(self.carry, np.int32(n), self.stats, np.bool_(False))
        report = jax.device_get(report)
        dt = time.time() - t0
        if n:
            self.per_iter[phase] = dt / n
        host.period["seconds"] += dt
        if phase == "update":
            host.pretrained += n
        else:
            host.iters_done += n
            self.env_steps = host.iters_done * schedule.env_steps_per_iter
            self.log.progress(self.env_steps)
        return report

    def _chunk_length(self, phase: str, most: int) -> int:
        """Iterations / updates / eval steps (`phase`) of the next chunk, at most `most`: as many as fill
        CHUNK_FILL of --max_chunk_seconds at the phase's last measured speed; one, to measure it, the first time."""
        per = self.per_iter.get(phase)
        fill = 1 if per is None else max(1, int(CHUNK_FILL * self.args.max_chunk_seconds / per))
        return self._agree(min(most, fill))

    def _agree(self, n: int) -> int:
        """The chunk length every process of a multi-process run uses (they run the same calls): the shortest."""
        import jax

        if jax.process_count() == 1:
            return n
        from jax.experimental import multihost_utils

        return int(np.min(multihost_utils.process_allgather(np.int32(n))))

    def _stop_requested(self, interrupt) -> bool:
        """A stop signal reached this process, or, in a multi-process run, any process (all stop together)."""
        import jax

        if jax.process_count() == 1:
            return interrupt.requested
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(interrupt.requested))))

    def _period_stats(self):
        """The sums the next chunk continues: zeros, or those of the period a stop cut short (on --resume)."""
        import jax

        # chunks never donate their stats argument, so one set of zeros starts every period
        self.zeros = zeros = self.par.zero_stats(self.carry)
        if self.host.period is None:
            return zeros
        leaves, tree = jax.tree_util.tree_flatten(zeros)
        saved = self.host.period.get("stats", [])
        if len(saved) != len(leaves) or any(np.shape(v) != x.shape for v, x in zip(saved, leaves)):
            raise RunError(f"--resume: the checkpoint's statistics of the log period in progress do not fit this "
                           f"run ({self.run_dir})")
        return jax.tree_util.tree_unflatten(
            tree, [self.par.place_sharded(np.asarray(v, dtype=x.dtype)) for v, x in zip(saved, leaves)])

    def _close_period(self, report, interrupt) -> Optional[str]:
        """The period's metrics row (and evaluation when due) from the sums of its chunks; returns what
        diverged, if anything. A stop during the evaluation leaves the period open (no row): --resume
        evaluates again, with the same keys."""
        args, schedule, host, seeds = self.args, self.schedule, self.host, self.seeds
        period, stats = host.period, report.stats  # leaves [S]: one entry per seed
        n = host.iters_done - period["start"]
        row = {
            "env_steps": self.env_steps,
            "agent_steps": host.iters_done * schedule.agent_steps_per_iter,
            "updates": host.updates + int(stats.num_updates[0]),
            "sps": n * schedule.env_steps_per_iter / period["seconds"],  # per seed; x num_seeds for all agents
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
            result = self._evaluate(row, interrupt)
            if result is None:
                return None
        host.period, self.stats, host.updates = None, self.zeros, row["updates"]
        self._log_row(row)
        self.rows.append(row)
        if not self.estimated and period["start"] > self.burst_iter and n == schedule.iters_per_chunk:
            self.estimated = True  # a whole period after the pretraining burst: representative
            self._estimate(period["seconds"] / n)
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

    def _estimate(self, per_iter: float) -> None:
        """Say once how long the whole run will take at `per_iter` seconds per iteration, with a hint at
        --preset cpu-small when that is long on a machine without an accelerator."""
        import jax

        from anakin_tdmpc.session.logger import format_duration

        left = (self.schedule.total_iters - self.host.iters_done) * per_iter
        total = self.schedule.total_iters * per_iter
        message = (f"estimated training time: {format_duration(total)} for {self.schedule.total_env_steps:,} env "
                   f"steps ({format_duration(left)} left, evaluations not counted)")
        if jax.default_backend() == "cpu" and left > 3600 and self.args.preset != "cpu-small":
            message += ("; this machine has no accelerator: --preset cpu-small trains a small model that learns "
                        "the easy tasks in minutes")
        self.log.message(message)

    def _evaluate(self, row: dict, interrupt):
        """Deterministic eval episodes of every seed into `row`, run in pieces of at most --max_chunk_seconds;
        returns the EvalResult (for a video), or None when a stop came first."""
        import jax

        host, args = self.host, self.args
        t_eval = time.time()
        k_episodes = jax.vmap(lambda k: jax.random.fold_in(k, host.iters_done))(self.k_eval)
        episodes = self.par.eval_start(k_episodes, args.eval_episodes)
        done, length = 0, self.env.episode_length
        while done < length:
            if self._stop_requested(interrupt):
                return None
            n = self._chunk_length("eval", length - done)
            t0 = time.time()
            episodes = jax.block_until_ready(self.eval_steps(self.carry.agent, episodes, np.int32(n),
                                                             self.carry.agent_steps))
            self.per_iter["eval"] = (time.time() - t0) / n
            done += n
        result = jax.device_get(self.par.eval_finish(episodes, args.eval_episodes))
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
        if host.period is not None:  # a stop inside a log period: its sums so far, to finish its row on --resume
            host.period["stats"] = [x.tolist() for x in checkpoint.to_host(self.stats)]
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

