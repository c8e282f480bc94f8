"""The charger-security benchmark works in quick mode: a real server process, every profile connects, a flood of
wrong passwords is refused while a connected station keeps being answered.

Behaviour only (counts and statuses); no wall-clock assertions.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.quick_run import KEPT, run_quick


def test_quick_run_connects_every_profile_and_survives_a_flood(tmp_path: Path) -> None:
    """`run_auth --quick` times a handshake for profiles 0-3, refuses every wrong password of the flood (none
    accepted), answers every heartbeat during it, and writes its section between the markers."""
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "auth.json"
    run_quick("run_auth", report, "--json", str(raw))
    data = json.loads(raw.read_text())
    assert len(data["handshake_median_s"]) == 4 and all(v > 0 for v in data["handshake_median_s"].values())
    flood = data["flood"]
    assert flood["refused"] > 0 and flood["wrongly_accepted"] == 0
    assert flood["heartbeats_alone"] == data["plan"]["heartbeats_alone"] and flood["heartbeats_during"] > 0
    text = report.read_text()
    assert text.startswith(KEPT)
    assert text.count("<!-- sec:begin -->") == 1 and text.count("<!-- sec:end -->") == 1
