"""Bookings: a 2.0.1 session authorised after it started is matched by token; held capacity respects grid limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.integration.bookings_helpers import Api, ManualClock, RawStation, iso, running, wait_until

MIN = timedelta(minutes=1)
H = timedelta(hours=1)


def _event(event_type: str, seq: int, at: str, trigger: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "timestamp": at,
        "triggerReason": trigger,
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-77", "chargingState": "EVConnected"},
        "evse": {"id": 1, "connectorId": 1},
        **extra,
    }


async def test_a_201_session_authorised_after_it_started_is_matched_to_the_booking_by_token(tmp_path: Path) -> None:
    """Plug in first (Started: no idToken, no reservationId), then the booked token (Updated, Authorized): the
    booking becomes active with that transaction and completes when it ends; another token would not match."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        station = await RawStation("CP201", "ocpp2.0.1").connect(system)
        try:
            await api.site("site", {"CP201": 1})
            await api.driver_token("ALICE-TAG", "alice")
            start = clock.now + H
            booking = await api.book(
                site_id="site", starts_at=iso(start), duration_minutes=60, id_token="ALICE-TAG", account_id="alice"
            )
            await api.advance(clock, 50 * MIN)
            assert (await api.booking(booking["id"]))["status"] == "reserved" and station.calls("ReserveNow")
            await api.advance(clock, 12 * MIN)
            assert station.client is not None
            result = station.client.result
            await result("TransactionEvent", _event("Started", 0, iso(clock.now), "CablePluggedIn"))
            await api.settle()
            assert (await api.booking(booking["id"]))["status"] == "reserved"  # nothing to match by yet
            other = _event("Updated", 1, iso(clock.now), "Authorized", idToken={"idToken": "BOB", "type": "ISO14443"})
            await result("TransactionEvent", other)
            await api.settle()
            assert (await api.booking(booking["id"]))["status"] == "reserved"  # not the booked token
            token = {"idToken": "ALICE-TAG", "type": "ISO14443"}
            await result("TransactionEvent", _event("Updated", 2, iso(clock.now), "Authorized", idToken=token))

            async def active() -> dict[str, Any] | None:
                await api.settle()
                body: dict[str, Any] = await api.booking(booking["id"])
                return body if body["status"] == "active" else None

            body = await wait_until(active, what="the booking to be active")
            [transaction] = (await api.call("GET", "/transactions", params={"station_id": "CP201"}))["items"]
            assert body["transaction_id"] == transaction["id"]
            assert (await api.event("booking.active")).data["id"] == booking["id"]
            ended = _event("Ended", 3, iso(clock.now + 30 * MIN), "StopAuthorized", idToken=token)
            ended["transactionInfo"]["stoppedReason"] = "Local"
            await result("TransactionEvent", ended)
            await api.settle()
            assert (await api.event("booking.completed")).data["id"] == booking["id"]
        finally:
            await station.close()


async def test_a_booking_that_would_hold_more_than_the_site_limit_is_refused_naming_the_limit(
    tmp_path: Path,
) -> None:
    """Site limit 40 A, 32 A held on one station for 1-3 h: a second 32 A booking overlapping it is a 422
    grid_capacity rule violation naming 40 A; after the first slot it fits."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"A": 1, "B": 1}, amps=32, limit_a=40)
        await api.driver_token("TAG-1", "ann")
        await api.driver_token("TAG-2", "bob")
        first = await api.book(
            site_id="site", starts_at=iso(clock.now + H), duration_minutes=120, id_token="TAG-1", account_id="ann"
        )
        second = {"site_id": "site", "duration_minutes": 60, "id_token": "TAG-2", "account_id": "bob"}
        problem = await api.book(422, starts_at=iso(clock.now + 2 * H), **second)
        assert problem["type"].endswith("/rule-violation") and problem["status"] == 422
        assert (problem["rule"], problem["limit"]) == ("grid_capacity", 40)
        assert "site" in problem["detail"] and "40 A" in problem["detail"] and "64.0 A" in problem["detail"]
        fits = await api.book(starts_at=iso(clock.now + 3 * H), **second)
        assert fits["station_id"] != first["station_id"] or fits["starts_at"] >= first["ends_at"]


async def _feeders(api: Api) -> None:
    """Site (100 A) with feeder F1 (32 A: stations A1, A2) and F2 (32 A: station B), every station 32 A."""
    await api.call("POST", "/grid-nodes", 201, json={"id": "site", "max_current_a": 100})
    for feeder, stations in (("F1", ("A1", "A2")), ("F2", ("B",))):
        await api.call("POST", "/grid-nodes", 201, json={"id": feeder, "parent_id": "site", "max_current_a": 32})
        for station in stations:
            await api.call("PUT", f"/stations/{station}/wiring", json={"node_id": feeder, "max_current_a": 32})
            await api.call("PUT", f"/stations/{station}/connectors/1/1/spec", json={"connector_type": "Type2"})
    await api.driver_token("TAG-1", "ann")
    await api.driver_token("TAG-2", "bob")


async def test_a_booking_refused_by_its_charger_is_not_moved_where_its_capacity_does_not_fit(tmp_path: Path) -> None:
    """B answers ReserveNow Occupied; the only free connector, A2, is on F1 where A1's booking holds 32 A over the
    overlap: the booking fails instead of taking F1 over its limit."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await _feeders(api)
        station = await RawStation("B", answers={"ReserveNow": {"status": "Occupied"}}).connect(system)
        try:
            later = {"starts_at": iso(clock.now + H), "duration_minutes": 180, "site_id": "site"}
            await api.book(station_id="A1", evse_id=1, id_token="TAG-1", account_id="ann", **later)
            soon = {"starts_at": iso(clock.now + 30 * MIN), "duration_minutes": 90, "site_id": "site"}
            booking = await api.book(id_token="TAG-2", account_id="bob", **soon)  # anywhere at the site
            assert booking["station_id"] == "B"  # A2 would take F1 over its limit
            await api.advance(clock, 16 * MIN)  # B's lead time, not yet A1's
            assert station.calls("ReserveNow")
            failed = await api.event("booking.failed")
            assert failed.data["id"] == booking["id"] and failed.account_id == "bob"
            assert (await api.booking(booking["id"]))["station_id"] == "B"  # not moved to A2
        finally:
            await station.close()


async def test_a_booking_goes_to_another_feeder_when_its_own_would_be_over_the_limit(tmp_path: Path) -> None:
    """Feeder F1 (32 A) has A1 and A2, F2 (32 A) has B: with 32 A held on A1, a booking that would go to A2 (first
    in order) is placed on B instead, and the held capacity stays within every limit."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await _feeders(api)
        slot = {"starts_at": iso(clock.now + H), "duration_minutes": 60, "site_id": "site"}
        await api.book(station_id="A1", evse_id=1, id_token="TAG-1", account_id="ann", **slot)
        placed = await api.book(id_token="TAG-2", account_id="bob", **slot)
        assert placed["station_id"] == "B"
        assert system.bookings is not None
        by_node: dict[str, float] = {}
        for hold in system.bookings.holds(clock.now):
            by_node[hold.node_id] = by_node.get(hold.node_id, 0.0) + hold.current_a
        assert by_node == {"F1": 32.0, "F2": 32.0}
