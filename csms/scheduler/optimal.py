"""The optimal planner: one linear program over the whole horizon, solved with HiGHS.

Formulation (our own). Variables r[i,t] >= 0 are session i's current in amps per phase during slot t, created only
for the slots that overlap the session's window [max(start, arrived_at), departure + departure_spread). With
h[i,t] the hours of slot t inside that window and w[i,t] = h[i,t] x V_i x phases_i (Wh per amp):

- bounds: r[i,t] <= max_current_a (in the first slot also <= max_now_a, when a session has one); in the first slot
  r[i,0] >= min_current_a for a session still probing its phases under a per-phase limit, where that fits
  (``_probing_floors``; dropped again in a priority stage where it does not fit beside the classes above)
- energy: sum_t h[i,t] r[i,t] <= energy_wh / (V_i x phases_i)        (<=, never =: demand may be infeasible)
- limits: sum_i a[c,i] r[i,t] <= capacity[c,t] for every constraint c of the network and slot t, where the
  capacity is ``Network.capacities_between`` over the slot, clamped at 0 (a node already overloaded by load we
  cannot steer pauses every session under it)
- objective: maximise sum_i,t w[i,t] x p[i,t] x (1 + early_weight x (T - t_mid) / T) x r[i,t], where p[i,t] is
  the chance that the car is still plugged in at the slot's middle: departures normal around the estimate with
  standard deviation ``settings.departure_spread`` (drivers' estimates are often an hour out), and the window runs
  to one spread past the estimate. So each car's energy is planned where it is most likely still there, and when
  cars compete for a moment the one more likely to stay gets it. With a spread of 0 p = 1 and this is the energy.

Energy comes first; the (T - t)/T term only breaks ties towards charging early, so that capacity is left for
arrivals we do not know about yet (``EARLY_WEIGHT`` bounds what it can cost: 0.1% of the energy at most).
Priority classes are exact: each class above the lowest is maximised on its own first and held there
(``optimal_lp.solve_lp`` says why weights cannot do it). An optional stage (``fairness=True``) then maximises the
lowest delivered/attainable ratio while holding every class's energy. Matrices are built with numpy in HiGHS's
column-wise form (``optimal_lp.py``).

Slots (``horizon_grid``): ``settings.slot`` first, each next slot three times as long up to 3 h (5, 15, 45, 135
min, then 3 h: 11 slots for 24 h), plus a cut wherever a limit window or capacity hold starts or ends, so that no
slot straddles a limit change. Only the first slot is acted on before the next re-plan; the later ones only have
to tell which sessions need current now. Measured in the scheduling benchmark's closed-loop simulation (100 EVSEs,
4 days x 3 site limits), grids from 44 slots (5 min for the first hour, 15 min to 4 h, then 1 h) down to 9 slots
delivered the same energy within noise (80.0-80.5% of the demand on average), while at 10,000 sessions the
44-slot grid takes about 15 s to solve and this one 1.4-2 s.

Method: dual simplex with HiGHS's presolve off (``build_lp`` already drops what presolve would; presolve cost a
third of the solve at 10,000 sessions). Simplex beat HiGHS's interior point (IPX) at every size we measured: at
10,000 sessions 1.4-2 s of CPU against 1.8 s without crossover and 3.6 s with it (PDLP > 50 s); on whole offline
days with 5-minute slots, 1.1 s against 6.2 s at 1,000 sessions. ``method="ipm"`` remains available to ``solve``.

Timings of the whole ``plan_optimal`` on this 2-core box (``benchmarks/scheduler_optimal.py``, CPU time; the box
is shared, so wall-clock p99 runs higher while others work): 100 / 1,000 / 10,000 sessions on a site -> 10
feeders -> 2-EVSE stations tree with 20% FLEET sessions take 7-9 ms / 78-87 ms / 1.5 s; the scheduling
benchmark's busy moment (ACN-shaped demand, 10 stations per feeder) 8-13 ms / 100-110 ms / 2.4-2.6 s. The
optional fairness stage is not cheap: 11 ms / 0.29 s / 28-50 s for ``solve`` alone, so it is off by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from csms.domain.grid import CapacityHold, GridNode
from csms.scheduler.model import NodeLoad, Period, Plan, SchedulerSettings, SessionDemand, SessionPlan, Snapshot
from csms.scheduler.network import Network, compile_network, under_power_only
from csms.scheduler.optimal_lp import build_lp, first_slot_cap, session_windows, solve_lp, wanted_energy_wh
from csms.scheduler.pilots import round_to_pilots, take_if_room

__all__ = ["EARLY_WEIGHT", "Solution", "horizon_grid", "plan_optimal", "solve", "uniform_grid"]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

# Weight of the "charge earlier" term relative to energy. Small, so that it only breaks ties between schedules that
# deliver the same energy; a trade of energy for earliness can cost at most this fraction of the energy.
EARLY_WEIGHT = 1e-3
# Currents below this are solver noise, not a plan.
NOISE_A = 1e-6
SLOT_GROWTH = 3
LONGEST_SLOT = timedelta(hours=3)
MAX_EXTRA_CUTS = 48


@dataclass(frozen=True, slots=True)
class Solution:
    """The continuous optimum: ``rates[i, t]`` (A per phase) for ``network.sessions[i]`` in slot t."""

    boundaries: tuple[datetime, ...]  # slot t is [boundaries[t], boundaries[t + 1])
    rates: Floats  # shape (sessions, slots)
    energy_wh: Floats  # per session, what ``rates`` deliver inside its window
    capacities: Floats  # shape (constraints, slots): Network.capacities_between per slot, before clamping at 0
    status: str  # "optimal", "empty" (nothing to decide) or HiGHS's model status when it failed


def uniform_grid(start: datetime, end: datetime, step: timedelta) -> tuple[datetime, ...]:
    """Slot boundaries every ``step`` from ``start``; the last slot ends at ``end`` (and may be shorter)."""
    points = [start]
    while points[-1] + step < end:
        points.append(points[-1] + step)
    return (*points, end) if end > start else (start,)


def horizon_grid(start: datetime, settings: SchedulerSettings, network: Network | None = None) -> tuple[datetime, ...]:
    """Re-plan slots: ``settings.slot`` first, each next slot ``SLOT_GROWTH`` times longer up to ``LONGEST_SLOT``,
    and a cut wherever ``network``'s limits change (up to ``MAX_EXTRA_CUTS`` of them)."""
    end = start + settings.horizon
    points = {start, end}
    when, step = start, settings.slot
    while when < end:
        points.add(when)
        when += step
        step = min(step * SLOT_GROWTH, max(LONGEST_SLOT, settings.slot))
    if network is not None:
        points.update(sorted(b for b in network.boundaries if start < b < end)[:MAX_EXTRA_CUTS])
    return tuple(sorted(points))


