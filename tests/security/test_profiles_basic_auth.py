"""Security profiles 0 and 1 on the plain port: Basic auth before the upgrade, unknown identities, downgrades,
duplicates, stored hashes and throttling. Real server, real websockets, real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.databases import fetch_rows
from tests.http_api import admin_client
from tests.ocpp_client import RawClient
from tests.security.helpers import BOOTS, V16_BOOT, basic, events, handshake, set_security, ws_url

PASSWORD = "s3cret-Passw0rd-16"  # 18 characters: valid for 1.6 and 2.0.1


async def start(tmp_path: Path, **sections: dict[str, object]) -> CentralSystem:
    system = CentralSystem(make_settings(tmp_path, **sections))
    await system.start()
    return system


async def test_missing_or_wrong_credentials_get_401_before_upgrade_with_an_event(csms: CentralSystem) -> None:
    """Profile 1: no header, another user name or a wrong password each get 401 + WWW-Authenticate, no upgrade,
    and one security event each; the right password is upgraded (4 failures: one under the default lockout)."""
    await set_security(csms, "CP-1", profile=1, password=PASSWORD)
    url = ws_url(csms, "CP-1")
    for headers, kind in [
        (None, "AuthMissing"),
        ({"Authorization": "Bearer abc"}, "AuthMissing"),
        (basic("cp-1", PASSWORD), "UsernameMismatch"),  # exact, not case-folded
        (basic("CP-1", PASSWORD + "x"), "AuthFailed"),
    ]:
        status, response_headers, _ = await handshake(url, headers)
        assert status == 401, headers
        assert response_headers["WWW-Authenticate"].startswith("Basic ")
        assert (await events(csms, station_id="CP-1", limit=1))[0]["kind"] == kind
    assert (await handshake(url, basic("CP-1", PASSWORD)))[0] == 101
    client = await RawClient.open(url, additional_headers=basic("CP-1", PASSWORD))
    assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
    await client.close()


async def test_password_may_contain_colons_and_is_split_at_the_first(csms: CentralSystem) -> None:
    """The header is split at the first ':' so a password containing ':' works (2.0.1 passwordString allows it)."""
    await set_security(csms, "CP-C", profile=1, password="a:b:c:d:e:f:g:h:i")
    assert (await handshake(ws_url(csms, "CP-C"), basic("CP-C", "a:b:c:d:e:f:g:h:i")))[0] == 101
    assert (await handshake(ws_url(csms, "CP-C"), basic("CP-C", "a:b:c:d:e:f:g:h:j")))[0] == 401


async def test_hex_authorization_key_accepts_raw_bytes_and_the_hex_string(csms: CentralSystem) -> None:
    """A 1.6 AuthorizationKey given as hex works whether the charger sends the raw key bytes or the hex digits."""
    key = bytes(range(200, 220))  # 20 bytes, not UTF-8
    await set_security(csms, "CP-H", profile=1, password=key.hex(), encoding="hex", ocpp_version="1.6")
    url = ws_url(csms, "CP-H")
    assert (await handshake(url, basic("CP-H", key)))[0] == 101
    assert (await handshake(url, basic("CP-H", key.hex())))[0] == 101
    assert (await handshake(url, basic("CP-H", key.hex().upper())))[0] == 101
    assert (await handshake(url, basic("CP-H", key[:-1] + b"\x00")))[0] == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"password": "short15charsxyz", "ocpp_version": "2.0.1"}, "16..40 characters"),
        ({"password": "x" * 41, "ocpp_version": "2.0.1"}, "16..40 characters"),
        ({"password": "x" * 65, "ocpp_version": "2.0.1", "max_length": 64}, "16..64 characters"),
        ({"password": "has space in it 1234", "ocpp_version": "2.0.1"}, "letters, digits and *-_=:+|@."),
        ({"password": "x" * 15, "ocpp_version": "1.6"}, "16..20 bytes"),
        ({"password": "x" * 21, "ocpp_version": "1.6"}, "16..20 bytes"),
        ({"password": "ab" * 15, "ocpp_version": "1.6", "encoding": "hex"}, "32..40 hex digits"),
        ({"password": "zz" * 16, "ocpp_version": "1.6", "encoding": "hex"}, "hex digits"),
        ({"password": "ab" * 16, "ocpp_version": "2.0.1", "encoding": "hex"}, "never hex"),
        ({"password": "x" * 30}, "version is unknown"),
        ({}, "needs a password"),
    ],
)
async def test_password_rules_of_each_version_are_enforced_with_a_clear_message(
    csms: CentralSystem, body: dict[str, object], message: str
) -> None:
    """Passwords outside a version's length or charset rules are refused with 422 naming the rule; nothing stored."""
    async with admin_client(csms.api_port) as http:
        response = await http.put("/stations/CP-R/security", json={"profile": 1, **body})
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
        assert (await http.get("/stations/CP-R/security")).json()["profile"] == 0


