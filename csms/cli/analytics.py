"""``csms analytics``: charging patterns, user behaviour, utilisation and peak load as tables, JSON, CSV or PNG."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from csms.cli.common import DEFAULT_API, ApiUrl, AsJson, Token, err, print_json, request

__all__ = ["analytics_app"]

analytics_app = typer.Typer(
    help="Analytics over a time range (default: the last 7 days): JSON, CSV and PNG plots.", no_args_is_help=True
)

Site = Annotated[str | None, typer.Option("--site", help="one site")]
Station = Annotated[str | None, typer.Option("--station", help="one station")]
Evse = Annotated[int | None, typer.Option("--evse", help="one EVSE of the station")]
Start = Annotated[str | None, typer.Option(help="from, ISO 8601 with offset, e.g. 2026-11-01T00:00:00Z")]
End = Annotated[str | None, typer.Option(help="until (exclusive), ISO 8601 with offset; default now")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV (for spreadsheets).")]
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
USAGE_COLOURS = {
    "charging": "#2a9d8f",
    "occupied": "#e9c46a",
    "idle": "#d9d9d9",
    "reserved": "#8ab6d6",
    "out_of_service": "#e76f51",
    "unknown": "#f4f4f4",
}


class Plot(StrEnum):
    PATTERNS = "patterns"
    UTILISATION = "utilisation"
    LOAD = "load"


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _fetch(api: str, token: str | None, report: str, params: dict[str, Any]) -> Any:
    return request("GET", f"{api}/api/v1/analytics/{report}", token, params=params)


def _report_for_table(
    api: str, token: str | None, report: str, params: dict[str, Any], *, as_json: bool, as_csv: bool
) -> Any:
    """The report's body for a table, or None when it was already printed as CSV or JSON."""
    if as_csv:
        _csv(api, token, report, params)
        return None
    body = _fetch(api, token, report, params)
    if as_json:
        print_json(body)
        return None
    return body


