"""Analytics end to end: a day of sessions, statuses and meter values sent by raw 1.6 chargers with their own
timestamps, then every report as JSON, CSV and (through the CLI) PNG."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from csms.cli import app
from csms.domain.analytics import utilisation, utilisation_from_times
from csms.runtime.app import CentralSystem
from csms.storage.availability import AnalyticsReader
from csms.storage.tables_bookings import bookings
from csms.storage.writer import Write
from tests.conftest import make_settings
from tests.http_api import ADMIN_HEADERS, CLI_ENV, driver_account
from tests.integration.live_helpers import api, charger_16, iso, status_16
from tests.ocpp_client import RawClient

DAY = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
RANGE = {"start": iso(DAY), "end": iso(DAY + timedelta(days=1))}
SITE_LIMIT_W = 16 * 230 * 3  # the site's 16 A per phase on three phases


def at(hh: int, mm: int = 0) -> datetime:
    return DAY + timedelta(hours=hh, minutes=mm)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(make_settings(tmp_path, smart_charging={"enabled": False}))
    await central.start()
    try:
        await a_day_of_charging(central)
        yield central
    finally:
        await central.stop()


async def session_16(
    client: RawClient,
    token: str,
    start: datetime,
    meter_start: int,
    readings: list[tuple[datetime, int]],
    stop: datetime,
) -> None:
    begin = {"connectorId": 1, "idTag": token, "meterStart": meter_start, "timestamp": iso(start)}
    transaction_id = (await client.result("StartTransaction", begin))["transactionId"]
    for when, wh in readings:
        value = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        payload = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": iso(when), "sampledValue": [value]}],
        }
        await client.result("MeterValues", payload)
    last = readings[-1][1] if readings else meter_start + 3000
    end = {"transactionId": transaction_id, "meterStop": last, "timestamp": iso(stop)}
    await client.result("StopTransaction", end)


async def a_day_of_charging(system: CentralSystem) -> None:
    """cp1: alice 08:00-09:05 at 11 kW; cp2: bob 08:30-09:00 at 10 kW, an unowned token 18:00-18:45 (3 kWh)."""
    response = await api(system, "POST", "/grid-nodes", json={"id": "site-a", "max_current_a": 16})
    assert response.status_code == 201, response.text
    response = await api(system, "POST", "/grid-nodes", json={"id": "site-b", "max_current_a": 100})
    assert response.status_code == 201, response.text
    for station, site in (("cp1", "site-a"), ("cp2", "site-a"), ("cp3", "site-b")):
        response = await api(system, "PUT", f"/stations/{station}/wiring", json={"node_id": site})
        assert response.status_code == 200, response.text
    for account in ("alice", "bob"):
        response = await api(system, "POST", "/accounts", json=driver_account(account))
        assert response.status_code == 201, response.text
    for token, owner in (("TAG-A", "alice"), ("TAG-B", "bob"), ("TAG-C", None)):
        response = await api(system, "PUT", f"/id-tokens/{token}", json={"status": "Accepted", "owner": owner})
        assert response.status_code == 200, response.text
    cp1, cp2 = await charger_16(system, "cp1"), await charger_16(system, "cp2")
    for hh, mm, status in ((7, 0, "Available"), (8, 0, "Preparing"), (8, 5, "Charging"), (9, 5, "Finishing")):
        await status_16(cp1, 1, status, at(hh, mm))
    await status_16(cp1, 1, "Available", at(9, 10))
    readings = [(at(8, 15), 2750), (at(8, 30), 5500), (at(8, 45), 8250), (at(9, 0), 11000)]
    await session_16(cp1, "TAG-A", at(8), 0, readings, at(9, 5))
    await session_16(cp2, "TAG-B", at(8, 30), 100_000, [(at(8, 45), 102_500), (at(9), 105_000)], at(9))
    await session_16(cp2, "TAG-C", at(18), 0, [], at(18, 45))
    await cp1.close()
    await cp2.close()
    # Bookings as the bookings service stores them: alice kept one and missed one, bob missed his, carol kept hers;
    # a cancelled booking counts neither way.
    outcomes = [("alice", "completed"), ("alice", "expired"), ("bob", "expired"), ("carol", "completed")]
    outcomes.append(("bob", "cancelled"))
    await system.storage.write([_booking(n, account, status) for n, (account, status) in enumerate(outcomes, 1)])


def _booking(booking_id: int, account: str, status: str) -> Write:
    return Write(
        insert(bookings),
        {
            "id": booking_id,
            "account_id": account,
            "id_token": f"TAG-{account}",
            "site_id": "site-a",
            "starts_at": at(7),
            "ends_at": at(8),
            "expires_at": at(7, 15),
            "priority": "standard",
            "station_id": "cp1",
            "evse_id": 1,
            "connector_id": 1,
            "status": status,
            "reserve_any": False,
            "created_at": at(6),
            "updated_at": at(8),
        },
    )


async def get(system: CentralSystem, path: str, **params: Any) -> Any:
    response = await api(system, "GET", path, params={**RANGE, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_charging_patterns(system: CentralSystem) -> None:
    """Arrivals/departures by hour and weekday, dwell and energy per session, over the range and scope asked."""
    body = await get(system, "/analytics/patterns", site_id="site-a")
    assert body["sessions"] == 3 and body["completed"] == 3
    assert {h: n for h, n in enumerate(body["arrivals_by_hour"]) if n} == {8: 2, 18: 1}
    assert {h: n for h, n in enumerate(body["departures_by_hour"]) if n} == {9: 2, 18: 1}
    assert body["arrivals_by_weekday"] == [3, 0, 0, 0, 0, 0, 0]
    assert body["dwell_minutes"]["median"] == 45 and body["dwell_minutes"]["max"] == 65
    assert body["energy_kwh"]["total"] == pytest.approx(19)
    one_station = await get(system, "/analytics/patterns", station_id="cp2", tz="Asia/Tokyo")  # UTC+9
    assert {h: n for h, n in enumerate(one_station["arrivals_by_hour"]) if n} == {17: 1, 3: 1}
    other_site = await get(system, "/analytics/patterns", site_id="site-b")
    assert other_site["sessions"] == 0


async def test_user_behaviour(system: CentralSystem) -> None:
    """Sessions and energy per account, unowned tokens apart; no-show rate of the bookings due; overstay unknown."""
    body = await get(system, "/analytics/users")
    rows = {(r["account_id"], r["id_token"]): r for r in body["users"]}
    assert set(rows) == {("alice", None), ("bob", None), ("carol", None), (None, "TAG-C")}
    alice, bob, carol = rows[("alice", None)], rows[("bob", None)], rows[("carol", None)]
    assert alice["energy_kwh"] == pytest.approx(11) and bob["mean_dwell_minutes"] == pytest.approx(30)
    assert (alice["bookings"], alice["no_shows"], alice["no_show_rate"]) == (2, 1, 0.5)
    assert (bob["bookings"], bob["no_shows"], bob["no_show_rate"]) == (1, 1, 1.0)
    assert (carol["sessions"], carol["no_show_rate"]) == (0, 0.0)
    assert rows[(None, "TAG-C")]["bookings"] is None and alice["overstay_rate"] is None


async def test_utilisation_from_the_status_history(system: CentralSystem) -> None:
    """Time per usage class per connector from the stored status transitions (charger timestamps)."""
    body = await get(system, "/analytics/utilisation", station_id="cp1", evse_id=1)
    [row] = body["connectors"]
    assert (row["station_id"], row["evse_id"], row["connector_id"]) == ("cp1", 1, 1)
    assert row["unknown_s"] == 7 * 3600
    assert row["charging_s"] == 3600 and row["occupied_s"] == 600
    assert row["idle_s"] == 3600 + (24 * 60 - 9 * 60 - 10) * 60
    assert body["totals_s"]["charging"] == 3600 and body["charging_share"] == pytest.approx(1 / 24)
    [site] = (await get(system, "/analytics/utilisation"))["sites"]  # cp1 is the only connector with a history
    assert site["site_id"] == "site-a" and site["totals_s"]["charging"] == 3600


@pytest.mark.parametrize(
    ("start", "end"),
    [(DAY, DAY + timedelta(days=1)), (at(8, 2), at(9, 7)), (at(9, 30), at(12)), (at(3), at(7))],
)
async def test_utilisation_summed_in_sql_equals_the_pure_aggregation(
    system: CentralSystem, start: datetime, end: datetime
) -> None:
    """The SQL sum of time per status gives what the pure function makes of the transitions, for any range."""
    reader = AnalyticsReader(system.engine)
    from_sql = utilisation_from_times(await reader.status_time(None, start, end), start, end)
    reference = utilisation(await reader.status_history(None, start, end), start, end)
    assert [c.seconds for c in from_sql] == [c.seconds for c in reference]
    assert [(c.station_id, c.evse_id) for c in from_sql] == [(c.station_id, c.evse_id) for c in reference]


async def test_peak_load_against_the_site_limit(system: CentralSystem) -> None:
    """Mean power per 15 minutes from energy readings, the peak, time over the site's limit, per site."""
    body = await get(system, "/analytics/load", bucket_minutes=15)
    site_a, site_b = body["sites"]
    assert site_a["site_id"] == "site-a" and site_b["site_id"] == "site-b"
    series = {datetime.fromisoformat(p["start"]): p["power_w"] for p in site_a["series"]}
    assert series == {at(8): 11_000, at(8, 15): 11_000, at(8, 30): 21_000, at(8, 45): 21_000}
    assert site_a["peak_w"] == 21_000 and datetime.fromisoformat(site_a["peak_at"]) == at(8, 30)
    assert site_a["limit_w"] == SITE_LIMIT_W and site_a["over_limit_minutes"] == 30
    assert site_a["energy_kwh"] == pytest.approx(16)
    assert site_b["peak_w"] == 0 and site_b["series"] == []


