"""Booking API: rules per site and their violations, request validation, free slots, priority, quotes, the CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from csms.cli import app
from csms.domain.pricing import PriceQuote, QuoteRequest
from csms.runtime.app import CentralSystem
from tests.http_api import CLI_ENV
from tests.integration.bookings_helpers import Api, ManualClock, RawStation, iso, running

MIN = timedelta(minutes=1)
H = timedelta(hours=1)


async def test_rules_round_trip_and_defaults(tmp_path: Path) -> None:
    """A site without rules only refuses overlaps; PUT replaces every limit and GET shows it back."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        defaults = await api.call("GET", "/sites/site/booking-rules")
        assert defaults["no_overlap"] is True and defaults["max_active"] is None and defaults["block_days"] == 7
        body = {
            "no_overlap": False,
            "max_active": 2,
            "max_per_day": 3,
            "max_per_week": 5,
            "max_horizon_minutes": 10080,
            "min_notice_minutes": 30,
            "max_duration_minutes": 240,
            "strikes_to_block": 3,
            "strike_window_days": 14,
            "block_days": 3,
        }
        assert await api.call("PUT", "/sites/site/booking-rules", json=body) == {"site_id": "site", **body}
        assert (await api.call("GET", "/sites/site/booking-rules"))["max_per_week"] == 5
        await api.call("PUT", "/sites/nope/booking-rules", 404, json=body)
        bad = await api.call("PUT", "/sites/site/booking-rules", 422, json={"max_active": 0})
        assert "max_active" in bad["detail"]


