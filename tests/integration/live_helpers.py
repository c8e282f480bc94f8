"""Helpers for the availability, event-stream and analytics tests: an SSE reader and a raw 1.6 charger."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from csms.runtime.app import CentralSystem
from tests.http_api import ADMIN_HEADERS
from tests.ocpp_client import RawClient

__all__ = ["SseEvent", "SseStream", "api", "charger_16", "iso", "open_stream", "settles_to", "status_16"]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SseEvent:
    id: int | None
    kind: str
    data: dict[str, Any]


@dataclass
class SseStream:
    """One open ``GET /events`` response, parsed into events; comments are counted."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def next(self, timeout: float = 5.0) -> SseEvent | None:
        """The next event, or None when the stream ended."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SseEvent | None:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    return SseEvent(
                        int(fields["id"]) if "id" in fields else None,
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        return None

    async def until(self, kind: str, timeout: float = 5.0, **match: Any) -> SseEvent:
        """Skip events until one of ``kind`` whose data has the ``match`` values."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next(max(0.01, deadline - loop.time()))
            assert event is not None, f"stream ended before a {kind} event"
            if event.kind == kind and all(event.data["data"].get(k) == v for k, v in match.items()):
                return event

    async def kinds_within(self, seconds: float) -> list[str]:
        """The kinds of every event that arrives within ``seconds``."""
        return [event.kind for event in await self.events_within(seconds)]

    async def events_within(self, seconds: float) -> list[SseEvent]:
        """Every event that arrives within ``seconds`` (fewer if the stream ends)."""
        events: list[SseEvent] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while (event := await self._next()) is not None:
                    events.append(event)
        return events


@contextlib.asynccontextmanager
async def open_stream(
    system: CentralSystem, headers: dict[str, str] | None = None, params: dict[str, Any] | None = None
) -> AsyncIterator[SseStream]:
    """``GET /api/v1/events``, yielded once the stream is open (the server has subscribed)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.api_port}/api/v1", timeout=10) as client:
        async with client.stream("GET", "/events", headers=headers or ADMIN_HEADERS, params=params) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = SseStream(response)
            yield stream


async def api(system: CentralSystem, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{system.api_port}/api/v1", headers=headers or ADMIN_HEADERS, timeout=10
    ) as client:
        return await client.request(method, path, **kw)


async def charger_16(system: CentralSystem, name: str) -> RawClient:
    """A raw 1.6 charger, booted and accepted."""
    client = await RawClient.open(f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{name}", "ocpp1.6")
    boot = await client.result("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "AC22"})
    assert boot["status"] == "Accepted"
    return client


async def status_16(client: RawClient, connector: int, status: str, at: datetime, error: str = "NoError") -> None:
    payload = {"connectorId": connector, "status": status, "errorCode": error, "timestamp": iso(at)}
    assert await client.result("StatusNotification", payload) == {}


async def settles_to(read: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 5.0) -> None:
    """Poll ``read`` until it returns ``expected``; fail with the last value after ``timeout`` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await read()) != expected:
        assert loop.time() < deadline, f"still {value!r}, expected {expected!r}"
        await asyncio.sleep(0.05)
