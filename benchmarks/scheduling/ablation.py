"""What each non-ideality costs: the same days and limits with one of them taken away at a time.

Variants change the workload (exact departures, no rejecting stations, an ideal battery) or the controller (writes
not rate-limited, the CSMS knowing each car's phases at plug-in, unsteerable stations planned at their hardware
maximum for the whole session as the runtime did before it metered them). Each variant
gets its own offline optimum, so "% of optimum" compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from benchmarks.scheduling.config import Scheduler, SimConfig
from benchmarks.scheduling.fleet_sim import SimResult, simulate
from benchmarks.scheduling.metrics import Metrics, pool
from benchmarks.scheduling.offline import OfflineResult, solve_offline
from benchmarks.scheduling.workload import LimitKind, Workload, WorkloadConfig, generate_day
from csms.scheduler.changes import ChangePolicy

__all__ = ["VARIANTS", "Variant", "ideal_battery", "run_ablation"]


def ideal_battery(workload: Workload) -> Workload:
    """Batteries so large that no car reaches the taper: the request is all that stops it."""
    sessions = tuple(
        replace(s, capacity_wh=10 * s.requested_wh + 100_000.0, initial_soc=0.1) for s in workload.sessions
    )
    return replace(workload, sessions=sessions)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    config: Callable[[WorkloadConfig], WorkloadConfig] = lambda c: c
    workload: Callable[[Workload], Workload] = lambda w: w
    sim: SimConfig = SimConfig(record=False)


VARIANTS = (
    Variant("as benchmarked"),
    Variant("exact departures", config=lambda c: replace(c, departure_error_h=0.0)),
    Variant("no rejecting stations", config=lambda c: replace(c, reject_share=0.0)),
    Variant("ideal battery (no taper)", workload=ideal_battery),
    Variant(
        "writes not rate-limited",
        sim=SimConfig(record=False, policy=ChangePolicy(threshold_a=0.0, min_interval=timedelta(0))),
    ),
    Variant("phases known at plug-in", sim=SimConfig(record=False, phases_known_at_start=True)),
    Variant("unsteerable planned at hardware max all session", sim=SimConfig(record=False, fixed_at_hardware_max=True)),
)


def run_ablation(
    evse_count: int,
    seeds: Sequence[int],
    points: Sequence[tuple[LimitKind, float]],
    algorithms: dict[str, Scheduler],
    peaks: dict[int, dict[LimitKind, float]],
    log: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, str, float, str], Metrics]:
    """(variant, kind, fraction, algorithm) -> metrics; limits are the same watts/amps as in the main sweep."""
    runs: dict[tuple[str, str, float, str], list[SimResult]] = {}
    optima: dict[tuple[str, str, float], list[OfflineResult]] = {}
    for variant in VARIANTS:
        for seed in seeds:
            workload = variant.workload(generate_day(variant.config(WorkloadConfig(evse_count=evse_count)), seed))
            for kind, fraction in points:
                limit = fraction * peaks[seed][kind]
                optima.setdefault((variant.name, kind.value, fraction), []).append(solve_offline(workload, kind, limit))
                for name, scheduler in algorithms.items():
                    key = (variant.name, kind.value, fraction, name)
                    runs.setdefault(key, []).append(simulate(workload, kind, limit, scheduler, variant.sim))
        log(f"ablation: {variant.name} done")
    return {key: pool(results, optima[key[:3]]) for key, results in runs.items()}
