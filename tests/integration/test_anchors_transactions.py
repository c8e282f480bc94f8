"""Transaction anchors (docs/security.md, "Coverage of the 31 measurable tests") no other file proved: a stop
for another station's transaction (#21), messages 72 h late and readings after their stop (#22), 2.0.1 events
out of order and a seqNo that restarts at 0 (#23). Real server on loopback, checked through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.hostile.attack import BOOT, booted
from tests.http_api import admin_client
from tests.money_helpers import T0, Clock, api, charger, make_site, next_event, ok, start_16, status_16, stop_16
from tests.ocpp_client import RawClient

# Replay and ordering rules must hold on SQLite and on PostgreSQL (where installed).
pytestmark = pytest.mark.usefixtures("any_database")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _get(system: CentralSystem, path: str, **params: Any) -> Any:
    async with admin_client(system.api_port) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_stop_for_another_stations_transaction_is_answered_and_changes_nothing(csms: CentralSystem) -> None:
    """CVE-2026-28230: station B stopping station A's transaction id gets a .conf, A's transaction keeps
    running, B's stop is kept as B's event; A's own stop then ends it."""
    owner = await booted(csms, "OWNER-1", "ocpp1.6")
    intruder = await booted(csms, "INTRUDER-1", "ocpp1.6")
    start = {"connectorId": 1, "idTag": "A", "meterStart": 100, "timestamp": _iso(datetime.now(UTC))}
    tx = (await owner.result("StartTransaction", start))["transactionId"]
    stop = {"transactionId": tx, "meterStop": 99999, "timestamp": _iso(datetime.now(UTC)), "reason": "Remote"}
    reply = await intruder.call("StopTransaction", stop)
    assert reply[0] == 3, reply
    running = await _get(csms, f"/transactions/{tx}")
    assert (running["station_id"], running["state"], running["meter_stop_wh"]) == ("OWNER-1", "active", None)
    kept = (await _get(csms, "/stations/INTRUDER-1/events", action="StopTransaction"))["items"]
    assert kept[0]["payload"]["transactionId"] == tx
    assert (await owner.call("StopTransaction", {**stop, "meterStop": 600}))[0] == 3
    ended = await _get(csms, f"/transactions/{tx}")
    assert (ended["state"], ended["meter_stop_wh"]) == ("ended", 600)
    await owner.close()
    await intruder.close()


async def test_messages_72_hours_late_keep_the_chargers_times(csms: CentralSystem) -> None:
    """A transaction queued offline and sent 72 h late, in order, is stored with the charger's start and stop
    times; a reading stamped after its stop (sent after the stop) is kept too."""
    client = await booted(csms, "LATE-72", "ocpp1.6")
    began = (datetime.now(UTC) - timedelta(hours=72)).replace(microsecond=0)
    start = {"connectorId": 1, "idTag": "LATE", "meterStart": 1000, "timestamp": _iso(began)}
    tx = (await client.result("StartTransaction", start))["transactionId"]
    reading = {"timestamp": _iso(began + timedelta(minutes=30)), "sampledValue": [{"value": "1500"}]}
    await client.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [reading]})
    stopped = began + timedelta(hours=1)
    stop = {"transactionId": tx, "meterStop": 2000, "timestamp": _iso(stopped), "reason": "EVDisconnected"}
    await client.result("StopTransaction", stop)
    after = {"timestamp": _iso(stopped + timedelta(minutes=1)), "sampledValue": [{"value": "2001"}]}
    await client.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [after]})
    stored = await _get(csms, f"/transactions/{tx}")
    assert datetime.fromisoformat(stored["started_at"]) == began
    assert datetime.fromisoformat(stored["stopped_at"]) == stopped
    assert stored["energy_wh"] == 1000
    values = (await _get(csms, f"/transactions/{tx}/meter-values"))["items"]
    assert sorted(v["value"] for v in values) == [1500, 2001], values
    await client.close()


def _event(kind: str, seq: int, tx: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": _iso(at),
        "triggerReason": "MeterValuePeriodic" if kind == "Updated" else "Authorized",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        **extra,
    }


