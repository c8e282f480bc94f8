"""The scheduling benchmark's harness is right: workload, simulator, controller, baselines, offline LP, metrics.

Behaviour and arithmetic only; no wall-clock assertions (timings are reported, never tested).
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks import run_scheduling  # noqa: E402
from benchmarks.scheduling.baselines import BASELINES, edf, fcfs, llf, round_robin  # noqa: E402
from benchmarks.scheduling.cars import standalone_draws  # noqa: E402
from benchmarks.scheduling.config import SimConfig  # noqa: E402
from benchmarks.scheduling.fleet_sim import simulate  # noqa: E402
from benchmarks.scheduling.metrics import fully_served_share, jain_index, violation_seconds  # noqa: E402
from benchmarks.scheduling.offline import solve_offline  # noqa: E402
from benchmarks.scheduling.report import BEGIN_MARK, END_MARK  # noqa: E402
from benchmarks.scheduling.workload import (  # noqa: E402
    DAY_START,
    SITE_ID,
    VOLTAGE_V,
    Behaviour,
    Evse,
    LimitKind,
    Session,
    Site,
    Station,
    Workload,
    WorkloadConfig,
    generate_day,
    inverse_cdf,
    plugged_in_snapshot,
)
from csms.domain.grid import GridNode, Priority  # noqa: E402
from csms.scheduler.model import Plan, SchedulerSettings, SessionDemand, Snapshot  # noqa: E402
from csms.scheduler.network import compile_network  # noqa: E402

HOUR = 3600.0
NOW = DAY_START + timedelta(hours=9)


def tiny_workload(
    sessions: list[tuple[float, float, int, float, float]],
    *,
    rotations: tuple[tuple[int, int, int], ...] = ((1, 2, 3),),
    behaviour: Behaviour = Behaviour.OBEYS,
    evse_a: float = 32.0,
) -> Workload:
    """One feeder, one single-EVSE station per session; sessions are (arrival h, departure h, car phases,
    car max A, requested Wh), with big batteries so no taper."""
    stations, evses, nodes = [], [], [GridNode(SITE_ID, voltage_v=VOLTAGE_V), GridNode("feeder", SITE_ID)]
    demand = []
    for k, (arrival, departure, phases, car_max, wh) in enumerate(sessions):
        station = Station(f"st{k}", "feeder", rotations[k % len(rotations)], evse_a, 1, behaviour)
        stations.append(station)
        evses.append(Evse(f"st{k}/1", k))
        nodes.append(GridNode(station.id, "feeder", max_current_a=evse_a))
        demand.append(
            Session(f"s{k}", k, arrival * HOUR, departure * HOUR, departure * HOUR, wh, phases, car_max, 1e6, 0.1, 0)
        )
    site = Site(tuple(nodes), tuple(stations), tuple(evses), {"feeder": math.inf})
    return Workload(site, tuple(demand), DAY_START, 0, WorkloadConfig(evse_count=len(sessions)), 0)


# --- end to end -----------------------------------------------------------------------------------------------


def test_quick_run_writes_report_and_plots(tmp_path: Path) -> None:
    """--quick runs the sweep, speed and reaction end to end and writes a marked section, JSON and two plots."""
    report = tmp_path / "BENCH.md"
    report.write_text("# Benchmarks\n\nhand-written text\n")
    code = run_scheduling.main(
        ["--quick", "--output", str(report), "--image-dir", str(tmp_path), "--results-dir", str(tmp_path)]
    )
    assert code == 0
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written text\n")
    assert text.count(BEGIN_MARK) == 1 and text.count(END_MARK) == 1
    for heading in ("### Targets (issue 4)", "### Every metric", "### Re-plan time", "EDF", "LLF", "equal share"):
        assert heading in text
    # Speed is reported against EDF on the same network in the same run: EDF's own row reads 1.00x.
    assert "| p50 / EDF's | p99 / EDF's |" in text and "| 1.00x | 1.00x |" in text
    assert (tmp_path / "scheduling-energy-vs-limit-quick.png").stat().st_size > 10_000
    assert len(list(tmp_path.glob("scheduling-*-quick.json"))) == 1
    run_scheduling.main(
        [
            "--quick",
            "--output",
            str(report),
            "--image-dir",
            str(tmp_path),
            "--results-dir",
            str(tmp_path),
            "--no-speed",
            "--no-reaction",
        ]
    )
    assert report.read_text().count(BEGIN_MARK) == 1  # a second run replaces its section


# --- workload -------------------------------------------------------------------------------------------------


def test_inverse_cdf_hits_the_quantiles() -> None:
    """The piecewise-linear inverse CDF returns each given quantile at its probability."""
    quantiles = ((0.0, 1.0), (0.5, 2.0), (1.0, 10.0))
    assert inverse_cdf(quantiles, np.array([0.0, 0.25, 0.5, 0.75, 1.0])).tolist() == [1.0, 1.5, 2.0, 6.0, 10.0]


def test_workload_is_seeded_and_shaped_like_the_spec() -> None:
    """A seed is a day; sessions per EVSE, fleet share and the 3-level tree follow the configuration."""
    config = WorkloadConfig(evse_count=400)
    day = generate_day(config, seed=5)
    assert day == generate_day(config, seed=5)
    assert generate_day(config, seed=6).sessions != day.sessions
    assert 0.55 < len(day.sessions) / 400 < 0.9
    assert 0.1 < np.mean([s.priority is Priority.FLEET for s in day.sessions]) < 0.3
    assert {s.car_phases for s in day.sessions} == {1, 3}
    assert all(s.arrival_s < s.departure_s and s.estimated_departure_s > s.arrival_s for s in day.sessions)
    assert all(s.initial_soc + s.requested_wh / s.capacity_wh <= 1.0 + 1e-9 for s in day.sessions)
    parents = {n.id: n.parent_id for n in day.site.nodes}
    assert all(parents[parents[st.id]] == SITE_ID for st in day.site.stations)  # station -> feeder -> site
    busy = {}
    for s in sorted(day.sessions, key=lambda s: s.arrival_s):
        assert busy.get(s.evse, 0.0) <= s.arrival_s  # one car per EVSE at a time
        busy[s.evse] = s.departure_s


# --- simulator ------------------------------------------------------------------------------------------------


def test_uncontrolled_without_a_limit_delivers_all_feasible_energy() -> None:
    """No limit, no control: every car gets what it could take alone in its stay, and no more."""
    day = generate_day(WorkloadConfig(evse_count=30), seed=3)
    result = simulate(day, LimitKind.PHASE, math.inf, None)
    for i, session in enumerate(day.sessions):
        _, draws = standalone_draws(day, session, 10.0)
        alone = draws.sum() * VOLTAGE_V * session.car_phases * 10.0 / HOUR
        assert result.delivered_wh[i] == pytest.approx(alone, rel=1e-9, abs=1e-6)
        assert result.delivered_wh[i] <= session.requested_wh + 1e-6
    assert result.delivered_wh.sum() > 0.9 * result.requested_wh.sum()
    assert result.control.writes == 0


def test_measured_load_is_the_sum_of_session_draws() -> None:
    """A 3-phase 16 A car and a 1-phase 32 A car on a rotated station: the site sees 16/48/16 A while both charge."""
    day = tiny_workload([(8.0, 10.0, 3, 16.0, 1e5), (9.0, 10.0, 1, 32.0, 1e5)], rotations=((1, 2, 3), (2, 3, 1)))
    result = simulate(day, LimitKind.PHASE, math.inf, None)
    hour = lambda h: round(h * HOUR / result.step_s)  # noqa: E731
    assert result.site_load[hour(8.5)].tolist() == [16.0, 16.0, 16.0, 16.0 * 3 * VOLTAGE_V]
    assert result.site_load[hour(9.5)].tolist() == [16.0, 48.0, 16.0, (16.0 * 3 + 32.0) * VOLTAGE_V]
    energy = result.site_load[:, 3].sum() * result.step_s / HOUR
    assert energy == pytest.approx(result.delivered_wh.sum())
    assert result.delivered_wh.tolist() == pytest.approx([16 * 3 * VOLTAGE_V * 2, 32 * VOLTAGE_V])


def test_controlled_day_keeps_limits_and_conserves_energy() -> None:
    """EDF on a real-shaped day at 20%: no plan breaks a limit, no overload outside the apply window, and the
    energy the meter saw is the energy the cars got."""
    day = generate_day(WorkloadConfig(evse_count=40), seed=2)
    free = simulate(day, LimitKind.PHASE, math.inf, None)
    result = simulate(day, LimitKind.PHASE, 0.2 * free.site_load[:, :3].max(), edf)
    assert result.control.infeasible_plans == 0 and result.control.bad_pilots == 0
    assert sum(level.violation_beyond_s.sum() for level in result.levels) == 0
    assert result.levels[0].settled_peak_ratio.max() <= 1.0 + 1e-9
    phase_energy = result.site_load[:, :3].sum() * VOLTAGE_V * result.step_s / HOUR
    assert phase_energy == pytest.approx(result.delivered_wh.sum())
    site_all, site_beyond = violation_seconds(
        result.site_load[:, :3], result.site_limit[:, None], result.step_s, result.excused
    )
    assert site_all == result.levels[0].violation_s.sum()
    # The simulator also leaves out what the unsteerable stations break on their own.
    assert site_beyond >= result.levels[0].violation_beyond_s.sum()
    assert 0 < result.control.writes


class Recorder:
    """A scheduler that remembers every snapshot it was given and plans with EDF."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []

    def __call__(self, snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
        self.snapshots.append(snapshot)
        return edf(snapshot, now, settings)


def test_rejecting_station_is_planned_as_fixed() -> None:
    """A station that rejects profiles is passed as fixed_a: from boot if it rejected the boot profile, else after
    its first rejection; it draws its maximum all along."""
    day = tiny_workload([(8.0, 9.0, 3, 16.0, 1e5)], behaviour=Behaviour.REJECTS)
    for at_boot in (True, False):
        recorder = Recorder()
        result = simulate(day, LimitKind.PHASE, 100.0, recorder, SimConfig(know_rejecting_at_boot=at_boot))
        fixed = [s.sessions[0].fixed_a for s in recorder.snapshots]
        assert 16.0 <= (fixed[-1] or 0) <= 17.0  # learned from the meter: the car takes 16 of the station's 32 A
        assert (fixed[0] is None) is (not at_boot)
        assert result.control.rejected_writes == (0 if at_boot else 1)
        assert result.delivered_wh[0] == pytest.approx(16 * 3 * VOLTAGE_V)


def test_station_ignoring_its_limit_is_caught() -> None:
    """A station that accepts profiles but lets the car draw more is flagged and planned around as fixed."""
    day = tiny_workload([(8.0, 9.0, 1, 32.0, 1e5)], behaviour=Behaviour.IGNORES)
    recorder = Recorder()
    result = simulate(day, LimitKind.PHASE, 20.0, recorder)
    assert result.control.flagged_stations == 1
    assert recorder.snapshots[-1].sessions[0].fixed_a is not None


def test_learned_maximum_follows_a_slow_car() -> None:
    """A car that takes 16 A on a 32 A EVSE is planned at 16-17 A once the meter shows it (SimpleRampdown)."""
    day = tiny_workload([(8.0, 11.0, 1, 16.0, 1e5)])
    recorder = Recorder()
    simulate(day, LimitKind.PHASE, 100.0, recorder)
    assert recorder.snapshots[0].sessions[0].max_current_a == 32.0
    assert 16.0 <= recorder.snapshots[-1].sessions[0].max_current_a <= 17.0


# --- baselines ------------------------------------------------------------------------------------------------


def demand(sid: str, *, arrived_h: float, departure_h: float, energy_wh: float = 50_000.0) -> SessionDemand:
    return SessionDemand(
        id=sid,
        node_id="station",
        phases=(1,),
        max_current_a=16.0,
        arrived_at=NOW - timedelta(hours=arrived_h),
        energy_wh=energy_wh,
        departure=NOW + timedelta(hours=departure_h),
    )


def two_session_site(limit_a: float, *sessions: SessionDemand) -> Snapshot:
    return Snapshot((GridNode(SITE_ID, max_current_a=limit_a), GridNode("station", SITE_ID)), tuple(sessions))


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (fcfs, {"early-arrival": 16.0, "early-departure": 0.0}),
        (edf, {"early-arrival": 0.0, "early-departure": 16.0}),
        (llf, {"early-arrival": 16.0, "early-departure": 0.0}),  # the early arrival needs 12 h, has 13 h
        (round_robin, {"early-arrival": 10.0, "early-departure": 10.0}),
    ],
)
def test_baselines_order_sessions_as_acnportal_does(scheduler: object, expected: dict[str, float]) -> None:
    """FCFS serves the first arrival, EDF the first departure, LLF the least laxity, RR shares 1 A at a time."""
    snapshot = two_session_site(
        20.0,
        demand("early-arrival", arrived_h=2.0, departure_h=13.0, energy_wh=16 * 230 * 12),
        demand("early-departure", arrived_h=1.0, departure_h=3.0, energy_wh=16 * 230 * 1),
    )
    plan = scheduler(snapshot, NOW, SchedulerSettings())  # type: ignore[operator]
    assert {sid: p.current_a for sid, p in plan.sessions.items()} == expected


