"""Role isolation, proven over the real API with real keys: every operation the server's OpenAPI document lists is
called by every role, and nobody reaches what is not theirs.

The world: sites ``north`` (operator ``op-n``) and ``south`` (operator ``op-s``), stations CP-N and CP-S wired
under them, drivers ``alice`` (token TAG-A) and ``bob`` (TAG-B). Alice has a session on CP-N, a booking at north and
a reservation there; Bob has a session on CP-S. Each operation below is aimed at something of Alice's or north's,
and names who may use it; everyone else must get 403 (a role that may never use the route) or 404 (a resource that
is not theirs, the same answer as a missing one), and nothing changes. An operation the table does not name fails
the test, so a new route cannot ship without its rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import ADMIN_HEADERS, bearer
from tests.integration.bookings_helpers import BOOKINGS, SMART, Api, ManualClock, RawStation, iso
from tests.integration.live_helpers import open_stream

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

ADMIN, OP_N, OP_S, ALICE, BOB = "admin", "op-n", "op-s", "alice", "bob"
EVERYONE = frozenset({ADMIN, OP_N, OP_S, ALICE, BOB})
STAFF = frozenset({ADMIN, OP_N, OP_S})
NORTH_STAFF = frozenset({ADMIN, OP_N})
NOT_SOUTH = frozenset({ADMIN, OP_N, ALICE, BOB})
ALICES = frozenset({ADMIN, OP_N, ALICE})  # Alice's things at north: she, north's operator and admins
ADMIN_ONLY = frozenset({ADMIN})
SELF = frozenset({ADMIN, ALICE})  # Alice's account and keys: not even north's operator


@dataclass
class World:
    system: CentralSystem
    clock: ManualClock
    headers: dict[str, dict[str, str]]
    ids: dict[str, Any] = field(default_factory=dict)
    stations: list[RawStation] = field(default_factory=list)

    def client(self, who: str | None) -> httpx.AsyncClient:
        headers = {} if who is None else self.headers[who]
        base = f"http://127.0.0.1:{self.system.api_port}/api/v1"
        return httpx.AsyncClient(base_url=base, headers=headers, timeout=30)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("roles")
    clock = ManualClock()
    system = CentralSystem(make_settings(tmp, smart_charging=SMART, bookings=BOOKINGS), clock=clock)
    await system.start()
    world = World(system, clock, {ADMIN: ADMIN_HEADERS})
    try:
        async with Api(system) as api:
            await api.site("north", {"CP-N": 1})
            await api.site("south", {"CP-S": 1})
            tariff = {"currency": "EUR", "prices": {"energy_per_kwh": "0.30"}}
            await api.call("PUT", "/sites/north/tariff", json=tariff)
            await api.call("PUT", "/tariffs/default", json=tariff)
            await api.driver_token("TAG-A", ALICE)
            await api.driver_token("TAG-B", BOB)
            for account, role, sites in ((OP_N, "operator", ["north"]), (OP_S, "operator", ["south"])):
                body = {"id": account, "name": account, "role": role, "site_ids": sites}
                await api.call("POST", "/accounts", 201, json=body)
            for account in (OP_N, OP_S, ALICE, BOB):
                key = await api.call("POST", f"/accounts/{account}/api-keys", 201, json={"name": "app"})
                world.headers[account] = bearer(key["key"])
            spare = await api.call("POST", f"/accounts/{ALICE}/api-keys", 201, json={"name": "spare"})
            world.ids["alice_spare_key"] = spare["id"]
            window = {"max_current_a": 50, "daily_start": "17:00", "daily_end": "19:00"}
            world.ids["window"] = (await api.call("POST", "/grid-nodes/north/limit-windows", 201, json=window))["id"]
            booking = await api.book(
                site_id="north",
                starts_at=iso(clock.now + timedelta(hours=3)),
                duration_minutes=60,
                id_token="TAG-A",
                account_id=ALICE,
            )
            world.ids["booking"] = booking["id"]
            north, south = RawStation("CP-N", answers=dict(VALID_ANSWERS)), RawStation("CP-S")
            world.stations += [await north.connect(system), await south.connect(system)]
            world.ids["tx_a"] = await _start(north, "TAG-A")
            world.ids["tx_b"] = await _start(south, "TAG-B")
            reserve = {"reservation_id": 77, "id_token": "TAG-A", "expiry": iso(clock.now + timedelta(hours=1))}
            await api.call("POST", "/stations/CP-N/commands/reserve-now", json={**reserve, "evse_id": 1})
            world.ids["reservation"] = 77
        yield world
    finally:
        for station in world.stations:
            await station.close()
        await system.stop()


async def _start(station: RawStation, token: str) -> int:
    assert station.client is not None
    start = {"connectorId": 1, "idTag": token, "meterStart": 0, "timestamp": iso(station_now())}
    transaction_id: int = (await station.client.result("StartTransaction", start))["transactionId"]
    await station.status(1, "Charging")
    return transaction_id


def station_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Probe:
    """One request aimed at Alice's or north's things, and who may make it."""

    allowed: frozenset[str]
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    # Destructive for the world (revoke, delete, cancel): only the refusals are tried.
    refusals_only: bool = False


PROFILE = {
    "id": 90,
    "stack_level": 1,
    "purpose": "TxDefaultProfile",
    "kind": "Absolute",
    "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16}]},
}
FAR = "2030-01-01T10:00:00Z"
COMMANDS: dict[str, Any] = {
    "remote-start": {"id_token": "TAG-A", "evse_id": 1},
    "remote-stop": {"transaction_id": "{tx_a}"},
    "reset": {"hard": False},
    "unlock-connector": {"evse_id": 1},
    "change-availability": {"operative": True},
    "trigger-message": {"message": "Heartbeat"},
    "get-configuration": {},
    "change-configuration": {"key": "HeartbeatInterval", "value": "300"},
    "get-variables": {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
    "set-variables": {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "300"}]},
    "get-base-report": {"request_id": 1},
    "clear-cache": {},
    "send-local-list": {"version": 1, "full": True},
    "get-local-list-version": {},
    "set-charging-profile": {"evse_id": 1, "profile": PROFILE},
    "clear-charging-profile": {"profile_id": 90},
    "get-charging-profiles": {"request_id": 2},
    "get-composite-schedule": {"evse_id": 1, "duration": 60},
    "reserve-now": {"reservation_id": 78, "id_token": "TAG-A", "expiry": FAR, "evse_id": 1},
    "cancel-reservation": {"reservation_id": 78},
    "update-firmware": {"location": "https://example.com/fw.bin", "retrieve_at": FAR},
    "get-log": {"location": "https://example.com/upload"},
    "data-transfer": {"vendor_id": "Acme"},
}
# What CP-N answers where {"status": "Accepted"} would break the 1.6 schema (a bad answer is a 502 of its own).
VALID_ANSWERS: dict[str, dict[str, Any]] = {
    "GetLocalListVersion": {"listVersion": 1},
    "GetDiagnostics": {},
    "UnlockConnector": {"status": "Unlocked"},
    "UpdateFirmware": {},
}
# A driver's app may start a session with the driver's own token and stop the driver's own session.
DRIVER_COMMANDS = {"remote-start", "remote-stop"}


def probes() -> dict[tuple[str, str], Probe]:
    """Every /api/v1 operation: (method, path template) -> the probe. Paths are filled in by ``_fill``."""
    table: dict[tuple[str, str], Probe] = {
        # accounts and keys
        ("GET", "/me"): Probe(EVERYONE),
        ("GET", "/accounts"): Probe(ADMIN_ONLY),
        ("POST", "/accounts"): Probe(ADMIN_ONLY, {"name": "x", "role": "driver"}),
        ("GET", "/accounts/{account_id}"): Probe(SELF),
        ("PATCH", "/accounts/{account_id}"): Probe(ADMIN_ONLY, {"name": "Alice"}),
        ("GET", "/accounts/{account_id}/api-keys"): Probe(SELF),
        ("POST", "/accounts/{account_id}/api-keys"): Probe(SELF, {"name": "another"}),
        ("DELETE", "/accounts/{account_id}/api-keys/{key_id}"): Probe(SELF, refusals_only=True),
        # stations, transactions, id tokens, reservations
        ("GET", "/stations"): Probe(STAFF),
        ("GET", "/stations/{station_id}"): Probe(NORTH_STAFF),
        ("PATCH", "/stations/{station_id}"): Probe(NORTH_STAFF, {"registration": "Accepted"}),
        ("GET", "/stations/{station_id}/events"): Probe(NORTH_STAFF),
        ("GET", "/stations/{station_id}/variables"): Probe(NORTH_STAFF),
        ("GET", "/transactions"): Probe(EVERYONE),
        ("GET", "/transactions/{transaction_id}"): Probe(ALICES),
        ("GET", "/transactions/{transaction_id}/meter-values"): Probe(ALICES),
        ("GET", "/transactions/{transaction_id}/cost"): Probe(ALICES),
        ("GET", "/id-tokens"): Probe(frozenset({ADMIN, ALICE, BOB})),
        ("GET", "/id-tokens/{token}"): Probe(SELF),
        ("PUT", "/id-tokens/{token}"): Probe(ADMIN_ONLY, {"owner": ALICE}),
        ("DELETE", "/id-tokens/{token}"): Probe(ADMIN_ONLY, refusals_only=True),
        ("GET", "/reservations/{reservation_id}"): Probe(ALICES),
        # grid
        ("GET", "/grid-nodes"): Probe(STAFF),
        ("POST", "/grid-nodes"): Probe(NORTH_STAFF, {"id": "north-feeder", "parent_id": "north", "max_current_a": 10}),
        ("GET", "/grid-nodes/{node_id}"): Probe(NORTH_STAFF),
        ("PATCH", "/grid-nodes/{node_id}"): Probe(NORTH_STAFF, {"max_current_a": 100}),
        ("DELETE", "/grid-nodes/{node_id}"): Probe(ADMIN_ONLY, refusals_only=True),
        ("GET", "/sites"): Probe(STAFF),
        ("GET", "/grid-nodes/{node_id}/limit-windows"): Probe(NORTH_STAFF),
        ("POST", "/grid-nodes/{node_id}/limit-windows"): Probe(
            NORTH_STAFF, {"max_current_a": 60, "daily_start": "20:00", "daily_end": "21:00"}
        ),
        ("GET", "/grid-nodes/{node_id}/limit-windows/{window_id}"): Probe(NORTH_STAFF),
        ("DELETE", "/grid-nodes/{node_id}/limit-windows/{window_id}"): Probe(NORTH_STAFF, refusals_only=True),
        ("PUT", "/grid-nodes/{node_id}/unmanaged-load"): Probe(NORTH_STAFF, {"unmanaged_a": [0, 0, 0]}),
        ("GET", "/station-wirings"): Probe(STAFF),
        ("GET", "/stations/{station_id}/wiring"): Probe(NORTH_STAFF),
        ("PUT", "/stations/{station_id}/wiring"): Probe(NORTH_STAFF, {"node_id": "north", "max_current_a": 16}),
        ("DELETE", "/stations/{station_id}/wiring"): Probe(NORTH_STAFF, refusals_only=True),
        # smart charging
        ("GET", "/sites/{site_id}/plan"): Probe(NORTH_STAFF),
        ("GET", "/sites/{site_id}/load"): Probe(NORTH_STAFF),
        ("GET", "/charging-sessions"): Probe(EVERYONE),
        ("GET", "/charging-sessions/{station_id}/{evse_id}"): Probe(ALICES),
        ("PATCH", "/charging-sessions/{station_id}/{evse_id}"): Probe(ALICES, {"energy_wh": 20000}),
        ("POST", "/smart-charging/replan"): Probe(STAFF),
        # connectors and availability
        ("GET", "/connector-specs"): Probe(EVERYONE),
        ("GET", "/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec"): Probe(NOT_SOUTH),
        ("PUT", "/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec"): Probe(
            NORTH_STAFF, {"connector_type": "Type2"}
        ),
        ("DELETE", "/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec"): Probe(
            NORTH_STAFF, refusals_only=True
        ),
        ("GET", "/availability"): Probe(EVERYONE),
        ("GET", "/sites/{site_id}/availability"): Probe(NOT_SOUTH),
        ("GET", "/stations/{station_id}/availability"): Probe(NOT_SOUTH),
        ("GET", "/stations/{station_id}/connectors/{evse_id}/{connector_id}/availability"): Probe(NOT_SOUTH),
        ("GET", "/sites/{site_id}/live"): Probe(NORTH_STAFF),
        # analytics (a driver's own figures are GET /analytics/users)
        ("GET", "/analytics/patterns"): Probe(NORTH_STAFF, params={"site_id": "north"}),
        ("GET", "/analytics/users"): Probe(NOT_SOUTH, params={"site_id": "north"}),
        ("GET", "/analytics/utilisation"): Probe(NORTH_STAFF, params={"site_id": "north"}),
        ("GET", "/analytics/load"): Probe(NORTH_STAFF, params={"site_id": "north"}),
        # bookings
        ("POST", "/bookings"): Probe(ALICES, "{booking_body}"),
        ("GET", "/bookings"): Probe(EVERYONE),
        ("GET", "/bookings/{booking_id}"): Probe(ALICES),
        ("POST", "/bookings/{booking_id}/cancel"): Probe(ALICES, refusals_only=True),
        ("GET", "/sites/{site_id}/booking-rules"): Probe(NOT_SOUTH),
        ("PUT", "/sites/{site_id}/booking-rules"): Probe(NORTH_STAFF, {"no_overlap": False}),
        ("GET", "/sites/{site_id}/free-slots"): Probe(NOT_SOUTH, params={"before": FAR, "duration_minutes": 30}),
        # charger security
        ("GET", "/stations/{station_id}/security"): Probe(NORTH_STAFF),
        ("PUT", "/stations/{station_id}/security"): Probe(NORTH_STAFF, {"profile": 0}),
        ("POST", "/stations/{station_id}/security/rotate-password"): Probe(
            NORTH_STAFF, {"generate_password": True}, refusals_only=True
        ),
        ("GET", "/security-events"): Probe(STAFF),
        # money
        ("GET", "/tariffs"): Probe(EVERYONE),
        ("GET", "/tariffs/default"): Probe(EVERYONE),
        ("PUT", "/tariffs/default"): Probe(ADMIN_ONLY, {"currency": "EUR", "prices": {"energy_per_kwh": "0.40"}}),
        ("DELETE", "/tariffs/default"): Probe(ADMIN_ONLY, refusals_only=True),
        ("GET", "/sites/{site_id}/tariff"): Probe(NORTH_STAFF),
        ("PUT", "/sites/{site_id}/tariff"): Probe(
            NORTH_STAFF, {"currency": "EUR", "prices": {"energy_per_kwh": "0.30"}}
        ),
        ("DELETE", "/sites/{site_id}/tariff"): Probe(NORTH_STAFF, refusals_only=True),
        ("GET", "/sites/{site_id}/session-rules"): Probe(NORTH_STAFF),
        ("PUT", "/sites/{site_id}/session-rules"): Probe(NORTH_STAFF, {"max_charging_minutes": None}),
        ("POST", "/quotes"): Probe(NOT_SOUTH, "{quote_body}"),
    }
    for name in COMMANDS:
        allowed = ALICES if name in DRIVER_COMMANDS else NORTH_STAFF
        table[("POST", f"/stations/{{station_id}}/commands/{name}")] = Probe(allowed, f"{{command:{name}}}")
    return table


# Served outside the request/response shape this walk checks; covered by their own tests.
NOT_WALKED = {
    ("GET", "/events"): "an endless SSE stream: role filtering in test_event_stream_shows_each_role_only_its_own",
}


def _fill(world: World, template: str) -> str:
    values = {
        "account_id": ALICE,
        "key_id": world.ids["alice_spare_key"],
        "station_id": "CP-N",
        "transaction_id": world.ids["tx_a"],
        "token": "TAG-A",
        "reservation_id": world.ids["reservation"],
        "node_id": "north",
        "site_id": "north",
        "window_id": world.ids["window"],
        "evse_id": 1,
        "connector_id": 1,
        "booking_id": world.ids["booking"],
    }
    return template.format(**values)


def _body(world: World, probe: Probe, who: str) -> Any:
    if not isinstance(probe.body, str):
        return probe.body
    later = iso(world.clock.now + timedelta(hours=30))
    if probe.body == "{booking_body}":
        body = {"site_id": "north", "starts_at": later, "duration_minutes": 30, "id_token": "TAG-A"}
        return body if who in (ALICE, BOB) else {**body, "account_id": ALICE}
    if probe.body == "{quote_body}":
        return {"site_id": "north", "starts_at": later, "ends_at": iso(world.clock.now + timedelta(hours=31))}
    name = probe.body.removeprefix("{command:").removesuffix("}")
    body = dict(COMMANDS[name])
    if name == "remote-stop":
        body["transaction_id"] = str(world.ids["tx_a"])
    return body


async def _operations(world: World) -> set[tuple[str, str]]:
    async with world.client(ADMIN) as http:
        document = (await http.get("/openapi.json")).json()
    prefix = "/api/v1"
    return {
        (method.upper(), path.removeprefix(prefix))
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method in item
    }


async def test_every_operation_has_a_rule(world: World) -> None:
    """The table covers exactly the operations the server serves: a new route must state who may use it."""
    served = await _operations(world)
    named = set(probes()) | set(NOT_WALKED)
    assert served - named == set(), "operations without a role rule in this test"
    assert named - served == set(), "rules for operations the server no longer serves"


async def test_without_a_key_every_operation_is_401(world: World) -> None:
    """No key, a malformed key, a key of ours with a wrong secret: 401 with a problem body, everywhere."""
    key_id = world.headers[ALICE]["Authorization"].split("_")[1]
    wrong = {
        None: {},
        "garbage": {"Authorization": "Bearer not-a-key"},
        "wrong secret": {"Authorization": f"Bearer csms_{key_id}_{'x' * 43}"},
        "basic": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    }
    base = f"http://127.0.0.1:{world.system.api_port}/api/v1"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for (method, template), probe in sorted(probes().items()):
            for label, headers in wrong.items():
                response = await http.request(
                    method, _fill(world, template), headers=headers, json=_body(world, probe, ALICE),
                    params=probe.params,
                )  # fmt: skip
                assert response.status_code == 401, (label, method, template, response.text)
                assert response.headers["content-type"] == "application/problem+json"


async def test_nobody_reaches_what_is_not_theirs(world: World) -> None:
    """Every operation, by every role not allowed: 403 or 404, never an answer with someone else's data."""
    failures: list[str] = []
    for (method, template), probe in sorted(probes().items()):
        for who in sorted(EVERYONE - probe.allowed):
            async with world.client(who) as http:
                response = await http.request(
                    method, _fill(world, template), json=_body(world, probe, who), params=probe.params
                )
            if response.status_code not in (403, 404):
                failures.append(f"{who} {method} {template}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_those_allowed_get_through(world: World) -> None:
    """The same operations, by those allowed: never refused for who they are (other answers, such as 409 for a
    conflict, are the operation's own business)."""
    failures: list[str] = []
    for (method, template), probe in sorted(probes().items()):
        if probe.refusals_only:
            continue
        for who in sorted(probe.allowed):
            async with world.client(who) as http:
                response = await http.request(
                    method, _fill(world, template), json=_body(world, probe, who), params=probe.params
                )
            if response.status_code in (401, 403, 404) or response.status_code >= 500:
                failures.append(f"{who} {method} {template}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_lists_show_each_role_only_its_own(world: World) -> None:
    """Lists everyone may read are filtered: a driver sees its own sessions, bookings and tokens; an operator
    its sites' stations, sessions and bookings."""

    async def items(who: str, path: str) -> list[dict[str, Any]]:
        async with world.client(who) as http:
            response = await http.get(path)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["items"]
        return found

    tx_a, tx_b = world.ids["tx_a"], world.ids["tx_b"]
    assert {t["id"] for t in await items(ALICE, "/transactions")} == {tx_a}
    assert {t["id"] for t in await items(BOB, "/transactions")} == {tx_b}
    assert {t["id"] for t in await items(OP_N, "/transactions")} == {tx_a}
    assert {t["id"] for t in await items(ADMIN, "/transactions")} >= {tx_a, tx_b}
    assert {t["token"] for t in await items(ALICE, "/id-tokens")} == {"TAG-A"}
    assert {t["token"] for t in await items(BOB, "/id-tokens")} == {"TAG-B"}
    assert {b["account_id"] for b in await items(BOB, "/bookings")} <= {BOB}
    assert world.ids["booking"] in {b["id"] for b in await items(ALICE, "/bookings")}
    assert world.ids["booking"] not in {b["id"] for b in await items(OP_S, "/bookings")}
    assert {s["id"] for s in await items(OP_N, "/stations")} == {"CP-N"}
    assert {s["id"] for s in await items(OP_S, "/stations")} == {"CP-S"}
    assert {s["station_id"] for s in await items(OP_S, "/charging-sessions")} == {"CP-S"}
    assert {s["transaction_id"] for s in await items(ALICE, "/charging-sessions")} == {tx_a}
    assert {s["id"] for s in await items(OP_S, "/sites")} == {"south"}
    assert {n["id"] for n in await items(OP_N, "/grid-nodes")} <= {"north", "north-feeder"}
    assert {s["site_id"] for s in await items(OP_S, "/availability")} == {"south"}
    assert {s["site_id"] for s in await items(BOB, "/availability")} == {"north", "south"}
    assert {w["station_id"] for w in await items(OP_S, "/station-wirings")} == {"CP-S"}


async def test_another_operators_site_looks_like_a_missing_one(world: World) -> None:
    """North's operator asking for south's things gets exactly what it gets for a site that does not exist."""
    async with world.client(OP_N) as http:
        for path in ("/sites/{}/availability", "/sites/{}/tariff", "/sites/{}/plan", "/grid-nodes/{}"):
            other = await http.get(path.format("south"))
            missing = await http.get(path.format("nowhere"))
            assert other.status_code == missing.status_code == 404, path
            assert other.json()["title"] == missing.json()["title"]


async def test_event_stream_shows_each_role_only_its_own(world: World) -> None:
    """Live events: a booking of Alice's at north reaches Alice, north's operator and admins, never Bob or
    south's operator; Bob's at south reaches Bob and not Alice."""
    later = world.clock.now + timedelta(hours=50)
    streams: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        for who in (ADMIN, OP_N, OP_S, ALICE, BOB):
            streams[who] = await stack.enter_async_context(open_stream(world.system, world.headers[who]))
        for account, site, token in ((ALICE, "north", "TAG-A"), (BOB, "south", "TAG-B")):
            body = {"site_id": site, "starts_at": iso(later), "duration_minutes": 30, "id_token": token}
            async with world.client(account) as http:
                response = await http.post("/bookings", json=body)
            assert response.status_code == 201, response.text
        seen: dict[str, set[str | None]] = {}
        for who, stream in streams.items():
            events = await stream.events_within(1.0)
            seen[who] = {e.data["data"].get("account_id") for e in events if e.kind == "booking.created"}
    assert seen[ADMIN] == {ALICE, BOB}
    assert seen[OP_N] == {ALICE}
    assert seen[OP_S] == {BOB}
    assert seen[ALICE] == {ALICE}
    assert seen[BOB] == {BOB}
