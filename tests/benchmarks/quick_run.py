"""Run a benchmark module's quick mode in a child process, as an operator would, writing into a scratch report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["KEPT", "ROOT", "run_quick"]

ROOT = Path(__file__).resolve().parents[2]
KEPT = "# Benchmarks\n\nkept\n"  # what the scratch report starts with: a run must leave text outside its markers


def run_quick(module: str, report: Path, *args: str, timeout: float = 110) -> None:
    """``python -m benchmarks.<module> --quick --output <report> <args>``; fails the test with its output tail unless
    it exits 0. ``report`` is created holding ``KEPT`` first."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)  # benchmarks are timed: asyncio's debug mode would distort them
    report.write_text(KEPT)
    process = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--quick", "--output", str(report), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
