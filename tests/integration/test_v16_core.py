"""OCPP 1.6J against the real server over loopback websockets, checked through the HTTP API and the database."""

from __future__ import annotations

import httpx
import pytest

from csms.runtime.app import CentralSystem
from tests.http_api import admin_client
from tests.ocpp_client import RawClient, now_iso

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC22", "firmwareVersion": "1.2.3"}


def ws_url(csms: CentralSystem, identity: str) -> str:
    return f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{identity}"


def api(csms: CentralSystem) -> httpx.AsyncClient:
    return admin_client(csms.api_port, timeout=10)


async def booted(csms: CentralSystem, identity: str) -> RawClient:
    client = await RawClient.open(ws_url(csms, identity), "ocpp1.6")
    result = await client.result("BootNotification", BOOT)
    assert result["status"] == "Accepted"
    return client


async def test_boot_registers_station_and_reports_interval(csms: CentralSystem) -> None:
    """An unknown station is auto-registered on boot and told the configured heartbeat interval."""
    client = await RawClient.open(ws_url(csms, "CP-1"), "ocpp1.6")
    result = await client.result("BootNotification", BOOT)
    assert result["status"] == "Accepted"
    assert result["interval"] == csms.settings.ocpp.heartbeat_interval
    assert result["currentTime"].endswith("Z")
    async with api(csms) as http:
        station = (await http.get("/stations/CP-1")).json()
    assert station["connected"] is True
    assert station["protocol"] == "ocpp1.6"
    assert station["info"]["vendor"] == "Acme"
    assert station["info"]["firmware_version"] == "1.2.3"
    await client.close()


async def test_full_charging_session_is_stored(csms: CentralSystem) -> None:
    """Status, start, meter values (all attributes) and stop with transactionData end up in storage."""
    client = await booted(csms, "CP-2")
    assert await client.result("Heartbeat", {}) != {}
    await client.result(
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Preparing", "timestamp": now_iso()},
    )
    start = await client.result(
        "StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "meterStart": 1000, "timestamp": now_iso()}
    )
    assert start["idTagInfo"]["status"] == "Accepted"
    tx = start["transactionId"]
    sample = {
        "timestamp": now_iso(),
        "sampledValue": [
            {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic"},
            {"value": "15.9", "measurand": "Current.Import", "phase": "L2", "unit": "A", "location": "Outlet"},
        ],
    }
    await client.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [sample]})
    stop = {
        "transactionId": tx,
        "meterStop": 7000,
        "timestamp": now_iso(),
        "reason": "EVDisconnected",
        "idTag": "RFID-1",
        "transactionData": [{"timestamp": now_iso(), "sampledValue": [{"value": "7000", "unit": "Wh"}]}],
    }
    assert (await client.result("StopTransaction", stop))["idTagInfo"]["status"] == "Accepted"
    async with api(csms) as http:
        stored = (await http.get(f"/transactions/{tx}")).json()
        values = (await http.get(f"/transactions/{tx}/meter-values")).json()["items"]
    assert stored["state"] == "ended"
    assert stored["energy_wh"] == 6000
    assert stored["stop_reason"] == "EVDisconnected"
    current = next(v for v in values if v["measurand"] == "Current.Import")
    assert (current["phase"], current["unit"], current["location"], current["value"]) == ("L2", "A", "Outlet", 15.9)
    energy = [v for v in values if v["measurand"] == "Energy.Active.Import.Register"]
    assert [v["context"] for v in energy] == ["Sample.Periodic", None]
    await client.close()


async def test_replayed_start_returns_same_transaction(csms: CentralSystem) -> None:
    """A StartTransaction replayed after a reconnect gets the same transactionId and creates no duplicate."""
    start = {"connectorId": 2, "idTag": "RFID-2", "meterStart": 0, "timestamp": "2026-11-20T08:00:00.000Z"}
    client = await booted(csms, "CP-3")
    first = await client.result("StartTransaction", start)
    await client.close()
    client = await RawClient.open(ws_url(csms, "CP-3"), "ocpp1.6")
    again = await client.result("StartTransaction", start)
    assert again["transactionId"] == first["transactionId"]
    async with api(csms) as http:
        items = (await http.get("/transactions", params={"station_id": "CP-3"})).json()["items"]
    assert len(items) == 1
    await client.close()