@pytest.mark.parametrize("kind", list(LimitKind))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_baselines_keep_every_limit_with_valid_pilots(kind: LimitKind, seed: int) -> None:
    """Random busy sites: every baseline's currents are 0 or whole amps in [6, max] and fit every constraint."""
    snapshot, now = plugged_in_snapshot(60, seed, kind, limit_fraction=0.25)
    settings = SchedulerSettings()
    network = compile_network(snapshot, now, now + settings.slot)
    capacity = network.capacities_between(now, now + settings.slot)
    for scheduler in BASELINES.values():
        plan = scheduler(snapshot, now, settings)
        rates = [plan.current_a(s.id) for s in network.sessions]
        for session, rate in zip(network.sessions, rates, strict=True):
            assert rate == 0 or (rate == int(rate) and 6 <= rate <= session.max_current_a)
        for constraint, room in zip(network.constraints, capacity, strict=True):
            load = sum(rates[i] * c for i, c in zip(constraint.members, constraint.coefficients, strict=True))
            assert load <= max(room, 0.0) + 1e-6
        assert sum(rates) > 0


# --- offline optimum ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "limit", "expected_wh"), [(LimitKind.PHASE, 10.0, 4600.0), (LimitKind.POWER, 1150.0, 2300.0)]
)
def test_offline_lp_on_a_hand_case(kind: LimitKind, limit: float, expected_wh: float) -> None:
    """One single-phase car for 2 h under a 10 A (or 1,150 W) site limit gets exactly the limit for 2 h."""
    day = tiny_workload([(8.0, 10.0, 1, 16.0, 100_000.0)])
    assert solve_offline(day, kind, limit).energy_wh == pytest.approx(expected_wh, rel=1e-6)


