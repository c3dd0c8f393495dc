"""Run outputs: metrics.jsonl (one JSON object per log point) and the console (a progress bar on a
terminal, one plain line per log point everywhere)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def _clean(value):
    """JSON-safe scalars: NaN / inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class RunLogger:
    def __init__(self, run_dir: str, total_env_steps: int, console: Optional[Console] = None):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.total = total_env_steps
        self.console = console or Console(stderr=True)
        self.start = time.time()
        self._file = open(self.path, "a", buffering=1)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} env steps"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self._bar = self._progress.add_task("train", total=total_env_steps, info="compiling")
        self._progress.start()

    def log(self, row: dict) -> None:
        """Append a row to metrics.jsonl, print a summary line, advance the bar."""
        row = {k: _clean(v) for k, v in row.items()}
        self._file.write(json.dumps(row) + "\n")
        steps = row["env_steps"]
        sps = row.get("sps") or 0.0
        eta = (self.total - steps) / sps if sps > 0 else float("nan")
        parts = [f"env steps {steps:,}/{self.total:,}", f"sps {sps:,.0f}"]
        if row.get("train/episode_return") is not None:
            parts.append(f"return {row['train/episode_return']:.1f}")
        if row.get("eval/episode_return") is not None:
            parts.append(f"eval {row['eval/episode_return']:.1f}")
        if math.isfinite(eta):
            parts.append(f"ETA {format_duration(eta)}")
        line = " | ".join(parts)
        self._progress.update(self._bar, completed=steps, info=" | ".join(parts[1:]))
        self.console.print(line, highlight=False)

    def progress(self, env_steps: int) -> None:
        """Advance the bar between log points (no line)."""
        self._progress.update(self._bar, completed=env_steps)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def summary(self, title: str, items: list[tuple[str, str]]) -> None:
        """A two-column table (e.g. the end-of-run summary: steps, wall time, SPS, final eval return)."""
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        for name, value in items:
            table.add_row(name, value)
        self.console.print(table)

    def close(self) -> None:
        self._progress.stop()
        self._file.close()


class QuietLogger:
    """The logger of a multi-process run's other processes: process 0 writes everything."""

    def log(self, row: dict) -> None:
        pass

    def progress(self, env_steps: int) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def summary(self, title: str, items) -> None:
        pass

    def close(self) -> None:
        pass
