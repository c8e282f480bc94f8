"""Real-time availability per site, station and connector, and each site's live figures.

Anyone may read availability of a site's stations, but only admins and the site's operators see who occupies a
connector (token, account, transaction); a driver sees "occupied", and ``mine`` when it is its own session.
A station wired to no site is visible to admins only, and an operator's stations are those of its sites (others:
404, as if they did not exist). Site live data (loads, sessions, energy today) is for the site's operators and
admins (403 for anyone else).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from csms.api.auth import CurrentPrincipal, require_site
from csms.api.context import ApiContext, api_context
from csms.domain.accounts import Principal, Role
from csms.domain.grid import GridError
from csms.domain.grid_setup import time_zone
from csms.errors import Conflict, InvalidRequest, NotFound
from csms.service.availability import ConnectorAvailability, SiteLive, StationAvailability
from csms.service.live import LiveServices

__all__ = ["live_services", "router", "zone"]

router = APIRouter(tags=["availability"])
Context = Annotated[ApiContext, Depends(api_context)]
StationPath = Annotated[str, Path(min_length=1, max_length=48)]
IdPath = Annotated[int, Path(ge=0, le=2**31 - 1)]
TimeZone = Annotated[str, Query(max_length=64, description="IANA time zone for 'today', e.g. Europe/Berlin")]


def live_services(ctx: ApiContext) -> LiveServices:
    if ctx.live is None:
        raise Conflict("availability and analytics are not running in this process")
    return ctx.live


def zone(name: str) -> Any:
    try:
        return time_zone(name)
    except GridError as exc:
        raise InvalidRequest(str(exc)) from None


@router.get("/availability")
async def availability_overview(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every site the caller may charge at (drivers: all) or manages (operators): connectors and how many are free."""
    live = live_services(ctx)
    sites = sorted(n.id for n in ctx.grid.setup.nodes.values() if n.parent_id is None)
    if principal.role is Role.OPERATOR:
        sites = [site for site in sites if principal.may_manage_site(site)]
    items = []
    for site in sites:
        views = await live.availability.stations(live.availability.require_site(site))
        connectors = [c for s in views for c in s.connectors]
        items.append(
            {
                "site_id": site,
                "stations": len(views),
                "connectors": len(connectors),
                "available": sum(1 for c in connectors if c.available),
            }
        )
    return {"at": ctx.clock(), "items": items}


@router.get("/sites/{site_id}/availability")
async def site_availability(site_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every station and connector of the site: status, type, max power, occupant, expected free time."""
    live = live_services(ctx)
    stations = live.availability.require_site(site_id)
    if principal.role is Role.OPERATOR:
        require_site(principal, site_id)
    views = await live.availability.stations(stations)
    connectors = [c for s in views for c in s.connectors]
    return {
        "site_id": site_id,
        "at": ctx.clock(),
        "connectors": len(connectors),
        "available": sum(1 for c in connectors if c.available),
        "stations": [_station(s, principal) for s in views],
    }


@router.get("/stations/{station_id}/availability")
async def station_availability(station_id: StationPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    live = live_services(ctx)
    view = await live.availability.station(station_id)
    _check_station(principal, view)
    return {"at": ctx.clock(), **_station(view, principal)}


@router.get("/stations/{station_id}/connectors/{evse_id}/{connector_id}/availability")
async def connector_availability(
    station_id: StationPath, evse_id: IdPath, connector_id: IdPath, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    live = live_services(ctx)
    view = await live.availability.station(station_id)
    _check_station(principal, view)
    for connector in view.connectors:
        if (connector.evse_id, connector.connector_id) == (evse_id, connector_id):
            return {"at": ctx.clock(), "online": view.online, **_connector(connector, principal)}
    raise NotFound(f"connector of station {station_id}", f"{evse_id}/{connector_id}")


@router.get("/sites/{site_id}/live")
async def site_live(site_id: str, ctx: Context, principal: CurrentPrincipal, tz: TimeZone = "UTC") -> dict[str, Any]:
    """Load vs limit per grid node, energy delivered today, sessions in progress, stations offline or faulted."""
    live = live_services(ctx)
    live.availability.require_site(site_id)
    require_site(principal, site_id)
    return _live(await live.availability.site_live(site_id, ctx.clock(), zone(tz)))


def _check_station(principal: Principal, view: StationAvailability) -> None:
    """Admins: any station; drivers: stations at a site; operators: their sites' stations. Else 404, so that
    station ids elsewhere do not leak (as for every station route)."""
    if principal.is_admin:
        return
    if view.site_id is None or (principal.role is Role.OPERATOR and not principal.may_manage_site(view.site_id)):
        raise NotFound("station", view.station_id)


def _station(view: StationAvailability, principal: Principal) -> dict[str, Any]:
    return {
        "station_id": view.station_id,
        "site_id": view.site_id,
        "online": view.online,
        "status": view.status,
        "connectors": [_connector(c, principal) for c in view.connectors],
    }


def _connector(view: ConnectorAvailability, principal: Principal) -> dict[str, Any]:
    return {
        "station_id": view.station_id,
        "evse_id": view.evse_id,
        "connector_id": view.connector_id,
        "status": view.status,
        "error_code": view.error_code,
        "status_at": view.status_at,
        "usage": view.usage.value,
        "available": view.available,
        "connector_type": view.info.connector_type,
        "max_power_w": view.info.max_power_w,
        "max_power_source": view.info.source,
        "bookable": view.info.bookable,
        "occupant": _occupant(view, principal),
        "expected_free_at": view.expected_free_at,
        "expected_free_basis": view.expected_free_basis,
    }


def _occupant(view: ConnectorAvailability, principal: Principal) -> dict[str, Any] | None:
    occupant = view.occupant
    if occupant is None:
        return None
    if principal.role is Role.DRIVER:
        # Never another driver's token or account: only that the connector is taken, and whether by the caller.
        return {"occupied": True, "mine": occupant.account_id == principal.account_id}
    return {
        "occupied": True,
        "transaction_id": occupant.transaction_id,
        "id_token": occupant.id_token,
        "account_id": occupant.account_id,
        "started_at": occupant.started_at,
    }


def _live(view: SiteLive) -> dict[str, Any]:
    return {
        "site_id": view.site_id,
        "at": view.at,
        "day_start": view.day_start,
        "energy_today_wh": round(view.energy_today_wh, 1),
        "nodes": [
            {
                "node_id": n.node_id,
                "parent_id": n.parent_id,
                "measured_a": list(n.measured_a),
                "measured_w": round(n.measured_w, 1),
                "limit_a": n.limit_a,
                "limit_w": n.limit_w,
                "over_limit": n.over_limit,
            }
            for n in view.nodes
        ],
        "sessions_in_progress": len(view.sessions),
        "sessions": list(view.sessions),
        "stations": view.stations,
        "connectors": view.connectors,
        "offline": list(view.offline),
        "faulted": list(view.faulted),
    }
