"""Tariffs, quotes and session costs end to end: real server, real SQLite, raw OCPP chargers, a controllable clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from csms.runtime.app import CentralSystem
from csms.storage.tables_bookings import bookings
from tests.money_helpers import (
    T0,
    TARIFF,
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
)


async def test_session_cost_breakdown_is_stored_published_and_served(system: CentralSystem, clock: Clock) -> None:
    """A finished 1.6 session gets energy + time + fee at its site's tariff: stored, sent as session.cost, served."""
    await make_site(system, ["CP-1"])
    events = system.events.subscribe()
    client = await charger(system, "CP-1")
    await status_16(client, "Preparing", clock.at(0))
    transaction_id = await start_16(client, clock.at(0), meter_wh=1000)
    await status_16(client, "Charging", clock.at(0))
    await stop_16(client, transaction_id, clock.at(90), meter_wh=21_333)
    cost = await next_event(events, "session.cost")
    async with api(system) as http:
        body = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
    # 20.333 kWh x 0.30 = 6.0999 -> 6.10; 1.5 h x 1.20 = 1.80; fee 0.50
    assert (body["energy"], body["time"], body["session_fee"], body["total"]) == ("6.10", "1.80", "0.50", "8.40")
    assert (body["final"], body["currency"], body["tier"], body["time_seconds"]) == (True, "EUR", "base", 5400)
    assert body["overstay"] == {"minutes": 0, "fee": "0.00", "reason": None, "started_at": None}
    assert cost.data["total"] == "8.40" and cost.site_ids == frozenset({"site"})
    await client.close()


async def test_demand_tier_from_site_utilisation_prices_the_session(system: CentralSystem, clock: Clock) -> None:
    """With half the site's connectors occupied a 'busy' tier doubles prices for a session starting then."""
    busy = TARIFF | {"tiers": [{"name": "busy", "min_utilisation": 0.5, "multiplier": "2"}]}
    await make_site(system, ["CP-1", "CP-2"], busy)
    one, two = await charger(system, "CP-1"), await charger(system, "CP-2")
    await status_16(two, "Available", clock.at(0))
    await status_16(one, "Available", clock.at(0))
    quote_body = {"site_id": "site", "starts_at": clock.at(0), "ends_at": clock.at(60), "energy_wh": 10_000}
    async with api(system) as http:
        calm = await ok(await http.post("/quotes", json=quote_body))
        await status_16(one, "Preparing", clock.at(1))
        rush = await ok(await http.post("/quotes", json=quote_body))
        transaction_id = await start_16(one, clock.at(1), meter_wh=0)
        await stop_16(one, transaction_id, clock.at(61), meter_wh=10_000)
        await settled(system)
        cost = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
    assert (calm["tier"], calm["estimated_total"]) == ("base", "4.70")  # 3.00 + 1.20 + 0.50
    assert (rush["tier"], rush["estimated_total"], rush["prices"]["energy_per_kwh"]) == ("busy", "9.40", "0.60")
    assert rush["valid_until"] == (T0 + timedelta(minutes=16)).isoformat().replace("+00:00", "Z")
    assert (cost["tier"], cost["total"], cost["price_source"]) == ("busy", "9.40", "tariff")
    await one.close()
    await two.close()


