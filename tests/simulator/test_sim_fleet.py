"""A small fleet and the CLI end to end against the fake CSMS (loopback, bounded in time)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from simulator.clock import SimClock
from simulator.fleet import Fleet
from simulator.scenario import load_scenario
from tests.simulator.fake_csms import FakeCsms

ROOT = Path(__file__).resolve().parents[2]


async def test_fleet_runs_sessions(fake_csms: FakeCsms) -> None:
    """The ci-smoke fleet boots every station, has EVs arrive and charge, and stops gracefully."""
    scenario = load_scenario(ROOT / "config" / "scenarios" / "ci-smoke.toml")
    fleet = Fleet(scenario, fake_csms.url, clock=SimClock(600))
    stop = asyncio.Event()
    try:
        await fleet.start()
        await asyncio.wait_for(asyncio.gather(*(s.wait_connected() for s in fleet.stations)), 10)
        await asyncio.wait_for(fleet.run(1200, stop), 10)  # 20 simulated minutes = 2 s
    finally:
        await fleet.stop(graceful=True)
    summary = fleet.summary()
    assert summary.stations == 4 and summary.arrivals > 0
    assert summary.sessions_started > 0 and summary.sessions_completed == summary.sessions_started
    assert summary.energy_kwh > 0 and summary.errors == 0
    protocols = {s.identity: s.protocol for s in fleet.stations}
    for identity in protocols:
        assert fake_csms.of(identity, "BootNotification")
    assert (
        len(fake_csms.of_any("StartTransaction"))
        + len([p for p in fake_csms.of_any("TransactionEvent") if p["eventType"] == "Started"])
        == summary.sessions_started
    )


async def test_cli_run_exits_cleanly_with_summary(fake_csms: FakeCsms) -> None:
    """`python -m simulator run --no-live` runs the duration against a CSMS and prints the summary."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "run",
        "--url",
        fake_csms.url,
        "--scenario",
        str(ROOT / "config" / "scenarios" / "ci-smoke.toml"),
        "--stations",
        "2",
        "--protocol",
        "mixed",
        "--speed",
        "600",
        "--duration",
        "600",
        "--seed",
        "5",
        "--no-live",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Simulation summary" in text and "sessions started" in text
    assert {m.identity for m in fake_csms.received} == {"CI-001", "CI-002"}


async def test_cli_rejects_bad_scenario(tmp_path: Path) -> None:
    """A scenario with a misspelt key makes `validate` exit with code 2 and name the key."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[stations]\nconectors = 2\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "validate",
        str(bad),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "stations.conectors" in out.decode()