async def test_late_stop_for_unknown_transaction_is_answered_and_kept(csms: CentralSystem) -> None:
    """A StopTransaction for a transaction the CSMS never saw is answered and stored verbatim."""
    client = await booted(csms, "CP-4")
    stop = {"transactionId": 987654, "meterStop": 42, "timestamp": "2026-01-01T00:00:00Z", "idTag": "OLD"}
    result = await client.result("StopTransaction", stop)
    assert result["idTagInfo"]["status"] == "Accepted"
    async with api(csms) as http:
        events = (await http.get("/stations/CP-4/events", params={"action": "StopTransaction"})).json()["items"]
    assert events[0]["payload"]["transactionId"] == 987654
    await client.close()


async def test_stop_replayed_is_answered_once_applied(csms: CentralSystem) -> None:
    """A StopTransaction sent twice keeps the first stop's values."""
    client = await booted(csms, "CP-5")
    tx = (
        await client.result(
            "StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": now_iso()}
        )
    )["transactionId"]
    stop = {"transactionId": tx, "meterStop": 500, "timestamp": now_iso(), "reason": "Local"}
    await client.result("StopTransaction", stop)
    await client.result("StopTransaction", {**stop, "meterStop": 999})
    async with api(csms) as http:
        assert (await http.get(f"/transactions/{tx}")).json()["meter_stop_wh"] == 500
    await client.close()


@pytest.mark.parametrize(
    ("status", "expiry", "expected"),
    [
        ("Blocked", None, "Blocked"),
        ("Accepted", "2020-01-01T00:00:00Z", "Expired"),
        ("Accepted", "2099-01-01T00:00:00Z", "Accepted"),
    ],
)
async def test_authorize_checks_token_status_and_expiry(
    csms: CentralSystem, status: str, expiry: str | None, expected: str
) -> None:
    """Authorize answers from the stored id token: blocked, expired and valid tokens."""
    async with api(csms) as http:
        body = {"status": status, "expiry": expiry, "parent_id": "FLEET-7"}
        assert (await http.put("/id-tokens/CARD-9", json=body)).status_code == 200
    client = await booted(csms, "CP-6")
    info = (await client.result("Authorize", {"idTag": "CARD-9"}))["idTagInfo"]
    assert info["status"] == expected
    assert info["parentIdTag"] == "FLEET-7"
    await client.close()


async def test_security_extension_notifications_are_stored(csms: CentralSystem) -> None:
    """Security-extension and firmware/diagnostics notifications are answered and recorded."""
    client = await booted(csms, "CP-7")
    await client.result("SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": now_iso()})
    await client.result("LogStatusNotification", {"status": "Uploaded", "requestId": 3})
    await client.result("SignedFirmwareStatusNotification", {"status": "Installed", "requestId": 1})
    await client.result("DiagnosticsStatusNotification", {"status": "Uploaded"})
    assert (await client.result("SignCertificate", {"csr": "-----BEGIN CSR-----"}))["status"] == "Rejected"
    assert (await client.result("DataTransfer", {"vendorId": "acme", "data": "x"}))["status"] == "UnknownVendorId"
    async with api(csms) as http:
        events = (await http.get("/stations/CP-7/events")).json()["items"]
        station = (await http.get("/stations/CP-7")).json()
    actions = {event["action"] for event in events}
    assert {"SecurityEventNotification", "LogStatusNotification", "SignCertificate", "DataTransfer"} <= actions
    assert station["firmware_status"] == "Installed"
    assert station["diagnostics_status"] == "Uploaded"
    await client.close()
