"""The live event stream (SSE) end to end: real server, raw and simulated chargers, real HTTP streaming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from simulator import SimClock, SimStation
from tests.conftest import make_settings
from tests.http_api import ADMIN_HEADERS, driver_account
from tests.integration.live_helpers import api, charger_16, iso, open_stream, status_16

LIVE = {"heartbeat_seconds": 0.2, "replay_events": 5}


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(make_settings(tmp_path, live=LIVE))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


async def wire(system: CentralSystem, site: str, *stations: str) -> None:
    if (await api(system, "GET", f"/grid-nodes/{site}")).status_code == 404:
        response = await api(system, "POST", "/grid-nodes", json={"id": site, "max_current_a": 64})
        assert response.status_code == 201, response.text
    for station in stations:
        response = await api(system, "PUT", f"/stations/{station}/wiring", json={"node_id": site})
        assert response.status_code == 200, response.text


async def test_admin_stream_carries_connection_status_and_session_events(system: CentralSystem) -> None:
    """An admin's stream gets station.connected, connector.status, session.started/stopped with site and account."""
    await wire(system, "site-a", "cp1")
    response = await api(system, "POST", "/accounts", json=driver_account("driver-1"))
    assert response.status_code == 201, response.text
    response = await api(system, "PUT", "/id-tokens/TAG1", json={"status": "Accepted", "owner": "driver-1"})
    assert response.status_code == 200, response.text
    async with open_stream(system) as stream:
        client = await charger_16(system, "cp1")
        connected = await stream.until("station.connected", station_id="cp1")
        assert connected.id is not None and connected.data["kind"] == "station.connected"
        await status_16(client, 1, "Preparing", datetime.now(UTC))
        status = await stream.until("connector.status", station_id="cp1")
        assert status.data["data"]["status"] == "Preparing" and status.data["data"]["evse_id"] == 1
        start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": iso(datetime.now(UTC))}
        transaction_id = (await client.result("StartTransaction", start))["transactionId"]
        started = await stream.until("session.started", transaction_id=transaction_id)
        assert started.data["data"]["account_id"] == "driver-1"
        assert started.data["data"]["id_token"] == "TAG1"
        stop = {"transactionId": transaction_id, "meterStop": 4500, "timestamp": iso(datetime.now(UTC))}
        await client.result("StopTransaction", stop)
        stopped = await stream.until("session.stopped", transaction_id=transaction_id)
        assert stopped.data["data"]["energy_wh"] == 3500
        assert stopped.data["data"]["account_id"] == "driver-1"
        await client.close()
        await stream.until("station.disconnected", station_id="cp1")


async def test_idle_stream_gets_heartbeat_comments(system: CentralSystem) -> None:
    """With nothing happening, the stream still sends comments so proxies keep it open."""
    async with open_stream(system) as stream:
        assert await stream.kinds_within(0.7) == []
        assert stream.comments.count("keepalive") >= 2


async def test_resume_with_last_event_id_replays_missed_events(system: CentralSystem) -> None:
    """A client reconnecting with Last-Event-ID gets the events it missed, in order, then live ones."""
    client = await charger_16(system, "cp1")
    async with open_stream(system) as stream:
        await status_16(client, 1, "Available", datetime.now(UTC))
        first = await stream.until("connector.status")
    assert first.id is not None
    for status in ("Preparing", "Charging"):
        await status_16(client, 1, status, datetime.now(UTC))
    await _published(system)
    async with open_stream(system, headers=_admin(last_event_id=str(first.id))) as stream:
        replayed = [await stream.until("connector.status") for _ in range(2)]
        assert [e.data["data"]["status"] for e in replayed] == ["Preparing", "Charging"]
        await status_16(client, 1, "Finishing", datetime.now(UTC))
        live = await stream.until("connector.status")
        assert live.data["data"]["status"] == "Finishing" and live.id is not None and live.id > replayed[1].id  # type: ignore[operator]
    await client.close()


async def test_resume_from_an_id_no_longer_kept_gets_a_reset(system: CentralSystem) -> None:
    """When the missed events fell out of the bounded buffer, the client is told to reload (a reset event)."""
    client = await charger_16(system, "cp1")
    for status in ("Available", "Preparing", "Charging", "SuspendedEV", "Charging", "Finishing", "Available"):
        await status_16(client, 1, status, datetime.now(UTC))
    await _published(system)
    async with open_stream(system, params={"last_event_id": 1}) as stream:
        event = await stream.next()
        assert event is not None and event.kind == "reset"
    await client.close()


async def test_bad_last_event_id_is_a_problem_response(system: CentralSystem) -> None:
    """A Last-Event-ID that is not an event id gets a 422 problem naming the header."""
    response = await api(system, "GET", "/events", headers=_admin(last_event_id="yesterday"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID" in response.json()["detail"]


async def test_kinds_filter_limits_the_stream(system: CentralSystem) -> None:
    """``?kinds=session`` streams only session.* events."""
    client = await charger_16(system, "cp1")
    async with open_stream(system, params={"kinds": "session"}) as stream:
        await status_16(client, 1, "Preparing", datetime.now(UTC))
        start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": iso(datetime.now(UTC))}
        await client.result("StartTransaction", start)
        event = await stream.next()
        assert event is not None and event.kind == "session.started"
    await client.close()


async def test_shutdown_ends_open_streams(tmp_path: Path) -> None:
    """Stopping the server ends every open stream instead of waiting for clients to leave."""
    central = CentralSystem(make_settings(tmp_path, live=LIVE))
    await central.start()
    async with open_stream(central) as stream:
        assert len(central.streams) == 1
        await asyncio.wait_for(central.stop(), 10)
        assert await stream.kinds_within(2) == []
    assert len(central.streams) == 0


async def test_simulated_201_station_session_is_streamed(system: CentralSystem) -> None:
    """A simulated 2.0.1 station's plug-in and session show up on the stream as status and session events."""
    await wire(system, "site-a", "sim1")
    station = SimStation("sim1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", "ocpp2.0.1", 1, SimClock())
    async with open_stream(system) as stream:
        await station.start()
        try:
            await station.wait_connected()
            await stream.until("station.connected", station_id="sim1")
            await station.start_session(1, "SIMTAG")
            kinds: dict[str, dict[str, Any]] = {}
            while "session.started" not in kinds or "connector.status" not in kinds:
                event = await stream.next()
                assert event is not None
                payload = event.data["data"]
                if payload.get("station_id") == "sim1" and payload.get("status") in (None, "Occupied"):
                    kinds[event.kind] = payload
            assert kinds["session.started"]["id_token"] == "SIMTAG"
            assert kinds["connector.status"]["evse_id"] == 1
        finally:
            await station.stop()


def _admin(last_event_id: str) -> dict[str, str]:
    return {**ADMIN_HEADERS, "Last-Event-ID": last_event_id}


async def _published(system: CentralSystem) -> None:
    assert system.charger_events is not None
    await system.charger_events.settled()
