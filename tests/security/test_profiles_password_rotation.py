"""Password rotation over OCPP (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables BasicAuthPassword)
with simulated and raw stations, and the `csms security` CLI. Real server, real websockets, real SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from csms.cli import app
from csms.runtime.app import CentralSystem
from simulator.station import SimStation
from tests.conftest import make_settings
from tests.http_api import CLI_ENV, admin_client
from tests.ocpp_client import RawClient
from tests.security.helpers import BOOTS, basic, events, handshake, set_security, ws_url

OLD = "old-Passw0rd-0123"
NEW = "new-Passw0rd-4567"


@pytest.fixture
async def stations(csms: CentralSystem) -> AsyncIterator[list[SimStation]]:
    """Simulated stations started by a test, stopped before the server."""
    started: list[SimStation] = []
    yield started
    await asyncio.gather(*(station.stop() for station in started))


async def simulated(csms: CentralSystem, started: list[SimStation], identity: str, protocol: str) -> SimStation:
    station = SimStation(
        identity,
        f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
        protocol,
        password=OLD,
        response_timeout=5.0,
        backoff_s=(0.05, 0.2),
    )
    started.append(station)
    await station.start()
    await station.wait_connected(5.0)
    return station


async def rotate(csms: CentralSystem, identity: str, **body: Any) -> tuple[int, dict[str, Any]]:
    async with admin_client(csms.api_port) as http:
        response = await http.post(f"/stations/{identity}/security/rotate-password", json=body)
        result: dict[str, Any] = response.json()
        return response.status_code, result


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_accepted_rotation_retires_the_old_password(
    tmp_path: Path, csms: CentralSystem, stations: list[SimStation], protocol: str
) -> None:
    """After the simulated station accepts a generated password, the old one gets 401, the station reconnects
    with the new one, and neither password is in the database (the command audit is redacted)."""
    identity = f"ROT-{protocol[-3:]}"
    await set_security(csms, identity, profile=1, password=OLD)
    station = await simulated(csms, stations, identity, protocol)
    status, result = await rotate(csms, identity, generate_password=True)
    assert status == 200 and result["station_answer"] == "Accepted", result
    new = result["password"]
    assert result["rotation_pending"] is False
    assert (await handshake(ws_url(csms, identity), basic(identity, OLD)))[0] == 401
    await station.link.go_offline()
    station.link.go_online()
    await station.wait_connected(5.0)  # the simulator now logs in with the new password
    assert (await events(csms, station_id=identity, kind="PasswordRotated"))[0]["detail"] == "station answered Accepted"
    async with admin_client(csms.api_port) as http:
        audit = (await http.get(f"/stations/{identity}/events")).json()["items"]
    assert any("<redacted>" in json.dumps(item) for item in audit), audit
    for path in tmp_path.rglob("csms.db*"):
        content = path.read_bytes()
        assert new.encode() not in content and OLD.encode() not in content


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_rejected_rotation_keeps_the_old_password(csms: CentralSystem, protocol: str) -> None:
    """A station answering Rejected keeps its old password; the new one never works (A01.FR.04)."""
    identity = f"REJ-{protocol[-3:]}"
    await set_security(csms, identity, profile=1, password=OLD)

    def reject(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "ChangeConfiguration":
            return {"status": "Rejected"}
        item = payload["setVariableData"][0]
        return {
            "setVariableResult": [
                {"attributeStatus": "Rejected", "component": item["component"], "variable": item["variable"]}
            ]
        }

    client = await RawClient.open(ws_url(csms, identity), protocol, reject, additional_headers=basic(identity, OLD))
    await client.result("BootNotification", BOOTS[protocol])
    status, result = await rotate(csms, identity, password=NEW)
    assert status == 200 and result["station_answer"] == "Rejected"
    (action, payload) = client.received_calls[0]
    assert NEW in json.dumps(payload)  # the station itself does get the password
    assert (await handshake(ws_url(csms, identity), basic(identity, NEW)))[0] == 401
    assert (await events(csms, station_id=identity, kind="PasswordRotationFailed"))[0]["detail"].endswith("Rejected")
    await client.close()
    assert (await handshake(ws_url(csms, identity), basic(identity, OLD)))[0] == 101


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_reboot_required_keeps_both_passwords_until_the_station_uses_the_new_one(
    csms: CentralSystem, protocol: str
) -> None:
    """RebootRequired means the station stored the new password but applies it after a reboot (1.6 §5.3, 2.0.1
    SetVariableStatusEnum): both work until its first login with the new one, which retires the old; meanwhile
    another rotation is refused, since it would drop the password the station reboots with."""
    identity = f"RBT-{protocol[-3:]}"
    await set_security(csms, identity, profile=1, password=OLD)

    def reboot_required(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "ChangeConfiguration":
            return {"status": "RebootRequired"}
        item = payload["setVariableData"][0]
        return {
            "setVariableResult": [
                {"attributeStatus": "RebootRequired", "component": item["component"], "variable": item["variable"]}
            ]
        }

    client = await RawClient.open(
        ws_url(csms, identity), protocol, reboot_required, additional_headers=basic(identity, OLD)
    )
    await client.result("BootNotification", BOOTS[protocol])
    status, result = await rotate(csms, identity, password=NEW)
    assert status == 200 and result["station_answer"] == "RebootRequired", result
    assert result["rotation_pending"] is True
    (event,) = await events(csms, station_id=identity, kind="PasswordRotated")
    assert "RebootRequired" in event["detail"]
    status, result = await rotate(csms, identity, password="other-Passw0rd-89")
    assert status == 409 and "RebootRequired" in result["detail"], result
    assert len(client.received_calls) == 1  # the refused rotation sent nothing
    await client.close()
    # Until the reboot the station still logs in with the old password, as often as it needs to.
    assert (await handshake(ws_url(csms, identity), basic(identity, OLD)))[0] == 101
    assert (await handshake(ws_url(csms, identity), basic(identity, OLD)))[0] == 101
    # After the reboot it uses the new one: from then on the old one is refused.
    assert (await handshake(ws_url(csms, identity), basic(identity, NEW)))[0] == 101
    assert (await handshake(ws_url(csms, identity), basic(identity, OLD)))[0] == 401
    assert (await handshake(ws_url(csms, identity), basic(identity, NEW)))[0] == 101
    retired = await events(csms, station_id=identity, kind="PasswordRotated")
    assert len(retired) == 2 and "the old one is retired" in retired[0]["detail"], retired
    async with admin_client(csms.api_port) as http:
        shown = (await http.get(f"/stations/{identity}/security")).json()
    assert shown["rotation_pending"] is False, shown


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
@pytest.mark.parametrize("next_login", ["new", "old"])
async def test_unanswered_rotation_keeps_both_passwords_until_the_next_login_settles_it(
    tmp_path: Path, protocol: str, next_login: str
) -> None:
    """A station that never answers may have stored the new password (its answer lost): dropping it could lock the
    station out. Both stay valid; the station's next login decides: with the new one the old is retired, with the
    old one the new is dropped. The decision survives a restart of the server."""
    identity = f"TMO-{protocol[-3:]}-{next_login}"
    settings = make_settings(tmp_path, ocpp={"call_timeout": 0.5})
    system = CentralSystem(settings)
    await system.start()
    try:
        await set_security(system, identity, profile=1, password=OLD)
        silent = await RawClient.open(
            ws_url(system, identity), protocol, lambda action, payload: None, additional_headers=basic(identity, OLD)
        )
        await silent.result("BootNotification", BOOTS[protocol])
        status, result = await rotate(system, identity, password=NEW)
        assert status == 504 and result["type"].endswith("station-timeout"), result
        assert len(silent.received_calls) == 1
        (failed,) = await events(system, station_id=identity, kind="PasswordRotationFailed")
        assert "both passwords accepted" in failed["detail"], failed
        async with admin_client(system.api_port) as http:
            assert (await http.get(f"/stations/{identity}/security")).json()["rotation_pending"] is True
        status, result = await rotate(system, identity, password="other-Passw0rd-89")
        assert status == 409 and "Unanswered" in result["detail"], result
        await silent.close()
    finally:
        await system.stop()
    system = CentralSystem(settings)  # the open rotation is stored, not only held in memory
    await system.start()
    try:
        used, other = (NEW, OLD) if next_login == "new" else (OLD, NEW)
        assert (await handshake(ws_url(system, identity), basic(identity, used)))[0] == 101
        assert (await handshake(ws_url(system, identity), basic(identity, other)))[0] == 401
        assert (await handshake(ws_url(system, identity), basic(identity, used)))[0] == 101
        kind = "PasswordRotated" if next_login == "new" else "PasswordRotationFailed"
        settled = (await events(system, station_id=identity, kind=kind))[0]["detail"]
        assert settled.endswith("the old one is retired" if next_login == "new" else "the new one is dropped")
        async with admin_client(system.api_port) as http:
            assert (await http.get(f"/stations/{identity}/security")).json()["rotation_pending"] is False
    finally:
        await system.stop()


async def test_rotation_needs_a_connected_password_station(csms: CentralSystem) -> None:
    """Rotating an offline station is 409 station-offline; a profile 3 (certificate) station is 409; a password
    breaking the live version's rules is 422; the generic command routes refuse password keys."""
    await set_security(csms, "OFF-1", profile=1, password=OLD)
    status, result = await rotate(csms, "OFF-1", password=NEW)
    assert status == 409 and "not connected" in result["detail"]
    client = await RawClient.open(ws_url(csms, "OFF-1"), additional_headers=basic("OFF-1", OLD))
    await client.result("BootNotification", BOOTS["ocpp1.6"])
    status, result = await rotate(csms, "OFF-1", password="x" * 21)
    assert status == 422 and "16..20 bytes" in result["detail"]
    async with admin_client(csms.api_port) as http:
        response = await http.post(
            "/stations/OFF-1/commands/change-configuration", json={"key": "AuthorizationKey", "value": NEW}
        )
        assert response.status_code == 422 and "rotate-password" in response.json()["detail"]
    assert client.received_calls == []
    await set_security(csms, "OFF-1", profile=3)
    status, result = await rotate(csms, "OFF-1", password=NEW)
    assert status == 409 and "profiles 1 and 2" in result["detail"]
    await client.close()


