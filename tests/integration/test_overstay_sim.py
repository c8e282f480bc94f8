"""Overstay and time limits with simulated stations of both versions on one fast simulated clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from simulator import EVSpec, EVState, SimClock, SimStation
from tests.conftest import make_settings
from tests.money_helpers import TARIFF, api, make_site, next_event, ok, settled

SPEED = 120  # one real second is two simulated minutes
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VERSIONS = ["ocpp1.6", "ocpp2.0.1"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[CentralSystem, SimClock]]:
    clock = SimClock(SPEED, start=START, stop_while_starved=True)
    settings = make_settings(tmp_path, tariffs={"tick_seconds": 0.02})
    system = CentralSystem(settings, clock=clock.now)
    await system.start()
    try:
        yield system, clock
    finally:
        await system.stop()


async def station(system: CentralSystem, clock: SimClock, version: str) -> SimStation:
    sim = SimStation("CP-1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", version, clock=clock, tick_s=5)
    await sim.start()
    await sim.wait_connected()
    return sim


async def transaction(system: CentralSystem) -> dict[str, Any]:
    async with api(system) as http:
        [tx] = (await ok(await http.get("/transactions", params={"station_id": "CP-1"})))["items"]
    return tx


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_full_car_left_plugged_in_pays_overstay_after_grace(
    world: tuple[CentralSystem, SimClock], version: str
) -> None:
    """The car stops drawing (1.6 SuspendedEV / 2.0.1 chargingState), grace passes, per-minute overstay is billed."""
    system, clock = world
    grace = 3
    await make_site(system, ["CP-1"], TARIFF | {"overstay": {"per_minute": "0.50", "grace_minutes": grace}})
    events = system.events.subscribe()
    sim = await station(system, clock, version)
    # 0.5 kWh to go at 11 kW: full after about 3 simulated minutes.
    car = EVState(EVSpec(capacity_kwh=10, taper_soc=0.99), soc=0.90, target_soc=0.95)
    await sim.start_session(1, "TAG-1", car)
    overstay = await next_event(events, "session.overstay", timeout=30)
    assert overstay.data["reason"] == "charging_complete"
    became_due = clock.now()
    await clock.sleep(6 * 60)
    await sim.unplug(1)
    cost_event = await next_event(events, "session.cost", timeout=30)
    tx = await transaction(system)
    async with api(system) as http:
        cost = await ok(await http.get(f"/transactions/{tx['id']}/cost"))
    started, stopped = parse(tx["started_at"]), parse(tx["stopped_at"])
    overstay_from = parse(cost["overstay"]["started_at"])
    charging_took = overstay_from - timedelta(minutes=grace) - started
    assert timedelta(minutes=2) <= charging_took <= timedelta(minutes=5)
    assert overstay_from <= became_due
    minutes = int((stopped - overstay_from) // timedelta(minutes=1))
    assert minutes >= 5 and cost["overstay"]["minutes"] == minutes
    assert cost["overstay"]["fee"] == f"{minutes * 0.5:.2f}" and cost["overstay"]["reason"] == "charging_complete"
    assert 400 <= cost["energy_wh"] <= 600 and cost_event.data["total"] == cost["total"]
    await sim.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_session_is_ended_by_the_csms_at_the_sites_time_limit(
    world: tuple[CentralSystem, SimClock], version: str
) -> None:
    """With a 6-minute limit the driver is warned at 4 minutes and the station is told to stop at 6."""
    system, clock = world
    await make_site(system, ["CP-1"])
    async with api(system) as http:
        rules = {"max_charging_minutes": 6, "warning_minutes": 2, "at_limit": "stop"}
        await ok(await http.put("/sites/site/session-rules", json=rules))
    events = system.events.subscribe()
    sim = await station(system, clock, version)
    await sim.start_session(1, "TAG-1", EVState(EVSpec(capacity_kwh=80), soc=0.2))
    warning = await next_event(events, "session.time_warning", timeout=30)
    assert warning.data["at_limit"] == "stop" and 1 <= warning.data["minutes_left"] <= 2
    await next_event(events, "session.cost", timeout=30)
    await settled(system)
    tx = await transaction(system)
    assert tx["stop_reason"] == "Remote"
    took = parse(tx["stopped_at"]) - parse(tx["started_at"])
    assert timedelta(minutes=6) <= took <= timedelta(minutes=7)
    assert sim.core.connector(1).session is None and sim.core.connector(1).ev is not None  # stopped, still plugged
    await asyncio.sleep(0)
    await sim.stop()
