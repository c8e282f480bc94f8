"""A changed maximum charging time applies to the sessions in progress, counted from their starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.money_helpers import (
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
    wait_for,
)
from tests.ocpp_client import RawClient

SETTINGS = {"tariffs": {"tick_seconds": 0.05, "stop_retry_seconds": 60}}


def _stops(client: RawClient) -> list[Any]:
    return [payload for action, payload in client.received_calls if action == "RemoteStopTransaction"]


async def test_a_shorter_limit_stops_a_session_already_past_it_and_times_the_others(
    tmp_path: Path, clock: Clock
) -> None:
    """Rules set at minute 45 with a 30-minute limit: the session started at 0 is warned and stopped at once; the one
    started at 40 is warned at 60 and stopped at 70; a later change to 120 minutes lets a third one run on."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-1", "CP-2", "CP-3"])
        events = system.events.subscribe()
        early, late, third = [await charger(system, name) for name in ("CP-1", "CP-2", "CP-3")]
        a = await start_16(early, clock.at(0))
        await status_16(early, "Charging", clock.at(0))
        b = await start_16(late, clock.at(40))
        await status_16(late, "Charging", clock.at(40))
        clock.at(45)
        await settled(system)
        async with api(system) as http:
            rules = {"max_charging_minutes": 30, "warning_minutes": 10, "at_limit": "stop"}
            await ok(await http.put("/sites/site/session-rules", json=rules))
        warning = await next_event(events, "session.time_warning")
        assert (warning.data["transaction_id"], warning.data["minutes_left"]) == (a, 0)
        await wait_for(lambda: _stops(early) == [{"transactionId": a}])
        await stop_16(early, a, clock.at(45.5), meter_wh=5000)
        assert _stops(late) == []
        clock.at(59)
        await settled(system)
        assert _stops(late) == []
        clock.at(60.5)
        warning = await next_event(events, "session.time_warning")
        assert (warning.data["transaction_id"], warning.data["minutes_left"]) == (b, 10)
        clock.at(70)
        await wait_for(lambda: _stops(late) == [{"transactionId": b}])
        # A longer limit: the third session, started at 65, is not warned at 85 nor stopped at 95.
        c = await start_16(third, clock.at(65))
        await status_16(third, "Charging", clock.at(65))
        async with api(system) as http:
            rules = {"max_charging_minutes": 120, "warning_minutes": 10, "at_limit": "stop"}
            await ok(await http.put("/sites/site/session-rules", json=rules))
        await settled(system)
        clock.at(100)
        await settled(system)
        assert _stops(third) == []
        clock.at(175.5)
        warning = await next_event(events, "session.time_warning")
        assert warning.data["transaction_id"] == c
        for client in (early, late, third):
            await client.close()
    finally:
        await system.stop()


async def test_a_session_not_followed_at_its_start_gets_the_new_limit_also_after_a_restart(
    tmp_path: Path, clock: Clock
) -> None:
    """A session at a site without tariff or rules is timed once rules are set, and stays timed across a restart."""
    settings = make_settings(tmp_path, **SETTINGS)
    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        async with api(system) as http:
            await ok(await http.post("/grid-nodes", json={"id": "free", "max_current_a": 100}), 201)
            await ok(await http.put("/stations/CP-9/wiring", json={"node_id": "free"}))
        client = await charger(system, "CP-9")
        transaction_id = await start_16(client, clock.at(0))
        await status_16(client, "Charging", clock.at(0))
        clock.at(20)
        await settled(system)
        async with api(system) as http:
            rules = {"max_charging_minutes": 60, "warning_minutes": 5, "at_limit": "stop"}
            await ok(await http.put("/sites/free/session-rules", json=rules))
        await settled(system)
        await client.close()
    finally:
        await system.stop()

    clock.at(61)  # past the limit while the process was down
    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        client = await charger(system, "CP-9")
        await wait_for(lambda: _stops(client) == [{"transactionId": transaction_id}])
        await stop_16(client, transaction_id, clock.at(61.5), meter_wh=5000)
        await settled(system)
        async with api(system) as http:
            response = await http.get(f"/transactions/{transaction_id}/cost")
        assert response.status_code == 404  # timed, but no tariff: nothing to pay
        await client.close()
    finally:
        await system.stop()


async def test_sessions_past_a_new_limit_are_all_stopped_at_once_a_silent_station_delaying_none(
    tmp_path: Path, clock: Clock
) -> None:
    """Four sessions past a new 30-minute limit: all are warned and asked to stop in the same round; the first
    station never answers, and the others' stops do not wait for its timeout."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        names = ["CP-SILENT", "CP-2", "CP-3", "CP-4"]
        await make_site(system, names)
        events = system.events.subscribe()
        silent = await RawClient.open(
            f"ws://127.0.0.1:{system.ocpp_port}/ocpp/CP-SILENT",
            answer=lambda action, payload: None if action == "RemoteStopTransaction" else {"status": "Accepted"},
        )
        boot = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
        assert (await silent.result("BootNotification", boot))["status"] == "Accepted"
        clients = [silent, *[await charger(system, name) for name in names[1:]]]
        ids = [await start_16(client, clock.at(0)) for client in clients]
        clock.at(45)
        await settled(system)
        async with api(system) as http:
            rules = {"max_charging_minutes": 30, "warning_minutes": 10, "at_limit": "stop"}
            await ok(await http.put("/sites/site/session-rules", json=rules))
        warned = {(await next_event(events, "session.time_warning")).data["transaction_id"] for _ in ids}
        assert warned == set(ids)
        # The call timeout is 5 s: stops sent one after the other would wait for the silent station first.
        pairs = list(zip(clients, ids, strict=True))
        await wait_for(lambda: all(_stops(c) == [{"transactionId": i}] for c, i in pairs), timeout=2.5)
        for client in clients:
            await client.close()
    finally:
        await system.stop()
