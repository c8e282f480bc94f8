"""One live charger connection: the read loop, replies, and our own CALLs with one outstanding at a time."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from csms.domain.commands import Command, CommandResult
from csms.domain.stations import StationId
from csms.errors import CommandNotSupported, InvalidRequest, StationBadAnswer, StationOffline, StationTimeout
from csms.protocol.common import CallContext
from csms.protocol.dispatch import Adapter, answer_call
from csms.protocol.errors import station_call_error
from csms.protocol.framing import (
    KNOWN_ERROR_CODES,
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
from csms.runtime.fail_point import FailPoint, KillPoint
from csms.service.charger import ChargerService

__all__ = ["Clock", "StationSession"]

Clock = Callable[[], datetime]

_session_numbers = itertools.count(1)
# How much of a charger's error code and description goes into our error message (2.0.1 bounds descriptions
# at 255 characters; no OCPP error code is longer than 30).
_MAX_CODE = 50
_MAX_DESCRIPTION = 255


@dataclass(frozen=True, slots=True)
class _PendingCall:
    message_id: str
    action: str
    future: asyncio.Future[CallResult | CallError]


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
        fail_point: FailPoint | None = None,
    ) -> None:
        self.connection = connection
        self.station_id = station_id
        self.adapter = adapter
        self.number = next(_session_numbers)
        self._service = service
        self._clock = clock
        self._call_timeout = call_timeout
        self._accepted = accepted
        self._fail_point = fail_point  # a kill -9 test hook; None unless CSMS_KILL_AT was set at start
        self._call_lock = asyncio.Lock()
        self._pending: _PendingCall | None = None
        # The last CALL answered on this connection (id, action, payload) and our answer frame, for retries.
        self._last_answer: tuple[str, str, dict[str, Any], bytes] | None = None
        self._log = structlog.get_logger(__name__).bind(
            station_id=station_id, ocpp=adapter.version.value, session=self.number
        )

    @property
    def version(self) -> str:
        return self.adapter.version.value

    @property
    def pending_call(self) -> str | None:
        """The message id of our CALL that awaits the charger's answer, if any."""
        return self._pending.message_id if self._pending is not None else None

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
            if self._answers_pending(exc.message_id, data):
                self._fail_answer(f"malformed frame: {exc.description}")
            if exc.reply:
                await self.connection.send(
                    encode_call_error(version, exc.message_id, exc.code, exc.description), text=True
                )
            return
        if isinstance(message, Call):
            if self._answers_pending(message.message_id, None):
                # Our CALL echoed back, or answered with type 2: not an answer, but it must not leave the
                # operator waiting for one. The CALL itself is still answered like any other.
                self._fail_answer(f"answered with a CALL ({message.action[:40]}) instead of a CALLRESULT")
            await self._answer(message)
        else:
            self._resolve(message)

    def _answers_pending(self, message_id: str, data: str | bytes | None) -> bool:
        """Whether a frame that is no usable reply was meant as the answer to our outstanding CALL.

        It carries our message id, or (when its id could not be read, e.g. broken JSON) contains it: the id is
        a random UUID, which no unrelated frame holds by accident.
        """
        pending = self._pending
        if pending is None or pending.future.done():
            return False
        if message_id == pending.message_id:
            return True
        if data is None:
            return False
        needle = pending.message_id
        return needle in data if isinstance(data, str) else needle.encode() in data

    def _fail_answer(self, problem: str) -> None:
        """End the outstanding CALL at once with a StationBadAnswer instead of letting it wait for its timeout."""
        pending = self._pending
        assert pending is not None
        self._log.warning("unusable answer", action=pending.action, message_id=pending.message_id, problem=problem)
        pending.future.set_exception(StationBadAnswer(self.station_id, pending.action, problem))

    async def _answer(self, call: Call) -> None:
        last = self._last_answer
        if last is not None and last[0] == call.message_id and last[1] == call.action and last[2] == call.payload:
            # The same CALL again on this connection (the charger missed our answer and retries, one CALL at a
            # time): it gets the answer it missed, and the action does not run twice. Only an identical frame
            # counts, so a charger that reuses one message id for different messages loses nothing.
            self._log.info("repeated CALL answered again", action=call.action, message_id=call.message_id[:40])
            await self.connection.send(last[3], text=True)
            return
        fail = self._fail_point
        if fail is not None:
            fail.passed(KillPoint.AFTER_RECEIVE, self.station_id, call.action, call.message_id)
        context = CallContext(self.station_id, self._clock(), self._service)
        answer = await answer_call(self.adapter, context, call, self._accepted)
        if fail is not None:
            fail.passed(KillPoint.AFTER_COMMIT, self.station_id, call.action, call.message_id)
        if call.action == "BootNotification" and answer.result is not None:
            self._accepted = answer.result.get("status") == "Accepted"
        self._last_answer = (call.message_id, call.action, call.payload, answer.frame)
        await self.connection.send(answer.frame, text=True)
        if fail is not None:
            fail.passed(KillPoint.AFTER_REPLY, self.station_id, call.action, call.message_id)

    def _resolve(self, message: CallResult | CallError) -> None:
        pending = self._pending
        if pending is None or pending.message_id != message.message_id or pending.future.done():
            # A reply to nothing we asked (or asked too long ago): the spec has no answer for it; log and drop.
            self._log.warning("reply for no outstanding call", message_id=message.message_id[:40])
            return
        if isinstance(message, CallError) and message.code not in KNOWN_ERROR_CODES:
            code = message.code[:_MAX_CODE]
            self._fail_answer(f"CALLERROR with unknown error code {code!r}: {message.description[:_MAX_DESCRIPTION]}")
            return
        pending.future.set_result(message)

    def _fail_pending(self) -> None:
        pending = self._pending
        if pending is None or pending.future.done():
            return
        sent = self.connection.protocol.close_sent
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            # A frame over the size limit ended the connection (close 1009) while our CALL waited: most likely
            # the answer itself. Say so rather than a bare "not connected".
            limit = self.connection.protocol.max_message_size
            problem = f"a frame over the {limit} byte limit arrived: connection closed (1009)"
            pending.future.set_exception(StationBadAnswer(self.station_id, pending.action, problem))
            return
        pending.future.set_exception(StationOffline(self.station_id))

    async def execute(self, command: Command) -> CommandResult:
        """Send ``command`` in this station's OCPP version and return its answer.

        Raises:
            CommandNotSupported: the version has no such command.
            InvalidRequest: the command's payload breaks the version's schema.
            StationTimeout, StationOffline, StationCallError, StationBadAnswer: no usable answer came back
            (StationBadAnswer: the answer was malformed, broke its schema or carried an unknown error code).
        """
        encoded = self.adapter.encode_command(command)
        if encoded is None:
            raise CommandNotSupported(self.station_id, type(command).__name__, self.version)
        action, payload = encoded
        response = await self.call(action, payload)
        try:
            validate_response(self.adapter.version, action, response)
        except SchemaViolation as exc:
            # An answer that breaks its schema cannot be trusted to mean what its fields say (a status of the
            # wrong type, a missing result): the command fails with what was wrong, nothing is applied.
            self._log.warning("charger answer broke its schema", action=action, error=str(exc))
            raise StationBadAnswer(self.station_id, action, f"answer breaks the {action} schema: {exc}") from None
        return CommandResult(action, payload, response)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            validate_request(self.adapter.version, action, payload)
        except SchemaViolation as exc:
            raise InvalidRequest(f"{action} payload is invalid for OCPP {self.version}: {exc}") from None
        # One outstanding CALL per connection (OCPP-J 1.6 §4.1.1, 2.0.1 part 4 §4.1.1).
        async with self._call_lock:
            message_id = str(uuid.uuid4())
            future: asyncio.Future[CallResult | CallError] = asyncio.get_running_loop().create_future()
            self._pending = _PendingCall(message_id, action, future)
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
