"""A simulated charging day, in process and in discrete time: cars, stations, the meter and the controller.

Each step (10 s by default): the site limit may change; cars leave and arrive at their true times; the controller
(our runtime's logic, ``controller.py``) may re-plan and write limits; writes reach obeying stations after the
apply latency (a rejecting station answers Rejected on the next step; an ignoring one accepts and does nothing);
every car draws min(pilot, on-board charger, taper, what it still wants) with no draw below a 6 A pilot; and the
meter records every node's load per phase against its limits.

``scheduler=None`` is uncontrolled charging: no profiles at all, every station at its hardware maximum.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from benchmarks.scheduling.cars import car_draw
from benchmarks.scheduling.config import Scheduler, SimConfig
from benchmarks.scheduling.controller import Controller, ControlStats
from benchmarks.scheduling.topology import Topology
from benchmarks.scheduling.workload import VOLTAGE_V, Behaviour, LimitKind, Workload, with_site_limit

__all__ = ["LevelStats", "SimResult", "simulate"]


@dataclass(slots=True)
class LevelStats:
    name: str
    node_ids: list[str]
    violation_s: np.ndarray  # (nodes, 4): seconds above each limit (L1..L3, W)
    violation_beyond_s: np.ndarray  # the same, outside the apply window after arrivals and limit changes, and
    # not where the stations that cannot be steered break the limit on their own (no controller can help that)
    unavoidable_s: np.ndarray  # the seconds where they do
    peak_ratio: np.ndarray  # (nodes, 4): highest load / limit (0 where unlimited)
    settled_peak_ratio: np.ndarray  # the same outside apply windows and where the unsteerable alone fit


@dataclass(slots=True)
class SimResult:
    kind: LimitKind
    limit: float
    step_s: float
    window_s: float
    evse_count: int
    requested_wh: np.ndarray
    delivered_wh: np.ndarray
    fleet: np.ndarray  # bool per session: the priority class
    plugged_h: float  # hours EVSEs had a car, summed
    levels: list[LevelStats]
    control: ControlStats = field(default_factory=ControlStats)
    site_load: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # per step: L1..L3 (A), W
    site_limit: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per step, in the kind's unit
    excused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per step: in an apply window
    # Per step: what the cars present could draw at their EVSE's maximum (L1..L3, W): demand, for diagnosis.
    site_wanted: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


def _inverse(limits: np.ndarray) -> np.ndarray:
    """1 / limit, and 0 where a node has no limit (so its load/limit ratio reads 0)."""
    inverse: np.ndarray = np.divide(1.0, limits, out=np.zeros_like(limits), where=np.isfinite(limits) & (limits > 0))
    return inverse


def _steps(seconds: float, step_s: float) -> int:
    return math.ceil(seconds / step_s - 1e-9)


def simulate(
    workload: Workload, kind: LimitKind, limit: float, scheduler: Scheduler | None, config: SimConfig | None = None
) -> SimResult:
    config = config or SimConfig()
    sessions = workload.sessions
    n = len(sessions)
    dt = config.step_s
    step_h = dt / 3600.0
    behaviour = [workload.station_of(s).behaviour for s in sessions]
    hardware = np.array([workload.station_of(s).max_current_a for s in sessions])
    car_max = np.array([s.car_max_a for s in sessions])
    watts = np.array([VOLTAGE_V * s.car_phases for s in sessions])
    phase_matrix = np.array([[1.0 if p in workload.grid_phases(s) else 0.0 for p in (1, 2, 3)] for s in sessions])
    phase_matrix = phase_matrix.reshape(n, 3)
    requested = np.array([s.requested_wh for s in sessions])
    capacity = np.array([s.capacity_wh for s in sessions])
    soc0 = np.array([s.initial_soc for s in sessions])

    topology = Topology(workload, with_site_limit(workload.site, kind, limit))
    controller = Controller(workload, kind, limit, scheduler, config) if scheduler is not None else None
    end_s = config.end_s if config.end_s is not None else workload.end_s
    n_steps = _steps(end_s, dt)
    arrivals: dict[int, list[int]] = defaultdict(list)
    departures: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sessions):
        first, last = _steps(s.arrival_s, dt), _steps(s.departure_s, dt)
        if last > first:  # a stay shorter than a step never plugs in
            arrivals[first].append(i)
            departures[last].append(i)
    limit_changes = {_steps(t, dt): value for t, value in config.limit_changes}

    active = np.zeros(n, dtype=bool)
    pilot = np.zeros(n)
    delivered = np.zeros(n)
    last_draw = np.zeros(n)
    applies: dict[int, list[tuple[int, float]]] = defaultdict(list)
    replies: dict[int, list[int]] = defaultdict(list)
    excused_until = -1
    violation = np.zeros((topology.size, 4))
    beyond = np.zeros((topology.size, 4))
    unavoidable = np.zeros((topology.size, 4))
    unsteerable = np.array([b is not Behaviour.OBEYS for b in behaviour], dtype=float)
    peak = np.zeros((topology.size, 4))
    settled_peak = np.zeros((topology.size, 4))
    site_load = np.zeros((n_steps if config.record else 0, 4))
    site_limit = np.full(n_steps if config.record else 0, limit)
    excused = np.zeros(n_steps if config.record else 0, dtype=bool)
    site_wanted = np.zeros((n_steps if config.record else 0, 4))
    current_limit = limit
    inverse_limit = _inverse(topology.limits)

    for k in range(n_steps):
        if k in limit_changes:
            current_limit = limit_changes[k]
            topology.set_limits(with_site_limit(workload.site, kind, current_limit))
            inverse_limit = _inverse(topology.limits)
            if controller is not None:
                controller.on_limit_change(current_limit)
            excused_until = max(excused_until, k + config.window_steps)
        if config.record:
            site_limit[k] = current_limit
        for i in departures.pop(k, ()):
            active[i] = False
            pilot[i] = 0.0
            if controller is not None:
                controller.on_departure(i)
        for i in arrivals.pop(k, ()):
            active[i] = True
            steerable = controller is not None and behaviour[i] is Behaviour.OBEYS
            pilot[i] = config.default_limit_a if steerable else hardware[i]
            if controller is not None:
                controller.on_arrival(i, k)
            excused_until = max(excused_until, k + config.window_steps)
        if controller is not None:
            for i in replies.pop(k, ()):
                controller.on_rejected(i)
            for write in controller.step(k, last_draw, delivered):
                if behaviour[write.session] is Behaviour.REJECTS:
                    replies[k + 1].append(write.session)
                elif behaviour[write.session] is Behaviour.OBEYS:
                    applies[k + config.latency_steps].append((write.session, write.current_a))
        for i, current in applies.pop(k, ()):
            if active[i]:
                pilot[i] = current
        if not active.any():
            last_draw[:] = 0.0
            continue

        soc = soc0 + delivered / capacity
        draw = car_draw(pilot, soc, car_max, requested - delivered, watts, step_h) * active
        delivered += draw * watts * step_h
        last_draw = draw
        loads = topology.loads(draw, phase_matrix, watts)
        over = topology.excess(loads)
        ratio = loads * inverse_limit
        np.maximum(peak, ratio, out=peak)
        if over.any():
            violation += over * dt
            alone = topology.excess(topology.loads(draw * unsteerable, phase_matrix, watts))
            unavoidable += alone * dt
            if k >= excused_until:
                beyond += (over & ~alone) * dt
            ratio[alone] = 0.0
        if k >= excused_until:
            np.maximum(settled_peak, ratio, out=settled_peak)
        if config.record:
            site_load[k] = loads[0]
            excused[k] = k < excused_until
            could = car_draw(hardware, soc, car_max, requested - delivered + draw * watts * step_h, watts, step_h)
            site_wanted[k] = topology.loads(could * active, phase_matrix, watts)[0]

    levels = [
        LevelStats(
            level.name,
            level.node_ids,
            violation[level.rows],
            beyond[level.rows],
            unavoidable[level.rows],
            peak[level.rows],
            settled_peak[level.rows],
        )
        for level in topology.levels
    ]
    return SimResult(
        kind=kind,
        limit=limit,
        step_s=dt,
        window_s=config.window_steps * dt,
        evse_count=len(workload.site.evses),
        requested_wh=requested,
        delivered_wh=delivered,
        fleet=np.array([s.priority > 0 for s in sessions], dtype=bool),
        plugged_h=float(sum(s.departure_s - s.arrival_s for s in sessions) / 3600.0),
        levels=levels,
        control=controller.stats if controller is not None else ControlStats(),
        site_load=site_load,
        site_limit=site_limit,
        excused=excused,
        site_wanted=site_wanted,
    )
