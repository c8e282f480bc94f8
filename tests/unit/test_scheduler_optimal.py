"""The optimal (LP) planner: table-driven cases with hand-computed optima, and properties on random sites."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from csms.domain.grid import CapacityHold, GridNode, LimitWindow, Priority
from csms.scheduler import Algorithm, plan
from csms.scheduler.model import Plan, SchedulerSettings, SessionDemand, Snapshot
from csms.scheduler.network import POWER, compile_network
from csms.scheduler.optimal import horizon_grid, plan_optimal, solve, uniform_grid
from csms.scheduler.optimal_lp import _still_plugged_in
from tests.unit.scheduler_cases import THREE, currents, session_maker

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PLENTY = 1_000_000.0  # Wh: more than any case can deliver
# The hand-computed optima take departures as exact; the spread's own tests and the limit property use the defaults.
SETTINGS = SchedulerSettings(departure_spread=timedelta(0))
DEFAULTS = SchedulerSettings()


session = session_maker(NOW, energy_wh=PLENTY)


def later(result: Plan, minutes: float) -> dict[str, float]:
    return {sid: p.current_at(NOW + timedelta(minutes=minutes)) for sid, p in result.sessions.items()}


@dataclass(frozen=True)
class Case:
    nodes: tuple[GridNode, ...]
    sessions: tuple[SessionDemand, ...]
    first: dict[str, float]  # every session's current in the first slot
    then: dict[float, dict[str, float]] = field(default_factory=dict)  # minutes from now -> some currents then
    holds: tuple[CapacityHold, ...] = ()


CASES = {
    # One limit, one car: it gets the limit.
    "single limit": Case((GridNode("site", max_current_a=20),), (session("s"),), {"s": 20}),
    # L1: a + c <= 32, L2: b + c <= 32, feeder f1: a, b <= 16, c <= 20 A. Raising c by 1 A costs a and b 1 A each
    # but gains 3 phases, so c = 20 and a = b = 12 is the only optimum.
    "two-level tree, per-phase limits": Case(
        (
            GridNode("site", max_current_a=32),
            GridNode("f1", "site", max_current_a=16),
            GridNode("f2", "site"),
        ),
        (session("a", "f1", (1,)), session("b", "f1", (2,)), session("c", "f2", max_a=20)),
        {"a": 12, "b": 12, "c": 20},
    ),
    # 11,040 W / (230 V x 3) = 16 A; a single-phase car may take 4,600 W / 230 V = 20 A.
    "power limit, three-phase": Case((GridNode("site", max_power_w=11_040),), (session("s"),), {"s": 16}),
    "power limit, single-phase": Case((GridNode("site", max_power_w=4_600),), (session("s", phases=(2,)),), {"s": 20}),
    # 32 A now, 10 A while the grid operator's window lasts (1-3 h), 32 A again after it.
    "limit window lowers the limit later": Case(
        (
            GridNode(
                "site",
                max_current_a=32,
                schedule=(LimitWindow(NOW + timedelta(hours=1), NOW + timedelta(hours=3), max_current_a=10),),
            ),
        ),
        (session("s"),),
        {"s": 32},
        {90: {"s": 10}, 200: {"s": 32}},
    ),
    # A booking holds 20 A of 32 A for 2 h: 12 A until then, 32 A after.
    "capacity hold": Case(
        (GridNode("site", max_current_a=32),),
        (session("s"),),
        {"s": 12},
        {150: {"s": 32}},
        (CapacityHold("booking", "site", NOW - timedelta(minutes=5), NOW + timedelta(hours=2), 20),),
    ),
    # A station that cannot be steered draws its fixed 20 A: the other car gets the remaining 12 A; the fixed one
    # gets no plan.
    "fixed session": Case(
        (GridNode("site", max_current_a=32),),
        (session("s"), session("stuck", fixed_a=20)),
        {"s": 12},
    ),
    # Slots start at 0, 5, 20, 65, 200 min. a leaves at 65 min wanting 16 A for 65 min, b at 200 min wanting
    # 16 A for 135 min, on one 16 A phase: only "a first, then b" serves both (sharing fails a).
    "deadline ordering": Case(
        (GridNode("site", max_current_a=16),),
        (
            session("a", phases=(1,), energy_wh=16 * 230 * 65 / 60, minutes=65),
            session("b", phases=(1,), energy_wh=16 * 230 * 135 / 60, minutes=200),
        ),
        {"a": 16, "b": 0},
        {80: {"a": 0, "b": 16}},
    ),
    # Energy alone would give the three-phase car all of L1 (three times the energy per amp); the fleet car's
    # class comes first, so it gets L1 until it leaves at 20 min.
    "priority class first": Case(
        (GridNode("site", max_current_a=16),),
        (session("fleet", phases=(1,), minutes=20, priority=Priority.FLEET), session("standard", max_a=16)),
        {"fleet": 16, "standard": 0},
        {25: {"fleet": 0, "standard": 16}},
    ),
    # The unsteerable 40 A on L1 already breaks the 32 A limit: whatever uses L1 is paused, L2 is still usable.
    "overloaded phase": Case(
        (GridNode("site", max_current_a=32, unmanaged_a=(40, 0, 0)),),
        (session("three"), session("l2", phases=(2,))),
        {"three": 0, "l2": 32},
    ),
    "zero limit": Case((GridNode("site", max_current_a=0),), (session("s"),), {"s": 0}),
    # A car whose phases are unknown (planned on all three) gets its 6 A minimum in the first slot so that its meter
    # values show them; the car leaving in an hour gets the other 10 A then and the whole 16 A after. Without the
    # floor the optimum is 16 A and 0 A: the new car needs 5 kWh and has 8 h.
    "a car whose phases are unknown is admitted at its minimum": Case(
        (GridNode("site", max_current_a=16),),
        (session("due", minutes=60), session("new", energy_wh=5_000, probing=True)),
        {"due": 10, "new": 6},
        {10: {"due": 16, "new": 0}},
    ),
    # Under a power limit a car's phases do not change where its load lands: no floor.
    "a car whose phases are unknown is not probed under a power limit": Case(
        (GridNode("site", max_power_w=11_040),),
        (session("due", minutes=60), session("new", energy_wh=5_000, probing=True)),
        {"due": 16, "new": 0},
    ),
    # The fleet car needs the whole 16 A of the first slot, the only one before it leaves: the standard car's floor
    # would take 6 A of it, so it is dropped (a floor never costs a higher class).
    "a probing car's floor gives way to a higher class": Case(
        (GridNode("site", max_current_a=16),),
        (
            session("fleet", minutes=5, priority=Priority.FLEET),
            session("new", energy_wh=5_000, probing=True),
        ),
        {"fleet": 16, "new": 0},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hand_computed_optimum(case: Case) -> None:
    """Each table case's first-slot currents (and later ones where given) are the unique optimum."""
    result = plan_optimal(Snapshot(case.nodes, case.sessions, case.holds), NOW, SETTINGS)
    assert result.algorithm == "optimal"
    assert currents(result) == case.first
    for minutes, expected in case.then.items():
        assert {sid: later(result, minutes)[sid] for sid in expected} == expected


