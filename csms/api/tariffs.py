"""Tariffs, session rules, quotes and session costs.

Money is a decimal string in responses (``"0.35"``) and a string or number in requests. Operators read and change
the tariffs and rules of their sites, admins all and the default tariff; everyone may read the default tariff.
Drivers see prices through quotes (for any site: that is what is shown before they commit) and the costs of their
own sessions. A session's cost is seen by admins, operators of its site and the driver whose id token it used.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.auth import CurrentPrincipal, require_admin, require_site
from csms.api.context import ApiContext, api_context
from csms.domain.accounts import Principal, Role
from csms.domain.pricing import PriceQuote, QuoteRequest
from csms.domain.session_rules import LimitAction, SessionRules
from csms.domain.tariffs import Overstay, Prices, Tariff, Tier, TimeBasis, TimeWindow
from csms.errors import InvalidRequest, NotFound
from csms.service.session_rules import SessionCost, SessionRulesService, cost_summary_data
from csms.service.tariffs import TariffService
from csms.storage.tariffs import tier_to_json

__all__ = ["cost_body", "may_see_cost", "router"]

router = APIRouter()
Context = Annotated[ApiContext, Depends(api_context)]

Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e9"), allow_inf_nan=False, decimal_places=6)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PricesBody(_Body):
    energy_per_kwh: Money = Decimal(0)
    time_per_hour: Money = Decimal(0)
    session_fee: Money = Decimal(0)

    def domain(self) -> Prices:
        return Prices(self.energy_per_kwh, self.time_per_hour, self.session_fee)


class WindowBody(_Body):
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: list(range(1, 8)), min_length=1, description="ISO weekdays, 1 = Monday"
    )
    start: time = Field(description='local time, e.g. "17:00"')
    end: time = Field(description="local time; at or before start: the window runs past midnight")


class TierBody(_Body):
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    min_utilisation: Share | None = Field(default=None, description="share of connectors occupied now")
    min_forecast: Share | None = Field(default=None, description="share expected occupied in the priced window")
    window: WindowBody | None = Field(default=None, description="time of use (in the tariff's time zone)")
    multiplier: Money | None = None
    prices: PricesBody | None = Field(default=None, description="replacement prices (instead of a multiplier)")

    def domain(self) -> Tier:
        window = self.window
        return Tier(
            name=self.name,
            min_utilisation=self.min_utilisation,
            min_forecast=self.min_forecast,
            window=TimeWindow(frozenset(window.weekdays), window.start, window.end) if window else None,
            multiplier=self.multiplier,
            prices=self.prices.domain() if self.prices else None,
        )


class OverstayBody(_Body):
    per_minute: Money = Decimal(0)
    cap: Money | None = Field(default=None, description="null: not capped")
    grace_minutes: int = Field(default=15, ge=0, le=1440)


class TariffBody(_Body):
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")
    time_zone: str = Field(default="UTC", max_length=64, description="IANA zone of time-of-use windows")
    prices: PricesBody
    time_basis: TimeBasis = TimeBasis.CHARGING
    overstay: OverstayBody = Field(default_factory=OverstayBody)
    tiers: list[TierBody] = Field(default_factory=list, max_length=20)

    def domain(self, site_id: str | None) -> Tariff:
        return Tariff(
            site_id=site_id,
            currency=self.currency,
            prices=self.prices.domain(),
            time_basis=self.time_basis,
            time_zone=self.time_zone,
            overstay=Overstay(self.overstay.per_minute, self.overstay.cap, self.overstay.grace_minutes),
            tiers=tuple(tier.domain() for tier in self.tiers),
        )


class RulesBody(_Body):
    max_charging_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60, description="null: no limit")
    warning_minutes: int = Field(default=10, ge=0, le=24 * 60)
    at_limit: LimitAction = LimitAction.STOP


class QuoteBody(_Body):
    site_id: str = Field(min_length=1, max_length=48)
    station_id: str | None = Field(default=None, min_length=1, max_length=48)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    energy_wh: float | None = Field(default=None, ge=0, le=1e7, description="null: estimated at the power")


# -- tariffs -------------------------------------------------------------------------------------------------


def _tariffs(ctx: ApiContext) -> TariffService:
    assert ctx.tariffs is not None, "tariffs are wired in csms.runtime.app"
    return ctx.tariffs


def _rules(ctx: ApiContext) -> SessionRulesService:
    assert ctx.session_rules is not None, "session rules are wired in csms.runtime.app"
    return ctx.session_rules


def tariff_json(tariff: Tariff) -> dict[str, Any]:
    prices = tariff.prices
    overstay = tariff.overstay
    return {
        "id": tariff.id,
        "site_id": tariff.site_id,
        "currency": tariff.currency,
        "time_zone": tariff.time_zone,
        "prices": _prices_json(prices),
        "time_basis": tariff.time_basis.value,
        "overstay": {
            "per_minute": str(overstay.per_minute),
            "cap": None if overstay.cap is None else str(overstay.cap),
            "grace_minutes": overstay.grace_minutes,
        },
        "tiers": [tier_to_json(tier) for tier in tariff.tiers],
    }


def _prices_json(prices: Prices) -> dict[str, str]:
    return {
        "energy_per_kwh": str(prices.energy_per_kwh),
        "time_per_hour": str(prices.time_per_hour),
        "session_fee": str(prices.session_fee),
    }


@router.get("/tariffs", tags=["tariffs"])
async def list_tariffs(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The default tariff and the own tariffs of the sites the caller manages."""
    items = [
        tariff_json(tariff)
        for tariff in _tariffs(ctx).tariffs()
        if tariff.site_id is None or principal.may_manage_site(tariff.site_id)
    ]
    return {"items": items, "limit": len(items), "offset": 0}


