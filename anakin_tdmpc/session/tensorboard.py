"""TensorBoard event files of a run (`<run_dir>/tensorboard/`, on by default, `--no_tensorboard` to skip):
every numeric entry of every metrics.jsonl row as a scalar at its `env_steps`, written with tensorboardX
(no TensorFlow needed). View with `tensorboard --logdir runs/`.

A resumed run opens the same folder with `purge_step` = its checkpoint's env steps + 1, so TensorBoard
drops the rows the interrupted session logged after that checkpoint instead of showing them twice.
"""

from __future__ import annotations

import math
import os
from typing import Optional

SKIP = ("env_steps",)  # the x-axis


class TensorBoardWriter:
    def __init__(self, run_dir: str, resumed_from: Optional[int] = None):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"),
                                    purge_step=None if resumed_from is None else resumed_from + 1)

    def log(self, row: dict) -> None:
        step = int(row["env_steps"])
        for key, value in row.items():
            if key not in SKIP and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()  # a row per chunk: on disk before a crash can lose it, as metrics.jsonl

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
