"""The pure analytics aggregations (csms.domain.analytics), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.domain.analytics import (
    BookingTally,
    EnergyBucket,
    SessionRecord,
    StatusTime,
    StatusTransition,
    UsageClass,
    charging_patterns,
    load_report,
    status_class,
    summarise,
    total_utilisation,
    user_behaviour,
    utilisation,
    utilisation_from_times,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday


def session(
    n: int,
    start: datetime,
    minutes: float | None,
    wh: float | None = None,
    account: str | None = None,
    token: str | None = None,
) -> SessionRecord:
    stop = start + timedelta(minutes=minutes) if minutes is not None else None
    return SessionRecord(n, "cp1", 1, 1, start, stop, wh, token or f"tok{n}", account)


@pytest.mark.parametrize(
    ("values", "count", "mean", "median", "p90", "maximum"),
    [
        ([], 0, None, None, None, None),
        ([5.0], 1, 5.0, 5.0, 5.0, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 4, 2.5, 2.5, 3.7, 4.0),
        ([10.0, 0.0, 20.0], 3, 10.0, 10.0, 18.0, 20.0),
    ],
)
def test_summarise(
    values: list[float], count: int, mean: float | None, median: float | None, p90: float | None, maximum: float | None
) -> None:
    """Count, mean, median, 90th percentile (linear interpolation) and maximum of a sample."""
    summary = summarise(values)
    assert (summary.count, summary.mean, summary.median, summary.max) == (count, mean, median, maximum)
    assert summary.p90 == pytest.approx(p90) if p90 is not None else summary.p90 is None


def test_patterns_count_arrivals_and_departures_by_local_hour_and_weekday() -> None:
    """Arrivals and departures fall in the hour and weekday of the asked time zone; running sessions have none."""
    sessions = [
        session(1, T0, 90, 10_000),  # Mon 08:00-09:30 UTC
        session(2, T0 + timedelta(hours=1), 30, 5_000),  # Mon 09:00-09:30 UTC
        session(3, T0 + timedelta(days=6, hours=15, minutes=30), 60, None),  # Sun 23:30 UTC -> Mon 00:30 UTC
        session(4, T0 + timedelta(hours=2), None, None),  # still charging
    ]
    utc = charging_patterns(sessions, UTC)
    assert utc.sessions == 4 and utc.completed == 3
    assert utc.arrivals_by_hour[8] == 1 and utc.arrivals_by_hour[9] == 1 and utc.arrivals_by_hour[23] == 1
    assert utc.departures_by_hour[9] == 2 and utc.departures_by_hour[0] == 1
    assert utc.arrivals_by_weekday == (3, 0, 0, 0, 0, 0, 1)
    assert utc.departures_by_weekday == (3, 0, 0, 0, 0, 0, 0)  # session 3 ends on the next Monday
    assert utc.dwell_minutes.count == 3 and utc.dwell_minutes.mean == pytest.approx(60)
    assert utc.energy_kwh.total == pytest.approx(15) and utc.energy_kwh.count == 2
    berlin = charging_patterns(sessions, ZoneInfo("Europe/Berlin"))  # UTC+1 in November
    assert berlin.arrivals_by_hour[9] == 1 and berlin.arrivals_by_hour[10] == 1 and berlin.arrivals_by_hour[0] == 1
    assert berlin.arrivals_by_weekday == (4, 0, 0, 0, 0, 0, 0)


def test_patterns_of_no_sessions_are_empty_not_an_error() -> None:
    """No sessions: zero counts and summaries without values."""
    empty = charging_patterns([], UTC)
    assert empty.sessions == 0 and sum(empty.arrivals_by_hour) == 0 and empty.dwell_minutes.mean is None


def test_user_behaviour_groups_by_account_then_by_unowned_token() -> None:
    """Sessions per account; tokens without an owner each form their own group; most sessions first."""
    sessions = [
        session(1, T0, 60, 6_000, account="alice", token="a1"),
        session(2, T0, 30, 4_000, account="alice", token="a2"),
        session(3, T0, 120, 1_000, account="bob", token="b1"),
        session(4, T0, None, None, token="loose"),
    ]
    figures = user_behaviour(sessions)
    assert [(f.account_id, f.id_token, f.sessions) for f in figures] == [
        ("alice", None, 2),
        ("bob", None, 1),
        (None, "loose", 1),
    ]
    alice = figures[0]
    assert alice.energy_kwh == pytest.approx(10) and alice.mean_dwell_minutes == pytest.approx(45)
    assert alice.no_show_rate is None and alice.overstay_rate is None  # no booking or overstay data given
    assert figures[2].mean_dwell_minutes is None


def test_user_behaviour_rates_when_booking_and_overstay_data_is_given() -> None:
    """No-show rate = no-shows / bookings; overstay rate over the sessions whose outcome is known."""
    sessions = [session(1, T0, 60, account="alice"), session(2, T0, 60, account="alice"), session(3, T0, 60)]
    figures = user_behaviour(
        sessions,
        bookings=[BookingTally("alice", 4, 1), BookingTally("carol", 2, 2)],
        overstayed={1: True, 2: False},
    )
    by_account = {f.account_id: f for f in figures}
    assert by_account["alice"].no_show_rate == 0.25 and by_account["alice"].overstay_rate == 0.5
    assert by_account["carol"].sessions == 0 and by_account["carol"].no_show_rate == 1.0
    assert by_account[None].bookings is None  # an unowned token has no bookings


@pytest.mark.parametrize(
    ("status", "usage"),
    [
        ("Charging", UsageClass.CHARGING),
        ("SuspendedEV", UsageClass.OCCUPIED),
        ("Finishing", UsageClass.OCCUPIED),
        ("Occupied", UsageClass.OCCUPIED),
        ("Available", UsageClass.IDLE),
        ("Reserved", UsageClass.RESERVED),
        ("Faulted", UsageClass.OUT_OF_SERVICE),
        ("Unavailable", UsageClass.OUT_OF_SERVICE),
        ("Exploded", UsageClass.UNKNOWN),
    ],
)
def test_status_class(status: str, usage: UsageClass) -> None:
    """Every 1.6 / 2.0.1 connector status maps to one usage class; anything else is unknown."""
    assert status_class(status) is usage


def t(minutes: float, status: str, connector: int = 1, evse: int = 1) -> StatusTransition:
    return StatusTransition("cp1", evse, connector, status, T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("transitions", "expected"),
    [
        # A status from before the range applies from its start.
        ([t(-30, "Available"), t(10, "Charging"), t(40, "Available")], {"idle": 1800, "charging": 1800}),
        # Time before the first known status is unknown.
        ([t(15, "Preparing"), t(30, "Charging")], {"unknown": 900, "occupied": 900, "charging": 1800}),
        # Out-of-order input is sorted; a transition at or after the end is ignored.
        ([t(30, "Faulted"), t(0, "Reserved"), t(60, "Available")], {"reserved": 1800, "out_of_service": 1800}),
        # Repeated statuses do not double count.
        ([t(0, "Charging"), t(20, "Charging"), t(20, "Charging")], {"charging": 3600}),
    ],
)
def test_utilisation_per_connector(transitions: list[StatusTransition], expected: dict[str, float]) -> None:
    """Seconds per usage class over [start, end) from the transitions, one connector."""
    [connector] = utilisation(transitions, T0, T0 + timedelta(hours=1))
    seconds = {usage.value: value for usage, value in connector.seconds.items() if value}
    assert seconds == expected
    assert connector.total_seconds == 3600


def test_utilisation_leaves_out_connector_zero_and_sums_per_site() -> None:
    """Connector 0 (a 1.6 station's own status) is not a connector; totals add connector-seconds."""
    transitions = [t(0, "Available", connector=0, evse=0), t(0, "Charging"), t(0, "Available", evse=2)]
    connectors = utilisation(transitions, T0, T0 + timedelta(hours=1))
    assert [(c.evse_id, c.connector_id) for c in connectors] == [(1, 1), (2, 1)]
    assert connectors[0].occupied_share == 1.0 and connectors[1].occupied_share == 0.0
    totals = total_utilisation(connectors)
    assert totals[UsageClass.CHARGING] == 3600 and totals[UsageClass.IDLE] == 3600


def test_load_report_peak_mean_and_time_over_limit() -> None:
    """Mean power per bucket from its energy; the peak, time above the limit, headroom and load factor."""
    bucket = timedelta(minutes=15)
    buckets = [
        EnergyBucket(T0, 2_500),  # 10 kW for 15 min
        EnergyBucket(T0 + bucket, 7_500),  # 30 kW
        EnergyBucket(T0 + bucket, 2_500),  # same bucket, another station: 40 kW in total
        EnergyBucket(T0 + 3 * bucket, 5_000),  # 20 kW
        EnergyBucket(T0 + 8 * bucket, 9_999),  # outside the range: ignored
    ]
    report = load_report(buckets, T0, T0 + timedelta(hours=1), bucket, limit_w=25_000)
    assert [p.power_w for p in report.series] == [10_000, 40_000, 20_000]
    assert report.peak_w == 40_000 and report.peak_at == T0 + bucket
    assert report.energy_kwh == pytest.approx(17.5) and report.mean_w == pytest.approx(17_500)
    assert report.over_limit_minutes == 15 and report.peak_share_of_limit == pytest.approx(1.6)
    assert report.headroom_w == -15_000 and report.load_factor == pytest.approx(17_500 / 40_000)


def test_load_report_without_limit_or_load() -> None:
    """No limit: no share, headroom or time over it; no energy: zero peak and no load factor."""
    report = load_report([], T0, T0 + timedelta(hours=1), timedelta(minutes=5), limit_w=None)
    assert (report.peak_w, report.peak_at, report.limit_w, report.peak_share_of_limit) == (0.0, None, None, None)
    assert report.over_limit_minutes == 0 and report.load_factor is None
    with pytest.raises(ValueError, match="bucket"):
        load_report([], T0, T0, timedelta(0), None)


def st(status: str, seconds: float, first_minute: float, connector: int = 1, evse: int = 1) -> StatusTime:
    return StatusTime("cp1", evse, connector, status, seconds, T0 + timedelta(minutes=first_minute))


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # Time summed per status (as SQL hands it over) becomes time per class.
        (
            [st("Available", 1800, 0), st("Charging", 1200, 10), st("SuspendedEV", 600, 30)],
            {"idle": 1800, "charging": 1200, "occupied": 600},
        ),
        # Before the connector's first status the time is unknown.
        ([st("Preparing", 900, 15), st("Charging", 1800, 30)], {"unknown": 900, "occupied": 900, "charging": 1800}),
        # Statuses of one class add up.
        ([st("Unavailable", 1000, 0), st("Faulted", 2600, 5)], {"out_of_service": 3600}),
    ],
)
def test_utilisation_from_times(times: list[StatusTime], expected: dict[str, float]) -> None:
    """Seconds per status become seconds per usage class, with the time before the first status unknown."""
    [connector] = utilisation_from_times(times, T0, T0 + timedelta(hours=1))
    assert {usage.value: value for usage, value in connector.seconds.items() if value} == expected


def test_utilisation_from_times_leaves_out_connector_zero() -> None:
    """Connector 0 is a 1.6 station's own status, not a connector."""
    times = [st("Available", 3600, 0, connector=0, evse=0), st("Charging", 3600, 0, evse=2)]
    assert [(c.evse_id, c.connector_id) for c in utilisation_from_times(times, T0, T0 + timedelta(hours=1))] == [(2, 1)]
