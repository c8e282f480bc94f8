"""The grid setup's change rules and the expansion of limit windows into the scheduler's model (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import pytest

from csms.domain.grid import GridError, GridNode, LimitWindow, StationWiring
from csms.domain.grid_setup import DailyTimes, GridConflict, GridSetup, UnmanagedLoad, WindowSpec

NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # a Friday, two days before Europe's switch to summer time


def tree() -> GridSetup:
    """site (L1-L3, 100 A) -> feeder (L1-L3) -> circuit (L1 only); station CP1 single-phase on circuit."""
    setup = GridSetup()
    setup = setup.with_node(GridNode("site", max_current_a=100))
    setup = setup.with_node(GridNode("feeder", "site", max_current_a=63))
    setup = setup.with_node(GridNode("circuit", "feeder", max_current_a=32, phases=(1,)))
    return setup.with_wiring(StationWiring("CP1", "circuit", phases=1))


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        (lambda s: s.with_node(GridNode("x", "nowhere")), GridError, "unknown parent 'nowhere'"),
        (lambda s: s.with_node(GridNode("site", "circuit")), GridConflict, "its own ancestor"),
        (lambda s: s.with_node(GridNode("site", "site")), GridConflict, "its own ancestor"),
        (lambda s: s.with_node(GridNode("x", "circuit", phases=(1, 2))), GridConflict, "parent 'circuit'"),
        (lambda s: s.with_node(GridNode("feeder", "site", phases=(2, 3))), GridConflict, "'circuit' carries"),
        (lambda s: s.with_node(GridNode("x", max_current_a=-1)), GridError, "limits must be >= 0"),
        (lambda s: s.with_node(GridNode("x", max_power_w=float("nan"))), GridError, "limits must be >= 0"),
        (lambda s: s.with_node(GridNode("x", phases=(1, 4))), GridError, "phases must be distinct"),
        (lambda s: s.with_node(GridNode("x", voltage_v=0)), GridError, "voltage must be > 0"),
        (lambda s: s.without_node("feeder"), GridConflict, "still has child nodes 'circuit'"),
        (lambda s: s.without_node("circuit"), GridConflict, "still has wired stations 'CP1'"),
        (lambda s: s.with_wiring(StationWiring("CP2", "nowhere")), GridError, "unknown node 'nowhere'"),
        (lambda s: s.with_wiring(StationWiring("CP2", "circuit")), GridConflict, "draws on L1/L2/L3"),
        (lambda s: s.with_wiring(StationWiring("CP2", "circuit", (2, 3, 1), 1)), GridConflict, "draws on L2"),
        (lambda s: s.with_wiring(StationWiring("CP2", "site", (1, 1, 2))), GridError, "permutation"),
        (lambda s: s.with_wiring(StationWiring("CP2", "site", max_current_a=0)), GridError, "max_current_a"),
        (lambda s: s.with_unmanaged("circuit", UnmanagedLoad((1, 2, 0), NOW)), GridError, "does not carry L2"),
        (lambda s: s.with_unmanaged("site", UnmanagedLoad((1, -2, 0), NOW)), GridError, ">= 0"),
        (lambda s: s.with_window(WindowSpec(1, "site", 10, start=NOW, end=NOW)), GridError, "end after it starts"),
        (lambda s: s.with_window(WindowSpec(1, "site", start=NOW, end=NOW + timedelta(1))), GridError, "neither"),
        (
            lambda s: s.with_window(WindowSpec(1, "site", 10, daily=DailyTimes(time(17), time(20), timezone="Mars/X"))),
            GridError,
            "unknown time zone",
        ),
        (
            lambda s: s.with_window(WindowSpec(1, "site", 10, daily=DailyTimes(time(17), time(17)))),
            GridError,
            "same time",
        ),
        (
            lambda s: s.with_window(WindowSpec(1, "site", 10, daily=DailyTimes(time(17), time(20), (0,)))),
            GridError,
            "weekdays",
        ),
    ],
)
def test_changes_that_break_a_rule_are_refused_naming_it(
    change: Callable[[GridSetup], GridSetup], error: type[GridError], fragment: str
) -> None:
    """Each rule refuses a change with the right error class and a message naming the node and the rule."""
    with pytest.raises(error) as raised:
        change(tree())
    assert fragment in str(raised.value)
    assert error is GridConflict or not isinstance(raised.value, GridConflict)


def test_valid_changes_keep_windows_and_load_and_deleting_a_leaf_drops_its_windows() -> None:
    """Redefining a node keeps its windows and load; deleting a leaf removes its windows and load too."""
    setup = tree().with_node(GridNode("spare", "site"))
    setup = setup.with_window(WindowSpec(1, "spare", 5, start=NOW, end=NOW + timedelta(hours=1)))
    setup = setup.with_unmanaged("spare", UnmanagedLoad((1, 2, 3), NOW))
    setup = setup.with_node(GridNode("spare", "feeder", max_current_a=20))
    assert setup.nodes["spare"].parent_id == "feeder"
    assert setup.windows_of("spare") and setup.unmanaged["spare"].amps == (1, 2, 3)
    setup = setup.without_node("spare")
    assert "spare" not in setup.nodes and not setup.windows and "spare" not in setup.unmanaged


def test_config_merges_load_and_windows_in_force() -> None:
    """config() gives nodes their unmanaged load and the windows overlapping the horizon, nothing older."""
    setup = tree().with_unmanaged("site", UnmanagedLoad((5, 6, 7), NOW))
    past = WindowSpec(1, "site", 10, start=NOW - timedelta(hours=3), end=NOW - timedelta(hours=1))
    soon = WindowSpec(2, "site", 40, start=NOW + timedelta(hours=5), end=NOW + timedelta(hours=6))
    setup = setup.with_window(past).with_window(soon)
    site = {n.id: n for n in setup.config(NOW).nodes}["site"]
    assert site.unmanaged_a == (5, 6, 7)
    assert site.schedule == (LimitWindow(NOW + timedelta(hours=5), NOW + timedelta(hours=6), 40, None),)
    assert site.current_limit_at(NOW + timedelta(hours=5, minutes=30)) == 40
    assert site.current_limit_at(NOW) == 100


def test_daily_window_follows_local_time_across_a_dst_change() -> None:
    """17:00-20:00 Europe/Berlin is 16:00 UTC in winter and 15:00 UTC after the switch to summer time."""
    daily = WindowSpec(1, "site", 40, daily=DailyTimes(time(17), time(20), timezone="Europe/Berlin"))
    found = daily.occurrences(NOW, NOW + timedelta(hours=72))
    assert [(w.start.isoformat(), w.end.isoformat()) for w in found] == [
        ("2026-03-27T16:00:00+00:00", "2026-03-27T19:00:00+00:00"),
        ("2026-03-28T16:00:00+00:00", "2026-03-28T19:00:00+00:00"),
        ("2026-03-29T15:00:00+00:00", "2026-03-29T18:00:00+00:00"),
    ]


def test_daily_window_on_weekdays_crossing_midnight() -> None:
    """A 22:00-06:00 window on Fridays only runs from Friday night into Saturday morning; one in progress counts."""
    night = WindowSpec(1, "site", 10, daily=DailyTimes(time(22), time(6), weekdays=(5,)))
    found = night.occurrences(NOW, NOW + timedelta(days=7))
    assert [(w.start, w.end) for w in found] == [(NOW.replace(hour=22), NOW.replace(day=28, hour=6))]
    in_progress = night.occurrences(NOW.replace(day=28, hour=3), NOW.replace(day=28, hour=4))
    assert len(in_progress) == 1


def test_config_ignores_load_reported_on_phases_a_node_no_longer_carries() -> None:
    """A load reported on L3 before the node was narrowed to L1/L2 does not reach the scheduler's model."""
    setup = tree().with_node(GridNode("spare", "site")).with_unmanaged("spare", UnmanagedLoad((1, 2, 3), NOW))
    setup = setup.with_node(GridNode("spare", "site", phases=(1, 2)))
    assert {n.id: n for n in setup.config(NOW).nodes}["spare"].unmanaged_a == (1, 2, 0)


def test_site_of_a_station_is_the_root_of_its_node() -> None:
    """A station wired deep in the tree belongs to the tree's root; unwired stations and unknown nodes to none."""
    setup = tree().with_node(GridNode("other")).with_wiring(StationWiring("CP9", "other"))
    assert setup.site_of_station("CP1") == "site"
    assert setup.site_of_station("CP9") == "other"
    assert setup.site_of_station("nowhere") is None
    assert setup.site_of_node("missing") is None
    assert setup.stations_of_site("site") == ["CP1"] and setup.stations_of_site("other") == ["CP9"]
