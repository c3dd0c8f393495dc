"""Benchmarks: each measures one thing, prints markdown tables and writes JSON to benchmarks/results/;
``python -m benchmarks.report`` turns that JSON into the tables of README.md and docs/."""

import os
import subprocess


def commit() -> str:
    """The short hash of the checked-out commit, recorded with each measurement ("?" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
