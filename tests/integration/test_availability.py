"""Real-time availability and site live data end to end: real server and SQLite, raw 1.6 and simulated chargers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from csms.runtime.app import CentralSystem
from csms.storage.tables_bookings import bookings
from csms.storage.writer import Write
from simulator import SimClock, SimStation
from tests.conftest import make_settings
from tests.http_api import driver_account
from tests.integration.live_helpers import api, charger_16, iso, settles_to, status_16
from tests.ocpp_client import RawClient

WIRED_W = 32 * 3 * 230.0  # the default wiring: 32 A per phase, three phases, 230 V


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(make_settings(tmp_path, smart_charging={"debounce_seconds": 0.02}))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


async def site_with(system: CentralSystem, site: str, *stations: str, limit_a: float = 64) -> None:
    response = await api(system, "POST", "/grid-nodes", json={"id": site, "max_current_a": limit_a})
    assert response.status_code == 201, response.text
    for station in stations:
        response = await api(system, "PUT", f"/stations/{station}/wiring", json={"node_id": site})
        assert response.status_code == 200, response.text


async def get(system: CentralSystem, path: str, **params: Any) -> dict[str, Any]:
    response = await api(system, "GET", path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def busy_station(system: CentralSystem) -> tuple[RawClient, int]:
    """cp1 with connector 1 charging for TAG1 (owned by driver-1) and connector 2 faulted."""
    response = await api(system, "POST", "/accounts", json=driver_account("driver-1"))
    assert response.status_code == 201, response.text
    response = await api(system, "PUT", "/id-tokens/TAG1", json={"status": "Accepted", "owner": "driver-1"})
    assert response.status_code == 200, response.text
    client = await charger_16(system, "cp1")
    now = datetime.now(UTC)
    await status_16(client, 1, "Preparing", now)
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": iso(now)}
    transaction_id: int = (await client.result("StartTransaction", start))["transactionId"]
    await status_16(client, 1, "Charging", now)
    await status_16(client, 2, "Faulted", now, error="GroundFailure")
    return client, transaction_id


async def test_site_availability_shows_status_power_occupant_and_expected_free_time(system: CentralSystem) -> None:
    """Each connector's status, max power (from the wiring), occupant with token and account, departure as free time."""
    await site_with(system, "site-a", "cp1", "cp2")
    client, transaction_id = await busy_station(system)
    departure = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    response = await api(system, "PATCH", "/charging-sessions/cp1/1", json={"departure": iso(departure)})
    assert response.status_code == 200, response.text

    body = await get(system, "/sites/site-a/availability")
    assert body["connectors"] == 2 and body["available"] == 0
    cp1, cp2 = body["stations"]
    assert (cp1["station_id"], cp1["online"], cp2["station_id"], cp2["online"]) == ("cp1", True, "cp2", False)
    one, two = cp1["connectors"]
    assert one["status"] == "Charging" and one["usage"] == "charging" and not one["available"]
    assert one["max_power_w"] == WIRED_W and one["max_power_source"] == "wiring"
    assert one["occupant"]["transaction_id"] == transaction_id
    assert (one["occupant"]["id_token"], one["occupant"]["account_id"]) == ("TAG1", "driver-1")
    assert datetime.fromisoformat(one["expected_free_at"]) == departure
    assert one["expected_free_basis"] == "departure"
    assert (two["status"], two["error_code"], two["usage"], two["occupant"]) == (
        "Faulted",
        "GroundFailure",
        "out_of_service",
        None,
    )
    await client.close()


async def test_session_under_a_booking_is_expected_free_at_the_booking_end(system: CentralSystem) -> None:
    """Without a departure, an occupied connector's expected free time is the end of the booking it runs under."""
    await site_with(system, "site-a", "cp1")
    client, transaction_id = await busy_station(system)
    ends = (datetime.now(UTC) + timedelta(minutes=45)).replace(microsecond=0)
    booking = {
        "id": 1,
        "account_id": "driver-1",
        "id_token": "TAG1",
        "site_id": "site-a",
        "starts_at": ends - timedelta(hours=1),
        "ends_at": ends,
        "expires_at": ends - timedelta(minutes=45),
        "priority": "standard",
        "station_id": "cp1",
        "evse_id": 1,
        "connector_id": 1,
        "status": "active",
        "reserve_any": False,
        "transaction_id": transaction_id,
        "created_at": ends - timedelta(hours=2),
        "updated_at": ends - timedelta(hours=1),
    }
    await system.storage.write([Write(insert(bookings), booking)])  # as the bookings service stores an arrival
    connector = await get(system, "/stations/cp1/connectors/1/1/availability")
    assert datetime.fromisoformat(connector["expected_free_at"]) == ends
    assert connector["expected_free_basis"] == "booking"
    await client.close()


