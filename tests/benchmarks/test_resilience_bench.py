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


def test_quick_bystanders_are_served_while_idle_sockets_and_a_deaf_station_attack(tmp_path: Path) -> None:
    """`run_resilience bystanders --quick`: every bystander call of every phase is answered, fresh stations boot
    during each attack, the server drops every half-sent handshake at its open timeout and cuts the deaf station."""
    report = tmp_path / "BENCHMARKS.md"
    run_quick("run_resilience", report, "--results", str(tmp_path), "bystanders")
    summary = json.loads((tmp_path / "resilience-bystanders-quick.json").read_text())["summary"]
    phases = {p["name"]: p for p in summary["phases"]}
    assert list(phases) == ["quiet", "idle sockets", "deaf stations"]
    for phase in phases.values():
        assert phase["errors"] == 0 and phase["calls"] > 0 and phase["fresh_failed"] == 0
    idle = phases["idle sockets"]
    assert idle["dropped_by_server"] >= idle["idle_sockets"] and idle["lifetime_max_s"] < 30
    assert phases["deaf stations"]["cut_off"] == phases["deaf stations"]["deaf_stations"] > 0
    assert summary["violations"] == 0 and summary["server_errors"] == []
    text = report.read_text()
    assert text.startswith(KEPT) and "### Bystanders under attack" in text


def test_a_part_without_a_result_keeps_its_block_from_the_report() -> None:
    """Results live in gitignored JSON files: re-running one part on a fresh checkout must not wipe the others."""
    from benchmarks.resilience import report as resilience_report

    # An earlier rendering in which only the soak had run: its real heading and some figures.
    previous = resilience_report.render({}, ["a note"])
    previous = previous.replace("### soak: not run yet (`run_resilience.py soak`)", "### Soak\n\n| soak figures |")
    section = resilience_report.render({}, ["a note"], previous.partition(resilience_report.BEGIN_MARK)[2])
    assert "### Soak\n\n| soak figures |\n" in section
    assert "### storm: not run yet" in section and section.count("### Left out") == 1


def test_quick_storm_with_basic_auth_brings_everyone_back_and_serves_the_steady_state(tmp_path: Path) -> None:
    """`run_resilience storm_auth --quick`: stations provisioned with profile 1 log in with Basic auth before and
    after the kill -9, all come back, each costing one argon2id verification, and every heartbeat of the steady
    phase after the storm is answered."""
    report = tmp_path / "BENCHMARKS.md"
    run_quick("run_resilience", report, "--results", str(tmp_path), "storm_auth")
    storm = json.loads((tmp_path / "resilience-storm_auth-quick.json").read_text())["summary"]
    assert storm["basic_auth"] and storm["provision_s"] is not None
    assert storm["initially_connected"] == storm["stations"] == storm["all"]["back"] > 0
    assert storm["steady"]["calls"] > 0 and storm["steady"]["errors"] == 0 and storm["violations"] == 0
    # Cold after the kill, every station costs exactly one argon2id however often it retried: a retry joins the
    # verification still running for it or is admitted from memory once that one is done.
    assert storm["password_checks"]["argon2"] == storm["stations"]
    assert "### Reconnect storm with Basic auth" in report.read_text()
    assert "argon2id verifications" in report.read_text()
