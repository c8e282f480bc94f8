"""Messages a charger resends after the server restarted (its reply was lost) are applied once.

A server killed after committing a message but before its reply reached the charger comes back with an empty
memory; the charger then resends that message. These tests stop one server, start a new one on the same
database and resend, then read what is stored through the HTTP API. (The kill -9 runs themselves are in
``test_durability.py``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.databases import as_utc, fetch_rows
from tests.http_api import admin_client
from tests.ocpp_client import RawClient

# Every test here runs on SQLite and on PostgreSQL (where installed).
pytestmark = pytest.mark.usefixtures("any_database")

BOOT_16 = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
BOOT_201 = {"chargingStation": {"vendorName": "Acme", "model": "DC50"}, "reason": "PowerUp"}
ENERGY = "Energy.Active.Import.Register"


@asynccontextmanager
async def server(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    """A central system on ``tmp_path``'s database file; a second one started later sees the same data."""
    system = CentralSystem(make_settings(tmp_path))
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@asynccontextmanager
async def station(system: CentralSystem, identity: str, version: str) -> AsyncIterator[RawClient]:
    client = await RawClient.open(f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{identity}", f"ocpp{version}")
    try:
        boot = await client.result("BootNotification", BOOT_16 if version == "1.6" else BOOT_201)
        assert boot["status"] == "Accepted"
        yield client
    finally:
        await client.close()


async def stored_readings(system: CentralSystem, transaction_id: int) -> list[dict[str, Any]]:
    async with admin_client(system.api_port) as api:
        response = await api.get(f"/transactions/{transaction_id}/meter-values")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def meter_values_16(transaction_id: int, at: str, wh: int) -> dict[str, Any]:
    sampled = [{"value": str(wh), "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"}]
    meter_value = [{"timestamp": at, "sampledValue": sampled}]
    return {"connectorId": 1, "transactionId": transaction_id, "meterValue": meter_value}


async def test_v16_meter_values_resent_after_a_restart_are_stored_once(tmp_path: Path) -> None:
    """A 1.6 MeterValues committed before a restart and resent after it adds no second row."""
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": "2026-01-05T10:00:00.000Z"}
    reading = meter_values_16(0, "2026-01-05T10:01:00.000Z", 1100)
    async with server(tmp_path) as first, station(first, "CP-RESEND-16", "1.6") as charger:
        transaction_id = (await charger.result("StartTransaction", start))["transactionId"]
        reading["transactionId"] = transaction_id
        assert await charger.result("MeterValues", reading) == {}
    async with server(tmp_path) as second, station(second, "CP-RESEND-16", "1.6") as charger:
        assert await charger.result("MeterValues", reading) == {}
        # Not a resend: a new reading at the next instant is stored.
        later = meter_values_16(transaction_id, "2026-01-05T10:02:00.000Z", 1200)
        assert await charger.result("MeterValues", later) == {}
        rows = await stored_readings(second, transaction_id)
    assert [(row["timestamp"][:19], row["value"]) for row in rows] == [
        ("2026-01-05T10:01:00", 1100.0),
        ("2026-01-05T10:02:00", 1200.0),
    ]


async def test_v16_start_resent_after_a_restart_gets_the_same_transaction_id(tmp_path: Path) -> None:
    """A 1.6 StartTransaction committed before a restart and resent after it is answered with the same id."""
    start = {"connectorId": 1, "idTag": "TAG2", "meterStart": 500, "timestamp": "2026-01-05T11:00:00.000Z"}
    async with server(tmp_path) as first, station(first, "CP-RESTART-16", "1.6") as charger:
        first_id = (await charger.result("StartTransaction", start))["transactionId"]
    async with server(tmp_path) as second, station(second, "CP-RESTART-16", "1.6") as charger:
        assert (await charger.result("StartTransaction", start))["transactionId"] == first_id
        async with admin_client(second.api_port) as api:
            listed = (await api.get("/transactions", params={"station_id": "CP-RESTART-16"})).json()["items"]
    assert [item["id"] for item in listed] == [first_id]


async def test_v201_events_resent_after_a_restart_are_applied_once(tmp_path: Path) -> None:
    """2.0.1 Started/Updated events resent after a restart (same transactionId and seqNo) store nothing twice."""

    def event(event_type: str, seq_no: int, at: str, wh: int | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": at,
            "triggerReason": "Authorized" if event_type == "Started" else "MeterValuePeriodic",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": "TX-RESEND-1"},
        }
        if event_type == "Started":
            payload |= {"idToken": {"idToken": "TAG3", "type": "ISO14443"}, "evse": {"id": 1, "connectorId": 1}}
        if wh is not None:
            sampled = [{"value": wh, "measurand": ENERGY, "context": "Sample.Periodic"}]
            payload["meterValue"] = [{"timestamp": at, "sampledValue": sampled}]
        return payload

    sent: list[dict[str, Any]] = [
        event("Started", 0, "2026-01-05T12:00:00.000Z"),
        event("Updated", 1, "2026-01-05T12:01:00.000Z", 2100),
    ]
    async with server(tmp_path) as first, station(first, "CP-RESEND-201", "2.0.1") as charger:
        for payload in sent:
            await charger.result("TransactionEvent", payload)
    async with server(tmp_path) as second, station(second, "CP-RESEND-201", "2.0.1") as charger:
        for payload in sent:
            await charger.result("TransactionEvent", payload)
        async with admin_client(second.api_port) as api:
            listed = (await api.get("/transactions", params={"station_id": "CP-RESEND-201"})).json()["items"]
        assert len(listed) == 1 and listed[0]["started_at"].startswith("2026-01-05T12:00:00")
        rows = await stored_readings(second, listed[0]["id"])
    assert [(row["timestamp"][:19], row["value"]) for row in rows] == [("2026-01-05T12:01:00", 2100.0)]


async def test_integers_beyond_32_bits_are_stored_and_a_resend_still_applied_once(tmp_path: Path) -> None:
    """The OCPP edge takes any signed 64-bit integer; both backends store it (PostgreSQL in BIGINT columns): seqNos
    near 2**62 are kept, and the resend after a restart is known by them."""
    wide_seq = 2**62
    started = {
        "eventType": "Started",
        "timestamp": "2026-01-05T13:00:00.000Z",
        "triggerReason": "Authorized",
        "seqNo": wide_seq,
        "transactionInfo": {"transactionId": "TX-WIDE"},
        "idToken": {"idToken": "TAG4", "type": "ISO14443"},
        "evse": {"id": 1, "connectorId": 1},
    }
    updated = {
        "eventType": "Updated",
        "timestamp": "2026-01-05T13:01:00.000Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": wide_seq + 1,
        "transactionInfo": {"transactionId": "TX-WIDE"},
        "meterValue": [
            {"timestamp": "2026-01-05T13:01:00.000Z", "sampledValue": [{"value": 700, "measurand": ENERGY}]}
        ],
    }
    async with server(tmp_path) as first, station(first, "CP-WIDE", "2.0.1") as charger:
        await charger.result("TransactionEvent", started)
        await charger.result("TransactionEvent", updated)
    async with server(tmp_path) as second, station(second, "CP-WIDE", "2.0.1") as charger:
        await charger.result("TransactionEvent", updated)  # the resend
    rows = fetch_rows(
        tmp_path,
        "SELECT started_seq_no, last_seq_no FROM transactions WHERE charger_tx_id = 'TX-WIDE'",
    )
    assert rows == [(wide_seq, wide_seq + 1)]
    readings = fetch_rows(tmp_path, "SELECT value FROM meter_values WHERE station_id = 'CP-WIDE'")
    assert readings == [(700.0,)]


async def test_a_nul_character_is_stored_on_sqlite_and_refused_cleanly_on_postgresql(
    tmp_path: Path, any_database: str
) -> None:
    """A string with U+0000 is schema-valid: SQLite stores it; PostgreSQL text cannot hold it, so there the message
    is answered PropertyConstraintViolation (a warning, not an InternalError), nothing of it is stored and the
    connection goes on serving."""
    boot = {"chargingStation": {"vendorName": "Ac\u0000me", "model": "DC50"}, "reason": "PowerUp"}
    async with server(tmp_path) as system:
        client = await RawClient.open(f"ws://127.0.0.1:{system.ocpp_port}/ocpp/CP-NUL", "ocpp2.0.1")
        try:
            reply = await client.call("BootNotification", boot)
            assert (await client.result("BootNotification", BOOT_201))["status"] == "Accepted"
        finally:
            await client.close()
    vendors = [vendor for (vendor,) in fetch_rows(tmp_path, "SELECT vendor FROM stations WHERE id = 'CP-NUL'")]
    if any_database == "sqlite":
        assert reply[0] == 3 and reply[2]["status"] == "Accepted"
    else:
        assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation"
    assert vendors == ["Acme"]  # the second boot's vendor, on both


def outside_transaction(version: str, at: str, wh: int, volts: float) -> dict[str, Any]:
    """A MeterValues with no transaction: energy and per-phase voltage of EVSE 1 at ``at``."""
    if version == "1.6":
        sampled: list[dict[str, Any]] = [
            {"value": str(wh), "measurand": ENERGY, "unit": "Wh"},
            {"value": str(volts), "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": str(volts + 1), "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
        ]
        return {"connectorId": 1, "meterValue": [{"timestamp": at, "sampledValue": sampled}]}
    sampled = [
        {"value": wh, "measurand": ENERGY},
        {"value": volts, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
        {"value": volts + 1, "measurand": "Voltage", "phase": "L2-N", "unitOfMeasure": {"unit": "V"}},
    ]
    return {"evseId": 1, "meterValue": [{"timestamp": at, "sampledValue": sampled}]}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_meter_values_outside_a_transaction_resent_after_a_restart_are_stored_once(
    tmp_path: Path, version: str
) -> None:
    """Readings with no transaction (1.6 without transactionId, 2.0.1 MeterValues) committed before a restart and
    resent after it are not stored again: their key is station, EVSE, instant and quantity. A later instant, and
    another quantity at the same instant, are new readings."""
    identity = f"CP-IDLE-{version}"
    first_reading = outside_transaction(version, "2026-01-05T10:01:00.000Z", 500, 230.0)
    async with server(tmp_path) as first, station(first, identity, version) as charger:
        assert await charger.result("MeterValues", first_reading) == {}
    async with server(tmp_path) as second, station(second, identity, version) as charger:
        assert await charger.result("MeterValues", first_reading) == {}  # the resend
        assert await charger.result("MeterValues", first_reading) == {}  # and once more, same process
        later = outside_transaction(version, "2026-01-05T10:02:00.000Z", 510, 229.0)
        assert await charger.result("MeterValues", later) == {}
        current = {"value": "16" if version == "1.6" else 16, "measurand": "Current.Import", "phase": "L1"}
        other_quantity = dict(first_reading)
        other_quantity["meterValue"] = [{"timestamp": "2026-01-05T10:01:00.000Z", "sampledValue": [current]}]
        assert await charger.result("MeterValues", other_quantity) == {}
    stored = fetch_rows(
        tmp_path,
        "SELECT timestamp, measurand, phase, value FROM meter_values "
        "WHERE station_id = :station AND transaction_id IS NULL ORDER BY timestamp, measurand, phase",
        station=identity,
    )
    rows = [(f"{as_utc(at):%Y-%m-%d %H:%M:%S}", measurand, phase, value) for at, measurand, phase, value in stored]
    assert rows == [
        ("2026-01-05 10:01:00", "Current.Import", "L1", 16.0),
        ("2026-01-05 10:01:00", ENERGY, None, 500.0),
        ("2026-01-05 10:01:00", "Voltage", "L1-N", 230.0),
        ("2026-01-05 10:01:00", "Voltage", "L2-N", 231.0),
        ("2026-01-05 10:02:00", ENERGY, None, 510.0),
        ("2026-01-05 10:02:00", "Voltage", "L1-N", 229.0),
        ("2026-01-05 10:02:00", "Voltage", "L2-N", 230.0),
    ]