def test_offline_lp_bounds_what_the_cars_can_take() -> None:
    """With no limit the LP gets what uncontrolled charging gets, give or take its 5-min taper steps."""
    day = generate_day(WorkloadConfig(evse_count=30), seed=4)
    free = simulate(day, LimitKind.PHASE, math.inf, None)
    optimum = solve_offline(day, LimitKind.PHASE, math.inf)
    assert optimum.status == "Optimal"
    assert free.delivered_wh.sum() <= optimum.energy_wh * (1 + 1e-6)
    assert optimum.energy_wh <= free.delivered_wh.sum() * 1.01
    assert optimum.energy_wh <= free.requested_wh.sum() + 1e-6
    tight = solve_offline(day, LimitKind.PHASE, 0.1 * free.site_load[:, :3].max())
    assert tight.energy_wh < optimum.energy_wh
    fleet = np.array([s.priority is Priority.FLEET for s in day.sessions])
    assert tight.fleet_energy_wh >= tight.delivered_wh[fleet].sum() - 1e-3  # its own optimum is the most it gets


# --- metrics --------------------------------------------------------------------------------------------------


def test_jain_index_hand_cases() -> None:
    """Jain's index is 1 for equal shares, 1/n when one session has everything."""
    assert jain_index(np.array([1.0, 1.0, 1.0, 1.0])) == 1.0
    assert jain_index(np.array([1.0, 0.0, 0.0, 0.0])) == 0.25
    assert jain_index(np.array([1.0, 0.5])) == pytest.approx(0.9)
    assert jain_index(np.array([])) == 1.0


