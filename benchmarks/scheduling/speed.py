"""Re-plan time at scale: every EVSE of a 3-level site has a car (``workload.plugged_in_snapshot``).

Bounded: each (algorithm, size) stops after ``repeat`` calls or once ``budget_s`` is spent, whichever is first,
so a slow algorithm costs minutes, not hours. With few calls the p99 is close to the maximum: say so. Each
call gets fresh session objects with a little less energy left (a later re-plan), never the same snapshot twice.
Two more calls, outside the percentiles, see the tree change as the runtime hands it over: a new tuple with the
site's limit edited (1% lower: what a limit cut or a reported unmanaged load looks like), then one with a node
added (a new feeder under the site: every cache keyed on the tree's structure misses).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from benchmarks.scheduling.config import Scheduler
from benchmarks.scheduling.workload import LimitKind, plugged_in_snapshot
from csms.domain.grid import GridNode
from csms.scheduler.model import SchedulerSettings, Snapshot
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
    limit_edit_ms: float  # the first call after the site's limit changed
    node_added_ms: float  # the first call after a node was added


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
    for call in range(max(repeat, 1)):
        # Every call gets new session objects with less energy left, as the runtime's next snapshot would: no
        # cache keyed on the objects themselves can answer it (the tree is the same tuple, as in the runtime).
        fresh = _five_minutes_later(snapshot, call)
        started = time.perf_counter()
        scheduler(fresh, now, settings)
        times.append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    site, *below = snapshot.nodes
    edited = (_scaled_limit(site, 0.99), *below)
    added = (*edited, replace(below[0], id="added-feeder", parent_id=site.id))
    changed = []
    for nodes in (edited, added):
        tree_changed = replace(_five_minutes_later(snapshot, len(times) + len(changed)), nodes=nodes)
        started = time.perf_counter()
        scheduler(tree_changed, now, settings)
        changed.append((time.perf_counter() - started) * 1000.0)
    ms = np.array(times) * 1000.0
    return SpeedResult(
        name,
        sessions,
        constraints,
        len(times),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.max()),
        *changed,
    )


def _scaled_limit(node: GridNode, factor: float) -> GridNode:
    return replace(
        node,
        max_current_a=None if node.max_current_a is None else node.max_current_a * factor,
        max_power_w=None if node.max_power_w is None else node.max_power_w * factor,
    )


def _five_minutes_later(snapshot: Snapshot, calls: int) -> Snapshot:
    """The snapshot after ``calls`` re-plans 5 minutes apart: each session has drawn 5 minutes at 6 A more."""
    if not calls:
        return replace(snapshot, sessions=tuple(replace(s) for s in snapshot.sessions))
    sessions = tuple(
        replace(s, energy_wh=max(0.0, s.energy_wh - calls * 6.0 * s.voltage_v * len(s.phases) / 12))
        if s.energy_wh is not None
        else replace(s)
        for s in snapshot.sessions
    )
    return replace(snapshot, sessions=sessions)
