"""Malformed and hostile input over raw websocket frames against the real server, for OCPP 1.6 and 2.0.1.

Every test that leaves the offending connection open checks that the SAME connection still answers a Heartbeat
and that a second, well-behaved station on the same server is still served.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.config import Settings
from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import admin_client
from tests.ocpp_client import RawClient, now_iso

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Version:
    """What differs between the versions: subprotocol, sample payloads and the spelling of error codes."""

    subprotocol: str
    boot: dict[str, Any]
    status: Callable[..., dict[str, Any]]  # a valid StatusNotification payload, with overrides
    int_field: str  # an integer field of StatusNotification
    enum_field: str  # a required enum field of StatusNotification
    csms_action: tuple[str, dict[str, Any]]  # a CSMS -> charger action with a valid payload
    data_transfer: Callable[[Any], dict[str, Any]]
    format_violation: str
    occurrence_violation: str
    not_a_frame: str  # the code for a frame that is no OCPP-J message at all
    invalid_json: str

    def __str__(self) -> str:
        return self.subprotocol


def _status16(**overrides: Any) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": now_iso(), **overrides}


def _status201(**overrides: Any) -> dict[str, Any]:
    return {"timestamp": now_iso(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1, **overrides}


V16 = Version(
    subprotocol="ocpp1.6",
    boot={"chargePointVendor": "Acme", "chargePointModel": "AC22"},
    status=_status16,
    int_field="connectorId",
    enum_field="status",
    csms_action=("Reset", {"type": "Hard"}),
    data_transfer=lambda data: {"vendorId": "com.example", "data": data},
    format_violation="FormationViolation",  # 1.6 errata 5.2 keeps the historic spelling
    occurrence_violation="OccurenceConstraintViolation",
    not_a_frame="ProtocolError",
    invalid_json="FormationViolation",
)
V201 = Version(
    subprotocol="ocpp2.0.1",
    boot={"reason": "PowerUp", "chargingStation": {"model": "AC22", "vendorName": "Acme"}},
    status=_status201,
    int_field="evseId",
    enum_field="connectorStatus",
    csms_action=("Reset", {"type": "Immediate"}),
    data_transfer=lambda data: {"vendorId": "com.example", "data": data},
    format_violation="FormatViolation",
    occurrence_violation="OccurrenceConstraintViolation",
    not_a_frame="RpcFrameworkError",
    invalid_json="RpcFrameworkError",
)


@pytest.fixture(params=[V16, V201], ids=str)
def version(request: pytest.FixtureRequest) -> Version:
    result: Version = request.param
    return result


def ws_url(system: CentralSystem, identity: str) -> str:
    return f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{identity}"


async def booted(system: CentralSystem, identity: str, version: Version, **kwargs: Any) -> RawClient:
    client = await RawClient.open(ws_url(system, identity), version.subprotocol, **kwargs)
    assert (await client.result("BootNotification", version.boot))["status"] == "Accepted"
    return client


async def assert_serves(client: RawClient) -> None:
    reply = await client.call("Heartbeat", {})
    assert reply[0] == 3, reply
    assert reply[2]["currentTime"].endswith("Z")


def assert_call_error(reply: list[Any], message_id: str, code: str) -> None:
    assert reply[0] == 4, reply
    assert reply[1] == message_id, reply
    assert reply[2] == code, reply
    assert isinstance(reply[3], str) and len(reply[3]) <= 255
    assert reply[4] == {}


@dataclass
class Stations:
    client: RawClient  # sends the bad input
    bystander: RawClient  # a well-behaved station on the same server

    async def assert_both_served(self) -> None:
        await assert_serves(self.client)
        await assert_serves(self.bystander)

    async def reply_to(self, frame: str) -> list[Any]:
        await self.client.send_raw(frame)
        return await self.client.next_reply()


@pytest.fixture
async def stations(csms: CentralSystem, version: Version) -> AsyncIterator[Stations]:
    client = await booted(csms, "BAD-1", version)
    bystander = await booted(csms, "GOOD-1", version)
    try:
        yield Stations(client, bystander)
    finally:
        await client.close()
        await bystander.close()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[CentralSystem]:
    system = CentralSystem(settings)
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


def call_frame(message_id: str, action: str, payload: str) -> str:
    return f'[2,"{message_id}","{action}",{payload}]'


# -- frames that are not OCPP-J ------------------------------------------------------------------------------


async def test_invalid_json_gets_call_error_with_unreadable_id(stations: Stations, version: Version) -> None:
    """A frame that is not JSON is answered with id "-1" (1.6 FormationViolation, 2.0.1 RpcFrameworkError)."""
    reply = await stations.reply_to('[2,"j1","Heartbeat",{}')
    assert_call_error(reply, "-1", version.invalid_json)
    await stations.assert_both_served()


@pytest.mark.parametrize(
    ("frame", "message_id"),
    [
        ('{"messageTypeId":2}', "-1"),
        ('"Heartbeat"', "-1"),
        ("42", "-1"),
        ("null", "-1"),
        ("[]", "-1"),
        ("[2]", "-1"),
        ('[2,"n1"]', "n1"),
        ('[2,"n2","Heartbeat"]', "n2"),
        ('[2,"n3",7,{}]', "n3"),
        ('[2,"n4","Heartbeat",{},{}]', "n4"),
    ],
)
async def test_frame_that_is_not_an_ocpp_message_gets_call_error(
    stations: Stations, version: Version, frame: str, message_id: str
) -> None:
    """Valid JSON that is not an OCPP-J message is answered with the version's framework error, never ignored."""
    assert_call_error(await stations.reply_to(frame), message_id, version.not_a_frame)
    await stations.assert_both_served()


