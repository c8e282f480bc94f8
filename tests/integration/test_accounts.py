"""Accounts and API keys over the real API: keys stored hashed, revocation, expiry, disabled accounts, the
first-start admin key, and the CLI commands for accounts, keys, tokens and transactions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from csms.cli import app
from csms.errors import ConfigError
from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.databases import database_url
from tests.http_api import ADMIN_HEADERS, CLI_ENV, account_with_key, admin_client, bearer, driver_account


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def me(system: CentralSystem, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.api_port}/api/v1", headers=headers) as http:
        return await http.get("/me")


@pytest.mark.sqlite_only("dumps the whole SQLite file to look for the secret")
async def test_a_key_is_shown_once_and_stored_only_as_a_hash(csms: CentralSystem, tmp_path: Path) -> None:
    """The key text is in the creating answer only; the database holds its SHA-256, and the key authenticates."""
    async with admin_client(csms.api_port) as http:
        assert (await http.post("/accounts", json=driver_account("alice"))).status_code == 201
        created = (await http.post("/accounts/alice/api-keys", json={"name": "phone"})).json()
        listed = (await http.get("/accounts/alice/api-keys")).json()["items"]
    key = created["key"]
    assert key.startswith(f"csms_{created['id']}_") and len(key) > 50
    assert [k["id"] for k in listed] == [created["id"]] and all("key" not in k for k in listed)
    response = await me(csms, bearer(key))
    assert response.status_code == 200
    assert response.json()["id"] == "alice" and response.json()["role"] == "driver"
    dump = "\n".join(sqlite3.connect(tmp_path / "csms.db").iterdump())
    secret = key.split("_", 2)[2]
    assert secret not in dump
    assert created["id"] in dump


async def test_revoked_expired_and_disabled_keys_stop_working_at_once(tmp_path: Path) -> None:
    """Revoking, passing the expiry and disabling the account each turn the very next request into a 401."""
    clock = Clock()
    system = CentralSystem(make_settings(tmp_path), clock=clock)
    await system.start()
    try:
        alice = await account_with_key(system.api_port, "alice")
        async with admin_client(system.api_port) as http:
            soon = (clock.now + timedelta(hours=1)).isoformat()
            expiring = (await http.post("/accounts/alice/api-keys", json={"name": "t", "expires_at": soon})).json()
            spare = (await http.post("/accounts/alice/api-keys", json={"name": "spare"})).json()
            assert (await me(system, bearer(expiring["key"]))).status_code == 200
            clock.now += timedelta(hours=1)
            response = await me(system, bearer(expiring["key"]))
            assert response.status_code == 401 and "expired" in response.json()["detail"]
            assert response.headers["www-authenticate"].startswith("Bearer")
            states = {k["id"]: k["state"] for k in (await http.get("/accounts/alice/api-keys")).json()["items"]}
            assert states[expiring["id"]] == "expired"

            revoked = (await http.delete(f"/accounts/alice/api-keys/{spare['id']}")).json()
            assert revoked["state"] == "revoked"
            assert (await me(system, bearer(spare["key"]))).status_code == 401
            assert (await me(system, alice)).status_code == 200

            assert (await http.patch("/accounts/alice", json={"disabled": True})).json()["disabled"] is True
            assert (await me(system, alice)).status_code == 401
            assert (await http.patch("/accounts/alice", json={"disabled": False})).json()["disabled"] is False
            assert (await me(system, alice)).status_code == 200
    finally:
        await system.stop()


async def test_last_use_is_recorded_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    system = CentralSystem(make_settings(tmp_path), clock=clock)
    await system.start()
    try:
        alice = await account_with_key(system.api_port, "alice")

        async def last_used() -> Any:
            async with admin_client(system.api_port) as http:
                return (await http.get("/accounts/alice/api-keys")).json()["items"][0]["last_used_at"]

        first = clock.now
        await me(system, alice)
        clock.now += timedelta(seconds=30)
        await me(system, alice)
        assert datetime.fromisoformat(await last_used()) == first
        clock.now += timedelta(seconds=31)
        await me(system, alice)
        assert datetime.fromisoformat(await last_used()) == clock.now
    finally:
        await system.stop()


async def test_drivers_manage_their_own_keys_and_nothing_else(csms: CentralSystem) -> None:
    """A driver rotates its own key; another account's keys are a 404; account admin is a 403."""
    alice = await account_with_key(csms.api_port, "alice")
    await account_with_key(csms.api_port, "bob")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{csms.api_port}/api/v1", headers=alice) as http:
        new = await http.post("/accounts/alice/api-keys", json={"name": "new phone"})
        assert new.status_code == 201
        old_id = alice["Authorization"].split("_")[1]
        assert (await http.delete(f"/accounts/alice/api-keys/{old_id}")).status_code == 200
    assert (await me(csms, alice)).status_code == 401
    fresh = bearer(new.json()["key"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{csms.api_port}/api/v1", headers=fresh) as http:
        assert (await http.post("/accounts/bob/api-keys", json={"name": "x"})).status_code == 404
        assert (await http.get("/accounts/bob")).status_code == 404
        assert (await http.get("/accounts")).status_code == 403
        patched = await http.patch("/accounts/alice", json={"role": "admin"})
        assert patched.status_code == 403 and patched.json()["title"] == "Forbidden"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "x", "role": "operator", "site_ids": ["nowhere"]}, 422, "no site nowhere"),
        ({"name": "x", "role": "driver", "site_ids": ["north"]}, 422, "only operator accounts manage sites"),
        ({"name": "x", "role": "superuser"}, 422, "role"),
        ({"id": "has space", "name": "x", "role": "driver"}, 422, "id"),
        ({"id": "alice", "name": "again", "role": "driver"}, 409, "already exists"),
    ],
)
async def test_account_mistakes_get_a_problem_naming_the_field(
    csms: CentralSystem, body: dict[str, Any], status: int, fragment: str
) -> None:
    async with admin_client(csms.api_port) as http:
        assert (await http.post("/grid-nodes", json={"id": "north"})).status_code == 201
        assert (await http.post("/accounts", json=driver_account("alice"))).status_code == 201
        response = await http.post("/accounts", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.text


async def test_the_last_admin_cannot_lock_everyone_out(csms: CentralSystem) -> None:
    async with admin_client(csms.api_port) as http:
        body = {"id": "root", "name": "Root", "role": "admin"}
        assert (await http.post("/accounts", json=body)).status_code == 201
        response = await http.patch("/accounts/root", json={"disabled": True})
        assert response.status_code == 409 and "last enabled admin" in response.json()["detail"]
        assert (await http.post("/accounts", json={**body, "id": "root2"})).status_code == 201
        assert (await http.patch("/accounts/root", json={"role": "operator"})).status_code == 200


async def test_id_tokens_belong_only_to_existing_drivers(csms: CentralSystem) -> None:
    async with admin_client(csms.api_port) as http:
        await http.post("/accounts", json={"id": "op", "name": "Op", "role": "operator"})
        unknown = await http.put("/id-tokens/TAG-1", json={"owner": "ghost"})
        assert unknown.status_code == 422 and "no account ghost" in unknown.json()["detail"]
        operator = await http.put("/id-tokens/TAG-1", json={"owner": "op"})
        assert operator.status_code == 422 and "not a driver" in operator.json()["detail"]


async def test_first_start_writes_an_admin_key_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Without api.admin_token the API is closed to anonymous callers; the first start writes an admin key
    (mode 0600) and later starts keep it."""
    key_file = tmp_path / "secrets" / "admin-api-key"
    settings = make_settings(tmp_path, api={"admin_token": None, "bootstrap_key_file": str(key_file)})
    system = CentralSystem(settings)
    await system.start()
    try:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert (await me(system, {})).status_code == 401
        response = await me(system, bearer(key))
        assert response.status_code == 200 and response.json()["role"] == "admin"
        assert (await me(system, ADMIN_HEADERS)).status_code == 401  # no static token configured
    finally:
        await system.stop()
    system = CentralSystem(settings)
    await system.start()
    try:
        assert key_file.read_text().strip() == key
        assert (await me(system, bearer(key))).status_code == 200
    finally:
        await system.stop()


def test_a_short_static_admin_token_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.admin_token"):
        make_settings(tmp_path, api={"admin_token": "short"})


# -- CLI ----------------------------------------------------------------------------------------------------


async def cli(system: CentralSystem, *args: str, env: dict[str, str] | None = None) -> Result:
    url = f"http://127.0.0.1:{system.api_port}"
    return await asyncio.to_thread(CliRunner(env=env or CLI_ENV).invoke, app, [*args, "--api", url])


async def test_cli_creates_accounts_and_keys_that_work(csms: CentralSystem) -> None:
    """csms accounts create/set/list, keys create/list/revoke, accounts me with the new key, tokens set/list."""
    result = await cli(csms, "grid", "nodes", "add", "north")
    assert result.exit_code == 0, result.output
    operator = ("North Ops", "--role", "operator", "--id", "op-n", "--sites", "north")
    result = await cli(csms, "accounts", "create", *operator)
    assert result.exit_code == 0, result.output
    assert "op-n: North Ops, operator, sites north" in result.stdout
    result = await cli(csms, "keys", "create", "op-n", "--name", "dashboard")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    result = await cli(csms, "accounts", "me", "--json", env={"CSMS_API_TOKEN": key})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["site_ids"] == ["north"]
    listed = await cli(csms, "accounts", "list", "--json")
    assert [a["id"] for a in json.loads(listed.stdout)] == ["op-n"]
    changed = await cli(csms, "accounts", "set", "op-n", "--priority", "fleet", "--reason", "depot", "--json")
    assert json.loads(changed.stdout)["priority_set_by"] == "admin"
    keys = json.loads((await cli(csms, "keys", "list", "op-n", "--json")).stdout)
    assert [k["state"] for k in keys] == ["active"]
    result = await cli(csms, "keys", "revoke", "op-n", keys[0]["id"])
    assert result.exit_code == 0 and "revoked" in result.stdout
    refused = await cli(csms, "accounts", "me", env={"CSMS_API_TOKEN": key})
    assert refused.exit_code == 1 and "401" in refused.stderr

    assert (await cli(csms, "accounts", "create", "Alice", "--role", "driver", "--id", "alice")).exit_code == 0
    assert (await cli(csms, "tokens", "set", "TAG-A", "--owner", "alice")).exit_code == 0
    tokens = json.loads((await cli(csms, "tokens", "list", "--json")).stdout)
    assert [(t["token"], t["owner"]) for t in tokens] == [("TAG-A", "alice")]
    nothing = await cli(csms, "accounts", "set", "alice")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr


async def test_cli_create_admin_issues_a_key_into_the_database(tmp_path: Path) -> None:
    """`csms keys create-admin --config` works without any API key, also while the server runs."""
    settings = make_settings(tmp_path)
    system = CentralSystem(settings)
    await system.start()
    try:
        config = tmp_path / "csms.toml"
        config.write_text(f'[database]\nurl = "{database_url(tmp_path)}"\n')
        out = tmp_path / "admin.key"
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["keys", "create-admin", "--config", str(config), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        response = await me(system, bearer(out.read_text().strip()))
        assert response.status_code == 200 and response.json()["role"] == "admin"
    finally:
        await system.stop()


async def test_cli_shows_a_transaction_with_its_cost(csms: CentralSystem) -> None:
    from tests.integration.bookings_helpers import RawStation, iso

    async with admin_client(csms.api_port) as http:
        assert (await http.post("/grid-nodes", json={"id": "site", "max_current_a": 100})).status_code == 201
        assert (await http.put("/stations/CP-1/wiring", json={"node_id": "site"})).status_code == 200
        tariff = {"currency": "EUR", "prices": {"energy_per_kwh": "0.30", "session_fee": "1.00"}}
        assert (await http.put("/sites/site/tariff", json=tariff)).status_code == 200
    station = await RawStation("CP-1").connect(csms)
    try:
        assert station.client is not None
        now = datetime.now(UTC)
        start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": iso(now)}
        transaction_id = (await station.client.result("StartTransaction", start))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 10_000, "timestamp": iso(now + timedelta(minutes=30))}
        await station.client.result("StopTransaction", stop)
    finally:
        await station.close()
    listed = json.loads((await cli(csms, "transactions", "list", "--json")).stdout)
    assert [t["id"] for t in listed] == [transaction_id]
    for _ in range(50):  # the cost is computed just after the stop is answered
        shown = await cli(csms, "transactions", "show", str(transaction_id))
        if "final" in shown.stdout:
            break
        await asyncio.sleep(0.1)
    assert shown.exit_code == 0, shown.output
    assert "10.00 kWh" in shown.stdout and "cost (final): 4.00 EUR" in shown.stdout


async def test_a_fleet_drivers_session_charges_at_the_accounts_priority(csms: CentralSystem) -> None:
    """The scheduler gets the account's priority (with its reason and who set it) for a session of its token;
    a session of a standard driver stays standard."""
    from tests.integration.bookings_helpers import RawStation, iso

    async with admin_client(csms.api_port) as http:
        assert (await http.post("/grid-nodes", json={"id": "depot", "max_current_a": 100})).status_code == 201
        for station in ("CP-1", "CP-2"):
            assert (await http.put(f"/stations/{station}/wiring", json={"node_id": "depot"})).status_code == 200
        van = {**driver_account("van-7"), "priority": "fleet", "priority_reason": "delivery van"}
        assert (await http.post("/accounts", json=van)).status_code == 201
        assert (await http.post("/accounts", json=driver_account("alice"))).status_code == 201
        assert (await http.put("/id-tokens/TAG-VAN", json={"owner": "van-7"})).status_code == 200
        assert (await http.put("/id-tokens/TAG-A", json={"owner": "alice"})).status_code == 200
        stations = [await RawStation("CP-1").connect(csms), await RawStation("CP-2").connect(csms)]
        try:
            for station, token in zip(stations, ("TAG-VAN", "TAG-A"), strict=True):
                assert station.client is not None
                start = {"connectorId": 1, "idTag": token, "meterStart": 0, "timestamp": iso(datetime.now(UTC))}
                await station.client.result("StartTransaction", start)
            van_session = (await http.get("/charging-sessions/CP-1/1")).json()
            alice_session = (await http.get("/charging-sessions/CP-2/1")).json()
        finally:
            for station in stations:
                await station.close()
    assert (van_session["priority"], van_session["priority_reason"]) == (1, "delivery van")
    assert van_session["priority_set_by"] == "admin"
    assert (alice_session["priority"], alice_session["priority_set_by"]) == (0, None)


async def test_a_token_presented_after_the_start_makes_the_session_the_drivers(csms: CentralSystem) -> None:
    """2.0.1: a session started by plugging in gets its token with a later Updated event; from then on it is the
    token owner's session (listed for the driver, token on the record)."""
    from tests.integration.bookings_helpers import RawStation, iso

    alice = await account_with_key(csms.api_port, "alice")
    async with admin_client(csms.api_port) as http:
        assert (await http.put("/id-tokens/TAG-A", json={"owner": "alice"})).status_code == 200
    station = await RawStation("CP-201", "ocpp2.0.1").connect(csms)
    try:
        assert station.client is not None
        event = {"timestamp": iso(datetime.now(UTC)), "transactionInfo": {"transactionId": "tx-9"}}
        started = {**event, "eventType": "Started", "triggerReason": "CablePluggedIn", "seqNo": 0}
        await station.client.result("TransactionEvent", {**started, "evse": {"id": 1, "connectorId": 1}})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{csms.api_port}/api/v1", headers=alice) as http:
            assert (await http.get("/transactions")).json()["items"] == []
            token = {"idToken": "TAG-A", "type": "ISO14443"}
            updated = {**event, "eventType": "Updated", "triggerReason": "Authorized", "seqNo": 1, "idToken": token}
            answer = await station.client.result("TransactionEvent", updated)
            assert answer["idTokenInfo"]["status"] == "Accepted"
            [mine] = (await http.get("/transactions")).json()["items"]
            assert mine["id_token"] == "TAG-A" and mine["charger_tx_id"] == "tx-9"
            assert (await http.get(f"/transactions/{mine['id']}")).status_code == 200
    finally:
        await station.close()
