"""Booking -> quote -> ReserveNow -> arrival -> session -> cost: the booked price holds after the tariff changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bookings_helpers import Api, ManualClock, RawStation, iso, running
from tests.money_helpers import TARIFF

MIN = timedelta(minutes=1)


async def test_a_booked_session_is_charged_at_the_price_quoted_when_booking(tmp_path: Path) -> None:
    """The quote stored on the booking prices the session although the site's tariff rose in between."""
    clock = ManualClock()
    async with running(tmp_path, clock, tariffs={"tick_seconds": 0.05}) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.call("PUT", "/sites/site/tariff", json=TARIFF)
        await api.driver_token("TAG", "ann")
        station = await RawStation("CP1").connect(system)
        start = clock.now + 60 * MIN
        booking = await api.book(
            site_id="site", starts_at=iso(start), energy_kwh=11.04, id_token="TAG", account_id="ann"
        )
        # 11.04 kWh x 0.30 + 1 h x 1.20 + 0.50
        assert booking["quote"]["energy_per_kwh"] == "0.30" and booking["quote"]["estimated_total"] == "5.01"
        dearer = TARIFF | {"prices": {"energy_per_kwh": "0.90", "time_per_hour": "1.20", "session_fee": "0.50"}}
        await api.call("PUT", "/sites/site/tariff", json=dearer)
        await api.advance(clock, 46 * MIN)
        reserved = await api.booking(booking["id"])
        assert reserved["status"] == "reserved"
        await api.advance(clock, 14 * MIN)
        assert station.client is not None
        begin = {
            "connectorId": 1,
            "idTag": "TAG",
            "meterStart": 0,
            "timestamp": iso(clock.now),
            "reservationId": reserved["reservation_id"],
        }
        transaction_id = (await station.client.result("StartTransaction", begin))["transactionId"]
        clock.advance(30 * MIN)
        stop = {"transactionId": transaction_id, "meterStop": 5000, "timestamp": iso(clock.now)}
        await station.client.result("StopTransaction", stop)
        assert system.session_rules_loop is not None
        await system.session_rules_loop.settled()
        cost = await api.call("GET", f"/transactions/{transaction_id}/cost")
        assert (cost["price_source"], cost["prices"]["energy_per_kwh"], cost["energy"]) == ("booking", "0.30", "1.50")
        assert cost["final"] is True and cost["total"] == "2.60"  # 1.50 + 0.5 h x 1.20 + 0.50
        await station.close()


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_a_session_matched_to_its_booking_by_token_is_charged_the_booked_price(
    tmp_path: Path, protocol: str
) -> None:
    """No reservation id on the session (1.6: StartTransaction with the booked token but none; 2.0.1: the token
    presented after Started): matched by token, it is charged the booked quote, not the dearer tariff of its start."""
    clock = ManualClock()
    async with running(tmp_path, clock, tariffs={"tick_seconds": 0.05}) as system, Api(system) as api:
        await api.site("site", {"CP1": 1})
        await api.call("PUT", "/sites/site/tariff", json=TARIFF)
        await api.driver_token("TAG", "ann")
        station = await RawStation("CP1", protocol).connect(system)
        booking = await api.book(
            site_id="site", starts_at=iso(clock.now + 60 * MIN), energy_kwh=11.04, id_token="TAG", account_id="ann"
        )
        dearer = TARIFF | {"prices": {"energy_per_kwh": "0.90", "time_per_hour": "1.20", "session_fee": "0.50"}}
        await api.call("PUT", "/sites/site/tariff", json=dearer)
        await api.advance(clock, 60 * MIN)
        assert station.client is not None
        result = station.client.result
        if protocol == "ocpp1.6":
            begin = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": iso(clock.now)}
            transaction_id = (await result("StartTransaction", begin))["transactionId"]
            clock.advance(30 * MIN)
            stop = {"transactionId": transaction_id, "meterStop": 5000, "timestamp": iso(clock.now)}
            await result("StopTransaction", stop)
        else:

            def event(kind: str, seq: int, trigger: str, **extra: Any) -> dict[str, Any]:
                info = {"transactionId": "T-9", "chargingState": "Charging"}
                body = {"eventType": kind, "timestamp": iso(clock.now), "triggerReason": trigger, "seqNo": seq}
                return body | {"transactionInfo": info, "evse": {"id": 1, "connectorId": 1}, **extra}

            def energy(wh: int) -> list[dict[str, Any]]:
                sample = {"value": wh, "measurand": "Energy.Active.Import.Register"}
                return [{"timestamp": iso(clock.now), "sampledValue": [sample]}]

            await result("TransactionEvent", event("Started", 0, "CablePluggedIn", meterValue=energy(0)))
            token = {"idToken": "TAG", "type": "ISO14443"}
            await result("TransactionEvent", event("Updated", 1, "Authorized", idToken=token))
            await api.settle()
            assert (await api.booking(booking["id"]))["status"] == "active"
            clock.advance(30 * MIN)
            await result("TransactionEvent", event("Ended", 2, "StopAuthorized", meterValue=energy(5000)))
            [tx] = (await api.call("GET", "/transactions", params={"station_id": "CP1"}))["items"]
            transaction_id = tx["id"]
        await api.settle()
        assert (await api.booking(booking["id"]))["transaction_id"] == transaction_id
        assert system.session_rules_loop is not None
        await system.session_rules_loop.settled()
        cost = await api.call("GET", f"/transactions/{transaction_id}/cost")
        assert (cost["price_source"], cost["prices"]["energy_per_kwh"], cost["energy"]) == ("booking", "0.30", "1.50")
        assert cost["final"] is True and cost["total"] == "2.60"  # 1.50 + 0.5 h x 1.20 + 0.50
        await station.close()