async def test_payload_that_is_not_an_object_is_a_format_violation(stations: Stations, version: Version) -> None:
    """A CALL whose payload is null or an array instead of an object is a format violation."""
    assert_call_error(await stations.reply_to('[2,"p1","Heartbeat",null]'), "p1", version.format_violation)
    assert_call_error(await stations.reply_to('[2,"p2","Heartbeat",[]]'), "p2", version.format_violation)
    await stations.assert_both_served()


@pytest.mark.parametrize("message_id", ['"' + "x" * 37 + '"', "42", "null", '""', '["m"]', "{}"])
async def test_bad_message_id_is_answered_with_unreadable_id(
    stations: Stations, version: Version, message_id: str
) -> None:
    """A messageId that is not a string of 1 to 36 characters is refused and answered with id "-1"."""
    reply = await stations.reply_to(f'[2,{message_id},"Heartbeat",{{}}]')
    assert_call_error(reply, "-1", version.not_a_frame)
    await stations.assert_both_served()


async def test_message_id_of_36_characters_is_accepted(stations: Stations) -> None:
    """The longest legal messageId (36 characters, a UUID) is accepted and echoed."""
    message_id = "0123456789abcdef0123456789abcdef0123"
    reply = await stations.reply_to(call_frame(message_id, "Heartbeat", "{}"))
    assert reply[0] == 3 and reply[1] == message_id


@pytest.mark.parametrize("type_id", [7, 6, 0, '"2"'])
async def test_unknown_message_type(stations: Stations, version: Version, type_id: int | str) -> None:
    """An unknown message type is ignored on 1.6 (OCPP-J 1.6 §4.1.3) and answered MessageTypeNotSupported on 2.0.1."""
    await stations.client.send_raw(f'[{type_id},"t1",{{}}]')
    if version is V16:
        assert await stations.client.no_reply_within(0.5)
    else:
        assert_call_error(await stations.client.next_reply(), "t1", "MessageTypeNotSupported")
    await stations.assert_both_served()


