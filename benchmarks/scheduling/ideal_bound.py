"""How close our planners come to the offline optimum when every non-ideality is taken away at once.

``python -m benchmarks.scheduling.ideal_bound [--days N] [--minimum-days N]``: the scheduling benchmark's days and
limits (20% and 30% of each day's uncontrolled peak, per-phase and power), with exact departures, no rejecting
stations, no taper, phases known at plug-in, writes neither rate-limited nor delayed; the planners without a pace
margin or departure spread (departures are exact). Two checks of what the gap to the optimum is made of:

- our LP planner as MPC *told every car of the day in advance* (arrival, departure, energy, phases): if it does
  no better than without them, the gap is not what the controller does not know about the future;
- the offline optimum of the first ``--minimum-days`` days with every current 0 or at least 6 A for a whole slot
  (a MILP, ``solve_offline_with_minimum``): if it is as high as the LP's, the pilot's minimum is not what stands
  between any controller and the LP optimum.

Prints one line per (limit, planner) and per (limit, day) of the minimum check.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime, timedelta

from benchmarks.run_scheduling import uncontrolled_peaks
from benchmarks.scheduling.ablation import ideal_battery
from benchmarks.scheduling.config import Scheduler, SimConfig
from benchmarks.scheduling.fleet_sim import SimResult, simulate
from benchmarks.scheduling.metrics import pool
from benchmarks.scheduling.offline import OfflineResult, solve_offline, solve_offline_with_minimum
from benchmarks.scheduling.workload import VOLTAGE_V, LimitKind, Workload, WorkloadConfig, generate_day
from csms.scheduler.changes import ChangePolicy
from csms.scheduler.model import Plan, SchedulerSettings, SessionDemand, Snapshot
from csms.scheduler.optimal import plan_optimal
from csms.scheduler.realtime import plan_realtime

POINTS = ((LimitKind.PHASE, 0.2), (LimitKind.POWER, 0.2), (LimitKind.PHASE, 0.3), (LimitKind.POWER, 0.3))
IDEAL_SIM = SimConfig(
    record=False,
    phases_known_at_start=True,
    apply_latency_s=0.0,
    policy=ChangePolicy(threshold_a=0.0, min_interval=timedelta(0)),
)


def _realtime_without_margin(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    return plan_realtime(snapshot, now, replace(settings, pace_margin=timedelta(0)))


def _optimal_with_exact_departures(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    return plan_optimal(snapshot, now, replace(settings, departure_spread=timedelta(0)))


PLANNERS: dict[str, Scheduler] = {
    "ours: real-time": _realtime_without_margin,
    "ours: optimal (MPC)": _optimal_with_exact_departures,
}
TOLD_THE_FUTURE = "ours: optimal (MPC), told every car of the day in advance"


def told_the_future(workload: Workload) -> Scheduler:
    """Our LP planner with every car still to come that day in its snapshot as it will be (the LP keeps each one's
    current inside its window); the plan is cut back to the cars present."""
    start = workload.start
    every_car = [
        (
            s.arrival_s,
            SessionDemand(
                s.id,
                workload.station_of(s).id,
                workload.grid_phases(s),
                workload.max_current_a(s),
                start + timedelta(seconds=s.arrival_s),
                energy_wh=s.requested_wh,
                departure=start + timedelta(seconds=s.estimated_departure_s),
                priority=s.priority,
                voltage_v=VOLTAGE_V,
            ),
        )
        for s in workload.sessions
    ]

    def planner(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
        elapsed = (now - start).total_seconds()
        coming = tuple(demand for arrival_s, demand in every_car if arrival_s > elapsed)
        plan = _optimal_with_exact_departures(replace(snapshot, sessions=snapshot.sessions + coming), now, settings)
        present = {d.id for d in snapshot.sessions}
        return replace(plan, sessions={k: v for k, v in plan.sessions.items() if k in present})

    return planner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--evses", type=int, default=100)
    parser.add_argument("--minimum-days", type=int, default=3, help="days of the 6 A minimum check (MILP)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per MILP")
    args = parser.parse_args(argv)
    for kind, fraction in POINTS:
        runs: dict[str, list[SimResult]] = {name: [] for name in (*PLANNERS, TOLD_THE_FUTURE)}
        optima: list[OfflineResult] = []
        for seed in range(1, args.days + 1):
            # The limit is the same share of the benchmark's own day (with its estimate errors and rejections).
            benchmarked = generate_day(WorkloadConfig(evse_count=args.evses), seed)
            limit = fraction * uncontrolled_peaks(simulate(benchmarked, LimitKind.PHASE, float("inf"), None))[kind]
            ideal = WorkloadConfig(evse_count=args.evses, departure_error_h=0.0, reject_share=0.0)
            workload = ideal_battery(generate_day(ideal, seed))
            optima.append(solve_offline(workload, kind, limit))
            for name, planner in {**PLANNERS, TOLD_THE_FUTURE: told_the_future(workload)}.items():
                runs[name].append(simulate(workload, kind, limit, planner, IDEAL_SIM))
            if seed <= args.minimum_days:
                check = solve_offline_with_minimum(workload, kind, limit, time_limit_s=args.time_limit)
                print(
                    f"{kind.value} {100 * fraction:.0f}% day {seed}: with a 6 A minimum the optimum is "
                    f"{100 * check.incumbent_wh / check.lp_wh:.2f}-{100 * check.bound_wh / check.lp_wh:.2f}% of "
                    f"the LP's ({check.status}, {check.solve_s:.0f} s)",
                    flush=True,
                )
        for name, results in runs.items():
            m = pool(results, optima)
            print(
                f"{kind.value} {100 * fraction:.0f}% {name}: {m.energy_pct:.1f}% of demand, "
                f"{m.of_optimum_pct or 0:.1f}% of the optimum, {m.fully_served_pct:.1f}% fully served",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
