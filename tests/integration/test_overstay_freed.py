"""Overstay ends when the car frees the connector or the transaction ends, whichever the charger reports first.

Simulated stations of both versions on one fast simulated clock. Chargers differ in when unplugging ends the
transaction: by default the simulator ends it (1.6 StopTransaction EVDisconnected; 2.0.1 TransactionEvent Ended,
stoppedReason EVDisconnected, triggerReason EVDeparted, chargingState Idle). A 1.6 charger configured with
StopTransactionOnEVSideDisconnect=false, or a 2.0.1 charger whose TxStopPoint does not include EVConnected (e.g.
ParkingBayOccupancy), keeps the transaction and reports the unplug on its own: 1.6 StatusNotification Available,
2.0.1 TransactionEvent Updated with chargingState Idle and triggerReason EVCommunicationLost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.runtime.app import CentralSystem
from simulator import EVSpec, EVState, SimClock, SimStation
from simulator.clock import format_ts
from tests.conftest import make_settings
from tests.money_helpers import TARIFF, api, make_site, next_event, ok, settled

SPEED = 120  # one real second is two simulated minutes
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VERSIONS = ["ocpp1.6", "ocpp2.0.1"]
GRACE = 2


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[CentralSystem, SimClock]]:
    clock = SimClock(SPEED, start=START, stop_while_starved=True)
    system = CentralSystem(make_settings(tmp_path, tariffs={"tick_seconds": 0.02}), clock=clock.now)
    await system.start()
    try:
        yield system, clock
    finally:
        await system.stop()


async def _full_car_in_overstay(system: CentralSystem, clock: SimClock, version: str) -> SimStation:
    """A station whose car is full (charging completed) and whose overstay billing started."""
    await make_site(system, ["CP-1"], TARIFF | {"overstay": {"per_minute": "0.50", "grace_minutes": GRACE}})
    events = system.events.subscribe()
    sim = SimStation("CP-1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", version, clock=clock, tick_s=5)
    await sim.start()
    await sim.wait_connected()
    await sim.start_session(1, "TAG-1", EVState(EVSpec(capacity_kwh=10, taper_soc=0.99), soc=0.90, target_soc=0.95))
    overstay = await next_event(events, "session.overstay", timeout=30)
    assert overstay.data["reason"] == "charging_complete"
    return sim


async def _unplug_keeping_the_transaction(sim: SimStation, version: str) -> datetime:
    """What a charger that keeps the transaction after an unplug reports; the instant it reports."""
    at = sim.now()
    if version == "ocpp1.6":
        await sim.call(call16.StatusNotification(1, "NoError", "Available", timestamp=format_ts(at)))
    else:
        session = sim.core.connectors[1].session
        assert session is not None
        event = call201.TransactionEvent(
            event_type="Updated",
            timestamp=format_ts(at),
            trigger_reason="EVCommunicationLost",
            seq_no=session.next_seq(),
            transaction_info={"transaction_id": session.key, "charging_state": "Idle"},
            evse={"id": 1, "connector_id": 1},
        )
        await sim.call(event)
    return at


async def _cost(system: CentralSystem) -> tuple[dict[str, Any], dict[str, Any]]:
    async with api(system) as http:
        [tx] = (await ok(await http.get("/transactions", params={"station_id": "CP-1"})))["items"]
        return tx, await ok(await http.get(f"/transactions/{tx['id']}/cost"))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("version", VERSIONS)
async def test_overstay_ends_when_the_car_leaves_though_the_transaction_goes_on(
    world: tuple[CentralSystem, SimClock], version: str
) -> None:
    """Unplugged 5 minutes into overstay, stopped 8 minutes later: 5 minutes billed, not 13."""
    system, clock = world
    sim = await _full_car_in_overstay(system, clock, version)
    await clock.sleep(5 * 60 + 20)
    freed_at = await _unplug_keeping_the_transaction(sim, version)
    await clock.sleep(8 * 60)
    await sim.stop_session(1)
    await next_event(system.events.subscribe(), "session.cost", timeout=30)
    tx, cost = await _cost(system)
    assert system.tariffs is not None
    summary = await system.tariffs.cost_summary(tx["id"])
    assert summary is not None and summary["final"] is True and summary["total"] == cost["total"]
    # The charger's own timestamp, for 1.6 (the status) and 2.0.1 (the event) alike.
    freed = summary["overstay"]["connector_freed_at"]
    assert abs(freed - freed_at) < timedelta(seconds=30)
    minutes = int((freed - _at(cost["overstay"]["started_at"])) // timedelta(minutes=1))
    assert 4 <= minutes <= 6 and cost["overstay"]["minutes"] == minutes
    assert cost["overstay"]["fee"] == f"{minutes * 0.5:.2f}"
    assert _at(tx["stopped_at"]) - freed_at >= timedelta(minutes=6)  # the transaction went on after the unplug
    await sim.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_stop_before_the_unplug_ends_overstay_and_the_later_unplug_changes_nothing(
    world: tuple[CentralSystem, SimClock], version: str
) -> None:
    """Stopped 4 minutes into overstay (car still plugged: Finishing / EVConnected), unplugged 4 minutes later:
    the stop ends the billing, the unplug after it does not touch the stored cost."""
    system, clock = world
    sim = await _full_car_in_overstay(system, clock, version)
    await clock.sleep(4 * 60 + 20)
    await sim.stop_session(1)
    await next_event(system.events.subscribe(), "session.cost", timeout=30)
    _, cost = await _cost(system)
    await clock.sleep(4 * 60)
    await sim.unplug(1)
    await clock.sleep(60)
    await settled(system)
    tx, after = await _cost(system)
    overstay_from = _at(cost["overstay"]["started_at"])
    minutes = int((_at(tx["stopped_at"]) - overstay_from) // timedelta(minutes=1))
    assert 3 <= minutes <= 5 and cost["overstay"]["minutes"] == minutes
    assert after == cost
    await sim.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_car_that_leaves_before_grace_ends_pays_no_overstay(
    world: tuple[CentralSystem, SimClock], version: str
) -> None:
    """Charging completed, the car unplugged within the grace period, the transaction ends later: no overstay."""
    system, clock = world
    await make_site(system, ["CP-1"], TARIFF | {"overstay": {"per_minute": "0.50", "grace_minutes": 8}})
    events = system.events.subscribe()
    sim = SimStation("CP-1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", version, clock=clock, tick_s=5)
    await sim.start()
    await sim.wait_connected()
    await sim.start_session(1, "TAG-1", EVState(EVSpec(capacity_kwh=10, taper_soc=0.99), soc=0.90, target_soc=0.95))
    await clock.sleep(5 * 60)  # full after ~3 minutes: charging completed, grace runs until ~11
    await _unplug_keeping_the_transaction(sim, version)
    await clock.sleep(10 * 60)  # past the grace: no overstay starts, the car is gone
    await sim.stop_session(1)
    kinds: list[str] = []
    while "session.cost" not in kinds:
        event = await events.next(timeout=30)
        assert event is not None, f"no session.cost event after {kinds}"
        kinds.append(event.kind)
    assert "session.overstay" not in kinds and event.data["overstay_minutes"] == 0
    _, cost = await _cost(system)
    assert cost["overstay"] == {"minutes": 0, "fee": "0.00", "reason": None, "started_at": None}
    await sim.stop()
