"""The resilience runs work end to end in quick mode: a real ``csms serve`` process, a reconnect storm and a soak.

Behaviour only (everyone came back, nothing failed, the report section is written); the figures themselves are
the full run's business (BENCHMARKS.md). kill -9 and half-open/churn have their own tests in tests/integration.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.quick_run import KEPT, run_quick


def test_quick_storm_and_soak_bring_everyone_back_without_errors(tmp_path: Path) -> None:
    """`run_resilience storm soak --quick`: every station reconnects after the kill and restart (both retry
    policies), the soak's traffic is all answered with no fd left behind, and the section lands between its
    markers."""
    report = tmp_path / "BENCHMARKS.md"
    run_quick("run_resilience", report, "--results", str(tmp_path), "storm", "soak")
    storm = json.loads((tmp_path / "resilience-storm-quick.json").read_text())["summary"]
    assert storm["initially_connected"] == storm["stations"] > 0
    for group in ("v16", "v201"):
        assert storm[group]["back"] == storm[group]["stations"] > 0
        assert storm[group]["attempts"] >= storm[group]["back"]
    assert storm["connected_after"] == storm["stations"] and storm["server_errors"] == 0
    soak = json.loads((tmp_path / "resilience-soak-quick.json").read_text())["summary"]
    assert soak["connected"] == soak["target"] and soak["errors"] == 0 and soak["answered"] > soak["connected"]
    assert soak["fds_after"] <= soak["fds_idle"] and soak["connected_after"] == 0
    text = report.read_text()
    assert text.startswith(KEPT)
    assert text.count("<!-- resilience:begin -->") == 1 and text.count("<!-- resilience:end -->") == 1
    assert "### Reconnect storm" in text and "### Soak" in text