async def test_valid_passwords_of_each_version_are_accepted(csms: CentralSystem) -> None:
    """The limits themselves are allowed: 16 and 40 (64 with maxLimit) characters for 2.0.1, 16..20 bytes or
    32..40 hex digits for 1.6."""
    for body in [
        {"password": "x" * 16, "ocpp_version": "2.0.1"},
        {"password": "A1*-_=:+|@." + "x" * 29, "ocpp_version": "2.0.1"},
        {"password": "x" * 64, "ocpp_version": "2.0.1", "max_length": 64},
        {"password": "!" * 20, "ocpp_version": "1.6"},
        {"password": "ab" * 16, "ocpp_version": "1.6", "encoding": "hex"},
        {"password": "AB" * 20, "ocpp_version": "1.6", "encoding": "hex"},
    ]:
        result = await set_security(csms, "CP-V", profile=1, **body)
        assert result["has_password"] and result["password"] is None


async def test_generated_passwords_follow_the_station_version_and_work(csms: CentralSystem) -> None:
    """A server-generated password is shown once, fits the version, and is the only thing that logs in."""
    for version, identity in [("ocpp1.6", "GEN-16"), ("ocpp2.0.1", "GEN-201")]:
        client = await RawClient.open(ws_url(csms, identity), version)
        await client.result("BootNotification", BOOTS[version])
        await client.close()
        result = await set_security(csms, identity, profile=1, generate_password=True)
        password = result["password"]
        if version == "ocpp1.6":
            assert len(password) == 40 and bytes.fromhex(password)  # a random 20-byte key as hex
        else:
            assert len(password) == 40 and password.isascii()
        assert (await handshake(ws_url(csms, identity), basic(identity, password)))[0] == 101
        async with admin_client(csms.api_port) as http:
            view = (await http.get(f"/stations/{identity}/security")).json()
        assert view["has_password"] and view["password"] is None


