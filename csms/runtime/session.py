"""One live charger connection: the read loop, replies, and our own CALLs with one outstanding at a time."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.domain.commands import Command, CommandResult
from csms.domain.stations import StationId
from csms.errors import CommandNotSupported, InvalidRequest, StationOffline, StationTimeout
from csms.protocol.common import CallContext
from csms.protocol.dispatch import Adapter, answer_call
from csms.protocol.errors import station_call_error
from csms.protocol.framing import (
    Call,
    CallError,
    CallResult,
    FrameError,
    binary_frame_error,
    encode_call,
    encode_call_error,
    parse_frame,
)
from csms.protocol.schemas import SchemaViolation, validate_request, validate_response
from csms.service.charger import ChargerService

__all__ = ["Clock", "StationSession"]

Clock = Callable[[], datetime]

_session_numbers = itertools.count(1)


class StationSession:
    def __init__(
        self,
        connection: ServerConnection,
        station_id: StationId,
        adapter: Adapter,
        service: ChargerService,
        clock: Clock,
        call_timeout: float,
        accepted: bool,
    ) -> None:
        self.connection = connection
        self.station_id = station_id
        self.adapter = adapter
        self.number = next(_session_numbers)
        self._service = service
        self._clock = clock
        self._call_timeout = call_timeout
        self._accepted = accepted
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[CallResult | CallError]] | None = None
        self._log = structlog.get_logger(__name__).bind(
            station_id=station_id, ocpp=adapter.version.value, session=self.number
        )

    @property
    def version(self) -> str:
        return self.adapter.version.value

    @property
    def pending_call(self) -> str | None:
        """The message id of our CALL that awaits the charger's answer, if any."""
        return self._pending[0] if self._pending is not None else None

    async def serve(self) -> None:
        """Read frames until the connection closes. Calls are answered in order, one at a time."""
        try:
            async for data in self.connection:
                await self._on_frame(data)
        except ConnectionClosed:
            pass
        finally:
            self._fail_pending()

    async def _on_frame(self, data: str | bytes) -> None:
        version = self.adapter.version
        try:
            if isinstance(data, bytes):
                raise binary_frame_error(data)
            message = parse_frame(version, data)
        except FrameError as exc:
            self._log.warning("malformed frame", code=exc.code.value, error=exc.description, replied=exc.reply)
            if exc.reply:
                await self.connection.send(
                    encode_call_error(version, exc.message_id, exc.code, exc.description), text=True
                )
            return
        if isinstance(message, Call):
            await self._answer(message)
        else:
            self._resolve(message)

    async def _answer(self, call: Call) -> None:
        context = CallContext(self.station_id, self._clock(), self._service)
        answer = await answer_call(self.adapter, context, call, self._accepted)
        if call.action == "BootNotification" and answer.result is not None:
            self._accepted = answer.result.get("status") == "Accepted"
        await self.connection.send(answer.frame, text=True)

    def _resolve(self, message: CallResult | CallError) -> None:
        pending = self._pending
        if pending is None or pending[0] != message.message_id or pending[1].done():
            # A reply to nothing we asked (or asked too long ago): the spec has no answer for it; log and drop.
            self._log.warning("reply for no outstanding call", message_id=message.message_id)
            return
        pending[1].set_result(message)

    def _fail_pending(self) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(StationOffline(self.station_id))

    async def execute(self, command: Command) -> CommandResult:
        """Send ``command`` in this station's OCPP version and return its answer.

        Raises:
            CommandNotSupported: the version has no such command.
            InvalidRequest: the command's payload breaks the version's schema.
            StationTimeout, StationOffline, StationCallError: no usable answer came back.
        """
        encoded = self.adapter.encode_command(command)
        if encoded is None:
            raise CommandNotSupported(self.station_id, type(command).__name__, self.version)
        action, payload = encoded
        response = await self.call(action, payload)
        try:
            validate_response(self.adapter.version, action, response)
            valid = True
        except SchemaViolation as exc:
            self._log.warning("charger answer broke its schema", action=action, error=str(exc))
            valid = False
        return CommandResult(action, payload, response, valid)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            validate_request(self.adapter.version, action, payload)
        except SchemaViolation as exc:
            raise InvalidRequest(f"{action} payload is invalid for OCPP {self.version}: {exc}") from None
        # One outstanding CALL per connection (OCPP-J 1.6 §4.1.1, 2.0.1 part 4 §4.1.1).
        async with self._call_lock:
            message_id = str(uuid.uuid4())
            future: asyncio.Future[CallResult | CallError] = asyncio.get_running_loop().create_future()
            self._pending = (message_id, future)
            try:
                # The deadline covers the write too: a charger that stopped reading must not hold the caller
                # (an API request) past the call timeout while the frame waits in the write buffer.
                async with asyncio.timeout(self._call_timeout):
                    await self.connection.send(encode_call(message_id, action, payload), text=True)
                    reply = await future
            except TimeoutError:
                raise StationTimeout(self.station_id, action, self._call_timeout) from None
            except ConnectionClosed:
                raise StationOffline(self.station_id) from None
            finally:
                self._pending = None
                # The connection may have closed during the send: _fail_pending then set an exception nobody
                # awaits; retrieve it so asyncio does not log "Future exception was never retrieved".
                if future.done() and not future.cancelled():
                    future.exception()
        if isinstance(reply, CallError):
            raise station_call_error(self.station_id, action, reply)
        self._log.info("command answered", action=action)
        return reply.payload

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)
