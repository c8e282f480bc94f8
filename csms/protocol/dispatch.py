"""Answering one CALL: pick the handler, check the payload and the station's standing, build the reply frame.

This is where the library's known mistakes are corrected: an unknown action is NotImplemented and a known one we
do not handle is NotSupported (the ``ocpp`` library swaps them); schema failures get the code of the failed
rule in the station's version spelling; our own reply is validated too, so a bug on our side becomes an
InternalError instead of an invalid message on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from ocpp.v16.enums import Action as ActionV16
from ocpp.v201.enums import Action as ActionV201

from csms.domain.commands import Command
from csms.errors import CsmsError, UnstorableValue
from csms.protocol import v16, v201
from csms.protocol.common import CallContext, Handler
from csms.protocol.errors import CallRejected, schema_error_code
from csms.protocol.framing import Call, ErrorCode, encode_call_error, encode_call_result
from csms.protocol.schemas import SchemaViolation, validate_request, validate_response
from csms.protocol.versions import OcppVersion

__all__ = ["ADAPTERS", "Adapter", "Answer", "answer_call"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Adapter:
    version: OcppVersion
    handlers: Mapping[str, Handler]
    encode_command: Callable[[Command], tuple[str, dict[str, Any]] | None]


ADAPTERS: dict[OcppVersion, Adapter] = {
    OcppVersion.V16: Adapter(OcppVersion.V16, v16.HANDLERS, v16.encode_command),
    OcppVersion.V201: Adapter(OcppVersion.V201, v201.HANDLERS, v201.encode_command),
}


# Every action of each version (the library's enums match its schema files one to one). The charger's action is
# looked up here, never turned into a schema file path: a path built from "../../v201/schemas/ResetRequest"
# would make it "known" on 1.6, and a cache keyed by made-up names would grow without bound. Schemas are only
# loaded for actions we handle.
_KNOWN_ACTIONS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(action.value for action in ActionV16),
    OcppVersion.V201: frozenset(action.value for action in ActionV201),
}


@dataclass(frozen=True, slots=True)
class Answer:
    frame: bytes
    result: dict[str, Any] | None  # the CALLRESULT payload, None when the answer is a CALLERROR


async def answer_call(adapter: Adapter, ctx: CallContext, call: Call, accepted: bool) -> Answer:
    """The frame that answers ``call``. Never raises for anything a charger can send."""
    version = adapter.version
    try:
        handler = adapter.handlers.get(call.action)
        if handler is None:
            if call.action in _KNOWN_ACTIONS[version]:
                raise CallRejected(ErrorCode.NOT_SUPPORTED, f"{call.action} is not supported by the central system")
            raise CallRejected(ErrorCode.NOT_IMPLEMENTED, f"unknown action {call.action}")
        try:
            validate_request(version, call.action, call.payload)
        except SchemaViolation as exc:
            raise CallRejected(schema_error_code(exc.rule), str(exc)) from None
        if not accepted and call.action != "BootNotification":
            # B02/B03: until a BootNotification is accepted, the station may only boot.
            raise CallRejected(ErrorCode.SECURITY_ERROR, "station is not accepted: send BootNotification first")
        result = await handler(ctx, call.payload)
    except CallRejected as exc:
        return Answer(encode_call_error(version, call.message_id, exc.code, exc.description), None)
    except UnstorableValue as exc:
        # A value the database cannot hold (PostgreSQL: a NUL character in a string): the charger's input.
        log.warning("value refused by the database", action=call.action, error=str(exc)[:300])
        code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
        return Answer(encode_call_error(version, call.message_id, code, "a value cannot be stored"), None)
    except (CsmsError, OSError, ArithmeticError, LookupError, ValueError) as exc:
        # Storage trouble or a payload our code could not digest: the charger gets InternalError and retries.
        log.error("handler failed", action=call.action, error=repr(exc))
        return Answer(encode_call_error(version, call.message_id, ErrorCode.INTERNAL_ERROR, "internal error"), None)
    try:
        validate_response(version, call.action, result)
    except SchemaViolation as exc:
        log.error("reply broke its schema", action=call.action, error=str(exc))
        return Answer(encode_call_error(version, call.message_id, ErrorCode.INTERNAL_ERROR, "internal error"), None)
    return Answer(encode_call_result(call.message_id, result), result)
