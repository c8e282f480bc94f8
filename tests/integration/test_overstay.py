"""Session rules end to end: time-limit warning, stop at the limit, overstay at the limit across a restart."""

from __future__ import annotations

from pathlib import Path

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import driver_account
from tests.money_helpers import (
    T0,
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

SETTINGS = {"tariffs": {"tick_seconds": 0.05, "stop_retry_seconds": 60}}


async def test_time_limit_warns_driver_and_site_then_stops_the_session(tmp_path: Path, clock: Clock) -> None:
    """10 minutes before a 30-minute limit the driver and site are warned; at the limit RemoteStop is sent."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-1"])
        async with api(system) as http:
            rules = {"max_charging_minutes": 30, "warning_minutes": 10, "at_limit": "stop"}
            assert await ok(await http.put("/sites/site/session-rules", json=rules)) == {"site_id": "site", **rules}
            await ok(await http.post("/accounts", json=driver_account("driver-7")), 201)
            await ok(await http.put("/id-tokens/TAG-1", json={"owner": "driver-7"}))
        events = system.events.subscribe()
        client = await charger(system, "CP-1")
        transaction_id = await start_16(client, clock.at(0))
        await status_16(client, "Charging", clock.at(0))
        clock.at(19)
        await settled(system)
        assert not any(action == "RemoteStopTransaction" for action, _ in client.received_calls)
        clock.at(20.5)
        warning = await next_event(events, "session.time_warning")
        assert warning.account_id == "driver-7" and warning.site_ids == frozenset({"site"})
        assert (warning.data["transaction_id"], warning.data["minutes_left"]) == (transaction_id, 10)
        clock.at(30)
        await wait_for(lambda: ("RemoteStopTransaction", {"transactionId": transaction_id}) in client.received_calls)
        await stop_16(client, transaction_id, clock.at(30.2), meter_wh=8000)
        cost = await next_event(events, "session.cost")
        assert cost.data["overstay_minutes"] == 0 and cost.account_id == "driver-7"
        await client.close()
    finally:
        await system.stop()


async def test_overstay_at_the_limit_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    """A session moved to overstay at its limit keeps its timers across a restart and pays per minute after grace."""
    settings = make_settings(tmp_path, **SETTINGS)
    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-1"])
        async with api(system) as http:
            rules = {"max_charging_minutes": 60, "warning_minutes": 5, "at_limit": "overstay"}
            await ok(await http.put("/sites/site/session-rules", json=rules))
        client = await charger(system, "CP-1")
        transaction_id = await start_16(client, clock.at(0))
        await status_16(client, "Charging", clock.at(0))
        await settled(system)
        await client.close()
    finally:
        await system.stop()

    clock.at(100)  # the process was down through the limit (60) and the grace (10)
    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        events = system.events.subscribe()
        system.session_rules_loop.wake()  # type: ignore[union-attr]
        overstay = await next_event(events, "session.overstay")
        assert overstay.data["reason"] == "time_limit" and overstay.data["overstay_from"] == T0.replace(
            hour=10, minute=10
        )
        client = await charger(system, "CP-1")
        assert not any(action == "RemoteStopTransaction" for action, _ in client.received_calls)
        await stop_16(client, transaction_id, clock.at(104.5), meter_wh=11_000)
        await settled(system)
        async with api(system) as http:
            cost = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
        # 34 whole minutes of overstay (70 -> 104.5) at 0.50, capped at 10.00
        assert cost["overstay"] == {
            "minutes": 34,
            "fee": "10.00",
            "reason": "time_limit",
            "started_at": "2026-11-23T10:10:00Z",
        }
        await client.close()
    finally:
        await system.stop()


async def test_session_rules_api_defaults_and_validation(tmp_path: Path, clock: Clock) -> None:
    """A site without rules is unlimited; bad values and non-site nodes are refused with specific problems."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        await make_site(system, [])
        async with api(system) as http:
            await ok(await http.post("/grid-nodes", json={"id": "feeder", "parent_id": "site"}), 201)
            default = await ok(await http.get("/sites/site/session-rules"))
            zero = await http.put("/sites/site/session-rules", json={"max_charging_minutes": 0})
            action = await http.put("/sites/site/session-rules", json={"at_limit": "explode"})
            feeder = await http.put("/sites/feeder/session-rules", json={"max_charging_minutes": 60})
            unknown = await http.get("/sites/nowhere/session-rules")
        assert default == {"site_id": "site", "max_charging_minutes": None, "warning_minutes": 10, "at_limit": "stop"}
        assert zero.status_code == 422 and "max_charging_minutes" in zero.json()["detail"]
        assert action.status_code == 422 and "at_limit" in action.json()["detail"]
        assert feeder.status_code == 422 and "not a site" in feeder.json()["detail"]
        assert unknown.status_code == 404
    finally:
        await system.stop()
