"""Connector specs: plug type, maximum power and bookability per connector (defaults from the station's wiring).

Anyone signed in may read specs (drivers choose a plug when they book); operators read only their sites' stations;
only an admin or the operator of the station's site may change a spec.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from csms.api.auth import CurrentPrincipal, require_admin, require_site
from csms.api.paging import Context, Limit, Offset, page
from csms.domain.accounts import Principal, Role
from csms.domain.connectors import ConnectorSpec, ConnectorType
from csms.errors import NotFound
from csms.service.connectors import ConnectorSpecService

__all__ = ["router", "spec_body"]

router = APIRouter(tags=["connectors"])

StationPath = Annotated[str, Path(min_length=1, max_length=48)]
EvsePath = Annotated[int, Path(ge=1, le=1000)]
ConnectorPath = Annotated[int, Path(ge=1, le=1000)]


class SpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    connector_type: ConnectorType = Field(default=ConnectorType.UNKNOWN, description="plug, e.g. Type2, CCS2")
    max_power_w: float | None = Field(
        default=None, gt=0, le=1_000_000, description="null: hardware maximum x phases x voltage from the wiring"
    )
    bookable: bool = True


@router.get("/connector-specs")
async def list_connector_specs(
    ctx: Context,
    principal: CurrentPrincipal,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    site_id: Annotated[str | None, Query(max_length=48)] = None,
    connector_type: ConnectorType | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The spec in force of every known connector, sorted by station, EVSE and connector."""
    stations: set[str] | None = None
    if site_id is not None:
        stations = set(ctx.grid.stations_of_site(site_id))
    if station_id is not None:
        stations = {station_id} if stations is None else stations & {station_id}
    if principal.role is Role.OPERATOR:
        mine = {s for site in principal.site_ids for s in ctx.grid.stations_of_site(site)}
        stations = mine if stations is None else stations & mine
    specs = await _connector_specs(ctx).specs(stations)
    if connector_type is not None:
        specs = [s for s in specs if s.connector_type is connector_type]
    items = [spec_body(ctx, s) for s in specs[offset : offset + limit]]
    return page(items, limit, offset)


@router.get("/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec")
async def get_connector_spec(
    station_id: StationPath, evse_id: EvsePath, connector_id: ConnectorPath, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A connector's spec in force; ``configured`` false means every value is a default."""
    await _known_station(ctx, principal, station_id)
    return spec_body(ctx, _connector_specs(ctx).spec(station_id, evse_id, connector_id))


@router.put("/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec")
async def put_connector_spec(
    station_id: StationPath,
    evse_id: EvsePath,
    connector_id: ConnectorPath,
    body: SpecBody,
    ctx: Context,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Set a connector's plug, maximum power and bookability (the station need not have connected yet)."""
    _may_manage_station(ctx, principal, station_id)
    spec = ConnectorSpec(station_id, evse_id, connector_id, body.connector_type, body.max_power_w, body.bookable)
    return spec_body(ctx, await _connector_specs(ctx).put(spec, ctx.clock()))


@router.delete("/stations/{station_id}/connectors/{evse_id}/{connector_id}/spec")
async def reset_connector_spec(
    station_id: StationPath, evse_id: EvsePath, connector_id: ConnectorPath, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Forget what was set: the connector is back to its defaults (returned)."""
    _may_manage_station(ctx, principal, station_id)
    return spec_body(ctx, await _connector_specs(ctx).reset(station_id, evse_id, connector_id))


def spec_body(ctx: Context, spec: ConnectorSpec) -> dict[str, Any]:
    return {
        "station_id": spec.station_id,
        "evse_id": spec.evse_id,
        "connector_id": spec.connector_id,
        "site_id": ctx.grid.site_of_station(spec.station_id),
        "connector_type": spec.connector_type.value,
        "max_power_w": spec.max_power_w,
        "bookable": spec.bookable,
        "configured": spec.configured,
    }


def _connector_specs(ctx: Context) -> ConnectorSpecService:
    assert ctx.connector_specs is not None, "CentralSystem wires the connector spec service"
    return ctx.connector_specs


def _may_manage_station(ctx: Context, principal: Principal, station_id: str) -> None:
    site = ctx.grid.site_of_station(station_id)
    if site is None:
        require_admin(principal)  # only an admin manages stations that belong to no site yet
    else:
        require_site(principal, site)


async def _known_station(ctx: Context, principal: Principal, station_id: str) -> None:
    site = ctx.grid.site_of_station(station_id)
    if principal.role is Role.OPERATOR and (site is None or not principal.may_manage_site(site)):
        raise NotFound("station", station_id)  # an operator cannot tell other operators' stations exist
    if site is None and not await _connector_specs(ctx).station_specs(station_id):
        if await ctx.storage.get_station(station_id) is None:
            raise NotFound("station", station_id)
