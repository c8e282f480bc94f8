"""OCPP-J framing: text frames <-> Call / CallResult / CallError, with the spec's answers to malformed input.

The ``ocpp`` library sends no reply to a malformed frame and swaps NotImplemented / NotSupported; here every
readable problem becomes a :class:`FrameError` that the session turns into the CALLERROR each version specifies
(OCPP-J 1.6 §4.2.3 with its errata, OCPP 2.0.1 part 4 §4.3). Error codes are kept in their 2.0.1 spelling and
renamed for 1.6 only when written to the wire (:func:`error_code_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from csms.protocol.versions import OcppVersion

__all__ = [
    "UNREADABLE_ID",
    "Call",
    "CallError",
    "CallResult",
    "ErrorCode",
    "FrameError",
    "KNOWN_ERROR_CODES",
    "Message",
    "binary_frame_error",
    "encode_call",
    "encode_call_error",
    "encode_call_result",
    "error_code_for",
    "parse_frame",
]

# 2.0.1 part 4 §4.2.3: a CALLERROR to a message whose id cannot be read carries the id "-1".
UNREADABLE_ID = "-1"
_MAX_ID_LENGTH = 36
_MAX_DESCRIPTION = 255
# Limits on what a payload may hold, checked before anything reaches a handler or the database:
# - orjson parses integers up to 2**64 - 1, but SQLite and PostgreSQL store at most a signed 64-bit integer; one
#   such number in a stored field (connectorId, evseId, seqNo, ...) made the driver raise OverflowError inside
#   the group-commit writer, which stopped every later write. The 2.0.1 schemas (draft 6) also take 1e300 as an
#   "integer" evseId. OCPP integers are 32-bit and no OCPP quantity nears 2**63, so any number past the signed
#   64-bit range is refused, whatever the field.
# - orjson accepts 1024 levels of nesting, but json.dumps (the JSON column) and repr recurse in Python and raise
#   RecursionError near 1000: a deep DataTransfer.data or customData killed the connection with 1011. No OCPP
#   message is more than about 8 levels deep; 64 leaves vendor data (DataTransfer, customData) ample room.
_MAX_DEPTH = 64
# Counting brackets in the raw frame (cheap, in C) decides whether the payload must be walked at all: nesting
# deeper than _MAX_DEPTH needs more brackets than that. Integer ranges are checked by the schemas
# (csms.protocol.schemas bounds every integer to int64), not here: a scan for long numbers cost more than
# the rest of the frame's handling.


class ErrorCode(StrEnum):
    """CALLERROR codes in their OCPP 2.0.1 spelling."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


# 1.6 keeps its historic spellings (errata 5.2) and has no RPC-framework codes.
_V16_SPELLING: dict[ErrorCode, str] = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "ProtocolError",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "ProtocolError",
}


# Codes a charger's CALLERROR may carry: every code of either version in either spelling. Chargers mix them up
# (a 1.6 charger writing FormatViolation is common) and the meaning is still clear; anything else is garbled.
KNOWN_ERROR_CODES: frozenset[str] = frozenset(code.value for code in ErrorCode) | frozenset(_V16_SPELLING.values())


def error_code_for(version: OcppVersion, code: ErrorCode) -> str:
    if version is OcppVersion.V16:
        return _V16_SPELLING.get(code, code.value)
    return code.value


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


Message = Call | CallResult | CallError


@dataclass(frozen=True, slots=True)
class FrameError(Exception):
    """A frame that cannot be processed. ``reply`` is False where the spec says to ignore it."""

    message_id: str
    code: ErrorCode
    description: str
    reply: bool = True


