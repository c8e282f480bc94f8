"""Slot bookings, booking rules per site, and free slots.

Who may: a driver books, sees and cancels only its own bookings (someone else's is 404, so ids do not leak) and
books only with an id token of its own; an operator books for drivers, sees and cancels bookings at its sites and
sets their rules; an admin does everything. Everyone signed in may read a site's rules and ask for free slots
(operators only at their sites).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from csms.api.auth import CurrentPrincipal, require_site
from csms.api.connectors import spec_body
from csms.api.paging import Context, Limit, Offset, page
from csms.domain.accounts import Principal, Role
from csms.domain.bookings import Booking, BookingRules, BookingStatus
from csms.domain.connectors import ConnectorType
from csms.domain.grid import Priority
from csms.errors import Forbidden, InvalidRequest, NotFound
from csms.service.bookings import BookingRequest, BookingService, booking_body
from csms.storage.bookings import BookingFilter

__all__ = ["router"]

router = APIRouter(tags=["bookings"])

SitePath = Annotated[str, Path(min_length=1, max_length=48)]
BookingPath = Annotated[int, Path(ge=1)]
_PRIORITIES = {p.name.lower(): p for p in Priority}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BookingCreate(_Body):
    """A slot: at a site (the system picks the connector) or on one connector; a duration or the energy wanted."""

    site_id: str = Field(min_length=1, max_length=48)
    station_id: str | None = Field(default=None, min_length=1, max_length=48, description="book this station only")
    evse_id: int | None = Field(default=None, ge=1, le=1000)
    connector_id: int = Field(default=1, ge=1, le=1000)
    connector_type: ConnectorType | None = None
    starts_at: AwareDatetime
    duration_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    energy_kwh: float | None = Field(default=None, gt=0, le=1000, description="sized at the connector's power")
    id_token: str = Field(min_length=1, max_length=36, description="the token the driver will present")
    account_id: str | None = Field(
        default=None, min_length=1, max_length=36, description="the driver (admins and operators book for drivers)"
    )
    priority: str | None = Field(
        default=None, pattern="^(standard|fleet|urgent)$", description="admins and operators only; default: account"
    )

    @model_validator(mode="after")
    def _one_size(self) -> BookingCreate:
        if (self.duration_minutes is None) == (self.energy_kwh is None):
            raise ValueError("give either duration_minutes or energy_kwh")
        if (self.station_id is None) != (self.evse_id is None):
            raise ValueError("give station_id and evse_id together (or neither, to book anywhere at the site)")
        return self


class RulesBody(_Body):
    """Every limit of a site; null = no limit."""

    no_overlap: bool = Field(default=True, description="a driver's bookings may not overlap (at any site)")
    max_active: int | None = Field(default=None, ge=1, le=1000, description="open bookings per driver here")
    max_per_day: int | None = Field(default=None, ge=1, le=1000, description="per driver, by UTC day of the slot")
    max_per_week: int | None = Field(default=None, ge=1, le=10000, description="per driver, by ISO week (UTC)")
    max_horizon_minutes: int | None = Field(default=None, ge=1, le=366 * 24 * 60, description="how far ahead")
    min_notice_minutes: int | None = Field(default=None, ge=0, le=366 * 24 * 60, description="how soon at the earliest")
    max_duration_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    strikes_to_block: int | None = Field(default=None, ge=1, le=100, description="no-shows that block booking")
    strike_window_days: int = Field(default=30, ge=1, le=366, description="no-shows counted over this many days")
    block_days: int = Field(default=7, ge=1, le=366, description="blocked this long after the last no-show")

    def rules(self) -> BookingRules:
        return BookingRules(
            no_overlap=self.no_overlap,
            max_active=self.max_active,
            max_per_day=self.max_per_day,
            max_per_week=self.max_per_week,
            max_horizon=_minutes(self.max_horizon_minutes),
            min_notice=_minutes(self.min_notice_minutes),
            max_duration=_minutes(self.max_duration_minutes),
            strikes_to_block=self.strikes_to_block,
            strike_window=timedelta(days=self.strike_window_days),
            block_for=timedelta(days=self.block_days),
        )


# -- bookings -----------------------------------------------------------------------------------------------


@router.post("/bookings", status_code=201)
async def create_booking(
    body: BookingCreate, ctx: Context, principal: CurrentPrincipal, response: Response
) -> dict[str, Any]:
    """Book a slot; the answer says which connector was picked, the price quoted, and the booking's status.

    A rule of the site that refuses it is a 422 ``rule-violation`` naming the rule and its limit; no free
    connector is a 409.
    """
    _site(ctx, body.site_id, principal)
    account_id = _account_for(principal, body.account_id)
    if body.priority is not None and principal.role is Role.DRIVER:
        raise Forbidden("a driver cannot set a booking's priority")
    if principal.role is Role.OPERATOR:
        require_site(principal, body.site_id)
    await _check_token(ctx, principal, body.id_token, account_id)
    wanted = None
    if body.station_id is not None and body.evse_id is not None:
        wanted = (body.station_id, body.evse_id, body.connector_id)
    request = BookingRequest(
        account_id=account_id,
        id_token=body.id_token,
        site_id=body.site_id,
        starts_at=body.starts_at,
        duration=_minutes(body.duration_minutes),
        energy_wh=body.energy_kwh * 1000 if body.energy_kwh is not None else None,
        connector_type=body.connector_type,
        wanted=wanted,
        priority=_PRIORITIES[body.priority] if body.priority else None,
    )
    booking = await _service(ctx).book(request, ctx.clock())
    if ctx.booking_timers is not None:
        ctx.booking_timers.poke()
    response.headers["Location"] = f"/api/v1/bookings/{booking.id}"
    return booking_body(booking)


@router.get("/bookings")
async def list_bookings(
    ctx: Context,
    principal: CurrentPrincipal,
    status: BookingStatus | None = None,
    site_id: Annotated[str | None, Query(max_length=48)] = None,
    account_id: Annotated[str | None, Query(max_length=36)] = None,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Bookings the caller may see (a driver: its own; an operator: at its sites), latest slot first."""
    site_ids: set[str] | None = None if site_id is None else {site_id}
    if principal.role is Role.DRIVER:
        account_id = principal.account_id
    elif principal.role is Role.OPERATOR:
        site_ids = set(principal.site_ids) if site_ids is None else site_ids & set(principal.site_ids)
    where = BookingFilter(account_id, site_ids, status, station_id)
    items = [booking_body(b) for b in await _service(ctx).find(where, limit, offset)]
    return page(items, limit, offset)