async def test_v201_updated_before_started_and_seq_no_restarting_at_0_are_stored(csms: CentralSystem) -> None:
    """An Updated that arrives before its Started (offline=true) makes one transaction; after a reboot the
    station's seqNo restarts at 0 (TC_E_53) for its next transaction, which is accepted and stored."""
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/SEQ-1", "ocpp2.0.1")
    assert (await client.result("BootNotification", BOOT["ocpp2.0.1"]))["status"] == "Accepted"
    now = datetime.now(UTC).replace(microsecond=0)
    evse = {"id": 1, "connectorId": 1}
    updated = _event("Updated", 1, "TX-A", now - timedelta(minutes=5), offline=True, evse=evse)
    started = _event("Started", 0, "TX-A", now - timedelta(minutes=10), offline=True, evse=evse)
    for message in (updated, started, _event("Ended", 2, "TX-A", now - timedelta(minutes=1))):
        assert (await client.call("TransactionEvent", message))[0] == 3
    await client.close()
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/SEQ-1", "ocpp2.0.1")
    assert (await client.result("BootNotification", BOOT["ocpp2.0.1"]))["status"] == "Accepted"
    assert (await client.call("TransactionEvent", _event("Started", 0, "TX-B", now, evse=evse)))[0] == 3
    transactions = (await _get(csms, "/transactions", station_id="SEQ-1"))["items"]
    assert sorted(t["charger_tx_id"] for t in transactions) == ["TX-A", "TX-B"]
    first = next(t for t in transactions if t["charger_tx_id"] == "TX-A")
    assert first["state"] == "ended"
    # The Started that arrived after the Updated moved the start back to the charger's time.
    assert datetime.fromisoformat(first["started_at"]) == now - timedelta(minutes=10)
    assert datetime.fromisoformat(first["stopped_at"]) == now - timedelta(minutes=1)
    await client.close()


