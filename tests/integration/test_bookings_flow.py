"""Bookings end to end: real server on a manual clock, simulated stations of both versions and raw chargers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from simulator import SimStation
from simulator.model import ConnectorState
from tests.integration.bookings_helpers import Api, ManualClock, RawStation, iso, running, wait_until

MIN = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_booking_reserves_at_lead_time_and_arrival_starts_the_session(tmp_path: Path, protocol: str) -> None:
    """Book 11 kWh -> placed and held -> ReserveNow 15 min ahead -> token arrives -> active -> completed."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        station = SimStation("SIM1", f"ws://127.0.0.1:{system.ocpp_port}/ocpp", protocol, 2, backoff_s=(0.05, 0.2))
        await station.start()
        try:
            await station.wait_connected(5.0)
            await api.site("site", {"SIM1": 2})
            await api.driver_token("ALICE-TAG", "alice")
            start = clock.now + 60 * MIN
            booking = await api.book(
                site_id="site",
                starts_at=iso(start),
                energy_kwh=11.04,
                id_token="ALICE-TAG",
                account_id="alice",
                priority="fleet",
            )
            # 16 A x 3 phases x 230 V = 11.04 kW: one hour.
            assert booking["status"] == "scheduled" and booking["station_id"] == "SIM1"
            assert booking["ends_at"] == iso(start + 60 * MIN) and booking["expires_at"] == iso(start + 15 * MIN)
            created = await api.event("booking.created")
            assert created.account_id == "alice" and created.site_ids == {"site"}
            assert system.smart is not None
            [hold] = system.smart.snapshot(clock.now).holds
            assert (hold.node_id, hold.start, hold.end) == ("site", start, start + 60 * MIN)
            assert hold.current_a == pytest.approx(16.0)

            await api.advance(clock, 44 * MIN)  # 16 min before the slot: not yet
            assert (await api.booking(booking["id"]))["status"] == "scheduled"
            await api.advance(clock, 2 * MIN)
            reserved = await api.booking(booking["id"])
            assert reserved["status"] == "reserved" and reserved["reservation_id"] is not None
            evse = reserved["evse_id"]
            assert (await api.event("booking.reserved")).data["id"] == booking["id"]
            await wait_until(
                lambda: _state(station, evse) is ConnectorState.RESERVED, what="the simulator's reserved connector"
            )

            await api.advance(clock, 14 * MIN)
            assert await station.start_session(evse, "ALICE-TAG") is not None
            active = await wait_until(lambda: _status(api, booking["id"], "active"), what="the booking to be active")
            assert active["transaction_id"] is not None
            session = await api.call("GET", f"/charging-sessions/SIM1/{evse}")
            assert session["priority"] == 1 and session["priority_reason"] == f"booking {booking['id']}"
            assert session["needs"]["energy_wh"] == pytest.approx(11040)
            assert session["needs"]["departure"] == iso(start + 60 * MIN)
            assert system.smart.snapshot(clock.now).holds == ()  # the session itself takes the capacity now

            await station.stop_session(evse)
            done = await wait_until(lambda: _status(api, booking["id"], "completed"), what="the booking to complete")
            assert done["transaction_id"] == active["transaction_id"]
        finally:
            await station.stop()


async def _status(api: Api, booking_id: int, status: str) -> dict[str, object] | None:
    await api.settle()
    body: dict[str, object] = await api.booking(booking_id)
    return body if body["status"] == status else None


def _state(station: SimStation, connector: int) -> object:
    return station.connector(connector).state


