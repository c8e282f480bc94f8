"""Hostile frames against the real server over loopback: bombs, absurd values, floods and binary frames.

Complements tests/integration/test_bad_input.py (malformed frames, schema violations, nesting, identities). Every
test here ends by checking that the attacked server still serves a second, well-behaved station, and the attacks
that could cost memory measure it with tracemalloc against a generous bound.
"""

from __future__ import annotations

import asyncio
import functools
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import Opcode

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.hostile.attack import (
    assert_serves,
    booted,
    invalid_json_code,
    masked_frame,
    measure_memory,
    running,
    status_payload,
)
from tests.http_api import admin_client
from tests.ocpp_client import now_iso

pytestmark = pytest.mark.timeout(60)
MiB = 1_048_576


def _format_violation(subprotocol: str) -> str:
    return "FormationViolation" if subprotocol == "ocpp1.6" else "FormatViolation"


# -- permessage-deflate bomb -------------------------------------------------------------------------------------


@functools.cache
def deflate_bomb(prefix: bytes, filler: bytes, inflated_size: int, window_bits: int) -> bytes:
    """An RFC 7692 message body: ``prefix`` then ``filler`` repeated to ``inflated_size`` bytes, compressed.

    Built in 1 MiB steps so the test itself never holds the inflated text.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -window_bits)
    parts = [compressor.compress(prefix)]
    chunk = filler * (MiB // len(filler))
    for _ in range(inflated_size // len(chunk)):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    body = b"".join(parts)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]  # RFC 7692 §7.2.1: the sender removes the empty block's tail


async def test_deflate_bomb_closes_with_1009_and_memory_stays_bounded(tmp_path: Path, subprotocol: str) -> None:
    """A 32 KiB compressed frame that inflates to 32 MiB closes with 1009; the heap grows far less than 32 MiB."""
    async with running(make_settings(tmp_path)) as system:
        bystander = await booted(system, "GOOD-BOMB", subprotocol)
        client = await booted(system, "BOMB-1", subprotocol, compression="deflate")
        deflate = client.connection.protocol.extensions[0]
        window_bits = getattr(deflate, "remote_max_window_bits", 15)
        bomb = deflate_bomb(b'[2,"b1","DataTransfer",{"vendorId":"x","data":"', b"A" * 1024, 32 * MiB, window_bits)
        assert len(bomb) < 64 * 1024
        with measure_memory() as memory:
            client.connection.transport.write(masked_frame(bomb, rsv1=True))
            await asyncio.wait_for(client.connection.wait_closed(), 20)
        assert client.connection.close_code == 1009
        max_size = system.settings.ocpp.max_frame_bytes
        assert memory.peak_growth < 4 * max_size, f"peak heap grew {memory.peak_growth / MiB:.1f} MiB"
        await client.close()
        await assert_serves(bystander)
        await bystander.close()


# -- huge numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [5000, 500_000])
async def test_integer_with_thousands_of_digits_is_invalid_json(
    csms: CentralSystem, subprotocol: str, digits: int
) -> None:
    """A 5,000- or 500,000-digit integer (past Python's int digit cap) is answered as invalid JSON, id "-1"."""
    client = await booted(csms, "DIGITS-1", subprotocol)
    bystander = await booted(csms, "GOOD-DIGITS", subprotocol)
    number = "9" * digits
    if subprotocol == "ocpp1.6":
        payload = f'{{"connectorId":1,"idTag":"T1","meterStart":{number},"timestamp":"{now_iso()}"}}'
        frame = f'[2,"n1","StartTransaction",{payload}]'
    else:
        sample = f'{{"timestamp":"{now_iso()}","sampledValue":[{{"value":{number}}}]}}'
        frame = f'[2,"n1","MeterValues",{{"evseId":1,"meterValue":[{sample}]}}]'
    await client.send_raw(frame)
    reply = await client.next_reply()
    assert reply[:3] == [4, "-1", invalid_json_code(subprotocol)], reply
    await assert_serves(client)
    await assert_serves(bystander)
    await client.close()
    await bystander.close()


async def test_numeric_string_with_thousands_of_digits_is_kept_as_text(csms: CentralSystem) -> None:
    """A 1.6 sampled value of 5,000 digits (a string on the wire) is answered and kept verbatim, not as a number."""
    client = await booted(csms, "DIGITS-2", "ocpp1.6")
    value = "7" * 5000
    sample = {"timestamp": now_iso(), "sampledValue": [{"value": value, "measurand": "Voltage"}]}
    reply = await client.call("MeterValues", {"connectorId": 1, "meterValue": [sample]})
    assert reply[0] == 3, reply
    reply = await client.call(
        "StartTransaction", {"connectorId": 1, "idTag": "7" * 21, "meterStart": 0, "timestamp": now_iso()}
    )
    assert reply[:1] == [4] and reply[2] == "PropertyConstraintViolation", "an over-long idTag is refused"
    await assert_serves(client)
    await client.close()


@pytest.mark.parametrize("multiplier", ["2.0", "-9223372036854775809"])
async def test_meter_multiplier_given_as_a_float_is_answered(csms: CentralSystem, multiplier: str) -> None:
    """A 2.0.1 unitOfMeasure multiplier written as a float (2.0), or as an integer below int64 that the JSON parser
    turns into the float -2**63, passes the schema's integer; it is applied (or the value kept as text), answered.

    Fuzzing found it: Decimal.scaleb refused the float and the connection closed with 1011."""
    client = await booted(csms, "MULTIPLIER-1", "ocpp2.0.1")
    sample = (
        f'{{"timestamp":"{now_iso()}","sampledValue":[{{"value":1.5,"unitOfMeasure":{{"multiplier":{multiplier}}}}}]}}'
    )
    await client.send_raw(f'[2,"m1","MeterValues",{{"evseId":1,"meterValue":[{sample}]}}]')
    reply = await client.next_reply()
    assert reply == [3, "m1", {}], reply
    await assert_serves(client)
    await client.close()


async def test_sequence_number_beyond_64_bits_is_read_as_an_integer(csms: CentralSystem) -> None:
    """A 2.0.1 seqNo of -9223372036854775809 (read by the JSON parser as the float -2**63, inside the int64 bounds)
    is stored as the integer it equals; the transaction's next event is answered, not an InternalError.

    Fuzzing found it: the float seqNo made the next event of the transaction fail with a ValueError."""
    client = await booted(csms, "SEQNO-1", "ocpp2.0.1")
    base = '"triggerReason":"Authorized","transactionInfo":{"transactionId":"T-SEQ"}'
    for number, (event, seq_no) in enumerate([("Started", "-9223372036854775809"), ("Updated", "1")]):
        await client.send_raw(
            f'[2,"s{number}","TransactionEvent",{{"eventType":"{event}","timestamp":"{now_iso()}",'
            f'"seqNo":{seq_no},{base}}}]'
        )
        reply = await client.next_reply()
        assert reply[:2] == [3, f"s{number}"], reply
    await assert_serves(client)
    await client.close()


# -- timestamps in every field we store ---------------------------------------------------------------------------

# value, expected code (2.0.1 spelling; "format" = the version's format violation)
BAD_TIMESTAMPS: list[tuple[str, str]] = [
    ("0001-01-01T00:00:00+01:00", "PropertyConstraintViolation"),  # before year 1 in UTC: OverflowError
    ("9999-12-31T23:59:59-01:00", "PropertyConstraintViolation"),  # after year 9999 in UTC
    ("9999-12-31T23:59:59Z", "PropertyConstraintViolation"),  # any later arithmetic overflows
    ("0001-01-01T00:00:00Z", "PropertyConstraintViolation"),
    ("1969-12-31T23:59:59Z", "PropertyConstraintViolation"),
    ("2200-01-01T00:00:00Z", "PropertyConstraintViolation"),
    ("0000-01-01T00:00:00Z", "format"),  # RFC 3339 shape, but no year 0 in Python
    ("2025-03-01T10:00:00", "format"),  # no offset
    ("2022-02-29T10:00:00Z", "format"),  # no such day (SteVe #769)
    ("2025-13-01T10:00:00Z", "format"),
    ("1000000", "format"),  # CVE-2023-52096
    ("222222017-10-27T19:10:11Z", "format"),  # SteVe #1609
    ("garbage", "format"),
]


def _v16_meter(ts: str) -> dict[str, Any]:
    return {"timestamp": ts, "sampledValue": [{"value": "10"}]}


def _v201_meter(ts: str) -> dict[str, Any]:
    return {"timestamp": ts, "sampledValue": [{"value": 10}]}


def _tx_event(ts: str, meter_ts: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": ts,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-TS"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "T1", "type": "ISO14443"},
    }
    if meter_ts is not None:
        payload["meterValue"] = [_v201_meter(meter_ts)]
    return payload