def plan_optimal(snapshot: Snapshot, now: datetime, settings: SchedulerSettings) -> Plan:
    """The LP optimum over ``settings.horizon`` from ``now``, rounded to pilot currents that keep every limit.

    Raises:
        GridError: the snapshot's tree or sessions are inconsistent.
    """
    end = now + settings.horizon
    network = compile_network(snapshot, now, end)
    boundaries = horizon_grid(now, settings, network)
    order = _urgency_order(network.sessions, now, settings)
    floors = _probing_floors(network, boundaries, order)
    solution = solve(network, boundaries, settings, first_slot_floor=floors)
    pilots = _round(network, solution, order)
    sessions = _session_plans(network, solution.boundaries, pilots)
    overloaded = {network.constraints[k].node_id for k in np.flatnonzero((solution.capacities < 0).any(axis=1))}
    notes = {}
    if solution.status not in ("optimal", "empty"):
        notes = {s.id: f"paused: the solver stopped with {solution.status}" for s in network.sessions}
    for fixed in network.fixed:
        notes[fixed.id] = f"not steerable: planned around a fixed {fixed.fixed_a} A"
    return Plan(
        created_at=now,
        end=end,
        algorithm="optimal",
        sessions=sessions,
        loads_from=lambda: _node_loads(network, solution.boundaries, pilots, snapshot.holds),
        overloaded=tuple(sorted(overloaded)),
        notes=notes,
    )


