"""The charger-security benchmark works in quick mode: a real server process, every profile connects, a flood of
wrong passwords is refused while a connected station keeps being answered.

Behaviour only (counts and statuses); no wall-clock assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_connects_every_profile_and_survives_a_flood(tmp_path: Path) -> None:
    """`run_auth --quick` times a handshake for profiles 0-3, refuses every wrong password of the flood (none
    accepted), answers every heartbeat during it, and writes its section between the markers."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)  # timed: asyncio's debug mode would distort it
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "auth.json"
    report.write_text("# Benchmarks\n\nkept\n")
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_auth", "--quick", "--output", str(report), "--json", str(raw)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    data = json.loads(raw.read_text())
    assert len(data["handshake_median_s"]) == 4 and all(v > 0 for v in data["handshake_median_s"].values())
    flood = data["flood"]
    assert flood["refused"] > 0 and flood["wrongly_accepted"] == 0
    assert flood["heartbeats_alone"] == data["plan"]["heartbeats_alone"] and flood["heartbeats_during"] > 0
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n")
    assert text.count("<!-- sec:begin -->") == 1 and text.count("<!-- sec:end -->") == 1
