"""Tariffs: what charging costs at a site, demand and time-of-use price tiers, quotes and a session's cost.

Money is ``Decimal`` in the tariff's ISO 4217 currency. Prices per unit (per kWh, per hour, per minute) are kept
exactly as configured; every *amount* (a quote's estimate, each component of a session's cost) is rounded half-up
to the currency's minor unit (2 decimals for EUR, 0 for JPY, 3 for KWD), and a total is the sum of its rounded
components, so a breakdown always adds up.

Tiers, when several apply: every tier whose conditions all hold applies. The first applying tier (in list order)
that *replaces* prices sets them; then every applying *multiplier* scales the energy and time prices and the
session fee (their product). The tier in force is named by the applying tiers' names joined with ``+``, or
``base`` when none applies. Overstay fees are not tiered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iso4217 import Currency

__all__ = [
    "BASE_TIER",
    "CostBreakdown",
    "Demand",
    "Overstay",
    "PriceLevel",
    "Prices",
    "SessionPrice",
    "SessionUsage",
    "Tariff",
    "TariffError",
    "Tier",
    "TimeBasis",
    "TimeWindow",
    "check_tariff",
    "estimate",
    "minor_unit",
    "overstay_minutes",
    "price_level",
    "round_money",
    "session_cost",
]

BASE_TIER = "base"
_WH_PER_KWH = Decimal(1000)
_SECONDS_PER_HOUR = Decimal(3600)


class TariffError(ValueError):
    """A tariff that cannot be used as configured; the message names the field."""


class TimeBasis(StrEnum):
    """What the time price is charged for."""

    CHARGING = "charging"  # from the start until charging completed (or the session ended, if earlier)
    CONNECTED = "connected"  # the whole session, start to end


@dataclass(frozen=True, slots=True)
class Prices:
    energy_per_kwh: Decimal
    time_per_hour: Decimal
    session_fee: Decimal

    def scaled(self, factor: Decimal) -> Prices:
        return Prices(self.energy_per_kwh * factor, self.time_per_hour * factor, self.session_fee * factor)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Local time of day on some ISO weekdays (1 = Monday). ``end <= start`` wraps past midnight: the part after
    midnight belongs to the weekday the window started on."""

    weekdays: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        clock = local.time().replace(tzinfo=None)
        day = local.isoweekday()
        if self.start < self.end:
            return day in self.weekdays and self.start <= clock < self.end
        previous_day = (day - 2) % 7 + 1
        return (day in self.weekdays and clock >= self.start) or (previous_day in self.weekdays and clock < self.end)


@dataclass(frozen=True, slots=True)
class Tier:
    """Applies when every condition given holds; either multiplies prices or replaces them (exactly one).

    ``min_utilisation``: share of the site's connectors occupied now (0..1) at least this.
    ``min_forecast``: share of the site's connectors expected occupied in the priced window at least this.
    ``window``: the priced start falls in this local time window.
    """

    name: str
    min_utilisation: float | None = None
    min_forecast: float | None = None
    window: TimeWindow | None = None
    multiplier: Decimal | None = None
    prices: Prices | None = None

    def applies(self, local_start: datetime, demand: Demand) -> bool:
        if self.min_utilisation is not None and demand.utilisation < self.min_utilisation:
            return False
        if self.min_forecast is not None and demand.expected_occupancy < self.min_forecast:
            return False
        return self.window is None or self.window.contains(local_start)


@dataclass(frozen=True, slots=True)
class Overstay:
    """A fee per whole minute a car stays after charging completed or its allotted time ended, plus grace."""

    per_minute: Decimal = Decimal(0)
    cap: Decimal | None = None  # None: not capped
    grace_minutes: int = 15


@dataclass(frozen=True, slots=True)
class Tariff:
    """The tariff of one site (``site_id``), or the default for sites without one (``site_id`` None)."""

    site_id: str | None
    currency: str
    prices: Prices
    time_basis: TimeBasis = TimeBasis.CHARGING
    time_zone: str = "UTC"  # for time-of-use windows
    overstay: Overstay = Overstay()
    tiers: tuple[Tier, ...] = ()

    @property
    def id(self) -> str:
        return f"site:{self.site_id}" if self.site_id is not None else "default"


