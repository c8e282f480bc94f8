"""Schema validation with the official OCPP schemas, compiled, plus int64 bounds on every integer."""

from __future__ import annotations

from typing import Any

import pytest

from csms.protocol.errors import schema_error_code
from csms.protocol.framing import ErrorCode
from csms.protocol.schemas import SchemaViolation, validate_request
from csms.protocol.versions import OcppVersion

STATUS_16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({}, None),
        ({"connectorId": 2**63 - 1}, None),
        ({"connectorId": 2**63}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ({"connectorId": -(2**63) - 1}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ({"connectorId": 1e300}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ({"connectorId": "1"}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ({"status": "Sleeping"}, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        ({"timestamp": "2026-11-23T10:00:00"}, ErrorCode.FORMAT_VIOLATION),
        ({"timestamp": "2026-11-23T10:00:00+02:00"}, None),
        ({"extra": 1}, ErrorCode.FORMAT_VIOLATION),
    ],
)
def test_status_notification_16(change: dict[str, Any], code: ErrorCode | None) -> None:
    """Types, int64 range, enums, time zones and unknown fields are checked with the right CALLERROR code."""
    payload = {**STATUS_16, **change}
    if code is None:
        validate_request(OcppVersion.V16, "StatusNotification", payload)
        return
    with pytest.raises(SchemaViolation) as violation:
        validate_request(OcppVersion.V16, "StatusNotification", payload)
    assert schema_error_code(violation.value.rule) is code


def test_missing_field_is_an_occurrence_violation() -> None:
    """A missing required field maps to OccurrenceConstraintViolation."""
    with pytest.raises(SchemaViolation) as violation:
        validate_request(OcppVersion.V201, "Authorize", {})
    assert schema_error_code(violation.value.rule) is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION


def test_integers_written_as_floats_become_ints_once_valid() -> None:
    """2.0.1: 2.0 and an integer beyond 64 bits that the JSON parser reads as the float -2**63 pass as integers
    (draft-06 counts them so) and reach the handlers as ints; floats of ``number`` fields stay floats."""
    sample = {
        "timestamp": "2026-11-23T10:00:00Z",
        "sampledValue": [{"value": 2.0, "unitOfMeasure": {"multiplier": 3.0}}, {"value": 1.5}],
    }
    payload: dict[str, Any] = {"evseId": -9.223372036854776e18, "meterValue": [sample]}
    validate_request(OcppVersion.V201, "MeterValues", payload)
    assert payload["evseId"] == -(2**63) and type(payload["evseId"]) is int
    assert type(sample["sampledValue"][0]["unitOfMeasure"]["multiplier"]) is int
    assert [type(value["value"]) for value in sample["sampledValue"]] == [float, float]
    # 1.6's schemas are draft-04, where 2.0 is a number and not an integer: refused there.
    with pytest.raises(SchemaViolation) as violation:
        validate_request(OcppVersion.V16, "StatusNotification", {**STATUS_16, "connectorId": 2.0})
    assert violation.value.rule == "type"