async def test_no_show_expires_cancels_the_reservation_and_counts_a_strike(tmp_path: Path) -> None:
    """At expiryDate without a session the booking expires, CancelReservation goes out, and the strike blocks."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        cp = await RawStation("CP1").connect(system)
        try:
            await api.site("site", {"CP1": 1})
            await api.driver_token("BOB-TAG", "bob")
            await api.call("PUT", "/sites/site/booking-rules", json={"strikes_to_block": 1, "block_days": 2})
            start = clock.now + 30 * MIN
            booking = await api.book(
                site_id="site", starts_at=iso(start), duration_minutes=60, id_token="BOB-TAG", account_id="bob"
            )
            await api.advance(clock, 20 * MIN)
            [reserve] = cp.calls("ReserveNow")
            assert reserve["connectorId"] == 1 and reserve["idTag"] == "BOB-TAG"
            assert reserve["expiryDate"] == iso(start + 15 * MIN).replace("Z", ".000Z") or reserve[
                "expiryDate"
            ].startswith(iso(start + 15 * MIN)[:19])
            await api.advance(clock, 24 * MIN)  # 14 min after the start: still waiting
            assert (await api.booking(booking["id"]))["status"] == "reserved"
            await api.advance(clock, 2 * MIN)
            expired = await api.booking(booking["id"])
            assert expired["status"] == "expired" and expired["reason"] == "no-show"
            assert [c["reservationId"] for c in cp.calls("CancelReservation")] == [reserve["reservationId"]]
            event = await api.event("booking.expired")
            assert event.account_id == "bob"
            refused = await api.book(
                422,
                site_id="site",
                starts_at=iso(clock.now + 60 * MIN),
                duration_minutes=30,
                id_token="BOB-TAG",
                account_id="bob",
            )
            assert refused["rule"] == "strikes" and refused["limit"] == 1
            assert "block booking here until" in refused["detail"]
            await api.advance(clock, timedelta(days=2))
            await api.book(
                site_id="site",
                starts_at=iso(clock.now + 60 * MIN),
                duration_minutes=30,
                id_token="BOB-TAG",
                account_id="bob",
            )
        finally:
            await cp.close()


async def test_refusals_reassign_to_another_connector_then_fail(tmp_path: Path) -> None:
    """Occupied on one station moves the booking to another; when every connector refuses, it fails and says so."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        first = await RawStation("CP-A", answers={"ReserveNow": {"status": "Occupied"}}).connect(system)
        second = await RawStation("CP-B", "ocpp2.0.1", answers={"ReserveNow": {"status": "Accepted"}}).connect(system)
        try:
            await api.site("site", {"CP-A": 1, "CP-B": 1})
            await api.call(
                "PUT", "/stations/CP-B/connectors/1/1/spec", json={"connector_type": "Type2", "max_power_w": 22000}
            )
            await api.driver_token("CAROL", "carol")
            # A fixed duration prefers the least powerful connector: CP-A (11 kW) before CP-B (22 kW).
            booking = await api.book(
                site_id="site",
                starts_at=iso(clock.now + 10 * MIN),
                duration_minutes=45,
                id_token="CAROL",
                account_id="carol",
            )
            assert booking["station_id"] == "CP-A"
            await api.settle()
            moved = await api.booking(booking["id"])
            assert moved["status"] == "reserved" and moved["station_id"] == "CP-B"
            assert "ReserveNow answered Occupied" in moved["reason"]
            [to_b] = second.calls("ReserveNow")
            assert to_b["evseId"] == 1 and to_b["idToken"] == {"idToken": "CAROL", "type": "Central"}
            assert to_b["connectorType"] == "sType2"
            assert (await api.event("booking.reassigned")).data["station_id"] == "CP-B"

            second.answers["ReserveNow"] = {"status": "Faulted"}
            other = await api.book(
                site_id="site",
                starts_at=iso(clock.now + 60 * MIN),
                duration_minutes=30,
                id_token="CAROL",
                account_id="carol",
            )
            await api.advance(clock, 50 * MIN)
            failed = await api.booking(other["id"])
            assert failed["status"] == "failed" and "Faulted" in failed["reason"]
            event = await api.event("booking.failed")
            assert event.account_id == "carol" and event.data["id"] == other["id"]
        finally:
            await first.close()
            await second.close()


