"""``csms tariffs``: tariffs per site (and the default), session rules, quotes and session costs."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, OptionalNumber, Token, err, print_json, request

__all__ = ["tariffs_app"]

tariffs_app = typer.Typer(help="Tariffs, price tiers, session rules, quotes and session costs.", no_args_is_help=True)

Scope = Annotated[str, typer.Argument(help="a site id, or 'default' for the tariff of sites without their own")]


def _tariff_url(api: str, scope: str) -> str:
    return f"{api}/api/v1/tariffs/default" if scope == "default" else f"{api}/api/v1/sites/{scope}/tariff"


def _describe(tariff: dict[str, Any]) -> str:
    prices, overstay, currency = tariff["prices"], tariff["overstay"], tariff["currency"]
    cap = f", cap {overstay['cap']}" if overstay["cap"] is not None else ""
    lines = [
        f"[bold]{tariff['id']}[/bold] in {currency} ({tariff['time_zone']})",
        f"  energy {prices['energy_per_kwh']}/kWh, time {prices['time_per_hour']}/h ({tariff['time_basis']} time),"
        f" session fee {prices['session_fee']}",
        f"  overstay {overstay['per_minute']}/min after {overstay['grace_minutes']} min grace{cap}",
    ]
    for tier in tariff["tiers"]:
        conditions = []
        if tier["min_utilisation"] is not None:
            conditions.append(f"utilisation >= {tier['min_utilisation']:.0%}")
        if tier["min_forecast"] is not None:
            conditions.append(f"forecast >= {tier['min_forecast']:.0%}")
        if tier["window"] is not None:
            window = tier["window"]
            days = "".join(str(d) for d in window["weekdays"])
            conditions.append(f"{window['start']}-{window['end']} on days {days}")
        effect = f"x{tier['multiplier']}" if tier["multiplier"] is not None else f"prices {tier['prices']}"
        lines.append(f"  tier {tier['name']}: {' and '.join(conditions) or 'always'} -> {effect}")
    return "\n".join(lines)


@tariffs_app.command("list")
def list_tariffs(api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """List the default tariff and every site's own."""
    items = request("GET", f"{api}/api/v1/tariffs", token)["items"]
    if as_json:
        print_json(items)
        return
    table = Table("tariff", "currency", "energy/kWh", "time/h", "basis", "fee", "overstay/min", "tiers")
    for item in items:
        prices = item["prices"]
        table.add_row(
            item["id"],
            item["currency"],
            prices["energy_per_kwh"],
            prices["time_per_hour"],
            item["time_basis"],
            prices["session_fee"],
            item["overstay"]["per_minute"],
            ", ".join(tier["name"] for tier in item["tiers"]),
        )
    Console().print(table)


