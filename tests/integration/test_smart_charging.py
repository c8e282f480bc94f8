"""Smart charging end to end: real server, real SQLite, raw OCPP chargers over loopback websockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from csms.cli import app
from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import CLI_ENV, admin_client
from tests.ocpp_client import RawClient, now_iso

SMART = {"debounce_seconds": 0.02, "tick_seconds": 3600, "settle_seconds": 0}


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(make_settings(tmp_path, smart_charging=SMART))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


class Charger:
    """A raw charger that answers the CSMS and remembers every limit it was sent."""

    def __init__(self, name: str, version: str = "ocpp1.6", reject_tx_profiles: bool = False) -> None:
        self.name = name
        self.version = version
        self.reject_tx_profiles = reject_tx_profiles
        self.profiles: list[dict[str, Any]] = []
        self.client: RawClient | None = None

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "GetConfiguration":
            keys = {"ChargeProfileMaxStackLevel": "3", "ChargingScheduleMaxPeriods": "8"}
            keys["ChargingScheduleAllowedChargingRateUnit"] = "Current"
            return {"configurationKey": [{"key": k, "readonly": True, "value": v} for k, v in keys.items()]}
        if action == "GetVariables":
            return {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "attributeValue": "A" if d["variable"]["name"] == "RateUnit" else "4",
                    }
                    | {"component": d["component"], "variable": d["variable"]}
                    for d in payload["getVariableData"]
                ]
            }
        if action == "SetChargingProfile":
            profile = payload.get("csChargingProfiles") or payload["chargingProfile"]
            purpose = profile["chargingProfilePurpose"]
            self.profiles.append(profile)
            if self.reject_tx_profiles and purpose == "TxProfile":
                return {"status": "Rejected"}
        return {"status": "Accepted"}

    async def connect(self, system: CentralSystem) -> RawClient:
        url = f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{self.name}"
        self.client = await RawClient.open(url, self.version, answer=self.answer)
        if self.version == "ocpp1.6":
            boot = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
        else:
            boot = {"chargingStation": {"vendorName": "Acme", "model": "AC22"}, "reason": "PowerUp"}
        assert (await self.client.result("BootNotification", boot))["status"] == "Accepted"
        return self.client

    def tx_limits(self) -> list[float]:
        return [_first_limit(p) for p in self.profiles if p["chargingProfilePurpose"] == "TxProfile"]

    def defaults(self) -> list[float]:
        return [_first_limit(p) for p in self.profiles if p["chargingProfilePurpose"] == "TxDefaultProfile"]

    def ceilings(self) -> list[float]:
        station_max = ("ChargePointMaxProfile", "ChargingStationMaxProfile")
        return [_first_limit(p) for p in self.profiles if p["chargingProfilePurpose"] in station_max]


def _first_limit(profile: dict[str, Any]) -> float:
    schedule = profile["chargingSchedule"]
    if isinstance(schedule, list):  # 2.0.1: a list of schedules
        schedule = schedule[0]
    limit: float = schedule["chargingSchedulePeriod"][0]["limit"]
    return limit


async def api(system: CentralSystem, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with admin_client(system.api_port) as client:
        return await client.request(method, path, **kwargs)


async def make_site(system: CentralSystem, limit_a: float, stations: list[str]) -> None:
    response = await api(system, "POST", "/grid-nodes", json={"id": "site", "max_current_a": limit_a})
    assert response.status_code == 201, response.text
    for station in stations:
        response = await api(system, "PUT", f"/stations/{station}/wiring", json={"node_id": "site"})
        assert response.status_code == 200, response.text


async def replan(system: CentralSystem) -> None:
    response = await api(system, "POST", "/smart-charging/replan")
    assert response.status_code == 200, response.text


async def start_16(client: RawClient, meter_wh: int = 1000) -> int:
    result = await client.result(
        "StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": meter_wh, "timestamp": now_iso()}
    )
    transaction_id: int = result["transactionId"]
    return transaction_id


async def meter_16(client: RawClient, transaction_id: int, amps: tuple[float, float, float], wh: float) -> None:
    values = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    values += [
        {"value": str(a), "measurand": "Current.Import", "phase": phase, "unit": "A"}
        for a, phase in zip(amps, ("L1", "L2", "L3"), strict=True)
    ]
    await client.result(
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": now_iso(), "sampledValue": values}],
        },
    )


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_boot_gets_the_safe_share_as_default_profile(system: CentralSystem) -> None:
    """A wired station that boots is asked for its capabilities and gets a TxDefaultProfile at its safe share."""
    await make_site(system, 40, ["cp1", "cp2"])
    charger = Charger("cp1")
    client = await charger.connect(system)
    await wait_for(lambda: charger.defaults() == [20.0])
    assert any(action == "GetConfiguration" for action, _ in client.received_calls)
    assert charger.ceilings() == []  # station_max_at_boot is off by default
    await client.close()


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
async def test_station_max_profile_at_boot_where_configured(tmp_path: Path, version: str) -> None:
    """With station_max_at_boot, a wired station first gets its wiring's maximum as the station-wide ceiling."""
    central = CentralSystem(make_settings(tmp_path, smart_charging={**SMART, "station_max_at_boot": True}))
    await central.start()
    try:
        await make_site(central, 40, ["cp1", "cp2"])
        response = await api(central, "PUT", "/stations/cp1/wiring", json={"node_id": "site", "max_current_a": 25})
        assert response.status_code == 200, response.text
        charger = Charger("cp1", version)
        client = await charger.connect(central)
        await wait_for(lambda: charger.defaults() == [20.0])
        assert charger.ceilings() == [25.0]
        ceiling = next(p for p in charger.profiles if _first_limit(p) == 25.0)
        assert ceiling["chargingProfilePurpose"] == (
            "ChargePointMaxProfile" if version == "ocpp1.6" else "ChargingStationMaxProfile"
        )
        assert charger.profiles.index(ceiling) == 0  # before the default, so the station is never uncapped
        await client.close()
    finally:
        await central.stop()


