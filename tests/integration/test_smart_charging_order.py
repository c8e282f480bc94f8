"""Smart charging raises a limit only once the decreases that make room for it were accepted, first limits too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.integration.test_smart_charging import SMART, Charger, api, make_site, replan, start_16, wait_for
from tests.ocpp_client import now_iso


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    # A charger that does not answer is given up on quickly, so the test does not wait for the default 5 s.
    central = CentralSystem(make_settings(tmp_path, smart_charging=SMART, ocpp={"call_timeout": 0.5}))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


class GoesSilent(Charger):
    """Takes its first TxProfile, then never answers another one."""

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[override]
        result = super().answer(action, payload)
        if action == "SetChargingProfile" and len(self.tx_limits()) > 1:
            return None
        return result


async def test_first_limit_above_the_default_waits_for_the_decrease_that_makes_room(system: CentralSystem) -> None:
    """A new car's first limit above its station's default share is held back while the car using the room does
    not confirm its decrease: the site never has more promised than its limit."""
    await make_site(system, 30, ["cp1", "cp2", "cp3"])  # a safe share (TxDefaultProfile) of 10 A each
    one, two = GoesSilent("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    await wait_for(lambda: one.defaults() == [10.0] and two.defaults() == [10.0])
    await start_16(c1)
    await replan(system)
    assert one.tx_limits() == [30.0]  # alone on the site: all of it
    await start_16(c2)
    await replan(system)
    assert one.tx_limits()[1:] == [15.0]  # asked to make room, and never confirmed
    assert all(limit <= 10.0 for limit in two.tx_limits())  # so cp2 was never raised above its default
    await c1.close()
    await c2.close()


# The write interval of ``rate_limited``: short, so a test can wait it out.
INTERVAL_S = 1.0


@pytest.fixture
async def rate_limited(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    settings = make_settings(tmp_path, smart_charging={**SMART, "min_write_interval_seconds": INTERVAL_S})
    central = CentralSystem(settings)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


async def test_a_car_written_to_moments_ago_is_planned_at_its_limit_until_the_interval_passes(
    rate_limited: CentralSystem,
) -> None:
    """A car lowered a moment ago is not raised again within the write interval, and its plan says so (room it
    cannot take yet stays with the plan for sessions that can); once the interval has passed it gets the room."""
    system = rate_limited
    await make_site(system, 32, ["cp1", "cp2"])
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    await start_16(c1)
    await replan(system)
    transaction = await start_16(c2)
    await replan(system)
    assert one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16
    stop = {"transactionId": transaction, "meterStop": 1500, "timestamp": now_iso()}
    await c2.result("StopTransaction", stop)
    await replan(system)
    assert one.tx_limits()[-1] == 16
    assert await planned(system, "cp1") == 16  # not 32 that would not be sent
    await asyncio.sleep(INTERVAL_S * 1.2)
    await replan(system)
    assert one.tx_limits()[-1] == 32 and await planned(system, "cp1") == 32
    await c1.close()
    await c2.close()


async def test_a_car_paused_moments_ago_is_planned_paused_until_the_interval_passes(
    rate_limited: CentralSystem,
) -> None:
    """A car paused a moment ago cannot be resumed within the write interval, and its plan says so: the room it
    could not take yet is not planned for it; once the interval has passed it is resumed."""
    system = rate_limited
    await make_site(system, 10, ["cp1", "cp2"])  # room for one car at 6 A or more
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    transaction = await start_16(c1)
    await replan(system)
    await start_16(c2)
    await replan(system)
    assert one.tx_limits()[-1] == 10 and two.tx_limits()[-1] == 0  # paused: no room for its 6 A
    stop = {"transactionId": transaction, "meterStop": 1500, "timestamp": now_iso()}
    await c1.result("StopTransaction", stop)
    await replan(system)
    assert two.tx_limits()[-1] == 0 and await planned(system, "cp2") == 0  # not 10 that would not be sent
    await asyncio.sleep(INTERVAL_S * 1.2)
    await replan(system)
    assert two.tx_limits()[-1] == 10 and await planned(system, "cp2") == 10
    await c1.close()
    await c2.close()


async def planned(system: CentralSystem, station_id: str) -> float:
    plan = (await api(system, "GET", "/sites/site/plan")).json()
    current: float = next(s for s in plan["sessions"] if s["station_id"] == station_id)["periods"][0]["current_a"]
    return current