def test_violation_seconds_hand_case() -> None:
    """Steps above the limit count their length; the excused ones only in the first total."""
    loads = np.array([[5.0, 1.0], [11.0, 1.0], [12.0, 12.0], [9.0, 1.0]])
    excused = np.array([False, True, False, False])
    assert violation_seconds(loads, np.array([10.0, 10.0]), 10.0, excused) == (30.0, 20.0)


def test_fully_served_share_hand_case() -> None:
    """At least 99% of the request counts as served; asking for nothing counts as served."""
    delivered = np.array([99.0, 98.9, 0.0, 5.0])
    requested = np.array([100.0, 100.0, 0.0, 10.0])
    assert fully_served_share(delivered, requested) == 0.5


def test_the_ideal_bound_reports_every_point_and_planner(capsys: pytest.CaptureFixture[str]) -> None:
    """With every non-ideality gone each planner still stays within the offline optimum (an upper bound)."""
    from benchmarks.scheduling import ideal_bound

    assert ideal_bound.main(["--days", "1", "--evses", "16", "--minimum-days", "1", "--time-limit", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    planners = [line for line in lines if "% of the optimum" in line]
    checks = [line for line in lines if "6 A minimum" in line]
    assert len(planners) == len(ideal_bound.POINTS) * (len(ideal_bound.PLANNERS) + 1)
    assert sum(ideal_bound.TOLD_THE_FUTURE in line for line in planners) == len(ideal_bound.POINTS)
    for line in planners:
        of_optimum = float(line.split("% of demand, ")[1].split("% of the optimum")[0])
        assert 0 < of_optimum <= 100.5, line
    # The MILP is a restriction of the LP: its schedule and its bound are both at most the LP's optimum.
    assert len(checks) == len(ideal_bound.POINTS)
    for line in checks:
        low, high = (float(x) for x in line.split("optimum is ")[1].split("% of")[0].split("-"))
        assert 0 < low <= high <= 100.01, line  # (the solvers' tolerances)
