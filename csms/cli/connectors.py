"""``csms connector-specs``: plug type, maximum power and bookability per connector."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, all_items, err, print_json, request
from csms.domain.connectors import ConnectorType

__all__ = ["connectors_app"]

connectors_app = typer.Typer(help="Connector specs: plug type, maximum power, bookable.", no_args_is_help=True)

_TYPES = ", ".join(t.value for t in ConnectorType)


def _kw(value: float | None) -> str:
    return "" if value is None else f"{value / 1000:g}"


def _path(api: str, station: str, evse: int, connector: int) -> str:
    return f"{api}/api/v1/stations/{station}/connectors/{evse}/{connector}/spec"


def _print(spec: dict[str, Any]) -> None:
    where = f"{spec['station_id']} EVSE {spec['evse_id']} connector {spec['connector_id']}"
    power = f"{_kw(spec['max_power_w'])} kW" if spec["max_power_w"] is not None else "power unknown"
    bookable = "bookable" if spec["bookable"] else "not bookable"
    source = "" if spec["configured"] else " (defaults)"
    Console().print(f"{where}: {spec['connector_type']}, {power}, {bookable}{source}")


@connectors_app.command("list")
def list_specs(
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    site: Annotated[str | None, typer.Option(help="only stations wired under this site")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List every known connector with its plug, power and bookability."""
    params = {k: v for k, v in {"station_id": station, "site_id": site}.items() if v is not None}
    items = all_items(f"{api}/api/v1/connector-specs", token, **params)
    if as_json:
        print_json(items)
        return
    table = Table("station", "EVSE", "connector", "site", "type", "max kW", "bookable", "configured")
    for item in items:
        table.add_row(
            item["station_id"],
            str(item["evse_id"]),
            str(item["connector_id"]),
            item["site_id"] or "",
            item["connector_type"],
            _kw(item["max_power_w"]),
            "yes" if item["bookable"] else "no",
            "yes" if item["configured"] else "default",
        )
    Console().print(table)


@connectors_app.command("show")
def show_spec(
    station: str, evse: int, connector: int = 1, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False
) -> None:
    """Show one connector's spec in force."""
    spec = request("GET", _path(api, station, evse, connector), token)
    print_json(spec) if as_json else _print(spec)


@connectors_app.command("set")
def set_spec(
    station: str,
    evse: int,
    connector: int = 1,
    connector_type: Annotated[str, typer.Option("--type", help=f"plug: {_TYPES}")] = ConnectorType.UNKNOWN.value,
    max_power_kw: Annotated[
        float | None, typer.Option("--max-power-kw", help="maximum power; default: from the station's wiring")
    ] = None,
    bookable: Annotated[bool, typer.Option("--bookable/--not-bookable")] = True,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Set a connector's plug type, maximum power and whether drivers may book it."""
    matches = [t for t in ConnectorType if t.value.lower() == connector_type.lower()]
    if not matches:
        err.print(f"[red]unknown connector type {connector_type!r}:[/red] use one of {_TYPES}")
        raise typer.Exit(2)
    if max_power_kw is not None and not max_power_kw > 0:
        err.print("[red]--max-power-kw must be > 0[/red]")
        raise typer.Exit(2)
    body = {
        "connector_type": matches[0].value,
        "max_power_w": max_power_kw * 1000 if max_power_kw is not None else None,
        "bookable": bookable,
    }
    spec = request("PUT", _path(api, station, evse, connector), token, json=body)
    print_json(spec) if as_json else _print(spec)


@connectors_app.command("reset")
def reset_spec(station: str, evse: int, connector: int = 1, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Forget a connector's spec: back to the defaults from the wiring."""
    _print(request("DELETE", _path(api, station, evse, connector), token))
