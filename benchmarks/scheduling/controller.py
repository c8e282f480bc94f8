"""The CSMS side of the fleet simulation: what our runtime knows about the fleet and what it writes.

It re-plans on events (debounced) and every slot, from what a CSMS can know: the driver's estimated departure,
requested energy minus metered energy, a maximum current learned from meter values (like acnportal's
SimpleRampdown: down to the draw when the car takes over 1 A less than offered, up 1 A when it takes it all),
the phases a car draws on once it has drawn (a new car is admitted first for up to ``phase_probe_s`` so that it
does, and a car showing its phases triggers a re-plan), and which stations cannot be steered (they rejected the
boot profile, or were seen drawing above their limit) -- those are passed as ``fixed_a``. ``select_changes``
decides what gets written; decreases go out first and increases one step later, after the decreases are
accepted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from benchmarks.scheduling.config import Scheduler, SimConfig
from benchmarks.scheduling.topology import Topology
from benchmarks.scheduling.workload import VOLTAGE_V, Behaviour, LimitKind, Workload, with_site_limit
from csms.domain.ev_charging import PHASE_IN_USE_A
from csms.domain.grid import ALL_PHASES, IEC_MIN_CURRENT_A
from csms.scheduler.changes import select_changes
from csms.scheduler.model import Plan, SessionDemand, Snapshot

__all__ = ["ControlStats", "Controller", "Write"]

_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Write:
    session: int  # index into the workload's sessions
    current_a: float


@dataclass(slots=True)
class ControlStats:
    writes: int = 0
    rejected_writes: int = 0
    replans: int = 0
    replan_s: list[float] = field(default_factory=list)  # wall time of each scheduler call
    replan_steps: list[int] = field(default_factory=list)  # the step of each
    control_s: list[float] = field(default_factory=list)  # wall time of each whole re-plan (snapshot to writes)
    infeasible_plans: int = 0  # plans whose own loads break a limit and do not say so (Plan.overloaded)
    bad_pilots: int = 0  # planned currents between 0 and the minimum, or above the session's maximum
    missing_sessions: int = 0  # controllable sessions the plan left out
    flagged_stations: int = 0  # caught drawing above their limit


class Controller:
    def __init__(
        self, workload: Workload, kind: LimitKind, limit: float, scheduler: Scheduler, config: SimConfig
    ) -> None:
        self.workload = workload
        self.kind = kind
        self.scheduler = scheduler
        self.config = config
        self.stats = ControlStats()
        sessions = workload.sessions
        n = len(sessions)
        self.ids = [s.id for s in sessions]
        self.index = {sid: i for i, sid in enumerate(self.ids)}
        self.station_of = np.array([workload.site.evses[s.evse].station for s in sessions], dtype=np.intp)
        self.hardware_a = np.array([workload.station_of(s).max_current_a for s in sessions])
        self.true_phases = [workload.grid_phases(s) for s in sessions]
        self.requested_wh = np.array([s.requested_wh for s in sessions])
        self.offered = np.zeros(n)  # the limit each session's station accepted last
        self.written_step = np.full(n, -(10**9))
        self.last_written: dict[str, datetime] = {}
        self.cap = self.hardware_a.copy()  # learned maximum current per phase
        self.fixed_draw = self.hardware_a.copy()  # what an unsteerable session is assumed to draw
        self.phases_known = np.zeros(n, dtype=bool)
        self.drew = np.zeros(n, dtype=bool)
        self.idle = np.zeros(n, dtype=bool)  # drew, and now takes nothing of its limit: planned at its minimum
        self.fixed = np.zeros(n, dtype=bool)
        self.unsteerable: set[int] = set()  # station indices
        if config.know_rejecting_at_boot:
            self.unsteerable = {k for k, st in enumerate(workload.site.stations) if st.behaviour is Behaviour.REJECTS}
        self.assumed_phase_matrix = np.ones((n, 3))  # what the CSMS assumes until it sees the car draw
        self.watts_per_amp = np.full(n, 3 * VOLTAGE_V)
        self.limit = limit
        self.nodes = with_site_limit(workload.site, kind, limit)
        self.topology = Topology(workload, self.nodes)
        self.event = False
        self.urgent = False  # a limit change re-plans at once, whatever the debounce: it is a safety event
        self.last_replan = -(10**9)
        self.queued: list[Write] = []
        self.active: set[int] = set()

    # -- events -------------------------------------------------------------------------------------------------

    def on_arrival(self, i: int, step: int) -> None:
        self.active.add(i)
        if self.config.phases_known_at_start:
            self._know_phases(i)
        self.fixed[i] = self.station_of[i] in self.unsteerable
        self.offered[i] = self.config.default_limit_a
        self.written_step[i] = step - self.config.latency_steps  # the boot profile is in force already
        self.event = True

    def on_departure(self, i: int) -> None:
        self.active.discard(i)
        self.last_written.pop(self.ids[i], None)
        self.event = True

    def on_limit_change(self, limit: float) -> None:
        self.limit = limit
        self.nodes = with_site_limit(self.workload.site, self.kind, limit)
        self.topology.set_limits(self.nodes)
        self.event = True
        self.urgent = True

    def on_rejected(self, i: int) -> None:
        self.stats.rejected_writes += 1
        self._mark_unsteerable(int(self.station_of[i]))

    def _mark_unsteerable(self, station: int) -> None:
        if station not in self.unsteerable:
            self.unsteerable.add(station)
            for i in self.active:
                if self.station_of[i] == station:
                    self.fixed[i] = True
        self.event = True

    # -- each step ----------------------------------------------------------------------------------------------

    def step(self, step: int, last_draw: np.ndarray, delivered_wh: np.ndarray) -> list[Write]:
        """Writes to send at ``step``, given each car's draw over the previous step."""
        if not self.active:
            return []
        active = np.fromiter(self.active, dtype=np.intp)
        self._check_compliance(step, active, last_draw)
        if (last_draw[active[~self.phases_known[active]]] > 0.5).any():
            self.event = True  # a car shows its phases: re-plan it on them (the runtime's meter values do too)
        self._watch_idle(step, active, last_draw)
        debounce = max(1, round(self.config.debounce_s / self.config.step_s))
        due_event = self.urgent or (self.event and step - self.last_replan >= debounce)
        due_tick = step - self.last_replan >= self.config.settings.slot.total_seconds() / self.config.step_s
        if due_event or due_tick:
            return self._replan(step, active, last_draw, delivered_wh)
        queued, self.queued = self.queued, []
        for write in queued:
            self._record(write, step)
        return queued

    def _in_force(self, step: int, active: np.ndarray) -> np.ndarray:
        """Active sessions whose last write had surely reached the car before the previous step began."""
        settled: np.ndarray = active[self.written_step[active] + self.config.latency_steps <= step - 1]
        return settled

    def _watch_idle(self, step: int, active: np.ndarray, last_draw: np.ndarray) -> None:
        """A car that drew and now takes nothing of its limit (full: it reached its target or 100%) re-plans, as in
        the runtime, where it is planned at its minimum until it draws again."""
        self.drew[active[last_draw[active] >= PHASE_IN_USE_A]] = True
        settled = self._in_force(step, active)
        watched = settled[~self.fixed[settled] & (self.offered[settled] > 0)]
        idle = self.drew[watched] & (last_draw[watched] < PHASE_IN_USE_A)
        if (idle != self.idle[watched]).any():
            self.idle[watched] = idle
            self.event = True

    def _check_compliance(self, step: int, active: np.ndarray, last_draw: np.ndarray) -> None:
        settled = self._in_force(step, active)
        settled = settled[~self.fixed[settled]]
        caught = settled[last_draw[settled] > self.offered[settled] + 1.0]
        for i in caught:
            self.stats.flagged_stations += int(self.station_of[i] not in self.unsteerable)
            self._mark_unsteerable(int(self.station_of[i]))

    def _learn(self, step: int, active: np.ndarray, last_draw: np.ndarray) -> None:
        drew = active[last_draw[active] > 0.5]
        for i in drew[~self.phases_known[drew]]:
            self._know_phases(int(i))
        settled = self._in_force(step, active)
        metered = settled[self.fixed[settled]]
        # What an unsteerable car draws, plus a margin: it only ever draws less as it fills (taper, target).
        self.fixed_draw[metered] = np.minimum(self.hardware_a[metered], np.ceil(last_draw[metered] - _TOLERANCE) + 1.0)
        in_force = np.where(self.fixed[settled], self.hardware_a[settled], self.offered[settled])
        settled, in_force = settled[in_force >= IEC_MIN_CURRENT_A], in_force[in_force >= IEC_MIN_CURRENT_A]
        could = np.minimum(in_force, self.cap[settled])
        draw = last_draw[settled]
        down = draw < could - 1.0
        # Up only when the car takes (nearly) all it may: with the same 1 A threshold both ways the estimate
        # would climb past the car's limit, drop back and climb again, a profile write each time.
        up = (draw >= could - 0.5) & (in_force >= self.cap[settled])
        self.cap[settled[down]] = np.ceil(draw[down] - _TOLERANCE)
        self.cap[settled[up]] = np.minimum(self.hardware_a[settled[up]], self.cap[settled[up]] + 1.0)

    def _know_phases(self, i: int) -> None:
        self.phases_known[i] = True
        self.assumed_phase_matrix[i] = [1.0 if p in self.true_phases[i] else 0.0 for p in ALL_PHASES]
        self.watts_per_amp[i] = VOLTAGE_V * len(self.true_phases[i])

    def _snapshot(self, now: datetime, active: np.ndarray, remaining: np.ndarray) -> Snapshot:
        sessions = self.workload.sessions
        stations = self.workload.site.stations
        slot = self.config.settings.slot
        probe = timedelta(seconds=self.config.phase_probe_s)
        demands = []
        for i in active:
            session = sessions[i]
            station = stations[self.station_of[i]]
            phases = self.true_phases[i] if self.phases_known[i] else ALL_PHASES
            # A driver still here after the time they gave: assume they stay at least one more slot.
            departure = max(self.workload.start + timedelta(seconds=session.estimated_departure_s), now + slot)
            arrived_at = self.workload.start + timedelta(seconds=session.arrival_s)
            common = {
                "id": session.id,
                "node_id": station.id,
                "phases": phases,
                "arrived_at": arrived_at,
                "energy_wh": float(remaining[i]),
                "departure": departure,
                "priority": session.priority,
                "voltage_v": VOLTAGE_V,
            }
            if self.fixed[i]:
                fixed = self.hardware_a[i] if self.config.fixed_at_hardware_max else self.fixed_draw[i]
                demands.append(SessionDemand(max_current_a=float(self.hardware_a[i]), fixed_a=float(fixed), **common))
            else:
                # A tapering car that takes 3 A is still offered the 6 A minimum: it takes what it can.
                max_a = float(min(max(self.cap[i], IEC_MIN_CURRENT_A), self.hardware_a[i]))
                probing = not self.phases_known[i] and now - arrived_at < probe
                offered = float(self.offered[i])
                # As the runtime: an increase select_changes would hold back is not planned (SessionDemand.max_now_a).
                held = self.config.policy.held_at(offered, self.last_written.get(session.id), now)
                max_now = IEC_MIN_CURRENT_A if self.idle[i] else held
                demands.append(
                    SessionDemand(max_current_a=max_a, offered_a=offered, probing=probing, max_now_a=max_now, **common)
                )
        return Snapshot(self.nodes, tuple(demands))

    def _replan(self, step: int, active: np.ndarray, last_draw: np.ndarray, delivered_wh: np.ndarray) -> list[Write]:
        began = time.perf_counter()
        self.queued = []
        self.event = self.urgent = False
        self.last_replan = step
        now = self.workload.start + timedelta(seconds=step * self.config.step_s)
        remaining = np.maximum(self.requested_wh - delivered_wh, 0.0)
        self._learn(step, active, last_draw)
        snapshot = self._snapshot(now, active, remaining)
        started = time.perf_counter()
        plan = self.scheduler(snapshot, now, self.config.settings)
        self.stats.replan_s.append(time.perf_counter() - started)
        self.stats.replan_steps.append(step)
        self.stats.replans += 1
        controllable = [i for i in active if not self.fixed[i]]
        offered = {self.ids[i]: float(self.offered[i]) for i in controllable}
        decreases, increases = select_changes(plan, offered, self.last_written, now, self.config.policy)
        writes = [Write(self.index[c.session_id], c.current_a) for c in decreases]
        later = [Write(self.index[c.session_id], c.current_a) for c in increases]
        if writes:
            self.queued = later
        else:
            writes = later
        for write in writes:
            self._record(write, step)
        self.stats.control_s.append(time.perf_counter() - began)
        if self.config.check_plans:  # the harness's own check: not part of the re-plan time
            self._check_plan(plan, snapshot, active, controllable)
        return writes

    def _record(self, write: Write, step: int) -> None:
        self.stats.writes += 1
        self.offered[write.session] = write.current_a
        self.written_step[write.session] = step
        self.last_written[self.ids[write.session]] = self.workload.start + timedelta(seconds=step * self.config.step_s)

    def _check_plan(self, plan: Plan, snapshot: Snapshot, active: np.ndarray, controllable: list[int]) -> None:
        planned = np.zeros(len(self.ids))
        for i in controllable:
            session_plan = plan.sessions.get(self.ids[i])
            if session_plan is None:
                self.stats.missing_sessions += 1
                planned[i] = self.offered[i]  # nothing gets written: it keeps what it has
                continue
            current = session_plan.current_a
            planned[i] = current
            demand_max = float(min(max(self.cap[i], IEC_MIN_CURRENT_A), self.hardware_a[i]))
            if (_TOLERANCE < current < IEC_MIN_CURRENT_A - _TOLERANCE) or current > demand_max + _TOLERANCE:
                self.stats.bad_pilots += 1
        by_id = {d.id: d for d in snapshot.sessions}
        for i in active:
            if self.fixed[i]:
                planned[i] = by_id[self.ids[i]].fixed_a or 0.0
        excess = self.topology.excess(self.topology.loads(planned, self.assumed_phase_matrix, self.watts_per_amp), 1e-3)
        overloaded = set(plan.overloaded)
        for level in self.topology.levels:
            rows = np.flatnonzero(excess[level.rows].any(axis=1))
            if any(level.node_ids[r] not in overloaded for r in rows):
                self.stats.infeasible_plans += 1
                return
