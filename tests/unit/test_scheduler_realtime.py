"""The real-time scheduler: table-driven cases with hand-computed answers, and properties on random sites."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from csms.domain.grid import CapacityHold, GridError, GridNode, LimitWindow, Priority
from csms.scheduler import plan
from csms.scheduler.loads import add_unmanaged, carry_up
from csms.scheduler.model import SchedulerSettings, SessionDemand, Snapshot
from csms.scheduler.network import POWER, compile_network
from tests.unit.scheduler_cases import THREE, currents, session_maker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


session = session_maker(NOW, energy_wh=50_000)
# The mechanisms tested one at a time: no pace margin, due within the last 90 min of laxity (the defaults are
# tuned on the benchmark and would mix them in).
PLAIN = SchedulerSettings(pace_margin=timedelta(0), due_within=timedelta(minutes=90))


def test_equal_sessions_share_a_limit_equally() -> None:
    """Three identical sessions under a 48 A limit get 16 A each."""
    snapshot = Snapshot((GridNode("site", max_current_a=48),), tuple(session(f"s{i}") for i in range(3)))
    assert currents(plan(snapshot, NOW)) == {"s0": 16, "s1": 16, "s2": 16}


def test_sessions_are_paused_rather_than_offered_less_than_six_amps() -> None:
    """15 A cannot give three sessions 6 A: two charge, one is paused at 0 A, and nothing is wasted."""
    snapshot = Snapshot((GridNode("site", max_current_a=15),), tuple(session(f"s{i}") for i in range(3)))
    result = currents(plan(snapshot, NOW))
    assert sorted(result.values()) == [0, 7, 8]
    paused = next(sid for sid, amps in result.items() if amps == 0)
    assert "paused" in plan(snapshot, NOW).notes[paused]


def test_single_phase_sessions_share_only_their_phase() -> None:
    """Two single-phase cars on L1 split its 16 A; the car on L2 gets all of L2."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=16),),
        (session("a", phases=(1,)), session("b", phases=(1,)), session("c", phases=(2,))),
    )
    assert currents(plan(snapshot, NOW)) == {"a": 8, "b": 8, "c": 16}


def test_three_phase_car_is_limited_by_its_busiest_phase() -> None:
    """A three-phase car shares L1 with a single-phase car and leaves L2/L3 headroom unused rather than break L1."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=20),),
        (session("three"), session("one", phases=(1,))),
    )
    result = currents(plan(snapshot, NOW))
    # L1 is shared in proportion to what each car needs to finish on time: the single-phase car needs three times
    # the current for the same 50 kWh, so it gets more amps (7 A x 3 phases vs 13 A x 1 phase).
    assert result == {"three": 7, "one": 13}


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        # 20 A per phase: three cars at 6 A fit, and the rest is shared toward each one's 8 A pace.
        ({"max_current_a": 20}, [6, 7, 7]),
        # The same 13.8 kW as one power limit: two cars at their 8 A pace fit, the third would get 4 A and waits;
        # the two share what is left.
        ({"max_power_w": 20 * 230 * 3}, [0, 10, 10]),
    ],
)
def test_sessions_under_a_power_limit_are_admitted_at_their_pace(
    limit: dict[str, float], expected: list[float]
) -> None:
    """Under per-phase current limits every car that fits at 6 A charges; under a power limit only as many as fit
    at their pace (the energy they need by their departure), which delivers more on an aggregate limit."""
    sessions = tuple(session(f"s{i}", energy_wh=8 * 230 * 3 * 8) for i in range(3))
    result = currents(plan(Snapshot((GridNode("site", **limit),), sessions), NOW))
    assert sorted(result.values()) == expected


def test_a_session_whose_pace_does_not_fit_a_power_limit_still_charges_at_its_minimum() -> None:
    """Admission at pace never pauses a car that fits at 6 A: 6.5 A worth of watts and a car needing 8 A gets 6 A."""
    snapshot = Snapshot((GridNode("site", max_power_w=6.5 * 230 * 3),), (session("s", energy_wh=8 * 230 * 3 * 8),))
    assert currents(plan(snapshot, NOW)) == {"s": 6}


def test_feeder_limit_binds_below_the_site_limit() -> None:
    """A 10 A feeder holds one car at 10 A (two would need 12 A); the other feeder's cars share the rest of the site."""
    nodes = (
        GridNode("site", max_current_a=32),
        GridNode("a", "site", max_current_a=10),
        GridNode("b", "site"),
    )
    sessions = (session("a1", "a"), session("a2", "a"), session("b1", "b"), session("b2", "b"))
    result = currents(plan(Snapshot(nodes, sessions), NOW))
    assert sorted([result["a1"], result["a2"]]) == [0, 10]
    assert result["b1"] + result["b2"] == 22
    assert abs(result["b1"] - result["b2"]) <= 1


