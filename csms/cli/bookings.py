"""``csms bookings``: book, list, show and cancel slots; a site's booking rules; free slots."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, all_items, err, print_json, request

__all__ = ["bookings_app"]

bookings_app = typer.Typer(help="Slot bookings, booking rules per site, free slots.", no_args_is_help=True)
rules_app = typer.Typer(help="A site's booking rules.", no_args_is_help=True)
bookings_app.add_typer(rules_app, name="rules")

_RULE_OPTIONS = (
    "max_active",
    "max_per_day",
    "max_per_week",
    "max_horizon_minutes",
    "min_notice_minutes",
    "max_duration_minutes",
    "strikes_to_block",
    "strike_window_days",
    "block_days",
)


def _when(text: str, option: str) -> str:
    """An ISO 8601 time with an offset (``Z`` allowed), passed on as given once it parses."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{option} must be an ISO 8601 time like 2026-11-24T08:00Z, not {text!r}[/red]")
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        err.print(f"[red]{option} needs a UTC offset, e.g. {text}Z[/red]")
        raise typer.Exit(2)
    return moment.isoformat()


def _where(item: dict[str, Any]) -> str:
    if item["station_id"] is None:
        return ""
    return f"{item['station_id']}/{item['evse_id']}/{item['connector_id']}"


def _print(item: dict[str, Any]) -> None:
    line = (
        f"booking {item['id']} {item['status']}: {_where(item)} from {item['starts_at']} to {item['ends_at']} "
        f"for {item['account_id']} (token {item['id_token']})"
    )
    if item.get("quote"):
        quote = item["quote"]
        line += f", quoted {quote['estimated_total']} {quote['currency']}"
    if item.get("reason"):
        line += f" — {item['reason']}"
    Console().print(line)


@bookings_app.command("create")
def create(
    site: str,
    starts_at: Annotated[str, typer.Option("--at", help="slot start, ISO 8601 with offset")],
    id_token: Annotated[str, typer.Option("--token-id", help="the id token the driver will present")],
    account: Annotated[str | None, typer.Option(help="the driver (admins and operators)")] = None,
    minutes: Annotated[int | None, typer.Option(help="slot length")] = None,
    energy_kwh: Annotated[float | None, typer.Option(help="energy wanted instead of a length")] = None,
    connector_type: Annotated[str | None, typer.Option("--type", help="plug, e.g. Type2, CCS2")] = None,
    station: Annotated[str | None, typer.Option(help="book this station only (with --evse)")] = None,
    evse: Annotated[int | None, typer.Option(help="EVSE of --station")] = None,
    priority: Annotated[str | None, typer.Option(help="standard, fleet or urgent")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Book a slot at a site (the system picks the connector) or on one station's EVSE."""
    if (minutes is None) == (energy_kwh is None):
        err.print("[red]give either --minutes or --energy-kwh[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"site_id": site, "starts_at": _when(starts_at, "--at"), "id_token": id_token}
    optional = {
        "account_id": account,
        "duration_minutes": minutes,
        "energy_kwh": energy_kwh,
        "connector_type": connector_type,
        "station_id": station,
        "evse_id": evse,
        "priority": priority,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    item = request("POST", f"{api}/api/v1/bookings", token, json=body)
    print_json(item) if as_json else _print(item)


@bookings_app.command("list")
def list_bookings(
    status: Annotated[str | None, typer.Option(help="scheduled, reserved, active, completed, ...")] = None,
    site: Annotated[str | None, typer.Option()] = None,
    account: Annotated[str | None, typer.Option()] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the bookings you may see, latest slot first."""
    params = {k: v for k, v in {"status": status, "site_id": site, "account_id": account}.items() if v is not None}
    items = all_items(f"{api}/api/v1/bookings", token, **params)
    if as_json:
        print_json(items)
        return
    table = Table("id", "status", "site", "connector", "start", "end", "account", "token", "reason")
    for item in items:
        table.add_row(
            str(item["id"]),
            item["status"],
            item["site_id"],
            _where(item),
            str(item["starts_at"]),
            str(item["ends_at"]),
            item["account_id"],
            item["id_token"],
            item["reason"] or "",
        )
    Console().print(table)


@bookings_app.command("show")
def show(booking_id: int, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show one booking."""
    item = request("GET", f"{api}/api/v1/bookings/{booking_id}", token)
    print_json(item) if as_json else _print(item)


@bookings_app.command("cancel")
def cancel(booking_id: int, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Cancel a booking (and its reservation on the charger)."""
    _print(request("POST", f"{api}/api/v1/bookings/{booking_id}/cancel", token))


@bookings_app.command("free-slots")
def free_slots(
    site: str,
    before: Annotated[str, typer.Option(help="deadline, ISO 8601 with offset")],
    energy_kwh: Annotated[float | None, typer.Option()] = None,
    minutes: Annotated[int | None, typer.Option()] = None,
    connector_type: Annotated[str | None, typer.Option("--type")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """When can I charge this much at the site before the deadline?"""
    params: dict[str, Any] = {"before": _when(before, "--before")}
    optional = {"energy_kwh": energy_kwh, "duration_minutes": minutes, "connector_type": connector_type}
    params.update({k: v for k, v in optional.items() if v is not None})
    body = request("GET", f"{api}/api/v1/sites/{site}/free-slots", token, params=params)
    if as_json:
        print_json(body["items"])
        return
    table = Table("connector", "type", "kW", "free from", "free until", "latest start", "needs min")
    for item in body["items"]:
        c = item["connector"]
        table.add_row(
            f"{c['station_id']}/{c['evse_id']}/{c['connector_id']}",
            c["connector_type"],
            "" if c["max_power_w"] is None else f"{c['max_power_w'] / 1000:g}",
            str(item["start"]),
            str(item["end"]),
            str(item["latest_start"]),
            str(item["needed_minutes"]),
        )
    Console().print(table)


@rules_app.command("show")
def show_rules(site: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Print a site's booking rules as JSON."""
    print_json(request("GET", f"{api}/api/v1/sites/{site}/booking-rules", token))


@rules_app.command("set")
def set_rules(
    site: str,
    overlap: Annotated[
        bool, typer.Option("--allow-overlap/--no-overlap", help="may a driver's bookings overlap")
    ] = False,
    max_active: Annotated[int | None, typer.Option()] = None,
    max_per_day: Annotated[int | None, typer.Option()] = None,
    max_per_week: Annotated[int | None, typer.Option()] = None,
    max_horizon_minutes: Annotated[int | None, typer.Option()] = None,
    min_notice_minutes: Annotated[int | None, typer.Option()] = None,
    max_duration_minutes: Annotated[int | None, typer.Option()] = None,
    strikes_to_block: Annotated[int | None, typer.Option()] = None,
    strike_window_days: Annotated[int | None, typer.Option()] = None,
    block_days: Annotated[int | None, typer.Option()] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Replace a site's booking rules; limits not given are off."""
    values = locals()
    body: dict[str, Any] = {"no_overlap": not overlap}
    body.update({name: values[name] for name in _RULE_OPTIONS if values[name] is not None})
    rules = request("PUT", f"{api}/api/v1/sites/{site}/booking-rules", token, json=body)
    if as_json:
        print_json(rules)
    else:
        limits = ", ".join(f"{k}={v}" for k, v in rules.items() if k != "site_id" and v is not None)
        Console().print(f"booking rules of {site}: {limits}")
