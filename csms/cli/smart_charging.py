"""``csms smart-charging`` (plans, live load) and ``csms sessions`` (allocation, needs and priority per session)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, amps, err, print_json, request

__all__ = ["sessions_app", "smart_app"]

smart_app = typer.Typer(help="Grid-limit smart charging: each site's plan and live load.", no_args_is_help=True)
sessions_app = typer.Typer(help="Charging sessions under smart charging.", no_args_is_help=True)

PRIORITIES = {"standard": 0, "fleet": 1, "urgent": 2}


def _phases(values: list[float] | None) -> str:
    return " / ".join(f"{v:g}" for v in values) if values else ""


def _time(text: str | None) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M") if text else ""


@smart_app.command("plan")
def show_plan(site_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """The site's latest plan: planned load per node and phase against its limits, and each session's limits."""
    body = request("GET", f"{api}/api/v1/sites/{site_id}/plan", token)
    if as_json:
        print_json(body)
        return
    console = Console()
    if body["created_at"] is None:
        console.print(f"no plan for {site_id} yet")
        return
    console.print(f"plan for [bold]{site_id}[/bold] made {_time(body['created_at'])} ({body['algorithm']})")
    if body["overloaded"]:
        console.print(f"[red]overloaded by load we cannot steer: {', '.join(body['overloaded'])}[/red]")
    nodes = Table("from", "node", "planned A (L1/L2/L3)", "limit A", "planned W", "limit W")
    for load in body["nodes"]:
        nodes.add_row(
            _time(load["start"]),
            load["node_id"],
            _phases(load["load_a"]),
            amps(load["limit_a"]),
            f"{load['power_w']:g}",
            amps(load["limit_w"]),
        )
    console.print(nodes)
    sessions = Table("station", "EVSE", "limits", "note")
    for session in body["sessions"]:
        limits = ", ".join(f"{_time(p['start'])} {p['current_a']:g} A" for p in session["periods"])
        sessions.add_row(session["station_id"], str(session["evse_id"]), limits, session["note"] or "")
    console.print(sessions)


@smart_app.command("load")
def show_load(site_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Live measured current per node and phase against the limit in force."""
    body = request("GET", f"{api}/api/v1/sites/{site_id}/load", token)
    if as_json:
        print_json(body)
        return
    table = Table("node", "parent", "measured A (L1/L2/L3)", "limit A", "limit W", "over")
    for node in body["nodes"]:
        table.add_row(
            node["node_id"],
            node["parent_id"] or "",
            _phases(node["measured_a"]),
            amps(node["limit_a"]),
            amps(node["limit_w"]),
            "[red]yes[/red]" if node["over_limit"] else "",
        )
    Console().print(table)


@smart_app.command("replan")
def replan(api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Re-plan every site now and wait until the limits are sent."""
    body = request("POST", f"{api}/api/v1/smart-charging/replan", token)
    Console().print(f"planned {body['sessions']} sessions at {_time(body['created_at'])}")


@sessions_app.command("list")
def list_sessions(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Every session smart charging tracks: planned, offered and measured current, needs and priority."""
    body = request("GET", f"{api}/api/v1/charging-sessions", token)
    if as_json:
        print_json(body["items"])
        return
    table = Table("station", "EVSE", "planned A", "offered A", "measured A", "kWh", "priority", "state")
    for item in body["items"]:
        state = "not steerable" if not item["steerable"] else (item["note"] or "")
        table.add_row(
            item["station_id"],
            str(item["evse_id"]),
            amps(item["planned_a"]),
            amps(item["offered_a"]),
            _phases(item["measured_a"]),
            f"{item['delivered_wh'] / 1000:.2f}",
            _priority_name(item["priority"]),
            state,
        )
    Console().print(table)


@sessions_app.command("set")
def set_session(
    station_id: str,
    evse_id: int,
    energy_kwh: Annotated[float | None, typer.Option(help="energy wanted for the session")] = None,
    departure: Annotated[datetime | None, typer.Option(help="when the car leaves (ISO 8601 with offset)")] = None,
    max_current: Annotated[float | None, typer.Option(help="the car's own limit in A per phase")] = None,
    priority: Annotated[str | None, typer.Option(help="standard, fleet or urgent")] = None,
    reason: Annotated[str | None, typer.Option(help="who set the priority and why")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Tell smart charging what a session needs or how urgent it is; the site is re-planned."""
    patch: dict[str, Any] = {}
    if energy_kwh is not None:
        patch["energy_wh"] = energy_kwh * 1000
    if departure is not None:
        if departure.tzinfo is None:
            err.print("[red]--departure needs a UTC offset, e.g. 2026-11-23T18:00:00+01:00[/red]")
            raise typer.Exit(2)
        patch["departure"] = departure.isoformat()
    if max_current is not None:
        patch["max_current_a"] = max_current
    if priority is not None:
        if priority not in PRIORITIES:
            err.print(f"[red]--priority must be one of {', '.join(PRIORITIES)}, not {priority!r}[/red]")
            raise typer.Exit(2)
        patch["priority"] = PRIORITIES[priority]
    if reason is not None:
        patch["reason"] = reason
    if not patch:
        err.print("[red]nothing to set: give --energy-kwh, --departure, --max-current or --priority[/red]")
        raise typer.Exit(2)
    body = request("PATCH", f"{api}/api/v1/charging-sessions/{station_id}/{evse_id}", token, json=patch)
    if as_json:
        print_json(body)
        return
    Console().print(
        f"{station_id}/{evse_id}: priority {_priority_name(body['priority'])}, "
        f"wants {amps(body['needs']['energy_wh'])} Wh by {_time(body['needs']['departure']) or 'unknown'}"
    )


def _priority_name(value: int) -> str:
    return next((name for name, number in PRIORITIES.items() if number == value), str(value))