def test_power_limit_caps_total_watts() -> None:
    """An 11 kW aggregate limit at 230 V three-phase allows 15 A in total (15.9 A rounded down to whole amps)."""
    snapshot = Snapshot((GridNode("site", max_power_w=11_000),), (session("a"), session("b")))
    result = currents(plan(snapshot, NOW))
    assert sum(result.values()) * 230 * 3 <= 11_000
    assert sum(result.values()) == 15


def test_higher_priority_class_gets_its_pace_first() -> None:
    """When power is short, the urgent car gets the current it needs to finish before the standard car gets over 6 A."""
    urgent = session("urgent", energy_wh=11_000, hours=1, priority=Priority.URGENT)
    standard = session("standard", energy_wh=11_000, hours=1)
    result = currents(plan(Snapshot((GridNode("site", max_current_a=22),), (standard, urgent)), NOW))
    # 11 kWh in one hour at 690 W/A needs 15.9 A: the urgent car gets 16 A, the standard car the 6 A left.
    assert result == {"urgent": 16, "standard": 6}


@pytest.mark.parametrize(
    ("for_priority", "expected"),
    [
        # At its 12 A pace first: one standard car still fits at 6 A and gets the 2 A left; the other waits.
        (True, {"urgent": 12, "a": 8, "b": 0}),
        # At 6 A like the others: the two standard cars take 12 A of the 20 and the urgent car is short of its pace.
        (False, {"urgent": 8, "a": 6, "b": 6}),
    ],
)
def test_a_priority_session_is_admitted_at_its_pace_under_a_phase_limit(
    for_priority: bool, expected: dict[str, float]
) -> None:
    """A 20 A per-phase limit: an urgent car needing 12 A to finish in 3 h (not due yet: laxity 1.9 h), two
    standard cars needing 8 A each."""
    urgent = session("urgent", energy_wh=12 * 690 * 3, hours=3, priority=Priority.URGENT)
    a, b = session("a", energy_wh=8 * 690 * 8), session("b", energy_wh=8 * 690 * 8)
    config = replace(PLAIN, pace_admission_for_priority=for_priority, priority_pace_margin=timedelta(0))
    result = currents(plan(Snapshot((GridNode("site", max_current_a=20),), (urgent, a, b)), NOW, config))
    assert result == expected


@pytest.mark.parametrize(
    ("margin_hours", "expected"),
    [
        # Paced to finish an hour early: 12 A x 2 h of energy in 1 h is 24 A; the standard car keeps its 6 A.
        (1, {"urgent": 24, "standard": 6}),
        # Paced to its departure (12 A), then the leftover shared by how soon each leaves: 22 A and 8 A.
        (0, {"urgent": 22, "standard": 8}),
    ],
)
def test_a_priority_session_is_paced_to_finish_before_its_estimated_departure(
    margin_hours: float, expected: dict[str, float]
) -> None:
    """A 30 A limit: an urgent car needing 12 A for its 2 h, a standard car needing 8 A for its 8 h. Departures
    are estimates (often an hour out), so the urgent car is paced to be done ``priority_pace_margin`` early."""
    urgent = session("urgent", energy_wh=12 * 690 * 2, hours=2, priority=Priority.URGENT)
    standard = session("standard", energy_wh=8 * 690 * 8)
    config = replace(PLAIN, priority_pace_margin=timedelta(hours=margin_hours))
    assert currents(plan(Snapshot((GridNode("site", max_current_a=30),), (urgent, standard)), NOW, config)) == expected