async def cli(csms: CentralSystem, *args: str) -> Result:
    """Run the CLI in a thread: it calls the API synchronously, which the server on this loop must answer."""
    url = f"http://127.0.0.1:{csms.api_port}"
    return await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])


async def test_cli_sets_shows_rotates_and_lists_events(csms: CentralSystem, stations: list[SimStation]) -> None:
    """`csms security set/show/rotate/events` drive the same API: a generated password is printed once, a bad one
    is refused with the rule, a rotation reports the station's answer, events list the changes."""
    bad = await cli(csms, "security", "set", "CLI-1", "--profile", "1", "--password", "short", "--ocpp", "2.0.1")
    assert bad.exit_code == 1 and "16..40 characters" in bad.stderr
    created = await cli(csms, "security", "set", "CLI-1", "--profile", "1", "--password", OLD, "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["has_password"] is True
    await simulated(csms, stations, "CLI-1", "ocpp2.0.1")
    rotated = await cli(csms, "security", "rotate", "CLI-1", "--generate")
    assert rotated.exit_code == 0, rotated.output
    assert "station answered: Accepted" in rotated.stdout and "generated password (shown once): " in rotated.stdout
    shown = await cli(csms, "security", "show", "CLI-1", "--json")
    assert json.loads(shown.stdout)["profile"] == 1 and json.loads(shown.stdout)["password"] is None
    listed = await cli(csms, "security", "events", "--station", "CLI-1", "--json")
    kinds = [item["kind"] for item in json.loads(listed.stdout)]
    assert kinds == ["PasswordRotated", "PasswordSet", "ProfileChanged"]
