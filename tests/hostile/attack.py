"""Shared pieces of the hostile-input tests: booted raw stations, hand-made websocket frames, bounded waits."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Opcode
from websockets.typing import Subprotocol
from websockets.utils import apply_mask

from csms.config import Settings
from csms.runtime.app import CentralSystem
from tests.ocpp_client import RawClient, now_iso

__all__ = [
    "BOOT",
    "SUBPROTOCOLS",
    "invalid_json_code",
    "MemoryProbe",
    "assert_serves",
    "booted",
    "deafened",
    "masked_frame",
    "measure_memory",
    "running",
    "status_payload",
    "wait_until",
    "ws_url",
]

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
BOOT: dict[str, dict[str, Any]] = {
    "ocpp1.6": {"chargePointVendor": "Acme", "chargePointModel": "AC22"},
    "ocpp2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "AC22", "vendorName": "Acme"}},
}


def status_payload(subprotocol: str, **overrides: Any) -> dict[str, Any]:
    if subprotocol == "ocpp1.6":
        return {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": now_iso(), **overrides}
    return {"timestamp": now_iso(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1, **overrides}


def ws_url(system: CentralSystem, identity: str) -> str:
    return f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{identity}"


async def booted(system: CentralSystem, identity: str, subprotocol: str, **kwargs: Any) -> RawClient:
    client = await RawClient.open(ws_url(system, identity), subprotocol, **kwargs)
    assert (await client.result("BootNotification", BOOT[subprotocol]))["status"] == "Accepted"
    return client


async def deafened(system: CentralSystem, identity: str, subprotocol: str) -> ClientConnection:
    """A booted station that then stops reading while flooding CALLs, until every buffer towards it is full.

    Small kernel buffers at both ends stand in for a slow network (loopback otherwise buffers megabytes).
    Each CALL names an unknown action of 250 characters and earns a CALLERROR of ~300 bytes.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", system.ocpp_port))
    deaf = await connect(ws_url(system, identity), sock=sock, subprotocols=[Subprotocol(subprotocol)], compression=None)
    await deaf.send(json.dumps([2, "boot", "BootNotification", BOOT[subprotocol]]))
    assert '"Accepted"' in str(await deaf.recv())
    session = system.registry.get(identity)
    assert session is not None
    session.connection.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    deaf.transport.pause_reading()
    frame = masked_frame(('[2,"x","' + "A" * 250 + '",{}]').encode())
    for _ in range(3000):
        deaf.transport.write(frame)
    return deaf


async def assert_serves(client: RawClient) -> None:
    """The connection answers a Heartbeat with a CALLRESULT carrying a UTC time."""
    reply = await client.call("Heartbeat", {}, timeout=10)
    assert reply[0] == 3, reply
    assert reply[2]["currentTime"].endswith("Z")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[CentralSystem]:
    system = CentralSystem(settings)
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


def masked_frame(payload: bytes, opcode: Opcode = Opcode.TEXT, rsv1: bool = False) -> bytes:
    """One final client->server frame exactly as given (RFC 6455 §5.2), for writing straight to the transport.

    Built by hand because websockets refuses to serialize a frame with RSV1 set outside its deflate extension,
    and the deflate bomb must carry already-compressed bytes.
    """
    header = bytearray([0x80 | (0x40 if rsv1 else 0) | opcode.value])
    length = len(payload)
    if length < 126:
        header.append(0x80 | length)
    elif length < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    return bytes(header) + mask + apply_mask(payload, mask)


def invalid_json_code(subprotocol: str) -> str:
    """The CALLERROR code each version gives a frame that is not JSON."""
    return "FormationViolation" if subprotocol == "ocpp1.6" else "RpcFrameworkError"


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; bounded in time and count."""
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


@dataclass
class MemoryProbe:
    """Python heap figures from tracemalloc (server and test client share the process)."""

    baseline: int = 0
    peak: int = 0
    end: int = 0
    samples: list[int] = field(default_factory=list)

    @property
    def peak_growth(self) -> int:
        return self.peak - self.baseline

    @property
    def growth(self) -> int:
        return self.end - self.baseline


@contextmanager
def measure_memory() -> Iterator[MemoryProbe]:
    """Trace allocations inside the block: baseline and end after a full collection, and the peak."""
    probe = MemoryProbe()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        probe.baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield probe
        probe.peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        probe.end = tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()