@pytest.mark.parametrize(
    ("limit", "margin_hours", "expected"),
    [
        # Paced to its departure (10 A), then the leftover shared by how soon each leaves.
        ({"max_power_w": 24 * 690}, 0, {"short": 14, "long": 10}),
        # Paced to finish an hour early: 20.7 kWh in 2 h is 15 A.
        ({"max_power_w": 24 * 690}, 1, {"short": 15, "long": 9}),
    ],
)
def test_a_session_is_paced_to_finish_before_its_estimated_departure(
    limit: dict[str, float], margin_hours: float, expected: dict[str, float]
) -> None:
    """Room for 24 A: a car wanting 10 A for the 3 h it says it stays, another 8 A for its 8 h. Departure
    estimates are often an hour out, so the pace decides who is done before leaving early (``pace_margin``)."""
    short = session("short", energy_wh=10 * 690 * 3, hours=3)
    long = session("long", energy_wh=8 * 690 * 8, hours=8)
    config = replace(PLAIN, pace_margin=timedelta(hours=margin_hours))
    assert currents(plan(Snapshot((GridNode("site", **limit),), (short, long)), NOW, config)) == expected


@pytest.mark.parametrize(
    ("when_due", "expected"),
    [
        # At its 8.3 A pace first: one standard car still fits at 6 A, the other waits; the rest is shared by
        # how soon each leaves.
        (True, {"due": 13, "a": 7, "b": 0}),
        # At 6 A like the others, it ends with 8 A: 6.6 of its 6.9 kWh by the time it leaves.
        (False, {"due": 8, "a": 6, "b": 6}),
    ],
)
def test_a_due_session_is_admitted_at_its_pace_under_a_phase_limit(when_due: bool, expected: dict[str, float]) -> None:
    """A 20 A per-phase limit: a car wanting 6.9 kWh in the 1.2 h before it leaves (laxity 53 min: due), two
    standard cars with a whole day ahead. At 6 A the due car could not finish."""
    due = session("due", energy_wh=10 * 690, hours=1.2)
    a, b = session("a", energy_wh=6 * 690 * 8), session("b", energy_wh=6 * 690 * 8)
    config = replace(PLAIN, pace_admission_when_due=when_due)
    assert currents(plan(Snapshot((GridNode("site", max_current_a=20),), (due, a, b)), NOW, config)) == expected


def test_earlier_departure_gets_more_when_power_is_short() -> None:
    """Two cars want 10 kWh; the one leaving sooner needs more current than the one leaving in 8 h and gets it."""
    late = session("late", energy_wh=10_000, hours=8)
    site = (GridNode("site", max_current_a=18),)
    # Leaving in 2.5 h it is not due yet (laxity over 90 min): both get 6 A, the rest goes mostly to it.
    result = currents(plan(Snapshot(site, (late, session("soon", energy_wh=10_000, hours=2.5))), NOW, PLAIN))
    assert result["soon"] > result["late"] >= 6
    # Leaving in 1 h it is due: admitted at its 14.5 A pace, and the 3.5 A left are too few for the late car,
    # which has 8 h to catch up.
    result = currents(plan(Snapshot(site, (late, session("soon", energy_wh=10_000, hours=1))), NOW, PLAIN))
    assert result == {"soon": 18, "late": 0}
    assert result["soon"] + result["late"] == 18


def test_leftover_capacity_is_used_now() -> None:
    """With power to spare, cars get more than their pace (up to their maximum): capacity unused now is lost."""
    slow = session("slow", energy_wh=5_000, hours=10, max_a=16)
    result = currents(plan(Snapshot((GridNode("site", max_current_a=63),), (slow,)), NOW))
    assert result == {"slow": 16}


def test_almost_full_car_is_offered_only_what_it_can_use_in_the_slot() -> None:
    """A car wanting 300 Wh needs ~5 A for five minutes; it gets its 6 A minimum, the rest goes to the other car."""
    nearly_done = session("done", energy_wh=300)
    other = session("other")
    result = currents(plan(Snapshot((GridNode("site", max_current_a=32),), (nearly_done, other)), NOW))
    assert result == {"done": 6, "other": 26}