def solve(
    network: Network,
    boundaries: Sequence[datetime],
    settings: SchedulerSettings,
    *,
    early_weight: float = EARLY_WEIGHT,
    fairness: bool = False,
    method: str = "simplex",
    first_slot_floor: Floats | None = None,
) -> Solution:
    """Continuous optimal currents for ``network.sessions`` over the slots ``boundaries`` cuts.

    A session may only get current inside [max(boundaries[0], arrived_at), departure + settings.departure_spread):
    sessions that arrive later in the horizon make this the offline optimum of a day with known arrivals (with a
    spread of 0: departures known too). ``method`` is "simplex" or "ipm".
    ``first_slot_floor`` (per session, fitting the first slot's capacities together) is the least current each
    gets in the first slot (``_probing_floors``).
    """
    boundaries = tuple(boundaries)
    capacities = _slot_capacities(network, boundaries)
    rates = np.zeros((len(network.sessions), len(boundaries) - 1))
    lp = build_lp(network, boundaries, np.maximum(capacities, 0.0), settings, early_weight, first_slot_floor)
    status = "empty"
    if lp.var_session.size:
        x, status = solve_lp(lp, method=method, fairness=fairness)
        rates[lp.var_session, lp.var_slot] = np.where(x > NOISE_A, np.minimum(x, lp.upper[: x.size]), 0.0)
    delivered = rates[lp.var_session, lp.var_slot] * lp.wh_per_a
    energy = np.bincount(lp.var_session, weights=delivered, minlength=len(network.sessions))
    return Solution(boundaries, rates, energy.astype(np.float64), capacities, status)


def _slot_capacities(network: Network, boundaries: tuple[datetime, ...]) -> Floats:
    """Per constraint and slot, ``Network.capacities_between`` over the slot."""
    if not network.constraints:
        return np.zeros((0, len(boundaries) - 1))
    columns = [network.capacities_between(a, b) for a, b in zip(boundaries, boundaries[1:], strict=False)]
    return np.array(columns, dtype=np.float64).reshape(len(columns), len(network.constraints)).T.copy()


# --- from the continuous optimum to a Plan ----------------------------------------------------------------------


def _urgency_order(sessions: Sequence[SessionDemand], now: datetime, settings: SchedulerSettings) -> list[int]:
    """Session indices, most urgent first: higher priority, then less laxity (time left minus time needed at full
    current); a session already charging counts ``keep_charging_bonus_s`` more urgent, so it keeps its place."""
    begin, end = session_windows(sessions, now, settings)
    power_w = np.array([s.max_current_a * s.voltage_v * len(s.phases) for s in sessions], dtype=np.float64)
    wanted_wh = np.array([wanted_energy_wh(s, settings) for s in sessions], dtype=np.float64)
    needed_s = np.divide(wanted_wh * 3600, power_w, out=np.zeros_like(power_w), where=power_w > 0)
    charging = np.array([bool(s.offered_a) for s in sessions], dtype=np.bool_)
    laxity = end - begin - needed_s - np.where(charging, settings.keep_charging_bonus_s, 0.0)
    priority = np.array([int(s.priority) for s in sessions], dtype=np.int64)
    order: list[int] = np.lexsort((laxity, -priority)).tolist()
    return order


