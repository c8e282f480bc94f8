"""``csms grid``: the electrical model: site trees, limits, limit windows, station wiring."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from csms.cli.common import (
    DEFAULT_API,
    ApiUrl,
    AsJson,
    OptionalNumber,
    Phases,
    Token,
    all_items,
    amps,
    digits,
    err,
    number,
    phase_names,
    print_json,
    request,
)

__all__ = ["grid_app"]

grid_app = typer.Typer(
    help="The electrical model: site trees, limits, limit windows, station wiring.", no_args_is_help=True
)
nodes_app = typer.Typer(help="Grid nodes (a site is a node without a parent).", no_args_is_help=True)
windows_app = typer.Typer(
    help="Limit windows: a lower limit on a node for a while, once or daily.", no_args_is_help=True
)
wiring_app = typer.Typer(help="Where each station is wired and how its phases are connected.", no_args_is_help=True)
grid_app.add_typer(nodes_app, name="nodes")
grid_app.add_typer(windows_app, name="windows")
grid_app.add_typer(wiring_app, name="wiring")

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@nodes_app.command("list")
def list_nodes(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """List grid nodes with their limits, load, children and wired stations."""
    items = all_items(f"{api}/api/v1/grid-nodes", token)
    if as_json:
        print_json(items)
        return
    table = Table("id", "parent", "phases", "max A", "max W", "V", "load A", "children", "stations")
    for item in items:
        table.add_row(
            item["id"],
            item["parent_id"] or "",
            "".join(str(p) for p in item["phases"]),
            amps(item["max_current_a"]),
            amps(item["max_power_w"]),
            f"{item['voltage_v']:g}",
            "/".join(f"{a:g}" for a in item["unmanaged_a"]),
            ", ".join(item["children"]),
            ", ".join(item["stations"]),
        )
    Console().print(table)


@nodes_app.command("show")
def show_node(node_id: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Print one node as JSON, with its limit windows and the limits in force now."""
    print_json(request("GET", f"{api}/api/v1/grid-nodes/{node_id}", token))