def test_plan_entry_point_dispatches_to_the_optimal_planner() -> None:
    """plan(..., Algorithm.OPTIMAL) runs this planner."""
    result = plan(Snapshot((GridNode("site", max_current_a=20),), (session("s"),)), NOW, None, Algorithm.OPTIMAL)
    assert (result.algorithm, currents(result)) == ("optimal", {"s": 20})


def test_no_sessions_give_an_empty_plan() -> None:
    """Without sessions there is nothing to plan, but the site's load is still reported."""
    result = plan_optimal(Snapshot((GridNode("site", max_current_a=20, unmanaged_a=(5, 0, 0)),), ()), NOW, SETTINGS)
    assert result.sessions == {}
    assert result.overloaded == ()
    assert [(load.node_id, load.load_a) for load in result.loads] == [("site", (5.0, 0.0, 0.0))]


def test_overloaded_nodes_are_reported() -> None:
    """A node whose unsteerable load exceeds its limit is named in ``overloaded``."""
    snapshot = Snapshot((GridNode("site", max_current_a=32, unmanaged_a=(40, 0, 0)),), (session("s"),))
    assert plan_optimal(snapshot, NOW, SETTINGS).overloaded == ("site",)


def test_loads_include_what_cannot_be_steered() -> None:
    """The site's planned load is the car's 12 A plus the fixed 20 A; its limit and power are reported too."""
    snapshot = Snapshot((GridNode("site", max_current_a=32),), (session("s"), session("stuck", fixed_a=20)))
    first = plan_optimal(snapshot, NOW, SETTINGS).loads[0]
    assert (first.node_id, first.start, first.load_a, first.limit_a) == ("site", NOW, (32.0, 32.0, 32.0), 32)
    assert first.power_w == pytest.approx(32 * 230 * 3)


