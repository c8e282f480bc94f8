"""The reaction benchmark works end to end in quick mode: a real server, 100 simulated stations, limit cuts.

Behaviour only (every cut was reacted to and the fleet ended under the new limit); no wall-clock assertions.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_reacts_to_every_cut_and_ends_under_the_limit(tmp_path: Path) -> None:
    """`run_reaction --quick` measures a finite reaction for every cut, the load ends under the cut limit, and the
    report section is written between its markers."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)  # the fleet is timed: asyncio's debug mode would distort it
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "reaction.json"
    report.write_text("# Benchmarks\n\nkept\n")
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_reaction", "--quick", "--output", str(report), "--json", str(raw)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    data = json.loads(raw.read_text())
    rounds = data["rounds"]
    assert {r["latency_s"] for r in rounds} == set(data["plan"]["latencies"]) and len(rounds) >= 2
    for measured in rounds:
        assert math.isfinite(measured["reaction_s"]) and measured["reaction_s"] >= 0
        assert measured["under_at_end"] and measured["load_after_a"] <= measured["limit_after_a"]
        assert measured["load_before_a"] > measured["limit_after_a"]  # the cut had something to cut
        assert measured["told"] > 0
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n")
    assert text.count("<!-- reaction:begin -->") == 1 and text.count("<!-- reaction:end -->") == 1