async def test_overstay_after_charging_completes_is_billed_capped_with_its_reason(
    system: CentralSystem, clock: Clock
) -> None:
    """2.0.1 chargingState SuspendedEV starts the grace; the overstay event follows, the fee is capped."""
    await make_site(system, ["CS-1"])
    events = system.events.subscribe()
    client = await charger(system, "CS-1", "ocpp2.0.1")

    def tx_event(kind: str, seq: int, minutes: float, state: str | None, wh: float) -> dict[str, Any]:
        ts = clock.at(minutes)
        info: dict[str, Any] = {"transactionId": "TX-9"}
        if state:
            info["chargingState"] = state
        if kind == "Ended":
            info["stoppedReason"] = "EVDisconnected"
        body = {
            "eventType": kind,
            "timestamp": ts,
            "triggerReason": "ChargingStateChanged",
            "seqNo": seq,
            "transactionInfo": info,
            "meterValue": [{"timestamp": ts, "sampledValue": [{"value": wh}]}],
        }
        if kind == "Started":
            body |= {"idToken": {"idToken": "TAG-9", "type": "ISO14443"}, "evse": {"id": 1, "connectorId": 1}}
        return body

    await client.result("TransactionEvent", tx_event("Started", 0, 0, "EVConnected", 500))
    await client.result("TransactionEvent", tx_event("Updated", 1, 1, "Charging", 600))
    await client.result("TransactionEvent", tx_event("Updated", 2, 40, "SuspendedEV", 10_500))
    clock.at(49)
    await settled(system)
    assert system.events  # still subscribed
    clock.at(51)  # 40 + 10 minutes of grace are over: the next tick announces the overstay
    overstay = await next_event(events, "session.overstay")
    assert overstay.data["reason"] == "charging_complete"
    assert overstay.data["overstay_from"] == T0 + timedelta(minutes=50)
    await client.result("TransactionEvent", tx_event("Ended", 3, 95, None, 10_500))
    await settled(system)
    async with api(system) as http:
        [tx] = (await ok(await http.get("/transactions", params={"station_id": "CS-1"})))["items"]
        cost = await ok(await http.get(f"/transactions/{tx['id']}/cost"))
    # 45 whole minutes x 0.50 = 22.50, capped at 10.00; connected time 95 min x 1.20/h = 1.90; 10 kWh x 0.30 = 3.00
    assert cost["overstay"] == {
        "minutes": 45,
        "fee": "10.00",
        "reason": "charging_complete",
        "started_at": "2026-11-23T09:50:00Z",
    }
    assert (cost["energy"], cost["time"], cost["total"]) == ("3.00", "1.90", "15.40")
    await client.close()


async def test_a_completion_before_the_car_ever_charged_starts_no_overstay(system: CentralSystem, clock: Clock) -> None:
    """1.6 SuspendedEV counts as charging complete only after the session was seen Charging."""
    await make_site(system, ["CP-1"])
    client = await charger(system, "CP-1")
    transaction_id = await start_16(client, clock.at(0))
    await status_16(client, "SuspendedEV", clock.at(0))  # the car has not started drawing yet
    await status_16(client, "Charging", clock.at(5))
    await status_16(client, "SuspendedEV", clock.at(30))
    await stop_16(client, transaction_id, clock.at(60), meter_wh=5000)
    await settled(system)
    async with api(system) as http:
        cost = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
    assert cost["overstay"]["minutes"] == 20 and cost["overstay"]["started_at"] == "2026-11-23T09:40:00Z"
    await client.close()


async def test_bad_tariffs_quotes_and_unknown_costs_get_clear_problems(system: CentralSystem, clock: Clock) -> None:
    """Unknown currency or zone, an inverted quote window, an unknown site or cost: specific 4xx problems."""
    await make_site(system, ["CP-1"])
    async with api(system) as http:
        bad_currency = await http.put("/sites/site/tariff", json=TARIFF | {"currency": "XYZ"})
        bad_zone = await http.put("/sites/site/tariff", json=TARIFF | {"time_zone": "Nowhere/Town"})
        both = TARIFF | {"tiers": [{"name": "x", "multiplier": "2", "prices": TARIFF["prices"]}]}
        bad_tier = await http.put("/sites/site/tariff", json=both)
        negative = await http.put("/tariffs/default", json=TARIFF | {"prices": {"energy_per_kwh": "-1"}})
        unknown_site = await http.put("/sites/nowhere/tariff", json=TARIFF)
        inverted = await http.post(
            "/quotes", json={"site_id": "site", "starts_at": clock.at(60), "ends_at": clock.at(0)}
        )
        no_cost = await http.get("/transactions/999/cost")
        no_default = await http.get("/tariffs/default")
    assert (bad_currency.status_code, bad_currency.json()["detail"]) == (
        422,
        "currency: 'XYZ' is not an ISO 4217 currency code",
    )
    assert bad_zone.status_code == 422 and "time_zone" in bad_zone.json()["detail"]
    assert bad_tier.status_code == 422 and "tiers[0]" in bad_tier.json()["detail"]
    assert negative.status_code == 422 and "energy_per_kwh" in negative.json()["detail"]
    assert unknown_site.status_code == 404 and unknown_site.headers["content-type"] == "application/problem+json"
    assert inverted.status_code == 422 and "ends_at" in inverted.json()["detail"]
    assert no_cost.status_code == 404 and no_default.status_code == 404


