"""The reaction benchmark works end to end in quick mode: a real server, 100 simulated stations, limit cuts.

Behaviour only (every cut was reacted to and the fleet ended under the new limit); no wall-clock assertions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.benchmarks.quick_run import KEPT, run_quick


def test_quick_run_reacts_to_every_cut_and_ends_under_the_limit(tmp_path: Path) -> None:
    """`run_reaction --quick` measures a finite reaction for every cut, the load ends under the cut limit, and the
    report section is written between its markers."""
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "reaction.json"
    run_quick("run_reaction", report, "--json", str(raw))
    data = json.loads(raw.read_text())
    rounds = data["rounds"]
    assert {r["latency_s"] for r in rounds} == set(data["plan"]["latencies"]) and len(rounds) >= 2
    for measured in rounds:
        assert math.isfinite(measured["reaction_s"]) and measured["reaction_s"] >= 0
        assert measured["under_at_end"] and measured["load_after_a"] <= measured["limit_after_a"]
        assert measured["load_before_a"] > measured["limit_after_a"]  # the cut had something to cut
        assert measured["told"] > 0
    text = report.read_text()
    assert text.startswith(KEPT)
    assert text.count("<!-- reaction:begin -->") == 1 and text.count("<!-- reaction:end -->") == 1
