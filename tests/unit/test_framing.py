"""OCPP-J framing: parse_frame, error_code_for and encode_call_error, table-driven for 1.6 and 2.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from csms.protocol.framing import (
    UNREADABLE_ID,
    Call,
    CallError,
    CallResult,
    ErrorCode,
    FrameError,
    Message,
    encode_call,
    encode_call_error,
    encode_call_result,
    error_code_for,
    parse_frame,
)
from csms.protocol.versions import OcppVersion

V16, V201 = OcppVersion.V16, OcppVersion.V201
BOTH = pytest.mark.parametrize("version", [V16, V201], ids=str)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- frames that parse -------------------------------------------------------------------------------------------

VALID: list[tuple[str, Message]] = [
    ('[2,"1","Heartbeat",{}]', Call("1", "Heartbeat", {})),
    ('[2, "a-b", "StatusNotification", {"connectorId": 1}]', Call("a-b", "StatusNotification", {"connectorId": 1})),
    ('[2,"' + "x" * 36 + '","Heartbeat",{}]', Call("x" * 36, "Heartbeat", {})),
    ('[2,"id","Unknown",{}]', Call("id", "Unknown", {})),  # unknown actions are dispatch's business
    ('[3,"r1",{}]', CallResult("r1", {})),
    ('[3,"r2",{"status":"Accepted"}]', CallResult("r2", {"status": "Accepted"})),
    ('[4,"e1","NotSupported","no",{"a":1}]', CallError("e1", "NotSupported", "no", {"a": 1})),
    ('[4,"e2","GenericError",""]', CallError("e2", "GenericError", "", {})),  # details omitted
    ('[4,"e3","GenericError","x",null]', CallError("e3", "GenericError", "x", {})),  # details not an object
    ('[4,"e4","GenericError",7,{}]', CallError("e4", "GenericError", "", {})),  # description not a string
    ('[2,"n1","DataTransfer",{"v":' + str(2**63 - 1) + "}]", Call("n1", "DataTransfer", {"v": 2**63 - 1})),
    ('[2,"n2","DataTransfer",{"v":' + str(-(2**63)) + "}]", Call("n2", "DataTransfer", {"v": -(2**63)})),
    (
        '[2,"n3","DataTransfer",{"v":9.2e18,"w":1e-300,"x":1E+05}]',
        Call("n3", "DataTransfer", {"v": 9.2e18, "w": 1e-300, "x": 1e5}),
    ),
    (
        '[2,"n4","Authorize",{"idTag":"12345678901234567890"}]',
        Call("n4", "Authorize", {"idTag": "12345678901234567890"}),
    ),
    (
        '[2,"d1","DataTransfer",{"data":' + nested(63) + "}]",
        Call("d1", "DataTransfer", {"data": json.loads(nested(63))}),
    ),
    (
        '[2,"d2","DataTransfer",{"data":[' + ",".join(["[]"] * 200) + "]}]",
        Call("d2", "DataTransfer", {"data": [[]] * 200}),
    ),
]


@BOTH
@pytest.mark.parametrize(("frame", "expected"), VALID)
def test_valid_frames_parse(version: OcppVersion, frame: str, expected: Message) -> None:
    """A well-formed CALL, CALLRESULT or CALLERROR parses to its message, from text or bytes."""
    assert parse_frame(version, frame) == expected
    assert parse_frame(version, frame.encode()) == expected


# -- frames that are refused -------------------------------------------------------------------------------------

# frame, message id of the CALLERROR, code (2.0.1 spelling; 1.6 spelling is applied on the wire)
REFUSED: list[tuple[str, str, ErrorCode]] = [
    ('{"a":1}', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('"text"', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ("42", UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ("null", UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ("[]", UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ("[2]", UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"' + "x" * 37 + '","Heartbeat",{}]', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,42,"Heartbeat",{}]', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"","Heartbeat",{}]', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,null,"Heartbeat",{}]', UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"c1"]', "c1", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"c2","Heartbeat"]', "c2", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"c3",5,{}]', "c3", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"c4","Heartbeat",{},{}]', "c4", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"c5","Heartbeat",null]', "c5", ErrorCode.FORMAT_VIOLATION),
    ('[2,"c6","Heartbeat",[]]', "c6", ErrorCode.FORMAT_VIOLATION),
    ('[3,"r1"]', "r1", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[3,"r2",[]]', "r2", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[4,"e1"]', "e1", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[4,"e2",5,"x",{}]', "e2", ErrorCode.RPC_FRAMEWORK_ERROR),
    ('[2,"d1","DataTransfer",{"data":' + nested(64) + "}]", "d1", ErrorCode.FORMAT_VIOLATION),
    ('[2,"d2","DataTransfer",{"data":' + nested(1000) + "}]", "d2", ErrorCode.FORMAT_VIOLATION),
]


@BOTH
@pytest.mark.parametrize(("frame", "message_id", "code"), REFUSED)
def test_malformed_frames_raise_frame_error(version: OcppVersion, frame: str, message_id: str, code: ErrorCode) -> None:
    """Anything that is not a usable OCPP-J message raises FrameError with the id and code to answer with."""
    with pytest.raises(FrameError) as refused:
        parse_frame(version, frame)
    assert (refused.value.message_id, refused.value.code, refused.value.reply) == (message_id, code, True)
    assert refused.value.description


@pytest.mark.parametrize(
    ("version", "code"), [(V16, ErrorCode.FORMAT_VIOLATION), (V201, ErrorCode.RPC_FRAMEWORK_ERROR)], ids=str
)
@pytest.mark.parametrize("frame", ['[2,"1","Heartbeat",{}', "", "not json", "[2,'1']", nested(2000), '{"x":1e400}'])
def test_invalid_json_is_answered_with_unreadable_id(version: OcppVersion, code: ErrorCode, frame: str) -> None:
    """Text that is not JSON gets id "-1": FormationViolation on 1.6, RpcFrameworkError on 2.0.1."""
    with pytest.raises(FrameError) as refused:
        parse_frame(version, frame)
    assert (refused.value.message_id, refused.value.code, refused.value.reply) == (UNREADABLE_ID, code, True)


@pytest.mark.parametrize(("version", "reply"), [(V16, False), (V201, True)], ids=str)
@pytest.mark.parametrize("type_id", ["0", "1", "5", "6", "7", '"2"', "2.5", "null"])
def test_unknown_message_type(version: OcppVersion, reply: bool, type_id: str) -> None:
    """An unknown message type is MessageTypeNotSupported, answered on 2.0.1 and ignored on 1.6."""
    with pytest.raises(FrameError) as refused:
        parse_frame(version, f'[{type_id},"t1",{{}}]')
    assert refused.value.code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
    assert refused.value.message_id == "t1"
    assert refused.value.reply is reply


@BOTH
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ('{"configurationKey":' + nested(100) + "}", "FormatViolation"),
    ],
)
def test_unusable_call_result_is_a_frame_error_without_a_reply(version: OcppVersion, payload: str, code: str) -> None:
    """A CALLRESULT we could not store is a malformed answer (the command it answers fails as station-bad-answer)
    and never reaches storage; the charger is not sent a CALLERROR for it."""
    with pytest.raises(FrameError) as caught:
        parse_frame(version, f'[3,"r1",{payload}]')
    assert caught.value.message_id == "r1"
    assert caught.value.code == code
    assert caught.value.description.startswith("CALLRESULT payload is nested deeper")
    assert caught.value.reply is False


# -- error codes on the wire -------------------------------------------------------------------------------------

CODES: list[tuple[ErrorCode, str, str]] = [
    (ErrorCode.FORMAT_VIOLATION, "FormationViolation", "FormatViolation"),
    (ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    (ErrorCode.RPC_FRAMEWORK_ERROR, "ProtocolError", "RpcFrameworkError"),
    (ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, "ProtocolError", "MessageTypeNotSupported"),
    (ErrorCode.GENERIC_ERROR, "GenericError", "GenericError"),
    (ErrorCode.INTERNAL_ERROR, "InternalError", "InternalError"),
    (ErrorCode.NOT_IMPLEMENTED, "NotImplemented", "NotImplemented"),
    (ErrorCode.NOT_SUPPORTED, "NotSupported", "NotSupported"),
    (ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "PropertyConstraintViolation", "PropertyConstraintViolation"),
    (ErrorCode.PROTOCOL_ERROR, "ProtocolError", "ProtocolError"),
    (ErrorCode.SECURITY_ERROR, "SecurityError", "SecurityError"),
    (ErrorCode.TYPE_CONSTRAINT_VIOLATION, "TypeConstraintViolation", "TypeConstraintViolation"),
]
V16_CODES = {
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError", "FormationViolation",
    "PropertyConstraintViolation", "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError",
}  # fmt: skip


def test_code_table_covers_every_error_code() -> None:
    """The table below lists every ErrorCode, so a new code cannot skip its 1.6 spelling."""
    assert {code for code, _, _ in CODES} == set(ErrorCode)


@pytest.mark.parametrize(("code", "v16", "v201"), CODES)
def test_error_code_spelling_per_version(code: ErrorCode, v16: str, v201: str) -> None:
    """1.6 gets its own spellings (errata 5.2) and only codes 1.6 defines; 2.0.1 gets the code as is."""
    assert error_code_for(V16, code) == v16
    assert v16 in V16_CODES
    assert error_code_for(V201, code) == v201 == code.value


@pytest.mark.parametrize(("code", "v16", "v201"), CODES)
def test_encode_call_error_uses_the_versions_spelling(code: ErrorCode, v16: str, v201: str) -> None:
    """encode_call_error writes [4, id, code, description, {}] with the version's spelling of the code."""
    assert json.loads(encode_call_error(V16, "m1", code, "why")) == [4, "m1", v16, "why", {}]
    assert json.loads(encode_call_error(V201, "m1", code, "why")) == [4, "m1", v201, "why", {}]


