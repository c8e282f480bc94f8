"""Operator commands through the HTTP API to chargers of both versions, and how failures are reported."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csms.runtime.app import CentralSystem
from tests.http_api import admin_client
from tests.ocpp_client import RawClient

BOOT = {
    "ocpp1.6": ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "AC22"}),
    "ocpp2.0.1": (
        "BootNotification",
        {"chargingStation": {"vendorName": "Acme", "model": "AC22"}, "reason": "PowerUp"},
    ),
}

SPECIAL_ANSWERS: dict[str, dict[str, Any]] = {
    "UnlockConnector": {"status": "Unlocked"},
    "GetConfiguration": {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Nope"],
    },
    "GetLocalListVersion": {"listVersion": 4},
    "UpdateFirmware": {},
    "GetDiagnostics": {"fileName": "diag.zip"},
}


def answer_201(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "60",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in payload["getVariableData"]
            ]
        }
    if action == "SetVariables":
        return {
            "setVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in payload["setVariableData"]
            ]
        }
    if action == "GetLocalListVersion":
        return {"versionNumber": 4}
    if action == "UnlockConnector":
        return {"status": "Unlocked"}
    return {"status": "Accepted"}


def answer_16(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    return SPECIAL_ANSWERS.get(action, {"status": "Accepted"})


PROFILE = {
    "id": 7,
    "stack_level": 1,
    "purpose": "TxDefaultProfile",
    "kind": "Absolute",
    "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16.0}, {"start_period": 3600, "limit": 10}]},
}

# (route, body, 1.6 action, 2.0.1 action); None where the version has no such command.
COMMANDS: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("remote-start", {"id_token": "APP-1", "evse_id": 1}, "RemoteStartTransaction", "RequestStartTransaction"),
    ("remote-stop", {"transaction_id": "17"}, "RemoteStopTransaction", "RequestStopTransaction"),
    ("reset", {"hard": True}, "Reset", "Reset"),
    ("unlock-connector", {"evse_id": 1}, "UnlockConnector", "UnlockConnector"),
    ("change-availability", {"operative": False, "evse_id": 1}, "ChangeAvailability", "ChangeAvailability"),
    ("trigger-message", {"message": "StatusNotification", "evse_id": 1}, "TriggerMessage", "TriggerMessage"),
    ("trigger-message", {"message": "SignChargePointCertificate"}, "ExtendedTriggerMessage", None),
    ("get-configuration", {"keys": ["HeartbeatInterval"]}, "GetConfiguration", None),
    ("change-configuration", {"key": "HeartbeatInterval", "value": "60"}, "ChangeConfiguration", None),
    (
        "get-variables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        None,
        "GetVariables",
    ),
    (
        "set-variables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"}]},
        None,
        "SetVariables",
    ),
    ("get-base-report", {"request_id": 5}, None, "GetBaseReport"),
    ("clear-cache", {}, "ClearCache", "ClearCache"),
    (
        "send-local-list",
        {"version": 3, "full": True, "entries": [{"id_token": "CARD-1", "status": "Accepted"}]},
        "SendLocalList",
        "SendLocalList",
    ),
    ("get-local-list-version", {}, "GetLocalListVersion", "GetLocalListVersion"),
    ("set-charging-profile", {"evse_id": 1, "profile": PROFILE}, "SetChargingProfile", "SetChargingProfile"),
    ("clear-charging-profile", {"profile_id": 7}, "ClearChargingProfile", "ClearChargingProfile"),
    ("get-charging-profiles", {"request_id": 2, "purpose": "TxDefaultProfile"}, None, "GetChargingProfiles"),
    (
        "get-composite-schedule",
        {"evse_id": 1, "duration": 3600, "unit": "A"},
        "GetCompositeSchedule",
        "GetCompositeSchedule",
    ),
    (
        "reserve-now",
        {"reservation_id": 11, "id_token": "CARD-1", "expiry": "2030-01-01T10:00:00Z", "evse_id": 1},
        "ReserveNow",
        "ReserveNow",
    ),
    ("cancel-reservation", {"reservation_id": 11}, "CancelReservation", "CancelReservation"),
    (
        "update-firmware",
        {"location": "https://fw.example/1.bin", "retrieve_at": "2030-01-01T00:00:00Z"},
        "UpdateFirmware",
        "UpdateFirmware",
    ),
    (
        "update-firmware",
        {
            "location": "https://fw.example/1.bin",
            "retrieve_at": "2030-01-01T00:00:00Z",
            "signing_certificate": "CERT",
            "signature": "SIG",
        },
        "SignedUpdateFirmware",
        "UpdateFirmware",
    ),
    ("get-log", {"location": "https://logs.example/up"}, "GetDiagnostics", "GetLog"),
    ("get-log", {"location": "https://logs.example/up", "log_type": "SecurityLog"}, "GetLog", "GetLog"),
    ("data-transfer", {"vendor_id": "acme", "message_id": "ping", "data": {"a": 1}}, "DataTransfer", "DataTransfer"),
]


def api(csms: CentralSystem) -> httpx.AsyncClient:
    return admin_client(csms.api_port, timeout=15)


async def connect(csms: CentralSystem, identity: str, subprotocol: str, answer: Any) -> RawClient:
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{identity}", subprotocol, answer)
    action, payload = BOOT[subprotocol]
    assert (await client.result(action, payload))["status"] == "Accepted"
    return client


@pytest.mark.parametrize("subprotocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_every_command_reaches_the_charger_and_returns_its_answer(csms: CentralSystem, subprotocol: str) -> None:
    """Each version-neutral command becomes its version's action, and the charger's answer comes back."""
    answer = answer_16 if subprotocol == "ocpp1.6" else answer_201
    client = await connect(csms, f"CMD-{subprotocol}", subprotocol, answer)
    async with api(csms) as http:
        for route, body, action_16, action_201 in COMMANDS:
            expected = action_16 if subprotocol == "ocpp1.6" else action_201
            response = await http.post(f"/stations/CMD-{subprotocol}/commands/{route}", json=body)
            if expected is None:
                assert response.status_code == 422, (route, response.text)
                # Either the version has no such action, or its schema has no such value (a 1.6-only trigger).
                assert response.json()["type"].rsplit("/", 1)[1] in {"command-not-supported", "invalid-request"}
                continue
            assert response.status_code == 200, (route, response.text)
            result = response.json()
            assert result["action"] == expected
            assert client.received_calls[-1][0] == expected
            assert result["request"] == client.received_calls[-1][1]
            assert result["response"] == answer(expected, client.received_calls[-1][1])
        events = (await http.get(f"/stations/CMD-{subprotocol}/events", params={"limit": 1000})).json()["items"]
        reservation = (await http.get("/reservations/11")).json()
    assert any(e["action"] == "Command.ReserveNow" for e in events)
    assert reservation["status"] == "Cancelled"
    await client.close()


async def test_profile_and_reservation_payloads_follow_each_version(csms: CentralSystem) -> None:
    """A charging profile is sent as csChargingProfiles on 1.6 and as chargingProfile with a schedule list on 2.0.1."""
    c16 = await connect(csms, "P16", "ocpp1.6", answer_16)
    c201 = await connect(csms, "P201", "ocpp2.0.1", answer_201)
    async with api(csms) as http:
        for station in ("P16", "P201"):
            response = await http.post(
                f"/stations/{station}/commands/set-charging-profile", json={"evse_id": 1, "profile": PROFILE}
            )
            assert response.status_code == 200
    sent16 = c16.received_calls[-1][1]
    sent201 = c201.received_calls[-1][1]
    assert sent16["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][1] == {
        "startPeriod": 3600,
        "limit": 10.0,
    }
    assert sent16["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert sent201["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"] == "A"
    assert sent201["evseId"] == 1
    await c16.close()
    await c201.close()


async def test_command_to_offline_station_is_a_clear_error(csms: CentralSystem) -> None:
    """A command to a station with no live connection gets a 409 problem naming the station."""
    async with api(csms) as http:
        response = await http.post("/stations/NOBODY/commands/reset", json={})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "NOBODY" in response.json()["detail"]


async def test_silent_station_times_out_and_nothing_stays_pending(csms: CentralSystem) -> None:
    """A charger that never answers gives a 504 after the call timeout; the next command still works."""
    answers: list[Any] = [None, {"status": "Accepted"}]
    client = await connect(csms, "SILENT", "ocpp1.6", lambda action, payload: answers.pop(0))
    async with api(csms) as http:
        first = await http.post("/stations/SILENT/commands/clear-cache", json={})
        second = await http.post("/stations/SILENT/commands/clear-cache", json={})
    assert first.status_code == 504
    assert "ClearCache" in first.json()["detail"]
    assert second.status_code == 200
    await client.close()


async def test_callerror_answer_is_reported_with_its_code(csms: CentralSystem) -> None:
    """A CALLERROR from the charger becomes a 502 problem carrying the OCPP error code."""
    client = await connect(csms, "ERR", "ocpp2.0.1", lambda a, p: [4, "NotSupported", "nope", {}])
    async with api(csms) as http:
        response = await http.post("/stations/ERR/commands/clear-cache", json={})
    assert response.status_code == 502
    assert response.json()["ocpp_error_code"] == "NotSupported"
    await client.close()


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("reset", {"hard": "sometimes"}),
        ("reserve-now", {"reservation_id": 1, "id_token": "X", "expiry": "2030-01-01T10:00:00"}),
        ("remote-start", {}),
        ("set-charging-profile", {"evse_id": 1, "profile": {**PROFILE, "purpose": "Whatever"}}),
    ],
)
async def test_invalid_command_bodies_get_problem_responses(
    csms: CentralSystem, route: str, body: dict[str, Any]
) -> None:
    """Malformed command bodies (wrong type, naive time, missing field, bad enum) get a 422 problem."""
    client = await connect(csms, "VAL", "ocpp1.6", answer_16)
    async with api(csms) as http:
        response = await http.post(f"/stations/VAL/commands/{route}", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert client.received_calls == []
    await client.close()


async def test_get_configuration_answer_is_kept_as_station_variables(csms: CentralSystem) -> None:
    """Configuration keys read from a 1.6 charger are stored and listed as station variables."""
    client = await connect(csms, "CFG", "ocpp1.6", answer_16)
    async with api(csms) as http:
        await http.post("/stations/CFG/commands/get-configuration", json={})
        variables = (await http.get("/stations/CFG/variables")).json()["items"]
    assert {(v["variable"], v["value"]) for v in variables} == {("HeartbeatInterval", "300")}
    await client.close()
