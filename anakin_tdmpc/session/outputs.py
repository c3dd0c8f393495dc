"""Where a run's rows, messages, videos and curves go: one object for the console and metrics.jsonl (logger.py),
TensorBoard, Weights & Biases, eval videos and curves.png. Only process 0 of a multi-process run writes; the
others get an Outputs that writes nothing."""

from __future__ import annotations

import os
from typing import Optional

from anakin_tdmpc.errors import OutputError


class Outputs:
    def __init__(self, log, tensorboard=None, tracker=None, recorder=None, curves=None, run_dir=None):
        self.log, self.tensorboard, self.tracker, self.recorder = log, tensorboard, tracker, recorder
        self.run_dir = run_dir  # videos go to <run_dir>/videos
        self.curves = curves  # (path, task, algo, total env steps) for curves.png, or None
        self.message, self.progress = log.message, log.progress

    @classmethod
    def quiet(cls) -> "Outputs":
        from anakin_tdmpc.session.logger import QuietLogger

        return cls(QuietLogger())

    @classmethod
    def open(cls, args, run_dir: str, config: dict, total_env_steps: int, resumed_from: Optional[int],
             wandb_id: Optional[str]) -> "Outputs":
        """The outputs process 0 writes; TrackingError (one line) if wandb cannot start."""
        from anakin_tdmpc.session.logger import RunLogger

        tensorboard = tracker = None
        if args.tensorboard:
            from anakin_tdmpc.session.tensorboard import TensorBoardWriter

            tensorboard = TensorBoardWriter(run_dir, resumed_from)
        if args.track:
            from anakin_tdmpc.session.tracking import WandbTracker

            tracker = WandbTracker(args.wandb_project, args.wandb_entity, args.wandb_group, run_dir, config,
                                   run_id=wandb_id)
        curves = (os.path.join(run_dir, "curves.png"), config["task"], args.algo, total_env_steps)
        return cls(RunLogger(run_dir, total_env_steps), tensorboard, tracker, None, curves, run_dir)

    def start_videos(self, render, env) -> None:
        """Eval videos with `render` = (backend or None, why), from choose_backend_here, when `env` can be drawn."""
        backend, why = render
        if env.render_model is None:
            self.message(f"warning: --capture_video: task {env.name} has no mj_model to render; continuing "
                         "without videos")
        elif backend is None:
            self.message(f"warning: --capture_video: no OpenGL backend for MuJoCo works here ({why}); continuing "
                         "without videos (docs/outputs-and-resume.md: Rendering)")
        else:
            from anakin_tdmpc.session.video import VideoRecorder

            self.recorder = VideoRecorder(env.render_model, 1.0 / env.control_dt, self.message)
            self.message(f"eval videos: rendering with MUJOCO_GL={backend}" + (f" (unavailable: {why})" if why else ""))

    @property
    def wandb_id(self) -> Optional[str]:
        return self.tracker.id if self.tracker else None

    def row(self, row: dict, log_only: bool = False) -> None:
        """A metrics row to metrics.jsonl and the console, then (unless `log_only`) TensorBoard and wandb."""
        try:
            self.log.log(row)
        except OSError as e:
            raise OutputError(f"could not write metrics.jsonl at env step {row['env_steps']:,} "
                              f"({e.strerror or e})") from e
        if log_only:
            return
        if self.tensorboard:
            self.tensorboard.log(row)
        if self.tracker:
            self.tracker.log(row)

    def evaluation(self, env_steps: int, result, rows: list) -> None:
        """After an evaluation: its first episode as a video (to wandb too), and curves.png redrawn."""
        if self.recorder:
            video = self.recorder.record(os.path.join(self.run_dir, "videos", f"{env_steps}.mp4"),
                                         *result.first_episode_frames())
            if video and self.tracker:
                self.tracker.log_video(video, env_steps, self.recorder.fps)
        self.draw_curves(rows)

    def draw_curves(self, rows: list) -> None:
        """curves.png from `rows`; a failure is a warning once, never the end of the run."""
        if self.curves is None:
            return
        from anakin_tdmpc.session.curves import plot_curves

        path, task, algo, total = self.curves
        try:
            plot_curves(path, rows, task, algo, total)
        except Exception as e:  # noqa: BLE001 - a plot never stops training
            self.curves = None
            self.message(f"warning: could not draw curves.png ({' '.join(str(e).split())[:200]})")

    def summary(self, title: str, items) -> None:
        self.log.summary(title, items)
        self.log.close()

    def close(self, exit_code: int) -> None:
        """Close every writer; after an output error (exit code 4) a close failing the same way stays quiet."""
        if self.recorder:
            self.recorder.close()
        if self.tensorboard:
            with QuietOnFullDisk(exit_code):
                self.tensorboard.close()
        if self.tracker:
            self.tracker.finish(exit_code)
        if exit_code:
            with QuietOnFullDisk(exit_code):
                self.log.close()


OUTPUT_ERROR_EXIT_CODE = 4
"""Exit code when the run's outputs could not be written (disk full, quota, I/O error) after training began."""


class QuietOnFullDisk:
    """After an output error, closing files may fail the same way: keep that from hiding the one-line error."""

    def __init__(self, exit_code: int):
        self.exit_code = exit_code

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return self.exit_code == OUTPUT_ERROR_EXIT_CODE and kind is not None and issubclass(kind, OSError)