def test_room_a_session_cannot_take_now_goes_to_one_that_can() -> None:
    """Two cars share 48 A; one was written to a minute ago at 16 A (an increase would be held back): it keeps
    16 A and the other gets the rest now, not half of the site with 8 A of it left unused."""
    held = session("held", offered_a=16.0, max_now_a=16.0)
    free = session("free", offered_a=16.0)
    site = (GridNode("site", max_current_a=48),)
    assert currents(plan(Snapshot(site, (held, free)), NOW)) == {"held": 16, "free": 32}
    assert currents(plan(Snapshot(site, (replace(held, max_now_a=None), free)), NOW)) == {"held": 24, "free": 24}


def test_a_cap_for_now_does_not_make_a_session_urgent() -> None:
    """Laxity counts a session's full maximum: capped at 6 A for one slot, a car with hours to spare still queues
    behind one leaving sooner (at 6 A it would look due and take the only place)."""
    site = (GridNode("site", max_current_a=10),)
    relaxed = session("relaxed", energy_wh=10_000, hours=8, offered_a=6.0, max_now_a=6.0)
    sooner = session("sooner", energy_wh=10_000, hours=3)
    assert currents(plan(Snapshot(site, (relaxed, sooner)), NOW, PLAIN)) == {"relaxed": 0, "sooner": 10}


def test_a_cap_for_now_lasts_one_slot() -> None:
    """After the first slot (here: a limit window starting in an hour) the session is planned up to its maximum
    again; a cap below its minimum (paused a moment ago) keeps it paused in the first slot only."""
    window = LimitWindow(NOW + timedelta(hours=1), NOW + timedelta(hours=2), max_current_a=40)
    site = (GridNode("site", max_current_a=48, schedule=(window,)),)
    for cap, now in ((6.0, 6), (2.0, 0), (0.0, 0)):
        held = session("held", offered_a=min(cap, 6.0), max_now_a=cap)
        result = plan(Snapshot(site, (held, session("other", max_a=16))), NOW)
        assert result.sessions["held"].current_at(NOW) == now, cap
        assert result.sessions["held"].current_at(NOW + timedelta(minutes=90)) == 24, cap


def test_a_session_paused_a_moment_ago_leaves_its_room_to_others() -> None:
    """A car paused within the write interval cannot be resumed yet (the resume would be held back): planned at
    0 A now, the room goes to the car that can take it, not half of it to a resume that would not be sent."""
    site = (GridNode("site", max_current_a=22),)
    paused = session("paused", offered_a=0.0, max_now_a=0.0)
    other = session("other", offered_a=16.0)
    assert currents(plan(Snapshot(site, (paused, other)), NOW)) == {"paused": 0, "other": 22}
    assert currents(plan(Snapshot(site, (replace(paused, max_now_a=None), other)), NOW)) == {"paused": 11, "other": 11}


def test_no_energy_wanted_means_zero() -> None:
    """A session whose car wants nothing more gets 0 A and the note says why."""
    result = plan(Snapshot((GridNode("site", max_current_a=32),), (session("full", energy_wh=0),)), NOW)
    assert currents(result) == {"full": 0}
    assert result.notes["full"] == "no energy wanted"


def test_limit_window_lowers_the_plan_when_it_starts() -> None:
    """A peak window from 17:00 to 20:00 at 12 A gives the session a second period at 12 A starting 17:00."""
    start, end = NOW.replace(hour=17), NOW.replace(hour=20)
    node = GridNode("site", max_current_a=32, schedule=(LimitWindow(start, end, max_current_a=12),))
    result = plan(Snapshot((node,), (session("a", hours=12, energy_wh=400_000),)), NOW)
    periods = [(p.start, p.current_a) for p in result.sessions["a"].periods]
    assert periods == [(NOW, 32), (start, 12), (end, 32)]


def test_capacity_held_for_a_booking_is_kept_free() -> None:
    """A booking holding 16 A from 10:00 leaves 16 A of a 32 A site to the car charging now, from 10:00 on."""
    hold = CapacityHold("booking-1", "site", NOW + timedelta(hours=1), NOW + timedelta(hours=3), 16)
    snapshot = Snapshot((GridNode("site", max_current_a=32),), (session("a", energy_wh=200_000, hours=12),), (hold,))
    result = plan(snapshot, NOW).sessions["a"]
    assert result.current_at(NOW) == 32
    assert result.current_at(NOW + timedelta(hours=2)) == 16
    assert result.current_at(NOW + timedelta(hours=4)) == 32


