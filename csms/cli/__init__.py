"""The ``csms`` command: ``csms serve`` runs the central system; operator commands call its HTTP API."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from csms.cli.accounts import accounts_app, keys_app
from csms.cli.analytics import analytics_app
from csms.cli.bookings import bookings_app
from csms.cli.common import err
from csms.cli.connectors import connectors_app
from csms.cli.grid import grid_app
from csms.cli.records import tokens_app, transactions_app
from csms.cli.security import security_app
from csms.cli.smart_charging import sessions_app, smart_app
from csms.cli.stations import stations_app
from csms.cli.tariffs import tariffs_app
from csms.config import load_settings
from csms.errors import ConfigError
from csms.runtime.app import run
from csms.runtime.logs import configure_logging

__all__ = ["app", "main"]

app = typer.Typer(help="OCPP 1.6J / 2.0.1 central system.", no_args_is_help=True)
app.add_typer(stations_app, name="stations")
app.add_typer(grid_app, name="grid")
app.add_typer(smart_app, name="smart-charging")
app.add_typer(sessions_app, name="sessions")
app.add_typer(connectors_app, name="connector-specs")
app.add_typer(analytics_app, name="analytics")
app.add_typer(bookings_app, name="bookings")
app.add_typer(security_app, name="security")
app.add_typer(tariffs_app, name="tariffs")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(transactions_app, name="transactions")
DEFAULT_CONFIG = Path("config/csms.toml")


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


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="csms")
