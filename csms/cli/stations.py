"""``csms stations``: list stations and send them operator commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, err, request

__all__ = ["stations_app"]

stations_app = typer.Typer(help="Charging stations.", no_args_is_help=True)


@stations_app.command("list")
def list_stations(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """List stations with their connection state."""
    body = request("GET", f"{api}/api/v1/stations", token, params={"limit": 1000})
    if as_json:
        print(json.dumps(body["items"], indent=2, default=str))
        return
    table = Table("id", "registration", "protocol", "vendor", "model", "connected", "last seen")
    for item in body["items"]:
        info = item.get("info") or {}
        table.add_row(
            item["id"],
            item["registration"],
            item.get("protocol") or "",
            info.get("vendor") or "",
            info.get("model") or "",
            "yes" if item["connected"] else "no",
            str(item.get("last_seen") or ""),
        )
    Console().print(table)


@stations_app.command("command")
def station_command(
    station_id: str,
    command: Annotated[str, typer.Argument(help="e.g. reset, remote-start, get-configuration")],
    body: Annotated[str, typer.Option(help="JSON body of the command")] = "{}",
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
) -> None:
    """Send a command to a connected station and print its answer."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        err.print(f"[red]--body is not JSON:[/red] {exc}")
        raise typer.Exit(2) from None
    result = request("POST", f"{api}/api/v1/stations/{station_id}/commands/{command}", token, json=payload)
    print(json.dumps(result, indent=2))