@router.get("/tariffs/default", tags=["tariffs"])
async def get_default_tariff(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    return tariff_json(_tariffs(ctx).tariff(None))


@router.put("/tariffs/default", tags=["tariffs"])
async def put_default_tariff(body: TariffBody, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The tariff of every site without its own (admins only)."""
    require_admin(principal)
    return tariff_json(await _tariffs(ctx).put(body.domain(None), ctx.clock()))


@router.delete("/tariffs/default", tags=["tariffs"], status_code=204)
async def delete_default_tariff(ctx: Context, principal: CurrentPrincipal) -> Response:
    require_admin(principal)
    await _tariffs(ctx).delete(None)
    return Response(status_code=204)


@router.get("/sites/{site_id}/tariff", tags=["tariffs"])
async def get_site_tariff(site_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The tariff sessions at the site are priced by: its own, else the default (``inherited`` true)."""
    require_site(principal, site_id)
    ctx.grid.node(site_id)
    service = _tariffs(ctx)
    tariff = service.tariff_for(site_id)
    if tariff is None:
        service.tariff(site_id)  # raises NotFound
    assert tariff is not None
    return tariff_json(tariff) | {"inherited": tariff.site_id != site_id}


@router.put("/sites/{site_id}/tariff", tags=["tariffs"])
async def put_site_tariff(site_id: str, body: TariffBody, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    require_site(principal, site_id)
    return tariff_json(await _tariffs(ctx).put(body.domain(site_id), ctx.clock()))


@router.delete("/sites/{site_id}/tariff", tags=["tariffs"], status_code=204)
async def delete_site_tariff(site_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    """The site falls back to the default tariff."""
    require_site(principal, site_id)
    await _tariffs(ctx).delete(site_id)
    return Response(status_code=204)


# -- session rules -------------------------------------------------------------------------------------------


def _rules_json(site_id: str, rules: SessionRules) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "max_charging_minutes": rules.max_charging_minutes,
        "warning_minutes": rules.warning_minutes,
        "at_limit": rules.at_limit.value,
    }


@router.get("/sites/{site_id}/session-rules", tags=["tariffs"])
async def get_session_rules(site_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    require_site(principal, site_id)
    ctx.grid.node(site_id)
    return _rules_json(site_id, _rules(ctx).rules(site_id))


@router.put("/sites/{site_id}/session-rules", tags=["tariffs"])
async def put_session_rules(site_id: str, body: RulesBody, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """Applies to sessions that start afterwards (a session's timers are fixed when it starts)."""
    require_site(principal, site_id)
    node = ctx.grid.node(site_id)
    if node.parent_id is not None:
        raise InvalidRequest(f"grid node {site_id} is not a site (its parent is {node.parent_id})")
    rules = SessionRules(body.max_charging_minutes, body.warning_minutes, body.at_limit)
    return _rules_json(site_id, await _rules(ctx).put_rules(site_id, rules, ctx.clock()))


# -- quotes --------------------------------------------------------------------------------------------------


def quote_json(quote: PriceQuote) -> dict[str, Any]:
    return {
        "currency": quote.currency,
        "tariff_id": quote.tariff_id,
        "tier": quote.tier,
        "prices": _prices_json(Prices(quote.energy_per_kwh, quote.time_per_hour, quote.session_fee)),
        "estimated_total": str(quote.estimated_total),
        "quoted_at": quote.quoted_at,
        "valid_until": quote.valid_until,
    }


@router.post("/quotes", tags=["tariffs"])
async def create_quote(body: QuoteBody, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The price for a site (or one of its stations), a window and an energy, shown before the driver commits.

    Drivers may ask at any site; operators at their own (another operator's site is a 404, as everywhere)."""
    if principal.role is Role.OPERATOR and not principal.may_manage_site(body.site_id):
        raise NotFound("site", body.site_id)
    request = QuoteRequest(
        site_id=body.site_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        energy_wh=body.energy_wh,
        station_id=body.station_id,
        account_id=principal.account_id,
    )
    return quote_json(await _tariffs(ctx).quote(request, ctx.clock()))


# -- costs ---------------------------------------------------------------------------------------------------


def may_see_cost(principal: Principal, site_id: str | None, account_id: str | None) -> bool:
    """Admins all; operators sessions at their sites; drivers the sessions of their own id tokens."""
    if principal.is_admin or (site_id is not None and principal.may_manage_site(site_id)):
        return True
    return account_id is not None and principal.may_act_for(account_id)


def cost_json(cost: SessionCost) -> dict[str, Any]:
    """The cost document of ``GET /transactions/{id}/cost``: the service's, without whose it is (checked, not shown)."""
    body = cost_summary_data(cost)
    del body["site_id"], body["account_id"], body["overstay"]["connector_freed_at"]
    return body


async def cost_body(ctx: ApiContext, transaction_id: int, principal: Principal, now: datetime) -> dict[str, Any]:
    """Raises NotFound: no priced session, or not the caller's to see (the same answer, so ids do not leak)."""
    cost = await _rules(ctx).cost(transaction_id, now)
    if not may_see_cost(principal, cost.session.site_id, cost.session.account_id):
        raise NotFound("cost of transaction", transaction_id)
    return cost_json(cost)


@router.get("/transactions/{transaction_id}/cost", tags=["transactions"])
async def get_transaction_cost(transaction_id: int, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The cost breakdown: stored when the session ended (``final``), else what it comes to so far."""
    return await cost_body(ctx, transaction_id, principal, ctx.clock())
