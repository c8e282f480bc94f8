"""Overstay is timed by the charger: a 2.0.1 chargingState queued offline and sent late starts the grace when the
car was done, as a 1.6 StatusNotification's timestamp does; a timestamp that cannot be right (before the session
started, or ahead of the server's clock) falls back to the arrival. Real server, real SQLite, raw chargers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from csms.runtime.app import CentralSystem
from tests.money_helpers import (
    T0,
    Clock,
    api,
    charger,
    make_site,
    next_event,
    ok,
    settled,
    start_16,
    status_16,
    stop_16,
)
from tests.ocpp_client import RawClient


def _ts(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def _tx_event(client: RawClient, kind: str, seq: int, at: datetime, state: str | None, wh: float) -> None:
    """A TransactionEvent stamped ``at`` by the charger, whatever the server's clock says when it arrives."""
    info: dict[str, Any] = {"transactionId": "TX-1"}
    if state:
        info["chargingState"] = state
    if kind == "Ended":
        info["stoppedReason"] = "EVDisconnected"
    body: dict[str, Any] = {
        "eventType": kind,
        "timestamp": _ts(at),
        "triggerReason": "ChargingStateChanged",
        "seqNo": seq,
        "transactionInfo": info,
        "meterValue": [{"timestamp": _ts(at), "sampledValue": [{"value": wh}]}],
    }
    if kind == "Started":
        body |= {"idToken": {"idToken": "TAG-9", "type": "ISO14443"}, "evse": {"id": 1, "connectorId": 1}}
    await client.result("TransactionEvent", body)


async def _cost(system: CentralSystem, station_id: str) -> dict[str, Any]:
    async with api(system) as http:
        [tx] = (await ok(await http.get("/transactions", params={"station_id": station_id})))["items"]
        cost: dict[str, Any] = await ok(await http.get(f"/transactions/{tx['id']}/cost"))
        return cost


async def test_a_completion_sent_late_starts_overstay_when_the_car_was_done(
    system: CentralSystem, clock: Clock
) -> None:
    """Done at 09:20 by the charger's clock, reported at 10:00 (queued while offline): the 10 minutes of grace
    ended at 09:30, so overstay is announced at once from 09:30 and billed to the end at 10:10."""
    await make_site(system, ["CS-1"])
    events = system.events.subscribe()
    client = await charger(system, "CS-1", "ocpp2.0.1")
    clock.at(0)
    await _tx_event(client, "Started", 0, T0, "Charging", 500)
    clock.at(60)
    await _tx_event(client, "Updated", 1, T0 + timedelta(minutes=20), "SuspendedEV", 10_500)
    await settled(system)
    clock.at(60.5)
    overstay = await next_event(events, "session.overstay")
    assert overstay.data["overstay_from"] == T0 + timedelta(minutes=30)
    clock.at(70)
    await _tx_event(client, "Ended", 2, T0 + timedelta(minutes=70), None, 10_500)
    await settled(system)
    cost = await _cost(system, "CS-1")
    assert cost["overstay"] == {
        "minutes": 40,
        "fee": "10.00",  # 40 x 0.50 = 20.00, capped
        "reason": "charging_complete",
        "started_at": "2026-11-23T09:30:00Z",
    }
    await client.close()


async def test_a_completion_stamped_ahead_of_the_server_counts_from_its_arrival(
    system: CentralSystem, clock: Clock
) -> None:
    """Stamped 5 hours ahead of the server's clock: the grace runs from the arrival, not from the future. (A 2.0.1
    chargingState stamped before the last one is older news and changes nothing: see test_v201_seq_order.py.)"""
    charger_time = T0 + timedelta(hours=5)
    await make_site(system, ["CS-1"])
    events = system.events.subscribe()
    client = await charger(system, "CS-1", "ocpp2.0.1")
    clock.at(0)
    await _tx_event(client, "Started", 0, T0, "Charging", 500)
    clock.at(30)
    await _tx_event(client, "Updated", 1, charger_time, "SuspendedEV", 10_500)
    await settled(system)
    clock.at(39)
    await settled(system)
    clock.at(40.5)  # grace counted from the arrival at 09:30
    overstay = await next_event(events, "session.overstay")
    assert overstay.data["overstay_from"] == T0 + timedelta(minutes=40)
    await client.close()


async def test_v16_status_before_the_session_started_counts_from_its_arrival(
    system: CentralSystem, clock: Clock
) -> None:
    """The same rule for a 1.6 SuspendedEV status whose timestamp is older than the transaction."""
    await make_site(system, ["CP-1"])
    events = system.events.subscribe()
    client = await charger(system, "CP-1")
    transaction_id = await start_16(client, clock.at(0))
    await status_16(client, "Charging", clock.at(0))
    clock.at(30)
    await status_16(client, "SuspendedEV", _ts(T0 - timedelta(days=3)))
    await settled(system)
    clock.at(40.5)
    overstay = await next_event(events, "session.overstay")
    assert overstay.data["overstay_from"] == T0 + timedelta(minutes=40)
    await stop_16(client, transaction_id, clock.at(45), meter_wh=5000)
    await client.close()
