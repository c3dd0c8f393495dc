"""TensorBoard event files of a run (`<run_dir>/tensorboard/`, on by default, `--no_tensorboard` to skip):
every numeric entry of every metrics.jsonl row as a scalar at its `env_steps`, written with tensorboardX's
event-file writer and protobufs (no TensorFlow needed). View with `tensorboard --logdir runs/`.

Each row is written and flushed before the chunk after it runs (synchronously: a crash loses no row that
metrics.jsonl has). A resumed run starts a new event file with a session start at its checkpoint's env
steps + 1 (TensorBoard's purge step), so TensorBoard drops the rows the interrupted session logged after
that checkpoint instead of showing them twice.
"""

from __future__ import annotations

import math
import os
import time
from typing import Optional

SKIP = ("env_steps",)  # the x-axis


class TensorBoardWriter:
    def __init__(self, run_dir: str, resumed_from: Optional[int] = None):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto import event_pb2, summary_pb2

        self._event, self._summary = event_pb2, summary_pb2
        folder = os.path.join(run_dir, "tensorboard")
        os.makedirs(folder, exist_ok=True)
        self.writer = EventsWriter(os.path.join(folder, "events"), f".{time.time_ns()}")  # one file per session
        if resumed_from is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self.writer.write_event(event_pb2.Event(wall_time=time.time(), step=resumed_from + 1, session_log=start))
            self.writer.flush()

    def log(self, row: dict) -> None:
        values = [self._summary.Summary.Value(tag=key, simple_value=float(value)) for key, value in row.items()
                  if key not in SKIP and isinstance(value, (int, float)) and math.isfinite(value)]
        event = self._event.Event(wall_time=time.time(), step=int(row["env_steps"]),
                                  summary=self._summary.Summary(value=values))
        self.writer.write_event(event)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