async def test_second_session_halves_the_first_and_the_site_stays_under_its_limit(system: CentralSystem) -> None:
    """One car gets the whole 32 A site; when a second starts, the first is lowered and both get 16 A."""
    await make_site(system, 32, ["cp1", "cp2"])
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    await start_16(c1)
    await replan(system)
    assert one.tx_limits()[-1] == 32
    await start_16(c2)
    await replan(system)
    assert one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16
    tx = next(p for p in one.profiles if p["chargingProfilePurpose"] == "TxProfile")
    assert tx["stackLevel"] == 1 and tx["chargingProfileKind"] == "Absolute" and "transactionId" in tx
    assert tx["chargingSchedule"]["duration"] == 960  # validity 900 s plus the clock-skew allowance
    await c1.close()
    await c2.close()


async def test_station_that_rejects_its_limit_is_planned_around(system: CentralSystem) -> None:
    """A charger that rejects TxProfiles is assumed to draw its default share; the other car gets the rest."""
    await make_site(system, 32, ["cp1", "cp2"])
    good, stubborn = Charger("cp1"), Charger("cp2", reject_tx_profiles=True)
    c1, c2 = await good.connect(system), await stubborn.connect(system)
    await wait_for(lambda: stubborn.defaults() == [16.0])
    await start_16(c2)
    await start_16(c1)
    await replan(system)
    await replan(system)  # the rejection asked for another plan around the stubborn station
    assert good.tx_limits()[-1] == 16
    sessions = (await api(system, "GET", "/charging-sessions")).json()["items"]
    refused = next(s for s in sessions if s["station_id"] == "cp2")
    assert refused["steerable"] is False and refused["refused"]["reason"] == "answered Rejected"
    await c1.close()
    await c2.close()


