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
from anakin_tdmpc.errors import OutputError, RunError
from anakin_tdmpc.session import setup as steps
from anakin_tdmpc.session.outputs import OUTPUT_ERROR_EXIT_CODE, Outputs, QuietOnFullDisk
from anakin_tdmpc.session.run_dir import Lock, check_writable

DIVERGED_EXIT_CODE = 3
"""Exit code when training diverged (non-finite metrics or parameters); the bad state is not saved."""
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
    """Train for `args` (its preset applied: config.apply_preset). Raises RunError (one-line message,
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


class Trainer:
    """One run: `setup()` checks, builds, restores and compiles; `run()` trains; `close()` releases."""

    def __init__(self, args):
        self.args = args
        self.lock: Optional[Lock] = None
        self.rows: list[dict] = []

    # ------------------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        """The run's set-up as named steps; a bad setting or run dir in any of them is one RunError line."""
        from anakin_tdmpc import config
        from anakin_tdmpc.build import assemble
        from anakin_tdmpc.loop.parallel import Parallel

        args = self.args
        with steps.one_line_errors():
            steps.check_run_management(args)
            check_writable(args.run_dir or "runs")
            devices = steps.devices(args)
            self.primary = steps.is_primary()
            resume = steps.resume_point(args, len(devices))  # None: a new run
            render = steps.render_backend(args, self.primary)  # before MuJoCo's GL is loaded
            self.spec = spec = config.resolve(args, len(devices), steps.run_seed_steps(resume, args))
            self.env, self.agent, self.loop = assemble(spec)
            self.par = Parallel(self.loop, args.num_seeds, devices)
            self.run_dir = steps.run_dir(args)
            self.config = steps.config_record(spec, self.env, self.agent)
            k_init, self.k_eval = self.par.seed_keys(args.seed)  # [S] each: seed s gets the keys --seed s gets
            memory = steps.check_memory(spec, self.par, k_init, devices)
            self.lock = Lock(self.run_dir) if self.primary else None  # held until `close`: one process per run
            restored = steps.restore(self.run_dir, resume, self.par, k_init, args.keep_checkpoints)
            self.rows = steps.open_run_dir(self.run_dir, resume, self.config, self.primary)
            self.burst_iter = -(-spec.schedule.seed_steps // spec.schedule.agent_steps_per_iter) - 1
            self.host = HostState.restored(restored[1]["host"] if restored else {}, args.eval_every,
                                           self.burst_iter, spec.schedule.pretrain_updates)
            self.out = self._open_outputs(resume if restored else None, render)
        self._start(restored, resume, k_init, memory, devices)

    @property
    def schedule(self):
        return self.spec.schedule

    def _open_outputs(self, resume, render) -> Outputs:
        """Process 0's outputs (with eval videos under --capture_video); a quiet one on other processes."""
        if not self.primary:
            return Outputs.quiet()
        out = Outputs.open(self.args, self.run_dir, self.config, self.spec.schedule.total_env_steps,
                           resume.step if resume else None, self.host.wandb_id)
        if render is not None:
            out.start_videos(render, self.env)
        return out

    def _start(self, restored, resume, k_init, memory, devices) -> None:
        """The first lines, the checkpointer, the carry (restored or new), the compiled programs, the guard."""
        import jax

        from anakin_tdmpc.loop import parallel
        from anakin_tdmpc.session import checkpoint
        from anakin_tdmpc.session.guard import DivergenceGuard

        self._describe(memory, devices)
        self.checkpointer = checkpoint.Checkpointer(self.run_dir, self.args.keep_checkpoints)
        if restored:
            self.carry = restored[0]
            written_by = restored[1].get("config", {}).get("version", "an unversioned one")
            self.out.message(f"resuming from {self.checkpointer.path(resume.step)} (env step {resume.step:,}, "
                             f"written by version {written_by}; this is {__version__}); metrics.jsonl keeps its "
                             f"first {len(self.rows)} rows")
        else:
            if resume is not None:
                self.out.message(f"--resume: {self.run_dir} has no checkpoint yet; starting its run over")
            self.carry = self.par.init(k_init)
        self.stats = self._period_stats()
        self._compile()
        self.guard = DivergenceGuard(parallel.float_leaf_names(jax.eval_shape(self.agent.init, jax.random.key(0))),
                                     self.spec.seeds)
        self.env_steps = self.host.iters_done * self.spec.schedule.env_steps_per_iter
        every = self.args.checkpoint_every
        self.next_checkpoint = (self.env_steps // every + 1) * every
        self.saved_step = resume.step if restored else None

    def _describe(self, memory, devices) -> None:
        """The run in two lines: task, envs, schedule, buffer; devices, processes, seeds and memory."""
        import jax

        from anakin_tdmpc.loop import replay

        args, env, spec, schedule = self.args, self.env, self.spec, self.spec.schedule
        mem = replay.memory_bytes(schedule.buffer_capacity, args.num_envs, env.obs_dim, env.action_dim,
                                  spec.agent_config.horizon + 1, prioritized=self.agent.prioritization is not None)
        self.out.message(
            f"{args.algo} on {env.name} | obs {env.obs_dim} act {env.action_dim} | {args.num_envs} envs x action "
            f"repeat {env.action_repeat} | {schedule.updates_per_iter} updates/iter after {schedule.seed_steps} seed "
            f"steps | buffer {schedule.buffer_capacity:,} ({mem / 2**20:.0f} MiB) | {jax.default_backend()} | "
            f"{self.run_dir}")
        if spec.num_devices > 1 or args.num_seeds > 1 or jax.process_count() > 1:
            state_bytes, limit = memory
            self.out.message(
                f"scaling out: {spec.num_devices} {devices[0].platform} device(s) in {jax.process_count()} "
                f"process(es), {spec.envs_per_device} envs and batch {spec.batch_per_device} per device | "
                f"{args.num_seeds} seed(s) {spec.seeds[0]}..{spec.seeds[-1]} | training state "
                f"{state_bytes / 2**20:,.0f} MiB per device" + (f" of {limit / 2**30:.0f} GiB" if limit else ""))

    def _compile(self) -> None:
        """The training chunk, the pretraining burst (only while it is ahead) and the eval steps, compiled now so
        that no stop waits for a compile later."""
        par, host, schedule, args = self.par, self.host, self.spec.schedule, self.args
        t_compile = time.time()
        self.chunk = par.chunk.lower(self.carry, np.int32(1), self.stats, np.bool_(False)).compile()
        self.pretrain = None
        if host.iters_done <= self.burst_iter + 1 and host.pretrained < schedule.pretrain_updates:
            self.pretrain = par.pretrain.lower(self.carry, self.stats, np.int32(0), np.int32(1)).compile()
        if args.eval_episodes > 0:
            started = par.eval_start(self.k_eval, args.eval_episodes)
            self.eval_steps = par.eval_steps.lower(self.carry.agent, started, np.int32(1),
                                                   self.carry.agent_steps).compile()
        self.out.message(f"compiled training chunk in {time.time() - t_compile:.1f}s")

    # --------------------------------------------------------------------------------------------- run

    def run(self) -> TrainResult:
        args, schedule, host = self.args, self.schedule, self.host
        self.t_start = t_start = time.time() - host.time  # training time of earlier sessions counts
        self.per_iter: dict[str, float] = {}  # measured seconds per iteration ("seeding", "learning") / update
        exit_code, exit_message, self.estimated = 0, None, False
        try:
            with _Interrupt(self.out) as interrupt:
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
        except OutputError as e:
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
        if not self.rows or not os.path.exists(os.path.join(self.run_dir, "curves.png")):
            self.out.draw_curves(self.rows)
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
        end = min(host.period["start"] + schedule.iters_per_period, schedule.total_iters)
        if host.iters_done <= self.burst_iter < end:
            self.out.message(f"seeding ends at env step {(self.burst_iter + 1) * schedule.env_steps_per_iter:,}, "
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
            self.out.progress(self.env_steps)
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
        args, schedule, host, seeds = self.args, self.schedule, self.host, self.spec.seeds
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
            self.out.row(row, log_only=True)
            return bad
        done = host.iters_done == schedule.total_iters
        result = None
        if args.eval_episodes > 0 and (self.env_steps >= host.next_eval or done):
            result = self._evaluate(row, interrupt)
            if result is None:
                return None
        host.period, self.stats, host.updates = None, self.zeros, row["updates"]
        self.out.row(row)
        self.rows.append(row)
        if not self.estimated and period["start"] > self.burst_iter and n == schedule.iters_per_period:
            self.estimated = True  # a whole period after the pretraining burst: representative
            self._estimate(period["seconds"] / n)
        if result is not None:
            self.out.evaluation(self.env_steps, result, self.rows)
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
        self.out.message(message)

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
        seed_columns(row, "eval/episode_return", result.returns.mean(axis=1), self.spec.seeds)
        seed_columns(row, "eval/episode_return_std", result.returns.std(axis=1), self.spec.seeds)
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
        host.wandb_id = self.out.wandb_id or host.wandb_id
        if host.period is not None:  # a stop inside a log period: its sums so far, to finish its row on --resume
            host.period["stats"] = [x.tolist() for x in checkpoint.to_host(self.stats)]
        try:
            self.checkpointer.save(self.env_steps, self.par.saved_view(self.carry), dataclasses.asdict(host),
                                   self.config)
        except Exception as e:  # noqa: BLE001 - disk full, quota, I/O error: stop with one line
            raise OutputError(f"could not save the checkpoint of env step {self.env_steps:,} "
                               f"({checkpoint.one_line(e, 300)})") from e
        self.saved_step = self.env_steps

    def _close_outputs(self, exit_code: int) -> None:
        self.out.close(exit_code)
        with QuietOnFullDisk(exit_code):
            self.checkpointer.close()

    def _summary(self, wall: float) -> None:
        from anakin_tdmpc.session.logger import format_duration

        host, env_steps, out = self.host, self.env_steps, self.out
        out.message(
            f"done: {env_steps:,} env steps in {format_duration(wall)} "
            f"({env_steps / wall:,.0f} env steps/s)"
            + (f", final eval return {host.last_eval:.1f}" if host.last_eval is not None else "")
        )
        out.summary("summary", [
            ("env steps", f"{env_steps:,}"),
            ("agent steps / updates", f"{host.iters_done * self.schedule.agent_steps_per_iter:,} / {host.updates:,}"),
            ("training time", format_duration(wall)),
            ("SPS (env steps/s)", f"{env_steps / wall:,.0f}"),
            ("final eval return", f"{host.last_eval:.1f} ± {host.last_eval_std:.1f}"
             if host.last_eval is not None else "-"),
            ("outputs", self.run_dir),
        ])

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


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

