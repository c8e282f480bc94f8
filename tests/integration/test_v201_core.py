"""OCPP 2.0.1 against the real server over loopback websockets, checked through the HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from csms.runtime.app import CentralSystem
from tests.http_api import admin_client
from tests.ocpp_client import RawClient, now_iso

BOOT = {"chargingStation": {"vendorName": "Acme", "model": "DC50", "serialNumber": "SN-1"}, "reason": "PowerUp"}


def api(csms: CentralSystem) -> httpx.AsyncClient:
    return admin_client(csms.api_port, timeout=10)


async def booted(csms: CentralSystem, identity: str) -> RawClient:
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{identity}", "ocpp2.0.1")
    assert (await client.result("BootNotification", BOOT))["status"] == "Accepted"
    return client


def event(kind: str, seq: int, tx: str = "TX-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventType": kind,
        "timestamp": now_iso(),
        "triggerReason": "MeterValuePeriodic" if kind == "Updated" else "Authorized",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
    }
    body.update(extra)
    return body


def energy(wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": now_iso(), "sampledValue": [{"value": wh, "context": "Sample.Periodic"}]}]


async def test_transaction_events_build_one_transaction(csms: CentralSystem) -> None:
    """Started, Updated and Ended events make one transaction with its meter values and energy."""
    client = await booted(csms, "CS-1")
    await client.result(
        "StatusNotification", {"timestamp": now_iso(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
    )
    token = {"idToken": "APP-5", "type": "Central"}
    started = await client.result(
        "TransactionEvent",
        event("Started", 0, idToken=token, evse={"id": 1, "connectorId": 1}, meterValue=energy(2000)),
    )
    assert started["idTokenInfo"]["status"] == "Accepted"
    assert await client.result("TransactionEvent", event("Updated", 1, meterValue=energy(3500))) == {}
    ended = event("Ended", 2, meterValue=energy(9000))
    ended["transactionInfo"]["stoppedReason"] = "EVDisconnected"
    await client.result("TransactionEvent", ended)
    async with api(csms) as http:
        [tx] = (await http.get("/transactions", params={"station_id": "CS-1"})).json()["items"]
        values = (await http.get(f"/transactions/{tx['id']}/meter-values")).json()["items"]
        station = (await http.get("/stations/CS-1")).json()
    assert (tx["charger_tx_id"], tx["state"], tx["evse_id"], tx["stop_reason"]) == (
        "TX-1",
        "ended",
        1,
        "EVDisconnected",
    )
    assert (tx["meter_start_wh"], tx["meter_stop_wh"]) == (2000, 9000)
    assert [v["value"] for v in values] == [2000, 3500, 9000]
    assert all(v["evse_id"] == 1 for v in values)
    assert station["connectors"][0]["status"] == "Occupied"
    assert station["info"]["boot_reason"] == "PowerUp"
    await client.close()


async def test_replayed_offline_events_are_not_duplicated(csms: CentralSystem) -> None:
    """Events replayed after a reconnect (same seqNo, offline flag) are answered but stored once."""
    client = await booted(csms, "CS-2")
    started = event("Started", 0, tx="TX-R", evse={"id": 2, "connectorId": 1}, meterValue=energy(0), offline=True)
    updated = event("Updated", 1, tx="TX-R", meterValue=energy(500), offline=True)
    for _ in range(2):
        await client.result("TransactionEvent", started)
        await client.result("TransactionEvent", updated)
    await client.close()
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/CS-2", "ocpp2.0.1")
    await client.result("TransactionEvent", updated)
    async with api(csms) as http:
        txs = (await http.get("/transactions", params={"station_id": "CS-2"})).json()["items"]
        values = (await http.get(f"/transactions/{txs[0]['id']}/meter-values")).json()["items"]
    assert len(txs) == 1
    assert [v["value"] for v in values] == [0, 500]
    await client.close()


async def test_ended_without_started_creates_the_transaction(csms: CentralSystem) -> None:
    """An Ended event for a transaction never seen (lost Started) is stored as a complete transaction."""
    client = await booted(csms, "CS-3")
    ended = event("Ended", 5, tx="TX-LOST", evse={"id": 1}, meterValue=energy(4200))
    await client.result("TransactionEvent", ended)
    async with api(csms) as http:
        [tx] = (await http.get("/transactions", params={"station_id": "CS-3"})).json()["items"]
    assert (tx["state"], tx["charger_tx_id"], tx["meter_stop_wh"]) == ("ended", "TX-LOST", 4200)
    await client.close()


async def test_notify_report_is_kept_as_device_model(csms: CentralSystem) -> None:
    """NotifyReport variables are stored per component and variable."""
    client = await booted(csms, "CS-4")
    report = {
        "requestId": 1,
        "generatedAt": now_iso(),
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [{"type": "Actual", "value": "300", "mutability": "ReadWrite"}],
            },
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
                "variableAttribute": [{"type": "MaxSet", "value": "22000"}],
                "variableCharacteristics": {"dataType": "decimal", "supportsMonitoring": False},
            },
        ],
    }
    await client.result("NotifyReport", report)
    async with api(csms) as http:
        variables = (await http.get("/stations/CS-4/variables")).json()["items"]
    assert {(v["component"], v["evse_id"], v["variable"], v["attribute_type"], v["value"]) for v in variables} == {
        ("OCPPCommCtrlr", 0, "HeartbeatInterval", "Actual", "300"),
        ("EVSE", 1, "Power", "MaxSet", "22000"),
    }
    await client.close()


async def test_notifications_are_answered_and_stored(csms: CentralSystem) -> None:
    """Charging-limit, EV-needs, event, profile and reservation notifications are answered and recorded."""
    client = await booted(csms, "CS-5")
    await client.result(
        "NotifyEvent",
        {
            "generatedAt": now_iso(),
            "seqNo": 0,
            "eventData": [
                {
                    "eventId": 1,
                    "timestamp": now_iso(),
                    "trigger": "Alerting",
                    "actualValue": "Faulted",
                    "eventNotificationType": "HardWiredNotification",
                    "component": {"name": "Connector"},
                    "variable": {"name": "AvailabilityState"},
                }
            ],
        },
    )
    await client.result("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1})
    await client.result("ClearedChargingLimit", {"chargingLimitSource": "EMS"})
    needs = {"chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"}, "evseId": 1}
    assert (await client.result("NotifyEVChargingNeeds", needs))["status"] in {"Accepted", "Rejected", "Processing"}
    await client.result("ReservationStatusUpdate", {"reservationId": 3, "reservationUpdateStatus": "Expired"})
    await client.result("FirmwareStatusNotification", {"status": "Installing", "requestId": 1})
    await client.result("LogStatusNotification", {"status": "Uploading", "requestId": 2})
    await client.result("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": now_iso()})
    assert (await client.result("DataTransfer", {"vendorId": "acme"}))["status"] == "UnknownVendorId"
    async with api(csms) as http:
        actions = {e["action"] for e in (await http.get("/stations/CS-5/events")).json()["items"]}
        station = (await http.get("/stations/CS-5")).json()
    assert {
        "NotifyEvent",
        "NotifyChargingLimit",
        "ClearedChargingLimit",
        "NotifyEVChargingNeeds",
        "ReservationStatusUpdate",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SecurityEventNotification",
        "DataTransfer",
    } <= actions
    assert station["firmware_status"] == "Installing"
    await client.close()
