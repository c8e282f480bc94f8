"""The analytics benchmark works in quick mode: every report runs over a populated database and the naive
baseline's buckets equal the SQL aggregation's. Behaviour only; no wall-clock assertions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_agrees_with_the_naive_baseline_and_writes_its_section(tmp_path: Path) -> None:
    """`run_analytics --quick` exits 0 (SQL buckets == Python buckets) and writes its section between its markers."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)  # timed code: asyncio's debug mode would distort it
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nkept\n")
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_analytics", "--quick", "--output", str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n")
    assert "<!-- live:begin -->" in text and "<!-- live:end -->" in text
    assert "500 sessions" in text and "equal ours" in text
    section = text.split("<!-- live:begin -->")[1]
    assert section.count("| load (peak vs limit") == 1 and " ms |" in section
