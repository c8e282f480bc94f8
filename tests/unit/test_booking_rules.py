"""Pure booking rules, placement and free windows (csms.domain.bookings, csms.domain.connectors), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.bookings import (
    Booking,
    BookingRules,
    BookingStatus,
    Busy,
    Candidate,
    CapacityExcess,
    PlacementRequest,
    capacity_excess,
    check_rules,
    duration_for,
    free_windows,
    place,
)
from csms.domain.connectors import ConnectorSpec, ConnectorType, default_spec, resolve_spec, wired_power_w
from csms.domain.grid import CapacityHold, GridNode, LimitWindow, Priority

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)


def booking(
    id: int,
    start: datetime,
    hours: float = 1,
    status: BookingStatus = BookingStatus.SCHEDULED,
    site: str = "site",
) -> Booking:
    return Booking(
        id=id,
        account_id="driver",
        id_token="TAG",
        site_id=site,
        starts_at=start,
        ends_at=start + hours * H,
        expires_at=start + timedelta(minutes=15),
        status=status,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("rules", "start", "hours", "mine", "strikes", "rule", "limit"),
    [
        # Nothing configured: only overlap is refused.
        (BookingRules(), NOW + H, 1, [], [], None, None),
        (BookingRules(), NOW + H, 1, [booking(1, NOW + 1.5 * H)], [], "no_overlap", True),
        (BookingRules(), NOW + H, 1, [booking(1, NOW + 2 * H)], [], None, None),  # touching is not overlapping
        (BookingRules(), NOW + H, 1, [booking(1, NOW + H, status=BookingStatus.CANCELLED)], [], None, None),
        (BookingRules(), NOW + H, 1, [booking(1, NOW + H, site="other")], [], "no_overlap", True),  # any site
        (BookingRules(no_overlap=False), NOW + H, 1, [booking(1, NOW + H)], [], None, None),
        (BookingRules(min_notice=30 * timedelta(minutes=1)), NOW + timedelta(minutes=20), 1, [], [], "min_notice", 30),
        (BookingRules(min_notice=30 * timedelta(minutes=1)), NOW + timedelta(minutes=30), 1, [], [], None, None),
        (BookingRules(max_horizon=24 * H), NOW + 25 * H, 1, [], [], "max_horizon", 24 * 60),
        (BookingRules(max_horizon=24 * H), NOW + 24 * H, 1, [], [], None, None),
        (BookingRules(max_duration=2 * H), NOW + H, 3, [], [], "max_duration", 120),
        (BookingRules(max_duration=2 * H), NOW + H, 2, [], [], None, None),
        (BookingRules(max_active=1), NOW + 5 * H, 1, [booking(1, NOW + H)], [], "max_active", 1),
        (BookingRules(max_active=1), NOW + 5 * H, 1, [booking(1, NOW + H, site="other")], [], None, None),
        (
            BookingRules(max_active=1),
            NOW + 5 * H,
            1,
            [booking(1, NOW - 3 * H, status=BookingStatus.COMPLETED)],
            [],
            None,
            None,
        ),
        (
            BookingRules(max_per_day=2),
            NOW + 5 * H,
            1,
            [booking(1, NOW - 3 * H, status=BookingStatus.COMPLETED), booking(2, NOW + H)],
            [],
            "max_per_day",
            2,
        ),
        (BookingRules(max_per_day=1), NOW + 24 * H, 1, [booking(1, NOW + H)], [], None, None),  # next day
        (
            BookingRules(max_per_day=1),
            NOW + 5 * H,
            1,
            [booking(1, NOW + H, status=BookingStatus.CANCELLED)],
            [],
            None,
            None,
        ),
        (
            BookingRules(max_per_day=1),
            NOW + 5 * H,
            1,
            [booking(1, NOW + H, status=BookingStatus.EXPIRED)],
            [],
            "max_per_day",
            1,
        ),
        (BookingRules(max_per_week=1), NOW + 48 * H, 1, [booking(1, NOW + H)], [], "max_per_week", 1),
        (BookingRules(max_per_week=1), NOW + 7 * 24 * H, 1, [booking(1, NOW + H)], [], None, None),  # next week
        (BookingRules(strikes_to_block=2), NOW + H, 1, [], [NOW - 48 * H, NOW - 24 * H], "strikes", 2),
        (BookingRules(strikes_to_block=2), NOW + H, 1, [], [NOW - 24 * H], None, None),
        # Blocked for 7 days after the last strike; 8 days later it is over.
        (BookingRules(strikes_to_block=2), NOW + H, 1, [], [NOW - 9 * 24 * H, NOW - 8 * 24 * H], None, None),
        # Strikes older than the window do not count.
        (
            BookingRules(strikes_to_block=2, strike_window=timedelta(days=3), block_for=timedelta(days=30)),
            NOW + H,
            1,
            [],
            [NOW - 5 * 24 * H, NOW - 24 * H],
            None,
            None,
        ),
    ],
)
def test_rules_refuse_by_name_and_limit(
    rules: BookingRules,
    start: datetime,
    hours: float,
    mine: list[Booking],
    strikes: list[datetime],
    rule: str | None,
    limit: object,
) -> None:
    """Each rule refuses exactly the bookings beyond its limit, naming itself and the configured limit."""
    violation = check_rules(rules, start, start + hours * H, mine, strikes, "site", NOW)
    if rule is None:
        assert violation is None
    else:
        assert violation is not None and (violation.rule, violation.limit) == (rule, limit)
        assert violation.message


def test_strike_block_says_until_when() -> None:
    """A strike block names the moment it ends: the last strike plus the block period."""
    rules = BookingRules(strikes_to_block=1, block_for=timedelta(days=2))
    violation = check_rules(rules, NOW + H, NOW + 2 * H, [], [NOW - H], "site", NOW)
    assert violation is not None and (NOW + timedelta(days=2) - H).isoformat() in violation.message


def spec(station: str, evse: int, kw: float | None, plug: ConnectorType = ConnectorType.TYPE2) -> ConnectorSpec:
    return ConnectorSpec(station, evse, 1, plug, kw * 1000 if kw is not None else None, True, True)


def test_duration_for_rounds_up_to_minutes() -> None:
    """Energy at a power takes whole minutes, rounded up."""
    assert duration_for(11000, 11000) == H
    assert duration_for(20000, 11000) == timedelta(minutes=110)  # 109.09 min
    assert duration_for(1, 22000) == timedelta(minutes=1)


def test_placement_prefers_free_fitting_connectors() -> None:
    """Duration bookings take the least powerful free connector, energy bookings the most powerful; unfit ones never."""
    candidates = [
        Candidate(spec("A", 1, 22)),
        Candidate(spec("A", 2, 11)),
        Candidate(spec("B", 1, 50, ConnectorType.CCS2)),
        Candidate(spec("B", 2, 7), available=False),
        Candidate(replace_bookable(spec("C", 1, 3.7))),
        Candidate(spec("D", 1, None)),
    ]
    by_time = place(PlacementRequest(NOW + H, 2 * H), candidates)
    assert [p.key[:2] for p in by_time] == [("D", 1), ("A", 2), ("A", 1), ("B", 1)]
    by_energy = place(PlacementRequest(NOW + H, None, energy_wh=22000), candidates)
    assert [(p.key[:2], p.ends_at - p.starts_at) for p in by_energy] == [
        (("B", 1), timedelta(minutes=27)),
        (("A", 1), H),
        (("A", 2), 2 * H),
    ]
    ccs = place(PlacementRequest(NOW + H, H, connector_type=ConnectorType.CCS2), candidates)
    assert [p.key for p in ccs] == [("B", 1, 1)]
    wanted = place(PlacementRequest(NOW + H, H, wanted=("A", 2, 1)), candidates)
    assert [p.key for p in wanted] == [("A", 2, 1)]
    excluded = place(
        PlacementRequest(NOW + H, H, connector_type=ConnectorType.CCS2, exclude=frozenset({("B", 1, 1)})), candidates
    )
    assert excluded == []


def replace_bookable(value: ConnectorSpec) -> ConnectorSpec:
    return ConnectorSpec(*value.key, value.connector_type, value.max_power_w, False, True)


def test_placement_skips_overlaps_and_displaces_only_lower_movable_bookings() -> None:
    """A taken slot is skipped; when contended, a higher priority may displace unreserved lower-priority bookings."""
    low = Busy(NOW + H, NOW + 3 * H, booking_id=7, priority=Priority.STANDARD, movable=True)
    reserved = Busy(NOW + H, NOW + 3 * H, booking_id=8, priority=Priority.STANDARD, movable=False)
    session = Busy(NOW - H, NOW + 2.5 * H)
    candidates = [
        Candidate(spec("A", 1, 11), busy=(low,)),
        Candidate(spec("A", 2, 11), busy=(reserved,)),
        Candidate(spec("A", 3, 11), busy=(session,)),
    ]
    assert place(PlacementRequest(NOW + 2 * H, H), candidates) == []
    urgent = place(PlacementRequest(NOW + 2 * H, H, priority=Priority.URGENT), candidates)
    assert [(p.key, p.displaced) for p in urgent] == [(("A", 1, 1), (7,))]
    # The booking being moved does not conflict with itself.
    itself = place(PlacementRequest(NOW + 2 * H, H, ignore_booking=7), candidates)
    assert [p.key for p in itself] == [("A", 1, 1)]
    assert [p.key for p in place(PlacementRequest(NOW + 3 * H, H), candidates)] == [
        ("A", 1, 1),
        ("A", 2, 1),
        ("A", 3, 1),
    ]


@pytest.mark.parametrize(
    ("busy", "needed", "expected"),
    [
        ([], H, [(0, 10)]),
        ([(2, 4)], H, [(0, 2), (4, 10)]),
        ([(2, 4)], 3 * H, [(4, 10)]),
        ([(-5, 1), (1, 3), (9, 12)], H, [(3, 9)]),
        ([(2, 6), (3, 4)], H, [(0, 2), (6, 10)]),  # nested intervals
        ([(0, 10)], H, []),
        ([(11, 12)], 10 * H, [(0, 10)]),
    ],
)
def test_free_windows(busy: list[tuple[int, int]], needed: timedelta, expected: list[tuple[int, int]]) -> None:
    """Gaps between busy intervals at least as long as needed, clipped to the asked range."""
    intervals = [Busy(NOW + a * H, NOW + b * H) for a, b in busy]
    windows = free_windows(intervals, NOW, NOW + 10 * H, needed)
    assert windows == [(NOW + a * H, NOW + b * H) for a, b in expected]


def test_connector_defaults_from_wiring() -> None:
    """Unset specs take the wired power; a stored spec without power takes it too; a stored power wins."""
    key = ("CP", 1, 1)
    assert wired_power_w(16, 3, 230) == 11040
    assert default_spec(key, 11040) == ConnectorSpec("CP", 1, 1, ConnectorType.UNKNOWN, 11040, True, False)
    typed = ConnectorSpec("CP", 1, 1, ConnectorType.TYPE2, None, False, True)
    assert resolve_spec(typed, key, 7360).max_power_w == 7360 and not resolve_spec(typed, key, 7360).bookable
    fixed = ConnectorSpec("CP", 1, 1, ConnectorType.CCS2, 50000, True, True)
    assert resolve_spec(fixed, key, 7360) == fixed
    assert resolve_spec(None, key, None).max_power_w is None
    assert ConnectorType.CCS2.ocpp201 == "cCCS2" and ConnectorType.GBT_AC.ocpp201 is None


# -- grid capacity of held bookings -------------------------------------------------------------------------

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NODES = {
    "site": GridNode("site", max_current_a=40, max_power_w=25_000),
    "f1": GridNode("f1", parent_id="site", max_current_a=32),
    "f2": GridNode("f2", parent_id="site", max_current_a=32),
}


def hold(
    name: str, node: str, start_h: float, end_h: float, amps: float, phases: tuple[int, ...] = (1, 2, 3)
) -> CapacityHold:
    return CapacityHold(name, node, T + timedelta(hours=start_h), T + timedelta(hours=end_h), amps, phases)


@pytest.mark.parametrize(
    ("new", "existing", "expected"),
    [
        # 16 A on a feeder with 16 A held there: 32 A, at the feeder's limit; the site holds 32 of 40.
        (hold("n", "f1", 1, 3, 16), [hold("a", "f1", 0, 2, 16)], None),
        # one more amp on the feeder: over its 32 A from the overlap on
        (hold("n", "f1", 1, 3, 17), [hold("a", "f1", 0, 2, 16)], ("f1", 1, 33, 32, "A")),
        # the peak comes when a later hold starts inside the slot; holds on other feeders count at the site
        (hold("n", "f1", 1, 4, 16), [hold("a", "f2", 2, 5, 16), hold("b", "f2", 3, 5, 10)], ("site", 3, 42, 40, "A")),
        # held at other times, or on other phases, does not count
        (hold("n", "f1", 1, 3, 30), [hold("a", "f2", 3, 5, 30), hold("b", "f2", 0, 1, 30)], None),
        (hold("n", "f1", 1, 3, 30, (1,)), [hold("a", "f2", 1, 3, 30, (2, 3))], None),
        # the site's power limit: 3 x 16 A x 230 V twice = 22,080 W fits 25,000 W; three of 3 x 13 A do not
        # (26,910 W, though 39 A per phase is within the 40 A)
        (hold("n", "f1", 0, 1, 16), [hold("a", "f2", 0, 1, 16)], None),
        (
            hold("n", "site", 0, 1, 13),
            [hold("a", "f1", 0, 1, 13), hold("b", "f2", 0, 1, 13)],
            ("site", 0, 26_910, 25_000, "W"),
        ),
    ],
)
def test_held_capacity_over_a_grid_limit_is_found_where_and_when(
    new: CapacityHold, existing: list[CapacityHold], expected: tuple[str, float, float, float, str] | None
) -> None:
    """Every node from the booking's up to its site is checked at each instant the held sum can peak."""
    excess = capacity_excess(new, existing, NODES)
    if expected is None:
        assert excess is None
    else:
        node, at_h, held, limit, unit = expected
        assert excess == CapacityExcess(node, T + timedelta(hours=at_h), pytest.approx(held), limit, unit)


def test_a_limit_window_inside_the_slot_counts() -> None:
    """A lower limit for part of the slot (a window) refuses what the base limit would take."""
    windowed = dict(NODES)
    window = LimitWindow(T + timedelta(hours=2), T + timedelta(hours=3), max_current_a=20)
    windowed["f1"] = GridNode("f1", parent_id="site", max_current_a=32, schedule=(window,))
    assert capacity_excess(hold("n", "f1", 0, 2, 24), [], windowed) is None
    excess = capacity_excess(hold("n", "f1", 1, 4, 24), [], windowed)
    assert excess == CapacityExcess("f1", T + timedelta(hours=2), 24, 20, "A")
