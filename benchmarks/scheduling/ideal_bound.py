"""How close our planners come to the offline optimum when every non-ideality is taken away at once.

``python -m benchmarks.scheduling.ideal_bound [--days N]``: the scheduling benchmark's days and limits (20% and
30% of each day's uncontrolled peak, per-phase and power), with exact departures, no rejecting stations, no taper,
phases known at plug-in, writes neither rate-limited nor delayed; the planners without a pace margin (departures
are exact). What is left between them and the optimum is what no controller here knows: the cars that have not
arrived yet, and the pilot's 6 A minimum and whole amps. Prints one line per (limit, planner).
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
from benchmarks.scheduling.offline import OfflineResult, solve_offline
from benchmarks.scheduling.workload import LimitKind, WorkloadConfig, generate_day
from csms.scheduler.changes import ChangePolicy
from csms.scheduler.model import Plan, SchedulerSettings, Snapshot
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


PLANNERS: dict[str, Scheduler] = {"ours: real-time": _realtime_without_margin, "ours: optimal (MPC)": plan_optimal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--evses", type=int, default=100)
    args = parser.parse_args(argv)
    for kind, fraction in POINTS:
        runs: dict[str, list[SimResult]] = {name: [] for name in PLANNERS}
        optima: list[OfflineResult] = []
        for seed in range(1, args.days + 1):
            # The limit is the same share of the benchmark's own day (with its estimate errors and rejections).
            benchmarked = generate_day(WorkloadConfig(evse_count=args.evses), seed)
            limit = fraction * uncontrolled_peaks(simulate(benchmarked, LimitKind.PHASE, float("inf"), None))[kind]
            ideal = WorkloadConfig(evse_count=args.evses, departure_error_h=0.0, reject_share=0.0)
            workload = ideal_battery(generate_day(ideal, seed))
            optima.append(solve_offline(workload, kind, limit))
            for name, planner in PLANNERS.items():
                runs[name].append(simulate(workload, kind, limit, planner, IDEAL_SIM))
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
