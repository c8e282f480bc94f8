"""Lightweight raw OCPP-J stations for thousands of connections in one process: connect, boot, call, hang up.

No outbox and no reader task: a station sends one CALL and reads until its answer arrives (answering any CALL
of the CSMS on the way); websocket pings are answered by the protocol layer whenever data arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from benchmarks._common import utc_now_z

__all__ = ["CallFailed", "LightStation", "Version", "boot_payload", "percentile", "reset", "version_of"]

Version = Literal["1.6", "2.0.1"]
ENERGY = "Energy.Active.Import.Register"
# What a failed connect or call raises; callers count these as errors of the run.
FAILURES = (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, asyncio.TimeoutError)


class CallFailed(Exception):
    """A CALL answered with a CALLERROR, or a boot that was not accepted."""


def version_of(n: int) -> Version:
    """The n-th station's OCPP version in a mixed fleet: even 1.6, odd 2.0.1."""
    return "1.6" if n % 2 == 0 else "2.0.1"


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def boot_payload(version: Version) -> dict[str, Any]:
    if version == "1.6":
        return {"chargePointVendor": "Faults", "chargePointModel": "Light"}
    return {"chargingStation": {"vendorName": "Faults", "model": "Light"}, "reason": "PowerUp"}


def reset(connection: ClientConnection) -> None:
    """Drop the connection the dirty way: TCP RST, no close frame (SO_LINGER 0, then abort)."""
    sock = connection.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.transport.abort()


@dataclass
class LightStation:
    identity: str
    version: Version
    url: str
    open_timeout: float = 10.0
    call_timeout: float = 30.0
    connection: ClientConnection | None = None
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def connect(self, **kwargs: Any) -> ClientConnection:
        self.connection = await connect(
            f"{self.url}/{self.identity}",
            subprotocols=[Subprotocol(f"ocpp{self.version}")],
            open_timeout=self.open_timeout,
            **kwargs,
        )
        return self.connection

    async def boot(self) -> None:
        result = await self.call("BootNotification", boot_payload(self.version))
        if result.get("status") != "Accepted":
            raise CallFailed(f"boot {result.get('status')}")

    async def connect_and_boot(self, **kwargs: Any) -> ClientConnection:
        connection = await self.connect(**kwargs)
        try:
            await self.boot()
        except BaseException:
            await connection.close()
            raise
        return connection

    async def heartbeat(self) -> None:
        await self.call("Heartbeat", {})

    async def meter_values(self, energy_wh: int) -> None:
        at = utc_now_z()
        if self.version == "1.6":
            sampled16 = {"value": str(energy_wh), "measurand": ENERGY, "unit": "Wh"}
            reading16 = [{"timestamp": at, "sampledValue": [sampled16]}]
            await self.call("MeterValues", {"connectorId": 1, "meterValue": reading16})
        else:
            reading = [{"timestamp": at, "sampledValue": [{"value": energy_wh, "measurand": ENERGY}]}]
            await self.call("MeterValues", {"evseId": 1, "meterValue": reading})

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL and return its CALLRESULT payload; the round trip goes to ``latencies``."""
        assert self.connection is not None
        connection = self.connection
        message_id = str(next(self._ids))
        began = time.monotonic()
        await connection.send(orjson.dumps([2, message_id, action, payload]).decode())
        async with asyncio.timeout(self.call_timeout):
            while True:
                frame = orjson.loads(await connection.recv())
                if frame[0] == 2:
                    await connection.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
                elif frame[1] == message_id:
                    break
        self.latencies.append(time.monotonic() - began)
        if frame[0] != 3:
            raise CallFailed(f"{action}: {frame}")
        result: dict[str, Any] = frame[2]
        return result

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