@pytest.mark.parametrize(
    "frame",
    ['[3,"never-asked",{}]', '[4,"never-asked","GenericError","oops",{}]', '[4,"never-asked","InternalError",""]'],
)
async def test_reply_for_no_outstanding_call_is_dropped(stations: Stations, frame: str) -> None:
    """A CALLRESULT or CALLERROR that answers nothing we sent gets no reply and the connection keeps serving."""
    await stations.client.send_raw(frame)
    assert await stations.client.no_reply_within(0.5)
    await stations.assert_both_served()


# -- payloads that break their schema ------------------------------------------------------------------------


async def test_wrong_type_in_payload_is_type_constraint_violation(stations: Stations, version: Version) -> None:
    """A string where the schema wants an integer is a TypeConstraintViolation naming the message."""
    reply = await stations.client.call("StatusNotification", version.status(**{version.int_field: "one"}))
    assert reply[0] == 4 and reply[2] == "TypeConstraintViolation", reply
    await stations.assert_both_served()


async def test_missing_required_field_is_occurrence_violation(stations: Stations, version: Version) -> None:
    """A missing required field is an occurrence violation, spelled OccurenceConstraintViolation on 1.6."""
    payload = version.status()
    del payload[version.enum_field]
    reply = await stations.client.call("StatusNotification", payload)
    assert reply[0] == 4 and reply[2] == version.occurrence_violation, reply
    await stations.assert_both_served()


async def test_extra_property_is_format_violation(stations: Stations, version: Version) -> None:
    """A property the schema does not define is FormationViolation on 1.6 and FormatViolation on 2.0.1."""
    reply = await stations.client.call("StatusNotification", version.status(bogus=1))
    assert reply[0] == 4 and reply[2] == version.format_violation, reply
    await stations.assert_both_served()


async def test_bad_enum_value_is_property_constraint_violation(stations: Stations, version: Version) -> None:
    """A value outside an enum is a PropertyConstraintViolation."""
    reply = await stations.client.call("StatusNotification", version.status(**{version.enum_field: "Sleeping"}))
    assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    await stations.assert_both_served()


@pytest.mark.parametrize("timestamp", ["2025-03-01T10:00:00", "2025-03-01 10:00:00Z", "yesterday", "2025-03-01"])
async def test_timestamp_without_offset_is_rejected(stations: Stations, version: Version, timestamp: str) -> None:
    """A timestamp that is not RFC 3339 with an offset (naive, space-separated, a date) is refused."""
    reply = await stations.client.call("StatusNotification", version.status(timestamp=timestamp))
    assert reply[0] == 4 and reply[2] == version.format_violation, reply
    await stations.assert_both_served()


async def test_timestamp_with_offset_is_accepted(stations: Stations, version: Version) -> None:
    """Positive control: a timestamp with a non-UTC offset is valid RFC 3339 and accepted."""
    reply = await stations.client.call("StatusNotification", version.status(timestamp="2025-03-01T10:00:00.5+02:00"))
    assert reply == [3, reply[1], {}]


async def test_naive_timestamp_nested_in_meter_values_is_rejected(stations: Stations, version: Version) -> None:
    """A naive timestamp deep inside MeterValues is refused too, not only at the top level."""
    sample = {"timestamp": "2025-03-01T10:00:00", "sampledValue": [{"value": "1" if version is V16 else 1}]}
    payload: dict[str, Any] = {"meterValue": [sample]}
    payload["connectorId" if version is V16 else "evseId"] = 1
    reply = await stations.client.call("MeterValues", payload)
    assert reply[0] == 4 and reply[2] == version.format_violation, reply
    await stations.assert_both_served()


# -- actions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["FooBar", "heartbeat", "StartTransactionX", "../../v201/schemas/ResetRequest"])
async def test_unknown_action_is_not_implemented(stations: Stations, action: str) -> None:
    """An action the version does not define (including path-like names) is answered NotImplemented."""
    reply = await stations.client.call(action, {})
    assert reply[0] == 4 and reply[2] == "NotImplemented", reply
    await stations.assert_both_served()


