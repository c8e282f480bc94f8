"""The electrical model operators configure: grid nodes (a site is a node without a parent), limit windows,
live unmanaged load, and where each station is wired. Reads come from the service's hot copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from csms.api.auth import CurrentPrincipal, require_admin, require_node, require_staff
from csms.api.paging import Context, Limit, Offset, RowId, page
from csms.domain.accounts import Principal
from csms.domain.grid import ALL_PHASES, GridError, GridNode, StationWiring, grid_phases
from csms.domain.grid_setup import ALL_WEEKDAYS, DailyTimes, GridSetup, WindowSpec, time_zone
from csms.errors import NotFound

__all__ = ["router"]

router = APIRouter(tags=["grid"])

_PHASE_LETTERS = {"R": 1, "S": 2, "T": 3}


def _phases(value: list[int]) -> list[int]:
    if not value or len(set(value)) != len(value) or any(p not in ALL_PHASES for p in value):
        raise ValueError("phases must be distinct values of 1, 2, 3 (L1, L2, L3)")
    return sorted(value)


def _rotation_text(value: object) -> object:
    """A phase map written "231" or, as OCPP 2.0.1's PhaseRotation, "STR", as a list."""
    if isinstance(value, str):
        return [_PHASE_LETTERS[c] if c in _PHASE_LETTERS else int(c) if c.isdigit() else 0 for c in value.upper()]
    return value


def _rotation(value: list[int]) -> list[int]:
    if sorted(value) != list(ALL_PHASES):
        raise ValueError("rotation must be a permutation of 1, 2, 3 (e.g. [2, 3, 1], '231' or 'STR')")
    return value


def _weekdays(value: list[int]) -> list[int]:
    if not value or any(d not in ALL_WEEKDAYS for d in value):
        raise ValueError("weekdays must be ISO weekdays 1 (Monday) to 7 (Sunday)")
    return sorted(set(value))


def _zone(value: str) -> str:
    try:
        time_zone(value)
    except GridError as exc:
        raise ValueError(str(exc)) from None
    return value


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("give a local time without an offset; set timezone instead")
    return value.replace(microsecond=0)