async def _book(system: CentralSystem, booking_id: int, start: int, end: int, **columns: Any) -> None:
    """A booking row as the booking service stores it (its API is not needed to price against it)."""
    row = {
        "id": booking_id,
        "account_id": "driver-1",
        "id_token": "TAG-1",
        "site_id": "site",
        "starts_at": T0 + timedelta(minutes=start),
        "ends_at": T0 + timedelta(minutes=end),
        "expires_at": T0 + timedelta(minutes=start + 15),
        "priority": "standard",
        "status": "scheduled",
        "reserve_any": False,
        "created_at": T0,
        "updated_at": T0,
        **columns,
    }
    async with system.engine.begin() as conn:
        await conn.execute(insert(bookings), row)


async def test_forecast_tier_follows_the_bookings_of_the_window(system: CentralSystem, clock: Clock) -> None:
    """A 'booked-out' tier applies to a window where bookings hold half the site's connectors, not to another."""
    tiered = TARIFF | {"tiers": [{"name": "booked-out", "min_forecast": 0.5, "multiplier": "2"}]}
    await make_site(system, ["CP-1", "CP-2"], tiered)
    one, two = await charger(system, "CP-1"), await charger(system, "CP-2")
    await status_16(one, "Available", clock.at(0))
    await status_16(two, "Available", clock.at(0))
    await _book(system, 1, 60, 120)
    await _book(system, 2, 60, 120, status="cancelled")
    async with api(system) as http:
        booked = {"site_id": "site", "starts_at": clock.at(90), "ends_at": clock.at(150), "energy_wh": 0}
        free = booked | {"starts_at": clock.at(180), "ends_at": clock.at(240)}
        clock.at(0)
        assert (await ok(await http.post("/quotes", json=booked)))["tier"] == "booked-out"
        assert (await ok(await http.post("/quotes", json=free)))["tier"] == "base"
    await one.close()
    await two.close()


async def test_a_session_from_a_booking_is_priced_with_the_booked_quote(system: CentralSystem, clock: Clock) -> None:
    """StartTransaction with the booking's reservation id is charged at the quote stored on the booking."""
    await make_site(system, ["CP-1"])
    quote = {
        "currency": "EUR",
        "tariff_id": "site:site",
        "tier": "early-bird",
        "energy_per_kwh": "0.10",
        "time_per_hour": "0",
        "session_fee": "0",
        "estimated_total": "1.00",
        "quoted_at": T0.isoformat(),
        "valid_until": (T0 + timedelta(minutes=15)).isoformat(),
    }
    await _book(system, 3, 0, 60, reservation_id=77, quote=quote, status="reserved", station_id="CP-1")
    client = await charger(system, "CP-1")
    payload = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": clock.at(30), "reservationId": 77}
    transaction_id = (await client.result("StartTransaction", payload))["transactionId"]
    await stop_16(client, transaction_id, clock.at(60), meter_wh=10_000)
    await settled(system)
    async with api(system) as http:
        cost = await ok(await http.get(f"/transactions/{transaction_id}/cost"))
    assert (cost["price_source"], cost["tier"], cost["energy"], cost["total"]) == (
        "booking",
        "early-bird",
        "1.00",
        "1.00",
    )
    await client.close()
