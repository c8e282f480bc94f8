"""`csms grid ...` against a live server: nodes, windows, wiring, JSON output and readable errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from csms.cli import app
from csms.runtime.app import CentralSystem
from tests.http_api import CLI_ENV

ROOT = Path(__file__).resolve().parents[2]


async def cli(csms: CentralSystem, *args: str) -> Result:
    """Run the CLI in a thread: it calls the API synchronously, which the server on this loop must answer."""
    url = f"http://127.0.0.1:{csms.api_port}"
    return await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])


async def ok(csms: CentralSystem, *args: str) -> str:
    result = await cli(csms, *args)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result.stdout


async def as_json(csms: CentralSystem, *args: str) -> Any:
    return json.loads(await ok(csms, *args, "--json"))


async def test_nodes_add_list_set_remove(csms: CentralSystem) -> None:
    """Nodes added, changed and removed with the CLI are what the API and `nodes list --json` show."""
    assert "added grid node site as a site" in await ok(csms, "grid", "nodes", "add", "site", "--max-current", "100")
    await ok(csms, "grid", "nodes", "add", "circuit", "--parent", "site", "--phases", "1", "--max-power", "7400")
    nodes = {n["id"]: n for n in await as_json(csms, "grid", "nodes", "list")}
    assert nodes["circuit"]["phases"] == [1] and nodes["circuit"]["max_power_w"] == 7400
    assert nodes["site"]["children"] == ["circuit"]
    changed = await as_json(csms, "grid", "nodes", "set", "circuit", "--max-power", "none", "--max-current", "16")
    assert changed["max_power_w"] is None and changed["max_current_a"] == 16
    table = await ok(csms, "grid", "nodes", "list")
    assert "circuit" in table and "123" in table
    assert "16 A" in await ok(csms, "grid", "sites")
    assert "12/0/0" in (await ok(csms, "grid", "nodes", "load", "circuit", "12", "0", "0")).replace(" A / ", "/")
    assert (await as_json(csms, "grid", "nodes", "list"))[0]["unmanaged_a"] == [12, 0, 0]
    await ok(csms, "grid", "nodes", "set", "circuit", "--parent", "none")
    assert [s["id"] for s in await as_json(csms, "grid", "sites")] == ["circuit", "site"]
    await ok(csms, "grid", "nodes", "remove", "circuit")
    assert [n["id"] for n in await as_json(csms, "grid", "nodes", "list")] == ["site"]


async def test_windows_add_list_remove(csms: CentralSystem) -> None:
    """Once and daily limit windows are added, listed and removed by id."""
    await ok(csms, "grid", "nodes", "add", "site", "--max-current", "100")
    once = await as_json(
        csms,
        *("grid", "windows", "add", "site", "--max-current", "40"),
        *("--start", "2099-01-01T17:00:00Z", "--end", "2099-01-01T20:00:00Z"),
    )
    daily = await as_json(
        csms,
        *("grid", "windows", "add", "site", "--max-power", "30000", "--daily", "17:00-20:00"),
        *("--weekdays", "1-5", "--timezone", "Europe/Berlin"),
    )
    assert once["kind"] == "once" and daily["weekdays"] == [1, 2, 3, 4, 5]
    table = await ok(csms, "grid", "windows", "list", "site")
    assert "17:00-20:00 Europe/Berlin Mon,Tue,Wed,Thu,Fri" in table.replace("\n", " ")
    await ok(csms, "grid", "windows", "remove", "site", str(once["id"]))
    assert [w["id"] for w in await as_json(csms, "grid", "windows", "list", "site")] == [daily["id"]]


async def test_wiring_set_show_remove(csms: CentralSystem) -> None:
    """A station is wired with a phase rotation, shown alone or with all others, and unwired."""
    await ok(csms, "grid", "nodes", "add", "site")
    assert "drawing on L2" in await ok(
        csms, "grid", "wiring", "set", "CP1", "site", "--rotation", "STR", "--phases", "1"
    )
    await ok(csms, "grid", "wiring", "set", "CP2", "site", "--max-current", "16")
    assert (await as_json(csms, "grid", "wiring", "show", "CP1"))["rotation"] == [2, 3, 1]
    assert [w["station_id"] for w in await as_json(csms, "grid", "wiring", "show")] == ["CP1", "CP2"]
    assert "CP2" in await ok(csms, "grid", "wiring", "show")
    await ok(csms, "grid", "wiring", "remove", "CP1")
    assert [w["station_id"] for w in await as_json(csms, "grid", "wiring", "show")] == ["CP2"]


async def test_errors_are_readable_and_exit_non_zero(csms: CentralSystem) -> None:
    """API problems print their status and detail on stderr; bad options are refused before any request."""
    await ok(csms, "grid", "nodes", "add", "site", "--phases", "1")
    conflict = await cli(csms, "grid", "nodes", "add", "child", "--parent", "site", "--phases", "123")
    assert conflict.exit_code == 1
    assert "409" in conflict.stderr and "carries only L1" in conflict.stderr
    missing = await cli(csms, "grid", "wiring", "show", "NOPE")
    assert missing.exit_code == 1 and "404" in missing.stderr and "NOPE" in missing.stderr
    invalid = await cli(csms, "grid", "nodes", "add", "x", "--max-current", "-4")
    assert invalid.exit_code == 1 and "max_current_a" in invalid.stderr
    bad_option = await cli(csms, "grid", "windows", "add", "site", "--max-current", "5", "--daily", "17:00")
    assert bad_option.exit_code == 2 and "17:00-20:00" in bad_option.stderr
    nothing = await cli(csms, "grid", "nodes", "set", "site")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr


async def test_apply_file_creates_then_updates_idempotently(csms: CentralSystem, tmp_path: Path) -> None:
    """`grid apply` builds the example tree (children listed before parents too) and re-applies an edit in place."""
    example = (ROOT / "config" / "grid.example.toml").read_text()
    await ok(csms, "grid", "apply", str(ROOT / "config" / "grid.example.toml"))
    nodes = {n["id"]: n for n in await as_json(csms, "grid", "nodes", "list")}
    assert nodes["depot-circuit-a1"]["parent_id"] == "depot-feeder-a" and nodes["depot-circuit-a1"]["phases"] == [1]
    assert [w["station_id"] for w in await as_json(csms, "grid", "wiring", "show")] == ["CP-001", "CP-002"]
    edited = tmp_path / "grid.toml"
    child_first = '[[grid.nodes]]\nid = "annex-circuit"\nparent_id = "annex"\n\n[[grid.nodes]]\nid = "annex"\n\n'
    edited.write_text(child_first + example.replace("max_current_a = 160", "max_current_a = 125"))
    edited.write_text(
        edited.read_text().replace("[[nodes]]", "[[grid.nodes]]").replace("[[wiring]]", "[[grid.wiring]]")
    )
    output = await ok(csms, "grid", "apply", str(edited))
    assert "updated grid node depot" in output and "created grid node annex-circuit" in output
    nodes = {n["id"]: n for n in await as_json(csms, "grid", "nodes", "list")}
    assert nodes["depot"]["max_current_a"] == 125 and nodes["annex-circuit"]["parent_id"] == "annex"
    assert len(nodes) == 5


async def test_apply_refuses_a_malformed_file_before_any_change(csms: CentralSystem, tmp_path: Path) -> None:
    """A file with unknown tables or a node without an id is refused (exit 2) and nothing is created."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[nodes]]\nid = "a"\n\n[[sites]]\nid = "b"\n')
    result = await cli(csms, "grid", "apply", str(bad))
    assert result.exit_code == 2 and "sites" in result.stderr
    bad.write_text("[[nodes]]\nmax_current_a = 3\n")
    result = await cli(csms, "grid", "apply", str(bad))
    # rich wraps long lines (the temporary path's length varies): compare with the line breaks taken out
    assert result.exit_code == 2 and "nodes[0] needs a string 'id'" in " ".join(result.stderr.split())
    assert await as_json(csms, "grid", "nodes", "list") == []
