"""Baseline OCPP server: the bare ``ocpp`` 2.1.0 library with its default settings, no storage.

Default settings means ``ocpp.messages.ASYNC_VALIDATION`` left at its default (True: every schema
validation runs through ``run_in_executor``) and schema validation on for every handler.

Usage: ``python -m benchmarks.baseline_server --port P`` (0 = any free port); prints ``READY <port>``
once listening, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16, call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import ChargePoint as ChargePoint201, call_result as r201
from ocpp.v201.enums import Action as A201
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

_transaction_ids = itertools.count(1)


class BaselineChargePoint16(ChargePoint16):  # type: ignore[misc]
    """OCPP 1.6 handlers; plain library defaults (threaded schema validation both ways)."""

    @on(A16.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> r16.BootNotification:
        return r16.BootNotification(current_time=utc_now_z(), interval=300, status="Accepted")

    @on(A16.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **kwargs: Any) -> r16.Heartbeat:
        return r16.Heartbeat(current_time=utc_now_z())

    @on(A16.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> r16.StatusNotification:
        return r16.StatusNotification()

    @on(A16.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kwargs: Any) -> r16.MeterValues:
        return r16.MeterValues()

    @on(A16.authorize)  # type: ignore[untyped-decorator]
    def on_authorize(self, id_tag: str, **kwargs: Any) -> r16.Authorize:
        return r16.Authorize(id_tag_info={"status": "Accepted"})

    @on(A16.start_transaction)  # type: ignore[untyped-decorator]
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> r16.StartTransaction:
        return r16.StartTransaction(transaction_id=next(_transaction_ids), id_tag_info={"status": "Accepted"})

    @on(A16.stop_transaction)  # type: ignore[untyped-decorator]
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> r16.StopTransaction:
        return r16.StopTransaction()


class BaselineChargePoint201(ChargePoint201):  # type: ignore[misc]
    """Minimal OCPP 2.0.1 handlers (not used by the load, kept so both subprotocols work)."""

    @on(A201.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **kwargs: Any
    ) -> r201.BootNotification:
        return r201.BootNotification(current_time=utc_now_z(), interval=300, status="Accepted")

    @on(A201.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **kwargs: Any) -> r201.Heartbeat:
        return r201.Heartbeat(current_time=utc_now_z())

    @on(A201.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **kwargs: Any
    ) -> r201.StatusNotification:
        return r201.StatusNotification()


async def handler(conn: ServerConnection) -> None:
    if conn.subprotocol is None:
        await conn.close(1002, "no supported OCPP subprotocol")
        return
    cls = BaselineChargePoint16 if conn.subprotocol == "ocpp1.6" else BaselineChargePoint201
    cp = cls(conn.cs_id, conn, response_timeout=30)  # type: ignore[attr-defined]
    try:
        await cp.start()
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


def cli(argv: list[str] | None = None, *, description: str = "", variants: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 = any free port")
    if variants:
        parser.add_argument(
            "--validation",
            choices=["thread", "inline", "off"],
            default="thread",
            help="analysis only: thread = library default (the baseline); inline = ASYNC_VALIDATION=False; "
            "off = no schema validation",
        )
    return parser.parse_args(argv)


def set_validation(mode: str) -> None:
    """Analysis variants; the baseline proper is 'thread' (nothing changed)."""
    import ocpp.charge_point
    import ocpp.messages

    if mode == "inline":
        ocpp.messages.ASYNC_VALIDATION = False
    elif mode == "off":

        async def no_validation(message: Any, ocpp_version: str) -> None:
            return None

        ocpp.charge_point.validate_payload = no_validation


if __name__ == "__main__":
    args = cli(description="Baseline OCPP server (bare ocpp library, default settings)", variants=True)
    set_validation(args.validation)
    raise_fd_limit()
    asyncio.run(main(args.host, args.port))
    sys.exit(0)
