"""The default, real-time algorithm: deadline-paced, priority-ordered, work-conserving progressive filling.

For each stretch of time in which no limit changes, currents are handed out in three rounds:

1. **Who charges.** Every session that still wants energy is offered its minimum (6 A) if that fits, most
   urgent first: a session above the standard class once it has less than ``priority_due_within`` (6 h) of
   laxity (before that it queues with the standard class: admitted first from plug-in, the priority class took
   the room of standard cars leaving sooner; benchmarks/: +0.6 to +1.0 point of the optimum at 20-30% limits,
   the class's fill held), then least laxity (time left minus time needed at full current); those
   with less than ``due_within`` of laxity (2.5 h) are all due and come first, the quickest to finish first, so
   a car that can still be finished is not kept waiting behind one that cannot finish anyway (departure
   estimates are off by about an hour; benchmarks/: +0.3 to +10 points of sessions fully served, Jain up to
   +0.04, energy within ±0.6 point). Where
   every constraint a session is under is a power limit, it is admitted at its pace (see 2) instead, if more: on
   one aggregate power limit fewer cars charging at their pace deliver more than more cars at 6 A, while under
   per-phase current limits more cars at 6 A fill the phases better (benchmarks/: +1.5 to +2.2 points of the
   optimum on power limits, -4 points at a per-phase 20% limit when applied there too). A session that is due
   is admitted at its pace under any limit (at 6 A it could not finish; benchmarks/: +0.9 to +1.1 points of the
   optimum at per-phase 30-40% limits). A session above the
   standard class is admitted at its pace under any limit, so standard cars at 6 A do not take the room it needs
   to finish (benchmarks/, 7 days: the priority class's fill +1.1 to +1.8 points under per-phase limits). A
   session that is charging keeps its place against a paused one unless the paused one is clearly more urgent,
   so sessions are not paused and resumed on every re-plan. Those that do not fit are paused (0 A), never
   offered less than their minimum; their laxity shrinks while they wait, so they come first later. Under
   per-phase limits a session whose phases are still unknown (``probing``) comes first in its class: planned on
   every phase of its station, a single-phase car that stays paused never shows that it needs only one, while
   admitted it shows it in its first meter values (benchmarks/: +4 points of the optimum at a per-phase 20%
   limit; under power limits only it changed nothing, as phases do not change where load lands there).
2. **What each needs.** Class by class, from the highest, each session is raised toward its *pace*: the
   current that delivers its remaining energy by its departure less ``pace_margin`` (1.5 h; 2.5 h above the
   standard class, ``priority_pace_margin``: departures are estimates, often an hour out, and a car paced to its
   estimate leaves short half the time) if held until then.
   When power is short, every session in the class gets the same fraction of its pace (weights = pace), which
   evens out how much of their request sessions end up with (fairness: Jain's index over delivered / requested).
3. **What is left** is shared class by class, in proportion to how soon each car leaves (weights 1 / hours
   left), up to what each can use in the next slot. Capacity unused now is lost for good, a car charged early
   leaves room for the ones that have not arrived yet, and the car that leaves first has the least time to
   catch up.

Finally currents are rounded to what a pilot can signal (``pilots.round_to_pilots``). Later stretches (after a
limit window starts or a booking's hold begins) are planned the same way from the energy expected by then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from csms.domain.grid import Priority
from csms.scheduler.filling import progressive_fill
from csms.scheduler.loads import node_loads
from csms.scheduler.model import Period, Plan, SchedulerSettings, SessionDemand, SessionPlan, Snapshot
from csms.scheduler.network import Network, compile_network, under_power_only
from csms.scheduler.pilots import round_to_pilots

__all__ = ["allocate", "plan_realtime"]

_EPSILON = 1e-9
_MICROSECOND = timedelta(microseconds=1)
_STANDARD_RANK = -Priority.STANDARD
_DUE_FIRST = 1e12  # seconds: a due session's key is its work minus this, below any laxity


@dataclass(slots=True)
class _Needs:
    """What the sessions still want at the start of a stretch, one entry per session (lists, not an object per
    session: at ten thousand sessions the objects cost a sizeable part of a re-plan)."""

    energy_wh: list[float]
    departure_us: list[int]  # microseconds after the plan's start (whole: seconds left come out as exactly as
    # timedelta.total_seconds() gives them)
    sessions: _Columns  # what does not change from one stretch to the next
    power_only: list[bool]  # every constraint the session is under is a power limit (and there is one)


class _Columns(NamedTuple):
    """The sessions' own figures as arrays, for the arithmetic done for every session at once (``_figures``)."""

    departure_us: npt.NDArray[np.int64]
    max_current_a: npt.NDArray[np.float64]
    max_now_a: npt.NDArray[np.float64]  # SessionDemand.max_now_a, inf where it has none
    min_current_a: npt.NDArray[np.float64]
    watts_per_amp: npt.NDArray[np.float64]
    charging: npt.NDArray[np.bool_]  # offered a current now
    probing: npt.NDArray[np.bool_]  # phases unknown: admitted first to learn them (SessionDemand.probing)
    elevated: npt.NDArray[np.bool_]  # above the standard class: paced with ``priority_pace_margin``


