"""The baselines, as acnportal 0.3.3 defines them (research/scheduling-anchors.md §1), written from scratch.

- ``uncontrolled``: every session at its maximum.
- ``round_robin`` (equal share, acnportal ``RoundRobin``): sessions in first-come order take one pilot step in
  turn (0 -> 6 A, then +1 A) until nothing more fits; a session whose next step does not fit leaves the queue.
- ``fcfs``, ``edf``, ``llf`` (acnportal ``SortedSchedulingAlgo``): sort the sessions (arrival; estimated
  departure; laxity = time left - remaining energy / maximum power), then give each in turn the highest pilot
  in {0, 6..max} that still fits. acnportal bisects for that rate; here it is exact: the smallest slack/coefficient
  over the session's constraints, floored to the pilot step.

Each plans the next slot only, caps a session at what finishes its remaining energy within the slot (rounded up
to a valid pilot), ignores priority classes (acnportal has none) and uses the same compiled ``Network`` as ours.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime

from benchmarks.scheduling.config import Scheduler
from csms.scheduler.model import Period, Plan, SchedulerSettings, SessionDemand, SessionPlan, Snapshot
from csms.scheduler.network import Network, compile_network

__all__ = ["BASELINES", "edf", "fcfs", "llf", "round_robin", "uncontrolled"]

_EPSILON = 1e-6


def _remaining_wh(session: SessionDemand, settings: SchedulerSettings) -> float:
    return settings.default_energy_wh if session.energy_wh is None else max(session.energy_wh, 0.0)


def _departure(session: SessionDemand, settings: SchedulerSettings) -> datetime:
    return session.departure or session.arrived_at + settings.default_stay


def _upper(session: SessionDemand, settings: SchedulerSettings) -> float:
    """The session's maximum, capped at the pilot that finishes its remaining energy within one slot."""
    watts_per_amp = session.voltage_v * len(session.phases)
    needed = _remaining_wh(session, settings) / (watts_per_amp * settings.slot.total_seconds() / 3600.0)
    if needed <= _EPSILON:
        return 0.0
    step = session.pilot_step_a
    needed = max(math.ceil(needed / step - _EPSILON) * step, session.min_current_a)
    return min(session.max_current_a, needed)


def _start(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> tuple[Network, list[float]]:
    end = now + settings.slot
    network = compile_network(snapshot, now, end)
    return network, network.capacities_between(now, end)


def _plan(
    network: Network, capacity: list[float], rates: list[float], now: datetime, settings: SchedulerSettings, name: str
) -> Plan:
    overloaded = tuple(
        sorted({c.node_id for c, room in zip(network.constraints, capacity, strict=True) if room < -_EPSILON})
    )
    sessions = {s.id: SessionPlan(s.id, (Period(now, rate),)) for s, rate in zip(network.sessions, rates, strict=True)}
    return Plan(now, now + settings.slot, name, sessions, overloaded=overloaded)


def uncontrolled(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    network = compile_network(snapshot, now, now + settings.slot)
    rates = [s.max_current_a for s in network.sessions]
    sessions = {s.id: SessionPlan(s.id, (Period(now, r),)) for s, r in zip(network.sessions, rates, strict=True)}
    return Plan(now, now + settings.slot, "uncontrolled", sessions)


def _sorted(key: Callable[[SessionDemand, datetime, SchedulerSettings], tuple[float, str]], name: str) -> Scheduler:
    def schedule(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
        network, capacity = _start(snapshot, now, settings)
        slack = list(capacity)
        sessions = network.sessions
        rates = [0.0] * len(sessions)
        for i in sorted(range(len(sessions)), key=lambda i: key(sessions[i], now, settings)):
            session = sessions[i]
            terms = network.session_constraints[i]
            fits = min((slack[k] / c for k, c in terms if c > 0), default=math.inf)
            rate = min(_upper(session, settings), fits)
            step = session.pilot_step_a
            pilot = math.floor(rate / step + _EPSILON) * step
            if pilot < session.min_current_a - _EPSILON:
                continue
            rates[i] = pilot
            for k, c in terms:
                slack[k] -= pilot * c
        return _plan(network, list(capacity), rates, now, settings, name)

    schedule.__name__ = name
    return schedule


def _arrival_key(session: SessionDemand, now: datetime, settings: SchedulerSettings) -> tuple[float, str]:
    return session.arrived_at.timestamp(), session.id


def _deadline_key(session: SessionDemand, now: datetime, settings: SchedulerSettings) -> tuple[float, str]:
    return _departure(session, settings).timestamp(), session.id


def _laxity_key(session: SessionDemand, now: datetime, settings: SchedulerSettings) -> tuple[float, str]:
    max_power_w = session.max_current_a * session.voltage_v * len(session.phases)
    needed_s = _remaining_wh(session, settings) / max_power_w * 3600.0 if max_power_w > 0 else math.inf
    return (_departure(session, settings) - now).total_seconds() - needed_s, session.id


fcfs = _sorted(_arrival_key, "fcfs")
edf = _sorted(_deadline_key, "edf")
llf = _sorted(_laxity_key, "llf")


def round_robin(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    network, capacity = _start(snapshot, now, settings)
    slack = list(capacity)
    sessions = network.sessions
    rates = [0.0] * len(sessions)
    uppers = [_upper(s, settings) for s in sessions]
    order = sorted(range(len(sessions)), key=lambda i: _arrival_key(sessions[i], now, settings))
    queue = deque(i for i in order if uppers[i] > _EPSILON)
    while queue:
        i = queue.popleft()
        session = sessions[i]
        target = rates[i] + session.pilot_step_a if rates[i] > 0 else session.min_current_a
        if target > uppers[i] + _EPSILON:
            continue
        increase = target - rates[i]
        terms = network.session_constraints[i]
        if all(slack[k] >= increase * c - _EPSILON for k, c in terms):
            for k, c in terms:
                slack[k] -= increase * c
            rates[i] = target
            queue.append(i)
    return _plan(network, list(capacity), rates, now, settings, "round_robin")


BASELINES: dict[str, Scheduler] = {"round_robin": round_robin, "fcfs": fcfs, "edf": edf, "llf": llf}
