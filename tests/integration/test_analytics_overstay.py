"""Session rules seen by availability and analytics, end to end: a time limit, overstay after it, on a manual clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import driver_account
from tests.money_helpers import T0, Clock, api, charger, make_site, ok, settled, start_16, status_16, stop_16

SETTINGS = {"tariffs": {"tick_seconds": 0.05, "stop_retry_seconds": 60}}


async def test_time_limit_is_the_expected_free_time_and_an_overstay_counts_in_the_rate(tmp_path: Path) -> None:
    """Under a 60-minute limit the connector is expected free at the limit; the session overstays: rate 1 of 1."""
    clock = Clock(T0)
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-1"])
        async with api(system) as http:
            rules = {"max_charging_minutes": 60, "warning_minutes": 5, "at_limit": "overstay"}
            await ok(await http.put("/sites/site/session-rules", json=rules))
            await ok(await http.post("/accounts", json=driver_account("driver-7")), 201)
            await ok(await http.put("/id-tokens/TAG-1", json={"owner": "driver-7"}))
        client = await charger(system, "CP-1")
        transaction_id = await start_16(client, clock.at(0))
        await status_16(client, "Charging", clock.at(0))
        await settled(system)
        async with api(system) as http:
            connector = await ok(await http.get("/stations/CP-1/connectors/1/1/availability"))
        assert connector["occupant"]["transaction_id"] == transaction_id
        assert datetime.fromisoformat(connector["expected_free_at"]) == T0 + timedelta(minutes=60)
        assert connector["expected_free_basis"] == "time_limit"

        clock.at(75)  # past the limit (60) and the grace (10): overstay
        assert system.session_rules_loop is not None
        system.session_rules_loop.wake()
        await settled(system)
        await stop_16(client, transaction_id, clock.at(80), meter_wh=11_000)
        await settled(system)
        span = {"start": (T0 - timedelta(hours=1)).isoformat(), "end": (T0 + timedelta(hours=3)).isoformat()}
        async with api(system) as http:
            users = (await ok(await http.get("/analytics/users", params=span)))["users"]
        [driver] = users
        assert (driver["account_id"], driver["sessions"], driver["overstays"], driver["overstay_rate"]) == (
            "driver-7",
            1,
            1,
            1.0,
        )
        await client.close()
    finally:
        await system.stop()
