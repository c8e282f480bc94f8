"""A durable charging station for kill -9 runs: an offline outbox, strict FIFO, and a record of every answer.

Each station runs transactions back to back (1.6: StartTransaction, MeterValues, StopTransaction; 2.0.1:
TransactionEvent Started, Updated with a reading, Ended), each followed by a reading outside any transaction (1.6
MeterValues without transactionId, 2.0.1 MeterValues), whether or not it is connected. Every event is stamped
with the charger's clock when it happens and queued; a sender drains the queue in order, one CALL at a time,
and a message leaves the queue only when it got a CALLRESULT. When the connection drops (the server was killed),
the unanswered message stays at the head: after reconnecting and booting, the station resends it unchanged,
then replays whatever queued up meanwhile, late, with the original timestamps (OCPP 1.6 §3.7, 2.0.1 E11-E13).

The record is the oracle: which messages were answered, with what (1.6 transactionIds), how often each was
sent, and which one was in flight when the server died.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

__all__ = ["DurableStation", "Message", "TxRecord", "Version", "wire_time"]

Version = Literal["1.6", "2.0.1"]
ENERGY = "Energy.Active.Import.Register"


def wire_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TxRecord:
    """One transaction as the charger knows it."""

    index: int
    charger_tx_id: str  # 2.0.1 transactionId; 1.6: our own label (the CSMS assigns the id)
    id_tag: str
    started_at: datetime
    meter_start: int
    readings: list[tuple[datetime, int]] = field(default_factory=list)
    stopped_at: datetime | None = None
    meter_stop: int | None = None
    transaction_id: int | None = None  # 1.6: the transactionId the CSMS answered
    start_answers: list[int] = field(default_factory=list)  # 1.6: every transactionId answered to its Start


@dataclass
class Message:
    """One CALL. ``build`` runs at the first send (a 1.6 id answered meanwhile is filled in), then the payload is
    frozen so every resend is the same message."""

    action: str
    kind: str  # start | meter | stop | idle (the oracle's name for its effect; idle: a reading outside a transaction)
    tx: TxRecord
    at: datetime  # the charger's timestamp of the event
    build: Callable[[], dict[str, Any]]
    offline: bool  # happened while the station was disconnected
    reading: int | None = None
    payload: dict[str, Any] | None = None
    sends: int = 0
    message_ids: list[str] = field(default_factory=list)  # of every send, oldest first
    result: dict[str, Any] | None = None
    answered_late_s: float | None = None  # seconds between the event and its answer

    def frozen_payload(self) -> dict[str, Any]:
        if self.payload is None:
            self.payload = self.build()
        return self.payload


class DurableStation:
    def __init__(
        self,
        identity: str,
        version: Version,
        url: str,
        *,
        rng: random.Random,
        interval: float = 0.05,
        meters_per_tx: int = 6,
        call_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.05, 0.4),
    ) -> None:
        self.identity = identity
        self.version: Version = version
        self.url = f"{url}/{identity}"
        self._rng = rng
        self._interval = interval
        self._meters = meters_per_tx
        self._call_timeout = call_timeout
        self._backoff = backoff
        self.outbox: deque[Message] = deque()
        self.messages: list[Message] = []
        self.transactions: list[TxRecord] = []
        self.in_flight: Message | None = None  # sent, no answer read yet
        self.connected = False
        self.connects = 0
        self.connect_failures = 0
        self.errors: Counter[str] = Counter()
        self.call_errors: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._last_at = datetime.now(UTC) - timedelta(seconds=1)
        self._energy = rng.randrange(0, 100_000)

    # -- the charger's own life ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        # Millisecond timestamps (what goes on the wire), strictly increasing per station.
        now = datetime.now(UTC)
        at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if at <= self._last_at:
            at = self._last_at + timedelta(milliseconds=1)
        self._last_at = at
        return at

    def _queue(self, action: str, kind: str, tx: TxRecord, at: datetime, build: Callable[[], dict[str, Any]]) -> None:
        message = Message(action, kind, tx, at, build, offline=not self.connected)
        self.outbox.append(message)
        self.messages.append(message)
        self._changed.set()

    async def _pause(self) -> None:
        await asyncio.sleep(self._interval * self._rng.uniform(0.5, 1.5))

    async def produce(self, stop: asyncio.Event, max_transactions: int = 1_000_000) -> None:
        """Run transactions back to back until ``stop`` or ``max_transactions``; the last one is always ended."""
        for index in range(max_transactions):
            if stop.is_set():
                return
            tx = TxRecord(index, f"{self.identity}-{index}", f"T{self.identity[-12:]}", self._now(), self._energy)
            self.transactions.append(tx)
            self._queue_start(tx)
            for _ in range(self._meters):
                await self._pause()
                if stop.is_set():
                    break
                self._energy += self._rng.randrange(1, 500)
                self._queue_reading(tx, self._now(), self._energy)
            await self._pause()
            tx.stopped_at, tx.meter_stop = self._now(), self._energy
            self._queue_stop(tx)
            await self._pause()
            self._queue_idle_reading(tx, self._now(), self._energy)
            await self._pause()

    def _queue_start(self, tx: TxRecord) -> None:
        if self.version == "1.6":
            payload = {
                "connectorId": 1,
                "idTag": tx.id_tag,
                "meterStart": tx.meter_start,
                "timestamp": wire_time(tx.started_at),
            }
            self._queue("StartTransaction", "start", tx, tx.started_at, lambda: payload)
        else:
            self._queue("TransactionEvent", "start", tx, tx.started_at, self._event(tx, "Started", tx.started_at))

    def _queue_reading(self, tx: TxRecord, at: datetime, energy: int) -> None:
        tx.readings.append((at, energy))
        if self.version == "1.6":

            def build() -> dict[str, Any]:
                assert tx.transaction_id is not None  # the Start before it in the queue was answered
                sampled = {"value": str(energy), "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"}
                value = {"timestamp": wire_time(at), "sampledValue": [sampled]}
                return {"connectorId": 1, "transactionId": tx.transaction_id, "meterValue": [value]}

            self._queue("MeterValues", "meter", tx, at, build)
        else:
            self._queue("TransactionEvent", "meter", tx, at, self._event(tx, "Updated", at, energy))
        self.messages[-1].reading = energy

    def _queue_idle_reading(self, after: TxRecord, at: datetime, energy: int) -> None:
        """A clock-aligned reading between transactions: 1.6 MeterValues without transactionId, 2.0.1 MeterValues.
        Nothing but its content tells a resend apart (``after`` is only the transaction it followed)."""
        if self.version == "1.6":
            sampled: dict[str, Any] = {
                "value": str(energy),
                "measurand": ENERGY,
                "unit": "Wh",
                "context": "Sample.Clock",
            }
            payload = {"connectorId": 1, "meterValue": [{"timestamp": wire_time(at), "sampledValue": [sampled]}]}
        else:
            sampled = {"value": energy, "measurand": ENERGY, "context": "Sample.Clock"}
            payload = {"evseId": 1, "meterValue": [{"timestamp": wire_time(at), "sampledValue": [sampled]}]}
        self._queue("MeterValues", "idle", after, at, lambda: payload)
        self.messages[-1].reading = energy

    def _queue_stop(self, tx: TxRecord) -> None:
        assert tx.stopped_at is not None
        at = tx.stopped_at
        if self.version == "1.6":

            def build() -> dict[str, Any]:
                assert tx.transaction_id is not None
                return {
                    "transactionId": tx.transaction_id,
                    "meterStop": tx.meter_stop,
                    "timestamp": wire_time(at),
                    "reason": "Local",
                    "idTag": tx.id_tag,
                }

            self._queue("StopTransaction", "stop", tx, at, build)
        else:
            self._queue("TransactionEvent", "stop", tx, at, self._event(tx, "Ended", at))

    def _event(
        self, tx: TxRecord, event_type: str, at: datetime, energy: int | None = None
    ) -> Callable[[], dict[str, Any]]:
        seq_no = {"Started": 0, "Ended": len(tx.readings) + 1}.get(event_type, len(tx.readings))
        offline = not self.connected
        trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "StopAuthorized"}[event_type]
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": wire_time(at),
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": tx.charger_tx_id},
        }
        if offline:
            payload["offline"] = True
        if event_type == "Started":
            payload["idToken"] = {"idToken": tx.id_tag, "type": "ISO14443"}
            payload["evse"] = {"id": 1, "connectorId": 1}
        if event_type == "Ended":
            payload["transactionInfo"]["stoppedReason"] = "Local"
        if energy is not None:
            sampled = {"value": energy, "measurand": ENERGY, "context": "Sample.Periodic"}
            payload["meterValue"] = [{"timestamp": wire_time(at), "sampledValue": [sampled]}]
        return lambda: payload

    # -- the link to the CSMS --------------------------------------------------------------------------------

    async def drain(self, producing: asyncio.Task[None], deadline: float) -> bool:
        """Send the queue in order until production ended and the queue is empty; False on ``deadline``."""
        while time.monotonic() < deadline:
            if producing.done() and not self.outbox:
                return True
            connection = await self._connect(deadline)
            if connection is None:
                continue
            try:
                if await self._send_queue(connection, producing, deadline):
                    await connection.close()
                    return True
            except (ConnectionClosed, OSError) as exc:
                self.errors[f"dropped: {type(exc).__name__}"] += 1
            except TimeoutError:
                self.errors["call timeout"] += 1
                await connection.close()
            finally:
                self.connected = False
        return False

    async def _connect(self, deadline: float) -> ClientConnection | None:
        try:
            connection = await connect(
                self.url,
                subprotocols=[Subprotocol(f"ocpp{self.version}")],
                open_timeout=10,
                ping_interval=None,
                compression=None,
            )
        except (OSError, InvalidHandshake, TimeoutError):
            self.connect_failures += 1
            await asyncio.sleep(min(self._rng.uniform(*self._backoff), max(0.0, deadline - time.monotonic())))
            return None
        try:
            boot = await self._call(connection, "BootNotification", self._boot_payload())
        except (ConnectionClosed, OSError, TimeoutError):
            self.connect_failures += 1
            await connection.close()
            return None
        if boot[0] != 3 or boot[2].get("status") != "Accepted":
            self.errors["boot not accepted"] += 1
            await connection.close()
            await asyncio.sleep(self._backoff[1])
            return None
        self.connects += 1
        self.connected = True
        return connection

    def _boot_payload(self) -> dict[str, Any]:
        if self.version == "1.6":
            return {"chargePointVendor": "Faults", "chargePointModel": "Durable"}
        return {"chargingStation": {"vendorName": "Faults", "model": "Durable"}, "reason": "PowerUp"}

    async def _send_queue(self, connection: ClientConnection, producing: asyncio.Task[None], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if not self.outbox:
                if producing.done():
                    return True
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except TimeoutError:
                    pass
                continue
            message = self.outbox[0]
            message_id = await self._send(connection, message.action, message.frozen_payload())
            message.sends += 1
            message.message_ids.append(message_id)
            self.in_flight = message
            reply = await self._reply(connection, message_id)
            self.in_flight = None
            self.outbox.popleft()
            if reply[0] != 3:
                # A CALLERROR makes a real charger retry and then skip the message: data lost. Recorded as a defect.
                self.call_errors.append((message.action, reply))
                continue
            message.result = reply[2]
            message.answered_late_s = (datetime.now(UTC) - message.at).total_seconds()
            if self.version == "1.6" and message.kind == "start":
                message.tx.transaction_id = int(reply[2]["transactionId"])
                message.tx.start_answers.append(message.tx.transaction_id)
        return False

    async def _call(self, connection: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
        return await self._reply(connection, await self._send(connection, action, payload))

    async def _send(self, connection: ClientConnection, action: str, payload: dict[str, Any]) -> str:
        message_id = f"{self.identity[-8:]}-{next(self._ids)}"
        await connection.send(orjson.dumps([2, message_id, action, payload]).decode())
        return message_id

    async def _reply(self, connection: ClientConnection, message_id: str) -> list[Any]:
        async with asyncio.timeout(self._call_timeout):
            while True:
                frame = orjson.loads(await connection.recv())
                if frame[0] == 2:  # the CSMS asks something: accept it, keep waiting for our answer
                    await connection.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
                elif frame[1] == message_id:
                    result: list[Any] = frame
                    return result
                else:
                    self.errors["reply for another id"] += 1