@tariffs_app.command("show")
def show_tariff(scope: Scope, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show the tariff a site's sessions are priced by (its own or the default), or the default."""
    tariff = request("GET", _tariff_url(api, scope), token)
    if as_json:
        print_json(tariff)
    else:
        inherited = " (the default: the site has none of its own)" if tariff.get("inherited") else ""
        Console().print(_describe(tariff) + inherited)


def _read_body(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        body: dict[str, Any] = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except FileNotFoundError:
        err.print(f"[red]no such file:[/red] {path}")
        raise typer.Exit(2) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}:[/red] {exc}")
        raise typer.Exit(2) from None
    return body


@tariffs_app.command("set")
def set_tariff(
    scope: Scope,
    file: Annotated[Path | None, typer.Option(help="the whole tariff (with tiers) as a JSON or .toml file")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, e.g. EUR")] = None,
    energy: Annotated[str | None, typer.Option(help="price per kWh")] = None,
    time: Annotated[str | None, typer.Option(help="price per hour")] = None,
    fee: Annotated[str | None, typer.Option(help="fee per session")] = None,
    basis: Annotated[str | None, typer.Option(help="time charged: charging or connected")] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA zone of time-of-use windows")] = None,
    overstay: Annotated[str | None, typer.Option(help="overstay fee per minute")] = None,
    overstay_cap: OptionalNumber = None,
    grace: Annotated[int | None, typer.Option(help="minutes of grace before overstay is billed")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Set a site's tariff or the default: from --file, with the options given overriding its values."""
    body: dict[str, Any] = _read_body(file) if file is not None else {}
    prices = body.setdefault("prices", {})
    for key, value in (("energy_per_kwh", energy), ("time_per_hour", time), ("session_fee", fee)):
        if value is not None:
            prices[key] = value
    for key, value in (("currency", currency), ("time_basis", basis), ("time_zone", time_zone)):
        if value is not None:
            body[key] = value
    penalty = body.setdefault("overstay", {})
    if overstay is not None:
        penalty["per_minute"] = overstay
    if overstay_cap is not None:
        penalty["cap"] = None if overstay_cap.lower() == "none" else overstay_cap
    if grace is not None:
        penalty["grace_minutes"] = grace
    tariff = request("PUT", _tariff_url(api, scope), token, json=body)
    if as_json:
        print_json(tariff)
    else:
        Console().print(_describe(tariff))


@tariffs_app.command("remove")
def remove_tariff(scope: Scope, api: ApiUrl = DEFAULT_API, token: Token = None) -> None:
    """Remove a site's own tariff (it falls back to the default), or the default."""
    request("DELETE", _tariff_url(api, scope), token)
    Console().print(f"removed the tariff of {scope}")


@tariffs_app.command("rules")
def session_rules(
    site_id: str,
    max_minutes: OptionalNumber = None,
    warning: Annotated[int | None, typer.Option(help="minutes before the limit to warn")] = None,
    at_limit: Annotated[str | None, typer.Option(help="stop or overstay")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show a site's session rules, or change them with the options given."""
    url = f"{api}/api/v1/sites/{site_id}/session-rules"
    rules = request("GET", url, token)
    if max_minutes is not None or warning is not None or at_limit is not None:
        body = {key: rules[key] for key in ("max_charging_minutes", "warning_minutes", "at_limit")}
        if max_minutes is not None:
            body["max_charging_minutes"] = None if max_minutes.lower() == "none" else _whole(max_minutes)
        if warning is not None:
            body["warning_minutes"] = warning
        if at_limit is not None:
            body["at_limit"] = at_limit
        rules = request("PUT", url, token, json=body)
    if as_json:
        print_json(rules)
        return
    limit = rules["max_charging_minutes"]
    if limit is None:
        Console().print(f"site {site_id}: sessions are not limited in time")
    else:
        Console().print(
            f"site {site_id}: at most {limit} min per session, warning {rules['warning_minutes']} min before,"
            f" then {rules['at_limit']}"
        )


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        err.print(f"[red]--max-minutes must be a whole number or 'none', not {text!r}[/red]")
        raise typer.Exit(2) from None


@tariffs_app.command("quote")
def quote(
    site_id: str,
    start: Annotated[
        datetime | None, typer.Option(help="start (ISO 8601, UTC unless an offset is given) [now]")
    ] = None,
    minutes: Annotated[int, typer.Option(help="length of the stay")] = 60,
    energy_kwh: Annotated[float | None, typer.Option(help="energy wanted [estimated at the power]")] = None,
    station: Annotated[str | None, typer.Option(help="a station of the site")] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Quote the price of a stay at a site, as a driver sees it before committing."""
    starts_at = start or datetime.now(UTC)
    if starts_at.tzinfo is None:
        starts_at = starts_at.replace(tzinfo=UTC)
    body = {
        "site_id": site_id,
        "station_id": station,
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(minutes=minutes)).isoformat(),
        "energy_wh": None if energy_kwh is None else energy_kwh * 1000,
    }
    result = request("POST", f"{api}/api/v1/quotes", token, json=body)
    if as_json:
        print_json(result)
        return
    prices = result["prices"]
    Console().print(
        f"about {result['estimated_total']} {result['currency']} (tier {result['tier']}: "
        f"{prices['energy_per_kwh']}/kWh, {prices['time_per_hour']}/h, fee {prices['session_fee']}), "
        f"valid until {result['valid_until']}"
    )


@tariffs_app.command("cost")
def cost(transaction_id: int, api: ApiUrl = DEFAULT_API, token: Token = None, as_json: AsJson = False) -> None:
    """Show a session's cost breakdown (so far, for a session in progress)."""
    body = request("GET", f"{api}/api/v1/transactions/{transaction_id}/cost", token)
    if as_json:
        print_json(body)
        return
    currency = body["currency"]
    table = Table("part", "detail", f"amount ({currency})")
    table.add_row("energy", f"{body['energy_wh'] / 1000:g} kWh x {body['prices']['energy_per_kwh']}", body["energy"])
    minutes = body["time_seconds"] / 60
    table.add_row("time", f"{minutes:.0f} min {body['time_basis']} x {body['prices']['time_per_hour']}/h", body["time"])
    table.add_row("session fee", "", body["session_fee"])
    overstay = body["overstay"]
    detail = f"{overstay['minutes']} min ({overstay['reason']})" if overstay["minutes"] else ""
    table.add_row("overstay", detail, overstay["fee"])
    table.add_row("[bold]total[/bold]", f"tier {body['tier']}", f"[bold]{body['total']}[/bold]")
    state = "final" if body["final"] else "so far (session in progress)"
    Console().print(f"transaction {transaction_id}, {state}")
    Console().print(table)