def _probing_floors(network: Network, boundaries: tuple[datetime, ...], order: list[int]) -> Floats | None:
    """Per session, its minimum current in the first slot if it is probing under a per-phase limit and fits, else
    0; None when no session gets a floor.

    A session whose phases are unknown is planned on every phase of its station: a single-phase car that the LP
    keeps paused never shows that it loads only one, so it keeps taking the room of three (the real-time path
    admits it first in its class for the same reason, realtime.py). Under power limits alone a car's phases do not
    change where its load lands, so it gets no floor. Floors are handed out in ``order`` (most urgent first)
    while every constraint the session is under still has room for its minimum in the first slot; the LP then
    plans everything else around them (benchmarks/, 5 days: +3 points of the optimum's energy at a per-phase 20%
    limit, the same within noise at 30% and under power limits).
    """
    sessions = network.sessions
    probing = [i for i in order if sessions[i].probing]
    if not probing or len(boundaries) < 2:
        return None
    power_only = under_power_only(network)
    slack = list(network.capacities_between(boundaries[0], boundaries[1]))
    floors = np.zeros(len(sessions))
    for i in probing:
        session = sessions[i]
        terms = network.session_constraints[i]
        minimum = session.min_current_a
        if power_only[i] or not terms or first_slot_cap(session) < minimum or session.max_current_a < minimum:
            continue
        if take_if_room(slack, terms, minimum):
            floors[i] = minimum
    return floors if floors.any() else None


def _round(network: Network, solution: Solution, order: list[int]) -> Floats:
    """Each slot's rates rounded to pilot currents within that slot's capacities."""
    pilots = np.zeros_like(solution.rates)
    capacities = np.maximum(solution.capacities, 0.0)
    for slot in range(solution.rates.shape[1]):
        rates = solution.rates[:, slot]
        if not rates.any():
            continue
        if (
            slot
            and np.array_equal(rates, solution.rates[:, slot - 1])
            and np.array_equal(capacities[:, slot], capacities[:, slot - 1])
        ):
            pilots[:, slot] = pilots[:, slot - 1]
            continue
        pilots[:, slot] = round_to_pilots(network, rates.tolist(), capacities[:, slot].tolist(), order)
    return pilots


def _session_plans(network: Network, boundaries: tuple[datetime, ...], pilots: Floats) -> dict[str, SessionPlan]:
    """Per session, its pilots as periods: one where the current changes (and one at the start)."""
    if pilots.shape[1] == 0:
        return {s.id: SessionPlan(s.id, (Period(boundaries[0], 0.0),)) for s in network.sessions}
    changes = np.ones(pilots.shape, dtype=np.bool_)
    changes[:, 1:] = pilots[:, 1:] != pilots[:, :-1]
    rows, slots = np.nonzero(changes)  # row-major: by session, then slot
    periods = [Period(boundaries[t], c) for t, c in zip(slots.tolist(), pilots[rows, slots].tolist(), strict=True)]
    ends = np.cumsum(np.bincount(rows, minlength=pilots.shape[0])).tolist()
    starts = [0, *ends][:-1]
    return {
        s.id: SessionPlan(s.id, tuple(periods[a:b])) for s, a, b in zip(network.sessions, starts, ends, strict=True)
    }