async def test_other_versions_action_is_not_implemented(stations: Stations, version: Version) -> None:
    """An action of the other OCPP version is unknown in this one: NotImplemented."""
    action = "TransactionEvent" if version is V16 else "StartTransaction"
    reply = await stations.client.call(action, {})
    assert reply[0] == 4 and reply[2] == "NotImplemented", reply


async def test_csms_action_sent_by_charger_is_not_supported(stations: Stations, version: Version) -> None:
    """A known action that only the CSMS sends (Reset) is recognised but NotSupported when a charger sends it."""
    action, payload = version.csms_action
    reply = await stations.client.call(action, payload)
    assert reply[0] == 4 and reply[2] == "NotSupported", reply
    await stations.assert_both_served()


# -- resource limits -------------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_json_deeper_than_the_parser_allows_is_invalid_json(stations: Stations, version: Version) -> None:
    """JSON nested 2000 levels deep cannot be parsed: CALLERROR with id "-1", and the server keeps serving."""
    reply = await stations.reply_to(call_frame("d1", "DataTransfer", f'{{"vendorId":"x","data":{nested(2000)}}}'))
    assert_call_error(reply, "-1", version.invalid_json)
    await stations.assert_both_served()


@pytest.mark.parametrize("depth", [100, 1000])
async def test_deeply_nested_payload_is_format_violation(stations: Stations, version: Version, depth: int) -> None:
    """A payload nested deeper than any OCPP message (here vendor data) is refused before it reaches storage."""
    reply = await stations.reply_to(call_frame("d2", "DataTransfer", f'{{"vendorId":"x","data":{nested(depth)}}}'))
    assert_call_error(reply, "d2", version.format_violation)
    await stations.assert_both_served()


async def test_moderately_nested_vendor_data_is_accepted(csms: CentralSystem) -> None:
    """Positive control: 2.0.1 DataTransfer data nested 20 levels deep is valid and answered."""
    client = await booted(csms, "NEST-1", V201)
    reply = await client.call("DataTransfer", {"vendorId": "x", "data": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]})
    assert reply[0] == 3 and reply[2]["status"] == "UnknownVendorId"
    await client.close()


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("18446744073709551615", "TypeConstraintViolation"),  # parsed as an int beyond int64
        ("9223372036854775808", "TypeConstraintViolation"),  # int64 max + 1
        ("18446744073709551616", "TypeConstraintViolation"),  # parsed as a float: not an integer
        ("1e300", "TypeConstraintViolation"),
        ("-99999999999999999999", "TypeConstraintViolation"),
    ],
)
async def test_huge_integer_is_type_constraint_violation(
    stations: Stations, version: Version, number: str, code: str
) -> None:
    """An integer field holding a number no database column can store is refused; nothing else breaks."""
    fields = _json(version.status(**{version.int_field: "@@"}))
    frame = call_frame("h1", "StatusNotification", fields.replace('"@@"', number))
    assert_call_error(await stations.reply_to(frame), "h1", code)
    await stations.assert_both_served()


async def test_huge_integer_in_vendor_data_is_kept_verbatim(
    stations: Stations, version: Version, csms: CentralSystem
) -> None:
    """Free-form vendor data may hold any JSON number: it is answered and stored exactly as sent."""
    data = '{"n":18446744073709551615}' if version.subprotocol == "ocpp2.0.1" else '"18446744073709551615"'
    frame = call_frame("h2", "DataTransfer", '{"vendorId":"x","messageId":"m","data":' + data + "}")
    reply = await stations.reply_to(frame)
    assert reply[:2] == [3, "h2"]
    stored = await csms.storage.list_events("BAD-1", "DataTransfer", 1, 0)
    assert stored[0]["payload"]["data"] in ({"n": 18446744073709551615}, "18446744073709551615")
    await stations.assert_both_served()


