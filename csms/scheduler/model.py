"""What the scheduler is given (a frozen ``Snapshot``) and what it returns (a ``Plan``).

Currents are amps per phase, as OCPP's "A" rate unit means them: a three-phase session at 16 A draws 16 A on each
of its three phases (11 kW at 230 V). Energy is in Wh, times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from csms.domain.grid import IEC_MIN_CURRENT_A, CapacityHold, GridNode, Phases, Priority

__all__ = [
    "NodeLoad",
    "Period",
    "Plan",
    "SchedulerSettings",
    "SessionDemand",
    "SessionPlan",
    "Snapshot",
    "current_at",
]


@dataclass(frozen=True, slots=True)
class SessionDemand:
    """One charging session as the scheduler sees it."""

    id: str
    node_id: str  # the grid node the session's EVSE hangs from (usually its station's node)
    phases: Phases  # the grid phases it draws on (after the station's phase map)
    max_current_a: float  # what the EVSE and the car can take, including a cap learned from meter values
    arrived_at: datetime
    energy_wh: float | None = None  # energy still wanted; None = unknown (SchedulerSettings.default_energy_wh)
    departure: datetime | None = None  # None = unknown (arrival + SchedulerSettings.default_stay)
    priority: Priority = Priority.STANDARD
    min_current_a: float = IEC_MIN_CURRENT_A  # below this the session is paused (0 A), never offered less
    voltage_v: float = 230.0  # phase to neutral
    offered_a: float | None = None  # the limit the station has now; used to avoid flapping
    # Set when the station cannot be steered (it rejected the last profile, timed out, is offline or ignores
    # its limit): it is assumed to draw this much per phase and everything else is planned around it.
    fixed_a: float | None = None
    pilot_step_a: float = 1.0  # pilot granularity: integer amps by default (OCPP allows 0.1)
    # Its phases are not known yet (``phases`` is the station's, assumed for safety) and the caller wants them
    # learned: under per-phase limits it is admitted first in its class (the optimal planner: at its minimum in the
    # first slot, where that fits), so that it draws and its meter values show which phases the car uses. The
    # caller decides how long a session probes.
    probing: bool = False
    # The most it can be given until the next re-plan, when that is less than its maximum. The runtime sets it to the
    # current limit when its station was written to less than the write policy's interval ago, so a higher limit
    # would be held back (changes.select_changes), and to the minimum while its car is idle (it drew, and now takes
    # nothing). Planned at most this in the first slot, the room it cannot take now goes to sessions that can take it
    # (benchmarks/, the write-interval case: +0.35 to +0.9 point of the optimum's energy at 20-30% limits); its
    # laxity still counts its full maximum; a cap below its minimum (0: paused a moment ago) keeps it paused in the
    # first slot. None: no such cap.
    max_now_a: float | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[GridNode, ...]
    sessions: tuple[SessionDemand, ...]
    holds: tuple[CapacityHold, ...] = ()


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    slot: timedelta = timedelta(minutes=5)  # planning step; the real-time path plans the next slot in detail
    horizon: timedelta = timedelta(hours=24)
    default_stay: timedelta = timedelta(hours=8)  # departure when no one told us
    default_energy_wh: float = 30_000.0  # energy wanted when no one told us
    # Pace a session to finish this much before its departure: drivers' estimates are often an hour out, and a
    # car paced to its estimate leaves short half the time. Chosen with ``due_within`` and
    # ``priority_pace_margin`` on the scheduling benchmark (10 days, checked on 10 other days): sessions fully
    # served at 30% limits 81.7 -> 85.8% (per phase) and 85.8 -> 87.1% (power) with Jain 0.96 / 0.97, energy
    # +0.7 / +0.3 point of the optimum at 40%; it costs energy where capacity is too short for every car to be done
    # early: -2.0 / -1.0 points at 20%, -0.2 / -0.9 at 30% (other days: -0.8 to -1.8).
    pace_margin: timedelta = timedelta(hours=1.5)
    # A session above the standard class is paced to finish this much before its departure (the larger of the
    # two margins applies): more than the others, so that it keeps its head start (at 1.5 h, the same as the
    # others, the priority class's fill at a per-phase 20% limit fell below 99% of the most the LP can give it).
    priority_pace_margin: timedelta = timedelta(hours=2.5)
    # A session already charging keeps its place over a paused one unless the paused one is this much more
    # urgent (seconds of laxity): pausing and resuming cost profile writes and annoy cars.
    keep_charging_bonus_s: float = 900.0
    # Sessions with less laxity than this are all due (departure estimates are off by about an hour, so finer
    # laxity says little): among them the one needing the least time at full current comes first, so a car that
    # can still be finished before it leaves is, rather than one that cannot finish anyway taking its place; and
    # each is admitted at its pace (``pace_admission_when_due``). 2.5 h rather than 90 min: with the pace margin,
    # +4 to +6 points of sessions fully served at 20% limits (see ``pace_margin``).
    due_within: timedelta = timedelta(hours=2.5)
    # A session above the standard class is admitted ahead of the standard class once it has less laxity than this;
    # before that it queues among them by laxity. Admitted first from the moment it plugs in, it took room the
    # standard cars leaving sooner needed and cost energy in all; waiting until it has 6 h of laxity left keeps the
    # priority class's fill (benchmarks/, 10 days: >= 99.0% of the most the LP can give it at every limit) and gains
    # 0.6-1.0 point of the optimum's energy at 20-30% limits, Jain up to +0.02.
    priority_due_within: timedelta = timedelta(hours=6)
    # How far drivers' departure estimates are typically off (one standard deviation; research: about an hour). The
    # optimal planner values current planned at a moment by the chance that the car is still plugged in then
    # (normal around the estimate) and plans up to one spread past the estimate, so a car that may leave early
    # is charged early and one that stays late is not given up at its estimate (benchmarks/, 10 days, MPC: +0.9 to
    # +1.8 points of the optimum's energy at 20-30% limits, +11 to +15 points fully served at 30%, a third fewer
    # writes; Jain at 20% 0.861 -> 0.837 / 0.804). 0: departures are exact.
    departure_spread: timedelta = timedelta(hours=1)
    # A session under power limits only is admitted at its pace rather than its minimum (see realtime.py).
    pace_admission_on_power: bool = True
    # A session above the standard class is admitted at its pace under any limit (see realtime.py).
    pace_admission_for_priority: bool = True
    # A session that is due (less laxity than ``due_within``) is admitted at its pace under any limit: at 6 A it
    # could not finish (benchmarks/, 10 days, per-phase limits: +0.9 / +1.1 points of the optimum's energy at 30 /
    # 40%, 40% now 98.6%; +1.8 points fully served at 40%; within 0.2 point elsewhere; power limits unchanged,
    # where every session is admitted at its pace already).
    pace_admission_when_due: bool = True


# Period, SessionPlan and NodeLoad are named tuples rather than frozen dataclasses: a plan of a large site holds
# one per session (and node), and building ten thousand frozen dataclasses costs as much as planning them.


class Period(NamedTuple):
    start: datetime
    current_a: float


class SessionPlan(NamedTuple):
    """Piecewise-constant current limit for one session from the plan's start to its end."""

    session_id: str
    periods: tuple[Period, ...]

    @property
    def current_a(self) -> float:
        return self.periods[0].current_a

    def current_at(self, when: datetime) -> float:
        return current_at(self.periods, when, before=self.periods[0].current_a)


