"""``csms tokens`` and ``csms transactions``: id tokens (and the driver each belongs to), sessions and their cost."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, all_items, err, print_json, request, show_items

__all__ = ["tokens_app", "transactions_app"]

tokens_app = typer.Typer(
    help="Id tokens (RFID cards, app tokens) and the driver each belongs to.", no_args_is_help=True
)
transactions_app = typer.Typer(help="Charging sessions (transactions) and their cost.", no_args_is_help=True)


@tokens_app.command("list")
def list_tokens(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Every id token (admins) or your own (drivers)."""
    items = all_items(f"{api}/api/v1/id-tokens", token)
    show_items(items, as_json, ("token", "type", "status", "owner", "expiry", "parent", "group"), _token_row)


def _token_row(item: dict[str, Any]) -> list[str]:
    optional = (item["owner"], item["expiry"], item["parent_id"], item["group_id"])
    return [item["token"], item["token_type"], item["status"], *("" if v is None else str(v) for v in optional)]


@tokens_app.command("show")
def show_token(id_token: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    print_json(request("GET", f"{api}/api/v1/id-tokens/{id_token}", token))


@tokens_app.command("set")
def set_token(
    id_token: str,
    status: Annotated[str, typer.Option(help="Accepted, Blocked, Expired, Invalid, ...")] = "Accepted",
    owner: Annotated[str | None, typer.Option(help="the driver account the token belongs to")] = None,
    token_type: Annotated[str, typer.Option("--type", help="ISO14443, eMAID, Central, ...")] = "ISO14443",
    expiry: Annotated[datetime | None, typer.Option(help="with a time zone offset")] = None,
    parent: Annotated[str | None, typer.Option(help="parent id tag (group)")] = None,
    group: Annotated[str | None, typer.Option(help="group id token (2.0.1)")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
) -> None:
    """Create or replace an id token (admins)."""
    if expiry is not None and expiry.tzinfo is None:
        err.print("[red]--expiry needs a time zone offset, e.g. +00:00[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"status": status, "token_type": token_type, "owner": owner}
    body.update({"expiry": expiry.isoformat() if expiry else None, "parent_id": parent, "group_id": group})
    print_json(request("PUT", f"{api}/api/v1/id-tokens/{id_token}", token, json=body))


@tokens_app.command("remove")
def remove_token(id_token: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    request("DELETE", f"{api}/api/v1/id-tokens/{id_token}", token)
    Console().print(f"id token {id_token} removed")


@transactions_app.command("list")
def list_transactions(
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    active: Annotated[bool | None, typer.Option("--active/--ended", help="only those in progress, or ended")] = None,
    limit: Annotated[int, typer.Option(help="newest this many", min=1, max=1000)] = 100,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Sessions you may see, newest first."""
    params: dict[str, Any] = {"limit": limit}
    params.update({k: v for k, v in {"station_id": station, "active": active}.items() if v is not None})
    items = request("GET", f"{api}/api/v1/transactions", token, params=params)["items"]
    columns = ("id", "station", "EVSE", "token", "started", "stopped", "kWh", "state")
    show_items(items, as_json, columns, _transaction_row)


def _transaction_row(item: dict[str, Any]) -> list[str]:
    energy = item["energy_wh"]
    kwh = "" if energy is None else f"{energy / 1000:.2f}"
    stopped = str(item["stopped_at"] or "")
    where = [str(item["id"]), item["station_id"], str(item["evse_id"]), item["id_token"] or ""]
    return [*where, str(item["started_at"]), stopped, kwh, item["state"]]


@transactions_app.command("show")
def show_transaction(
    transaction_id: int, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False
) -> None:
    """A session with its energy and cost breakdown."""
    body = request("GET", f"{api}/api/v1/transactions/{transaction_id}", token)
    if as_json:
        print_json(body)
        return
    energy = body["energy_wh"]
    kwh = "in progress" if energy is None else f"{energy / 1000:.2f} kWh"
    console = Console()
    console.print(f"transaction {body['id']} at {body['station_id']} EVSE {body['evse_id']}: {body['state']}, {kwh}")
    console.print(
        f"  token {body['id_token'] or '-'}, started {body['started_at']}, stopped {body['stopped_at'] or '-'}"
    )
    cost = body.get("cost")
    if cost:
        final = "final" if cost["final"] else "so far"
        console.print(
            f"  cost ({final}): {cost['total']} {cost['currency']} = energy {cost['energy']} + time {cost['time']}"
            f" + session {cost['session_fee']} + overstay {cost['overstay']['fee']}"
        )
