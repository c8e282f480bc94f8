"""Smart charging over HTTP: each site's plan, live load against limits, per-session allocation and needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.auth import CurrentPrincipal, require_node, require_staff, visible_station_ids
from csms.api.context import ApiContext, api_context
from csms.domain.accounts import Principal, Role
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.grid import GridConfig, Priority
from csms.errors import Conflict, Forbidden, NotFound
from csms.scheduler.model import Plan
from csms.service.smart_charging import EvseSession, SmartChargingService

__all__ = ["router"]

router = APIRouter(tags=["smart-charging"])
Context = Annotated[ApiContext, Depends(api_context)]
StationPath = Annotated[str, Path(min_length=1, max_length=48)]
EvsePath = Annotated[int, Path(ge=0, le=2**31 - 1)]


class NeedsBody(BaseModel):
    """What a driver or operator says about a session; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    energy_wh: float | None = Field(default=None, ge=0, le=1_000_000, description="energy wanted for the session")
    departure: AwareDatetime | None = None
    max_current_a: float | None = Field(default=None, gt=0, le=1000, description="the car's own limit per phase")
    priority: Priority | None = Field(default=None, description="0 standard, 1 fleet, 2 urgent")
    reason: str | None = Field(
        default=None, max_length=200, description="why the priority was set (who set it is recorded from the API key)"
    )


def _service(ctx: ApiContext) -> SmartChargingService:
    if ctx.smart_charging is None:
        raise Conflict("smart charging is not running in this process")
    return ctx.smart_charging