@dataclass(frozen=True, slots=True)
class Demand:
    """How busy the site is: ``utilisation`` now, ``forecast`` for the priced window (None: unknown)."""

    utilisation: float
    forecast: float | None = None

    @property
    def expected_occupancy(self) -> float:
        # Without a forecast (no bookings to go by), the current utilisation is the best guess.
        return self.utilisation if self.forecast is None else self.forecast


@dataclass(frozen=True, slots=True)
class PriceLevel:
    tier: str
    prices: Prices


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit (ISO 4217 exponent).

    Raises:
        TariffError: not an ISO 4217 currency code, or one without a minor unit (gold, SDR...).
    """
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        raise TariffError(f"currency: {currency!r} is not an ISO 4217 currency code") from None
    if exponent is None:
        raise TariffError(f"currency: {currency} has no minor unit and cannot price charging")
    return int(exponent)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def check_tariff(tariff: Tariff) -> None:
    """Raises TariffError naming the first field that cannot be used."""
    minor_unit(tariff.currency)
    try:
        ZoneInfo(tariff.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"time_zone: {tariff.time_zone!r} is not an IANA time zone") from None
    _check_prices(tariff.prices, "prices")
    overstay = tariff.overstay
    if overstay.per_minute < 0 or (overstay.cap is not None and overstay.cap < 0) or overstay.grace_minutes < 0:
        raise TariffError("overstay: fee, cap and grace must not be negative")
    names: set[str] = set()
    for index, tier in enumerate(tariff.tiers):
        where = f"tiers[{index}]"
        if not tier.name or tier.name == BASE_TIER or "+" in tier.name:
            raise TariffError(f"{where}.name: must be non-empty, not '{BASE_TIER}', without '+'")
        if tier.name in names:
            raise TariffError(f"{where}.name: {tier.name!r} is used by an earlier tier")
        names.add(tier.name)
        if (tier.multiplier is None) == (tier.prices is None):
            raise TariffError(f"{where}: give either a multiplier or replacement prices, not both or neither")
        if tier.multiplier is not None and tier.multiplier < 0:
            raise TariffError(f"{where}.multiplier: must not be negative")
        if tier.prices is not None:
            _check_prices(tier.prices, f"{where}.prices")
        for field, share in (("min_utilisation", tier.min_utilisation), ("min_forecast", tier.min_forecast)):
            if share is not None and not 0 <= share <= 1:
                raise TariffError(f"{where}.{field}: a share between 0 and 1, not {share}")
        if tier.window is not None and not tier.window.weekdays <= frozenset(range(1, 8)):
            raise TariffError(f"{where}.window.weekdays: ISO weekdays 1 (Monday) to 7 (Sunday)")


def _check_prices(prices: Prices, where: str) -> None:
    for field in ("energy_per_kwh", "time_per_hour", "session_fee"):
        value: Decimal = getattr(prices, field)
        if not value.is_finite() or value < 0:
            raise TariffError(f"{where}.{field}: must be a non-negative number, not {value}")


def price_level(tariff: Tariff, at: datetime, demand: Demand) -> PriceLevel:
    """The prices in force for something that starts ``at`` (aware) under ``demand`` (rule: module docstring)."""
    local = at.astimezone(ZoneInfo(tariff.time_zone))
    applying = [tier for tier in tariff.tiers if tier.applies(local, demand)]
    if not applying:
        return PriceLevel(BASE_TIER, tariff.prices)
    prices = next((tier.prices for tier in applying if tier.prices is not None), tariff.prices)
    for tier in applying:
        if tier.multiplier is not None:
            prices = prices.scaled(tier.multiplier)
    return PriceLevel("+".join(tier.name for tier in applying), prices)


def estimate(prices: Prices, currency: str, starts_at: datetime, ends_at: datetime, energy_wh: float) -> Decimal:
    """A quote's estimated total: session fee + energy + time over the whole window, each rounded."""
    hours = Decimal(max(0.0, (ends_at - starts_at).total_seconds())) / _SECONDS_PER_HOUR
    parts = (
        prices.session_fee,
        _decimal(energy_wh) / _WH_PER_KWH * prices.energy_per_kwh,
        hours * prices.time_per_hour,
    )
    return sum((round_money(part, currency) for part in parts), Decimal(0))


