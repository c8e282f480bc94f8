"""End to end: the real central system and simulated stations of both OCPP versions over real websockets.

Every check goes through the HTTP API (what an operator sees) and the simulator's own state (what the charger
did). Simulated clocks run at 60x, so a simulated minute of charging takes a real second.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from simulator import EVSpec, Fleet, SimClock, SimStation, StopReason, format_ts, load_scenario, parse_ts
from tests.http_api import admin_client
from tests.simulator.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
CI_SMOKE = ROOT / "config" / "scenarios" / "ci-smoke.toml"
PROTOCOLS = ["ocpp1.6", "ocpp2.0.1"]
EV = EVSpec(capacity_kwh=50, max_current_a=16, phases=3)
SPEED = 60.0  # simulated seconds per real second
METER_INTERVAL_S = 10  # simulated seconds between periodic samples
STATION_MAX_A = 32.0  # SimStation's default hardware limit


def fast_meter_config(protocol: str) -> dict[str, str]:
    if protocol == "ocpp1.6":
        return {"MeterValueSampleInterval": str(METER_INTERVAL_S)}
    return {"SampledDataCtrlr.TxUpdatedInterval": str(METER_INTERVAL_S)}


def on_the_wire(dt: datetime) -> datetime:
    """A simulator time as the server stores it (OCPP timestamps carry milliseconds)."""
    return parse_ts(format_ts(dt))


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll an async `check` until it returns something truthy and return that; fail after `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return result


class Api:
    """The operator's view: thin helpers over the HTTP API."""

    def __init__(self, csms: CentralSystem) -> None:
        self.http = admin_client(csms.api_port, timeout=10)

    async def get(self, path: str, **params: str | int | bool) -> Any:
        response = await self.http.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    async def station(self, station_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.get(f"/stations/{station_id}")
        return body

    async def stations(self) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in (await self.get("/stations", limit=1000))["items"]}

    async def connector_status(self, station_id: str, evse_id: int) -> str | None:
        connectors = (await self.station(station_id))["connectors"]
        return next((c["status"] for c in connectors if c["evse_id"] == evse_id), None)

    async def transactions(self, station_id: str | None = None, active: bool | None = None) -> list[dict[str, Any]]:
        params: dict[str, str | int | bool] = {"limit": 1000}
        if station_id is not None:
            params["station_id"] = station_id
        if active is not None:
            params["active"] = active
        return list((await self.get("/transactions", **params))["items"])

    async def transaction(self, transaction_id: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.get(f"/transactions/{transaction_id}")
        return body

    async def meter_values(self, transaction_id: int) -> list[dict[str, Any]]:
        return list((await self.get(f"/transactions/{transaction_id}/meter-values"))["items"])

    async def events(self, station_id: str, action: str) -> list[dict[str, Any]]:
        """The station's notifications of one kind, oldest first."""
        return list(reversed((await self.get(f"/stations/{station_id}/events", action=action))["items"]))

    async def variables(self, station_id: str) -> list[dict[str, Any]]:
        return list((await self.get(f"/stations/{station_id}/variables"))["items"])

    async def command(self, station_id: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one operator command; it must succeed (an answer that breaks its schema fails it: 502), and its
        answer is returned."""
        response = await self.http.post(f"/stations/{station_id}/commands/{route}", json=body)
        assert response.status_code == 200, (route, response.text)
        result = response.json()
        answer: dict[str, Any] = result["response"]
        return answer


StationFactory = Callable[..., Awaitable[SimStation]]


@pytest.fixture
async def api(csms: CentralSystem) -> AsyncIterator[Api]:
    client = Api(csms)
    async with client.http:
        yield client


@pytest.fixture
async def sim(csms: CentralSystem) -> AsyncIterator[StationFactory]:
    """Start simulated stations (60x clock) against the real server; they are stopped before the server is."""
    stations: list[SimStation] = []

    async def start(identity: str, protocol: str, connectors: int = 1, **kwargs: Any) -> SimStation:
        kwargs.setdefault("clock", SimClock(SPEED))
        kwargs.setdefault("config", fast_meter_config(protocol))
        station = SimStation(
            identity,
            f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
            protocol,
            connectors,
            response_timeout=5.0,
            backoff_s=(0.05, 0.2),
            **kwargs,
        )
        stations.append(station)
        await station.start()
        await station.wait_connected(5.0)
        return station

    yield start
    await asyncio.gather(*(station.stop() for station in stations))


def server_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("csms") and r.levelno >= logging.WARNING]


# -- sessions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_full_charging_session_is_stored_as_the_station_reports_it(
    api: Api, sim: StationFactory, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Boot, status, authorize, start, periodic samples and stop make one ended transaction with the sim's energy."""
    station = await sim(f"SIM-{protocol}", protocol)
    sid = station.identity
    assert await station.start_session(1, "TAG-1", EV, soc=0.3) is not None
    [tx] = await wait_until(lambda: api.transactions(sid, active=True), what="the active transaction")

    async def periodic_samples() -> bool:
        values = await api.meter_values(tx["id"])
        return len({v["timestamp"] for v in values if v["context"] == "Sample.Periodic"}) >= 3

    await wait_until(periodic_samples, what="three periodic samples")
    stopped = await station.stop_session(1, StopReason.LOCAL)
    assert stopped is not None
    meter_wh = station.connector(1).energy_wh
    await station.wait_queue_empty(5.0)

    body = await api.station(sid)
    [ended] = await api.transactions(sid)
    ended = await api.transaction(ended["id"])
    values = await api.meter_values(tx["id"])
    assert (body["registration"], body["connected"], body["protocol"]) == ("Accepted", True, protocol)
    assert body["connected_protocol"] == protocol
    assert (body["info"]["vendor"], body["info"]["model"]) == (station.vendor, station.model)
    assert body["info"]["firmware_version"] == station.firmware_version
    connector = station.connector(1).state
    assert await api.connector_status(sid, 1) == (connector.value if protocol == "ocpp1.6" else connector.v201)
    assert (ended["state"], ended["id_token"], ended["stop_reason"], ended["evse_id"]) == ("ended", "TAG-1", "Local", 1)
    assert parse_ts(ended["started_at"]) == on_the_wire(stopped.started_at)
    assert ended["meter_start_wh"] == pytest.approx(stopped.meter_start_wh, abs=0.5)
    assert ended["meter_stop_wh"] == pytest.approx(meter_wh, abs=0.5)
    assert ended["energy_wh"] > 0
    assert ended["energy_wh"] == pytest.approx(meter_wh - stopped.meter_start_wh, abs=1.0)
    assert {
        ("Energy.Active.Import.Register", None, "Wh", "Outlet"),
        ("Power.Active.Import", None, "W", "Outlet"),
        ("Current.Import", "L1", "A", "Outlet"),
        ("Current.Import", "L3", "A", "Outlet"),
        ("Voltage", "L1-N", "V", "Outlet"),
        ("SoC", None, "Percent", "EV"),
    } <= {(v["measurand"], v["phase"], v["unit"], v["location"]) for v in values}
    periodic_currents = {
        v["value"] for v in values if v["measurand"] == "Current.Import" and v["context"] == "Sample.Periodic"
    }
    assert periodic_currents == {EV.max_current_a}
    energy = [v["value"] for v in values if v["measurand"] == "Energy.Active.Import.Register"]
    assert energy == sorted(energy) and energy[-1] == pytest.approx(meter_wh, abs=0.1)
    assert station.errors == []
    assert server_problems(caplog) == []


def queued_samples(station: SimStation) -> list[dict[str, Any]]:
    """Every meter value in the station's queue, as it will be sent (1.6 and 2.0.1 share the field names)."""
    samples: list[dict[str, Any]] = []
    for item in station.outbox.items():
        if item.persistent:
            payload = item.build()
            samples += getattr(payload, "meter_value", None) or getattr(payload, "transaction_data", None) or []
    return samples


def sample_times(samples: list[dict[str, Any]], context: str) -> list[datetime]:
    return [parse_ts(s["timestamp"]) for s in samples if s["sampled_value"][0]["context"] == context]


@pytest.mark.parametrize("abrupt", [False, True], ids=["clean-close", "abrupt-drop"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_offline_session_is_replayed_once_with_charger_timestamps(
    api: Api, sim: StationFactory, protocol: str, abrupt: bool
) -> None:
    """Samples and the stop queued offline arrive after reconnect: one transaction, stored once, charger times."""
    clock = SimClock(SPEED, start=datetime.now(UTC) - timedelta(hours=1))  # the charger's clock lags the server's
    station = await sim(f"OFF-{protocol}", protocol, clock=clock)
    sid = station.identity
    await station.start_session(1, "TAG-OFF", EV, soc=0.3)
    [tx] = await wait_until(lambda: api.transactions(sid, active=True), what="the active transaction")
    await station.wait_queue_empty(5.0)
    offline_from = station.now()
    await station.go_offline(abrupt=abrupt)
    await eventually(
        lambda: len(sample_times(queued_samples(station), "Sample.Periodic")) >= 3,
        timeout=5.0,
        what="three periodic samples queued offline",
    )
    stopped = await station.stop_session(1, StopReason.LOCAL)
    assert stopped is not None
    offline_until = station.now()
    meter_wh = station.connector(1).energy_wh
    queued = queued_samples(station)
    periodic = sample_times(queued, "Sample.Periodic")
    [end_time] = sample_times(queued, "Transaction.End")
    before_replay = {parse_ts(v["timestamp"]) for v in await api.meter_values(tx["id"])}

    await station.go_online()
    await station.wait_connected(5.0)
    await station.wait_queue_empty(5.0)
    txs = await api.transactions(sid)
    ended = await api.transaction(tx["id"])
    values = await api.meter_values(tx["id"])

    assert all(offline_from <= t <= offline_until for t in periodic)
    assert not before_replay & set(periodic), "offline samples reached the server before the reconnect"
    assert [t["id"] for t in txs] == [tx["id"]]
    assert (ended["state"], ended["stop_reason"]) == ("ended", "Local")
    assert parse_ts(ended["stopped_at"]) == end_time
    assert ended["meter_stop_wh"] == pytest.approx(meter_wh, abs=0.5)
    assert ended["energy_wh"] == pytest.approx(meter_wh - stopped.meter_start_wh, abs=1.0)
    stored = Counter((parse_ts(v["timestamp"]), v["measurand"], v["phase"], v["context"]) for v in values)
    assert [key for key, count in stored.items() if count > 1] == []
    stored_times = {key[0] for key in stored}
    assert set(periodic) | {end_time} <= stored_times
    assert max(stored_times) < datetime.now(UTC) - timedelta(minutes=30), "server time stored, not the charger's"
    assert station.errors == []


async def test_reading_repeated_in_ended_event_is_kept_once(api: Api, sim: StationFactory) -> None:
    """A meter reading reported in TransactionEvent Started and again in Ended is stored once."""
    station = await sim("DUP-201", "ocpp2.0.1")
    await station.start_session(1, "TAG-DUP", EV)
    await station.stop_session(1, StopReason.LOCAL)
    await station.wait_queue_empty(5.0)
    [tx] = await api.transactions(station.identity)
    begin = [v for v in await api.meter_values(tx["id"]) if v["context"] == "Transaction.Begin"]
    assert len(begin) == 1, begin


async def test_retried_16_meter_values_are_kept_once(api: Api, sim: StationFactory) -> None:
    """A 1.6 MeterValues that the charger resends after a lost answer adds no second copy of its samples."""
    station = await sim("RETRY-16", "ocpp1.6")
    sid = station.identity
    await station.start_session(1, "TAG-RETRY", EV)
    [tx] = await wait_until(lambda: api.transactions(sid, active=True), what="the active transaction")
    await station.wait_queue_empty(5.0)
    await station.go_offline()
    await eventually(
        lambda: any(i.action == "MeterValues" for i in station.outbox.items()), timeout=5.0, what="a queued sample"
    )
    payload = next(i for i in station.outbox.items() if i.action == "MeterValues").build()
    await station.go_online()
    await station.wait_connected(5.0)
    await station.wait_queue_empty(5.0)
    await station.call(payload)  # the same CALL again, as after a connection lost before the CALLRESULT arrived
    copies = Counter((v["timestamp"], v["measurand"], v["phase"]) for v in await api.meter_values(tx["id"]))
    assert [key for key, count in copies.items() if count > 1] == []


# -- operator commands --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_remote_start_and_stop_drive_a_simulated_session(api: Api, sim: StationFactory, protocol: str) -> None:
    """Remote start begins a session that shows up as active; remote stop ends it; unlock frees the connector."""
    station = await sim(f"RS-{protocol}", protocol)
    sid = station.identity
    await station.plug_in(1, EV, soc=0.3)
    assert await api.command(sid, "remote-start", {"id_token": "APP-1", "evse_id": 1}) == {"status": "Accepted"}
    [tx] = await wait_until(lambda: api.transactions(sid, active=True), what="the remote-started transaction")
    assert (tx["id_token"], tx["evse_id"]) == ("APP-1", 1)
    assert station.connector(1).transaction_id == tx["charger_tx_id"]
    await eventually(lambda: station.connector(1).current_a == EV.max_current_a, what="the EV charging")

    answer = await api.command(sid, "remote-stop", {"transaction_id": tx["charger_tx_id"]})
    assert answer == {"status": "Accepted"}
    [ended] = await wait_until(lambda: api.transactions(sid, active=False), what="the remote stop")
    assert (ended["id"], ended["stop_reason"]) == (tx["id"], "Remote")
    assert station.connector(1).transaction_id is None
    assert await api.command(sid, "unlock-connector", {"evse_id": 1}) == {"status": "Unlocked"}
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_charging_profile_limits_the_simulated_station(api: Api, sim: StationFactory, protocol: str) -> None:
    """A 10 A profile lowers the offered and drawn current, shows in the composite schedule, and clearing lifts it."""
    station = await sim(f"SC-{protocol}", protocol)
    sid = station.identity
    await station.start_session(1, "TAG-SC", EV, soc=0.3)
    await eventually(lambda: station.connector(1).current_a == EV.max_current_a, what="the EV charging")
    profile = {
        "id": 7,
        "stack_level": 1,
        "purpose": "TxDefaultProfile",
        "kind": "Absolute",
        "schedule": {
            "unit": "A",
            "periods": [{"start_period": 0, "limit": 10}],
            "start_schedule": iso(datetime.now(UTC) - timedelta(minutes=1)),
        },
    }
    answer = await api.command(sid, "set-charging-profile", {"evse_id": 1, "profile": profile})
    assert answer == {"status": "Accepted"}
    await eventually(lambda: station.connector(1).offered_a == 10.0, what="the offered current to drop to 10 A")
    await eventually(lambda: station.connector(1).current_a == 10.0, what="the EV to follow the limit")

    answer = await api.command(sid, "get-composite-schedule", {"evse_id": 1, "duration": 600, "unit": "A"})
    assert answer["status"] == "Accepted"
    schedule = answer["chargingSchedule"] if protocol == "ocpp1.6" else answer["schedule"]
    assert schedule["chargingRateUnit"] == "A"
    assert schedule["chargingSchedulePeriod"][0]["limit"] == 10.0
    if protocol == "ocpp2.0.1":
        answer = await api.command(sid, "get-charging-profiles", {"request_id": 3, "purpose": "TxDefaultProfile"})
        assert answer == {"status": "Accepted"}
        [report] = await wait_until(lambda: api.events(sid, "ReportChargingProfiles"), what="the profile report")
        assert [p["id"] for p in report["payload"]["chargingProfile"]] == [7]

    assert await api.command(sid, "clear-charging-profile", {"profile_id": 7}) == {"status": "Accepted"}
    await eventually(lambda: station.connector(1).offered_a == STATION_MAX_A, what="the limit to be lifted")
    assert await api.command(sid, "clear-charging-profile", {"profile_id": 7}) == {"status": "Unknown"}
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_change_availability_takes_a_connector_out_of_service(
    api: Api, sim: StationFactory, protocol: str
) -> None:
    """Inoperative makes the connector Unavailable on the station and in the API; Operative brings it back."""
    station = await sim(f"AV-{protocol}", protocol, connectors=2)
    sid = station.identity
    assert await api.command(sid, "change-availability", {"operative": False, "evse_id": 2}) == {"status": "Accepted"}
    assert station.connector(2).state.value == "Unavailable"
    await wait_until(
        lambda: _equals(api.connector_status(sid, 2), "Unavailable"), what="connector 2 Unavailable in the API"
    )
    assert await api.connector_status(sid, 1) == "Available"
    assert await api.command(sid, "change-availability", {"operative": True, "evse_id": 2}) == {"status": "Accepted"}
    await wait_until(lambda: _equals(api.connector_status(sid, 2), "Available"), what="connector 2 Available again")
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reservation_holds_a_connector_until_cancelled(api: Api, sim: StationFactory, protocol: str) -> None:
    """Reserve now holds the connector (Reserved) for the token; cancel releases it and the reservation is Cancelled."""
    station = await sim(f"RES-{protocol}", protocol, connectors=2)
    sid = station.identity
    body = {
        "reservation_id": 11,
        "id_token": "RES-1",
        "expiry": iso(datetime.now(UTC) + timedelta(days=1)),
        "evse_id": 2,
    }
    assert await api.command(sid, "reserve-now", body) == {"status": "Accepted"}
    assert station.connector(2).reservation_id == 11
    await wait_until(lambda: _equals(api.connector_status(sid, 2), "Reserved"), what="connector 2 Reserved")
    assert (await api.get("/reservations/11"))["status"] == "Accepted"

    assert await api.command(sid, "cancel-reservation", {"reservation_id": 11}) == {"status": "Accepted"}
    assert station.connector(2).reservation_id is None
    assert (await api.get("/reservations/11"))["status"] == "Cancelled"
    await wait_until(lambda: _equals(api.connector_status(sid, 2), "Available"), what="connector 2 Available again")
    assert await api.command(sid, "cancel-reservation", {"reservation_id": 11}) == {"status": "Rejected"}
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reservation_used_by_a_transaction_is_no_longer_open(
    api: Api, sim: StationFactory, protocol: str
) -> None:
    """When the reserved token starts charging on the reserved connector, the reservation stops being Accepted."""
    station = await sim(f"USE-{protocol}", protocol)
    sid = station.identity
    body = {
        "reservation_id": 21,
        "id_token": "RES-2",
        "expiry": iso(datetime.now(UTC) + timedelta(days=1)),
        "evse_id": 1,
    }
    assert await api.command(sid, "reserve-now", body) == {"status": "Accepted"}
    await station.start_session(1, "RES-2", EV)
    [tx] = await wait_until(lambda: api.transactions(sid, active=True), what="the transaction on the reservation")
    assert tx["reservation_id"] == 21
    assert (await api.get("/reservations/21"))["status"] != "Accepted"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_clear_cache_and_local_list_reach_the_station(api: Api, sim: StationFactory, protocol: str) -> None:
    """Clear cache empties the station's authorization cache; the local list and its version land on the station."""
    station = await sim(f"AUTH-{protocol}", protocol)
    sid = station.identity
    assert await station.authorize("CACHED-1") == "Accepted"
    assert station.core.auth_cache == {"CACHED-1": "Accepted"}
    assert await api.command(sid, "clear-cache", {}) == {"status": "Accepted"}
    assert station.core.auth_cache == {}

    entries = [{"id_token": "CARD-1", "status": "Accepted"}, {"id_token": "CARD-2", "status": "Blocked"}]
    answer = await api.command(sid, "send-local-list", {"version": 3, "full": True, "entries": entries})
    assert answer == {"status": "Accepted"}
    assert station.core.local_list == {"CARD-1": "Accepted", "CARD-2": "Blocked"}
    answer = await api.command(sid, "get-local-list-version", {})
    assert answer == ({"listVersion": 3} if protocol == "ocpp1.6" else {"versionNumber": 3})
    assert station.errors == []


async def test_configuration_keys_are_read_and_changed_on_a_16_station(api: Api, sim: StationFactory) -> None:
    """GetConfiguration returns the station's keys (and unknown ones), ChangeConfiguration applies, answers are kept."""
    station = await sim("CFG-16", "ocpp1.6")
    sid = station.identity
    answer = await api.command(sid, "get-configuration", {"keys": ["MeterValueSampleInterval", "NoSuchKey"]})
    assert answer["configurationKey"] == [
        {"key": "MeterValueSampleInterval", "readonly": False, "value": str(METER_INTERVAL_S)}
    ]
    assert answer["unknownKey"] == ["NoSuchKey"]
    body = {"key": "MeterValueSampleInterval", "value": "20"}
    assert await api.command(sid, "change-configuration", body) == {"status": "Accepted"}
    assert station.v16.config.get("MeterValueSampleInterval") == "20"
    body = {"key": "NumberOfConnectors", "value": "5"}
    assert await api.command(sid, "change-configuration", body) == {"status": "Rejected"}

    answer = await api.command(sid, "get-configuration", {})
    listed = {entry["key"]: entry.get("value") for entry in answer["configurationKey"]}
    stored = {v["variable"]: v["value"] for v in await api.variables(sid)}
    assert listed["MeterValueSampleInterval"] == stored["MeterValueSampleInterval"] == "20"
    assert stored == listed
    assert station.errors == []


async def test_device_model_is_read_changed_and_reported_by_a_201_station(api: Api, sim: StationFactory) -> None:
    """GetVariables/SetVariables reach the device model; GetBaseReport's NotifyReport fills the station variables."""
    station = await sim("DM-201", "ocpp2.0.1")
    sid = station.identity
    ref = {"component": "SampledDataCtrlr", "variable": "TxUpdatedInterval"}
    [result] = (await api.command(sid, "get-variables", {"variables": [ref]}))["getVariableResult"]
    assert (result["attributeStatus"], result["attributeValue"]) == ("Accepted", str(METER_INTERVAL_S))
    [result] = (await api.command(sid, "set-variables", {"variables": [{**ref, "value": "20"}]}))["setVariableResult"]
    assert result["attributeStatus"] == "Accepted"
    assert station.v201.device_model.value("SampledDataCtrlr", "TxUpdatedInterval") == "20"

    assert await api.command(sid, "get-base-report", {"request_id": 5}) == {"status": "Accepted"}
    expected = station.v201.device_model.report("FullInventory")

    async def reported() -> list[dict[str, Any]]:
        rows = await api.variables(sid)
        return rows if len(rows) >= len(expected) else []

    rows = await wait_until(reported, what="every NotifyReport part")
    by_name = {(r["component"], r["variable"], r["variable_instance"]): r for r in rows}
    assert by_name[("SampledDataCtrlr", "TxUpdatedInterval", "")]["value"] == "20"
    assert by_name[("OCPPCommCtrlr", "HeartbeatInterval", "")]["mutability"] == "ReadWrite"
    assert by_name[("ChargingStation", "VendorName", "")]["value"] == station.vendor
    parts = await api.events(sid, "NotifyReport")
    assert [p["payload"]["seqNo"] for p in parts] == list(range(len(parts)))
    assert parts[-1]["payload"].get("tbc", False) is False
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_trigger_and_firmware_update_report_progress_to_the_station_record(
    api: Api, sim: StationFactory, protocol: str
) -> None:
    """A triggered FirmwareStatusNotification says Idle; an update's notifications end in firmware_status Installed."""
    station = await sim(f"FW-{protocol}", protocol)
    sid = station.identity

    async def firmware_status() -> str | None:
        status: str | None = (await api.station(sid))["firmware_status"]
        return status

    answer = await api.command(sid, "trigger-message", {"message": "FirmwareStatusNotification"})
    assert answer == {"status": "Accepted"}
    await wait_until(lambda: _equals(firmware_status(), "Idle"), what="firmware status Idle")
    body = {"location": "https://fw.example/2.0.bin", "retrieve_at": iso(datetime.now(UTC))}
    answer = await api.command(sid, "update-firmware", body)
    assert answer == ({} if protocol == "ocpp1.6" else {"status": "Accepted"})
    await wait_until(lambda: _equals(firmware_status(), "Installed"), what="firmware Installed")
    progress = [e["payload"]["status"] for e in await api.events(sid, "FirmwareStatusNotification")]
    assert progress == ["Idle", "Downloading", "Downloaded", "Installing", "Installed"]
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_log_upload_is_accepted_and_reports_uploaded(api: Api, sim: StationFactory, protocol: str) -> None:
    """Get log (1.6 GetDiagnostics) names the file, and the upload status notifications end in Uploaded."""
    station = await sim(f"LOG-{protocol}", protocol)
    sid = station.identity
    answer = await api.command(sid, "get-log", {"location": "https://logs.example/up"})
    if protocol == "ocpp1.6":
        assert answer["fileName"].startswith(f"diagnostics-{sid}")

        async def uploaded() -> bool:
            return bool((await api.station(sid))["diagnostics_status"] == "Uploaded")

        action = "DiagnosticsStatusNotification"
    else:
        assert answer["status"] == "Accepted" and answer["filename"].startswith(f"DiagnosticsLog-{sid}")

        async def uploaded() -> bool:
            return [e["payload"]["status"] for e in await api.events(sid, "LogStatusNotification")][-1:] == ["Uploaded"]

        action = "LogStatusNotification"
    await wait_until(uploaded, what="the upload to finish")
    assert [e["payload"]["status"] for e in await api.events(sid, action)] == ["Uploading", "Uploaded"]
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_data_transfer_returns_the_station_answer(api: Api, sim: StationFactory, protocol: str) -> None:
    """Data transfer to the station's vendor id is echoed back; another vendor id gets UnknownVendorId."""
    station = await sim(f"DT-{protocol}", protocol)
    body = {"vendor_id": station.vendor, "message_id": "ping", "data": "hello"}
    assert await api.command(station.identity, "data-transfer", body) == {"status": "Accepted", "data": "hello"}
    body = {"vendor_id": "SomeoneElse", "data": "hello"}
    assert await api.command(station.identity, "data-transfer", body) == {"status": "UnknownVendorId"}
    assert station.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reset_reboots_the_station_which_connects_again(
    api: Api, sim: StationFactory, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After an accepted reset the station closes, boots again and is connected as a new session."""
    station = await sim(f"RST-{protocol}", protocol)
    sid = station.identity
    assert await api.command(sid, "reset", {"hard": False}) == {"status": "Accepted"}
    connected = f"event='station connected' station_id='{sid}'"
    await eventually(lambda: sum(connected in m for m in caplog.messages) == 2, timeout=5.0, what="a new session")
    await station.wait_connected(5.0)
    body = await api.station(sid)
    assert body["connected"] is True
    if protocol == "ocpp2.0.1":
        assert body["info"]["boot_reason"] == "RemoteReset"
    assert station.errors == []


async def _equals(value: Awaitable[Any], expected: object) -> bool:
    return bool(await value == expected)


# -- fleets -------------------------------------------------------------------------------------------------------


async def test_mixed_fleet_runs_the_ci_scenario_cleanly(
    api: Api, csms: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten stations of both versions run 15 simulated minutes: all connect, every session and its energy is stored."""
    scenario = load_scenario(CI_SMOKE)
    fleet = Fleet(scenario, f"ws://127.0.0.1:{csms.ocpp_port}/ocpp", count=10, protocol="mixed", speed=240)
    await fleet.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait_connected() for s in fleet.stations)), 10)
        listed = await api.stations()
        await asyncio.wait_for(fleet.run(900, asyncio.Event()), 15)
    finally:
        await fleet.stop(graceful=True)
    summary = fleet.summary()
    txs = await api.transactions()
    stored_wh = sum([(await api.transaction(tx["id"]))["energy_wh"] for tx in txs])

    identities = {s.identity for s in fleet.stations}
    assert set(listed) == identities
    assert all(listed[i]["connected"] and listed[i]["registration"] == "Accepted" for i in identities)
    assert Counter(listed[i]["protocol"] for i in identities) == {"ocpp1.6": 5, "ocpp2.0.1": 5}
    assert (summary.errors, summary.queued_messages, summary.reconnects) == (0, 0, 0)
    assert summary.sessions_started >= 5
    assert len(txs) == summary.sessions_started == summary.sessions_completed
    assert all(tx["state"] == "ended" for tx in txs)
    assert {tx["station_id"] for tx in txs} <= identities
    assert stored_wh / 1000 == pytest.approx(summary.energy_kwh, abs=0.001 * len(txs))  # 1.6 sends whole Wh
    assert server_problems(caplog) == []


async def test_simulator_cli_runs_a_fleet_against_the_server(
    api: Api, csms: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """`python -m simulator run` with a mixed fleet exits 0 and leaves its stations and sessions in the server."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "run",
        "--url",
        f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
        "--stations",
        "4",
        "--protocol",
        "mixed",
        "--scenario",
        str(CI_SMOKE),
        "--duration",
        "600",
        "--speed",
        "240",
        "--no-live",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode()
    assert process.returncode == 0, text
    sessions = re.search(r"sessions started / completed\D+(\d+) / (\d+)", text)
    errors = re.search(r"errors\D+(\d+)", text)
    assert sessions is not None and errors is not None, text
    assert errors.group(1) == "0", text

    stations = await api.stations()
    txs = await api.transactions()
    assert set(stations) == {"CI-001", "CI-002", "CI-003", "CI-004"}
    assert Counter(s["protocol"] for s in stations.values()) == {"ocpp1.6": 2, "ocpp2.0.1": 2}
    assert not any(s["connected"] for s in stations.values())
    assert len(txs) == int(sessions.group(1)) == int(sessions.group(2)) > 0
    assert all(tx["state"] == "ended" for tx in txs)
    assert server_problems(caplog) == []