@router.get("/sites/{site_id}/plan")
async def get_site_plan(site_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The latest plan for the site: per node planned load against its limits over time, per session limits."""
    require_node(ctx, principal, site_id)
    service = _service(ctx)
    config = ctx.grid.config(ctx.clock())
    under = _nodes_under(config, site_id)
    result = service.latest_plan
    if result is None:
        return {"site_id": site_id, "created_at": None, "nodes": [], "sessions": [], "overloaded": []}
    wirings = {w.station_id: w.node_id for w in config.wirings}
    sessions = [s for s in service.sessions() if wirings.get(s.station_id) in under]
    return {
        "site_id": site_id,
        "created_at": result.created_at,
        "end": result.end,
        "algorithm": result.algorithm,
        "overloaded": [n for n in result.overloaded if n in under],
        "nodes": [
            {
                "node_id": load.node_id,
                "start": load.start,
                "load_a": list(load.load_a),
                "limit_a": load.limit_a,
                "power_w": load.power_w,
                "limit_w": load.limit_w,
            }
            for load in result.loads
            if load.node_id in under
        ],
        "sessions": [_session_plan(s, result) for s in sessions],
    }


@router.get("/sites/{site_id}/load")
async def get_site_load(site_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Live: measured current per phase of every node under the site (sessions plus unmanaged load) vs limit."""
    require_node(ctx, principal, site_id)
    service = _service(ctx)
    now = ctx.clock()
    config = ctx.grid.config(now)
    under = _nodes_under(config, site_id)
    measured = service.measured_loads(now)
    return {
        "site_id": site_id,
        "at": now,
        "nodes": [
            {
                "node_id": node.id,
                "parent_id": node.parent_id,
                "measured_a": list(measured.get(node.id, (0.0, 0.0, 0.0))),
                "limit_a": node.current_limit_at(now),
                "limit_w": node.power_limit_at(now),
                "over_limit": _over(measured.get(node.id), node.current_limit_at(now)),
            }
            for node in config.nodes
            if node.id in under
        ],
    }


@router.get("/charging-sessions")
async def list_charging_sessions(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Sessions smart charging tracks (the caller's sites', or a driver's own): offered, planned, drawn, asked for."""
    service = _service(ctx)
    result = service.latest_plan
    sessions = service.sessions()
    if principal.role is Role.DRIVER:
        mine = await _own_transactions(ctx, principal)
        sessions = [s for s in sessions if s.transaction_id in mine]
    else:
        stations = visible_station_ids(ctx, principal)
        sessions = [s for s in sessions if stations is None or s.station_id in stations]
    items = [_session_view(s, result) for s in sessions]
    return {"items": items, "total": len(items)}


@router.get("/charging-sessions/{station_id}/{evse_id}")
async def get_charging_session(
    station_id: StationPath, evse_id: EvsePath, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    service = _service(ctx)
    session = await _visible_session(ctx, principal, service, station_id, evse_id)
    return _session_view(session, service.latest_plan)


@router.patch("/charging-sessions/{station_id}/{evse_id}")
async def update_charging_session(
    station_id: StationPath, evse_id: EvsePath, body: NeedsBody, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Set a session's energy wanted, departure, car limit or priority; the site is re-planned.

    A driver may tell its own session's needs (energy, departure, car limit); priorities are set by operators."""
    service = _service(ctx)
    session = await _visible_session(ctx, principal, service, station_id, evse_id)
    given = body.model_fields_set
    if principal.role is Role.DRIVER and given & {"priority", "reason"}:
        raise Forbidden("a driver cannot set a session's priority: ask the operator")
    old = session.needs
    needs = ChargingNeeds(
        energy_wh=body.energy_wh if "energy_wh" in given else old.energy_wh,
        departure=body.departure if "departure" in given else old.departure,
        max_current_a=body.max_current_a if "max_current_a" in given else old.max_current_a,
        min_current_a=old.min_current_a,
    )
    updated = service.set_needs(station_id, evse_id, needs, body.priority, body.reason, set_by=principal.account_id)
    assert updated is not None
    await service.save(ctx.clock())  # committed before we answer: a restart re-plans with it
    return _session_view(updated, service.latest_plan)


@router.post("/smart-charging/replan")
async def replan_now(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Re-plan now and wait for the limits to be sent; returns when it is done."""
    require_staff(principal)
    _service(ctx)
    loop = ctx.smart_charging_loop
    if loop is None:
        raise Conflict("smart charging is not running in this process")
    loop.request_replan()
    await loop.settled()
    result = ctx.smart_charging.latest_plan if ctx.smart_charging else None
    return {"created_at": result.created_at if result else None, "sessions": len(result.sessions) if result else 0}


async def _own_transactions(ctx: ApiContext, principal: Principal) -> set[int]:
    """The driver's sessions in progress (sessions of its id tokens)."""
    found = await ctx.storage.list_transactions(1000, 0, active=True, owner=principal.account_id)
    return {t.id for t in found}


async def _visible_session(
    ctx: ApiContext, principal: Principal, service: SmartChargingService, station_id: str, evse_id: int
) -> EvseSession:
    session = service.session(station_id, evse_id)
    if session is not None:
        if principal.role is Role.DRIVER:
            visible = session.transaction_id in await _own_transactions(ctx, principal)
        else:
            stations = visible_station_ids(ctx, principal)
            visible = stations is None or station_id in stations
        if visible:
            return session
    raise NotFound("charging session", f"{station_id}/{evse_id}")


def _nodes_under(config: GridConfig, site_id: str) -> set[str]:
    nodes = {node.id: node for node in config.nodes}
    if site_id not in nodes:
        raise NotFound("grid node", site_id)
    under = {site_id}
    changed = True
    while changed:
        changed = False
        for node in config.nodes:
            if node.parent_id in under and node.id not in under:
                under.add(node.id)
                changed = True
    return under


def _over(measured: tuple[float, float, float] | None, limit: float | None) -> bool:
    return measured is not None and limit is not None and max(measured) > limit


def _session_plan(session: EvseSession, result: Plan) -> dict[str, Any]:
    planned = result.sessions.get(session.key)
    return {
        "station_id": session.station_id,
        "evse_id": session.evse_id,
        "periods": [{"start": p.start, "current_a": p.current_a} for p in planned.periods] if planned else [],
        "note": result.notes.get(session.key),
    }


def _session_view(session: EvseSession, result: Plan | None) -> dict[str, Any]:
    planned = result.sessions.get(session.key) if result is not None else None
    needs = session.needs
    return {
        "station_id": session.station_id,
        "evse_id": session.evse_id,
        "transaction_id": session.transaction_id,
        "started_at": session.started_at,
        "delivered_wh": round(session.delivered_wh, 1),
        "planned_a": planned.current_a if planned else None,
        "offered_a": session.offered_a,
        "limit_sent_at": session.written_at,
        "measured_a": list(session.measured_a) if session.measured_a else None,
        "measured_at": session.measured_at,
        "phases": session.phases,
        "learned_max_a": session.learned_max_a,
        "steerable": session.refused_at is None and not session.overdrawing,
        "refused": {"at": session.refused_at, "reason": session.refused_reason} if session.refused_at else None,
        "overdrawing": session.overdrawing,
        "idle": session.idle,
        "priority": int(session.priority),
        "priority_reason": session.priority_reason,
        "priority_set_by": session.priority_set_by,
        "needs": {
            "energy_wh": needs.energy_wh,
            "departure": needs.departure,
            "max_current_a": needs.max_current_a,
        },
        "note": result.notes.get(session.key) if result is not None else None,
    }