async def test_lower_site_limit_through_the_api_lowers_the_cars(system: CentralSystem) -> None:
    """Cutting the site limit from 32 A to 20 A re-plans at once and sends the lower limit."""
    await make_site(system, 32, ["cp1"])
    one = Charger("cp1")
    c1 = await one.connect(system)
    await start_16(c1)
    await replan(system)
    assert one.tx_limits()[-1] == 32
    response = await api(system, "PATCH", "/grid-nodes/site", json={"max_current_a": 20})
    assert response.status_code == 200, response.text
    await wait_for(lambda: one.tx_limits()[-1] == 20)
    await c1.close()


async def test_car_drawing_above_its_limit_is_flagged_and_its_excess_subtracted(system: CentralSystem) -> None:
    """A car drawing 28 A against a 16 A limit is flagged, and the other car is lowered to keep the site at 32 A."""
    await make_site(system, 32, ["cp1", "cp2"])
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    t1 = await start_16(c1)
    await start_16(c2)
    await replan(system)
    assert one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16
    await meter_16(c1, t1, (28, 28, 28), 2000)
    await wait_for(lambda: two.tx_limits()[-1] == 0 or two.tx_limits()[-1] <= 4)
    view = (await api(system, "GET", "/charging-sessions/cp1/1")).json()
    assert view["overdrawing"] is True and view["measured_a"] == [28, 28, 28]
    load = (await api(system, "GET", "/sites/site/load")).json()
    site = next(n for n in load["nodes"] if n["node_id"] == "site")
    assert site["measured_a"] == [28, 28, 28] and site["over_limit"] is False
    await c1.close()
    await c2.close()


async def test_a_car_that_stops_drawing_keeps_its_minimum_and_frees_the_rest_until_it_draws_again(
    tmp_path: Path,
) -> None:
    """A car that has charged and now takes nothing of its 16 A (full, or suspended by the car) is planned at its
    6 A minimum, so it can resume, and the other car gets the rest; when it draws again it gets its share back."""
    system = CentralSystem(make_settings(tmp_path, smart_charging={**SMART, "min_write_interval_seconds": 0}))
    await system.start()
    try:
        await make_site(system, 32, ["cp1", "cp2"])
        one, two = Charger("cp1"), Charger("cp2")
        c1, c2 = await one.connect(system), await two.connect(system)
        t1, t2 = await start_16(c1), await start_16(c2)
        await replan(system)
        assert one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16
        await meter_16(c1, t1, (16, 16, 16), 2000)
        await meter_16(c2, t2, (16, 16, 16), 2000)
        await meter_16(c1, t1, (0.2, 0.1, 0.2), 2500)  # standby noise: it takes nothing
        await wait_for(lambda: one.tx_limits()[-1] == 6 and two.tx_limits()[-1] == 26)
        view = (await api(system, "GET", "/charging-sessions/cp1/1")).json()
        assert view["idle"] is True and view["planned_a"] == 6
        await meter_16(c1, t1, (6, 6, 6), 2600)
        await wait_for(lambda: one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16)
        assert (await api(system, "GET", "/charging-sessions/cp1/1")).json()["idle"] is False
        await c1.close()
        await c2.close()
    finally:
        await system.stop()


async def test_single_phase_car_frees_the_other_phases(system: CentralSystem) -> None:
    """Once meter values show a car on one phase only, a three-phase car is planned on the phases it leaves free."""
    await make_site(system, 32, ["cp1", "cp2"])
    response = await api(system, "PUT", "/stations/cp2/wiring", json={"node_id": "site", "rotation": [2, 3, 1]})
    assert response.status_code == 200
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    t1 = await start_16(c1)
    t2 = await start_16(c2)
    await replan(system)
    assert one.tx_limits()[-1] == 16 and two.tx_limits()[-1] == 16
    # cp2's car charges on its L1 only, which is wired to grid L2: grid L1 and L3 are left to cp1's car.
    await meter_16(c2, t2, (16, 0, 0), 2000)
    await meter_16(c1, t1, (16, 16, 16), 2000)
    await replan(system)
    view = (await api(system, "GET", "/charging-sessions/cp2/1")).json()
    assert view["phases"] == 1
    plan = (await api(system, "GET", "/sites/site/plan")).json()
    site = next(n for n in plan["nodes"] if n["node_id"] == "site")
    assert max(site["load_a"]) <= 32
    assert one.tx_limits()[-1] + two.tx_limits()[-1] <= 32  # grid L2 carries both cars
    await c1.close()
    await c2.close()