def _node_loads(
    network: Network, boundaries: tuple[datetime, ...], pilots: Floats, holds: Sequence[CapacityHold]
) -> tuple[NodeLoad, ...]:
    """Per limited node, its planned load per slot (merged while nothing changes): our sessions' pilots plus
    what we cannot steer (fixed sessions, unmanaged load below it, held capacity)."""
    limited = [node for node in network.nodes.values() if _has_limit(node)]
    if not limited or pilots.shape[1] == 0:
        return ()
    position = {node.id: j for j, node in enumerate(limited)}
    slots = len(boundaries) - 1
    flat_load = np.zeros((len(limited) * 3, slots))
    power = np.zeros((len(limited), slots))

    # One entry per (session, limited node above it, phase): row 3 x node + phase - 1.
    above: dict[str, list[int]] = {}
    rows: list[int] = []
    members: list[int] = []
    for i, session in enumerate(network.sessions):
        if (nodes := above.get(session.node_id)) is None:
            nodes = above[session.node_id] = [position[a] for a in network.ancestors[session.node_id] if a in position]
        entries = [3 * j + phase - 1 for j in nodes for phase in session.phases]
        rows += entries
        members += [i] * len(entries)
    if rows:
        row_array, member_array = np.asarray(rows), np.asarray(members)
        volts = np.array([s.voltage_v for s in network.sessions])[member_array]
        for slot in range(slots):
            current = pilots[member_array, slot]
            flat_load[:, slot] = np.bincount(row_array, weights=current, minlength=flat_load.shape[0])
            power[:, slot] = np.bincount(row_array // 3, weights=current * volts, minlength=len(limited))
    phase_load = flat_load.reshape(len(limited), 3, slots)

    def steady(node_id: str, phases: Sequence[int], current: float, voltage: float, active: Bools) -> None:
        for node in network.ancestors[node_id]:
            if (j := position.get(node)) is not None:
                for phase in phases:
                    phase_load[j, phase - 1, active] += current
                power[j, active] += current * voltage * len(phases)

    always = np.ones(slots, dtype=np.bool_)
    for node in network.nodes.values():
        for phase, current in zip((1, 2, 3), node.unmanaged_a, strict=True):
            if current and phase in node.phases:
                steady(node.id, (phase,), current, node.voltage_v, always)
    for session in network.fixed:
        steady(session.node_id, session.phases, session.fixed_a or 0.0, session.voltage_v, always)
    edges = np.array([(b - boundaries[0]).total_seconds() for b in boundaries])
    for hold in holds:
        if hold.node_id in network.nodes:
            begin, end = ((t - boundaries[0]).total_seconds() for t in (hold.start, hold.end))
            active = (edges[:-1] < end) & (edges[1:] > begin)
            steady(hold.node_id, hold.phases, hold.current_a, network.nodes[hold.node_id].voltage_v, active)

    phase_load, power = phase_load.round(3), power.round(1)  # like loads.node_loads: no float noise in the API
    limit_a = np.array([_limits(node.current_limit_at, node, boundaries) for node in limited]).reshape(-1, slots)
    limit_w = np.array([_limits(node.power_limit_at, node, boundaries) for node in limited]).reshape(-1, slots)
    state = np.concatenate((phase_load, power[:, None], limit_a[:, None], limit_w[:, None]), axis=1)
    changed = np.ones((len(limited), slots), dtype=np.bool_)
    changed[:, 1:] = (np.diff(np.nan_to_num(state, nan=-1.0), axis=2) != 0).any(axis=1)
    js, ts = np.nonzero(changed)
    loads = zip(
        js.tolist(),
        ts.tolist(),
        phase_load[js, :, ts].tolist(),
        _nan_to_none(limit_a[js, ts]),
        power[js, ts].tolist(),
        _nan_to_none(limit_w[js, ts]),
        strict=True,
    )
    return tuple(
        NodeLoad(limited[j].id, boundaries[t], (a[0], a[1], a[2]), limit, watts, limit_watts)
        for j, t, a, limit, watts, limit_watts in loads
    )


def _limits(
    limit_at: Callable[[datetime], float | None], node: GridNode, boundaries: tuple[datetime, ...]
) -> list[float]:
    """The lowest limit in force during each slot (NaN: none), cheap for the many nodes without limit windows."""
    slots = len(boundaries) - 1
    if not node.schedule:
        value = limit_at(boundaries[0])
        return [np.nan if value is None else value] * slots
    lowest: list[float] = []
    for start, stop in zip(boundaries, boundaries[1:], strict=False):
        values = [v for v in map(limit_at, (start, *node.change_points(start, stop))) if v is not None]
        lowest.append(min(values, default=np.nan))
    return lowest


def _has_limit(node: GridNode) -> bool:
    windows = any(w.max_current_a is not None or w.max_power_w is not None for w in node.schedule)
    return node.max_current_a is not None or node.max_power_w is not None or windows


def _nan_to_none(values: Floats) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]
