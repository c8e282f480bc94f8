"""The one edge where protocol problems become CALLERRORs and charger CALLERRORs become CsmsErrors."""

from __future__ import annotations

from dataclasses import dataclass

from csms.errors import StationCallError
from csms.protocol.framing import CallError, ErrorCode

__all__ = ["CallRejected", "schema_error_code", "station_call_error"]


@dataclass(frozen=True, slots=True)
class CallRejected(Exception):
    """Raised by an adapter handler to answer a CALL with a CALLERROR instead of a result."""

    code: ErrorCode
    description: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.description}"


_RULE_CODES: dict[str, ErrorCode] = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}


def schema_error_code(rule: str) -> ErrorCode:
    """The CALLERROR code for a failed JSON-schema keyword; structure problems are format violations."""
    return _RULE_CODES.get(rule, ErrorCode.FORMAT_VIOLATION)


# What of a charger's CALLERROR reaches our errors, problems and audit: 2.0.1 bounds descriptions at 255
# characters, and no error code is longer than 30; a charger sending megabytes must not make us repeat them.
_MAX_CODE = 50
_MAX_DESCRIPTION = 255


def station_call_error(station_id: str, action: str, error: CallError) -> StationCallError:
    description = error.description
    if len(description) > _MAX_DESCRIPTION:
        description = description[: _MAX_DESCRIPTION - 3] + "..."
    return StationCallError(station_id, action, error.code[:_MAX_CODE], description)