def test_station_that_cannot_be_steered_is_planned_around() -> None:
    """A station assumed to draw 20 A (it rejected its profile) leaves 12 A of 32 A to the others."""
    stuck = session("stuck", fixed_a=20)
    result = plan(Snapshot((GridNode("site", max_current_a=32),), (stuck, session("a"))), NOW)
    assert currents(result) == {"a": 12}


def test_unmanaged_load_above_the_limit_pauses_everything_and_is_reported() -> None:
    """Building load of 40 A on a 32 A feeder: the cars under it are paused and the feeder is reported overloaded."""
    nodes = (GridNode("site"), GridNode("feeder", "site", max_current_a=32, unmanaged_a=(40, 0, 0)))
    result = plan(Snapshot(nodes, (session("a", "feeder"), session("b", "feeder", phases=(2,)))), NOW)
    assert currents(result) == {"a": 0, "b": 32}
    assert result.overloaded == ("feeder",)


def test_charging_session_keeps_its_place_against_a_slightly_more_urgent_one() -> None:
    """Room for one car: the one charging keeps charging unless the waiting one is more urgent by the bonus."""
    charging = session("charging", energy_wh=20_000, hours=6, offered_a=10)
    waiting = session("waiting", energy_wh=20_000, hours=5.9)
    nodes = (GridNode("site", max_current_a=10),)
    assert currents(plan(Snapshot(nodes, (waiting, charging)), NOW)) == {"charging": 10, "waiting": 0}
    much_sooner = session("waiting", energy_wh=20_000, hours=4)
    assert currents(plan(Snapshot(nodes, (much_sooner, charging)), NOW)) == {"charging": 0, "waiting": 10}


@pytest.mark.parametrize(
    ("limit", "probing", "expected"),
    [
        # Room for one car at 6 A per phase. Not probing: the car charging, and more urgent, keeps it.
        ({"max_current_a": 10}, False, {"charging": 10, "new": 0}),
        # Probing: the new car (phases unknown, planned on all three) is admitted first so that it draws and its
        # meter values show its phases; the charging car waits, as 4 A are left.
        ({"max_current_a": 10}, True, {"charging": 0, "new": 10}),
        # Under a power limit alone the probe changes nothing: where a car's load lands does not matter there.
        ({"max_power_w": 10 * 230 * 3}, True, {"charging": 10, "new": 0}),
    ],
)
def test_a_session_with_unknown_phases_is_admitted_first_to_learn_them(
    limit: dict[str, float], probing: bool, expected: dict[str, float]
) -> None:
    """A new car whose phases are unknown comes first in its class under per-phase limits, even before a more
    urgent car that is charging: paused while planned as three-phase, a single-phase car would never show that
    it needs only one phase."""
    charging = session("charging", energy_wh=20_000, hours=2, offered_a=10)
    new = session("new", energy_wh=20_000, hours=8, probing=probing)
    result = currents(plan(Snapshot((GridNode("site", **limit),), (charging, new)), NOW))
    assert result == expected


@pytest.mark.parametrize(
    ("fleet_hours", "charging"),
    [
        # Laxity ~9.8 h, beyond priority_due_within (6 h): it queues among the standard cars by laxity, and the
        # standard car (laxity ~3.1 h) takes the only place.
        (10, "standard"),
        # Laxity ~4.8 h: within priority_due_within, so it goes ahead of the standard class.
        (5, "fleet"),
    ],
)
def test_a_priority_session_goes_ahead_of_the_standard_class_once_it_is_due(fleet_hours: float, charging: str) -> None:
    """Room for one car (8 A). A fleet car wanting 5 kWh and a standard car wanting 20 kWh in 4 h. A priority car
    admitted first from the moment it plugs in takes room that standard cars leaving sooner need."""
    fleet = session("fleet", energy_wh=5_000, hours=fleet_hours, priority=Priority.FLEET)
    standard = session("standard", energy_wh=20_000, hours=4)
    result = currents(plan(Snapshot((GridNode("site", max_current_a=8),), (fleet, standard)), NOW))
    assert result == {charging: 8, ({"fleet", "standard"} - {charging}).pop(): 0}


