"""``csms security``: station security profiles and passwords, password rotation, security events."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, err, print_json, request

__all__ = ["security_app"]

security_app = typer.Typer(help="Charger security: profiles, passwords, security events.", no_args_is_help=True)

Password = Annotated[
    str | None,
    typer.Option(envvar="CSMS_STATION_PASSWORD", help="New password (better: the env var, or --generate)."),
]
Generate = Annotated[bool, typer.Option("--generate", help="Let the server generate a random password.")]
Hex = Annotated[bool, typer.Option("--hex", help="1.6: the password is the AuthorizationKey as hex digits.")]
MaxLength = Annotated[int | None, typer.Option(help="2.0.1: the station's BasicAuthPassword maxLimit (40..64).")]


def _password_body(password: str | None, generate: bool, hex_key: bool, max_length: int | None) -> dict[str, Any]:
    if password is not None and generate:
        err.print("[red]give --password or --generate, not both[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"generate_password": generate, "encoding": "hex" if hex_key else "text"}
    if password is not None:
        body["password"] = password
    if max_length is not None:
        body["max_length"] = max_length
    return body


def _show(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
        return
    table = Table("station", "profile", "password", "set at", "rotation pending")
    table.add_row(
        body["station_id"],
        str(body["profile"]),
        "yes" if body["has_password"] else "no",
        str(body.get("password_set_at") or ""),
        "yes" if body["rotation_pending"] else "no",
    )
    Console().print(table)
    if body.get("station_answer"):
        print(f"station answered: {body['station_answer']}")
    if body.get("password"):
        # Printed once, to stdout only; the server keeps only a hash.
        print(f"generated password (shown once): {body['password']}")


@security_app.command("show")
def show(station_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show a station's security profile and password state."""
    _show(request("GET", f"{api}/api/v1/stations/{station_id}/security", token), as_json)


@security_app.command("set")
def set_security(
    station_id: str,
    profile: Annotated[int, typer.Option(min=0, max=3, help="0 unsecured (dev), 1 Basic, 2 TLS+Basic, 3 mTLS")],
    password: Password = None,
    generate: Generate = False,
    hex_key: Hex = False,
    max_length: MaxLength = None,
    ocpp: Annotated[str | None, typer.Option(help="1.6 or 2.0.1: whose password rules apply")] = None,
    allow_downgrade: Annotated[bool, typer.Option(help="Admins: allow a lower profile than recorded.")] = False,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Record a station's security profile and password (the station itself is not told)."""
    body = _password_body(password, generate, hex_key, max_length)
    body.update(profile=profile, allow_downgrade=allow_downgrade)
    if ocpp is not None:
        body["ocpp_version"] = ocpp
    _show(request("PUT", f"{api}/api/v1/stations/{station_id}/security", token, json=body), as_json)


@security_app.command("rotate")
def rotate(
    station_id: str,
    password: Password = None,
    generate: Generate = False,
    hex_key: Hex = False,
    max_length: MaxLength = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Change a connected station's password over OCPP; the old one works until the station accepts."""
    body = _password_body(password, generate, hex_key, max_length)
    url = f"{api}/api/v1/stations/{station_id}/security/rotate-password"
    result = request("POST", url, token, json=body)
    _show(result, as_json)
    if result.get("station_answer") != "Accepted":
        raise typer.Exit(1)


@security_app.command("events")
def events(
    station_id: Annotated[str | None, typer.Option("--station", help="Only this station's events.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. AuthFailed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List security events, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if station_id is not None:
        params["station_id"] = station_id
    if kind is not None:
        params["kind"] = kind
    body = request("GET", f"{api}/api/v1/security-events", token, params=params)
    if as_json:
        print(json.dumps(body["items"], indent=2, default=str))
        return
    table = Table("id", "at", "kind", "station", "ip", "detail")
    for item in body["items"]:
        table.add_row(
            str(item["id"]),
            str(item["at"]),
            item["kind"],
            item.get("station_id") or "",
            item.get("remote_ip") or "",
            item["detail"],
        )
    Console(width=200).print(table)