@pytest.mark.parametrize(
    ("algorithm", "probe_seconds"), [("realtime", 300.0), ("optimal", 300.0), ("realtime", 0.0), ("optimal", 0.0)]
)
async def test_new_car_is_probed_to_learn_its_phases_then_planned_on_one(
    tmp_path: Path, algorithm: str, probe_seconds: float
) -> None:
    """L2 and L3 carry 6 A of building load under a 16 A site: two three-phase cars cannot both have 6 A, but a
    three-phase and a single-phase car on L1 can. A new car's phases are unknown until it draws: probed, it is
    admitted first (the charging car waits; the optimal planner gives it its minimum in the first slot), shows in
    its meter values that it uses L1 only, and is re-planned on L1, so both charge. Without the probe it stays
    paused as a three-phase car and never shows it."""
    smart = SMART | {"phase_probe_seconds": probe_seconds, "min_write_interval_seconds": 0, "algorithm": algorithm}
    central = CentralSystem(make_settings(tmp_path, smart_charging=smart))
    await central.start()
    try:
        await make_site(central, 16, ["cp1", "cp2"])
        response = await api(central, "PUT", "/grid-nodes/site/unmanaged-load", json={"unmanaged_a": [0, 6, 6]})
        assert response.status_code == 200, response.text
        three, one = Charger("cp1"), Charger("cp2")
        c1, c2 = await three.connect(central), await one.connect(central)
        t1 = await start_16(c1)
        await replan(central)
        assert three.tx_limits()[-1] == 10
        await meter_16(c1, t1, (10, 10, 10), 2000)
        t2 = await start_16(c2)
        await replan(central)
        if probe_seconds:
            assert three.tx_limits()[-1] == 0 and one.tx_limits()[-1] >= 6  # probed: it charges, on three phases
            await meter_16(c2, t2, (10, 0, 0), 1100)  # ...and draws on L1 only
            await wait_for(lambda: three.tx_limits()[-1] >= 6)
            assert (await api(central, "GET", "/charging-sessions/cp2/1")).json()["phases"] == 1
            await replan(central)
            plan = (await api(central, "GET", "/sites/site/plan")).json()
            site = next(n for n in plan["nodes"] if n["node_id"] == "site")
            assert max(site["load_a"]) <= 16  # unmanaged load included
            assert one.tx_limits()[-1] >= 6 and three.tx_limits()[-1] + one.tx_limits()[-1] <= 16  # both on L1
        else:
            assert three.tx_limits()[-1] == 10 and one.tx_limits()[-1] == 0
            assert (await api(central, "GET", "/charging-sessions/cp2/1")).json()["phases"] is None
        await c1.close()
        await c2.close()
    finally:
        await central.stop()


async def test_v201_charging_needs_are_accepted_and_shape_the_plan(system: CentralSystem) -> None:
    """A 2.0.1 car's NotifyEVChargingNeeds is Accepted on a managed station; its TxProfile carries the transactionId."""
    await make_site(system, 32, ["cs1"])
    charger = Charger("cs1", "ocpp2.0.1")
    client = await charger.connect(system)
    await client.result("TransactionEvent", _started_201("tx-1"))
    needs = {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_three_phase",
            "acChargingParameters": {"energyAmount": 5000, "evMinCurrent": 6, "evMaxCurrent": 20, "evMaxVoltage": 400},
        },
    }
    assert (await client.result("NotifyEVChargingNeeds", needs))["status"] == "Accepted"
    await replan(system)
    assert charger.tx_limits()[-1] == 20  # the car's own maximum
    tx = [p for p in charger.profiles if p["chargingProfilePurpose"] == "TxProfile"][-1]
    assert tx["transactionId"] == "tx-1"
    view = (await api(system, "GET", "/charging-sessions/cs1/1")).json()
    assert view["needs"]["energy_wh"] == 5000 and view["needs"]["max_current_a"] == 20
    await client.close()