async def test_csv_export_by_query_or_accept_header(system: CentralSystem) -> None:
    """``?format=csv`` and ``Accept: text/csv`` both give a CSV table with a header row."""
    response = await api(system, "GET", "/analytics/load", params={**RANGE, "site_id": "site-a", "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [float(r["power_w"]) for r in rows] == [11_000, 11_000, 21_000, 21_000]
    headers = {"Accept": "text/csv", **ADMIN_HEADERS}
    response = await api(system, "GET", "/analytics/users", params=RANGE, headers=headers)
    assert response.status_code == 200 and response.text.startswith("account_id,id_token,sessions,energy_kwh")
    response = await api(system, "GET", "/analytics/utilisation", params={**RANGE, "format": "csv"})
    assert list(csv.DictReader(io.StringIO(response.text)))[0]["charging_s"] == "3600.0"


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"start": iso(DAY), "end": iso(DAY)}, "end must be after start"),
        ({"start": "2026-11-16T00:00:00", "end": iso(DAY)}, "UTC offset"),
        ({"start": iso(DAY - timedelta(days=400)), "end": iso(DAY)}, "at most 366 days"),
        ({"tz": "Nowhere/City"}, "Nowhere/City"),
        ({"end": "0001-01-02T00:00:00Z"}, "give start too"),
    ],
)
async def test_bad_ranges_are_problem_responses(system: CentralSystem, params: dict[str, str], detail: str) -> None:
    """An empty, naive or too long range, or an unknown time zone, is a 422 problem saying what is wrong."""
    response = await api(system, "GET", "/analytics/patterns", params=params)
    assert response.status_code == 422 and detail in response.json()["detail"]