def test_a_probing_session_does_not_come_before_a_higher_priority_class() -> None:
    """The probe is first within its class only: an urgent car that is due (laxity ~3.1 h, under
    priority_due_within) keeps the only 6 A."""
    urgent = session("urgent", energy_wh=20_000, hours=4, priority=Priority.URGENT)
    new = session("new", probing=True)
    result = currents(plan(Snapshot((GridNode("site", max_current_a=8),), (new, urgent)), NOW))
    assert result == {"urgent": 8, "new": 0}


@pytest.mark.parametrize(
    ("quick_hours", "due_within", "first"),
    [
        # Both due (laxity under 90 min): the one that needs the least time at full current charges first.
        (1.2, timedelta(minutes=90), "quick"),
        # Without the due window, least laxity first: the car that cannot finish anyway takes the only place.
        (1.2, timedelta(0), "hopeless"),
        # A quick car that is not due yet (laxity ~3.9 h) waits behind the due one.
        (4.0, timedelta(minutes=90), "hopeless"),
    ],
)
def test_among_due_sessions_the_quickest_to_finish_charges_first(
    quick_hours: float, due_within: timedelta, first: str
) -> None:
    """Room for one car. "hopeless" leaves in 1 h wanting 30 kWh (1.4 h at 32 A: it cannot finish), "quick" wants
    2 kWh (5 min at 32 A). Departure estimates are off by about an hour, so among sessions that are due the quick
    one is finished before it leaves rather than kept waiting behind one that cannot finish anyway."""
    hopeless = session("hopeless", energy_wh=30_000, hours=1)
    quick = session("quick", energy_wh=2_000, hours=quick_hours)
    config = SchedulerSettings(due_within=due_within)
    result = currents(plan(Snapshot((GridNode("site", max_current_a=10),), (hopeless, quick)), NOW, config))
    assert result == {first: 10, ({"hopeless", "quick"} - {first}).pop(): 0}


def test_unknown_departure_and_energy_use_the_configured_defaults() -> None:
    """No departure or energy given: the session is planned with default_stay and default_energy_wh."""
    unknown = SessionDemand("u", "site", THREE, 32, NOW)
    known = session("k", energy_wh=1_000, hours=1)
    config = replace(PLAIN, default_energy_wh=100_000, default_stay=timedelta(hours=2))
    result = currents(plan(Snapshot((GridNode("site", max_current_a=20),), (unknown, known)), NOW, config))
    # The defaulted car needs 100 kWh in 2 h (> its 32 A): it is the least lax and gets the most.
    assert result["u"] > result["k"]


@pytest.mark.parametrize(
    ("nodes", "sessions", "message"),
    [
        ((GridNode("a", "b"),), (), "unknown parent"),
        ((GridNode("a", "b"), GridNode("b", "a")), (), "its own ancestor"),
        ((GridNode("a", max_current_a=-1),), (), "limits must be >= 0"),
        ((GridNode("a"), GridNode("a")), (), "defined twice"),
        ((GridNode("a", phases=(1,)), GridNode("b", "a")), (), "phases its parent"),
        ((GridNode("a"),), (session("s", "nowhere"),), "unknown node"),
        ((GridNode("a", phases=(1,)),), (session("s", "a"),), "lacks"),
    ],
)
def test_inconsistent_snapshots_are_refused_with_a_reason(
    nodes: tuple[GridNode, ...], sessions: tuple[SessionDemand, ...], message: str
) -> None:
    """A broken tree or a session on a node that cannot carry it raises GridError naming the problem."""
    with pytest.raises(GridError, match=message):
        plan(Snapshot(nodes, sessions), NOW)


# -- properties on random sites ---------------------------------------------------------------------------------