async def test_extreme_meter_values_are_stored_as_sent(csms: CentralSystem) -> None:
    """2.0.1 sampled values are JSON numbers: huge, tiny and exponent values are all answered and stored."""
    client = await booted(csms, "METER-1", V201)

    def meter_values(value: str) -> str:
        sample = f'{{"timestamp":"{now_iso()}","sampledValue":[{{"value":{value}}}]}}'
        return call_frame("mv", "MeterValues", f'{{"evseId":1,"meterValue":[{sample}]}}')

    for ordinary in ["1e300", "123456789012.5", "1E+05", "1e-300", "-40.5", "9.2e18"]:
        await client.send_raw(meter_values(ordinary))
        assert await client.next_reply() == [3, "mv", {}], ordinary
    await assert_serves(client)
    await client.close()


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
async def test_number_json_cannot_represent_is_invalid_json(stations: Stations, version: Version, number: str) -> None:
    """An infinite or NaN number is not JSON: CALLERROR with id "-1"."""
    reply = await stations.reply_to(call_frame("h3", "Heartbeat", f'{{"x":{number}}}'))
    assert_call_error(reply, "-1", version.invalid_json)
    await stations.assert_both_served()


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_oversized_frame_closes_with_1009(tmp_path: Path, version: Version, compression: str | None) -> None:
    """A frame larger than ocpp.max_frame_bytes (after inflating) closes that connection with 1009 only."""
    async with running(make_settings(tmp_path, ocpp={"max_frame_bytes": 4096})) as system:
        bystander = await booted(system, "GOOD-2", version)
        client = await booted(system, "BIG-1", version, compression=compression)
        reply = await client.call("DataTransfer", version.data_transfer("x" * 3000))
        assert reply[0] == 3, "a frame under the limit is answered"
        await client.send_raw(_json([2, "big", "DataTransfer", version.data_transfer("x" * 5000)]))
        await asyncio.wait_for(client.connection.wait_closed(), 5)
        assert client.connection.close_code == 1009
        await client.close()
        await assert_serves(bystander)
        again = await RawClient.open(ws_url(system, "BIG-1"), version.subprotocol)
        await assert_serves(again)  # the station reconnects and is still accepted
        await again.close()
        await bystander.close()


# -- the handshake ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ocpp/", 404),
        ("/ocpp/" + "x" * 49, 400),
        ("/ocpp/CP:1", 400),
        ("/ocpp/CP%3A1", 400),
        ("/ocpp/CP%2F1", 400),
        ("/ocpp/CP%2f1", 400),
        ("/ocpp/CP%ZZ", 400),
        ("/ocpp/CP%", 400),
        ("/ocpp/CP%4", 400),
        ("/ocpp/CP%FF", 400),
        ("/ocpp/CP%00", 400),
        ("/ocpp/%20", 400),
        ("/ocpp/CP1/", 404),
        ("/ocpp/a/b", 404),
        ("/ocpp", 404),
        ("/ocppx/CP1", 404),
        ("/OCPP/CP1", 404),
        ("/foo/CP1", 404),
        ("/", 404),
    ],
)
async def test_bad_identity_or_path_is_refused(csms: CentralSystem, version: Version, path: str, status: int) -> None:
    """A bad identity (empty, > 48 chars, ':', encoded '/', bad escapes) or a wrong path is refused over HTTP."""
    bystander = await booted(csms, "GOOD-3", version)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{csms.ocpp_port}{path}", subprotocols=[version.subprotocol]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == status
    await assert_serves(bystander)
    await bystander.close()


@pytest.mark.parametrize("identity", ["x" * 48, "CP%2D7", "%C3%9Cn%C3%AFc%C3%B8d%C3%A9", "CP1?token=abc"])
async def test_good_identity_is_accepted(csms: CentralSystem, identity: str) -> None:
    """Positive control: 48 characters, percent-encoded characters, non-ASCII and a query string are accepted."""
    client = await booted(csms, identity, V16)
    await assert_serves(client)
    await client.close()


