"""Pure pricing rules: rounding, tiers (demand, forecast, time of use), quotes' estimates, session costs, timers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from csms.domain.session_rules import Due, LimitAction, OverstayReason, SessionRules, due, overstay_start
from csms.domain.tariffs import (
    Demand,
    Overstay,
    Prices,
    SessionPrice,
    SessionUsage,
    Tariff,
    TariffError,
    Tier,
    TimeBasis,
    TimeWindow,
    check_tariff,
    estimate,
    minor_unit,
    price_level,
    round_money,
    session_cost,
)

D = Decimal
BASE = Prices(D("0.30"), D("1.20"), D("0.50"))
PEAK = TimeWindow(frozenset({1, 2, 3, 4, 5}), time(17), time(20))
NIGHT = TimeWindow(frozenset({1, 2, 3, 4, 5, 6, 7}), time(22), time(6))
TARIFF = Tariff(
    site_id="site",
    currency="EUR",
    prices=BASE,
    time_zone="Europe/Berlin",
    tiers=(
        Tier("busy", min_utilisation=0.8, multiplier=D("1.5")),
        Tier("booked-out", min_forecast=0.9, multiplier=D("2")),
        Tier("peak", window=PEAK, prices=Prices(D("0.45"), D("1.20"), D("0.50"))),
        Tier("night", window=NIGHT, prices=Prices(D("0.20"), D("0"), D("0"))),
    ),
)
# Monday 2026-11-23 in Berlin is UTC+1.
MONDAY_NOON = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
MONDAY_1800 = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
TUESDAY_0300 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SATURDAY_1800 = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("currency", "amount", "rounded"),
    [
        ("EUR", "1.005", "1.01"),
        ("EUR", "1.0049", "1.00"),
        ("JPY", "12.5", "13"),
        ("KWD", "0.12345", "0.123"),
    ],
)
def test_money_is_rounded_half_up_to_the_minor_unit(currency: str, amount: str, rounded: str) -> None:
    """Amounts round half-up to the ISO 4217 minor unit of their currency."""
    assert round_money(D(amount), currency) == D(rounded)
    assert str(round_money(D(amount), currency)) == rounded


@pytest.mark.parametrize(
    ("at", "demand", "tier", "energy_price"),
    [
        (MONDAY_NOON, Demand(0.5), "base", "0.30"),
        (MONDAY_NOON, Demand(0.8), "busy", "0.450"),
        (MONDAY_NOON, Demand(0.2, forecast=0.95), "booked-out", "0.60"),
        (MONDAY_NOON, Demand(0.95), "busy+booked-out", "0.900"),  # no forecast: utilisation stands in
        (MONDAY_1800, Demand(0.1), "peak", "0.45"),
        (MONDAY_1800, Demand(0.85, forecast=0.1), "busy+peak", "0.6750"),  # replace, then multiply
        (SATURDAY_1800, Demand(0.1), "base", "0.30"),  # peak is weekdays only
        (TUESDAY_0300, Demand(0.1), "night", "0.20"),  # the night window runs past midnight
    ],
)
def test_price_tiers_combine_by_the_stated_rule(at: datetime, demand: Demand, tier: str, energy_price: str) -> None:
    """Every applying tier applies: the first replacing one sets prices, then multipliers scale them."""
    level = price_level(TARIFF, at, demand)
    assert level.tier == tier
    assert level.prices.energy_per_kwh == D(energy_price)


def test_a_quote_estimate_adds_rounded_fee_energy_and_time() -> None:
    """estimate = fee + energy x price + hours x price, each rounded to cents."""
    total = estimate(BASE, "EUR", MONDAY_NOON, MONDAY_NOON + timedelta(minutes=90), energy_wh=20_333)
    # 0.50 + 20.333 kWh x 0.30 (6.0999 -> 6.10) + 1.5 h x 1.20 (1.80)
    assert total == D("8.40")


PRICE = SessionPrice("site:s", "EUR", "base", BASE, TimeBasis.CHARGING, Overstay(D("0.25"), D("5.00"), 10), "tariff")
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("basis", "completed_after", "overstay_after", "ended_after", "time_cost", "minutes", "overstay", "total"),
    [
        # charged 2 h, stayed, no overstay configured to start
        (TimeBasis.CHARGING, None, None, 120, "2.40", 0, "0.00", "8.90"),
        # charging time ends when charging completed; the connected basis bills the whole stay
        (TimeBasis.CHARGING, 60, None, 120, "1.20", 0, "0.00", "7.70"),
        (TimeBasis.CONNECTED, 60, None, 120, "2.40", 0, "0.00", "8.90"),
        # overstay from minute 70: 50 whole minutes at 0.25 = 12.50, capped at 5.00
        (TimeBasis.CHARGING, 60, 70, 120, "1.20", 50, "5.00", "12.70"),
        # 7.5 minutes of overstay: 7 whole minutes billed
        (TimeBasis.CHARGING, 60, 70, 77.5, "1.20", 7, "1.75", "9.45"),
    ],
)
def test_session_cost_breakdown(
    basis: TimeBasis,
    completed_after: int | None,
    overstay_after: int | None,
    ended_after: float,
    time_cost: str,
    minutes: int,
    overstay: str,
    total: str,
) -> None:
    """Energy, time (by its basis), session fee and capped overstay add up to the total."""
    price = SessionPrice(PRICE.tariff_id, "EUR", "base", BASE, basis, PRICE.overstay, "tariff")
    usage = SessionUsage(
        started_at=START,
        ended_at=START + timedelta(minutes=ended_after),
        energy_wh=19_999.5,
        charging_completed_at=START + timedelta(minutes=completed_after) if completed_after is not None else None,
        overstay_from=START + timedelta(minutes=overstay_after) if overstay_after is not None else None,
        overstay_reason="charging_complete" if overstay_after is not None else None,
    )
    cost = session_cost(price, usage)
    assert cost.energy == D("6.00")  # 19.9995 kWh x 0.30 = 5.99985
    assert cost.time == D(time_cost)
    assert cost.session_fee == D("0.50")
    assert (cost.overstay_minutes, cost.overstay) == (minutes, D(overstay))
    assert cost.total == D(total) == cost.energy + cost.time + cost.session_fee + cost.overstay
    assert (cost.overstay_reason is not None) == (minutes > 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XXX"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"prices": Prices(D("-1"), D(0), D(0))}, "prices.energy_per_kwh"),
        ({"tiers": (Tier("x"),)}, "tiers[0]"),
        ({"tiers": (Tier("x", multiplier=D(2)), Tier("x", multiplier=D(3)))}, "tiers[1].name"),
        ({"tiers": (Tier("x", min_utilisation=1.5, multiplier=D(2)),)}, "tiers[0].min_utilisation"),
        ({"tiers": (Tier("base", multiplier=D(2)),)}, "tiers[0].name"),
    ],
)
def test_unusable_tariffs_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    """check_tariff names the first field that cannot be used."""
    values = {
        "site_id": "s",
        "currency": "EUR",
        "prices": BASE,
        "time_zone": "UTC",
        "tiers": (),
        **change,
    }
    with pytest.raises(TariffError, match=field.replace("[", r"\[").replace("]", r"\]")):
        check_tariff(Tariff(**values))  # type: ignore[arg-type]


RULES = SessionRules(max_charging_minutes=60, warning_minutes=10, at_limit=LimitAction.STOP)


@pytest.mark.parametrize(
    ("rules", "completed_after", "now_after", "expected"),
    [
        (RULES, None, 49, []),
        (RULES, None, 50, [Due.WARN]),
        (RULES, None, 60, [Due.WARN, Due.STOP]),
        (SessionRules(60, 10, LimitAction.OVERSTAY), None, 60, [Due.WARN, Due.LIMIT_OVERSTAY]),
        (SessionRules(60, 10, LimitAction.OVERSTAY), None, 65, [Due.WARN, Due.LIMIT_OVERSTAY, Due.OVERSTAY]),
        (SessionRules(), 20, 24, []),  # grace of 5 minutes not over
        (SessionRules(), 20, 25, [Due.OVERSTAY]),
        (SessionRules(), None, 10_000, []),  # no limit, never completed: nothing ever due
    ],
)
def test_timers_say_what_is_due(
    rules: SessionRules, completed_after: int | None, now_after: int, expected: list[Due]
) -> None:
    """Warning at limit minus lead, then stop or overstay at the limit, overstay billing after the grace."""
    timers = rules.timers(1, START, grace_minutes=5)
    if completed_after is not None:
        timers = timers.completed(START + timedelta(minutes=completed_after))
    assert due(timers, START + timedelta(minutes=now_after)) == expected


def test_overstay_starts_after_the_earlier_trigger_and_charging_again_clears_completion() -> None:
    """The earlier of charging complete and the overstay limit starts the grace; resuming clears completion."""
    timers = SessionRules(60, 10, LimitAction.OVERSTAY).timers(1, START, grace_minutes=5)
    assert overstay_start(timers) == (START + timedelta(minutes=65), OverstayReason.TIME_LIMIT)
    done = timers.completed(START + timedelta(minutes=30))
    assert overstay_start(done) == (START + timedelta(minutes=35), OverstayReason.CHARGING_COMPLETE)
    assert done.completed(START + timedelta(minutes=40)) == done  # the first report counts
    assert done.resumed().charging_completed_at is None


@given(
    energy_wh=st.floats(min_value=0, max_value=500_000, allow_nan=False),
    minutes=st.integers(min_value=0, max_value=48 * 60),
    overstay_minutes=st.integers(min_value=0, max_value=600),
    price=st.decimals(min_value=0, max_value=100, places=4),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_a_breakdown_always_adds_up_in_the_minor_unit(
    energy_wh: float, minutes: int, overstay_minutes: int, price: Decimal, currency: str
) -> None:
    """Whatever the usage, every part has the currency's decimals, the total is their sum, the cap holds."""
    cap = D(7)
    price_of = SessionPrice(
        "t", currency, "base", Prices(price, price, price), TimeBasis.CONNECTED, Overstay(price, cap, 0), "tariff"
    )
    ended = START + timedelta(minutes=minutes + overstay_minutes)
    usage = SessionUsage(START, ended, energy_wh, overstay_from=START + timedelta(minutes=minutes))
    cost = session_cost(price_of, usage)
    parts = (cost.energy, cost.time, cost.session_fee, cost.overstay)
    assert all(-part.as_tuple().exponent == minor_unit(currency) for part in parts)  # type: ignore[operator]
    assert cost.total == sum(parts) and cost.overstay <= cap
    assert cost.overstay_minutes == overstay_minutes
