"""'Raw' OCPP server, for scale: hand-written websockets + json, no validation, no storage.

Answers the same actions as the baseline with CALLRESULTs of the same shape.
Usage: ``python -m benchmarks.raw_server --port P``; prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from benchmarks._common import (
    PING_INTERVAL,
    PING_TIMEOUT,
    SUBPROTOCOLS,
    process_request,
    raise_fd_limit,
    select_subprotocol,
    utc_now_z,
)
from benchmarks.baseline_server import cli

_transaction_ids = itertools.count(1)
_ACCEPTED: dict[str, Any] = {"status": "Accepted"}


def _boot(payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": utc_now_z(), "interval": 300, "status": "Accepted"}


def _heartbeat(payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": utc_now_z()}


def _empty(payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def _authorize(payload: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": _ACCEPTED}


def _start_transaction(payload: dict[str, Any]) -> dict[str, Any]:
    return {"transactionId": next(_transaction_ids), "idTagInfo": _ACCEPTED}


HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _empty,
    "MeterValues": _empty,
    "Authorize": _authorize,
    "StartTransaction": _start_transaction,
    "StopTransaction": _empty,
}


def reply_to(raw: str | bytes) -> str | None:
    """The reply frame for one inbound frame, or None when nothing should be sent."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(msg, list) or len(msg) < 4 or msg[0] != 2:
        return None  # CALLRESULT / CALLERROR / junk: nothing to answer in a benchmark server
    _, unique_id, action, payload = msg[:4]
    handler = HANDLERS.get(action)
    if handler is None:
        return json.dumps([4, unique_id, "NotImplemented", f"{action} not implemented", {}])
    return json.dumps([3, unique_id, handler(payload)], separators=(",", ":"))


async def handler(conn: ServerConnection) -> None:
    if conn.subprotocol is None:
        await conn.close(1002, "no supported OCPP subprotocol")
        return
    try:
        async for raw in conn:
            reply = reply_to(raw)
            if reply is not None:
                await conn.send(reply)
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler,
        host,
        port,
        subprotocols=SUBPROTOCOLS,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"READY {bound}", flush=True)
        await stop


if __name__ == "__main__":
    args = cli(description="Raw OCPP server (websockets + json, no validation, no storage)")
    raise_fd_limit()
    asyncio.run(main(args.host, args.port))
    sys.exit(0)