# -- a session's cost --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionPrice:
    """What a session is charged at, fixed when it starts (from its booked quote or the tier in force)."""

    tariff_id: str
    currency: str
    tier: str
    prices: Prices
    time_basis: TimeBasis
    overstay: Overstay
    source: str  # "booking" (the booked quote) or "tariff" (the tier in force at start)


@dataclass(frozen=True, slots=True)
class SessionUsage:
    started_at: datetime
    ended_at: datetime
    energy_wh: float
    charging_completed_at: datetime | None = None
    overstay_from: datetime | None = None  # when overstay billing starts (grace already added)
    overstay_reason: str | None = None
    connector_freed_at: datetime | None = None  # the car left while the transaction went on: overstay ends here


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    currency: str
    tier: str
    source: str
    energy_wh: float
    energy: Decimal
    time_seconds: int
    time_basis: TimeBasis
    time: Decimal
    session_fee: Decimal
    overstay_minutes: int
    overstay: Decimal
    overstay_reason: str | None
    overstay_started_at: datetime | None
    total: Decimal


def session_cost(price: SessionPrice, usage: SessionUsage) -> CostBreakdown:
    """The breakdown of a session's cost; each component rounded to the minor unit, the total their sum."""
    currency = price.currency
    time_end = usage.ended_at
    if price.time_basis is TimeBasis.CHARGING and usage.charging_completed_at is not None:
        time_end = min(time_end, usage.charging_completed_at)
    seconds = max(0, math.floor((time_end - usage.started_at).total_seconds()))
    energy = round_money(_decimal(usage.energy_wh) / _WH_PER_KWH * price.prices.energy_per_kwh, currency)
    time_cost = round_money(Decimal(seconds) / _SECONDS_PER_HOUR * price.prices.time_per_hour, currency)
    fee = round_money(price.prices.session_fee, currency)
    # Overstay is the car holding the connector: it ends when the connector is freed or the session ends,
    # whichever the charger reported first.
    occupied_until = usage.ended_at
    if usage.connector_freed_at is not None:
        occupied_until = min(occupied_until, usage.connector_freed_at)
    minutes = overstay_minutes(usage.overstay_from, occupied_until)
    overstay = _overstay_fee(price.overstay, minutes, currency)
    billed = minutes > 0
    return CostBreakdown(
        currency=currency,
        tier=price.tier,
        source=price.source,
        energy_wh=usage.energy_wh,
        energy=energy,
        time_seconds=seconds,
        time_basis=price.time_basis,
        time=time_cost,
        session_fee=fee,
        overstay_minutes=minutes,
        overstay=overstay,
        overstay_reason=usage.overstay_reason if billed else None,
        overstay_started_at=usage.overstay_from if billed else None,
        total=energy + time_cost + fee + overstay,
    )


def overstay_minutes(overstay_from: datetime | None, ended_at: datetime) -> int:
    """Whole minutes from the start of overstay billing to the end (a started minute is not billed)."""
    if overstay_from is None or ended_at <= overstay_from:
        return 0
    return int((ended_at - overstay_from) // timedelta(minutes=1))


def _overstay_fee(overstay: Overstay, minutes: int, currency: str) -> Decimal:
    fee = overstay.per_minute * minutes
    if overstay.cap is not None:
        fee = min(fee, overstay.cap)
    return round_money(fee, currency)


def _decimal(value: float) -> Decimal:
    # Through str so a meter reading of 1234.5 Wh is 1234.5, not its binary approximation.
    return Decimal(str(value))
