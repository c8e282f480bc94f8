"""Logins this process verified once are remembered (issue 6, anchor test #27): a station logging in again costs no
second argon2id, concurrent logins with one password share one verification, and a verification whose login gave
up still counts for the station's next attempt. Counted through the server's /metrics (csms_password_checks).
Real server, real websockets, real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.security.helpers import basic, handshake, set_security, ws_url

PASSWORD = "s3cret-Passw0rd-16"
# About a second per verification on this kind of machine (10 passes over 64 MiB): long enough that logins sent
# together all arrive while the first one's verification runs.
SLOW_HASH = {"hash_time_cost": 10, "hash_memory_kib": 65_536}


async def password_checks(system: CentralSystem) -> dict[str, float]:
    """csms_password_checks_total by ``how``, read from the server's /metrics."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.api_port}") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    counts = {"argon2": 0.0, "remembered": 0.0, "joined": 0.0}
    for line in response.text.splitlines():
        if line.startswith("csms_password_checks_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('how="', 1)[1].split('"', 1)[0]] = float(value)
    return counts


async def start(tmp_path: Path, **security: object) -> CentralSystem:
    system = CentralSystem(make_settings(tmp_path, security=security) if security else make_settings(tmp_path))
    await system.start()
    return system


async def test_a_station_logging_in_again_costs_no_second_argon2(csms: CentralSystem) -> None:
    await set_security(csms, "CP-R", profile=1, password=PASSWORD)
    url = ws_url(csms, "CP-R")
    for _ in range(3):
        assert (await handshake(url, basic("CP-R", PASSWORD)))[0] == 101
    assert await password_checks(csms) == {"argon2": 1, "remembered": 2, "joined": 0}
    # A wrong password is never remembered: each one costs its verification (and counts towards the throttle).
    for _ in range(2):
        assert (await handshake(url, basic("CP-R", PASSWORD + "x")))[0] == 401
    assert (await password_checks(csms))["argon2"] == 3
    assert (await handshake(url, basic("CP-R", PASSWORD)))[0] == 101
    assert await password_checks(csms) == {"argon2": 3, "remembered": 3, "joined": 0}


async def test_a_remembered_password_stops_working_once_it_is_replaced(csms: CentralSystem) -> None:
    """The memory binds a password to the stored hash: a new password (new hash, new salt) retires the old one at
    once, although the server verified and remembered it a moment before."""
    await set_security(csms, "CP-N", profile=1, password=PASSWORD)
    url = ws_url(csms, "CP-N")
    assert (await handshake(url, basic("CP-N", PASSWORD)))[0] == 101
    assert (await handshake(url, basic("CP-N", PASSWORD)))[0] == 101
    assert (await password_checks(csms))["remembered"] == 1
    await set_security(csms, "CP-N", profile=1, password="an0ther-Passw0rd-16")
    assert (await handshake(url, basic("CP-N", PASSWORD)))[0] == 401
    assert (await handshake(url, basic("CP-N", "an0ther-Passw0rd-16")))[0] == 101
    # Back to the first password: a new hash again, so it is verified afresh rather than taken from memory.
    await set_security(csms, "CP-N", profile=1, password=PASSWORD)
    before = await password_checks(csms)
    assert (await handshake(url, basic("CP-N", PASSWORD)))[0] == 101
    after = await password_checks(csms)
    assert after["argon2"] == before["argon2"] + 1
    assert after["remembered"] == before["remembered"]


async def test_concurrent_logins_with_one_password_share_one_verification(tmp_path: Path) -> None:
    system = await start(tmp_path, **SLOW_HASH)
    try:
        await set_security(system, "CP-S", profile=1, password=PASSWORD)
        url = ws_url(system, "CP-S")
        outcomes = await asyncio.gather(*(handshake(url, basic("CP-S", PASSWORD)) for _ in range(5)))
        assert [status for status, _, _ in outcomes] == [101] * 5
        assert await password_checks(system) == {"argon2": 1, "remembered": 0, "joined": 4}
        # Wrong passwords sent together share one verification too, and each login is refused.
        outcomes = await asyncio.gather(*(handshake(url, basic("CP-S", "wrong-Passw0rd-16")) for _ in range(3)))
        assert [status for status, _, _ in outcomes] == [401] * 3
        assert await password_checks(system) == {"argon2": 2, "remembered": 0, "joined": 6}
    finally:
        await system.stop()


async def test_a_verification_outlives_the_login_that_gave_up_and_admits_the_next_attempt(tmp_path: Path) -> None:
    """What a reconnect storm needs: the server's handshake times out while the password is still being hashed
    (the queue was long); the verification finishes anyway and the station's next attempt is admitted from memory
    instead of queueing for another argon2 run."""
    system = CentralSystem(make_settings(tmp_path, security=SLOW_HASH, ocpp={"open_timeout": 0.3}))
    await system.start()
    try:
        await set_security(system, "CP-G", profile=1, password=PASSWORD)
        url = ws_url(system, "CP-G")
        with pytest.raises((InvalidHandshake, OSError, TimeoutError, EOFError)):
            async with connect(url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-G", PASSWORD)):  # type: ignore[list-item]
                pass
        assert (await password_checks(system))["argon2"] == 1
        await asyncio.sleep(6)  # the one-second verification has long finished with nobody waiting for it
        assert (await handshake(url, basic("CP-G", PASSWORD)))[0] == 101
        assert await password_checks(system) == {"argon2": 1, "remembered": 1, "joined": 0}
    finally:
        await system.stop()


async def test_memory_can_be_turned_off(tmp_path: Path) -> None:
    system = await start(tmp_path, verified_logins_kept=0)
    try:
        await set_security(system, "CP-O", profile=1, password=PASSWORD)
        for _ in range(2):
            assert (await handshake(ws_url(system, "CP-O"), basic("CP-O", PASSWORD)))[0] == 101
        assert await password_checks(system) == {"argon2": 2, "remembered": 0, "joined": 0}
    finally:
        await system.stop()