async def test_a_session_sent_72_hours_late_is_priced_with_the_chargers_times(tmp_path: Path) -> None:
    """The same 90-minute session as test_tariffs' reference, queued offline and sent 72 h later: the time
    charge is for the charger's 1.5 h, not for the time the messages arrived."""
    clock = Clock(T0 + timedelta(hours=72))
    system = CentralSystem(make_settings(tmp_path, tariffs={"tick_seconds": 0.05}), clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-LATE"])
        events = system.events.subscribe()
        client = await charger(system, "CP-LATE")
        at = {minutes: _iso(T0 + timedelta(minutes=minutes)) for minutes in (0, 90)}
        await status_16(client, "Preparing", at[0])
        transaction_id = await start_16(client, at[0], meter_wh=1000)
        await status_16(client, "Charging", at[0])
        await stop_16(client, transaction_id, at[90], meter_wh=21_333)
        await next_event(events, "session.cost")
        async with api(system) as http:
            body = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
        assert (body["energy"], body["time"], body["session_fee"]) == ("6.10", "1.80", "0.50"), body
        assert body["time_seconds"] == 5400
        await client.close()
    finally:
        await system.stop()


async def _transaction(system: CentralSystem, station_id: str, charger_tx_id: str) -> dict[str, Any]:
    items = (await _get(system, "/transactions", station_id=station_id))["items"]
    (found,) = [t for t in items if t["charger_tx_id"] == charger_tx_id]
    body: dict[str, Any] = await _get(system, f"/transactions/{found['id']}")
    return body


async def test_v201_seq_no_gaps_are_reported_when_the_transaction_ends(
    csms: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """#23: the seqNos a transaction never received are stored on it when it ends (GET /transactions/{id},
    session.stopped on the events stream) and logged as a warning; a replayed event adds no gap and is not
    applied twice; an event that arrives after the end closes its gap; a seqNo restarting at 0 (a rebooted
    station, or its next transaction) is no gap; an Ended whose Started never came reports the numbers before it."""
    events = csms.events.subscribe()
    client = await booted(csms, "GAPS-1", "ocpp2.0.1")
    now = datetime.now(UTC).replace(microsecond=0)
    evse = {"evse": {"id": 1, "connectorId": 1}}

    def reading(minutes: int, wh: int) -> dict[str, Any]:
        at = _iso(now - timedelta(minutes=60 - minutes))
        return {"meterValue": [{"timestamp": at, "sampledValue": [{"value": wh}]}]}

    sent = [
        _event("Started", 0, "TX-G", now - timedelta(minutes=60), **evse, **reading(0, 1000)),
        _event("Updated", 1, "TX-G", now - timedelta(minutes=50), **reading(10, 1100)),
        _event("Updated", 3, "TX-G", now - timedelta(minutes=30), **reading(30, 1300)),  # 2 never arrives
        _event("Updated", 3, "TX-G", now - timedelta(minutes=30), **reading(30, 1300)),  # replayed
        _event("Updated", 6, "TX-G", now - timedelta(minutes=20), **reading(40, 1400)),  # 4 and 5 never arrive
    ]
    for message in sent:
        assert (await client.call("TransactionEvent", message))[0] == 3
    running = await _transaction(csms, "GAPS-1", "TX-G")
    assert (running["state"], running["seq_no_gaps"], running["seq_nos"]) == ("active", None, "0-1,3,6")
    assert (await client.call("TransactionEvent", _event("Ended", 7, "TX-G", now - timedelta(minutes=10))))[0] == 3
    ended = await _transaction(csms, "GAPS-1", "TX-G")
    assert (ended["state"], ended["seq_no_gaps"]) == ("ended", "2, 4-5"), ended
    stopped = await next_event(events, "session.stopped")
    assert stopped.data["transaction_id"] == ended["id"] and stopped.data["seq_no_gaps"] == "2, 4-5", stopped.data
    warnings = [r.getMessage() for r in caplog.records if "transaction events missing" in r.getMessage()]
    assert len(warnings) == 1 and "4-5" in warnings[0], warnings
    values = (await _get(csms, f"/transactions/{ended['id']}/meter-values"))["items"]
    assert sorted(v["value"] for v in values) == [1000, 1100, 1300, 1400], values  # the replay stored nothing
    # Event 4, delivered late after the end: no longer missing.
    assert (await client.call("TransactionEvent", _event("Updated", 4, "TX-G", now - timedelta(minutes=25))))[0] == 3
    assert (await _transaction(csms, "GAPS-1", "TX-G"))["seq_no_gaps"] == "2, 5"
    await client.close()

    # The station reboots: its next transaction counts from 0 again, and so does the one it was in the middle of.
    client = await booted(csms, "GAPS-1", "ocpp2.0.1")
    for message in [
        _event("Started", 0, "TX-H", now - timedelta(minutes=9), **evse),
        _event("Updated", 1, "TX-H", now - timedelta(minutes=8)),
    ]:
        assert (await client.call("TransactionEvent", message))[0] == 3
    await client.close()
    client = await booted(csms, "GAPS-1", "ocpp2.0.1")
    for message in [
        _event("Updated", 0, "TX-H", now - timedelta(minutes=5)),
        _event("Updated", 1, "TX-H", now - timedelta(minutes=4)),
        _event("Ended", 2, "TX-H", now - timedelta(minutes=3)),
    ]:
        assert (await client.call("TransactionEvent", message))[0] == 3
    restarted = await _transaction(csms, "GAPS-1", "TX-H")
    assert (restarted["seq_nos"], restarted["seq_no_gaps"]) == ("0-1|0-2", None), restarted  # two numberings
    # An Ended for a transaction never heard of: its Started and the events before are missing.
    assert (await client.call("TransactionEvent", _event("Ended", 3, "TX-E", now - timedelta(minutes=1), **evse)))[
        0
    ] == 3
    assert (await _transaction(csms, "GAPS-1", "TX-E"))["seq_no_gaps"] == "0-2"
    # The schema allows negative numbers: they are tracked like any other.
    for message in [
        _event("Started", -2, "TX-N", now - timedelta(minutes=1), **evse),
        _event("Updated", -2, "TX-N", now - timedelta(minutes=1)),
        _event("Ended", 1, "TX-N", now),
    ]:
        assert (await client.call("TransactionEvent", message))[0] == 3
    negative = await _transaction(csms, "GAPS-1", "TX-N")
    assert (negative["seq_nos"], negative["seq_no_gaps"]) == ("-2,1", "-1-0"), negative
    await client.close()