async def test_only_salted_hashes_are_stored_and_nothing_logs_the_password(
    tmp_path: Path, csms: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """The database file and the logs never contain the plaintext; two stations with one password get
    different hashes (salted)."""
    await set_security(csms, "CP-A", profile=1, password=PASSWORD)
    await set_security(csms, "CP-B", profile=1, password=PASSWORD)
    assert (await handshake(ws_url(csms, "CP-A"), basic("CP-A", PASSWORD)))[0] == 101
    assert (await handshake(ws_url(csms, "CP-A"), basic("CP-A", "wrong-" + PASSWORD)))[0] == 401
    hashes = [
        row[0] for row in fetch_rows(tmp_path, "SELECT password_hash FROM station_credentials ORDER BY station_id")
    ]
    assert all(h.startswith("$argon2id$") for h in hashes) and hashes[0] != hashes[1]
    for path in tmp_path.rglob("csms.db*"):  # on SQLite, the database file's bytes (and its WAL) themselves
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in caplog.text


async def test_unknown_identity_gets_404_when_auto_register_is_off(tmp_path: Path) -> None:
    """With auto-registration off, an identity that is neither registered nor provisioned gets 404 before the
    upgrade; a provisioned one connects with its password."""
    system = await start(tmp_path, stations={"auto_register": False})
    try:
        status, _, body = await handshake(ws_url(system, "NOBODY-1"))
        assert (status, body) == (404, "unknown charging station\n")
        assert (await events(system, station_id="NOBODY-1"))[0]["kind"] == "UnknownStation"
        await set_security(system, "KNOWN-1", profile=1, password=PASSWORD)
        assert (await handshake(ws_url(system, "KNOWN-1"), basic("KNOWN-1", PASSWORD)))[0] == 101
    finally:
        await system.stop()


# Identities with characters 1.6 tolerates but the 2.0.1 identifierString does not (URL-encoded where needed).
NOT_IDENTIFIER_STRINGS = ["CP~1", "CP%21", "CP%5E1", "%C3%9Cnic%C3%B8de", "CP%2C1", "CP(1)"]


@pytest.mark.parametrize("encoded", NOT_IDENTIFIER_STRINGS)
async def test_v201_identity_must_be_an_identifier_string(csms: CentralSystem, encoded: str) -> None:
    """2.0.1 part 4 §3.1.1: with the ocpp2.0.1 subprotocol the identity is an identifierString; any other gets 400
    before the upgrade and an IdentityRefused event. The same identity with ocpp1.6 connects (1.6 has no such
    rule); every identifierString character but '@' is accepted with 2.0.1 ('@' is refused for every version, as
    a URL delimiter)."""
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{encoded}"
    status, _, body = await handshake(url, subprotocols=("ocpp2.0.1",))
    assert status == 400 and "identifierString" in body, (status, body)
    (event,) = await events(csms, kind="IdentityRefused")
    assert "OCPP 2.0.1" in event["detail"], event
    # Offering both selects 2.0.1 (the server's preference), so the rule applies too.
    assert (await handshake(url, subprotocols=("ocpp1.6", "ocpp2.0.1")))[0] == 400
    assert (await handshake(url, subprotocols=("ocpp1.6",)))[0] == 101
    good = "Aa0*-_=+|.z"  # '@' too is an identifierString character, but refused for every version (see below)
    assert (await handshake(ws_url(csms, good), subprotocols=("ocpp2.0.1",)))[0] == 101


async def test_v16_identifier_string_rule_is_opt_in(tmp_path: Path) -> None:
    """security.v16_identifier_string applies the 2.0.1 rule to 1.6 stations too."""
    system = await start(tmp_path, security={"v16_identifier_string": True})
    try:
        url = f"ws://127.0.0.1:{system.ocpp_port}/ocpp/CP~16"
        status, _, body = await handshake(url, subprotocols=("ocpp1.6",))
        assert status == 400 and "identifierString" in body, (status, body)
        (event,) = await events(system, station_id="CP~16")
        assert event["kind"] == "IdentityRefused" and "OCPP 1.6" in event["detail"], event
        assert (await handshake(ws_url(system, "CP-16"), subprotocols=("ocpp1.6",)))[0] == 101
    finally:
        await system.stop()


async def test_unsecured_stations_are_refused_when_allow_unsecured_is_off(tmp_path: Path) -> None:
    """With security.allow_unsecured off, a station without credentials gets 401; one with profile 1 connects."""
    system = await start(tmp_path, security={"allow_unsecured": False})
    try:
        assert (await handshake(ws_url(system, "OPEN-1")))[0] == 401
        assert (await events(system, station_id="OPEN-1"))[0]["kind"] == "UnsecuredRefused"
        await set_security(system, "OPEN-1", profile=1, password=PASSWORD)
        assert (await handshake(ws_url(system, "OPEN-1"), basic("OPEN-1", PASSWORD)))[0] == 101
    finally:
        await system.stop()


async def test_tls_profiles_are_refused_on_the_plain_port_even_with_the_right_password(csms: CentralSystem) -> None:
    """A profile 2 or 3 station is never accepted over ws:// (no downgrade, A00.FR.002/.005)."""
    await set_security(csms, "CP-T", profile=2, password=PASSWORD)
    status, _, body = await handshake(ws_url(csms, "CP-T"), basic("CP-T", PASSWORD))
    assert status == 403 and "profile mismatch" in body
    await set_security(csms, "CP-T", profile=3)
    assert (await handshake(ws_url(csms, "CP-T"), basic("CP-T", PASSWORD)))[0] == 403
    assert [e["kind"] for e in await events(csms, station_id="CP-T", kind="ProfileMismatch")] == ["ProfileMismatch"] * 2


async def test_lowering_a_profile_needs_an_explicit_admin_downgrade(csms: CentralSystem) -> None:
    """Setting a lower profile than recorded is a 409 unless allow_downgrade is given; the change is an event."""
    await set_security(csms, "CP-D", profile=2, password=PASSWORD)
    async with admin_client(csms.api_port) as http:
        response = await http.put("/stations/CP-D/security", json={"profile": 1})
        assert response.status_code == 409 and "allow_downgrade" in response.json()["detail"]
    assert (await set_security(csms, "CP-D", profile=1, allow_downgrade=True))["profile"] == 1
    details = [e["detail"] for e in await events(csms, station_id="CP-D", kind="ProfileChanged")]
    assert details == ["security profile 2 -> 1", "security profile 0 -> 2"]


async def test_duplicate_with_wrong_credentials_is_refused_and_the_live_session_keeps_working(
    csms: CentralSystem,
) -> None:
    """A second connection for a live identity with a wrong password gets 401; the first one still answers
    calls and receives commands."""
    await set_security(csms, "CP-DUP", profile=1, password=PASSWORD)
    live = await RawClient.open(ws_url(csms, "CP-DUP"), additional_headers=basic("CP-DUP", PASSWORD))
    await live.result("BootNotification", V16_BOOT)
    assert (await handshake(ws_url(csms, "CP-DUP"), basic("CP-DUP", "not-the-password-1")))[0] == 401
    assert (await live.call("Heartbeat", {}))[0] == 3
    async with admin_client(csms.api_port) as http:
        response = await http.post("/stations/CP-DUP/commands/clear-cache", json={})
        assert response.status_code == 200 and response.json()["status"] == "Accepted"
    assert live.received_calls == [("ClearCache", {})]
    await live.close()


async def test_duplicate_with_valid_credentials_replaces_the_old_session(csms: CentralSystem) -> None:
    """An authenticated second connection takes over: the old one is closed with 4000, commands go to the new
    one, and a ConnectionReplaced event is stored."""
    await set_security(csms, "CP-NEW", profile=1, password=PASSWORD)
    old = await RawClient.open(ws_url(csms, "CP-NEW"), additional_headers=basic("CP-NEW", PASSWORD))
    await old.result("BootNotification", V16_BOOT)
    new = await RawClient.open(ws_url(csms, "CP-NEW"), additional_headers=basic("CP-NEW", PASSWORD))
    await new.result("BootNotification", V16_BOOT)
    with pytest.raises(ConnectionClosed):
        await old.connection.recv()
    assert old.connection.close_code == 4000
    async with admin_client(csms.api_port) as http:
        assert (await http.post("/stations/CP-NEW/commands/clear-cache", json={})).status_code == 200
    assert new.received_calls == [("ClearCache", {})]
    assert (await events(csms, station_id="CP-NEW", kind="ConnectionReplaced"))[0]["remote_ip"] == "127.0.0.1"
    await old.close()
    await new.close()


async def test_repeated_failures_lock_the_identity_without_checking_passwords(tmp_path: Path) -> None:
    """After N failures in the window the identity gets 429 with Retry-After, even with the right password, and
    a Throttled event; another identity is unaffected (lockout expiry: tests/unit/test_security_rules.py)."""
    system = await start(tmp_path, security={"failures_per_identity": 3, "lockout_seconds": 30})
    try:
        await set_security(system, "CP-L", profile=1, password=PASSWORD)
        await set_security(system, "CP-OK", profile=1, password=PASSWORD)
        url = ws_url(system, "CP-L")
        for _ in range(3):
            assert (await handshake(url, basic("CP-L", "guess-guess-guess")))[0] == 401
        status, headers, _ = await handshake(url, basic("CP-L", PASSWORD))
        assert status == 429 and headers["Retry-After"] == "30"
        assert (await events(system, station_id="CP-L", kind="Throttled"))[0]["detail"].startswith("identity locked")
        assert (await handshake(ws_url(system, "CP-OK"), basic("CP-OK", PASSWORD)))[0] == 101
    finally:
        await system.stop()


async def test_repeated_failures_from_one_ip_lock_that_ip_for_every_identity(tmp_path: Path) -> None:
    """Failures spread over many identities from one IP lock the IP: its next attempt gets 429 for any station."""
    system = await start(tmp_path, security={"failures_per_ip": 4, "failures_per_identity": 100})
    try:
        await set_security(system, "CP-X", profile=1, password=PASSWORD)
        for n in range(4):
            await set_security(system, f"CP-{n}", profile=1, password=PASSWORD)
            assert (await handshake(ws_url(system, f"CP-{n}"), basic(f"CP-{n}", "guess-guess-guess")))[0] == 401
        assert (await handshake(ws_url(system, "CP-X"), basic("CP-X", PASSWORD)))[0] == 429
        throttled = await events(system, kind="Throttled")
        assert throttled[0]["detail"].startswith("IP 127.0.0.1 locked") and throttled[0]["remote_ip"] == "127.0.0.1"
    finally:
        await system.stop()


async def test_an_identity_replaced_more_than_3_times_a_minute_is_flagged_as_flapping(csms: CentralSystem) -> None:
    """Five connections of one identity in a row replace it four times: four ConnectionReplaced events and one
    ConnectionFlapping (two devices sharing an identity, or a reconnect loop)."""
    clients = []
    for _ in range(5):
        client = await RawClient.open(ws_url(csms, "FLAP-1"))
        await client.result("BootNotification", V16_BOOT)
        clients.append(client)
    assert len(await events(csms, station_id="FLAP-1", kind="ConnectionReplaced")) == 4
    (flapping,) = await events(csms, station_id="FLAP-1", kind="ConnectionFlapping")
    assert flapping["detail"] == "more than 3 replacements within 60 s"
    for client in clients:
        await client.close()