async def test_faulted_reserved_connector_is_cancelled_and_rebooked(tmp_path: Path) -> None:
    """A reserved connector that faults gets CancelReservation and the booking moves to a working one."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        cp = await RawStation("CP1").connect(system, evses=2)
        try:
            await api.site("site", {"CP1": 2})
            await api.driver_token("DAN", "dan")
            booking = await api.book(
                site_id="site",
                starts_at=iso(clock.now + 5 * MIN),
                duration_minutes=30,
                id_token="DAN",
                account_id="dan",
            )
            await api.settle()
            reserved = await api.booking(booking["id"])
            assert reserved["status"] == "reserved"
            evse = reserved["evse_id"]
            await cp.status(evse, "Faulted")
            moved = await wait_until(lambda: _moved(api, booking["id"], evse), what="the booking to move")
            assert moved["status"] == "reserved" and moved["reason"] == "connector faulted"
            assert [c["reservationId"] for c in cp.calls("CancelReservation")] == [reserved["reservation_id"]]
            assert [c["connectorId"] for c in cp.calls("ReserveNow")] == [evse, moved["evse_id"]]
        finally:
            await cp.close()


async def _moved(api: Api, booking_id: int, evse: int) -> dict[str, object] | None:
    await api.settle()
    body: dict[str, object] = await api.booking(booking_id)
    return body if body["evse_id"] != evse and body["status"] == "reserved" else None


async def test_reservation_status_update_expired_is_a_no_show(tmp_path: Path) -> None:
    """A 2.0.1 ReservationStatusUpdate Expired expires the booking with a strike and no CancelReservation."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        cp = await RawStation("CP2", "ocpp2.0.1").connect(system)
        try:
            await api.site("site", {"CP2": 1})
            await api.driver_token("EVE", "eve")
            booking = await api.book(
                site_id="site",
                starts_at=iso(clock.now + 5 * MIN),
                duration_minutes=30,
                id_token="EVE",
                account_id="eve",
            )
            await api.settle()
            reservation_id = (await api.booking(booking["id"]))["reservation_id"]
            assert cp.client is not None
            update = {"reservationId": reservation_id, "reservationUpdateStatus": "Expired"}
            await cp.client.result("ReservationStatusUpdate", update)
            expired = await wait_until(lambda: _status(api, booking["id"], "expired"), what="the booking to expire")
            assert expired["reason"] == "no-show" and cp.calls("CancelReservation") == []
        finally:
            await cp.close()


async def test_cancel_cancels_the_reservation_and_frees_the_slot(tmp_path: Path) -> None:
    """A cancelled reserved booking gets CancelReservation, and its slot can be booked again."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        cp = await RawStation("CP1").connect(system)
        try:
            await api.site("site", {"CP1": 1})
            await api.driver_token("FAY", "fay")
            await api.driver_token("GUS", "gus")
            slot = {"site_id": "site", "starts_at": iso(clock.now + 10 * MIN), "duration_minutes": 30}
            booking = await api.book(**slot, id_token="FAY", account_id="fay")
            taken = await api.book(409, **slot, id_token="GUS", account_id="gus")
            assert taken["detail"].startswith("no bookable connector is free at site site from")
            await api.settle()
            reservation_id = (await api.booking(booking["id"]))["reservation_id"]
            cancelled = await api.call("POST", f"/bookings/{booking['id']}/cancel")
            assert cancelled["status"] == "cancelled" and cancelled["reason"] == "cancelled by admin admin"
            assert [c["reservationId"] for c in cp.calls("CancelReservation")] == [reservation_id]
            assert (await api.event("booking.cancelled")).account_id == "fay"
            again = await api.call("POST", f"/bookings/{booking['id']}/cancel", 409)
            assert "cancelled and cannot be cancelled" in again["detail"]
            await api.book(**slot, id_token="GUS", account_id="gus")
        finally:
            await cp.close()


async def test_bookings_and_their_timers_survive_a_restart(tmp_path: Path) -> None:
    """A booking made before a restart is still held and is reserved by the restarted process at lead time."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.driver_token("HAL", "hal")
        booking = await api.book(
            site_id="site", starts_at=iso(clock.now + 60 * MIN), duration_minutes=30, id_token="HAL", account_id="hal"
        )
    clock.advance(50 * MIN)
    async with running(tmp_path, clock) as system, Api(system) as api:
        assert system.smart is not None and len(system.smart.snapshot(clock.now).holds) == 1
        cp = await RawStation("CP1").connect(system)
        try:
            await api.settle()
            restored = await api.booking(booking["id"])
            assert restored["status"] == "reserved"
            [reserve] = cp.calls("ReserveNow")
            assert reserve["reservationId"] == restored["reservation_id"]
        finally:
            await cp.close()