# field name -> (subprotocol, action, payload with the timestamp under test)
TIMESTAMP_FIELDS: dict[str, tuple[str, str, Any]] = {
    "1.6 StatusNotification.timestamp": (
        "ocpp1.6",
        "StatusNotification",
        lambda t: status_payload("ocpp1.6", timestamp=t),
    ),
    "1.6 StartTransaction.timestamp": (
        "ocpp1.6",
        "StartTransaction",
        lambda t: {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": t},
    ),
    "1.6 StopTransaction.timestamp": (
        "ocpp1.6",
        "StopTransaction",
        lambda t: {"transactionId": 1, "meterStop": 10, "timestamp": t},
    ),
    "1.6 StopTransaction.transactionData.timestamp": (
        "ocpp1.6",
        "StopTransaction",
        lambda t: {"transactionId": 1, "meterStop": 10, "timestamp": now_iso(), "transactionData": [_v16_meter(t)]},
    ),
    "1.6 MeterValues.meterValue.timestamp": (
        "ocpp1.6",
        "MeterValues",
        lambda t: {"connectorId": 1, "meterValue": [_v16_meter(t)]},
    ),
    "2.0.1 StatusNotification.timestamp": (
        "ocpp2.0.1",
        "StatusNotification",
        lambda t: status_payload("ocpp2.0.1", timestamp=t),
    ),
    "2.0.1 TransactionEvent.timestamp": ("ocpp2.0.1", "TransactionEvent", lambda t: _tx_event(t)),
    "2.0.1 TransactionEvent.meterValue.timestamp": (
        "ocpp2.0.1",
        "TransactionEvent",
        lambda t: _tx_event(now_iso(), t),
    ),
    "2.0.1 MeterValues.meterValue.timestamp": (
        "ocpp2.0.1",
        "MeterValues",
        lambda t: {"evseId": 1, "meterValue": [_v201_meter(t)]},
    ),
}


async def test_absurd_or_invalid_timestamp_is_refused_in_every_stored_field(
    csms: CentralSystem, subprotocol: str
) -> None:
    """Year 1/9999, no offset, no such day, garbage: each stored timestamp field answers the specific CALLERROR."""
    fields = [field for field in TIMESTAMP_FIELDS.values() if field[0] == subprotocol]
    client = await booted(csms, "CLOCK-1", subprotocol)
    bystander = await booted(csms, "GOOD-CLOCK", subprotocol)
    for _, action, build in fields:
        for value, code in BAD_TIMESTAMPS:
            reply = await client.call(action, build(value))
            expected = _format_violation(subprotocol) if code == "format" else code
            assert reply[0] == 4 and reply[2] == expected, (action, value, reply)
    # Nothing was stored: no transaction exists, and every listing still answers.
    async with admin_client(csms.api_port) as http:
        transactions = await http.get("/transactions")
        assert transactions.status_code == 200, transactions.text
        assert transactions.json()["items"] == []
        for path in ["/stations", "/stations/CLOCK-1", "/stations/CLOCK-1/events", "/charging-sessions"]:
            response = await http.get(path)
            assert response.status_code == 200, (path, response.text)
    # Positive control: RFC 3339 allows a lower-case 't' and 'z', and a clock that never synced says 1970.
    for _, action, build in fields:
        for value in ["2025-03-01t10:00:00.5z", "1970-01-01T00:00:00Z"]:
            reply = await client.call(action, build(value))
            assert reply[0] == 3, (action, value, reply)
    await assert_serves(bystander)
    await client.close()
    await bystander.close()


# -- floods beyond one outstanding CALL ------------------------------------------------------------------------


async def test_call_flood_is_answered_in_order_with_bounded_memory(csms: CentralSystem, subprotocol: str) -> None:
    """500 CALLs sent without waiting are all answered, in arrival order; memory stays bounded; others are served."""
    client = await booted(csms, "FLOOD-1", subprotocol)
    bystander = await booted(csms, "GOOD-FLOOD", subprotocol)
    count = 500
    frames = [
        json.dumps([2, f"f{i}", "StatusNotification", status_payload(subprotocol)])
        if i % 2
        else json.dumps([2, f"f{i}", "Heartbeat", {}])
        for i in range(count)
    ]
    with measure_memory() as memory:
        for frame in frames:
            await client.send_raw(frame)
        await assert_serves(bystander)  # served while the flood is being worked off
        replies = [await client.next_reply(timeout=30) for _ in range(count)]
    assert [reply[1] for reply in replies] == [f"f{i}" for i in range(count)]
    assert all(reply[0] == 3 for reply in replies), [r for r in replies if r[0] != 3][:3]
    assert memory.peak_growth < 16 * MiB, f"peak heap grew {memory.peak_growth / MiB:.1f} MiB"
    await assert_serves(client)
    await client.close()
    await bystander.close()


# -- binary and non-UTF-8 frames -----------------------------------------------------------------------------------


async def test_binary_frame_is_answered_and_not_processed(csms: CentralSystem, subprotocol: str) -> None:
    """A binary frame (OCPP-J is text only) gets RpcFrameworkError (1.6: ProtocolError) and is not acted on."""
    client = await booted(csms, "BINARY-1", subprotocol)
    status = status_payload(
        subprotocol,
        **(
            {"status": "Faulted", "errorCode": "OtherError"}
            if subprotocol == "ocpp1.6"
            else {"connectorStatus": "Faulted"}
        ),
    )
    await client.send_raw(json.dumps([2, "b1", "StatusNotification", status]).encode())
    reply = await client.next_reply()
    code = "ProtocolError" if subprotocol == "ocpp1.6" else "RpcFrameworkError"
    assert reply[:3] == [4, "b1", code], reply
    await client.send_raw(b"\x00\xff not json")
    assert (await client.next_reply())[:3] == [4, "-1", code]
    async with admin_client(csms.api_port) as http:
        station = (await http.get("/stations/BINARY-1")).json()
    assert "Faulted" not in json.dumps(station), "the binary StatusNotification was not applied"
    await assert_serves(client)
    await client.close()


async def test_text_frame_with_invalid_utf8_closes_with_1007(csms: CentralSystem, subprotocol: str) -> None:
    """A text frame that is not UTF-8 closes that connection with 1007 (RFC 6455 §8.1); others are served."""
    bystander = await booted(csms, "GOOD-UTF8", subprotocol)
    client = await booted(csms, "UTF8-1", subprotocol, compression=None)
    client.connection.transport.write(masked_frame(b'[2,"u1","Heartbeat",{"x":"\xff\xfe"}]', Opcode.TEXT))
    await asyncio.wait_for(client.connection.wait_closed(), 10)
    assert client.connection.close_code == 1007
    await client.close()
    await assert_serves(bystander)
    await bystander.close()


# -- repeated attacks do not leak -----------------------------------------------------------------------------------

ATTACKS = [
    '[2,"a1","Heartbeat",{}',  # invalid JSON
    '[2,"a2","DataTransfer",{"vendorId":"x","data":' + "[" * 500 + "]" * 500 + "}]",  # deep nesting
    '[2,"a3","Heartbeat",{"x":1e400}]',  # infinity
    '[2,"a4","FooBar",{}]',  # unknown action
    '[7,"a5",{}]',  # unknown message type
    '[3,"never-asked",{}]',  # a reply for nothing
    '[2,"' + "x" * 37 + '","Heartbeat",{}]',  # an over-long id
    '[2,"a6","StatusNotification",{"connectorId":"x"}]',  # wrong types
]


async def test_repeated_attacks_leave_memory_flat(csms: CentralSystem, subprotocol: str) -> None:
    """50 rounds of eight malformed frames each leave the heap within 2 MiB of where it started."""
    client = await booted(csms, "LEAK-1", subprotocol)

    async def round_of_attacks() -> None:
        for frame in ATTACKS:
            await client.send_raw(frame)
        await client.send_raw('[2,"alive","Heartbeat",{}]')
        # Replies come in order: the Heartbeat's comes after every CALLERROR the attacks earned.
        replies = [await client.next_reply()]
        while replies[-1][1] != "alive" and len(replies) <= len(ATTACKS):
            replies.append(await client.next_reply())
        assert replies[-1][0] == 3
        assert all(reply[0] == 4 for reply in replies[:-1]), replies

    for _ in range(10):  # warm caches (schemas, log formatting) before the baseline
        await round_of_attacks()
    with measure_memory() as memory:
        for _ in range(50):
            await round_of_attacks()
    assert memory.growth < 2 * MiB, f"heap grew {memory.growth / MiB:.2f} MiB over 50 rounds"
    await client.close()
