"""Measurable tests of the research anchors (docs/security.md, "Coverage of the 31 measurable tests") that no
other file proved: HTTP header limits before the upgrade (#15), absurd JSON at the anchors' sizes (#17), a
retried CALL (#24), a command pending on a replaced session (#11), the call timeout and permessage-deflate (#31).

Every test runs the real server on loopback; a second station shows the server still serves.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from csms.config import OcppSettings
from csms.runtime.app import CentralSystem
from csms.runtime.registry import CLOSE_REPLACED
from tests.conftest import make_settings
from tests.databases import fetch_rows
from tests.hostile.attack import assert_serves, booted, invalid_json_code, running, wait_until, ws_url
from tests.http_api import admin_client
from tests.ocpp_client import RawClient, now_iso

pytestmark = pytest.mark.timeout(60)


# -- #15: header limits before the upgrade ---------------------------------------------------------------------


def _upgrade_request(port: int, identity: str, extra_headers: str) -> bytes:
    return (
        f"GET /ocpp/{identity} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: ocpp1.6\r\n"
        f"{extra_headers}"
        "\r\n"
    ).encode()


async def _answer_to(port: int, request: bytes) -> bytes:
    """Everything the server sends back before it closes the TCP connection (bounded wait)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            received += chunk
    except ConnectionResetError:
        pass
    writer.close()
    return received


@pytest.mark.parametrize(
    "extra_headers",
    [
        "".join(f"X-Filler-{i}: v\r\n" for i in range(129)),  # 6 handshake headers + 129 > 128
        f"X-Long: {'a' * 8192}\r\n",  # one header line over 8 KiB
    ],
    ids=["129-headers", "8KiB-line"],
)
async def test_too_many_or_too_long_headers_are_refused_before_the_upgrade(
    csms: CentralSystem, extra_headers: str
) -> None:
    """More than 128 headers, or a header line over 8 KiB, never gets a 101 and the connection is closed; a
    request just inside both limits is upgraded, and a real station is served meanwhile."""
    bystander = await booted(csms, "GOOD-HDR", "ocpp1.6")
    refused = await _answer_to(csms.ocpp_port, _upgrade_request(csms.ocpp_port, "HDR-1", extra_headers))
    assert refused.startswith(b"HTTP/1.1 431 "), refused[:200]  # Request Header Fields Too Large
    assert csms.registry.get("HDR-1") is None
    # Positive control: 120 headers in all, and a header line of 8,000 bytes, are fine.
    inside = "".join(f"X-Filler-{i}: v\r\n" for i in range(113)) + f"X-Long: {'a' * 8000}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", csms.ocpp_port)
    writer.write(_upgrade_request(csms.ocpp_port, "HDR-2", inside))
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    assert status.startswith(b"HTTP/1.1 101"), status
    writer.close()
    await assert_serves(bystander)
    await bystander.close()


# -- #17: JSON nested 100k deep, a 1 MB digit string in meterStart ---------------------------------------------