def parse_frame(version: OcppVersion, data: str | bytes) -> Message:
    """Parse one websocket text frame.

    Raises:
        FrameError: for anything that is not a well-formed OCPP-J message, carrying the CALLERROR to send.
    """
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        code = ErrorCode.RPC_FRAMEWORK_ERROR if version is OcppVersion.V201 else ErrorCode.FORMAT_VIOLATION
        raise FrameError(UNREADABLE_ID, code, f"frame is not valid JSON: {exc}") from None
    if not isinstance(frame, list) or len(frame) < 2:
        raise FrameError(_readable_id(frame), ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not an OCPP-J array")
    type_id, message_id = frame[0], frame[1]
    if not isinstance(message_id, str) or not message_id or len(message_id) > _MAX_ID_LENGTH:
        raise FrameError(
            UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "messageId must be a string of 1 to 36 characters"
        )
    if type_id == 2:
        call = _parse_call(message_id, frame)
        problem = _payload_problem(data, call.payload)
        if problem is not None:
            raise FrameError(message_id, *problem)
        return call
    if type_id == 3 and len(frame) == 3 and isinstance(frame[2], dict):
        problem = _payload_problem(data, frame[2])
        if problem is not None:
            # A reply we cannot store is an unusable answer like a malformed one (the command it answers fails
            # with station-bad-answer, not as if the charger had sent a CALLERROR); the charger gets no CALLERROR
            # back, since its frame was well-formed OCPP-J.
            raise FrameError(message_id, problem[0], f"CALLRESULT {problem[1]}", reply=False)
        return CallResult(message_id, frame[2])
    if type_id == 4 and len(frame) in (4, 5) and isinstance(frame[2], str):
        details = frame[4] if len(frame) == 5 and isinstance(frame[4], dict) else {}
        description = frame[3] if isinstance(frame[3], str) else ""
        return CallError(message_id, frame[2], description, details)
    if type_id in (3, 4):
        raise FrameError(message_id, ErrorCode.RPC_FRAMEWORK_ERROR, "malformed CALLRESULT or CALLERROR")
    # OCPP-J 1.6 §4.1.3: an unknown message type is ignored; 2.0.1 answers MessageTypeNotSupported.
    raise FrameError(
        message_id,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
        f"message type {type_id!r} is not supported",
        reply=version is OcppVersion.V201,
    )


def _parse_call(message_id: str, frame: list[Any]) -> Call:
    if len(frame) != 4 or not isinstance(frame[2], str):
        raise FrameError(message_id, ErrorCode.RPC_FRAMEWORK_ERROR, "CALL must be [2, id, action, payload]")
    if not isinstance(frame[3], dict):
        raise FrameError(message_id, ErrorCode.FORMAT_VIOLATION, "CALL payload must be a JSON object")
    return Call(message_id, frame[2], frame[3])


def _payload_problem(data: str | bytes, payload: dict[str, Any]) -> tuple[ErrorCode, str] | None:
    """Why ``payload`` (parsed from ``data``) breaks the limits above, or None."""
    brackets = data.count(b"[") + data.count(b"{") if isinstance(data, bytes) else data.count("[") + data.count("{")
    if brackets <= _MAX_DEPTH:
        return None
    # Iterative walk: the payload may be nested deeper than Python's recursion limit.
    stack: list[tuple[object, int]] = [(payload, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > _MAX_DEPTH:
                return ErrorCode.FORMAT_VIOLATION, f"payload is nested deeper than {_MAX_DEPTH} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def binary_frame_error(data: bytes) -> FrameError:
    """The answer to a websocket binary frame.

    OCPP-J carries JSON in text frames only; a binary frame is not processed but answered with
    RpcFrameworkError (ProtocolError on 1.6), so a charger that sends them learns why nothing happens.
    """
    try:
        message_id = _readable_id(orjson.loads(data))
    except orjson.JSONDecodeError:
        message_id = UNREADABLE_ID
    return FrameError(message_id, ErrorCode.RPC_FRAMEWORK_ERROR, "binary frame: OCPP-J messages are text frames")


def _readable_id(frame: object) -> str:
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
        return frame[1][:_MAX_ID_LENGTH]
    return UNREADABLE_ID


def encode_call(message_id: str, action: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([2, message_id, action, payload])


def encode_call_result(message_id: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([3, message_id, payload])


def encode_call_error(
    version: OcppVersion,
    message_id: str,
    code: ErrorCode,
    description: str,
    details: dict[str, Any] | None = None,
) -> bytes:
    return orjson.dumps([4, message_id, error_code_for(version, code), description[:_MAX_DESCRIPTION], details or {}])