NodeId = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
NodePath = Annotated[str, Path(min_length=1, max_length=48)]
StationPath = Annotated[str, Path(min_length=1, max_length=48)]
Phases = Annotated[list[int], AfterValidator(_phases)]
Rotation = Annotated[list[int], BeforeValidator(_rotation_text), AfterValidator(_rotation)]
Amps = Annotated[float | None, Field(ge=0, description="per phase; null = not limited by current")]
Watts = Annotated[float | None, Field(ge=0, description="over all phases; null = not limited by power")]
LocalTime = Annotated[time, AfterValidator(_local_time)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NodeCreate(_Body):
    id: NodeId
    parent_id: NodeId | None = Field(default=None, description="null for a site (the grid connection)")
    max_current_a: Amps = None
    max_power_w: Watts = None
    phases: Phases = Field(default_factory=lambda: list(ALL_PHASES))
    voltage_v: float = Field(default=230.0, gt=0, description="phase to neutral")


class NodeUpdate(_Body):
    """Only the fields given change; ``null`` clears a limit or makes the node a site."""

    parent_id: NodeId | None = None
    max_current_a: Amps = None
    max_power_w: Watts = None
    phases: Phases | None = None
    voltage_v: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _no_null_where_required(self) -> NodeUpdate:
        for name in ("phases", "voltage_v"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class WindowCreate(_Body):
    """A lower limit for a while: once (``start``, ``end``) or every day (``daily_start``, ``daily_end``)."""

    max_current_a: Amps = None
    max_power_w: Watts = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    daily_start: LocalTime | None = Field(default=None, description='local time, e.g. "17:00"')
    daily_end: LocalTime | None = Field(default=None, description="before daily_start: the window crosses midnight")
    weekdays: Annotated[list[int], AfterValidator(_weekdays)] | None = Field(
        default=None, description="ISO weekdays on which a daily window starts (default: every day)"
    )
    timezone: Annotated[str, AfterValidator(_zone)] | None = Field(
        default=None, description='IANA time zone of a daily window (default "UTC")'
    )

    @model_validator(mode="after")
    def _one_kind(self) -> WindowCreate:
        if self.max_current_a is None and self.max_power_w is None:
            raise ValueError("a limit window needs max_current_a or max_power_w")
        once = self.start is not None or self.end is not None
        daily = self.daily_start is not None or self.daily_end is not None
        if once == daily:
            raise ValueError("give either start and end (once) or daily_start and daily_end (every day)")
        if once:
            if self.start is None or self.end is None:
                raise ValueError("a limit window needs both start and end")
            if not self.start < self.end:
                raise ValueError("a limit window must end after it starts")
            if self.weekdays is not None or self.timezone is not None:
                raise ValueError("weekdays and timezone apply to daily windows only")
        elif self.daily_start is None or self.daily_end is None:
            raise ValueError("a daily window needs both daily_start and daily_end")
        elif self.daily_start == self.daily_end:
            raise ValueError("a daily window must not start and end at the same time")
        return self

    def spec(self, node_id: str) -> WindowSpec:
        daily = None
        if self.daily_start is not None and self.daily_end is not None:
            daily = DailyTimes(
                self.daily_start,
                self.daily_end,
                tuple(self.weekdays or ALL_WEEKDAYS),
                self.timezone or "UTC",
            )
        return WindowSpec(0, node_id, self.max_current_a, self.max_power_w, self.start, self.end, daily)


class UnmanagedLoadBody(_Body):
    unmanaged_a: Annotated[
        list[Annotated[float, Field(ge=0)]],
        Field(min_length=3, max_length=3, description="amps we do not control on L1, L2, L3"),
    ]


class WiringBody(_Body):
    node_id: NodeId
    rotation: Rotation = Field(
        default_factory=lambda: list(ALL_PHASES),
        description="grid phases wired to the station's L1, L2, L3: [2, 3, 1], '231' or 'STR'",
    )
    phases: Literal[1, 2, 3] = Field(default=3, description="phases the station supplies to a car")
    max_current_a: float = Field(default=32.0, gt=0, description="hardware maximum per EVSE and phase")


# -- nodes --------------------------------------------------------------------------------------------------


@router.get("/grid-nodes")
async def list_grid_nodes(
    ctx: Context, principal: CurrentPrincipal, parent_id: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Every node (sorted by id) of the caller's sites, optionally only the children of ``parent_id``."""
    require_staff(principal)
    setup = ctx.grid.setup
    nodes = sorted((n for n in setup.nodes.values() if _manages_node(ctx, principal, n.id)), key=lambda n: n.id)
    if parent_id is not None:
        nodes = [n for n in nodes if n.parent_id == parent_id]
    index = _Index(setup)
    return page([index.node_body(n) for n in nodes[offset : offset + limit]], limit, offset)


@router.post("/grid-nodes", status_code=201)
async def create_grid_node(
    body: NodeCreate, ctx: Context, principal: CurrentPrincipal, response: Response
) -> dict[str, Any]:
    """Add a node; without ``parent_id`` it is a site (admins only; operators add nodes under their sites)."""
    if body.parent_id is None:
        require_admin(principal)
    elif not principal.is_admin:  # an admin's unknown parent is the service's 422, naming the rule
        require_node(ctx, principal, body.parent_id)
    node = GridNode(body.id, body.parent_id, body.max_current_a, body.max_power_w, tuple(body.phases), body.voltage_v)
    await ctx.grid.create_node(node, ctx.clock())
    response.headers["Location"] = f"/api/v1/grid-nodes/{node.id}"
    return _node_detail(ctx, node.id)


@router.get("/grid-nodes/{node_id}")
async def get_grid_node(node_id: NodePath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """A node with its children, wired stations, limit windows and the limits in force now."""
    require_node(ctx, principal, node_id)
    return _node_detail(ctx, node_id)


@router.patch("/grid-nodes/{node_id}")
async def update_grid_node(
    node_id: NodePath, body: NodeUpdate, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    require_node(ctx, principal, node_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "phases" in changes:
        changes["phases"] = tuple(changes["phases"])
    await ctx.grid.update_node(replace(ctx.grid.node(node_id), **changes), ctx.clock())
    return _node_detail(ctx, node_id)


@router.delete("/grid-nodes/{node_id}", status_code=204)
async def delete_grid_node(node_id: NodePath, ctx: Context, principal: CurrentPrincipal) -> Response:
    """Delete a node with its limit windows; refused (409) while it has children or wired stations.

    Deleting a site is for admins; operators delete nodes under their sites."""
    if require_node(ctx, principal, node_id).parent_id is None:
        require_admin(principal)
    await ctx.grid.delete_node(node_id)
    return Response(status_code=204)


@router.get("/sites")
async def list_sites(
    ctx: Context, principal: CurrentPrincipal, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """The caller's sites (root nodes), each with its whole subtree nested in ``children``."""
    require_staff(principal)
    setup = ctx.grid.setup
    roots = sorted(
        (n for n in setup.nodes.values() if n.parent_id is None and principal.may_manage_site(n.id)),
        key=lambda n: n.id,
    )
    index = _Index(setup)
    return page([index.tree_body(n) for n in roots[offset : offset + limit]], limit, offset)


# -- limit windows ------------------------------------------------------------------------------------------


@router.get("/grid-nodes/{node_id}/limit-windows")
async def list_limit_windows(
    node_id: NodePath, ctx: Context, principal: CurrentPrincipal, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    require_node(ctx, principal, node_id)
    windows = ctx.grid.setup.windows_of(node_id)
    return page([_window_body(w) for w in windows[offset : offset + limit]], limit, offset)


@router.post("/grid-nodes/{node_id}/limit-windows", status_code=201)
async def add_limit_window(
    node_id: NodePath, body: WindowCreate, ctx: Context, principal: CurrentPrincipal, response: Response
) -> dict[str, Any]:
    """Lower the node's limit for a while, once or every day; the lowest limit in force wins."""
    require_node(ctx, principal, node_id)
    window = await ctx.grid.add_window(body.spec(node_id), ctx.clock())
    response.headers["Location"] = f"/api/v1/grid-nodes/{node_id}/limit-windows/{window.id}"
    return _window_body(window)


@router.get("/grid-nodes/{node_id}/limit-windows/{window_id}")
async def get_limit_window(
    node_id: NodePath, window_id: RowId, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    require_node(ctx, principal, node_id)
    return _window_body(ctx.grid.window(node_id, window_id))


@router.delete("/grid-nodes/{node_id}/limit-windows/{window_id}", status_code=204)
async def remove_limit_window(
    node_id: NodePath, window_id: RowId, ctx: Context, principal: CurrentPrincipal
) -> Response:
    require_node(ctx, principal, node_id)
    await ctx.grid.remove_window(node_id, window_id)
    return Response(status_code=204)


# -- live load ----------------------------------------------------------------------------------------------


@router.put("/grid-nodes/{node_id}/unmanaged-load")
async def put_unmanaged_load(
    node_id: NodePath, body: UnmanagedLoadBody, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Report the load on this node that we do not control (e.g. the building), in A per phase."""
    require_node(ctx, principal, node_id)
    l1, l2, l3 = body.unmanaged_a
    load = await ctx.grid.set_unmanaged_load(node_id, (l1, l2, l3), ctx.clock())
    return {"node_id": node_id, "unmanaged_a": list(load.amps), "unmanaged_at": load.at}


# -- station wiring -----------------------------------------------------------------------------------------


@router.get("/station-wirings")
async def list_station_wirings(
    ctx: Context, principal: CurrentPrincipal, node_id: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    require_staff(principal)
    wirings = sorted(
        (w for w in ctx.grid.setup.wirings.values() if _manages_node(ctx, principal, w.node_id)),
        key=lambda w: w.station_id,
    )
    if node_id is not None:
        wirings = [w for w in wirings if w.node_id == node_id]
    return page([_wiring_body(w) for w in wirings[offset : offset + limit]], limit, offset)


@router.get("/stations/{station_id}/wiring")
async def get_station_wiring(station_id: StationPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    _require_wired_here(ctx, principal, station_id)
    return _wiring_body(ctx.grid.wiring(station_id))


@router.put("/stations/{station_id}/wiring")
async def put_station_wiring(
    station_id: StationPath, body: WiringBody, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Say under which node a station hangs and how its phases are connected (it need not have connected yet).

    Operators wire stations under their sites, and rewire only stations already there (or not wired at all)."""
    if not principal.is_admin:  # an admin's unknown node is the service's 422, naming the rule
        if station_id in ctx.grid.setup.wirings:
            _require_wired_here(ctx, principal, station_id)
        require_node(ctx, principal, body.node_id)
    wiring = StationWiring(station_id, body.node_id, tuple(body.rotation), body.phases, body.max_current_a)
    return _wiring_body(await ctx.grid.set_wiring(wiring, ctx.clock()))


@router.delete("/stations/{station_id}/wiring", status_code=204)
async def delete_station_wiring(station_id: StationPath, ctx: Context, principal: CurrentPrincipal) -> Response:
    _require_wired_here(ctx, principal, station_id)
    await ctx.grid.delete_wiring(station_id)
    return Response(status_code=204)


# -- who may ------------------------------------------------------------------------------------------------


def _manages_node(ctx: Context, principal: Principal, node_id: str) -> bool:
    site_id = ctx.grid.setup.site_of_node(node_id)
    return site_id is not None and principal.may_manage_site(site_id)


def _require_wired_here(ctx: Context, principal: Principal, station_id: str) -> None:
    """The station's wiring exists and is under one of the caller's sites (else the same 404)."""
    require_staff(principal)
    wiring = ctx.grid.wiring(station_id)
    if not _manages_node(ctx, principal, wiring.node_id):
        raise NotFound("wiring of station", station_id)


# -- bodies -------------------------------------------------------------------------------------------------


class _Index:
    """Children and wired stations of every node, found in one pass over the setup."""

    def __init__(self, setup: GridSetup) -> None:
        self.setup = setup
        self.children: dict[str, list[GridNode]] = {}
        self.stations: dict[str, list[str]] = {}
        for node in sorted(setup.nodes.values(), key=lambda n: n.id):
            if node.parent_id is not None:
                self.children.setdefault(node.parent_id, []).append(node)
        for wiring in sorted(setup.wirings.values(), key=lambda w: w.station_id):
            self.stations.setdefault(wiring.node_id, []).append(wiring.station_id)

    def node_body(self, node: GridNode) -> dict[str, Any]:
        load = self.setup.unmanaged.get(node.id)
        return {
            "id": node.id,
            "parent_id": node.parent_id,
            "max_current_a": node.max_current_a,
            "max_power_w": node.max_power_w,
            "phases": list(node.phases),
            "voltage_v": node.voltage_v,
            "unmanaged_a": list(load.amps) if load else [0.0, 0.0, 0.0],
            "unmanaged_at": load.at if load else None,
            "children": [child.id for child in self.children.get(node.id, ())],
            "stations": self.stations.get(node.id, []),
        }

    def tree_body(self, node: GridNode) -> dict[str, Any]:
        body = self.node_body(node)
        body["children"] = [self.tree_body(child) for child in self.children.get(node.id, ())]
        return body


def _node_detail(ctx: Context, node_id: str) -> dict[str, Any]:
    now = ctx.clock()
    setup = ctx.grid.setup
    body = _Index(setup).node_body(setup.nodes[node_id])
    modelled: Mapping[str, GridNode] = {n.id: n for n in ctx.grid.config(now).nodes}
    body["limit_windows"] = [_window_body(w) for w in setup.windows_of(node_id)]
    body["limits_now"] = {
        "max_current_a": modelled[node_id].current_limit_at(now),
        "max_power_w": modelled[node_id].power_limit_at(now),
    }
    return body


def _window_body(window: WindowSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": window.id,
        "node_id": window.node_id,
        "kind": window.kind,
        "max_current_a": window.max_current_a,
        "max_power_w": window.max_power_w,
    }
    if window.daily is None:
        body.update(start=window.start, end=window.end)
    else:
        body.update(
            daily_start=window.daily.start.isoformat("minutes" if not window.daily.start.second else "seconds"),
            daily_end=window.daily.end.isoformat("minutes" if not window.daily.end.second else "seconds"),
            weekdays=list(window.daily.weekdays),
            timezone=window.daily.timezone,
        )
    return body


def _wiring_body(wiring: StationWiring) -> dict[str, Any]:
    return {
        "station_id": wiring.station_id,
        "node_id": wiring.node_id,
        "rotation": list(wiring.rotation),
        "phases": wiring.phases,
        "max_current_a": wiring.max_current_a,
        "grid_phases": list(grid_phases(wiring.phases, wiring.rotation)),
    }