def test_window_shows_in_the_loads() -> None:
    """The plan's load at the start of a limit window carries the window's lower limit."""
    window = LimitWindow(NOW + timedelta(hours=1), NOW + timedelta(hours=3), max_current_a=10)
    snapshot = Snapshot((GridNode("site", max_current_a=32, schedule=(window,)),), (session("s"),))
    loads = {load.start: load for load in plan_optimal(snapshot, NOW, SETTINGS).loads}
    assert (loads[window.start].limit_a, loads[window.start].load_a) == (10, (10.0, 10.0, 10.0))


def test_periods_merge_equal_slots() -> None:
    """A car that gets the same current all day has one period; one that leaves drops to 0 A once."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=64),), (session("stays", minutes=48 * 60), session("leaves", minutes=20))
    )
    result = plan_optimal(snapshot, NOW, SETTINGS)
    assert [(p.start, p.current_a) for p in result.sessions["stays"].periods] == [(NOW, 32)]
    assert [(p.start, p.current_a) for p in result.sessions["leaves"].periods] == [
        (NOW, 32),
        (NOW + timedelta(minutes=20), 0),
    ]


def test_energy_limits_what_a_car_gets() -> None:
    """A car that wants 2,300 Wh gets 10 A x 1 h worth of it over its stay and no more."""
    snapshot = Snapshot((GridNode("site", max_current_a=32),), (session("s", phases=(1,), energy_wh=2_300),))
    network = compile_network(snapshot, NOW, NOW + SETTINGS.horizon)
    solution = solve(network, horizon_grid(NOW, SETTINGS, network), SETTINGS)
    assert solution.energy_wh.tolist() == pytest.approx([2_300])
    assert solution.rates[0, 0] == pytest.approx(32)  # and it charges as early as it can


def test_a_cap_for_now_bounds_only_the_first_slot() -> None:
    """A car whose increase would be held back (max_now_a 16 A) gets at most 16 A in the first slot and the other
    car the rest of the 48 A; from the next slot on it is planned up to its maximum again."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=48),),
        (session("held", phases=(1,), offered_a=16.0, max_now_a=16.0), session("free", phases=(1,))),
    )
    network = compile_network(snapshot, NOW, NOW + SETTINGS.horizon)
    solution = solve(network, horizon_grid(NOW, SETTINGS, network), SETTINGS)
    assert solution.rates[:, 0].tolist() == pytest.approx([16, 32])
    assert solution.rates[0, 1:].max() > 16
    assert currents(plan_optimal(snapshot, NOW, SETTINGS)) == {"held": 16, "free": 32}