def _csv(api: str, token: str | None, report: str, params: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            f"{api}/api/v1/analytics/{report}", params={**params, "format": "csv"}, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the CSMS API at {api}:[/red] {exc}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        err.print(f"[red]{response.status_code}:[/red] {response.json().get('detail', response.text)}")
        raise typer.Exit(1)
    print(response.text, end="")


def _number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@analytics_app.command("patterns")
def patterns(
    site: Site = None,
    station: Station = None,
    evse: Evse = None,
    start: Start = None,
    end: End = None,
    tz: Annotated[str, typer.Option(help="IANA time zone for hours and weekdays")] = "UTC",
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Arrivals and departures by hour and weekday, dwell time and energy per session."""
    params = _params(site_id=site, station_id=station, evse_id=evse, start=start, end=end, tz=tz)
    body = _report_for_table(api, token, "patterns", params, as_json=as_json, as_csv=as_csv)
    if body is None:
        return
    console = Console()
    console.print(f"{body['sessions']} sessions ({body['completed']} completed), times in {body['time_zone']}")
    dwell, energy = body["dwell_minutes"], body["energy_kwh"]
    console.print(
        f"dwell: mean {_number(dwell['mean'])} min, median {_number(dwell['median'])}, p90 {_number(dwell['p90'])}; "
        f"energy: {_number(energy['total'])} kWh, mean {_number(energy['mean'])} kWh per session"
    )
    table = Table("hour", "arrivals", "departures")
    for hour in range(24):
        table.add_row(f"{hour:02d}", str(body["arrivals_by_hour"][hour]), str(body["departures_by_hour"][hour]))
    console.print(table)


@analytics_app.command("users")
def users(
    site: Site = None,
    station: Station = None,
    start: Start = None,
    end: End = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Sessions, energy and dwell per account (a driver's key: its own figures only)."""
    params = _params(site_id=site, station_id=station, start=start, end=end)
    body = _report_for_table(api, token, "users", params, as_json=as_json, as_csv=as_csv)
    if body is None:
        return
    table = Table("account", "token", "sessions", "energy kWh", "mean dwell min", "no-show rate", "overstay rate")
    for row in body["users"]:
        table.add_row(
            row["account_id"] or "",
            row["id_token"] or "",
            str(row["sessions"]),
            _number(row["energy_kwh"]),
            _number(row["mean_dwell_minutes"]),
            _number(row["no_show_rate"], 2) or "n/a",
            _number(row["overstay_rate"], 2) or "n/a",
        )
    Console().print(table)


@analytics_app.command("utilisation")
def utilisation(
    site: Site = None,
    station: Station = None,
    evse: Evse = None,
    start: Start = None,
    end: End = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Share of time each connector spent charging, occupied, idle, reserved or out of service."""
    params = _params(site_id=site, station_id=station, evse_id=evse, start=start, end=end)
    body = _report_for_table(api, token, "utilisation", params, as_json=as_json, as_csv=as_csv)
    if body is None:
        return
    table = Table("station", "EVSE", "conn.", "charging %", "occupied %", "idle %", "out of service %", "unknown %")
    for row in body["connectors"]:
        total = sum(row[f"{usage}_s"] for usage in USAGE_COLOURS) or 1.0
        table.add_row(
            row["station_id"],
            str(row["evse_id"]),
            str(row["connector_id"]),
            *(_number(100 * row[f"{usage}_s"] / total) for usage in ("charging", "occupied", "idle")),
            _number(100 * row["out_of_service_s"] / total),
            _number(100 * row["unknown_s"] / total),
        )
    Console().print(table)


@analytics_app.command("load")
def load(
    site: Site = None,
    start: Start = None,
    end: End = None,
    bucket_minutes: Annotated[float, typer.Option(help="averaging window")] = 15,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Peak charging load per site against its grid limit."""
    params = _params(site_id=site, start=start, end=end, bucket_minutes=bucket_minutes)
    body = _report_for_table(api, token, "load", params, as_json=as_json, as_csv=as_csv)
    if body is None:
        return
    table = Table("site", "energy kWh", "mean kW", "peak kW", "peak at", "limit kW", "peak/limit", "minutes over")
    for site_load in body["sites"]:
        share = site_load["peak_share_of_limit"]
        table.add_row(
            site_load["site_id"],
            _number(site_load["energy_kwh"]),
            _number(site_load["mean_w"] / 1000, 2),
            _number(site_load["peak_w"] / 1000, 2),
            site_load["peak_at"] or "",
            _number(site_load["limit_w"] / 1000 if site_load["limit_w"] is not None else None),
            f"{share:.0%}" if share is not None else "",
            _number(site_load["over_limit_minutes"], 0),
        )
    Console().print(table)


@analytics_app.command("plot")
def plot(
    kind: Annotated[Plot, typer.Argument(help="what to plot")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write")],
    site: Site = None,
    station: Station = None,
    start: Start = None,
    end: End = None,
    tz: Annotated[str, typer.Option(help="time zone of the patterns plot")] = "UTC",
    bucket_minutes: Annotated[float, typer.Option(help="averaging window of the load plot")] = 15,
    api: ApiUrl = DEFAULT_API,
    token: Token = None,
) -> None:
    """Write a PNG: patterns (arrivals/departures), utilisation (per connector) or load (power vs limit)."""
    params = _params(site_id=site, station_id=station, start=start, end=end)
    if kind is Plot.PATTERNS:
        figure = _patterns_figure(_fetch(api, token, "patterns", {**params, "tz": tz}))
    elif kind is Plot.UTILISATION:
        figure = _utilisation_figure(_fetch(api, token, "utilisation", params))
    else:
        figure = _load_figure(_fetch(api, token, "load", {**params, "bucket_minutes": bucket_minutes}))
    try:
        figure.savefig(out, format="png", dpi=100)
    except OSError as exc:
        err.print(f"[red]cannot write {out}:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"wrote {out}")


def _patterns_figure(body: dict[str, Any]) -> Figure:
    figure = Figure(figsize=(10, 6), layout="constrained")
    by_hour, by_day = figure.subplots(2, 1)
    hours = list(range(24))
    by_hour.bar([h - 0.2 for h in hours], body["arrivals_by_hour"], width=0.4, label="arrivals")
    by_hour.bar([h + 0.2 for h in hours], body["departures_by_hour"], width=0.4, label="departures")
    by_hour.set(xlabel=f"hour ({body['time_zone']})", ylabel="sessions", xticks=hours)
    by_hour.legend()
    days = list(range(7))
    by_day.bar([d - 0.2 for d in days], body["arrivals_by_weekday"], width=0.4, label="arrivals")
    by_day.bar([d + 0.2 for d in days], body["departures_by_weekday"], width=0.4, label="departures")
    by_day.set(ylabel="sessions", xticks=days, xticklabels=WEEKDAYS)
    figure.suptitle(f"Charging patterns: {body['sessions']} sessions")
    return figure


def _utilisation_figure(body: dict[str, Any]) -> Figure:
    rows = body["connectors"]
    figure = Figure(figsize=(10, max(2.5, 0.4 * len(rows) + 1.5)), layout="constrained")
    axes = figure.subplots()
    labels = [f"{r['station_id']}/{r['evse_id']}/{r['connector_id']}" for r in rows]
    left = [0.0] * len(rows)
    for usage, colour in USAGE_COLOURS.items():
        totals = [sum(r[f"{u}_s"] for u in USAGE_COLOURS) or 1.0 for r in rows]
        shares = [100 * r[f"{usage}_s"] / total for r, total in zip(rows, totals, strict=True)]
        axes.barh(labels, shares, left=left, color=colour, label=usage.replace("_", " "))
        left = [a + b for a, b in zip(left, shares, strict=True)]
    axes.set(xlabel="% of time", xlim=(0, 100))
    axes.legend(loc="lower right", fontsize="small")
    figure.suptitle("Connector utilisation")
    return figure


def _load_figure(body: dict[str, Any]) -> Figure:
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.subplots()
    for site_load in body["sites"]:
        times = date2num([datetime.fromisoformat(p["start"]) for p in site_load["series"]])  # type: ignore[no-untyped-call]
        power = [p["power_w"] / 1000 for p in site_load["series"]]
        line = axes.step(times, power, where="post", label=f"{site_load['site_id']} load")[0]
        if site_load["limit_w"] is not None:
            axes.axhline(site_load["limit_w"] / 1000, color=line.get_color(), linestyle="--", label="limit")
    axes.xaxis_date()
    axes.set(ylabel="kW", xlabel="time (UTC)")
    axes.legend()
    figure.suptitle("Charging load vs grid limit")
    return figure