def current_at(periods: Sequence[Period], when: datetime, before: float) -> float:
    """The current of the period in force at ``when`` (periods in order of start), ``before`` ahead of them all."""
    current = before
    for period in periods:
        if period.start > when:
            break
        current = period.current_a
    return current


class NodeLoad(NamedTuple):
    """A node's planned load from ``start`` until the next NodeLoad of the same node (or the plan's end)."""

    node_id: str
    start: datetime
    load_a: tuple[float, float, float]  # per phase L1..L3: planned sessions + fixed + unmanaged + held
    limit_a: float | None
    power_w: float
    limit_w: float | None


@dataclass(frozen=True, slots=True)
class Plan:
    created_at: datetime
    end: datetime
    algorithm: str
    sessions: Mapping[str, SessionPlan]
    # Computes ``loads`` on first use: applying a plan never needs them, only the API's plan view does, and on a
    # large site they cost a sizeable part of a re-plan.
    loads_from: Callable[[], tuple[NodeLoad, ...]] = field(default=tuple, repr=False, compare=False)
    # Nodes whose load we cannot steer (unmanaged, held, fixed sessions) already exceeds the limit: every
    # controllable session under them is paused and the operator must be told.
    overloaded: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)  # session id -> why it gets what it gets
    _loads: list[tuple[NodeLoad, ...]] = field(default_factory=list, repr=False, compare=False)

    @property
    def loads(self) -> tuple[NodeLoad, ...]:
        """Every node's planned load per stretch of the plan (computed once, on first use)."""
        if not self._loads:
            self._loads.append(self.loads_from())
        return self._loads[0]

    def current_a(self, session_id: str) -> float:
        return self.sessions[session_id].current_a