def test_a_car_may_stay_past_its_estimate() -> None:
    """Departures are estimates: a car that said it leaves in an hour is still planned current in the next slots
    (to one spread past the estimate), valued by the chance that it is still there; with exact departures not."""
    snapshot = Snapshot((GridNode("site", max_current_a=16),), (session("s", hours=1),))
    assert later(plan_optimal(snapshot, NOW, DEFAULTS), 100) == {"s": 16}
    assert later(plan_optimal(snapshot, NOW, SETTINGS), 100) == {"s": 0}
    network = compile_network(snapshot, NOW, NOW + DEFAULTS.horizon)
    grid = uniform_grid(NOW, NOW + timedelta(hours=3), timedelta(minutes=30))
    solution = solve(network, grid, DEFAULTS)
    assert solution.rates[0].tolist() == pytest.approx([16] * 4 + [0] * 2)  # to 2 h: the estimate + 1 h


@pytest.mark.parametrize("hours", [-30.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 2.0, 7.0])
def test_the_chance_a_car_is_still_there_follows_the_normal_distribution(hours: float) -> None:
    """P(departure > estimate + t) for departures N(estimate, 1 h), against math.erf."""
    expected = 0.5 * (1 - math.erf(hours / math.sqrt(2)))
    assert _still_plugged_in(np.array([hours * 3600]), 3600.0)[0] == pytest.approx(expected, abs=2e-7)
    assert _still_plugged_in(np.array([hours * 3600]), 0.0)[0] == 1.0  # exact departures