def plan_realtime(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    end = now + settings.horizon
    network = compile_network(snapshot, now, end, prune_at_maxima=True)  # it never offers above a maximum
    needs = _initial_needs(network, now, settings)
    stretches: list[tuple[datetime, list[float]]] = []  # (start, currents) per segment
    notes: dict[str, str] = {}
    overloaded: set[str] = set()
    for segment in range(network.segment_count):
        start, stop = network.boundaries[segment], network.boundaries[segment + 1]
        capacities = [c.capacities[segment] for c in network.constraints]
        overloaded |= {c.node_id for c, capacity in zip(network.constraints, capacities, strict=True) if capacity < 0}
        currents = allocate(network, capacities, needs, start, settings)
        stretches.append((start, currents))
        if segment == 0:
            notes = _notes(network, currents, needs)
        if segment == network.segment_count - 1:
            break  # no later stretch to plan from the energy left
        hours = (stop - start).total_seconds() / 3600
        energy = needs.energy_wh
        for i, (session, current) in enumerate(zip(network.sessions, currents, strict=True)):
            if current:
                energy[i] = max(0.0, energy[i] - current * _watts_per_amp(session) * hours)
    return Plan(
        created_at=now,
        end=end,
        algorithm="realtime",
        sessions=_session_plans(network.sessions, stretches),
        loads_from=lambda: tuple(
            load for start, currents in stretches for load in node_loads(network, currents, snapshot.holds, start)
        ),
        overloaded=tuple(sorted(overloaded)),
        notes=notes,
    )


def allocate(
    network: Network,
    capacities: Sequence[float],
    needs: _Needs,
    now: datetime,
    settings: SchedulerSettings,
) -> list[float]:
    """Pilot currents for ``network.sessions`` from ``now`` for one slot, within ``capacities``."""
    sessions = network.sessions
    count = len(sessions)
    # What each session can use in the next slot: its maximum, or less if its remaining energy is less.
    now_us = (now - network.start) // _MICROSECOND
    ceiling, pace, bare_pace, laxity, urgency = _figures(needs, now_us, settings, first_slot=now_us == 0)

    terms = network.session_constraints
    power_only = needs.power_only
    wanting = [i for i in range(count) if ceiling[i] > 0]
    # Probing pays only under a per-phase limit: under power limits alone a car's phases change its watts per amp,
    # not where its load lands, and it shows them as soon as it is admitted anyway.
    probing = {i for i in np.flatnonzero(needs.sessions.probing).tolist() if terms[i] and not power_only[i]}
    # A session above the standard class goes ahead of the standard class only within priority_due_within.
    priority_due_s = settings.priority_due_within.total_seconds()
    due_s = settings.due_within.total_seconds()  # laxity below this: due (see _figures)

    def rank(i: int) -> int:
        priority = sessions[i].priority
        return -priority if priority > Priority.STANDARD and laxity[i] < priority_due_s else _STANDARD_RANK

    if probing:
        wanting.sort(key=lambda i: (rank(i), i not in probing, laxity[i], sessions[i].arrived_at, sessions[i].id))
    else:
        wanting.sort(key=lambda i: (rank(i), laxity[i], sessions[i].arrived_at, sessions[i].id))
    slack = list(capacities)
    currents = [0.0] * count
    admitted: list[int] = []
    for i in wanting:
        minimum = sessions[i].min_current_a
        offers: tuple[float, ...] = (minimum,)
        if pace[i] > minimum and (
            (settings.pace_admission_for_priority and sessions[i].priority > Priority.STANDARD)
            or (settings.pace_admission_on_power and power_only[i])
            or (settings.pace_admission_when_due and laxity[i] < due_s)
        ):
            # Its pace; if that does not fit, its pace without a margin (a due car behind a priority car paced to
            # be done an hour early must not take the room the priority car needs by its departure); then its
            # minimum: never pause what could charge.
            offers = (pace[i], bare_pace[i], minimum) if minimum < bare_pace[i] < pace[i] else (pace[i], minimum)
        for offer in offers:
            for k, coefficient in terms[i]:  # a loop, not all(...): this runs for every session
                if not slack[k] >= offer * coefficient - _EPSILON:
                    break
            else:
                for k, coefficient in terms[i]:
                    slack[k] -= offer * coefficient
                currents[i] = offer
                admitted.append(i)
                break

    classes = sorted({sessions[i].priority for i in admitted}, reverse=True)
    by_class = [[i for i in admitted if sessions[i].priority == priority] for priority in classes]
    for members in by_class:
        _raise_toward(network, slack, members, currents, pace, None)
    for members in by_class:
        _raise_toward(network, slack, members, currents, ceiling, urgency)
    return round_to_pilots(network, currents, capacities, admitted, ceiling)


def _raise_toward(
    network: Network,
    slack: list[float],
    members: list[int],
    currents: list[float],
    targets: Sequence[float],
    weights: Sequence[float] | None,
) -> None:
    """Progressive filling of ``members`` toward ``targets``; without ``weights``, in proportion to each one's
    shortfall (so all reach the same fraction of it)."""
    picked = np.asarray(members, dtype=np.intp)
    headroom = np.maximum(0.0, np.asarray(targets)[picked] - np.asarray(currents)[picked])
    speeds = headroom if weights is None else np.asarray(weights)[picked]
    for i, increment in zip(members, progressive_fill(network, slack, members, headroom, speeds), strict=True):
        currents[i] += increment


def _session_plans(
    sessions: Sequence[SessionDemand], stretches: Sequence[tuple[datetime, list[float]]]
) -> dict[str, SessionPlan]:
    """Each session's periods: a new one wherever its current changes. Sessions with the same current at the
    same instant share one Period (and, with one stretch, one tuple of them): ten thousand of each cost a sizeable
    part of a re-plan, mostly in the garbage collector."""
    if len(stretches) == 1:
        start, currents = stretches[0]
        alone: dict[float, tuple[Period]] = {}
        plans: dict[str, SessionPlan] = {}
        for session, current in zip(sessions, currents, strict=True):
            periods = alone.get(current)
            if periods is None:
                periods = alone[current] = (Period(start, current),)
            plans[session.id] = SessionPlan(session.id, periods)
        return plans
    plans = {}
    shared: dict[tuple[datetime, float], Period] = {}
    for i, session in enumerate(sessions):
        changes: list[Period] = []
        for start, currents in stretches:
            current = currents[i]
            if not changes or changes[-1].current_a != current:
                period = shared.get((start, current))
                if period is None:
                    period = shared[(start, current)] = Period(start, current)
                changes.append(period)
        plans[session.id] = SessionPlan(session.id, tuple(changes))
    return plans


def _figures(
    needs: _Needs, now_us: int, settings: SchedulerSettings, *, first_slot: bool
) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Per session: ceiling, pace, pace without a margin, laxity and urgency (all 0 for a session that wants
    nothing or cannot charge). In the ``first_slot`` the ceiling (and so both paces) is at most ``max_now_a``;
    laxity always counts the full maximum: a cap that lasts one slot does not make a session urgent.

    Each is computed with the same operations in the same order as one session at a time would (the floats are
    the same), for all sessions at once."""
    columns = needs.sessions
    slot_hours = settings.slot.total_seconds() / 3600
    standard_margin = settings.pace_margin.total_seconds() / 3600
    priority_margin = max(settings.pace_margin, settings.priority_pace_margin).total_seconds() / 3600
    margin_hours = np.where(columns.elevated, priority_margin, standard_margin)
    energy_wh = np.array(needs.energy_wh, dtype=np.float64)
    watts_per_amp, maximum, minimum = columns.watts_per_amp, columns.max_current_a, columns.min_current_a
    wants = ~(energy_wh <= _EPSILON) & ~(maximum < minimum) & ~(watts_per_amp <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # where it is 0, ``wants`` is False
        hours_left = np.maximum((columns.departure_us - now_us) / 1e6 / 3600, slot_hours)
        pace_hours = np.maximum(hours_left - margin_hours, slot_hours)
        urgency = 1 / hours_left
        energy_amps = energy_wh / (watts_per_amp * slot_hours)
        ceiling = np.minimum(maximum, np.maximum(energy_amps, minimum))
        if first_slot:
            # A cap below the minimum (paused a moment ago, its resume would be held back) keeps it paused.
            ceiling = np.minimum(ceiling, np.where(columns.max_now_a < minimum, 0.0, columns.max_now_a))
        pace = np.minimum(energy_wh / (watts_per_amp * pace_hours), ceiling)
        bare_pace = np.minimum(energy_wh / (watts_per_amp * hours_left), ceiling)
        full_current_hours = energy_wh / (watts_per_amp * maximum)
        laxity = (hours_left - full_current_hours) * 3600
    laxity = np.where(columns.charging, laxity - settings.keep_charging_bonus_s, laxity)
    due_s = settings.due_within.total_seconds()
    if due_s > 0:
        # Due sessions sort before all others (by time needed at full current, with the same bonus for one that
        # is charging), the others by laxity: one key, so the admission order stays one sort.
        work_s = full_current_hours * 3600
        work_s = np.where(columns.charging, work_s - settings.keep_charging_bonus_s, work_s)
        laxity = np.where(laxity < due_s, work_s - _DUE_FIRST, laxity)
    return (
        np.where(wants, ceiling, 0.0).tolist(),
        np.where(wants, pace, 0.0).tolist(),
        np.where(wants, bare_pace, 0.0).tolist(),
        np.where(wants, laxity, 0.0).tolist(),
        np.where(wants, urgency, 0.0).tolist(),
    )


def _initial_needs(network: Network, start: datetime, settings: SchedulerSettings) -> _Needs:
    sessions = network.sessions
    default_energy, default_stay = settings.default_energy_wh, settings.default_stay
    departure_us = [((s.departure or s.arrived_at + default_stay) - start) // _MICROSECOND for s in sessions]
    columns = _Columns(
        np.array(departure_us, dtype=np.int64),
        np.array([s.max_current_a for s in sessions], dtype=np.float64),
        np.array([np.inf if s.max_now_a is None else s.max_now_a for s in sessions], dtype=np.float64),
        np.array([s.min_current_a for s in sessions], dtype=np.float64),
        np.array([s.voltage_v * len(s.phases) for s in sessions], dtype=np.float64),
        np.array([bool(s.offered_a) for s in sessions], dtype=np.bool_),
        np.array([s.probing for s in sessions], dtype=np.bool_),
        np.array([s.priority > Priority.STANDARD for s in sessions], dtype=np.bool_),
    )
    return _Needs(
        [default_energy if s.energy_wh is None else max(0.0, s.energy_wh) for s in sessions],
        departure_us,
        columns,
        under_power_only(network),
    )


def _watts_per_amp(session: SessionDemand) -> float:
    return session.voltage_v * len(session.phases)


def _notes(network: Network, currents: Sequence[float], needs: _Needs) -> dict[str, str]:
    notes: dict[str, str] = {}
    sessions = network.sessions
    priority = np.array([s.priority for s in sessions], dtype=np.int64)
    energy = np.array(needs.energy_wh, dtype=np.float64)
    noted = np.flatnonzero((energy <= _EPSILON) | (np.array(currents) == 0) | (priority > Priority.STANDARD))
    for i in noted.tolist():  # the others get no note
        session, current, energy_wh = sessions[i], currents[i], needs.energy_wh[i]
        if energy_wh <= _EPSILON:
            notes[session.id] = "no energy wanted"
        elif current == 0:
            notes[session.id] = f"paused: {session.min_current_a:g} A does not fit under its limits now"
        elif session.priority > Priority.STANDARD:
            notes[session.id] = f"priority {session.priority.name.lower()}"
    return notes
