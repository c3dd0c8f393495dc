"""`--track`: Weights & Biases logging of the metrics.jsonl rows, the config and the eval videos.

Every row goes to wandb with `env_steps` as its x-axis (so a resumed run, which re-logs the rows after
its checkpoint, just continues the same curves). Nothing here reads, prints or stores credentials: wandb
finds them itself (`wandb login` / `WANDB_API_KEY`); `WANDB_MODE=offline` keeps everything local.
wandb's files go to `$WANDB_DIR` when set, else into `<run_dir>/wandb/`.
"""

from __future__ import annotations

import os
from typing import Optional

from anakin_tdmpc.errors import TrackingError


class WandbTracker:
    def __init__(self, project: str, entity: Optional[str], group: Optional[str], run_dir: str, config: dict,
                 run_id: Optional[str] = None):
        try:
            import wandb

            self._wandb = wandb
            self.run = wandb.init(
                project=project,
                entity=entity,
                group=group,
                name=os.path.basename(os.path.normpath(run_dir)),
                id=run_id,
                resume="allow" if run_id else None,
                config=config,
                dir=None if os.environ.get("WANDB_DIR") else run_dir,
                settings=wandb.Settings(console="off", quiet=True),
            )
            self.run.define_metric("env_steps")
            self.run.define_metric("*", step_metric="env_steps")
        except Exception as e:  # noqa: BLE001 - any failure: one line, no traceback
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise TrackingError(
                f"--track: wandb could not start ({reason}); run `wandb login` or set WANDB_MODE=offline"
            ) from None
        self.id = self.run.id

    def log(self, row: dict) -> None:
        self.run.log({k: v for k, v in row.items() if v is not None})

    def log_video(self, path: str, env_steps: int, fps: float) -> None:
        self.run.log({"eval/video": self._wandb.Video(path, fps=int(round(fps)), format="mp4"), "env_steps": env_steps})

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)