@nodes_app.command("add")
def add_node(
    node_id: str,
    parent: Annotated[str | None, typer.Option(help="parent node; without it the node is a site")] = None,
    max_current: Annotated[float | None, typer.Option(help="limit in A per phase")] = None,
    max_power: Annotated[float | None, typer.Option(help="limit in W over all phases")] = None,
    phases: Phases = None,
    voltage: Annotated[float | None, typer.Option(help="phase-to-neutral voltage [default: 230]")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add a grid node (a site when it has no --parent)."""
    body: dict[str, Any] = {"id": node_id, "parent_id": parent, "max_current_a": max_current, "max_power_w": max_power}
    if phases is not None:
        body["phases"] = digits(phases, "--phases")
    if voltage is not None:
        body["voltage_v"] = voltage
    node = request("POST", f"{api}/api/v1/grid-nodes", token, json=body)
    if as_json:
        print_json(node)
    else:
        kind = f"under {node['parent_id']}" if node["parent_id"] else "as a site"
        Console().print(f"added grid node {node['id']} {kind}")


@nodes_app.command("set")
def set_node(
    node_id: str,
    parent: Annotated[str | None, typer.Option(help="new parent, or 'none' to make the node a site")] = None,
    max_current: OptionalNumber = None,
    max_power: OptionalNumber = None,
    phases: Phases = None,
    voltage: Annotated[float | None, typer.Option(help="phase-to-neutral voltage")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Change a node: only the options given change; 'none' clears a limit or the parent."""
    body: dict[str, Any] = {}
    if parent is not None:
        body["parent_id"] = None if parent.lower() == "none" else parent
    if max_current is not None:
        body["max_current_a"] = number(max_current, "--max-current")
    if max_power is not None:
        body["max_power_w"] = number(max_power, "--max-power")
    if phases is not None:
        body["phases"] = digits(phases, "--phases")
    if voltage is not None:
        body["voltage_v"] = voltage
    if not body:
        err.print("[red]nothing to change:[/red] give --parent, --max-current, --max-power, --phases or --voltage")
        raise typer.Exit(2)
    node = request("PATCH", f"{api}/api/v1/grid-nodes/{node_id}", token, json=body)
    if as_json:
        print_json(node)
    else:
        Console().print(f"changed grid node {node_id}: " + ", ".join(f"{k}={node[k]}" for k in body))


@nodes_app.command("remove")
def remove_node(node_id: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Delete a node and its limit windows (refused while it has children or wired stations)."""
    request("DELETE", f"{api}/api/v1/grid-nodes/{node_id}", token)
    Console().print(f"removed grid node {node_id}")


@nodes_app.command("load")
def set_unmanaged_load(
    node_id: str,
    amps: Annotated[list[float], typer.Argument(help="unmanaged load in A on L1 L2 L3")],
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
) -> None:
    """Report the load on a node that we do not control (e.g. the building), per phase."""
    if len(amps) != 3:
        err.print("[red]give three values: L1 L2 L3[/red]")
        raise typer.Exit(2)
    body = request("PUT", f"{api}/api/v1/grid-nodes/{node_id}/unmanaged-load", token, json={"unmanaged_a": amps})
    Console().print(f"unmanaged load on {node_id}: " + " / ".join(f"{a:g} A" for a in body["unmanaged_a"]))


@grid_app.command("sites")
def show_sites(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show every site as a tree of nodes and wired stations."""
    sites = all_items(f"{api}/api/v1/sites", token)
    if as_json:
        print_json(sites)
        return

    def label(node: dict[str, Any]) -> str:
        limits = [f"{node['max_current_a']:g} A" if node["max_current_a"] is not None else ""]
        limits.append(f"{node['max_power_w']:g} W" if node["max_power_w"] is not None else "")
        text = " ".join(part for part in limits if part) or "no limit"
        return f"[bold]{node['id']}[/bold] ({phase_names(node['phases'])}, {text})"

    def grow(tree: Tree, node: dict[str, Any]) -> None:
        for child in node["children"]:
            grow(tree.add(label(child)), child)
        for station in node["stations"]:
            tree.add(f"station {station}")

    console = Console()
    for site in sites:
        tree = Tree(label(site))
        grow(tree, site)
        console.print(tree)
    if not sites:
        console.print("no sites configured")


@windows_app.command("list")
def list_windows(node_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """List a node's limit windows."""
    items = all_items(f"{api}/api/v1/grid-nodes/{node_id}/limit-windows", token)
    if as_json:
        print_json(items)
        return
    table = Table("id", "kind", "when", "max A", "max W")
    for item in items:
        if item["kind"] == "daily":
            days = "every day" if len(item["weekdays"]) == 7 else ",".join(_WEEKDAYS[d - 1] for d in item["weekdays"])
            when = f"{item['daily_start']}-{item['daily_end']} {item['timezone']} {days}"
        else:
            when = f"{item['start']} .. {item['end']}"
        table.add_row(str(item["id"]), item["kind"], when, amps(item["max_current_a"]), amps(item["max_power_w"]))
    Console().print(table)


@windows_app.command("add")
def add_window(
    node_id: str,
    max_current: Annotated[float | None, typer.Option(help="limit in A per phase during the window")] = None,
    max_power: Annotated[float | None, typer.Option(help="limit in W during the window")] = None,
    start: Annotated[str | None, typer.Option(help="once: ISO time with offset, e.g. 2026-12-01T17:00Z")] = None,
    end: Annotated[str | None, typer.Option(help="once: ISO time with offset")] = None,
    daily: Annotated[str | None, typer.Option(help="every day, local time: e.g. 17:00-20:00")] = None,
    weekdays: Annotated[str | None, typer.Option(help="daily: ISO weekdays, e.g. 1-5 or 1,2,3")] = None,
    timezone: Annotated[str | None, typer.Option(help="daily: IANA time zone [default: UTC]")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Lower a node's limit for a while: --start/--end once, or --daily every day."""
    body: dict[str, Any] = {"max_current_a": max_current, "max_power_w": max_power}
    if daily is not None:
        daily_start, _, daily_end = daily.partition("-")
        if not daily_end:
            err.print(f"[red]--daily must look like 17:00-20:00, not {daily!r}[/red]")
            raise typer.Exit(2)
        body.update(daily_start=daily_start, daily_end=daily_end)
        if weekdays is not None:
            body["weekdays"] = digits(weekdays, "--weekdays")
        if timezone is not None:
            body["timezone"] = timezone
    else:
        body.update(start=start, end=end)
    window = request("POST", f"{api}/api/v1/grid-nodes/{node_id}/limit-windows", token, json=body)
    if as_json:
        print_json(window)
    else:
        Console().print(f"added limit window {window['id']} on {node_id}")


@windows_app.command("remove")
def remove_window(node_id: str, window_id: int, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Delete one of a node's limit windows."""
    request("DELETE", f"{api}/api/v1/grid-nodes/{node_id}/limit-windows/{window_id}", token)
    Console().print(f"removed limit window {window_id} from {node_id}")


@wiring_app.command("set")
def set_wiring(
    station_id: str,
    node_id: Annotated[str, typer.Argument(help="the grid node the station hangs from")],
    rotation: Annotated[str | None, typer.Option(help="grid phases on the station's L1 L2 L3: 123, 231 or STR")] = None,
    phases: Annotated[int | None, typer.Option(help="phases the station supplies to a car [default: 3]")] = None,
    max_current: Annotated[float | None, typer.Option(help="hardware maximum per EVSE and phase [default: 32]")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Wire a station under a node (it need not have connected yet)."""
    body: dict[str, Any] = {"node_id": node_id}
    if rotation is not None:
        body["rotation"] = rotation
    if phases is not None:
        body["phases"] = phases
    if max_current is not None:
        body["max_current_a"] = max_current
    wiring = request("PUT", f"{api}/api/v1/stations/{station_id}/wiring", token, json=body)
    if as_json:
        print_json(wiring)
    else:
        Console().print(f"station {station_id} wired under {node_id}, drawing on {phase_names(wiring['grid_phases'])}")


@wiring_app.command("show")
def show_wiring(
    station_id: Annotated[str | None, typer.Argument(help="one station; all when left out")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show one station's wiring, or every station's."""
    if station_id is not None:
        items = [request("GET", f"{api}/api/v1/stations/{station_id}/wiring", token)]
    else:
        items = all_items(f"{api}/api/v1/station-wirings", token)
    if as_json:
        print_json(items[0] if station_id is not None else items)
        return
    table = Table("station", "node", "rotation", "phases", "max A", "draws on")
    for item in items:
        table.add_row(
            item["station_id"],
            item["node_id"],
            "".join(str(p) for p in item["rotation"]),
            str(item["phases"]),
            amps(item["max_current_a"]),
            phase_names(item["grid_phases"]),
        )
    Console().print(table)


@wiring_app.command("remove")
def remove_wiring(station_id: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Remove a station's wiring."""
    request("DELETE", f"{api}/api/v1/stations/{station_id}/wiring", token)
    Console().print(f"removed the wiring of station {station_id}")


@grid_app.command("apply")
def apply_grid_file(
    path: Annotated[Path, typer.Argument(help="TOML file with [[nodes]] and [[wiring]] tables")],
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
) -> None:
    """Create or update the nodes and station wiring a TOML file describes (idempotent; nothing is deleted).

    Each [[nodes]] table takes the fields of POST /grid-nodes (id, parent_id, max_current_a, max_power_w,
    phases, voltage_v); each [[wiring]] table those of PUT /stations/{station_id}/wiring plus station_id.
    The tables may also sit under [grid]. Stops at the first refused change; what came before it stays applied.
    """
    nodes, wirings = _read_grid_file(path)
    url = f"{api}/api/v1"
    existing = {n["id"] for n in all_items(f"{url}/grid-nodes", token)}
    console = Console()
    for node in _parents_first(nodes):
        node_id = node["id"]
        if node_id in existing:
            changes = {k: v for k, v in node.items() if k != "id"}
            if changes:
                request("PATCH", f"{url}/grid-nodes/{node_id}", token, json=changes)
            console.print(f"updated grid node {node_id}")
        else:
            request("POST", f"{url}/grid-nodes", token, json=node)
            existing.add(node_id)
            console.print(f"created grid node {node_id}")
    for wiring in wirings:
        station_id = wiring["station_id"]
        body = {k: v for k, v in wiring.items() if k != "station_id"}
        request("PUT", f"{url}/stations/{station_id}/wiring", token, json=body)
        console.print(f"wired station {station_id} under {body.get('node_id')}")


def _read_grid_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        err.print(f"[red]cannot read {path}:[/red] {exc}")
        raise typer.Exit(2) from None
    data = data.get("grid", data)
    unknown = set(data) - {"nodes", "wiring"}
    if unknown:
        err.print(f"[red]{path}: unknown tables {sorted(unknown)}; expected [[nodes]] and [[wiring]][/red]")
        raise typer.Exit(2)
    nodes, wirings = data.get("nodes", []), data.get("wiring", [])
    for kind, items, key in (("nodes", nodes, "id"), ("wiring", wirings, "station_id")):
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get(key), str):
                err.print(f"[red]{path}: {kind}[{index}] needs a string {key!r}[/red]")
                raise typer.Exit(2)
    return nodes, wirings


def _parents_first(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """File order, except that a node whose parent is also in the file comes after that parent."""
    in_file = {n["id"] for n in nodes}
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    waiting = list(nodes)
    while waiting:
        ready = [n for n in waiting if n.get("parent_id") not in in_file - done]
        if not ready:  # a cycle in the file: let the API name it
            ready = waiting[:1]
        for node in ready:
            ordered.append(node)
            done.add(node["id"])
            waiting.remove(node)
    return ordered
