"""Reaction to a limit cut: how long until a busy site's measured load is under the new limit.

In process (no API or websockets): at 10:30 on a simulated weekday the site's per-phase limit drops from 70% to
30% of the day's uncontrolled peak. The controller re-plans at once (a limit change skips the debounce) and writes
decreases; they reach the cars after the apply latency. The reaction is the simulated time from the cut until
the site's load stays under the new limit (1 s steps), plus the wall time the controller took for that re-plan
(simulated time stands still while it computes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.scheduling.config import Scheduler, SimConfig
from benchmarks.scheduling.fleet_sim import simulate
from benchmarks.scheduling.workload import LimitKind, WorkloadConfig, generate_day

__all__ = ["ReactionResult", "measure_reaction"]


@dataclass(frozen=True, slots=True)
class ReactionResult:
    stations: int
    evses: int
    active_sessions: int  # cars plugged in at the cut
    limit_before_a: float
    limit_after_a: float
    latency_s: float
    settle_s: float  # simulated: from the cut until the load stays under the new limit
    replan_ms: float  # wall time of the controller's re-plan at the cut
    reaction_s: float  # settle_s + replan_ms
    violation_beyond_s: float  # over the whole run, outside apply windows


def measure_reaction(
    scheduler: Scheduler,
    evse_count: int = 1500,
    seed: int = 11,
    cut_at_h: float = 10.5,
    before: float = 0.7,
    after: float = 0.3,
    latency_s: float = 10.0,
) -> ReactionResult:
    workload = generate_day(WorkloadConfig(evse_count=evse_count), seed)
    uncontrolled = simulate(workload, LimitKind.PHASE, float("inf"), None, SimConfig(check_plans=False))
    peak = float(uncontrolled.site_load[:, :3].max())
    cut_s = cut_at_h * 3600.0
    config = SimConfig(
        step_s=1.0,
        apply_latency_s=latency_s,
        check_plans=False,
        limit_changes=((cut_s, after * peak),),
        end_s=cut_s + 900.0,
    )
    result = simulate(workload, LimitKind.PHASE, before * peak, scheduler, config)
    cut_step = round(cut_s / config.step_s)
    over = (result.site_load[cut_step:, :3] > after * peak + 1e-6).any(axis=1)
    late = np.flatnonzero(over)
    settle_steps = int(late[-1]) + 1 if late.size else 0
    control = result.control
    at_cut = [s for step, s in zip(control.replan_steps, control.control_s, strict=True) if step == cut_step]
    replan_ms = 1000.0 * at_cut[0] if at_cut else float("nan")
    active = sum(1 for s in workload.sessions if s.arrival_s <= cut_s < s.departure_s)
    return ReactionResult(
        stations=len(workload.site.stations),
        evses=len(workload.site.evses),
        active_sessions=active,
        limit_before_a=before * peak,
        limit_after_a=after * peak,
        latency_s=latency_s,
        settle_s=settle_steps * config.step_s,
        replan_ms=replan_ms,
        reaction_s=settle_steps * config.step_s + replan_ms / 1000.0,
        violation_beyond_s=float(sum(level.violation_beyond_s.sum() for level in result.levels)),
    )
