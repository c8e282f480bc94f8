"""Re-plan time at scale: every EVSE of a 3-level site has a car (``workload.plugged_in_snapshot``).

Bounded: each (algorithm, size) stops after ``repeat`` calls or once ``budget_s`` is spent, whichever is first,
so a slow algorithm costs minutes, not hours. With few calls the p99 is close to the maximum: say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchmarks.scheduling.config import Scheduler
from benchmarks.scheduling.workload import LimitKind, plugged_in_snapshot
from csms.scheduler.model import SchedulerSettings
from csms.scheduler.network import compile_network

__all__ = ["SpeedResult", "time_scheduler"]


@dataclass(frozen=True, slots=True)
class SpeedResult:
    algorithm: str
    sessions: int
    constraints: int
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def time_scheduler(
    name: str,
    scheduler: Scheduler,
    sessions: int,
    *,
    repeat: int,
    budget_s: float,
    seed: int = 7,
    kind: LimitKind = LimitKind.PHASE,
    settings: SchedulerSettings | None = None,
) -> SpeedResult:
    settings = settings or SchedulerSettings()
    snapshot, now = plugged_in_snapshot(sessions, seed, kind)
    constraints = len(compile_network(snapshot, now, now + settings.slot).constraints)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        scheduler(snapshot, now, settings)
        times.append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    ms = np.array(times) * 1000.0
    return SpeedResult(
        name,
        sessions,
        constraints,
        len(times),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.max()),
    )