@st.composite
def random_sites(draw: st.DrawFn) -> Snapshot:
    nodes = [GridNode("site", **draw(_limits(200)))]
    for f in range(draw(st.integers(1, 3))):
        nodes.append(GridNode(f"f{f}", "site", **draw(_limits(80))))
        for s in range(draw(st.integers(1, 3))):
            nodes.append(GridNode(f"f{f}s{s}", f"f{f}", **draw(_limits(40))))
    leaves = [n.id for n in nodes if n.id.count("s") == 2 or "s" in n.id[2:]]
    sessions = []
    for i in range(draw(st.integers(0, 12))):
        phases = draw(st.sampled_from([(1,), (2,), (3,), (1, 2), THREE]))
        sessions.append(
            SessionDemand(
                f"e{i}",
                draw(st.sampled_from(leaves or ["site"])),
                phases,
                draw(st.sampled_from([6.0, 10.0, 16.0, 32.0])),
                NOW - timedelta(minutes=draw(st.integers(0, 600))),
                energy_wh=draw(st.one_of(st.none(), st.floats(0, 80_000))),
                departure=draw(st.one_of(st.none(), st.just(NOW + timedelta(minutes=draw(st.integers(-60, 900)))))),
                priority=draw(st.sampled_from(list(Priority))),
                offered_a=draw(st.one_of(st.none(), st.just(6.0), st.just(16.0))),
                fixed_a=draw(st.one_of(st.none(), st.none(), st.just(8.0))),
                pilot_step_a=draw(st.sampled_from([1.0, 0.1])),
                max_now_a=draw(st.one_of(st.none(), st.none(), st.sampled_from([0.0, 6.0, 16.0]))),
            )
        )
    holds = ()
    if draw(st.booleans()):
        holds = (CapacityHold("h", "site", NOW + timedelta(hours=1), NOW + timedelta(hours=2), 10.0),)
    return Snapshot(tuple(nodes), tuple(sessions), holds)


def _limits(top: int) -> st.SearchStrategy[dict[str, float | None]]:
    amps = st.one_of(st.none(), st.floats(0, top))
    watts = st.one_of(st.none(), st.floats(0, top * 690))
    return st.fixed_dictionaries({"max_current_a": amps, "max_power_w": watts})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_sites())
def test_no_plan_breaks_a_limit_or_offers_less_than_the_minimum(snapshot: Snapshot) -> None:
    """For random trees, limits and sessions, no constraint is exceeded in any period and every current is 0 or in
    [min, max] on the pilot step."""
    result = plan(snapshot, NOW)
    network = compile_network(snapshot, NOW, result.end, prune=False)
    for segment in range(network.segment_count):
        when = network.boundaries[segment]
        amps = [result.sessions[s.id].current_at(when) for s in network.sessions]
        for constraint in network.constraints:
            load = sum(amps[i] * c for i, c in zip(constraint.members, constraint.coefficients, strict=True))
            capacity = constraint.capacities[segment]
            tolerance = 1e-6 * (230 * 3 if constraint.phase == POWER else 1)
            assert load <= max(capacity, 0.0) + tolerance, (constraint.node_id, constraint.phase, when)
        for s, current in zip(network.sessions, amps, strict=True):
            assert current == 0 or s.min_current_a - 1e-9 <= current <= s.max_current_a + 1e-9
            if segment == 0 and s.max_now_a is not None:
                assert current <= (s.max_now_a if s.max_now_a >= s.min_current_a else 0.0) + 1e-9
            steps = current / s.pilot_step_a
            assert abs(steps - round(steps)) < 1e-6


