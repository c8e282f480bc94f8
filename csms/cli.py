"""The ``csms`` command: ``csms serve`` runs the central system; operator commands call its HTTP API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from csms.config import load_settings
from csms.errors import ConfigError
from csms.runtime.app import run
from csms.runtime.logs import configure_logging

__all__ = ["app", "main"]

app = typer.Typer(help="OCPP 1.6J / 2.0.1 central system.", no_args_is_help=True)
stations_app = typer.Typer(help="Charging stations.", no_args_is_help=True)
app.add_typer(stations_app, name="stations")
err = Console(stderr=True)
DEFAULT_CONFIG = Path("config/csms.toml")

ApiUrl = Annotated[str, typer.Option(envvar="CSMS_API_URL", help="Base URL of the CSMS HTTP API.")]
Token = Annotated[str | None, typer.Option(envvar="CSMS_API_TOKEN", help="Bearer token for the API.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file [default: config/csms.toml when it exists].")
    ] = None,
) -> None:
    """Run the central system (OCPP websockets + HTTP API) until SIGINT/SIGTERM."""
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log)
    asyncio.run(run(settings))


def _request(method: str, url: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the CSMS API at {url}:[/red] {exc}")
        raise typer.Exit(1) from None
    body = response.json() if response.content else None
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else response.text
        err.print(f"[red]{response.status_code}:[/red] {detail}")
        raise typer.Exit(1)
    return body


@stations_app.command("list")
def list_stations(api: ApiUrl = "http://127.0.0.1:8080", token: Token = None, as_json: AsJson = False) -> None:
    """List stations with their connection state."""
    body = _request("GET", f"{api}/api/v1/stations", token, params={"limit": 1000})
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
    api: ApiUrl = "http://127.0.0.1:8080",
    token: Token = None,
) -> None:
    """Send a command to a connected station and print its answer."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        err.print(f"[red]--body is not JSON:[/red] {exc}")
        raise typer.Exit(2) from None
    result = _request("POST", f"{api}/api/v1/stations/{station_id}/commands/{command}", token, json=payload)
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="csms")
