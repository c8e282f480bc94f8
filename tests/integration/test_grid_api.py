"""Site trees, limit windows, unmanaged load and station wiring through the real HTTP API and a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import admin_client


def api(csms: CentralSystem) -> httpx.AsyncClient:
    return admin_client(csms.api_port, timeout=15)


@pytest.fixture
async def http(csms: CentralSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with api(csms) as client:
        yield client


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def build_tree(http: httpx.AsyncClient) -> None:
    """site (3 phases, 100 A) -> feeder (63 A) -> circuit (L1 only, 32 A); CP1 single-phase on circuit."""
    await ok(await http.post("/grid-nodes", json={"id": "site", "max_current_a": 100, "max_power_w": 69000}), 201)
    await ok(await http.post("/grid-nodes", json={"id": "feeder", "parent_id": "site", "max_current_a": 63}), 201)
    circuit = {"id": "circuit", "parent_id": "feeder", "max_current_a": 32, "phases": [1]}
    await ok(await http.post("/grid-nodes", json=circuit), 201)
    await ok(await http.put("/stations/CP1/wiring", json={"node_id": "circuit", "phases": 1}))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_site_tree_round_trip(http: httpx.AsyncClient) -> None:
    """Nodes created, listed, read, changed and deleted come back as written, with children and stations."""
    await build_tree(http)
    listed = (await ok(await http.get("/grid-nodes")))["items"]
    assert [n["id"] for n in listed] == ["circuit", "feeder", "site"]
    site = await ok(await http.get("/grid-nodes/site"))
    assert site["children"] == ["feeder"] and site["phases"] == [1, 2, 3] and site["voltage_v"] == 230
    assert site["limits_now"] == {"max_current_a": 100, "max_power_w": 69000}
    assert (await ok(await http.get("/grid-nodes/circuit")))["stations"] == ["CP1"]
    changed = await ok(await http.patch("/grid-nodes/feeder", json={"max_current_a": None, "voltage_v": 240}))
    assert changed["max_current_a"] is None and changed["voltage_v"] == 240 and changed["parent_id"] == "site"
    assert [n["id"] for n in (await ok(await http.get("/grid-nodes", params={"parent_id": "site"})))["items"]] == [
        "feeder"
    ]
    page = await ok(await http.get("/grid-nodes", params={"limit": 1, "offset": 1}))
    assert [n["id"] for n in page["items"]] == ["feeder"] and page["limit"] == 1 and page["offset"] == 1
    await ok(await http.post("/grid-nodes", json={"id": "spare", "parent_id": "site"}), 201)
    await ok(await http.delete("/grid-nodes/spare"), 204)
    await ok(await http.get("/grid-nodes/spare"), 404)


async def test_sites_nest_their_whole_subtree(http: httpx.AsyncClient) -> None:
    """GET /sites lists root nodes with children nested down to the wired stations."""
    await build_tree(http)
    await ok(await http.post("/grid-nodes", json={"id": "other-site"}), 201)
    sites = (await ok(await http.get("/sites")))["items"]
    assert [s["id"] for s in sites] == ["other-site", "site"]
    feeder = sites[1]["children"][0]
    assert feeder["id"] == "feeder"
    assert feeder["children"][0]["id"] == "circuit" and feeder["children"][0]["stations"] == ["CP1"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/grid-nodes", {"id": "x", "max_current_a": -1}, 422, "max_current_a"),
        ("POST", "/grid-nodes", {"id": "x", "max_power_w": -5}, 422, "max_power_w"),
        ("POST", "/grid-nodes", {"id": "x", "phases": [1, 4]}, 422, "phases must be distinct values of 1, 2, 3"),
        ("POST", "/grid-nodes", {"id": "x", "phases": [2, 2]}, 422, "phases must be distinct"),
        ("POST", "/grid-nodes", {"id": "x", "phases": []}, 422, "phases must be distinct"),
        ("POST", "/grid-nodes", {"id": "x", "voltage_v": 0}, 422, "voltage_v"),
        ("POST", "/grid-nodes", {"id": "a/b"}, 422, "body.id"),
        ("POST", "/grid-nodes", {"id": "x", "colour": "red"}, 422, "colour"),
        ("POST", "/grid-nodes", {"id": "x", "parent_id": "nowhere"}, 422, "unknown parent 'nowhere'"),
        ("POST", "/grid-nodes", {"id": "site"}, 409, "'site' already exists"),
        ("POST", "/grid-nodes", {"id": "x", "parent_id": "circuit"}, 409, "parent 'circuit' carries only L1"),
        ("PATCH", "/grid-nodes/site", {"parent_id": "circuit"}, 409, "own ancestor"),
        ("PATCH", "/grid-nodes/site", {"parent_id": "site"}, 409, "own ancestor"),
        ("PATCH", "/grid-nodes/feeder", {"phases": [2, 3]}, 409, "'circuit' carries phases L1"),
        ("PATCH", "/grid-nodes/circuit", {"phases": [2]}, 409, "station 'CP1' draws on L1"),
        ("PATCH", "/grid-nodes/site", {"phases": None}, 422, "phases cannot be null"),
        ("PATCH", "/grid-nodes/site", {"max_current_a": -3}, 422, "max_current_a"),
        ("PATCH", "/grid-nodes/nowhere", {"max_current_a": 3}, 404, "grid node nowhere not found"),
        ("DELETE", "/grid-nodes/feeder", None, 409, "'feeder' still has child nodes 'circuit'"),
        ("DELETE", "/grid-nodes/circuit", None, 409, "'circuit' still has wired stations 'CP1'"),
        ("DELETE", "/grid-nodes/nowhere", None, 404, "grid node nowhere not found"),
        ("GET", "/grid-nodes/nowhere", None, 404, "grid node nowhere not found"),
    ],
)
async def test_node_rules_give_the_right_status_naming_the_rule(
    http: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, status: int, fragment: str
) -> None:
    """Each node rule is a problem response with its status (422/404/409) and a detail naming node and rule."""
    await build_tree(http)
    response = await http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]
    assert [n["id"] for n in (await ok(await http.get("/grid-nodes")))["items"]] == ["circuit", "feeder", "site"]


async def test_not_a_number_is_refused(http: httpx.AsyncClient) -> None:
    """A NaN limit (JSON that Python would accept) is a 422, never stored."""
    body = b'{"id": "x", "max_current_a": NaN}'
    response = await http.post("/grid-nodes", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "max_current_a" in response.json()["detail"]


async def test_limit_windows_once_and_daily(http: httpx.AsyncClient) -> None:
    """Windows are added, listed, read and removed; one in force lowers the node's limit now."""
    await build_tree(http)
    now = datetime.now(UTC)
    once = {"start": iso(now - timedelta(minutes=1)), "end": iso(now + timedelta(hours=1)), "max_current_a": 20}
    added = await ok(await http.post("/grid-nodes/site/limit-windows", json=once), 201)
    assert added["kind"] == "once" and added["max_current_a"] == 20 and added["max_power_w"] is None
    daily = {"daily_start": "17:00", "daily_end": "20:00", "weekdays": [5, 1, 2], "timezone": "Europe/Berlin"}
    peak = await ok(await http.post("/grid-nodes/site/limit-windows", json={**daily, "max_power_w": 30000}), 201)
    assert peak == {
        "id": added["id"] + 1,
        "node_id": "site",
        "kind": "daily",
        "max_current_a": None,
        "max_power_w": 30000,
        "daily_start": "17:00",
        "daily_end": "20:00",
        "weekdays": [1, 2, 5],
        "timezone": "Europe/Berlin",
    }
    listed = (await ok(await http.get("/grid-nodes/site/limit-windows")))["items"]
    assert [w["id"] for w in listed] == [added["id"], peak["id"]]
    assert (await ok(await http.get(f"/grid-nodes/site/limit-windows/{peak['id']}"))) == peak
    site = await ok(await http.get("/grid-nodes/site"))
    assert site["limits_now"]["max_current_a"] == 20 and len(site["limit_windows"]) == 2
    await ok(await http.delete(f"/grid-nodes/site/limit-windows/{added['id']}"), 204)
    assert (await ok(await http.get("/grid-nodes/site")))["limits_now"]["max_current_a"] == 100
    await ok(await http.delete(f"/grid-nodes/site/limit-windows/{added['id']}"), 404)
    await ok(await http.get(f"/grid-nodes/feeder/limit-windows/{peak['id']}"), 404)


