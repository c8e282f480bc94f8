"""Shared pieces of the booking tests: a clock tests move, a server on it, raw chargers, API shortcuts."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from csms.runtime.app import CentralSystem
from csms.service.events import Event, Subscription
from tests.conftest import make_settings
from tests.http_api import admin_client, driver_account
from tests.ocpp_client import RawClient

__all__ = [
    "Api",
    "ManualClock",
    "RawStation",
    "iso",
    "running",
    "wait_until",
]

SMART = {"debounce_seconds": 0.01, "tick_seconds": 3600, "settle_seconds": 0}
BOOKINGS = {"lead_time_minutes": 15, "no_show_grace_minutes": 15, "tick_seconds": 3600, "retry_seconds": 60}


class ManualClock:
    """The central system's clock in these tests: it moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or datetime.now(UTC)).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def wait_until(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any], timeout: float = 5.0, what: str = "condition"
) -> Any:
    """Poll ``check`` (plain or async) until it returns something true, and return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def value() -> Any:
        result = check()
        return await result if inspect.isawaitable(result) else result

    while not (result := await value()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return result


class running:
    """``async with running(tmp_path, clock) as system``: a central system on the manual clock."""

    def __init__(self, tmp_path: Path, clock: ManualClock, **sections: dict[str, object]) -> None:
        sections.setdefault("smart_charging", SMART)
        sections.setdefault("bookings", BOOKINGS)
        self.system = CentralSystem(make_settings(tmp_path, **sections), clock=clock)

    async def __aenter__(self) -> CentralSystem:
        await self.system.start()
        return self.system

    async def __aexit__(self, *exc: object) -> None:
        await self.system.stop()


class Api:
    """Admin API calls that must succeed, and the booking event stream."""

    def __init__(self, system: CentralSystem) -> None:
        self.system = system
        self.http = admin_client(system.api_port)
        self.events: Subscription = system.events.subscribe(lambda e: e.kind.startswith("booking."))
        self.seen: list[Event] = []

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.close()
        await self.http.aclose()

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    async def site(self, site: str, stations: dict[str, int], amps: float = 16, limit_a: float = 100) -> None:
        """A site with its stations wired three-phase at ``amps``; each station's EVSEs get a Type2 spec."""
        await self.call("POST", "/grid-nodes", 201, json={"id": site, "max_current_a": limit_a})
        for station, evses in stations.items():
            await self.call("PUT", f"/stations/{station}/wiring", json={"node_id": site, "max_current_a": amps})
            for evse in range(1, evses + 1):
                body = {"connector_type": "Type2"}
                await self.call("PUT", f"/stations/{station}/connectors/{evse}/1/spec", json=body)

    async def driver_token(self, token: str, account: str) -> None:
        """The token, owned by the driver account (created on first use)."""
        response = await self.http.post("/accounts", json=driver_account(account))
        assert response.status_code in (201, 409), response.text
        await self.call("PUT", f"/id-tokens/{token}", json={"owner": account})

    async def book(self, status: int = 201, **body: Any) -> Any:
        return await self.call("POST", "/bookings", status, json=body)

    async def booking(self, booking_id: int) -> Any:
        return await self.call("GET", f"/bookings/{booking_id}")

    async def settle(self) -> None:
        """Let the booking timers handle everything queued and due at the clock's time."""
        timers = self.system.booking_timers
        assert timers is not None
        await asyncio.sleep(0)
        timers.poke()
        await asyncio.wait_for(timers.settled(), 10)

    async def advance(self, clock: ManualClock, delta: timedelta) -> None:
        clock.advance(delta)
        await self.settle()

    async def event(self, kind: str, timeout: float = 5.0) -> Event:
        """The next booking event of ``kind`` (earlier ones of other kinds are kept in ``seen``)."""
        for event in self.seen:
            if event.kind == kind:
                self.seen.remove(event)
                return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            event = await self.events.next(remaining)
            if event is None:
                break
            if event.kind == kind:
                return event
            self.seen.append(event)
        raise AssertionError(f"no {kind} event; saw {[e.kind for e in self.seen]}")


@dataclass
class RawStation:
    """A raw charger whose answers to each action the test sets; it remembers every CALL it got."""

    name: str
    version: str = "ocpp1.6"
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    client: RawClient | None = None

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action in self.answers:
            return self.answers[action]
        if action == "GetConfiguration":
            return {"configurationKey": [], "unknownKey": payload.get("key", [])}
        if action == "GetVariables":
            return {
                "getVariableResult": [
                    {"attributeStatus": "UnknownVariable", "component": d["component"], "variable": d["variable"]}
                    for d in payload["getVariableData"]
                ]
            }
        return {"status": "Accepted"}

    def calls(self, action: str) -> list[dict[str, Any]]:
        assert self.client is not None
        return [payload for name, payload in self.client.received_calls if name == action]

    async def connect(self, system: CentralSystem, evses: int = 1) -> RawStation:
        url = f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{self.name}"
        self.client = await RawClient.open(url, self.version, answer=self.answer)
        if self.version == "ocpp1.6":
            boot = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
        else:
            boot = {"chargingStation": {"vendorName": "Acme", "model": "AC22"}, "reason": "PowerUp"}
        assert (await self.client.result("BootNotification", boot))["status"] == "Accepted"
        for evse in range(1, evses + 1):
            await self.status(evse, "Available")
        return self

    async def status(self, evse: int, status: str) -> None:
        assert self.client is not None
        when = iso(datetime.now(UTC))
        if self.version == "ocpp1.6":
            payload = {"connectorId": evse, "status": status, "errorCode": "NoError", "timestamp": when}
        else:
            payload = {"timestamp": when, "connectorStatus": status, "evseId": evse, "connectorId": 1}
        await self.client.result("StatusNotification", payload)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
