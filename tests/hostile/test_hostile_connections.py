"""Peers that hold resources without playing along: slow handshakes, stations that stop reading, half-open links.

Each is cut off by a configurable limit (ocpp.open_timeout, ocpp.send_timeout, the keepalive ping) while a
well-behaved station on the same server keeps being served. Limits are set small so the tests finish quickly;
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from csms.config import OcppSettings, load_settings
from tests.conftest import make_settings
from tests.hostile.attack import assert_serves, booted, deafened, running, wait_until, ws_url
from tests.ocpp_client import RawClient

pytestmark = pytest.mark.timeout(60)


def _upgrade_request(port: int, identity: str, subprotocol: str) -> bytes:
    return (
        f"GET /ocpp/{identity} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
        "\r\n"
    ).encode()


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the server ends the TCP connection (EOF or reset) within ``timeout`` seconds."""
    try:
        while await asyncio.wait_for(reader.read(4096), timeout):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def test_slowloris_handshakes_are_cut_off_after_open_timeout(tmp_path: Path, subprotocol: str) -> None:
    """50 handshakes that never finish (one sent byte by byte) are dropped after open_timeout; others connect."""
    settings = make_settings(tmp_path, ocpp={"open_timeout": 1.0})
    async with running(settings) as system:
        port = system.ocpp_port
        request = _upgrade_request(port, "SLOW-0", subprotocol)
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        for index, (_, writer) in enumerate(stalled):
            writer.write(request[: 20 + index])  # a request line and part of the headers, never the end
        trickler_reader, trickler = await asyncio.open_connection("127.0.0.1", port)

        async def trickle() -> None:
            # One byte every 0.1 s: each byte arrives well within any per-read timeout, the whole never does.
            with contextlib.suppress(ConnectionError):
                for byte in request[:-2]:
                    trickler.write(bytes([byte]))
                    await trickler.drain()
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        # Real stations connect and are served while the slow handshakes hold their sockets.
        station = await booted(system, "GOOD-SLOW", subprotocol)
        await assert_serves(station)
        assert await _closed_by_server(trickler_reader, 10), "the trickling handshake was not cut off"
        assert not trickling.done(), "cut off before the request could complete, not after"
        trickling.cancel()
        for reader, _ in stalled:
            assert await _closed_by_server(reader, 10), "a stalled handshake was not cut off"
        for _, writer in [*stalled, (trickler_reader, trickler)]:
            writer.close()
        await assert_serves(station)
        await station.close()


async def test_station_that_stops_reading_is_cut_off_by_the_send_timeout(
    tmp_path: Path, subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A station that keeps sending CALLs but never reads the answers is aborted once a write stalls."""
    # No keepalive pings: the write deadline alone must free the connection.
    settings = make_settings(
        tmp_path, ocpp={"send_timeout": 0.5, "ping_interval": None, "write_limit": 4096, "max_queue": 4}
    )
    async with running(settings) as system:
        bystander = await booted(system, "GOOD-DEAF", subprotocol)
        deaf = await deafened(system, "DEAF-1", subprotocol)
        assert await wait_until(lambda: system.registry.get("DEAF-1") is None, 20), "still registered"
        assert any("peer stopped reading" in record.getMessage() for record in caplog.records)
        await assert_serves(bystander)
        deaf.transport.abort()
        # The station may come back and is served as before.
        again = await RawClient.open(ws_url(system, "DEAF-1"), subprotocol)
        await assert_serves(again)
        await again.close()
        await bystander.close()


@pytest.mark.parametrize("source", ["built-in defaults", "config/csms.toml"])
def test_default_keepalive_frees_a_half_open_connection_within_90_seconds(source: str) -> None:
    """Anchor test #12: the worst case is a peer vanishing just after a pong; the next ping goes out ping_interval
    later, its pong is awaited ping_timeout, and the closing handshake close_timeout (the test below shows the
    three settings are what frees the connection)."""
    repo = Path(__file__).resolve().parents[2]
    ocpp = OcppSettings() if source == "built-in defaults" else load_settings(repo / "config" / "csms.toml").ocpp
    assert ocpp.ping_interval is not None and ocpp.ping_timeout is not None
    assert ocpp.ping_interval + ocpp.ping_timeout + ocpp.close_timeout <= 90


async def test_half_open_connection_is_freed_by_keepalive(tmp_path: Path, subprotocol: str) -> None:
    """A peer that vanished without a FIN (answers no ping, sends nothing) is detected and its session freed."""
    settings = make_settings(tmp_path, ocpp={"ping_interval": 0.3, "ping_timeout": 0.3, "close_timeout": 0.5})
    async with running(settings) as system:
        bystander = await booted(system, "GOOD-GONE", subprotocol)
        ghost = await booted(system, "GHOST-1", subprotocol)
        session = system.registry.get("GHOST-1")
        assert session is not None
        # Stop processing input entirely: no pong, no close frame, no FIN; the socket stays open on our side.
        ghost.connection.transport.pause_reading()
        assert await wait_until(lambda: system.registry.get("GHOST-1") is None, 15), "half-open session kept"
        close_sent = session.connection.protocol.close_sent
        assert close_sent is not None and close_sent.code == 1011, close_sent  # websockets: keepalive ping timeout
        await assert_serves(bystander)
        ghost.connection.transport.abort()
        await ghost.close()
        # The same station reconnects at once and is served.
        again = await RawClient.open(ws_url(system, "GHOST-1"), subprotocol)
        await assert_serves(again)
        await again.close()
        await bystander.close()
