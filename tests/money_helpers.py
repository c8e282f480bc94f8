"""What the tariff and session-rule tests share: a controllable clock, raw 1.6 chargers, API and event helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from csms.runtime.app import CentralSystem
from csms.service.events import Event, Subscription
from tests.http_api import admin_client
from tests.ocpp_client import RawClient

__all__ = [
    "T0",
    "TARIFF",
    "Clock",
    "api",
    "charger",
    "make_site",
    "next_event",
    "ok",
    "settled",
    "start_16",
    "status_16",
    "stop_16",
    "wait_for",
]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin


class Clock:
    """The wall clock of the server under test, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> str:
        """Set the clock ``minutes`` after T0; the instant as an OCPP timestamp."""
        self.now = T0 + timedelta(minutes=minutes)
        return self.now.isoformat().replace("+00:00", "Z")


def api(system: CentralSystem) -> httpx.AsyncClient:
    return admin_client(system.api_port)


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


TARIFF = {
    "currency": "EUR",
    "time_zone": "Europe/Berlin",
    "prices": {"energy_per_kwh": "0.30", "time_per_hour": "1.20", "session_fee": "0.50"},
    "time_basis": "connected",
    "overstay": {"per_minute": "0.50", "cap": "10.00", "grace_minutes": 10},
}


async def make_site(system: CentralSystem, stations: list[str], tariff: dict[str, Any] | None = None) -> None:
    async with api(system) as http:
        await ok(await http.post("/grid-nodes", json={"id": "site", "max_current_a": 100}), 201)
        for station in stations:
            await ok(await http.put(f"/stations/{station}/wiring", json={"node_id": "site"}))
        await ok(await http.put("/sites/site/tariff", json=tariff or TARIFF))


async def charger(system: CentralSystem, name: str, version: str = "ocpp1.6") -> RawClient:
    client = await RawClient.open(f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{name}", version)
    if version == "ocpp1.6":
        boot = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
    else:
        boot = {"chargingStation": {"vendorName": "Acme", "model": "AC22"}, "reason": "PowerUp"}
    assert (await client.result("BootNotification", boot))["status"] == "Accepted"
    return client


async def status_16(client: RawClient, status: str, ts: str, connector: int = 1) -> None:
    payload = {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": ts}
    await client.result("StatusNotification", payload)


async def start_16(client: RawClient, ts: str, meter_wh: int = 1000, connector: int = 1) -> int:
    payload = {"connectorId": connector, "idTag": "TAG-1", "meterStart": meter_wh, "timestamp": ts}
    transaction_id: int = (await client.result("StartTransaction", payload))["transactionId"]
    return transaction_id


async def stop_16(client: RawClient, transaction_id: int, ts: str, meter_wh: int) -> None:
    payload = {"transactionId": transaction_id, "meterStop": meter_wh, "timestamp": ts, "reason": "EVDisconnected"}
    await client.result("StopTransaction", payload)


async def next_event(subscription: Subscription, kind: str, timeout: float = 5) -> Event:
    """The next event of ``kind`` (others are skipped)."""
    while True:
        event = await subscription.next(timeout)
        assert event is not None, f"no {kind} event"
        if event.kind == kind:
            return event


async def settled(system: CentralSystem) -> None:
    assert system.session_rules_loop is not None
    await system.session_rules_loop.settled()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