@pytest.mark.parametrize("path", ["/analytics/patterns", "/analytics/utilisation", "/analytics/load"])
async def test_unknown_scope_is_404(system: CentralSystem, path: str) -> None:
    """A site that does not exist, or a station not under the site named, is a 404."""
    assert (await api(system, "GET", path, params={"site_id": "site-z"})).status_code == 404
    response = await api(system, "GET", path, params={"site_id": "site-b", "station_id": "cp1"})
    assert response.status_code == 404


async def test_cli_tables_csv_and_png_plots(system: CentralSystem, tmp_path: Path) -> None:
    """``csms analytics`` prints tables, JSON and CSV and writes a PNG for each plot kind."""
    runner = CliRunner(env=CLI_ENV)
    base = ["--api", f"http://127.0.0.1:{system.api_port}", "--start", RANGE["start"], "--end", RANGE["end"]]
    result = await _cli(runner, ["analytics", "load", *base, "--site", "site-a"])
    assert result.exit_code == 0, result.output
    assert "site-a" in result.output and "21.00" in result.output
    result = await _cli(runner, ["analytics", "users", *base, "--json"])
    assert {u["account_id"] for u in json.loads(result.output)["users"]} == {"alice", "bob", "carol", None}
    result = await _cli(runner, ["analytics", "patterns", *base, "--csv"])
    assert result.output.splitlines()[9] == "hour,8,2,0"
    for kind in ("patterns", "utilisation", "load"):
        out = tmp_path / f"{kind}.png"
        result = await _cli(runner, ["analytics", "plot", kind, "--out", str(out), *base])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    result = await _cli(runner, ["analytics", "patterns", *base, "--site", "site-z"])
    assert result.exit_code == 1 and "site site-z not found" in result.output


async def _cli(runner: CliRunner, args: list[str]) -> Any:
    """The CLI's blocking HTTP calls run in a thread so the server on this loop can answer them."""
    return await asyncio.to_thread(runner.invoke, app, args)
