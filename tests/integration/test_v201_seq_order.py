"""2.0.1 TransactionEvents that are not replays are applied, whatever their seqNo (issue 6, anchor #23).

An Updated numbered below the highest seqNo seen is a new event when that number never arrived (an offline queue
sent out of order, a retry overtaken by the next event), and so is every event of a station that counts from 0
again after a reboot mid-transaction. Their readings are stored; only exact resends are not applied twice; an old
chargingState arriving late does not replace a newer one. Real server on loopback, checked through the HTTP API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.hostile.attack import booted
from tests.http_api import admin_client
from tests.money_helpers import T0, Clock, api, charger, make_site, next_event, ok, settled
from tests.ocpp_client import RawClient

# Replay and ordering rules must hold on SQLite and on PostgreSQL (where installed).
pytestmark = pytest.mark.usefixtures("any_database")

EVSE = {"evse": {"id": 1, "connectorId": 1}}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(
    kind: str, seq: int, tx: str, at: datetime, wh: float | None = None, state: str | None = None, **extra: Any
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": tx}
    if state is not None:
        info["chargingState"] = state
    body: dict[str, Any] = {
        "eventType": kind,
        "timestamp": _iso(at),
        "triggerReason": "MeterValuePeriodic" if kind == "Updated" else "Authorized",
        "seqNo": seq,
        "transactionInfo": info,
        **extra,
    }
    if wh is not None:
        body["meterValue"] = [{"timestamp": _iso(at), "sampledValue": [{"value": wh}]}]
    return body


async def _send(client: RawClient, *messages: dict[str, Any]) -> None:
    for message in messages:
        reply = await client.call("TransactionEvent", message)
        assert reply[0] == 3, reply


async def _get(system: CentralSystem, path: str, **params: Any) -> Any:
    async with admin_client(system.api_port) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _transaction(system: CentralSystem, station_id: str, charger_tx_id: str) -> dict[str, Any]:
    items = (await _get(system, "/transactions", station_id=station_id))["items"]
    (found,) = [t for t in items if t["charger_tx_id"] == charger_tx_id]
    body: dict[str, Any] = await _get(system, f"/transactions/{found['id']}")
    return body


async def _readings(system: CentralSystem, transaction_id: int) -> list[float]:
    items = (await _get(system, f"/transactions/{transaction_id}/meter-values"))["items"]
    return sorted(item["value"] for item in items)


async def test_an_updated_below_the_highest_seq_no_is_applied_and_is_no_gap(csms: CentralSystem) -> None:
    """(1) Started 0, Updated 2, Updated 1: all three readings stored and 1 is no gap; resends add nothing; an Updated
    arriving after the Ended is stored too and closes its gap."""
    client = await booted(csms, "ORDER-1", "ocpp2.0.1")
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    started = _event("Started", 0, "TX-O", t, 1000, **EVSE)
    second = _event("Updated", 2, "TX-O", t + timedelta(minutes=20), 1200)
    first = _event("Updated", 1, "TX-O", t + timedelta(minutes=10), 1100)
    await _send(client, started, second, first)
    running = await _transaction(csms, "ORDER-1", "TX-O")
    assert await _readings(csms, running["id"]) == [1000, 1100, 1200]
    assert (running["seq_nos"], running["last_seq_no"]) == ("0-2", 2)
    await _send(client, first, second, started)  # exact resends
    await _send(client, _event("Ended", 4, "TX-O", t + timedelta(minutes=30), 1400))
    ended = await _transaction(csms, "ORDER-1", "TX-O")
    assert (ended["state"], ended["seq_nos"], ended["seq_no_gaps"]) == ("ended", "0-2,4", "3"), ended
    # Event 3 arrives after the end (its queue was sent out of order): its reading is the transaction's.
    late = _event("Updated", 3, "TX-O", t + timedelta(minutes=25), 1300)
    await _send(client, late, late)
    ended = await _transaction(csms, "ORDER-1", "TX-O")
    assert (ended["state"], ended["seq_nos"], ended["seq_no_gaps"]) == ("ended", "0-4", None), ended
    assert await _readings(csms, ended["id"]) == [1000, 1100, 1200, 1300, 1400]
    await client.close()


async def test_a_station_counting_from_0_again_after_a_reboot_is_applied_and_resends_are_not(
    csms: CentralSystem,
) -> None:
    """(2) Started 0, Updated 1-3; the station reboots mid-transaction and numbers from 0 again: Updated 0 and 1 of
    the new count are stored; exact resends of events of either count are not stored twice."""
    client = await booted(csms, "REBOOT-1", "ocpp2.0.1")
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    before = [_event("Started", 0, "TX-R", t, 1000, **EVSE)]
    before += [_event("Updated", n, "TX-R", t + timedelta(minutes=n), 1000 + 100 * n) for n in (1, 2, 3)]
    await _send(client, *before)
    await client.close()
    client = await booted(csms, "REBOOT-1", "ocpp2.0.1")  # a new BootNotification: the count restarts at 0
    after = [_event("Updated", n, "TX-R", t + timedelta(minutes=10 + n), 2000 + 100 * n) for n in (0, 1)]
    await _send(client, *after)
    running = await _transaction(csms, "REBOOT-1", "TX-R")
    assert await _readings(csms, running["id"]) == [1000, 1100, 1200, 1300, 2000, 2100]
    assert (running["seq_nos"], running["last_seq_no"]) == ("0-3|0-1", 1)
    await _send(client, *after, *before, after[0])  # every event again, as an offline queue resent whole
    assert await _readings(csms, running["id"]) == [1000, 1100, 1200, 1300, 2000, 2100]
    assert (await _transaction(csms, "REBOOT-1", "TX-R"))["seq_nos"] == "0-3|0-1"
    await _send(client, _event("Ended", 2, "TX-R", t + timedelta(minutes=13), 2200))
    ended = await _transaction(csms, "REBOOT-1", "TX-R")
    assert (ended["state"], ended["seq_nos"], ended["seq_no_gaps"]) == ("ended", "0-3|0-2", None), ended
    assert await _readings(csms, ended["id"]) == [1000, 1100, 1200, 1300, 2000, 2100, 2200]
    await client.close()


async def test_the_numberings_survive_a_server_restart(tmp_path: Path) -> None:
    """The timestamps that tell a new count from a resend are stored: after a server restart, a resend of the old
    count is still a replay and a new event of the new count is still applied."""
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    old = [_event("Started", 0, "TX-S", t, 1000, **EVSE), _event("Updated", 1, "TX-S", t + timedelta(minutes=1), 1100)]
    new = [_event("Updated", 0, "TX-S", t + timedelta(minutes=10), 2000)]
    first = CentralSystem(make_settings(tmp_path))
    await first.start()
    try:
        client = await booted(first, "RESTART-1", "ocpp2.0.1")
        await _send(client, *old)
        await client.close()
        client = await booted(first, "RESTART-1", "ocpp2.0.1")
        await _send(client, *new)
        await client.close()
    finally:
        await first.stop()
    second = CentralSystem(make_settings(tmp_path))
    await second.start()
    try:
        client = await booted(second, "RESTART-1", "ocpp2.0.1")
        await _send(client, *old, *new, _event("Updated", 1, "TX-S", t + timedelta(minutes=11), 2100))
        stored = await _transaction(second, "RESTART-1", "TX-S")
        assert stored["seq_nos"] == "0-1|0-1"
        assert await _readings(second, stored["id"]) == [1000, 1100, 2000, 2100]
        await client.close()
    finally:
        await second.stop()


async def test_an_old_charging_state_arriving_late_does_not_replace_a_newer_one(
    system: CentralSystem, clock: Clock
) -> None:
    """(3) Charging at minute 20 (seqNo 2) arrives after SuspendedEV at minute 40 (seqNo 3): its reading is stored,
    but the car stays done charging: the stored state is SuspendedEV and overstay starts after the grace."""
    await make_site(system, ["LATE-STATE"])
    events = system.events.subscribe()
    client = await charger(system, "LATE-STATE", "ocpp2.0.1")
    token = {"idToken": {"idToken": "TAG-9", "type": "ISO14443"}}

    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    # The server's clock follows the charger's (session rules time what they are told by when they hear it).
    for arrival, event in [
        (0, _event("Started", 0, "TX-L", at(0), 500, "EVConnected", **EVSE, **token)),
        (1, _event("Updated", 1, "TX-L", at(1), 600, "Charging")),
        (40, _event("Updated", 3, "TX-L", at(40), 10_500, "SuspendedEV")),
        (41, _event("Updated", 2, "TX-L", at(20), 5_000, "Charging")),  # sent late: older than SuspendedEV
    ]:
        clock.at(arrival)
        await _send(client, event)
    await settled(system)
    stored = await _transaction(system, "LATE-STATE", "TX-L")
    assert (stored["charging_state"], datetime.fromisoformat(stored["charging_state_at"])) == ("SuspendedEV", at(40))
    assert await _readings(system, stored["id"]) == [500, 600, 5_000, 10_500]
    clock.at(51)  # 40 + 10 minutes of grace are over: the next tick announces the overstay
    overstay = await next_event(events, "session.overstay")
    assert (overstay.data["reason"], overstay.data["overstay_from"]) == ("charging_complete", at(50))
    # A newer state is taken: the car charges again.
    await _send(client, _event("Updated", 4, "TX-L", at(60), 11_000, "Charging"))
    async with api(system) as http:
        body = await ok(await http.get(f"/transactions/{stored['id']}"))
    assert (body["charging_state"], datetime.fromisoformat(body["charging_state_at"])) == ("Charging", at(60))
    await client.close()