async def test_json_nested_100k_deep_gets_a_prompt_call_error(
    csms: CentralSystem, subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """100,000 levels of nesting (200 kB) is invalid JSON: CALLERROR id "-1" well before any timeout, no
    traceback in the log, and the station and another one keep being served."""
    client = await booted(csms, "NEST-1", subprotocol)
    bystander = await booted(csms, "GOOD-NEST", subprotocol)
    depth = 100_000
    await client.send_raw(f'[2,"n1","DataTransfer",{{"vendorId":"x","data":{"[" * depth}{"]" * depth}}}]')
    reply = await client.next_reply(timeout=10)
    assert reply[:3] == [4, "-1", invalid_json_code(subprotocol)], reply
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    await assert_serves(client)
    await assert_serves(bystander)
    await client.close()
    await bystander.close()


async def test_meter_start_of_a_million_digits_gets_a_prompt_call_error(
    csms: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1,000,000-digit meterStart (a 1 MB frame, under max_frame_bytes) is answered CALLERROR id "-1" before
    it becomes a Python int, with no traceback; nothing is stored."""
    client = await booted(csms, "DIGITS-1M", "ocpp1.6")
    bystander = await booted(csms, "GOOD-1M", "ocpp1.6")
    payload = f'{{"connectorId":1,"idTag":"T1","meterStart":{"9" * 1_000_000},"timestamp":"{now_iso()}"}}'
    frame = f'[2,"m1","StartTransaction",{payload}]'
    assert len(frame) < OcppSettings().max_frame_bytes
    await client.send_raw(frame)
    reply = await client.next_reply(timeout=10)
    assert reply[:3] == [4, "-1", "FormationViolation"], reply
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    async with admin_client(csms.api_port) as http:
        listed = await http.get("/transactions", params={"station_id": "DIGITS-1M"})
    assert listed.status_code == 200 and listed.json()["items"] == []
    await assert_serves(client)
    await assert_serves(bystander)
    await client.close()
    await bystander.close()


# -- #24: a CALL retried with the same id ----------------------------------------------------------------------


async def _transactions(system: CentralSystem, station_id: str) -> list[dict[str, Any]]:
    async with admin_client(system.api_port) as http:
        response = await http.get("/transactions", params={"station_id": station_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_v16_start_retried_with_the_same_id_gets_the_original_result(csms: CentralSystem) -> None:
    """A StartTransaction resent on the same connection with the same message id (the charger missed the
    answer) gets the original transactionId, and one transaction exists."""
    client = await booted(csms, "RETRY-16", "ocpp1.6")
    start = {"connectorId": 1, "idTag": "RFID-1", "meterStart": 100, "timestamp": now_iso()}
    frame = json.dumps([2, "start-1", "StartTransaction", start])
    await client.send_raw(frame)
    first = await client.next_reply()
    await client.send_raw(frame)
    again = await client.next_reply()
    assert first[:2] == again[:2] == [3, "start-1"], (first, again)
    assert again[2] == first[2]
    assert [t["id"] for t in await _transactions(csms, "RETRY-16")] == [first[2]["transactionId"]]
    await client.close()


async def test_v201_event_retried_with_the_same_id_is_applied_once(csms: CentralSystem) -> None:
    """A TransactionEvent resent with the same message id gets the same (empty) result and one transaction."""
    client = await booted(csms, "RETRY-201", "ocpp2.0.1")
    event = {
        "eventType": "Started",
        "timestamp": now_iso(),
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-RETRY-1"},
        "evse": {"id": 1, "connectorId": 1},
    }
    frame = json.dumps([2, "ev-1", "TransactionEvent", event])
    await client.send_raw(frame)
    first = await client.next_reply()
    await client.send_raw(frame)
    again = await client.next_reply()
    assert first == again and first[:2] == [3, "ev-1"], (first, again)
    assert len(await _transactions(csms, "RETRY-201")) == 1
    await client.close()


async def test_a_heartbeat_retried_with_the_same_id_gets_the_original_answer(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """The answer to a repeated identical CALL is the one the charger missed (same currentTime), not a new one;
    the same id with another payload on the same connection is a new message and is handled."""
    client = await booted(csms, "RETRY-HB", "ocpp1.6")
    heartbeat = json.dumps([2, "hb-1", "Heartbeat", {}])
    await client.send_raw(heartbeat)
    first = await client.next_reply()
    await asyncio.sleep(1.1)  # currentTime has whole-second (or finer) resolution: a new answer would differ
    await client.send_raw(heartbeat)
    assert await client.next_reply() == first
    for at, value in (("2026-12-07T10:00:00Z", "10"), ("2026-12-07T10:01:00Z", "20")):
        # a charger reusing one id for different messages loses nothing
        body = {"connectorId": 1, "meterValue": [{"timestamp": at, "sampledValue": [{"value": value}]}]}
        await client.send_raw(json.dumps([2, "hb-1", "MeterValues", body]))
        assert (await client.next_reply())[:2] == [3, "hb-1"]
    await client.close()
    rows = fetch_rows(tmp_path, "SELECT value FROM meter_values WHERE station_id = 'RETRY-HB' ORDER BY timestamp")
    assert [float(v) for (v,) in rows] == [10.0, 20.0]


async def test_v16_message_id_reused_after_a_reconnect_is_a_new_message(csms: CentralSystem) -> None:
    """1.6 chargers often restart their message counter on reconnect: the same id with other content on a new
    connection is a new message, not a duplicate."""
    client = await booted(csms, "REUSE-16", "ocpp1.6")
    await client.send_raw(
        json.dumps(
            [2, "1", "StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": now_iso()}]
        )
    )
    first = await client.next_reply()
    await client.close()
    client = await RawClient.open(ws_url(csms, "REUSE-16"), "ocpp1.6")
    await client.send_raw(
        json.dumps(
            [2, "1", "StartTransaction", {"connectorId": 2, "idTag": "B", "meterStart": 0, "timestamp": now_iso()}]
        )
    )
    second = await client.next_reply()
    assert first[0] == second[0] == 3, (first, second)
    assert first[2]["transactionId"] != second[2]["transactionId"]
    stored = {(t["id"], t["id_token"]) for t in await _transactions(csms, "REUSE-16")}
    assert stored == {(first[2]["transactionId"], "A"), (second[2]["transactionId"], "B")}
    await client.close()


# -- #11: a command pending on a replaced session --------------------------------------------------------------


async def test_command_pending_on_a_replaced_session_fails_at_once(tmp_path: Path, subprotocol: str) -> None:
    """When a new connection replaces one with a command in flight, the command fails 409 at once (not at the
    call timeout), the old connection is closed with 4000, and the next command reaches the new session."""
    async with running(make_settings(tmp_path, ocpp={"call_timeout": 300})) as system:
        old = await booted(system, "SWAP-1", subprotocol, answer=lambda action, payload: None)
        session = system.registry.get("SWAP-1")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            request = asyncio.create_task(http.post("/stations/SWAP-1/commands/reset", json={}))
            assert await wait_until(lambda: session.pending_call is not None, 10)
            new = await RawClient.open(ws_url(system, "SWAP-1"), subprotocol)
            response = await request
            assert response.status_code == 409, response.text
            assert response.json()["type"].endswith("station-offline")
            await asyncio.wait_for(old.connection.wait_closed(), 10)
            assert old.connection.close_code == CLOSE_REPLACED
            assert session.pending_call is None
            current = system.registry.get("SWAP-1")
            assert current is not None and current is not session
            assert (await http.post("/stations/SWAP-1/commands/reset", json={})).status_code == 200
        assert [action for action, _ in new.received_calls] == ["Reset"]
        await old.close()
        await new.close()


# -- #31: the call timeout and permessage-deflate --------------------------------------------------------------


async def test_call_to_silent_station_ends_at_the_call_timeout_not_before(tmp_path: Path) -> None:
    """The 504 comes when call_timeout has passed, not earlier, and not long after (the default is 30 s;
    2 s here); nothing is left pending."""
    assert OcppSettings().call_timeout == 30
    call_timeout = 2.0
    async with running(make_settings(tmp_path, ocpp={"call_timeout": call_timeout})) as system:
        station = await booted(system, "QUIET-1", "ocpp1.6", answer=lambda action, payload: None)
        session = system.registry.get("QUIET-1")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            began = time.monotonic()
            response = await http.post("/stations/QUIET-1/commands/reset", json={})
            waited = time.monotonic() - began
        assert response.status_code == 504, response.text
        assert call_timeout <= waited < call_timeout + 10, waited
        assert session.pending_call is None
        await station.close()


async def test_client_offering_permessage_deflate_gets_it(csms: CentralSystem, subprotocol: str) -> None:
    """RFC 7692: a client offering permessage-deflate gets it, and compressed traffic is served; a client that
    does not offer it is served uncompressed."""
    compressed = await booted(csms, "DEFLATE-1", subprotocol, compression="deflate")
    extensions = compressed.connection.response.headers.get("Sec-WebSocket-Extensions", "")  # type: ignore[union-attr]
    assert extensions.startswith("permessage-deflate"), extensions
    assert [type(e).__name__ for e in compressed.connection.protocol.extensions] == ["PerMessageDeflate"]
    await assert_serves(compressed)
    plain = await booted(csms, "DEFLATE-2", subprotocol, compression=None)
    assert "Sec-WebSocket-Extensions" not in plain.connection.response.headers  # type: ignore[union-attr]
    await assert_serves(plain)
    await compressed.close()
    await plain.close()


async def test_a_thousand_idle_unupgraded_connections_do_not_starve_a_station(tmp_path: Path) -> None:
    """1,000 TCP connections that never send a byte hold their slot until open_timeout, but a real station
    connects, boots and is served meanwhile; afterwards they are all dropped."""
    async with running(make_settings(tmp_path, ocpp={"open_timeout": 5.0})) as system:
        idle = [await asyncio.open_connection("127.0.0.1", system.ocpp_port) for _ in range(1000)]
        station = await booted(system, "BUSY-1", "ocpp1.6")
        await assert_serves(station)
        closed = await asyncio.gather(*(_closed_within(reader, 30) for reader, _ in idle))
        assert all(closed), f"{closed.count(False)} idle connections still open"
        await assert_serves(station)
        for _, writer in idle:
            writer.close()
        await station.close()


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(4096), timeout):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
