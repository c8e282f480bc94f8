"""Pure session timers: overstay ends when the connector is freed; changed rules re-arm a running session."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.domain.session_rules import Due, LimitAction, SessionRules, SessionTimers, due
from csms.domain.tariffs import Overstay, Prices, SessionPrice, SessionUsage, TimeBasis, session_cost

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PRICE = SessionPrice(
    "t",
    "EUR",
    "base",
    Prices(Decimal("0"), Decimal("0"), Decimal("0")),
    TimeBasis.CONNECTED,
    Overstay(Decimal("0.50"), Decimal("10"), 5),
    "tariff",
)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


UNLIMITED = SessionRules()


def timers(rules: SessionRules = UNLIMITED, grace: int = 5) -> SessionTimers:
    return rules.timers(1, START, grace)


@pytest.mark.parametrize(
    ("freed", "ended", "minutes"),
    [
        (None, 60, 35),  # never freed: billed until the end (overstay from 20 + 5 grace)
        (40, 60, 15),  # freed at 40, transaction ended at 60: billed until 40
        (70, 60, 35),  # the end came first
        (22, 60, 0),  # left within the grace
        (25.5, 60, 0),  # a started minute is free
    ],
)
def test_overstay_is_billed_until_the_connector_is_freed_or_the_session_ends(
    freed: float | None, ended: float, minutes: int
) -> None:
    """Whole minutes from overstay start (charging completed at 20, grace 5) to the first of freed and ended."""
    usage = SessionUsage(
        START,
        at(ended),
        0.0,
        charging_completed_at=at(20),
        overstay_from=at(25),
        overstay_reason="charging_complete",
        connector_freed_at=None if freed is None else at(freed),
    )
    cost = session_cost(PRICE, usage)
    assert cost.overstay_minutes == minutes and cost.overstay == min(Decimal("0.50") * minutes, Decimal(10))


def test_a_car_gone_before_overstay_would_start_never_enters_overstay() -> None:
    """Freed before the grace ran out: no overstay is due, then or later; freed after: it is."""
    completed = timers().completed(at(20))
    assert due(completed, at(26)) == [Due.OVERSTAY]
    assert due(completed.freed(at(24)), at(26)) == []
    assert due(completed.freed(at(24)), at(90)) == []
    assert due(completed.freed(at(30)), at(26)) == [Due.OVERSTAY]


def test_the_first_freed_report_counts_and_charging_again_means_the_car_is_back() -> None:
    """A second unplug report keeps the first instant; Charging afterwards clears it (the car was plugged again)."""
    freed = timers().freed(at(30)).freed(at(35))
    assert freed.connector_freed_at == at(30)
    assert freed.resumed().connector_freed_at is None
    in_overstay = replace(freed, overstay_started_at=at(25))
    assert in_overstay.resumed().connector_freed_at is None and in_overstay.resumed().overstay_started_at == at(25)


def test_rearming_counts_the_new_limit_from_the_sessions_start() -> None:
    """A running session gets the new limit from its start; past it, warning and stop are due at once."""
    unlimited = timers()
    rules = SessionRules(max_charging_minutes=30, warning_minutes=10, at_limit=LimitAction.STOP)
    rearmed = unlimited.rearmed(rules, at(45))
    assert (rearmed.limit_at, rearmed.warning_at) == (at(30), at(20))
    assert due(rearmed, at(45)) == [Due.WARN, Due.STOP]
    assert due(unlimited.rearmed(rules, at(15)), at(15)) == []


def test_rearming_warns_again_only_when_the_new_warning_is_ahead() -> None:
    """Warned under a 30-minute limit at 20: a 60-minute limit warns again at 50; a 25-minute one does not re-warn."""
    rules = SessionRules(max_charging_minutes=30, warning_minutes=10)
    warned = replace(timers(rules), warned_at=at(20))
    longer = warned.rearmed(SessionRules(max_charging_minutes=60, warning_minutes=10), at(22))
    assert longer.warned_at is None and due(longer, at(49)) == [] and due(longer, at(50)) == [Due.WARN]
    shorter = warned.rearmed(SessionRules(max_charging_minutes=25, warning_minutes=10), at(22))
    assert shorter.warned_at == at(20) and due(shorter, at(25)) == [Due.STOP]


def test_rearming_leaves_a_reached_limit_and_removing_the_limit_untimes() -> None:
    """A limit already acted on stays done; rules without a limit take the limit and warning away."""
    rules = SessionRules(max_charging_minutes=30, at_limit=LimitAction.OVERSTAY)
    reached = replace(timers(rules), limit_reached_at=at(30))
    assert reached.rearmed(SessionRules(max_charging_minutes=90), at(40)) == reached
    untimed = timers(rules).rearmed(SessionRules(), at(10))
    assert (untimed.limit_at, untimed.warning_at) == (None, None) and due(untimed, at(500)) == []
