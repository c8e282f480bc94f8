"""Fixtures for simulator tests: the fake CSMS on loopback and a station factory with cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import serve

from simulator.clock import SimClock
from simulator.station import SimStation
from tests.simulator.fake_csms import SUPPORTED, FakeCsms, select_subprotocol


@pytest.fixture
async def fake_csms() -> AsyncIterator[FakeCsms]:
    """A CSMS on 127.0.0.1 with an OS-assigned port; `csms.url` is the endpoint base."""
    test_csms = FakeCsms()
    async with serve(
        test_csms.handler,
        "127.0.0.1",
        0,
        subprotocols=SUPPORTED,  # type: ignore[arg-type]
        select_subprotocol=select_subprotocol,
        process_request=test_csms.process_request,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        test_csms.url = f"ws://127.0.0.1:{port}/ocpp"
        yield test_csms


StationFactory = Callable[..., Awaitable[SimStation]]


@pytest.fixture
async def make_station(fake_csms: FakeCsms) -> AsyncIterator[StationFactory]:
    """Start stations against the test CSMS (speed 60 by default) and stop them afterwards."""
    stations: list[SimStation] = []

    async def factory(
        identity: str, protocol: str, connectors: int = 1, *, speed: float = 60.0, wait: bool = True, **kw: Any
    ) -> SimStation:
        station = SimStation(
            identity,
            fake_csms.url,
            protocol,
            connectors,
            SimClock(speed),
            response_timeout=5.0,
            backoff_s=(0.05, 0.2),
            **kw,
        )
        stations.append(station)
        await station.start()
        if wait:
            await station.wait_connected(5.0)
        return station

    yield factory
    for station in stations:
        await station.stop()
