"""Connector specs (plug type, maximum power, bookable) through the real API, CLI and SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from csms.cli import app
from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.http_api import CLI_ENV, admin_client
from tests.ocpp_client import RawClient, now_iso


@pytest.fixture
async def http(csms: CentralSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client(csms.api_port) as client:
        yield client


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def wire(http: httpx.AsyncClient, station: str, site: str = "site", amps: float = 16, phases: int = 3) -> None:
    if (await http.get(f"/grid-nodes/{site}")).status_code == 404:
        await ok(await http.post("/grid-nodes", json={"id": site, "max_current_a": 100}), 201)
    body = {"node_id": site, "max_current_a": amps, "phases": phases}
    await ok(await http.put(f"/stations/{station}/wiring", json=body))


async def connect_16(csms: CentralSystem, name: str, connectors: int) -> RawClient:
    """A 1.6 charger that boots and reports each connector Available."""
    client = await RawClient.open(f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{name}", "ocpp1.6")
    await client.result("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "AC22"})
    for connector in range(connectors + 1):
        status = {"connectorId": connector, "status": "Available", "errorCode": "NoError", "timestamp": now_iso()}
        await client.result("StatusNotification", status)
    return client


SPEC = "/stations/CP1/connectors/1/1/spec"


async def test_defaults_come_from_the_wiring(csms: CentralSystem, http: httpx.AsyncClient) -> None:
    """An unconfigured connector is bookable, of unknown type, with max A x phases x node voltage as its power."""
    client = await connect_16(csms, "CP1", connectors=2)
    try:
        unwired = await ok(await http.get(SPEC))
        assert unwired["max_power_w"] is None and unwired["connector_type"] == "Unknown" and unwired["bookable"]
        await wire(http, "CP1", amps=16, phases=3)
        spec = await ok(await http.get(SPEC))
        assert spec["max_power_w"] == 16 * 3 * 230 and spec["configured"] is False and spec["site_id"] == "site"
        await ok(await http.put("/stations/CP1/wiring", json={"node_id": "site", "max_current_a": 32, "phases": 1}))
        assert (await ok(await http.get(SPEC)))["max_power_w"] == 32 * 230
        listed = (await ok(await http.get("/connector-specs")))["items"]
        assert [(s["station_id"], s["evse_id"], s["connector_id"]) for s in listed] == [("CP1", 1, 1), ("CP1", 2, 1)]
    finally:
        await client.close()


async def test_spec_set_read_reset_and_kept_across_restart(tmp_path: Path) -> None:
    """A stored spec wins over the defaults, survives a restart, and a reset brings the defaults back."""
    settings = make_settings(tmp_path)
    first = CentralSystem(settings)
    await first.start()
    try:
        async with admin_client(first.api_port) as http:
            await wire(http, "CP1")
            body = {"connector_type": "CCS2", "max_power_w": 50000, "bookable": False}
            stored = await ok(await http.put(SPEC, json=body))
            assert stored == {
                "station_id": "CP1",
                "evse_id": 1,
                "connector_id": 1,
                "site_id": "site",
                "connector_type": "CCS2",
                "max_power_w": 50000,
                "bookable": False,
                "configured": True,
            }
            # Type only: the power still follows the wiring.
            typed = await ok(await http.put("/stations/CP1/connectors/2/1/spec", json={"connector_type": "Type2"}))
            assert typed["max_power_w"] == 16 * 3 * 230 and typed["configured"] is True
    finally:
        await first.stop()
    second = CentralSystem(settings)
    await second.start()
    try:
        async with admin_client(second.api_port) as http:
            assert (await ok(await http.get(SPEC)))["connector_type"] == "CCS2"
            ccs = (await ok(await http.get("/connector-specs", params={"connector_type": "CCS2"})))["items"]
            assert [(s["evse_id"], s["max_power_w"]) for s in ccs] == [(1, 50000)]
            reset = await ok(await http.delete(SPEC))
            assert reset["connector_type"] == "Unknown" and reset["configured"] is False and reset["bookable"]
            assert (await ok(await http.get(SPEC)))["max_power_w"] == 16 * 3 * 230
    finally:
        await second.stop()


async def test_filters_by_site_and_station(csms: CentralSystem, http: httpx.AsyncClient) -> None:
    """The list can be limited to one site's or one station's connectors."""
    await wire(http, "A1", site="north")
    await wire(http, "B1", site="south")
    for station in ("A1", "B1"):
        await ok(await http.put(f"/stations/{station}/connectors/1/1/spec", json={"connector_type": "Type2"}))
    north = (await ok(await http.get("/connector-specs", params={"site_id": "north"})))["items"]
    assert [s["station_id"] for s in north] == ["A1"]
    only_b = (await ok(await http.get("/connector-specs", params={"station_id": "B1"})))["items"]
    assert [s["site_id"] for s in only_b] == ["south"]
    assert (await ok(await http.get("/connector-specs", params={"site_id": "north", "station_id": "B1"})))[
        "items"
    ] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("PUT", SPEC, {"connector_type": "Type9"}, 422, "connector_type"),
        ("PUT", SPEC, {"max_power_w": -5}, 422, "max_power_w"),
        ("PUT", SPEC, {"max_power_w": 0}, 422, "max_power_w"),
        ("PUT", SPEC, {"bookable": True, "colour": "red"}, 422, "colour"),
        ("PUT", "/stations/CP1/connectors/0/1/spec", {}, 422, "evse_id"),
        ("GET", "/stations/NOPE/connectors/1/1/spec", None, 404, "station NOPE"),
        ("GET", "/connector-specs?connector_type=Type9", None, 422, "connector_type"),
    ],
)
async def test_bad_input_gets_a_clear_problem(
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    """Unknown plug types, non-positive power, unknown fields, EVSE 0 and unknown stations are refused by name."""
    response = await http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.text


async def cli(csms: CentralSystem, *args: str) -> Result:
    url = f"http://127.0.0.1:{csms.api_port}"
    return await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])


async def test_cli_sets_shows_lists_and_resets(csms: CentralSystem, http: httpx.AsyncClient) -> None:
    """`csms connector-specs` sets, shows, lists (table and JSON) and resets specs, and names a bad plug type."""
    await wire(http, "CP1")
    result = await cli(csms, "connector-specs", "set", "CP1", "1", "--type", "ccs2", "--max-power-kw", "150")
    assert result.exit_code == 0, result.output
    assert "CP1 EVSE 1 connector 1: CCS2, 150 kW, bookable" in result.stdout
    shown = json.loads((await cli(csms, "connector-specs", "show", "CP1", "1", "--json")).stdout)
    assert shown["max_power_w"] == 150000 and shown["connector_type"] == "CCS2"
    listed = json.loads((await cli(csms, "connector-specs", "list", "--site", "site", "--json")).stdout)
    assert [(s["station_id"], s["connector_type"]) for s in listed] == [("CP1", "CCS2")]
    table = (await cli(csms, "connector-specs", "list")).stdout
    assert "CCS2" in table and "150" in table
    bad = await cli(csms, "connector-specs", "set", "CP1", "1", "--type", "Type9")
    assert bad.exit_code == 2 and "unknown connector type 'Type9'" in bad.stderr
    reset = await cli(csms, "connector-specs", "reset", "CP1", "1")
    assert reset.exit_code == 0 and "Unknown, 11.04 kW, bookable (defaults)" in reset.stdout
    missing = await cli(csms, "connector-specs", "show", "NOPE", "1")
    assert missing.exit_code == 1 and "station NOPE not found" in missing.stderr