@pytest.mark.parametrize("offered", [None, ["ocpp2.1"], ["OCPP1.6"], ["ocpp1.5", "ocpp2.0"]])
async def test_no_supported_subprotocol_closes_with_1002(
    csms: CentralSystem, version: Version, offered: list[str] | None
) -> None:
    """Without a supported subprotocol the handshake completes with none, then the server closes with 1002."""
    bystander = await booted(csms, "GOOD-4", version)
    url = ws_url(csms, "NOPROTO-1")
    async with connect(url, subprotocols=offered, open_timeout=5) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1002
    await assert_serves(bystander)
    await bystander.close()


async def test_server_prefers_201_when_both_are_offered(csms: CentralSystem) -> None:
    """When a charger offers ocpp1.6 and ocpp2.0.1 (any order, with ocpp2.1), the server picks ocpp2.0.1."""
    url = ws_url(csms, "BOTH-1")
    async with connect(url, subprotocols=["ocpp2.1", "ocpp1.6", "ocpp2.0.1"], open_timeout=5) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp2.0.1"


# -- station standing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unknown_status", ["Rejected", "Pending"])
async def test_actions_before_accepted_boot_get_security_error(
    tmp_path: Path, version: Version, unknown_status: str
) -> None:
    """An unknown station held as Rejected or Pending gets SecurityError for anything but BootNotification."""
    settings = make_settings(
        tmp_path,
        stations={"auto_register": False, "unknown_station_status": unknown_status},
        security={"refuse_unknown_identities": False},  # connect and wait for approval instead of 404
    )
    async with running(settings) as system:
        client = await RawClient.open(ws_url(system, "STRANGER-1"), version.subprotocol)
        boot = await client.result("BootNotification", version.boot)
        assert boot["status"] == unknown_status
        assert boot["interval"] > 0
        assert boot["currentTime"].endswith("Z")
        for action, payload in [("Heartbeat", {}), ("StatusNotification", version.status())]:
            reply = await client.call(action, payload)
            assert reply[0] == 4 and reply[2] == "SecurityError", reply
        # The connection stays open; once an operator accepts the station, its next boot is Accepted.
        async with admin_client(system.api_port, timeout=10) as http:
            response = await http.patch("/stations/STRANGER-1", json={"registration": "Accepted"})
            assert response.status_code == 200, response.text
        reply = await client.call("Heartbeat", {})
        assert reply[0] == 4 and reply[2] == "SecurityError", "acceptance takes effect at the next boot"
        assert (await client.result("BootNotification", version.boot))["status"] == "Accepted"
        await assert_serves(client)
        await client.close()


async def test_heartbeat_before_first_boot_gets_security_error(csms: CentralSystem, version: Version) -> None:
    """A never-seen station must boot first: Heartbeat before BootNotification is a SecurityError."""
    client = await RawClient.open(ws_url(csms, "EARLY-1"), version.subprotocol)
    reply = await client.call("Heartbeat", {})
    assert reply[0] == 4 and reply[2] == "SecurityError", reply
    assert (await client.result("BootNotification", version.boot))["status"] == "Accepted"
    await assert_serves(client)
    await client.close()


# -- duplicate connections -------------------------------------------------------------------------------------


@pytest.mark.parametrize("second", [V16, V201], ids=str)
async def test_second_connection_replaces_the_first(csms: CentralSystem, version: Version, second: Version) -> None:
    """A new connection with the same identity closes the old one with 4000 and serves without a new boot."""
    bystander = await booted(csms, "GOOD-5", version)
    first = await booted(csms, "TWIN-1", version)
    replacement = await RawClient.open(ws_url(csms, "TWIN-1"), second.subprotocol)
    await asyncio.wait_for(first.connection.wait_closed(), 5)
    assert first.connection.close_code == 4000
    await first.close()
    await assert_serves(replacement)  # already accepted: no BootNotification needed on reconnect
    assert csms.registry.get("TWIN-1") is not None
    assert csms.registry.get("TWIN-1").version == second.subprotocol.removeprefix("ocpp")  # type: ignore[union-attr]
    await assert_serves(bystander)
    await replacement.close()
    await bystander.close()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