@BOTH
@pytest.mark.parametrize(
    ("description", "details", "wire_description", "wire_details"),
    [
        ("", None, "", {}),
        ("x" * 300, None, "x" * 255, {}),  # 2.0.1 part 4: at most 255 characters
        ("ünïcødé", {"field": "status"}, "ünïcødé", {"field": "status"}),
        ("d", {}, "d", {}),
    ],
)
def test_encode_call_error_description_and_details(
    version: OcppVersion, description: str, details: dict[str, Any] | None, wire_description: str, wire_details: Any
) -> None:
    """The description is cut to 255 characters and details default to {} (never null)."""
    frame = json.loads(encode_call_error(version, UNREADABLE_ID, ErrorCode.GENERIC_ERROR, description, details))
    assert frame == [4, "-1", "GenericError", wire_description, wire_details]


@BOTH
def test_encoded_frames_parse_back(version: OcppVersion) -> None:
    """What we encode is what parse_frame reads: CALL, CALLRESULT and CALLERROR round-trip."""
    assert parse_frame(version, encode_call("c", "Reset", {"type": "Hard"})) == Call("c", "Reset", {"type": "Hard"})
    assert parse_frame(version, encode_call_result("r", {"status": "Accepted"})) == CallResult(
        "r", {"status": "Accepted"}
    )
    error = parse_frame(version, encode_call_error(version, "e", ErrorCode.NOT_SUPPORTED, "no"))
    assert error == CallError("e", "NotSupported", "no", {})