async def test_site_booking_reserves_any_connector_when_the_station_supports_it(tmp_path: Path) -> None:
    """1.6 with ReserveConnectorZeroSupported gets connectorId 0; 2.0.1 with NonEvseSpecific gets no evseId."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        zero = {"configurationKey": [{"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}]}
        v16 = await RawStation("CP16", answers={"GetConfiguration": zero}).connect(system)
        non_evse = {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "true",
                    "component": {"name": "ReservationCtrlr"},
                    "variable": {"name": "NonEvseSpecific"},
                }
            ]
        }
        v201 = await RawStation("CP201", "ocpp2.0.1", answers={"GetVariables": non_evse}).connect(system)
        try:
            await api.site("site", {"CP16": 1, "CP201": 1})
            await api.call("PUT", "/sites/site/booking-rules", json={"no_overlap": False})
            await api.driver_token("IDA", "ida")
            slot = {"site_id": "site", "duration_minutes": 30, "id_token": "IDA", "account_id": "ida"}
            first = await api.book(**slot, starts_at=iso(clock.now + 5 * MIN), station_id="CP16", evse_id=1)
            await api.settle()
            assert v16.calls("ReserveNow")[0]["connectorId"] == 1  # a connector-specific booking stays specific
            await api.call("POST", f"/bookings/{first['id']}/cancel")
            for _ in range(2):
                await api.book(**slot, starts_at=iso(clock.now + 5 * MIN), connector_type="Type2")
            await api.settle()
            assert v16.calls("ReserveNow")[-1]["connectorId"] == 0
            [any_evse] = v201.calls("ReserveNow")
            assert "evseId" not in any_evse and any_evse["connectorType"] == "sType2"
            reserved = (await api.call("GET", "/bookings", params={"status": "reserved"}))["items"]
            assert len(reserved) == 2 and all(b["reserve_any"] for b in reserved)
        finally:
            await v16.close()
            await v201.close()


async def test_held_capacity_is_planned_around(tmp_path: Path) -> None:
    """A booked slot holds its connector's power on the site: a session running meanwhile is planned below it."""
    clock = ManualClock()
    async with running(tmp_path, clock) as system, Api(system) as api:
        capable = {
            "configurationKey": [
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "8"},
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"},
            ]
        }
        busy = await RawStation("BUSY", answers={"GetConfiguration": capable}).connect(system)
        try:
            await api.site("site", {"BUSY": 1, "BOOKED": 1}, amps=32, limit_a=40)
            await api.driver_token("TAG", "ann")
            assert busy.client is not None
            start = {"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": iso(clock.now)}
            await busy.client.result("StartTransaction", start)
            needs = {"energy_wh": 200000, "departure": iso(clock.now + 4 * H)}
            await api.call("PATCH", "/charging-sessions/BUSY/1", json=needs)
            await api.book(
                site_id="site",
                station_id="BOOKED",
                evse_id=1,
                starts_at=iso(clock.now + H),
                duration_minutes=120,
                id_token="TAG",
                account_id="ann",
            )
            assert system.smart_loop is not None and system.smart is not None
            await api.call("POST", "/smart-charging/replan")
            plan = system.smart.latest_plan
            assert plan is not None
            [session] = plan.sessions.values()
            # 40 A site, 32 A held for BOOKED from +1 h to +3 h: BUSY gets its 32 A until then, 8 A during.
            assert session.current_at(clock.now) == 32
            assert session.current_at(clock.now + 90 * MIN) <= 8
            assert session.current_at(clock.now + 3 * H + MIN) == 32
        finally:
            await busy.close()