@pytest.mark.parametrize(
    ("rules", "starts_in", "minutes", "rule", "limit"),
    [
        ({"min_notice_minutes": 60}, 30 * MIN, 30, "min_notice", 60),
        ({"max_horizon_minutes": 120}, 3 * H, 30, "max_horizon", 120),
        ({"max_duration_minutes": 60}, 30 * MIN, 90, "max_duration", 60),
        ({"max_active": 1}, 5 * H, 30, "max_active", 1),
        ({"max_per_day": 1, "no_overlap": False}, 5 * H, 30, "max_per_day", 1),
        ({"max_per_week": 1}, 5 * H, 30, "max_per_week", 1),
        ({}, 2 * H + 30 * MIN, 60, "no_overlap", True),
    ],
)
async def test_each_rule_violation_is_a_problem_naming_rule_and_limit(
    tmp_path: Path, rules: dict[str, Any], starts_in: timedelta, minutes: int, rule: str, limit: object
) -> None:
    """A refused booking is a 422 rule-violation problem with the rule's name and configured limit."""
    # Early in a UTC day, so that both bookings fall on the same day and week.
    clock = ManualClock(datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0))
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"CP1": 1, "CP2": 1})
        await api.driver_token("TAG", "ann")
        common = {"site_id": "site", "id_token": "TAG", "account_id": "ann"}
        await api.book(**common, starts_at=iso(clock.now + 2 * H), duration_minutes=60)  # the driver's first
        await api.call("PUT", "/sites/site/booking-rules", json=rules)
        problem = await api.book(422, **common, starts_at=iso(clock.now + starts_in), duration_minutes=minutes)
        assert problem["type"].endswith("/rule-violation") and problem["status"] == 422
        assert (problem["rule"], problem["limit"]) == (rule, limit)


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"duration_minutes": None}, 422, "give either duration_minutes or energy_kwh"),
        ({"energy_kwh": 10}, 422, "give either duration_minutes or energy_kwh"),
        ({"station_id": "CP1"}, 422, "give station_id and evse_id together"),
        ({"energy_kwh": -1, "duration_minutes": None}, 422, "energy_kwh"),
        ({"starts_at": "2030-01-01T10:00:00"}, 422, "starts_at"),
        ({"connector_type": "Type9"}, 422, "connector_type"),
        ({"site_id": "nowhere"}, 404, "site nowhere not found"),
        ({"id_token": "NOBODY"}, 422, "id token NOBODY does not belong to account ann"),
        ({"id_token": "BEN-TAG"}, 422, "id token BEN-TAG does not belong to account ann"),
        ({"account_id": None}, 422, "say which driver"),
        ({"station_id": "ELSEWHERE", "evse_id": 1}, 422, "station ELSEWHERE is not at site site"),
        ({"station_id": "CP1", "evse_id": 2}, 409, "station CP1 EVSE 2 connector 1 is not bookable or not free"),
        ({"connector_type": "CCS2"}, 409, "no bookable CCS2 connector is free at site site"),
        ({"priority": "vip"}, 422, "priority"),
        ({"past": True}, 422, "must not start in the past"),
    ],
)
async def test_bad_booking_requests_get_a_clear_problem(
    tmp_path: Path, change: dict[str, Any], status: int, fragment: str
) -> None:
    """Every malformed or impossible booking request is refused with a problem that says what is wrong."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.driver_token("ANN-TAG", "ann")
        await api.driver_token("BEN-TAG", "ben")
        body: dict[str, Any] = {
            "site_id": "site",
            "starts_at": iso(clock.now + H),
            "duration_minutes": 30,
            "id_token": "ANN-TAG",
            "account_id": "ann",
        }
        if change.pop("past", False):
            body["starts_at"] = iso(clock.now - 10 * MIN)
        body.update(change)
        body = {k: v for k, v in body.items() if v is not None}
        response = await api.http.post("/bookings", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"]


async def test_free_slots_around_bookings_and_sessions(tmp_path: Path) -> None:
    """Free windows per fitting connector skip booked slots and running sessions and fit the energy asked for."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        fast = await RawStation("FAST").connect(system)
        slow = await RawStation("SLOW").connect(system)
        try:
            await api.site("site", {"FAST": 1, "SLOW": 1}, amps=32)
            await api.call(
                "PUT", "/stations/FAST/connectors/1/1/spec", json={"connector_type": "CCS2", "max_power_w": 50000}
            )
            await api.driver_token("T1", "ann")
            # A session on SLOW with a departure in 2 h; a booking on FAST from +1 h to +2 h.
            assert slow.client is not None
            started = await slow.client.result(
                "StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": iso(clock.now)}
            )
            await api.call("PATCH", "/charging-sessions/SLOW/1", json={"departure": iso(clock.now + 2 * H)})
            await api.book(
                site_id="site",
                station_id="FAST",
                evse_id=1,
                starts_at=iso(clock.now + H),
                duration_minutes=60,
                id_token="T1",
                account_id="ann",
            )
            params = {"energy_kwh": 20, "before": iso(clock.now + 4 * H)}
            slots = (await api.call("GET", "/sites/site/free-slots", params=params))["items"]
            found = [(s["connector"]["station_id"], s["start"], s["end"], s["needed_minutes"]) for s in slots]
            # 20 kWh: 24 min at 50 kW, 55 min at 22.08 kW (32 A x 3 x 230 V).
            assert found == [
                ("FAST", iso(clock.now), iso(clock.now + H), 24),
                ("FAST", iso(clock.now + 2 * H), iso(clock.now + 4 * H), 24),
                ("SLOW", iso(clock.now + 2 * H), iso(clock.now + 4 * H), 55),
            ]
            assert slots[0]["latest_start"] == iso(clock.now + H - 24 * MIN)
            only_ccs = await api.call("GET", "/sites/site/free-slots", params={**params, "connector_type": "CCS2"})
            assert {s["connector"]["station_id"] for s in only_ccs["items"]} == {"FAST"}
            long = await api.call(
                "GET", "/sites/site/free-slots", params={"duration_minutes": 150, "before": iso(clock.now + 4 * H)}
            )
            assert long["items"] == []
            assert started["transactionId"] > 0
            bad = await api.call("GET", "/sites/site/free-slots", 422, params={"before": iso(clock.now + H)})
            assert "give either energy_kwh or duration_minutes" in bad["detail"]
            await api.call("GET", "/sites/site/free-slots", 422, params={"energy_kwh": 5, "before": iso(clock.now - H)})
            await api.call("GET", "/sites/nope/free-slots", 404, params={"energy_kwh": 5, "before": iso(clock.now + H)})
        finally:
            await fast.close()
            await slow.close()