# A car that could use 6.052 A under a 6.5 A limit, on whole-amp pilots: 6 A is right (7 A does not fit, 6.052 A is
# no signal). Hypothesis found it against an oracle that asked whether 0.052 A fits.
_PART_OF_A_STEP = Snapshot(
    (GridNode("site", max_current_a=6.5),),
    (SessionDemand("e3", "site", THREE, 16.0, NOW, energy_wh=6.052 * 230 * 3 / 12),),
)
# e0 could use 8.87 A and was left at 8.8 A with room for 8.9 A: its rate landed on the step grid, so rounding had
# nothing to hand back, and the top-up offered only whole steps of what it could use (0.07 A is none).
_RATE_ON_THE_GRID = Snapshot(
    (GridNode("site", max_current_a=46.5), GridNode("f0", "site", max_current_a=17.5)),
    (
        SessionDemand(
            "e0",
            "site",
            (1,),
            32.0,
            NOW - timedelta(hours=7),
            energy_wh=170,
            departure=NOW + timedelta(hours=5),
            offered_a=6.0,
            pilot_step_a=0.1,
        ),
        SessionDemand(
            "e1",
            "f0",
            THREE,
            10.0,
            NOW - timedelta(hours=7),
            energy_wh=1000,
            departure=NOW + timedelta(hours=4),
            priority=Priority.FLEET,
        ),
        SessionDemand("e2", "f0", (1,), 16.0, NOW - timedelta(hours=9), priority=Priority.FLEET, offered_a=6.0),
        SessionDemand(
            "e3",
            "site",
            THREE,
            10.0,
            NOW - timedelta(hours=4),
            departure=NOW + timedelta(hours=13),
            priority=Priority.FLEET,
            pilot_step_a=0.1,
        ),
        SessionDemand("e4", "site", THREE, 32.0, NOW - timedelta(hours=8), energy_wh=600, pilot_step_a=0.1),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_sites())
@example(_PART_OF_A_STEP)
@example(_RATE_ON_THE_GRID)
def test_no_capacity_is_left_that_a_session_could_use(snapshot: Snapshot) -> None:
    """Work conservation: no session below what it can use now could take one more pilot step (or its minimum, if
    paused) without breaking a constraint."""
    result = plan(snapshot, NOW)
    network = compile_network(snapshot, NOW, result.end, prune=False)
    config = SchedulerSettings()
    slot_hours = config.slot.total_seconds() / 3600
    amps = [result.sessions[s.id].current_a for s in network.sessions]
    slack = [c.capacities[0] for c in network.constraints]
    for k, constraint in enumerate(network.constraints):
        slack[k] -= sum(amps[i] * c for i, c in zip(constraint.members, constraint.coefficients, strict=True))
    for i, s in enumerate(network.sessions):
        energy = config.default_energy_wh if s.energy_wh is None else s.energy_wh
        usable = min(s.max_current_a, max(energy / (s.voltage_v * len(s.phases) * slot_hours), s.min_current_a))
        if s.max_now_a is not None:
            usable = min(usable, s.max_now_a if s.max_now_a >= s.min_current_a else 0.0)
        if energy <= 1e-9 or s.max_current_a < s.min_current_a or amps[i] >= usable - 1e-9:
            continue
        # The next current a pilot can signal: its minimum if paused, else one step more (or its maximum, if
        # nearer). A fraction of a step is not a signal, even when the car could only use that fraction.
        more = s.min_current_a if amps[i] == 0 else min(s.pilot_step_a, s.max_current_a - amps[i])
        fits = all(slack[k] >= more * c - 1e-6 for k, c in network.session_constraints[i])
        assert not fits, (s.id, amps[i], more)


def test_a_car_that_can_use_part_of_a_step_is_offered_the_whole_step() -> None:
    """With room for it, a car that could use 8.87 A gets 8.9 A on a 0.1 A pilot, not 8.8 A."""
    assert currents(plan(_RATE_ON_THE_GRID, NOW))["e0"] == pytest.approx(8.9)


def test_loads_are_carried_up_the_tree_with_unmanaged_load() -> None:
    """Each node's load is its own plus everything under it, unmanaged load only on the phases a node carries."""
    nodes = {
        n.id: n
        for n in (
            GridNode("site", unmanaged_a=(1.0, 0.0, 0.0)),
            GridNode("f", "site", phases=(2,), unmanaged_a=(0.0, 3.0, 0.0)),
            GridNode("s", "f", phases=(2,)),
            GridNode("g", "site", unmanaged_a=(0.0, 0.0, 5.0)),
        )
    }
    amps = {node_id: [0.0, 0.0, 0.0] for node_id in nodes}
    watts = dict.fromkeys(nodes, 0.0)
    amps["s"][1] = 10.0
    watts["s"] = 2300.0
    add_unmanaged(nodes, amps, watts)
    carry_up(nodes, amps, watts)
    assert amps == {"site": [1, 13, 5], "f": [0, 13, 0], "s": [0, 10, 0], "g": [0, 0, 5]}
    assert watts == {"site": 230 * 19, "f": 230 * 13, "s": 2300, "g": 230 * 5}


def test_empty_planning_window_is_refused() -> None:
    """A horizon of zero is a caller's mistake and says so instead of failing somewhere inside."""
    with pytest.raises(GridError, match="must end after it starts"):
        plan(Snapshot((GridNode("site"),), ()), NOW, SchedulerSettings(horizon=timedelta(0)))
