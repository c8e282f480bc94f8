"""Bookings seen by availability and analytics, end to end: real bookings on a manual clock, a raw 1.6 charger."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.integration.bookings_helpers import Api, ManualClock, RawStation, iso, running

MIN = timedelta(minutes=1)


async def test_kept_and_missed_bookings_show_in_availability_and_the_no_show_rate(tmp_path: Path) -> None:
    """Alice arrives for her booking: her connector is expected free at its end. Bob does not: his no-show rate is 1."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        cp = await RawStation("CP1").connect(system, evses=2)
        try:
            await api.site("site", {"CP1": 2})
            await api.driver_token("ALICE-TAG", "alice")
            await api.driver_token("BOB-TAG", "bob")
            start = clock.now + 30 * MIN
            slot = {"site_id": "site", "starts_at": iso(start), "duration_minutes": 60}
            alice = await api.book(**slot, id_token="ALICE-TAG", account_id="alice")
            bob = await api.book(**slot, id_token="BOB-TAG", account_id="bob")
            await api.advance(clock, 30 * MIN)
            assert cp.client is not None
            evse = (await api.booking(alice["id"]))["evse_id"]
            begin = {"connectorId": evse, "idTag": "ALICE-TAG", "meterStart": 0, "timestamp": iso(clock.now)}
            await cp.client.result("StartTransaction", begin)
            await cp.status(evse, "Charging")
            await api.settle()
            assert (await api.booking(alice["id"]))["status"] == "active"

            connector = await api.call("GET", f"/stations/CP1/connectors/{evse}/1/availability")
            assert connector["occupant"]["account_id"] == "alice"
            assert datetime.fromisoformat(connector["expected_free_at"]) == start + 60 * MIN

            await api.advance(clock, 16 * MIN)  # past bob's expiry: a no-show
            assert (await api.booking(bob["id"]))["status"] == "expired"
            span = {"start": iso(start - 60 * MIN), "end": iso(start + 60 * MIN)}
            users = {u["account_id"]: u for u in (await api.call("GET", "/analytics/users", params=span))["users"]}
            assert (users["alice"]["bookings"], users["alice"]["no_shows"], users["alice"]["sessions"]) == (1, 0, 1)
            assert (users["bob"]["bookings"], users["bob"]["no_show_rate"], users["bob"]["sessions"]) == (1, 1.0, 0)
        finally:
            await cp.close()
