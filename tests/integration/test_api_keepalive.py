"""The HTTP API keeps an idle keep-alive connection longer than clients do, so a client never reuses one that the
server is closing at that moment (the request would be lost: httpx raises ReadError)."""

from __future__ import annotations

import asyncio

from csms.runtime.app import API_KEEP_ALIVE_SECONDS, CentralSystem

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


async def _response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head


async def test_an_idle_keep_alive_connection_outlives_the_common_client_expiry(csms: CentralSystem) -> None:
    """Idle for 6 s (past uvicorn's own default of 5 s and httpx's keep-alive expiry), the same connection still
    serves the next request."""
    assert API_KEEP_ALIVE_SECONDS > 60
    reader, writer = await asyncio.open_connection("127.0.0.1", csms.api_port)
    try:
        writer.write(REQUEST)
        assert (await _response(reader)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(6)
        writer.write(REQUEST)
        assert (await _response(reader)).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
