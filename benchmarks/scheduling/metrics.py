"""Quality metrics of simulated days (research/scheduling-anchors.md §6), pooled over the days of a sweep point.

Pooled, not averaged per day: the sessions of all days count as one population (like acnportal's month-long
runs), so a quiet day does not weigh as much as a busy one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.scheduling.fleet_sim import SimResult
from benchmarks.scheduling.offline import OfflineResult

__all__ = [
    "FULLY_SERVED",
    "Metrics",
    "fully_served_share",
    "jain_index",
    "pool",
    "served_ratios",
    "violation_seconds",
]

FULLY_SERVED = 0.99  # a session got at least this share of what it asked for


def jain_index(values: np.ndarray) -> float:
    """(sum x)^2 / (n sum x^2): 1 when all are equal, 1/n when one has everything; 1 for no or all-zero values."""
    x = np.asarray(values, dtype=float)
    square_sum = float((x * x).sum())
    return 1.0 if x.size == 0 or square_sum == 0.0 else float(x.sum() ** 2 / (x.size * square_sum))


def served_ratios(delivered_wh: np.ndarray, requested_wh: np.ndarray) -> np.ndarray:
    """Delivered / requested per session, capped at 1 (a session asking for nothing counts as served)."""
    requested = np.asarray(requested_wh, dtype=float)
    ratio = np.divide(delivered_wh, requested, out=np.ones_like(requested), where=requested > 0)
    capped: np.ndarray = np.minimum(ratio, 1.0)
    return capped


def fully_served_share(delivered_wh: np.ndarray, requested_wh: np.ndarray) -> float:
    ratios = served_ratios(delivered_wh, requested_wh)
    return float((ratios >= FULLY_SERVED - 1e-12).mean()) if ratios.size else 1.0


def violation_seconds(
    loads: np.ndarray, limits: np.ndarray, step_s: float, excused: np.ndarray, tolerance: float = 1e-6
) -> tuple[float, float]:
    """(all, beyond the apply window) seconds x limits broken; ``loads`` (steps, columns) against ``limits``
    (columns, or steps x columns), ``excused`` (steps) marking the steps inside an apply window."""
    over = np.asarray(loads) > np.asarray(limits) + tolerance
    per_step = over.reshape(over.shape[0], -1).sum(axis=1) * step_s
    return float(per_step.sum()), float(per_step[~np.asarray(excused, dtype=bool)].sum())


@dataclass(frozen=True, slots=True)
class Metrics:
    days: int
    sessions: int
    energy_pct: float  # delivered / requested
    of_optimum_pct: float | None  # delivered / the offline LP optimum
    fully_served_pct: float
    fleet_fill_pct: float  # the priority class: delivered / requested
    fleet_of_optimum_pct: float | None  # the priority class: delivered / the most the LP can give it
    peak_ratio: float  # the site's highest measured load / its limit (any phase, or W)
    settled_peak_ratio: float  # the same outside apply windows and where the unsteerable stations alone fit
    feeder_peak_ratio: float
    violation_s: float  # seconds x node limits broken, summed over nodes and phases
    violation_beyond_s: float  # the same, outside the apply window after arrivals and limit changes, and not
    # where unsteerable stations alone break the limit
    violation_unavoidable_s: float  # where unsteerable stations alone break the limit
    jain: float  # over delivered / requested of every session
    ratio_min: float
    ratio_p10: float
    writes_per_evse_hour: float  # per hour an EVSE had a car
    replan_p50_ms: float
    replan_p99_ms: float
    replans: int
    infeasible_plans: int
    bad_pilots: int


def _site_column(result: SimResult) -> slice:
    return slice(3, 4) if result.kind == "power" else slice(0, 3)


def pool(results: Sequence[SimResult], optima: Sequence[OfflineResult | None]) -> Metrics:
    """The metrics of one algorithm at one sweep point over several days (``optima`` aligned with ``results``)."""
    delivered = np.concatenate([r.delivered_wh for r in results])
    requested = np.concatenate([r.requested_wh for r in results])
    fleet = np.concatenate([r.fleet for r in results])
    ratios = served_ratios(delivered, requested)
    known = [o for o in optima if o is not None]
    optimum = sum(o.energy_wh for o in known) if len(known) == len(results) else None
    fleet_optimum = sum(o.fleet_energy_wh for o in known) if len(known) == len(results) else None
    replan_ms = np.array([t for r in results for t in r.control.replan_s]) * 1000.0
    site = [r.levels[0] for r in results]
    feeders = [r.levels[1] for r in results]
    return Metrics(
        days=len(results),
        sessions=int(delivered.size),
        energy_pct=100.0 * delivered.sum() / requested.sum(),
        of_optimum_pct=100.0 * delivered.sum() / optimum if optimum else None,
        fully_served_pct=100.0 * fully_served_share(delivered, requested),
        fleet_fill_pct=100.0 * delivered[fleet].sum() / requested[fleet].sum() if fleet.any() else 100.0,
        fleet_of_optimum_pct=100.0 * delivered[fleet].sum() / fleet_optimum if fleet_optimum else None,
        peak_ratio=max(float(s.peak_ratio[:, _site_column(r)].max()) for s, r in zip(site, results, strict=True)),
        settled_peak_ratio=max(
            float(s.settled_peak_ratio[:, _site_column(r)].max()) for s, r in zip(site, results, strict=True)
        ),
        feeder_peak_ratio=max(float(f.peak_ratio.max()) for f in feeders),
        violation_s=float(sum(level.violation_s.sum() for r in results for level in r.levels)),
        violation_beyond_s=float(sum(level.violation_beyond_s.sum() for r in results for level in r.levels)),
        violation_unavoidable_s=float(sum(level.unavoidable_s.sum() for r in results for level in r.levels)),
        jain=jain_index(ratios),
        ratio_min=float(ratios.min()) if ratios.size else 1.0,
        ratio_p10=float(np.percentile(ratios, 10)) if ratios.size else 1.0,
        writes_per_evse_hour=sum(r.control.writes for r in results) / max(sum(r.plugged_h for r in results), 1e-9),
        replan_p50_ms=float(np.percentile(replan_ms, 50)) if replan_ms.size else 0.0,
        replan_p99_ms=float(np.percentile(replan_ms, 99)) if replan_ms.size else 0.0,
        replans=sum(r.control.replans for r in results),
        infeasible_plans=sum(r.control.infeasible_plans for r in results),
        bad_pilots=sum(r.control.bad_pilots for r in results),
    )