def test_expected_energy_puts_a_car_that_may_leave_early_first() -> None:
    """Two cars that can both be finished by their estimates, whichever goes first: with exact departures the
    order is a tie, while the car whose estimate is sooner is likelier to leave early, so it goes first."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=16),),
        (session("later", energy_wh=11_040, hours=4), session("sooner", energy_wh=11_040, hours=2)),
    )
    network = compile_network(snapshot, NOW, NOW + DEFAULTS.horizon)
    grid = uniform_grid(NOW, NOW + timedelta(hours=4), timedelta(minutes=30))
    solution = solve(network, grid, DEFAULTS)
    assert solution.rates[1].tolist() == pytest.approx([16, 16, 0, 0, 0, 0, 0, 0])  # sooner
    assert solution.rates[0].tolist() == pytest.approx([0, 0, 16, 16, 0, 0, 0, 0])  # later


def test_offline_solve_keeps_future_arrivals_inside_their_window() -> None:
    """A car arriving in 1 h and leaving in 2 h only gets current in those four 15-minute slots."""
    arriving = SessionDemand(
        "later",
        "site",
        THREE,
        16,
        NOW + timedelta(hours=1),
        energy_wh=PLENTY,
        departure=NOW + timedelta(hours=2),
    )
    network = compile_network(
        Snapshot((GridNode("site", max_current_a=32),), (arriving,)), NOW, NOW + timedelta(hours=4)
    )
    solution = solve(network, uniform_grid(NOW, NOW + timedelta(hours=4), timedelta(minutes=15)), SETTINGS)
    assert solution.status == "optimal"
    assert solution.rates[0].tolist() == pytest.approx([0] * 4 + [16] * 4 + [0] * 8)
    assert solution.energy_wh.tolist() == pytest.approx([16 * 230 * 3])


def test_offline_solve_ignores_arrivals_beyond_the_grid() -> None:
    """A car that arrives after the last slot gets nothing, and the solve says there was nothing to decide."""
    arriving = SessionDemand("late", "site", THREE, 16, NOW + timedelta(hours=5), energy_wh=PLENTY)
    network = compile_network(
        Snapshot((GridNode("site", max_current_a=32),), (arriving,)), NOW, NOW + timedelta(hours=4)
    )
    solution = solve(network, uniform_grid(NOW, NOW + timedelta(hours=4), timedelta(hours=1)), SETTINGS)
    assert (solution.status, solution.rates.tolist(), solution.energy_wh.tolist()) == ("empty", [[0.0] * 4], [0.0])


def test_fairness_stage_evens_out_a_shared_shortage() -> None:
    """Two equal cars that cannot both finish: the energy optimum is any split, the fairness stage halves it."""
    snapshot = Snapshot(
        (GridNode("site", max_current_a=16),),
        (
            session("a", phases=(1,), energy_wh=3_680, minutes=60),
            session("b", phases=(1,), energy_wh=3_680, minutes=60),
        ),
    )
    network = compile_network(snapshot, NOW, NOW + SETTINGS.horizon)
    grid = uniform_grid(NOW, NOW + timedelta(hours=1), timedelta(minutes=5))
    unfair = solve(network, grid, SETTINGS)
    fair = solve(network, grid, SETTINGS, fairness=True)
    assert unfair.energy_wh.sum() == pytest.approx(3_680)
    assert fair.energy_wh.tolist() == pytest.approx([1_840, 1_840])


def test_each_class_gets_its_own_optimum() -> None:
    """With three classes competing, each class gets what it would get if the classes below it did not exist."""
    nodes = (GridNode("site", max_current_a=24), GridNode("f", "site", max_current_a=16))
    sessions = (
        session("urgent", "f", (1,), energy_wh=2_000, minutes=60, priority=Priority.URGENT),
        session("fleet1", "f", (1, 2), minutes=90, priority=Priority.FLEET),
        session("fleet2", phases=(3,), minutes=20, priority=Priority.FLEET),
        session("standard1", minutes=120),
        session("standard2", phases=(2,), minutes=300),
    )

    def class_energy(kept: tuple[SessionDemand, ...], priority: Priority) -> float:
        network = compile_network(Snapshot(nodes, kept), NOW, NOW + SETTINGS.horizon)
        solution = solve(network, horizon_grid(NOW, SETTINGS, network), SETTINGS)
        return float(solution.energy_wh[[s.priority == priority for s in network.sessions]].sum())

    for priority in (Priority.URGENT, Priority.FLEET):
        alone = tuple(s for s in sessions if s.priority >= priority)
        assert class_energy(sessions, priority) == pytest.approx(class_energy(alone, priority), rel=1e-6)


# --- properties ------------------------------------------------------------------------------------------------


@st.composite
def sites(draw: st.DrawFn) -> Snapshot:
    """A site, up to three feeders, some limits, windows, unmanaged load, holds and up to eight sessions."""
    limit = st.one_of(st.none(), st.floats(0, 80))
    feeders = draw(st.integers(0, 3))
    node_ids = ["site", *(f"f{k}" for k in range(feeders))]
    nodes = []
    for node_id in node_ids:
        schedule: tuple[LimitWindow, ...] = ()
        if draw(st.booleans()):
            start = NOW + timedelta(minutes=draw(st.integers(-60, 600)))
            end = start + timedelta(minutes=draw(st.integers(1, 600)))
            schedule = (LimitWindow(start, end, max_current_a=draw(st.floats(0, 40))),)
        nodes.append(
            GridNode(
                node_id,
                None if node_id == "site" else "site",
                max_current_a=draw(limit),
                max_power_w=draw(st.one_of(st.none(), st.floats(0, 60_000))),
                unmanaged_a=draw(st.tuples(*[st.sampled_from([0.0, 3.0, 10.0])] * 3)),
                schedule=schedule,
            )
        )
    holds = tuple(
        CapacityHold(
            f"h{k}",
            draw(st.sampled_from(node_ids)),
            NOW + timedelta(minutes=draw(st.integers(-30, 300))),
            NOW + timedelta(minutes=draw(st.integers(301, 900))),
            draw(st.floats(0, 20)),
        )
        for k in range(draw(st.integers(0, 2)))
    )
    sessions = []
    for k in range(draw(st.integers(0, 8))):
        max_a = draw(st.sampled_from([0.0, 6.0, 10.0, 16.0, 32.0, 13.7]))
        sessions.append(
            SessionDemand(
                f"s{k}",
                draw(st.sampled_from(node_ids)),
                draw(st.sampled_from([(1,), (2,), (3,), (1, 2), THREE])),
                max_a,
                NOW - timedelta(minutes=draw(st.integers(0, 600))),
                energy_wh=draw(st.one_of(st.none(), st.floats(0, 60_000))),
                departure=draw(st.one_of(st.none(), st.integers(-30, 900).map(lambda m: NOW + timedelta(minutes=m)))),
                priority=draw(st.sampled_from(list(Priority))),
                min_current_a=draw(st.sampled_from([6.0, 8.0, 0.0])),
                pilot_step_a=draw(st.sampled_from([1.0, 0.1])),
                offered_a=draw(st.sampled_from([None, 0.0, 16.0])),
                fixed_a=draw(st.sampled_from([None, None, None, 10.0])),
                max_now_a=draw(st.sampled_from([None, None, 0.0, 7.0, 16.0])),
                probing=draw(st.booleans()),
            )
        )
    return Snapshot(tuple(nodes), tuple(sessions), holds)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_plans_never_break_a_limit_or_offer_less_than_the_minimum(snapshot: Snapshot) -> None:
    """Every limit holds at every instant the plan changes (its loads agree), and no car gets 0 < I < its minimum."""
    result = plan_optimal(snapshot, NOW, DEFAULTS)
    network = compile_network(snapshot, NOW, result.end, prune=False)
    instants = {NOW, *network.boundaries[:-1]} | {p.start for s in result.sessions.values() for p in s.periods}
    for when in sorted(t for t in instants if NOW <= t < result.end):
        amps = np.array([result.sessions[s.id].current_at(when) for s in network.sessions])
        for session, current in zip(network.sessions, amps.tolist(), strict=True):
            assert current == 0 or session.min_current_a - 1e-9 <= current <= session.max_current_a + 1e-9
            if when == NOW and session.max_now_a is not None:  # the first slot (below the minimum: paused)
                cap = session.max_now_a if session.max_now_a >= session.min_current_a else 0.0
                assert current <= cap + 1e-9
        for constraint in network.constraints:
            capacity = max(constraint.capacities[network.segment_of(when)], 0.0)
            load = sum(c * amps[i] for i, c in zip(constraint.members, constraint.coefficients, strict=True))
            tolerance = 1e-3 if constraint.phase == POWER else 1e-5
            assert load <= capacity + tolerance, (constraint.node_id, constraint.phase, when)
    for node_load in result.loads:  # what the plan reports agrees: within every limit not already overloaded
        if node_load.node_id not in result.overloaded:
            assert node_load.limit_a is None or max(node_load.load_a) <= node_load.limit_a + 1e-3
            assert node_load.limit_w is None or node_load.power_w <= node_load.limit_w + 0.1
    assert set(result.sessions) == {s.id for s in snapshot.sessions if s.fixed_a is None}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_no_class_gives_up_energy_to_a_lower_one(snapshot: Snapshot) -> None:
    """On random sites each class gets exactly what it gets when the classes below it are left out."""

    def class_energy(kept: tuple[SessionDemand, ...], priority: Priority) -> float:
        network = compile_network(Snapshot(snapshot.nodes, kept, snapshot.holds), NOW, NOW + SETTINGS.horizon)
        solution = solve(network, horizon_grid(NOW, SETTINGS, network), SETTINGS)
        return float(solution.energy_wh[[s.priority == priority for s in network.sessions]].sum())

    for priority in (Priority.URGENT, Priority.FLEET):
        alone = tuple(s for s in snapshot.sessions if s.priority >= priority or s.fixed_a is not None)
        assert class_energy(snapshot.sessions, priority) == pytest.approx(
            class_energy(alone, priority), rel=1e-6, abs=1e-2
        )