FUTURE = datetime(2099, 1, 1, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"start": iso(FUTURE), "end": iso(FUTURE), "max_current_a": 5}, 422, "must end after it starts"),
        ({"start": iso(FUTURE), "end": iso(FUTURE - timedelta(hours=1)), "max_current_a": 5}, 422, "end after"),
        ({"start": "2099-01-01T17:00:00", "end": iso(FUTURE), "max_current_a": 5}, 422, "body.start"),
        ({"start": iso(FUTURE), "max_current_a": 5}, 422, "needs both start and end"),
        ({"start": iso(FUTURE), "end": iso(FUTURE + timedelta(hours=1))}, 422, "needs max_current_a or max_power_w"),
        ({"start": iso(FUTURE), "end": iso(FUTURE + timedelta(hours=1)), "max_current_a": -1}, 422, "max_current_a"),
        ({"start": "2001-01-01T17:00:00Z", "end": "2001-01-01T18:00:00Z", "max_current_a": 5}, 422, "in the future"),
        ({"daily_start": "17:00", "daily_end": "17:00", "max_current_a": 5}, 422, "start and end at the same time"),
        ({"daily_start": "17:00", "max_current_a": 5}, 422, "needs both daily_start and daily_end"),
        ({"daily_start": "17:00+01:00", "daily_end": "18:00", "max_current_a": 5}, 422, "without an offset"),
        ({"daily_start": "17:00", "daily_end": "20:00", "timezone": "Mars/Olympus", "max_current_a": 5}, 422, "zone"),
        ({"daily_start": "17:00", "daily_end": "20:00", "weekdays": [0, 8], "max_current_a": 5}, 422, "weekdays"),
        (
            {"daily_start": "17:00", "daily_end": "20:00", "start": iso(FUTURE), "max_current_a": 5},
            422,
            "either start and end (once) or daily_start and daily_end",
        ),
        ({"start": iso(FUTURE), "end": iso(FUTURE), "timezone": "UTC", "max_current_a": 5}, 422, "end after"),
    ],
)
async def test_window_rules_give_the_right_status_naming_the_rule(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, fragment: str
) -> None:
    """Each limit-window rule is a 422 problem naming the field or rule; nothing is stored."""
    await build_tree(http)
    response = await http.post("/grid-nodes/site/limit-windows", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert (await ok(await http.get("/grid-nodes/site/limit-windows")))["items"] == []


async def test_window_on_unknown_node_is_not_found(http: httpx.AsyncClient) -> None:
    """Adding or listing windows of a node that does not exist is a 404 naming it."""
    body = {"start": iso(FUTURE), "end": iso(FUTURE + timedelta(hours=1)), "max_current_a": 5}
    response = await http.post("/grid-nodes/nowhere/limit-windows", json=body)
    assert response.status_code == 404 and "nowhere" in response.json()["detail"]
    assert (await http.get("/grid-nodes/nowhere/limit-windows")).status_code == 404


async def test_unmanaged_load_is_reported_per_phase(csms: CentralSystem, http: httpx.AsyncClient) -> None:
    """PUT unmanaged-load sets the node's live load, seen by the API and by the scheduler's model."""
    await build_tree(http)
    reported = await ok(await http.put("/grid-nodes/site/unmanaged-load", json={"unmanaged_a": [12.5, 8, 0]}))
    assert reported["unmanaged_a"] == [12.5, 8, 0] and reported["unmanaged_at"]
    assert (await ok(await http.get("/grid-nodes/site")))["unmanaged_a"] == [12.5, 8, 0]
    model = {n.id: n for n in csms.grid.config(datetime.now(UTC)).nodes}
    assert model["site"].unmanaged_a == (12.5, 8, 0)


@pytest.mark.parametrize(
    ("node", "body", "status", "fragment"),
    [
        ("site", {"unmanaged_a": [1, -1, 0]}, 422, "greater than or equal to 0"),
        ("site", {"unmanaged_a": [1, 2]}, 422, "unmanaged_a"),
        ("circuit", {"unmanaged_a": [1, 2, 0]}, 422, "node 'circuit' does not carry L2"),
        ("nowhere", {"unmanaged_a": [1, 2, 3]}, 404, "grid node nowhere not found"),
    ],
)
async def test_unmanaged_load_rules(
    http: httpx.AsyncClient, node: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    """Negative, incomplete or impossible load reports are refused with a message naming the rule."""
    await build_tree(http)
    response = await http.put(f"/grid-nodes/{node}/unmanaged-load", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


async def test_station_wiring_round_trip(http: httpx.AsyncClient) -> None:
    """A station (connected or not) is wired, read, listed, rewired and unwired; rotation letters are understood."""
    await build_tree(http)
    wiring = await ok(
        await http.put("/stations/CP2/wiring", json={"node_id": "feeder", "rotation": "STR", "phases": 1})
    )
    assert wiring == {
        "station_id": "CP2",
        "node_id": "feeder",
        "rotation": [2, 3, 1],
        "phases": 1,
        "max_current_a": 32.0,
        "grid_phases": [2],
    }
    assert await ok(await http.get("/stations/CP2/wiring")) == wiring
    rewired = await ok(await http.put("/stations/CP2/wiring", json={"node_id": "site", "max_current_a": 16}))
    assert rewired["rotation"] == [1, 2, 3] and rewired["grid_phases"] == [1, 2, 3]
    listed = (await ok(await http.get("/station-wirings")))["items"]
    assert [w["station_id"] for w in listed] == ["CP1", "CP2"]
    only_site = (await ok(await http.get("/station-wirings", params={"node_id": "site"})))["items"]
    assert [w["station_id"] for w in only_site] == ["CP2"]
    await ok(await http.delete("/stations/CP2/wiring"), 204)
    await ok(await http.get("/stations/CP2/wiring"), 404)
    await ok(await http.delete("/stations/CP2/wiring"), 404)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"node_id": "site", "rotation": [1, 1, 2]}, 422, "rotation must be a permutation of 1, 2, 3"),
        ({"node_id": "site", "rotation": "RSX"}, 422, "rotation must be a permutation"),
        ({"node_id": "site", "phases": 4}, 422, "body.phases"),
        ({"node_id": "site", "max_current_a": 0}, 422, "body.max_current_a"),
        ({"node_id": "nowhere"}, 422, "station 'CP9' is wired to unknown node 'nowhere'"),
        ({"node_id": "circuit"}, 409, "station 'CP9' draws on L1/L2/L3 but node 'circuit' carries only L1"),
        ({"node_id": "circuit", "phases": 1, "rotation": "231"}, 409, "draws on L2"),
        ({}, 422, "body.node_id"),
    ],
)
async def test_wiring_rules_give_the_right_status_naming_the_rule(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, fragment: str
) -> None:
    """Each wiring rule is a problem response naming the station, node or field; nothing is stored."""
    await build_tree(http)
    response = await http.put("/stations/CP9/wiring", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert (await http.get("/stations/CP9/wiring")).status_code == 404


async def test_grid_endpoints_require_the_admin_token(tmp_path: Path) -> None:
    """With api.admin_token set, grid endpoints refuse requests without the bearer token."""
    system = CentralSystem(make_settings(tmp_path, api={"admin_token": "s3cret-grid-admin-token"}))
    await system.start()
    try:
        async with api(system) as http:
            assert (await http.post("/grid-nodes", json={"id": "site"})).status_code == 401
            headers = {"Authorization": "Bearer s3cret-grid-admin-token"}
            assert (await http.post("/grid-nodes", json={"id": "site"}, headers=headers)).status_code == 201
    finally:
        await system.stop()


async def test_grid_setup_survives_a_restart(tmp_path: Path) -> None:
    """Nodes, windows, wiring and the last unmanaged load are all there after the server restarts."""
    settings = make_settings(tmp_path)
    system = CentralSystem(settings)
    await system.start()
    try:
        async with api(system) as http:
            await build_tree(http)
            daily = {"daily_start": "17:00", "daily_end": "20:00", "max_current_a": 40}
            window = await ok(await http.post("/grid-nodes/site/limit-windows", json=daily), 201)
            await ok(await http.put("/grid-nodes/feeder/unmanaged-load", json={"unmanaged_a": [3, 4, 5]}))
            before = {
                "sites": await ok(await http.get("/sites")),
                "wirings": await ok(await http.get("/station-wirings")),
                "site": await ok(await http.get("/grid-nodes/site")),
            }
            before["site"].pop("limits_now")  # the daily window may start or end between the two reads
    finally:
        await system.stop()
    system = CentralSystem(settings)
    await system.start()
    try:
        async with api(system) as http:
            after = {
                "sites": await ok(await http.get("/sites")),
                "wirings": await ok(await http.get("/station-wirings")),
                "site": await ok(await http.get("/grid-nodes/site")),
            }
            after["site"].pop("limits_now")
            assert after == before
            feeder = await ok(await http.get("/grid-nodes/feeder"))
            assert feeder["unmanaged_a"] == [3, 4, 5]
            again = await ok(await http.post("/grid-nodes/site/limit-windows", json=daily), 201)
            assert again["id"] == window["id"] + 1
    finally:
        await system.stop()
