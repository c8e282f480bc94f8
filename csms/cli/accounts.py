"""``csms accounts`` and ``csms keys``: who may use the API, with which role, and their API keys."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, all_items, err, print_json, request, show_items
from csms.config import load_settings
from csms.errors import ConfigError

__all__ = ["accounts_app", "keys_app"]

accounts_app = typer.Typer(help="Accounts: admins, operators (with their sites) and drivers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an account (shown once, stored hashed).", no_args_is_help=True)

Sites = Annotated[str | None, typer.Option(help="operators: the sites it manages, comma-separated")]


def _print_account(account: dict[str, Any]) -> None:
    sites = f", sites {', '.join(account['site_ids'])}" if account.get("site_ids") else ""
    state = " [red](disabled)[/red]" if account.get("disabled") else ""
    priority = account.get("priority") or "standard"
    reason = f" ({account['priority_reason']})" if account.get("priority_reason") else ""
    Console().print(f"{account['id']}: {account['name']}, {account['role']}{sites}, priority {priority}{reason}{state}")


def _sites(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


@accounts_app.command("me")
def me(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show the account the API key belongs to."""
    body = request("GET", f"{api}/api/v1/me", token)
    print_json(body) if as_json else _print_account({"site_ids": [], **body})


@accounts_app.command("list")
def list_accounts(
    role: Annotated[str | None, typer.Option(help="admin, operator or driver")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List accounts (admins only)."""
    params = {"role": role} if role else {}
    items = all_items(f"{api}/api/v1/accounts", token, **params)
    columns = ("id", "name", "role", "sites", "priority", "disabled", "created")
    show_items(items, as_json, columns, _account_row)


def _account_row(item: dict[str, Any]) -> list[str]:
    sites = ", ".join(item["site_ids"])
    disabled = "yes" if item["disabled"] else ""
    return [item["id"], item["name"], item["role"], sites, item["priority"], disabled, str(item["created_at"])]


@accounts_app.command("create")
def create_account(
    name: str,
    role: Annotated[str, typer.Option(help="admin, operator or driver")],
    account_id: Annotated[str | None, typer.Option("--id", help="chosen id (default: a random UUID)")] = None,
    email: str | None = None,
    sites: Sites = None,
    priority: Annotated[str, typer.Option(help="standard, fleet or urgent")] = "standard",
    reason: Annotated[str | None, typer.Option(help="why this priority")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create an account; then give it a key with `csms keys create ACCOUNT`."""
    body: dict[str, Any] = {"name": name, "role": role, "priority": priority, "site_ids": _sites(sites) or []}
    body.update({k: v for k, v in {"id": account_id, "email": email, "priority_reason": reason}.items() if v})
    account = request("POST", f"{api}/api/v1/accounts", token, json=body)
    print_json(account) if as_json else _print_account(account)


@accounts_app.command("show")
def show_account(account_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    account = request("GET", f"{api}/api/v1/accounts/{account_id}", token)
    print_json(account) if as_json else _print_account(account)


@accounts_app.command("set")
def set_account(
    account_id: str,
    name: str | None = None,
    role: Annotated[str | None, typer.Option(help="admin, operator or driver")] = None,
    email: str | None = None,
    sites: Sites = None,
    priority: Annotated[str | None, typer.Option(help="standard, fleet or urgent")] = None,
    reason: Annotated[str | None, typer.Option(help="why this priority")] = None,
    disabled: Annotated[
        bool | None, typer.Option("--disable/--enable", help="lock the account out, or back in")
    ] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Change an account: only the options given are changed."""
    changes = {"name": name, "role": role, "email": email, "priority": priority, "priority_reason": reason}
    body: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    if sites is not None:
        body["site_ids"] = _sites(sites)
    if disabled is not None:
        body["disabled"] = disabled
    if not body:
        err.print("[red]nothing to change:[/red] give at least one option (see --help)")
        raise typer.Exit(2)
    account = request("PATCH", f"{api}/api/v1/accounts/{account_id}", token, json=body)
    print_json(account) if as_json else _print_account(account)


# -- keys ---------------------------------------------------------------------------------------------------


@keys_app.command("list")
def list_keys(account_id: str, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """An account's keys (never their secrets)."""
    items = request("GET", f"{api}/api/v1/accounts/{account_id}/api-keys", token)["items"]
    show_items(items, as_json, ("id", "name", "state", "created", "expires", "last used"), _key_row)


def _key_row(item: dict[str, Any]) -> list[str]:
    dates = (item["created_at"], item["expires_at"] or "", item["last_used_at"] or "")
    return [item["id"], item["name"], item["state"], *map(str, dates)]


@keys_app.command("create")
def create_key(
    account_id: str,
    name: Annotated[str, typer.Option(help="what the key is for")] = "cli",
    expires: Annotated[datetime | None, typer.Option(help="expiry, e.g. 2027-01-01T00:00:00+00:00")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create a key; the key is printed once and cannot be shown again."""
    body: dict[str, Any] = {"name": name}
    if expires is not None:
        if expires.tzinfo is None:
            err.print("[red]--expires needs a time zone offset, e.g. +00:00[/red]")
            raise typer.Exit(2)
        body["expires_at"] = expires.isoformat()
    key = request("POST", f"{api}/api/v1/accounts/{account_id}/api-keys", token, json=body)
    if as_json:
        print_json(key)
        return
    err.print(f"key {key['id']} for {account_id}; store it now, it is not shown again:")
    print(key["key"])


@keys_app.command("revoke")
def revoke_key(account_id: str, key_id: str, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Revoke a key: it stops working with the next request."""
    key = request("DELETE", f"{api}/api/v1/accounts/{account_id}/api-keys/{key_id}", token)
    Console().print(f"key {key['id']} of {account_id}: {key['state']}")


@keys_app.command("create-admin")
def create_admin_key(
    config: Annotated[Path | None, typer.Option(help="TOML settings file (for the database)")] = None,
    name: Annotated[str, typer.Option(help="what the key is for")] = "create-admin",
    out: Annotated[Path | None, typer.Option(help="write the key to this file (mode 0600) instead of printing")] = None,
) -> None:
    """Issue an admin key straight into the database (first start, or a lost key); no API key needed."""
    from csms.runtime.admin_keys import issue_admin_key
    from csms.service.accounts import write_secret_file

    if config is None and Path("config/csms.toml").exists():
        config = Path("config/csms.toml")
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    new = asyncio.run(issue_admin_key(settings, name))
    if out is not None:
        write_secret_file(out, new.text)
        err.print(f"admin key {new.key.id} written to {out}")
    else:
        err.print(f"admin key {new.key.id}; store it now, it is not shown again:")
        print(new.text)