async def test_higher_priority_moves_an_unreserved_lower_booking(tmp_path: Path) -> None:
    """When contended, a fleet booking takes the only Type2 connector and the standard booking moves elsewhere."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"AC": 1, "DC": 1})
        await api.call("PUT", "/stations/DC/connectors/1/1/spec", json={"connector_type": "CCS2", "max_power_w": 50000})
        await api.driver_token("STD", "ann")
        await api.driver_token("FLEET", "van")
        await api.driver_token("LATE", "joe")
        slot = {"site_id": "site", "starts_at": iso(clock.now + 3 * H), "duration_minutes": 60}
        standard = await api.book(**slot, id_token="STD", account_id="ann")
        assert standard["station_id"] == "AC"  # the least powerful connector that is enough
        fleet = await api.book(**slot, id_token="FLEET", account_id="van", connector_type="Type2", priority="fleet")
        assert fleet["station_id"] == "AC"
        moved = await api.booking(standard["id"])
        assert moved["station_id"] == "DC" and moved["reason"] == "moved for a higher-priority booking"
        assert (await api.event("booking.reassigned")).account_id == "ann"
        late = await api.book(409, **slot, id_token="LATE", account_id="joe", connector_type="Type2")
        assert "Type2" in late["detail"]


class FixedQuoter:
    """Stands in for the tariff engine (csms.domain.pricing.PriceQuoter): 0.40 per kWh plus a 1.00 session fee."""

    def __init__(self) -> None:
        self.requests: list[QuoteRequest] = []

    async def quote(self, request: QuoteRequest, now: datetime) -> PriceQuote:
        self.requests.append(request)
        kwh = Decimal(str((request.energy_wh or 0) / 1000))
        return PriceQuote(
            "EUR", "t1", "peak", Decimal("0.40"), Decimal("0"), Decimal("1.00"), kwh * Decimal("0.40") + 1, now, now + H
        )


async def test_quote_is_stored_when_a_price_quoter_is_wired(tmp_path: Path) -> None:
    """With a quoter wired, a booking carries the quote for its slot and connector; without one it has none."""
    clock = ManualClock()
    quoted = running(tmp_path, clock)
    quoter = FixedQuoter()
    quoted.system.price_quoter = quoter
    async with quoted as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.driver_token("TAG", "ann")
        booking = await api.book(
            site_id="site", starts_at=iso(clock.now + H), energy_kwh=10, id_token="TAG", account_id="ann"
        )
        assert booking["quote"]["estimated_total"] == "5.000" and booking["quote"]["currency"] == "EUR"
        [request] = quoter.requests
        assert (request.site_id, request.station_id, request.account_id) == ("site", "CP1", "ann")
        assert request.ends_at - request.starts_at == timedelta(minutes=55)  # 10 kWh at 11.04 kW
        assert (await api.booking(booking["id"]))["quote"] == booking["quote"]


async def cli(system: CentralSystem, *args: str) -> Result:
    url = f"http://127.0.0.1:{system.api_port}"
    return await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])


async def test_cli_books_lists_shows_cancels_and_sets_rules(tmp_path: Path) -> None:
    """`csms bookings` creates, lists, shows and cancels bookings, sets rules and finds free slots."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.driver_token("TAG", "ann")
        at = iso(clock.now + H)
        created = await cli(
            system,
            "bookings",
            "create",
            "site",
            "--at",
            at,
            "--token-id",
            "TAG",
            "--account",
            "ann",
            "--minutes",
            "45",
            "--json",
        )
        assert created.exit_code == 0, created.output
        booking = json.loads(created.stdout)
        assert booking["station_id"] == "CP1" and booking["status"] == "scheduled"
        listed = json.loads((await cli(system, "bookings", "list", "--status", "scheduled", "--json")).stdout)
        assert [b["id"] for b in listed] == [booking["id"]]
        assert "CP1/1/1" in (await cli(system, "bookings", "list")).stdout
        shown = await cli(system, "bookings", "show", str(booking["id"]))
        assert f"booking {booking['id']} scheduled: CP1/1/1" in shown.stdout
        slots = json.loads(
            (
                await cli(
                    system,
                    "bookings",
                    "free-slots",
                    "site",
                    "--before",
                    iso(clock.now + 3 * H),
                    "--minutes",
                    "30",
                    "--json",
                )
            ).stdout
        )
        assert [(s["start"], s["end"]) for s in slots] == [
            (iso(clock.now), at),
            (iso(clock.now + 105 * MIN), iso(clock.now + 3 * H)),
        ]
        cancelled = await cli(system, "bookings", "cancel", str(booking["id"]))
        assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
        rules = await cli(system, "bookings", "rules", "set", "site", "--max-active", "2", "--min-notice-minutes", "30")
        assert rules.exit_code == 0 and "max_active=2" in rules.stdout and "min_notice_minutes=30" in rules.stdout
        assert json.loads((await cli(system, "bookings", "rules", "show", "site")).stdout)["max_active"] == 2
        refused = await cli(
            system,
            "bookings",
            "create",
            "site",
            "--at",
            iso(clock.now + 10 * MIN),
            "--token-id",
            "TAG",
            "--account",
            "ann",
            "--minutes",
            "45",
        )
        assert refused.exit_code == 1 and "at least 30 minutes from now" in refused.stderr
        bad = await cli(system, "bookings", "create", "site", "--at", "tomorrow", "--token-id", "TAG", "--minutes", "5")
        assert bad.exit_code == 2 and "ISO 8601" in bad.stderr
