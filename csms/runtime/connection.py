"""The charger connection: a websockets ``ServerConnection`` whose writes have a deadline.

websockets applies flow control to every write: once ``write_limit`` bytes wait for a peer that stopped reading,
``send`` (and the keepalive ``ping``) wait in ``drain()`` with no time limit, so neither the keepalive timeout nor
the close timeout ever fires and the connection, its buffers and the task serving it live for as long as the
peer's TCP stack keeps the window shut. Here a write that has not drained within ``send_timeout`` aborts the
transport: the peer is cut off, ``send`` raises ``ConnectionClosed`` like any other lost connection, and the
read loop and the registry clean up as after a disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable
from typing import ClassVar

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.typing import Data

__all__ = ["StationConnection", "with_send_timeout"]

log = structlog.get_logger(__name__)

DataLike = Data | bytearray | memoryview


class StationConnection(ServerConnection):
    """A server connection that aborts when one write takes longer than ``send_timeout`` seconds."""

    send_timeout: ClassVar[float] = 10.0

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        text: bool | None = None,
    ) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await super().send(message, text=text)
        except TimeoutError:
            log.warning("peer stopped reading: connection aborted", send_timeout=self.send_timeout)
            # abort() drops the unsent buffer and calls connection_lost(), which cancels the keepalive
            # (possibly stuck in drain too) and wakes every waiter with ConnectionClosed.
            self.transport.abort()
            await asyncio.shield(self.connection_lost_waiter)
            raise self.close_exc from None


def with_send_timeout(seconds: float) -> type[StationConnection]:
    """A :class:`StationConnection` class with the given write deadline, for ``serve(create_connection=...)``."""

    class _Bounded(StationConnection):
        send_timeout = seconds

    return _Bounded
