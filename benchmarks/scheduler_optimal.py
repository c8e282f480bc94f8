"""Timing of the optimal planner (``csms.scheduler.optimal``) on random sites; no assertions, just numbers.

A site (per-phase and power limit) feeds 10 feeders (per-phase limits) feeding 2-EVSE stations (32 A per phase);
60% of sessions are three-phase, the rest single-phase on a random phase; 20% are FLEET priority; a fifth have
no departure and a fifth no energy. Limits are set so that roughly half of what the cars could draw fits.

    .venv/bin/python -m benchmarks.scheduler_optimal --sessions 100 1000 10000 [--repeat 20] [--fairness]

``--workload acn`` times the scheduling benchmark's busy moment instead (``plugged_in_snapshot``: ACN-shaped
demand, 1-2 EVSE stations, 10 stations per feeder, the site limit at 30% of the nameplate).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from benchmarks.scheduling.workload import plugged_in_snapshot
from csms.domain.grid import GridNode, Priority
from csms.scheduler.model import SchedulerSettings, SessionDemand, Snapshot
from csms.scheduler.network import compile_network
from csms.scheduler.optimal import horizon_grid, plan_optimal, solve, uniform_grid

__all__ = ["random_site", "main"]

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def random_site(sessions: int, seed: int, now: datetime = NOW, future: bool = False) -> Snapshot:
    """A three-level site with ``sessions`` sessions; ``future`` spreads arrivals over the next 12 hours."""
    rng = random.Random(seed)
    stations = (sessions + 1) // 2
    nodes = [GridNode("site", max_current_a=sessions * 6.0, max_power_w=sessions * 6.0 * 230 * 2.7)]
    nodes += [GridNode(f"feeder{f}", "site", max_current_a=sessions / 10 * 9.0) for f in range(10)]
    nodes += [GridNode(f"station{s}", f"feeder{s % 10}", max_current_a=32.0) for s in range(stations)]
    demands = []
    for i in range(sessions):
        arrived = now + timedelta(hours=rng.uniform(0, 12)) if future else now - timedelta(hours=rng.uniform(0, 6))
        stay = timedelta(hours=rng.uniform(1, 10))
        phases = (1, 2, 3) if rng.random() < 0.6 else (rng.choice((1, 2, 3)),)
        demands.append(
            SessionDemand(
                id=f"s{i}",
                node_id=f"station{i // 2}",
                phases=phases,
                max_current_a=rng.choice((16.0, 32.0)),
                arrived_at=arrived,
                energy_wh=None if rng.random() < 0.2 else rng.uniform(2_000, 40_000),
                departure=None if rng.random() < 0.2 else max(arrived + stay, now + timedelta(minutes=10)),
                priority=Priority.FLEET if rng.random() < 0.2 else Priority.STANDARD,
                offered_a=rng.choice((None, 16.0)),
            )
        )
    return Snapshot(tuple(nodes), tuple(demands))


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_replans(sessions: int, repeat: int, fairness: bool, workload: str) -> None:
    settings = SchedulerSettings()
    walls: list[float] = []
    cpus: list[float] = []
    for run in range(repeat):
        if workload == "acn":
            snapshot, now = plugged_in_snapshot(sessions, seed=run)
        else:
            snapshot, now = random_site(sessions, seed=run), NOW + timedelta(minutes=run)
        wall, cpu = time.perf_counter(), time.process_time()
        if fairness:
            network = compile_network(snapshot, now, now + settings.horizon)
            solve(network, horizon_grid(now, settings, network), settings, fairness=True)
        else:
            plan_optimal(snapshot, now, settings)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    label = "solve(fairness)" if fairness else "plan_optimal"
    print(
        f"{sessions:>6} sessions ({workload}) {label}: wall p50 {statistics.median(walls) * 1000:7.1f} ms"
        f"  p99 {_p(walls, 0.99) * 1000:7.1f} ms  max {max(walls) * 1000:7.1f} ms;"
        f"  cpu p50 {statistics.median(cpus) * 1000:7.1f} ms  max {max(cpus) * 1000:7.1f} ms  ({repeat} runs)",
        flush=True,
    )


def time_offline(sessions: int, step_minutes: int) -> None:
    settings = SchedulerSettings()
    snapshot = random_site(sessions, seed=1, future=True)
    began = time.perf_counter()
    network = compile_network(snapshot, NOW, NOW + timedelta(hours=24))
    grid = uniform_grid(NOW, NOW + timedelta(hours=24), timedelta(minutes=step_minutes))
    solution = solve(network, grid, settings, early_weight=1e-6)
    elapsed = time.perf_counter() - began
    delivered = solution.energy_wh.sum() / 1000
    print(f"{sessions:>6} sessions offline day, {step_minutes}-min slots: {elapsed:6.2f} s, {delivered:,.0f} kWh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=0, help="re-plans per size (default: 30 / 10 / 5)")
    parser.add_argument("--fairness", action="store_true", help="time solve() with the fairness stage")
    parser.add_argument("--offline", type=int, default=0, help="also time an offline day with these minute slots")
    parser.add_argument("--workload", choices=("tree", "acn"), default="tree", help="acn: the scheduling benchmark's")
    args = parser.parse_args()
    for sessions in args.sessions:
        repeat = args.repeat or (30 if sessions <= 100 else 10 if sessions <= 1000 else 5)
        time_replans(sessions, repeat, args.fairness, args.workload)
        if args.offline:
            time_offline(sessions, args.offline)


if __name__ == "__main__":
    main()