async def test_station_and_connector_availability(system: CentralSystem) -> None:
    """One station's and one connector's availability; a connector it does not have is 404."""
    await site_with(system, "site-a", "cp1")
    client = await charger_16(system, "cp1")
    await status_16(client, 1, "Available", datetime.now(UTC))
    station = await get(system, "/stations/cp1/availability")
    assert station["site_id"] == "site-a" and station["online"] is True
    assert [c["status"] for c in station["connectors"]] == ["Available"]
    connector = await get(system, "/stations/cp1/connectors/1/1/availability")
    assert connector["available"] is True and connector["occupant"] is None and connector["expected_free_at"] is None
    missing = await api(system, "GET", "/stations/cp1/connectors/9/1/availability")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    await client.close()


async def test_connector_spec_sets_type_power_and_bookable(system: CentralSystem) -> None:
    """An operator's connector spec gives the plug type, maximum power and bookability; unset power: the wiring's."""
    await site_with(system, "site-a", "cp1")
    client = await charger_16(system, "cp1")
    await status_16(client, 1, "Available", datetime.now(UTC))
    await status_16(client, 2, "Available", datetime.now(UTC))
    spec = {"connector_type": "CCS2", "max_power_w": 50_000, "bookable": False}
    response = await api(system, "PUT", "/stations/cp1/connectors/1/1/spec", json=spec)
    assert response.status_code == 200, response.text
    response = await api(system, "PUT", "/stations/cp1/connectors/2/1/spec", json={"connector_type": "Type2"})
    assert response.status_code == 200, response.text
    one, two = (await get(system, "/stations/cp1/availability"))["connectors"]
    assert (one["connector_type"], one["max_power_w"], one["max_power_source"], one["bookable"]) == (
        "CCS2",
        50_000,
        "spec",
        False,
    )
    assert (two["connector_type"], two["max_power_w"], two["max_power_source"], two["bookable"]) == (
        "Type2",
        WIRED_W,
        "wiring",
        True,
    )
    await client.close()


@pytest.mark.parametrize(
    "path",
    ["/sites/nowhere/availability", "/sites/nowhere/live", "/stations/ghost/availability"],
)
async def test_unknown_site_or_station_is_404(system: CentralSystem, path: str) -> None:
    """Asking for a site or station that does not exist is a 404 problem naming it."""
    response = await api(system, "GET", path)
    assert response.status_code == 404
    assert ("nowhere" in response.json()["detail"]) or ("ghost" in response.json()["detail"])


async def test_site_live_data(system: CentralSystem) -> None:
    """Energy today, sessions in progress, offline and faulted stations, and load vs limit per node."""
    await site_with(system, "site-a", "cp1", "cp2", limit_a=40)
    client, transaction_id = await busy_station(system)
    values = [{"value": "2500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    values += [
        {"value": "16", "measurand": "Current.Import", "phase": phase, "unit": "A"} for phase in ("L1", "L2", "L3")
    ]
    payload = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": iso(datetime.now(UTC)), "sampledValue": values}],
    }
    await client.result("MeterValues", payload)

    live = await get(system, "/sites/site-a/live")
    assert live["energy_today_wh"] == 1500  # 2500 Wh read now, 1000 Wh at the start
    assert live["sessions_in_progress"] == 1 and live["sessions"][0]["transaction_id"] == transaction_id
    assert live["offline"] == ["cp2"]
    assert live["faulted"] == [{"station_id": "cp1", "evse_id": 2, "connector_id": 1, "error_code": "GroundFailure"}]
    [node] = live["nodes"]
    assert node["node_id"] == "site-a" and node["limit_a"] == 40
    assert node["measured_a"] == [16, 16, 16] and node["over_limit"] is False
    assert live["connectors"]["charging"] == 1 and live["connectors"]["out_of_service"] == 1
    bad = await api(system, "GET", "/sites/site-a/live", params={"tz": "Mars/Olympus"})
    assert bad.status_code == 422 and "Mars/Olympus" in bad.json()["detail"]
    await client.close()


async def test_simulated_station_shows_occupied_then_free(system: CentralSystem) -> None:
    """A simulated 1.6 station's session makes its connector occupied; after unplugging it is available again."""
    await site_with(system, "site-a", "sim1")
    station = SimStation("sim1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", "ocpp1.6", 2, SimClock())
    await station.start()
    try:
        await station.wait_connected()
        await station.start_session(1, "SIMTAG")
        connectors: list[dict[str, Any]] = []

        async def connector_statuses() -> list[str]:
            nonlocal connectors
            connectors = (await get(system, "/stations/sim1/availability"))["connectors"]
            return [c["status"] for c in connectors]

        await settles_to(connector_statuses, ["Charging", "Available"])
        assert connectors[0]["occupant"]["id_token"] == "SIMTAG" and connectors[1]["available"] is True
        await station.stop_session(1)
        await station.unplug(1)
        await settles_to(connector_statuses, ["Available", "Available"])
        assert connectors[0]["occupant"] is None
    finally:
        await station.stop()
