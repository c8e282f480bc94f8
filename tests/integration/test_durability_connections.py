"""Dead and churning charger connections are freed: keepalive finds half-open peers, nothing leaks after churn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.resilience.light import LightStation, reset
from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.ocpp_client import RawClient

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}


@pytest.fixture
async def keepalive_csms(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    """A central system that pings every 0.5 s and gives up on a peer after 0.5 s more (and 0.5 s to close)."""
    settings = make_settings(tmp_path, ocpp={"ping_interval": 0.5, "ping_timeout": 0.5, "close_timeout": 0.5})
    system = CentralSystem(settings)
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


async def eventually(condition: Callable[[], bool], within: float = 20.0) -> bool:
    """Poll ``condition`` until it holds; False if it still does not after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def silent_station(system: CentralSystem, identity: str) -> ClientConnection:
    """A booted 1.6 station that then never reads again: no pongs, no close frame, no FIN."""
    connection = await connect(
        f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{identity}",
        subprotocols=["ocpp1.6"],
        ping_interval=None,  # type: ignore[list-item]
    )
    client = RawClient(connection)
    assert (await client.result("BootNotification", BOOT))["status"] == "Accepted"
    client._reader.cancel()
    connection.transport.pause_reading()
    return connection


def server_sockets_to(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp") if c.laddr and c.raddr and c.raddr.port == port)


async def test_half_open_connection_is_freed_by_the_keepalive(keepalive_csms: CentralSystem) -> None:
    """A peer that stops answering is dropped by the ping timeout: its session and its socket are freed."""
    connection = await silent_station(keepalive_csms, "HALF-OPEN-1")
    client_port = connection.transport.get_extra_info("sockname")[1]
    assert keepalive_csms.registry.get("HALF-OPEN-1") is not None
    try:
        assert await eventually(lambda: keepalive_csms.registry.get("HALF-OPEN-1") is None)
        # The server's end of the socket is closed too (only the client's end, still open here, may remain).
        assert await eventually(lambda: server_sockets_to(client_port) == 0)
    finally:
        connection.transport.abort()


async def test_reconnect_while_the_old_connection_is_half_open_is_served_at_once(csms: CentralSystem) -> None:
    """A station whose old connection is half-open reconnects and is answered without waiting for the old close."""
    old = await silent_station(csms, "HALF-OPEN-2")
    try:
        again = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/HALF-OPEN-2", "ocpp1.6")
        # Before the fix the new session waited for the old peer's close frame (10 s, longer than this reply's 5 s).
        assert (await again.result("BootNotification", BOOT))["status"] == "Accepted"
        assert (await again.call("Heartbeat", {}))[0] == 3
        assert csms.registry.get("HALF-OPEN-2") is not None and len(csms.registry) == 1
        await again.close()
    finally:
        old.transport.abort()


async def test_churn_with_dirty_disconnects_leaks_no_session_task_or_socket(csms: CentralSystem) -> None:
    """After connect/boot/heartbeat/disconnect cycles, half ended by a TCP reset, sessions, tasks and fds are back."""

    async def cycle(n: int) -> None:
        station = LightStation(
            f"CHURN-{n:03d}", "1.6" if n % 4 < 2 else "2.0.1", f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
        )
        connection = await station.connect_and_boot(ping_interval=None)
        await station.heartbeat()
        if n % 2:
            reset(connection)  # dirty: RST, no close frame
            await connection.wait_closed()
        else:
            await connection.close()

    await asyncio.gather(*(cycle(n) for n in range(4)))  # warm-up: lazily created state is not a leak
    assert await eventually(lambda: len(csms.registry) == 0)
    await asyncio.sleep(0.2)
    # Sockets, not every descriptor: the database pool may open more SQLite connections (3 files each, bounded by
    # its size) when reads overlap on a loaded machine, which is not a leak and made this check flaky.
    tasks, sockets = len(asyncio.all_tasks()), _tcp_sockets()
    for start in range(0, 60, 20):
        await asyncio.gather(*(cycle(n) for n in range(start, start + 20)))
    assert await eventually(lambda: len(csms.registry) == 0)
    back = await eventually(lambda: len(asyncio.all_tasks()) <= tasks and _tcp_sockets() <= sockets, 60)
    left = sorted(task.get_name() for task in asyncio.all_tasks())
    assert back, f"tasks {len(left)} (were {tasks}): {left}; TCP sockets {_tcp_sockets()} (were {sockets})"


def _tcp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="tcp"))
