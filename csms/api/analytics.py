"""Analytics over a time range as JSON, or as CSV with ``?format=csv`` or ``Accept: text/csv``.

Every report takes ``start`` and ``end`` (default: the 7 days before now), and a scope: ``site_id``,
``station_id`` and ``evse_id``. Operators see only their sites; drivers only ``/analytics/users``, restricted to
their own account.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from csms.api.auth import CurrentPrincipal
from csms.api.availability import live_services, zone
from csms.api.context import ApiContext, api_context
from csms.domain.analytics import ConnectorUtilisation, Summary, UsageClass
from csms.errors import InvalidRequest
from csms.service.analytics import Scope

__all__ = ["router"]

router = APIRouter(prefix="/analytics", tags=["analytics"])
Context = Annotated[ApiContext, Depends(api_context)]
DEFAULT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=366)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


Start = Annotated[datetime | None, Query(description="inclusive, with a UTC offset; default end - 7 days")]
End = Annotated[datetime | None, Query(description="exclusive, with a UTC offset; default now")]
SiteId = Annotated[str | None, Query(max_length=48)]
StationId = Annotated[str | None, Query(max_length=48)]
EvseId = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
AsFormat = Annotated[Format | None, Query(alias="format", description="json (default) or csv")]
Accept = Annotated[str | None, Header()]


def _range(ctx: ApiContext, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a UTC offset, e.g. 2026-11-23T00:00:00Z")
    end = end or ctx.clock()
    try:
        start = start or end - DEFAULT_RANGE
    except OverflowError:
        raise InvalidRequest("end is too early for the default range: give start too") from None
    if end <= start:
        raise InvalidRequest("end must be after start")
    if end - start > MAX_RANGE:
        raise InvalidRequest(f"a range may span at most {MAX_RANGE.days} days")
    return start, end


def _wants_csv(fmt: Format | None, accept: str | None) -> bool:
    if fmt is not None:
        return fmt is Format.CSV
    return accept is not None and "text/csv" in accept


@dataclass(frozen=True, slots=True)
class _Window:
    """What every report is asked for besides its scope: the time range and whether the answer is CSV."""

    first: datetime
    last: datetime
    csv: bool


def _window(ctx: Context, start: Start = None, end: End = None, fmt: AsFormat = None, accept: Accept = None) -> _Window:
    first, last = _range(ctx, start, end)
    return _Window(first, last, _wants_csv(fmt, accept))


Window = Annotated[_Window, Depends(_window)]


def _csv(rows: Iterable[Mapping[str, Any]], columns: list[str], name: str) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 3)
    return value


def _scope_body(scope: Scope, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "site_ids": scope.site_ids,
        "station_ids": scope.station_ids,
        "evse_id": scope.evse_id,
    }


def _summary(summary: Summary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "mean": summary.mean,
        "median": summary.median,
        "p90": summary.p90,
        "max": summary.max,
        "total": summary.total,
    }


@router.get("/patterns", response_model=None)
async def patterns(
    ctx: Context,
    principal: CurrentPrincipal,
    window: Window,
    site_id: SiteId = None,
    station_id: StationId = None,
    evse_id: EvseId = None,
    tz: Annotated[str, Query(max_length=64, description="IANA time zone for hours and weekdays")] = "UTC",
) -> dict[str, Any] | Response:
    """Arrivals and departures by hour and weekday, dwell time (minutes) and energy (kWh) per session."""
    live = live_services(ctx)
    first, last = window.first, window.last
    scope = live.analytics.scope(principal, site_id, station_id, evse_id)
    result = await live.analytics.patterns(scope, first, last, zone(tz))
    if window.csv:
        rows = [
            {"dimension": "hour", "bucket": str(h), "arrivals": a, "departures": d}
            for h, (a, d) in enumerate(zip(result.arrivals_by_hour, result.departures_by_hour, strict=True))
        ] + [
            {"dimension": "weekday", "bucket": WEEKDAYS[w], "arrivals": a, "departures": d}
            for w, (a, d) in enumerate(zip(result.arrivals_by_weekday, result.departures_by_weekday, strict=True))
        ]
        return _csv(rows, ["dimension", "bucket", "arrivals", "departures"], "patterns")
    return {
        **_scope_body(scope, first, last),
        "time_zone": tz,
        "sessions": result.sessions,
        "completed": result.completed,
        "arrivals_by_hour": list(result.arrivals_by_hour),
        "departures_by_hour": list(result.departures_by_hour),
        "arrivals_by_weekday": list(result.arrivals_by_weekday),
        "departures_by_weekday": list(result.departures_by_weekday),
        "dwell_minutes": _summary(result.dwell_minutes),
        "energy_kwh": _summary(result.energy_kwh),
    }


USER_COLUMNS = [
    "account_id",
    "id_token",
    "sessions",
    "energy_kwh",
    "mean_dwell_minutes",
    "bookings",
    "no_shows",
    "no_show_rate",
    "overstays",
    "overstay_rate",
]


@router.get("/users", response_model=None)
async def users(
    ctx: Context,
    principal: CurrentPrincipal,
    window: Window,
    site_id: SiteId = None,
    station_id: StationId = None,
    evse_id: EvseId = None,
) -> dict[str, Any] | Response:
    """Sessions, energy and dwell per account (per token for tokens nobody owns); drivers get their own only.

    ``no_show_rate``: expired / due bookings starting in the range (null without any); ``overstay_rate``: null
    when no overstay outcome is known (docs/analytics.md).
    """
    live = live_services(ctx)
    first, last = window.first, window.last
    scope = live.analytics.scope(principal, site_id, station_id, evse_id, own_figures=True)
    figures = await live.analytics.users(scope, first, last)
    rows = [{column: getattr(f, column) for column in USER_COLUMNS} for f in figures]
    if window.csv:
        return _csv(rows, USER_COLUMNS, "users")
    return {**_scope_body(scope, first, last), "account_id": scope.account_id, "users": rows}


def _utilisation_row(connector: ConnectorUtilisation) -> dict[str, Any]:
    row: dict[str, Any] = {
        "station_id": connector.station_id,
        "evse_id": connector.evse_id,
        "connector_id": connector.connector_id,
    }
    row.update({f"{usage.value}_s": connector.seconds.get(usage, 0.0) for usage in UsageClass})
    row["occupied_share"] = connector.occupied_share
    row["charging_share"] = connector.share(UsageClass.CHARGING)
    return row


UTILISATION_COLUMNS = [
    "station_id",
    "evse_id",
    "connector_id",
    *(f"{usage.value}_s" for usage in UsageClass),
    "occupied_share",
    "charging_share",
]


@router.get("/utilisation", response_model=None)
async def utilisation(
    ctx: Context,
    principal: CurrentPrincipal,
    window: Window,
    site_id: SiteId = None,
    station_id: StationId = None,
    evse_id: EvseId = None,
) -> dict[str, Any] | Response:
    """Seconds each connector spent charging, occupied without charging, idle, reserved, out of service, unknown."""
    live = live_services(ctx)
    first, last = window.first, window.last
    scope = live.analytics.scope(principal, site_id, station_id, evse_id)
    report = await live.analytics.utilisation(scope, first, last)
    rows = [_utilisation_row(c) for c in report.connectors]
    if window.csv:
        return _csv(rows, UTILISATION_COLUMNS, "utilisation")
    total = sum(report.totals.values())
    return {
        **_scope_body(scope, first, last),
        "connectors": rows,
        "totals_s": {usage.value: seconds for usage, seconds in report.totals.items()},
        "occupied_share": (report.totals[UsageClass.CHARGING] + report.totals[UsageClass.OCCUPIED]) / total
        if total
        else None,
        "charging_share": report.totals[UsageClass.CHARGING] / total if total else None,
        "sites": [_site_utilisation(site, totals) for site, totals in report.sites.items()],
    }


def _site_utilisation(site_id: str, totals: Mapping[UsageClass, float]) -> dict[str, Any]:
    total = sum(totals.values())
    busy = totals[UsageClass.CHARGING] + totals[UsageClass.OCCUPIED]
    return {
        "site_id": site_id,
        "totals_s": {usage.value: seconds for usage, seconds in totals.items()},
        "occupied_share": busy / total if total else None,
        "charging_share": totals[UsageClass.CHARGING] / total if total else None,
    }


@router.get("/load", response_model=None)
async def load(
    ctx: Context,
    principal: CurrentPrincipal,
    window: Window,
    site_id: SiteId = None,
    station_id: StationId = None,
    bucket_minutes: Annotated[float, Query(ge=1, le=1440)] = 15,
) -> dict[str, Any] | Response:
    """Per site: mean charging power per bucket (from energy readings), peak, time over the site's limit."""
    live = live_services(ctx)
    first, last = window.first, window.last
    scope = live.analytics.scope(principal, site_id, station_id)
    sites = await live.analytics.load(scope, first, last, timedelta(minutes=bucket_minutes))
    if window.csv:
        rows = [
            {"site_id": s.site_id, "start": p.start, "power_w": p.power_w, "limit_w": s.report.limit_w}
            for s in sites
            for p in s.report.series
        ]
        return _csv(rows, ["site_id", "start", "power_w", "limit_w"], "load")
    return {
        **_scope_body(scope, first, last),
        "sites": [
            {
                "site_id": s.site_id,
                "bucket_minutes": s.report.bucket_minutes,
                "energy_kwh": s.report.energy_kwh,
                "mean_w": s.report.mean_w,
                "peak_w": s.report.peak_w,
                "peak_at": s.report.peak_at,
                "limit_w": s.report.limit_w,
                "peak_share_of_limit": s.report.peak_share_of_limit,
                "headroom_w": s.report.headroom_w,
                "over_limit_minutes": s.report.over_limit_minutes,
                "load_factor": s.report.load_factor,
                "series": [{"start": p.start, "power_w": p.power_w} for p in s.report.series],
            }
            for s in sites
        ],
    }