@router.get("/bookings/{booking_id}")
async def get_booking(booking_id: BookingPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    return booking_body(await _visible(ctx, principal, booking_id))


@router.post("/bookings/{booking_id}/cancel")
async def cancel_booking(booking_id: BookingPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Cancel a booking that has not started; its reservation on the charger is cancelled too."""
    await _visible(ctx, principal, booking_id)
    reason = f"cancelled by {principal.role.value} {principal.account_id}"
    return booking_body(await _service(ctx).cancel(booking_id, reason, ctx.clock()))


# -- rules and free slots -----------------------------------------------------------------------------------


@router.get("/sites/{site_id}/booking-rules")
async def get_booking_rules(site_id: SitePath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    _site(ctx, site_id, principal)
    return _rules_body(site_id, _service(ctx).rules(site_id))


@router.put("/sites/{site_id}/booking-rules")
async def put_booking_rules(
    site_id: SitePath, body: RulesBody, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Replace the site's booking rules (fields left out take their defaults: no limit)."""
    _site(ctx, site_id, principal)
    require_site(principal, site_id)
    return _rules_body(site_id, await _service(ctx).set_rules(site_id, body.rules(), ctx.clock()))


@router.get("/sites/{site_id}/free-slots")
async def free_slots(
    site_id: SitePath,
    ctx: Context,
    principal: CurrentPrincipal,
    before: AwareDatetime,
    after: AwareDatetime | None = None,
    energy_kwh: Annotated[float | None, Query(gt=0, le=1000)] = None,
    duration_minutes: Annotated[int | None, Query(ge=1, le=7 * 24 * 60)] = None,
    connector_type: ConnectorType | None = None,
) -> dict[str, Any]:
    """Windows before ``before`` in which a fitting connector is free long enough for the energy (or duration).

    Each window says when it opens and closes, and ``latest_start``: the last moment to begin and still finish.
    """
    _site(ctx, site_id, principal)
    now = ctx.clock()
    start = max(after or now, now)
    if (energy_kwh is None) == (duration_minutes is None):
        raise InvalidRequest("give either energy_kwh or duration_minutes")
    if before <= start:
        raise InvalidRequest(f"before must be after {start.isoformat()}")
    if before - start > timedelta(days=31):
        raise InvalidRequest("ask for at most 31 days at a time")
    slots = await _service(ctx).free_slots(
        site_id,
        start,
        before,
        now,
        energy_wh=energy_kwh * 1000 if energy_kwh is not None else None,
        duration=_minutes(duration_minutes),
        connector_type=connector_type,
    )
    items = [
        {
            "connector": spec_body(ctx, slot.spec),
            "start": slot.start,
            "end": slot.end,
            "needed_minutes": int(slot.needed.total_seconds() // 60),
            "latest_start": slot.latest_start,
        }
        for slot in slots
    ]
    return {"site_id": site_id, "after": start, "before": before, "items": items}


# -- helpers ------------------------------------------------------------------------------------------------


def _service(ctx: Context) -> BookingService:
    assert ctx.bookings is not None, "CentralSystem wires the booking service"
    return ctx.bookings


def _minutes(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


def _site(ctx: Context, site_id: str, principal: Principal) -> None:
    node = ctx.grid.setup.nodes.get(site_id)
    if node is None or node.parent_id is not None:
        raise NotFound("site", site_id)
    if principal.role is Role.OPERATOR and not principal.may_manage_site(site_id):
        raise NotFound("site", site_id)


def _account_for(principal: Principal, account_id: str | None) -> str:
    if principal.role is Role.DRIVER:
        if account_id is not None and account_id != principal.account_id:
            raise Forbidden("a driver books only for its own account")
        return principal.account_id
    if account_id is None:
        raise InvalidRequest("account_id: say which driver the booking is for")
    return account_id


async def _check_token(ctx: Context, principal: Principal, token: str, account_id: str) -> None:
    record = await ctx.storage.get_token(token)
    if record is None or record.owner != account_id:
        if principal.role is Role.DRIVER:
            raise NotFound("id token", token)  # whether someone else's token exists is none of its business
        raise InvalidRequest(f"id token {token} does not belong to account {account_id}")
    if record.status.value != "Accepted":
        raise InvalidRequest(f"id token {token} is {record.status.value}: it cannot start a session")


async def _visible(ctx: Context, principal: Principal, booking_id: int) -> Booking:
    booking = await _service(ctx).get(booking_id)
    if principal.role is Role.DRIVER and booking.account_id != principal.account_id:
        raise NotFound("booking", booking_id)
    if principal.role is Role.OPERATOR and not principal.may_manage_site(booking.site_id):
        raise NotFound("booking", booking_id)
    return booking


def _rules_body(site_id: str, rules: BookingRules) -> dict[str, Any]:
    def minutes(span: timedelta | None) -> int | None:
        return None if span is None else int(span.total_seconds() // 60)

    return {
        "site_id": site_id,
        "no_overlap": rules.no_overlap,
        "max_active": rules.max_active,
        "max_per_day": rules.max_per_day,
        "max_per_week": rules.max_per_week,
        "max_horizon_minutes": minutes(rules.max_horizon),
        "min_notice_minutes": minutes(rules.min_notice),
        "max_duration_minutes": minutes(rules.max_duration),
        "strikes_to_block": rules.strikes_to_block,
        "strike_window_days": rules.strike_window.days,
        "block_days": rules.block_for.days,
    }