async def test_unmanaged_station_gets_no_profiles_and_needs_are_rejected(system: CentralSystem) -> None:
    """A station wired to no grid node is left alone: no TxDefaultProfile, NotifyEVChargingNeeds is Rejected."""
    charger = Charger("free", "ocpp2.0.1")
    client = await charger.connect(system)
    needs = {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_single_phase"}}
    assert (await client.result("NotifyEVChargingNeeds", needs))["status"] == "Rejected"
    await replan(system)
    assert charger.profiles == []
    await client.close()


async def test_priority_set_through_the_api_moves_power_to_the_urgent_car(system: CentralSystem) -> None:
    """Raising one session to urgent gives it what it needs before the standard car gets more than its minimum."""
    await make_site(system, 22, ["cp1", "cp2"])
    one, two = Charger("cp1"), Charger("cp2")
    c1, c2 = await one.connect(system), await two.connect(system)
    await start_16(c1)
    await start_16(c2)
    response = await api(
        system,
        "PATCH",
        "/charging-sessions/cp2/1",
        json={"priority": 2, "reason": "low battery", "energy_wh": 11000, "departure": "2099-01-01T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["priority"] == 2 and body["priority_reason"] == "low battery"
    await replan(system)
    assert two.tx_limits()[-1] >= one.tx_limits()[-1]
    missing = await api(system, "PATCH", "/charging-sessions/nope/1", json={"priority": 1})
    assert missing.status_code == 404
    bad = await api(system, "PATCH", "/charging-sessions/cp1/1", json={"priority": 7})
    assert bad.status_code == 422
    await c1.close()
    await c2.close()


async def test_needs_and_priorities_survive_a_restart(tmp_path: Path) -> None:
    """Needs and priority set by the API and by a 2.0.1 car are re-planned with after the server restarts."""
    settings = make_settings(tmp_path, smart_charging=SMART)
    first = CentralSystem(settings)
    await first.start()
    try:
        await make_site(first, 32, ["cp1", "cs1"])
        c1 = await Charger("cp1").connect(first)
        await start_16(c1)
        body = {"priority": 1, "reason": "depot van", "energy_wh": 12000, "departure": "2099-01-01T08:00:00Z"}
        response = await api(first, "PATCH", "/charging-sessions/cp1/1", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["priority_set_by"] == "admin"
        car = Charger("cs1", "ocpp2.0.1")
        c2 = await car.connect(first)
        await c2.result("TransactionEvent", _started_201("tx-9"))
        ev_needs = {"energyAmount": 7000, "evMinCurrent": 6, "evMaxCurrent": 16, "evMaxVoltage": 400}
        needs = {
            "evseId": 1,
            "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase", "acChargingParameters": ev_needs},
        }
        assert (await c2.result("NotifyEVChargingNeeds", needs))["status"] == "Accepted"
        await replan(first)  # a re-plan saves what the car said
        await c1.close()
        await c2.close()
    finally:
        await first.stop()
    second = CentralSystem(settings)
    await second.start()
    try:
        van = (await api(second, "GET", "/charging-sessions/cp1/1")).json()
        assert (van["priority"], van["priority_reason"], van["priority_set_by"]) == (1, "depot van", "admin")
        assert van["needs"]["energy_wh"] == 12000 and van["needs"]["departure"].startswith("2099-01-01T08:00:00")
        ev = (await api(second, "GET", "/charging-sessions/cs1/1")).json()
        assert ev["needs"]["energy_wh"] == 7000 and ev["needs"]["max_current_a"] == 16
        assert ev["priority_set_by"] == "ev"
    finally:
        await second.stop()


def _started_201(transaction_id: str) -> dict[str, Any]:
    return {
        "eventType": "Started",
        "timestamp": now_iso(),
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": 1, "connectorId": 1},
    }


async def cli(system: CentralSystem, *args: str) -> str:
    """Run the CLI in a thread (it calls the API synchronously, which this loop's server must answer)."""
    url = f"http://127.0.0.1:{system.api_port}"
    result = await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


async def test_cli_shows_plan_load_and_sessions_and_sets_priority(system: CentralSystem) -> None:
    """`csms smart-charging plan|load|replan` and `csms sessions list|set` work against a live server."""
    await make_site(system, 32, ["cp1"])
    one = Charger("cp1")
    c1 = await one.connect(system)
    transaction = await start_16(c1)
    await meter_16(c1, transaction, (12, 12, 12), 3000)
    assert "planned 1 sessions" in await cli(system, "smart-charging", "replan")
    plan = json.loads(await cli(system, "smart-charging", "plan", "site", "--json"))
    assert plan["sessions"][0]["periods"][0]["current_a"] == one.tx_limits()[-1]
    assert "site" in await cli(system, "smart-charging", "plan", "site")
    load = json.loads(await cli(system, "smart-charging", "load", "site", "--json"))
    assert load["nodes"][0]["measured_a"] == [12, 12, 12]
    assert "12 / 12 / 12" in await cli(system, "smart-charging", "load", "site")
    sessions = json.loads(await cli(system, "sessions", "list", "--json"))
    assert [(s["station_id"], s["delivered_wh"]) for s in sessions] == [("cp1", 2000)]
    changed = json.loads(
        await cli(system, "sessions", "set", "cp1", "1", "--priority", "urgent", "--energy-kwh", "20", "--json")
    )
    assert changed["priority"] == 2 and changed["needs"]["energy_wh"] == 20000
    assert "urgent" in await cli(system, "sessions", "list")
    url = f"http://127.0.0.1:{system.api_port}"
    args = ["sessions", "set", "cp1", "1", "--priority", "vip", "--api", url]
    bad = await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, args)
    assert bad.exit_code == 2 and "standard, fleet, urgent" in bad.output
    await c1.close()


async def test_a_limit_window_added_later_reaches_a_station_whose_limit_now_is_unchanged(
    system: CentralSystem,
) -> None:
    """A station steps through the schedule it holds by itself. A limit window added after its limit was sent
    leaves its limit now as it was, and it is still sent the new schedule, which steps down for the window: kept
    on the old one, it would run through the window at its full limit unless the server is there to lower it."""
    await make_site(system, 32, ["cp1"])
    one = Charger("cp1")
    c1 = await one.connect(system)
    await start_16(c1)
    await replan(system)
    [before] = [p for p in one.profiles if p["chargingProfilePurpose"] == "TxProfile"]
    now = datetime.now(UTC)
    start, end = now + timedelta(minutes=5), now + timedelta(minutes=10)
    window = {"start": start.isoformat(), "end": end.isoformat(), "max_current_a": 12}
    response = await api(system, "POST", "/grid-nodes/site/limit-windows", json=window)
    assert response.status_code == 201, response.text
    await replan(system)
    tx = [p for p in one.profiles if p["chargingProfilePurpose"] == "TxProfile"]
    assert len(tx) == 2, json.dumps([p["chargingSchedule"] for p in tx])
    after = tx[-1]
    minute = timedelta(minutes=1)
    assert _limit_at(after, now) == _limit_at(before, now) > 12  # the limit now did not change
    assert _limit_at(after, start + minute) == 12 and _limit_at(before, start + minute) > 12
    assert _limit_at(after, end + minute) == _limit_at(before, now)
    await replan(system)
    assert len([p for p in one.profiles if p["chargingProfilePurpose"] == "TxProfile"]) == 2  # sent once


def _limit_at(profile: dict[str, Any], when: datetime) -> float:
    schedule = profile["chargingSchedule"]
    start = datetime.fromisoformat(schedule["startSchedule"].replace("Z", "+00:00"))
    offset = (when - start).total_seconds()
    limit: float = schedule["chargingSchedulePeriod"][0]["limit"]
    for period in schedule["chargingSchedulePeriod"]:
        if period["startPeriod"] <= offset:
            limit = period["limit"]
    return limit
