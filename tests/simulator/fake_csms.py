"""A tiny test-only CSMS (both OCPP versions, loopback only) that records every CALL it receives."""

from __future__ import annotations

import asyncio
import base64
import http
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16, call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import ChargePoint as CP201, call_result as r201
from ocpp.v201.enums import Action as A201
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

SUPPORTED = ["ocpp2.0.1", "ocpp1.6"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Received:
    identity: str
    action: str
    payload: dict[str, Any]


class FakeCsms:
    """Records CALLs, answers them plausibly, and lets tests call stations."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self.connections: dict[str, Any] = {}
        self.boot_statuses: dict[str, list[str]] = {}
        self.auth: dict[str, str] = {}
        self.heartbeat_interval = 300
        self.tx_ids = itertools.count(1000)
        self.connect_count: dict[str, int] = {}
        self.passwords: dict[str, str] = {}
        self.auth_headers: list[tuple[str, str | None]] = []
        self._changed = asyncio.Event()

    def record(self, identity: str, raw: str) -> None:
        msg = json.loads(raw)
        if isinstance(msg, list) and msg and msg[0] == 2:
            self.received.append(Received(identity, msg[2], msg[3]))
            self._changed.set()

    def of(self, identity: str, action: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.received if m.identity == identity and m.action == action]

    def of_any(self, action: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.received if m.action == action]

    def actions(self, identity: str) -> list[str]:
        return [m.action for m in self.received if m.identity == identity]

    async def wait_for(
        self,
        identity: str,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 5.0,
        count: int = 1,
    ) -> dict[str, Any]:
        """The `count`-th matching payload, waiting up to `timeout` real seconds."""

        async def wait() -> dict[str, Any]:
            while True:
                found = [p for p in self.of(identity, action) if predicate(p)]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def call(self, identity: str, payload: Any, timeout: float = 5.0) -> Any:
        """Send a CALL to a connected station; raises on CALLERROR or invalid answers."""
        cp = self.connections[identity]
        return await asyncio.wait_for(cp.call(payload, suppress=False), timeout)

    def boot_status(self, identity: str) -> str:
        queue = self.boot_statuses.get(identity)
        return queue.pop(0) if queue else "Accepted"

    def process_request(self, conn: ServerConnection, request: Any) -> Any:
        """Basic auth as in OCPP security profile 1: username = identity, password per station."""
        identity = unquote(urlsplit(request.path).path.rstrip("/").rsplit("/", 1)[-1])
        header = request.headers.get("Authorization")
        self.auth_headers.append((identity, header))
        expected = self.passwords.get(identity)
        if expected is None:
            return None
        token = "Basic " + base64.b64encode(f"{identity}:{expected}".encode()).decode()
        if header != token:
            return conn.respond(http.HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def handler(self, conn: ServerConnection) -> None:
        if conn.subprotocol is None:
            await conn.close(1002, "no supported OCPP subprotocol")
            return
        assert conn.request is not None
        identity = unquote(urlsplit(conn.request.path).path.rstrip("/").rsplit("/", 1)[-1])
        cls = Csms16 if conn.subprotocol == "ocpp1.6" else Csms201
        cp = cls(identity, conn, self)
        self.connections[identity] = cp
        self.connect_count[identity] = self.connect_count.get(identity, 0) + 1
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(identity) is cp:
                del self.connections[identity]


class _Recording:
    csms: FakeCsms
    id: str

    async def route_message(self, raw_msg: str) -> None:
        self.csms.record(self.id, raw_msg)
        await super().route_message(raw_msg)  # type: ignore[misc]


class Csms16(_Recording, CP16):
    def __init__(self, identity: str, conn: ServerConnection, csms: FakeCsms) -> None:
        super().__init__(identity, conn, response_timeout=5)
        self.csms = csms

    @on(A16.boot_notification)
    def boot(self, **_: Any) -> Any:
        return r16.BootNotification(
            current_time=now(), interval=self.csms.heartbeat_interval, status=self.csms.boot_status(self.id)
        )

    @on(A16.heartbeat)
    def hb(self, **_: Any) -> Any:
        return r16.Heartbeat(current_time=now())

    @on(A16.status_notification)
    def status(self, **_: Any) -> Any:
        return r16.StatusNotification()

    @on(A16.authorize)
    def authorize(self, id_tag: str, **_: Any) -> Any:
        return r16.Authorize(id_tag_info={"status": self.csms.auth.get(id_tag, "Accepted")})

    @on(A16.start_transaction)
    def start_tx(self, id_tag: str, **_: Any) -> Any:
        return r16.StartTransaction(
            transaction_id=next(self.csms.tx_ids), id_tag_info={"status": self.csms.auth.get(id_tag, "Accepted")}
        )

    @on(A16.stop_transaction)
    def stop_tx(self, **_: Any) -> Any:
        return r16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(A16.meter_values)
    def meter(self, **_: Any) -> Any:
        return r16.MeterValues()

    @on(A16.data_transfer)
    def data_transfer(self, **_: Any) -> Any:
        return r16.DataTransfer(status="Accepted")

    @on(A16.firmware_status_notification)
    def fw(self, **_: Any) -> Any:
        return r16.FirmwareStatusNotification()

    @on(A16.diagnostics_status_notification)
    def diag(self, **_: Any) -> Any:
        return r16.DiagnosticsStatusNotification()

    @on(A16.security_event_notification)
    def sec(self, **_: Any) -> Any:
        return r16.SecurityEventNotification()

    @on(A16.log_status_notification)
    def log(self, **_: Any) -> Any:
        return r16.LogStatusNotification()

    @on(A16.signed_firmware_status_notification)
    def signed_fw(self, **_: Any) -> Any:
        return r16.SignedFirmwareStatusNotification()


class Csms201(_Recording, CP201):
    def __init__(self, identity: str, conn: ServerConnection, csms: FakeCsms) -> None:
        super().__init__(identity, conn, response_timeout=5)
        self.csms = csms

    @on(A201.boot_notification)
    def boot(self, **_: Any) -> Any:
        return r201.BootNotification(
            current_time=now(), interval=self.csms.heartbeat_interval, status=self.csms.boot_status(self.id)
        )

    @on(A201.heartbeat)
    def hb(self, **_: Any) -> Any:
        return r201.Heartbeat(current_time=now())

    @on(A201.status_notification)
    def status(self, **_: Any) -> Any:
        return r201.StatusNotification()

    @on(A201.authorize)
    def authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return r201.Authorize(id_token_info={"status": self.csms.auth.get(id_token["id_token"], "Accepted")})

    @on(A201.transaction_event)
    def tx_event(self, event_type: str, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        if id_token is not None:
            status = self.csms.auth.get(id_token["id_token"], "Accepted")
            return r201.TransactionEvent(id_token_info={"status": status})
        return r201.TransactionEvent()

    @on(A201.meter_values)
    def meter(self, **_: Any) -> Any:
        return r201.MeterValues()

    @on(A201.notify_report)
    def notify_report(self, **_: Any) -> Any:
        return r201.NotifyReport()

    @on(A201.notify_event)
    def notify_event(self, **_: Any) -> Any:
        return r201.NotifyEvent()

    @on(A201.notify_charging_limit)
    def notify_limit(self, **_: Any) -> Any:
        return r201.NotifyChargingLimit()

    @on(A201.cleared_charging_limit)
    def cleared_limit(self, **_: Any) -> Any:
        return r201.ClearedChargingLimit()

    @on(A201.notify_ev_charging_needs)
    def needs(self, **_: Any) -> Any:
        return r201.NotifyEVChargingNeeds(status="Accepted")

    @on(A201.report_charging_profiles)
    def report_profiles(self, **_: Any) -> Any:
        return r201.ReportChargingProfiles()

    @on(A201.reservation_status_update)
    def reservation(self, **_: Any) -> Any:
        return r201.ReservationStatusUpdate()

    @on(A201.firmware_status_notification)
    def fw(self, **_: Any) -> Any:
        return r201.FirmwareStatusNotification()

    @on(A201.log_status_notification)
    def log(self, **_: Any) -> Any:
        return r201.LogStatusNotification()

    @on(A201.security_event_notification)
    def sec(self, **_: Any) -> Any:
        return r201.SecurityEventNotification()

    @on(A201.notify_customer_information)
    def customer(self, **_: Any) -> Any:
        return r201.NotifyCustomerInformation()

    @on(A201.data_transfer)
    def data_transfer(self, **_: Any) -> Any:
        return r201.DataTransfer(status="Accepted")


def select_subprotocol(conn: ServerConnection, offered: Any) -> Any:
    return next((p for p in SUPPORTED if p in offered), None)
