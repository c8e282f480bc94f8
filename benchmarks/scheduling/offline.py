"""The offline optimum of a simulated day: an LP over the whole day with every session known in advance.

What it knows and includes: true arrivals and departures (quantised to the simulator's step), requested energy,
each car's maximum (EVSE and on-board charger), the taper above 80% state of charge (a linear bound: the rate in
a slot is at most the taper rate at the charge reached when the slot starts), every node's limit per phase or
in W, and the stations that cannot be steered (they reject or ignore profiles) as fixed loads: they draw what
their car wants regardless, so their per-slot peak is subtracted from the limits and their energy is counted.

What it leaves out: the 6 A minimum and integer pilots (currents are continuous in [0, max]), latency, estimate
errors, and learning a car's limit -- so it is an upper bound on what any controller could deliver.

Variables per session and slot of its stay: the current r (A per phase) and the energy delivered so far c (Wh),
linked by c_j = c_{j-1} + r_j x watts-per-amp x hours-in-slot; c is capped at the request. Solved with HiGHS on
row-wise sparse arrays (no modelling layer: its overhead dominates at scale).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np

from benchmarks.scheduling.cars import TAPER_SOC, standalone_draws
from benchmarks.scheduling.topology import Topology
from benchmarks.scheduling.workload import VOLTAGE_V, Behaviour, LimitKind, Workload, with_site_limit

__all__ = ["OfflineResult", "solve_offline"]

# Objective weight of the priority class's energy in the priority-first optimum: a watt-hour of it is worth more
# than any amount of other energy the network could trade for it (a phase amp for at most three), so the LP gives
# the class its most first and then maximises the rest.
PRIORITY_WEIGHT = 1_000.0


@dataclass(frozen=True, slots=True)
class OfflineResult:
    energy_wh: float  # the optimum: controllable sessions' best plus the fixed sessions' energy
    fleet_energy_wh: float  # the most the priority class can get (its own optimum), fixed sessions included
    # The most energy in all when the priority class first gets the most it can (what a scheduler that must put
    # the priority class first can at best deliver), fixed sessions included.
    priority_first_energy_wh: float
    delivered_wh: np.ndarray  # per session, in the total-energy optimum (one optimum of many)
    status: str
    solve_s: float
    columns: int
    rows: int


@dataclass(slots=True)
class _Rows:
    starts: list[np.ndarray]  # per batch: the length of each of its rows
    indices: list[np.ndarray]
    values: list[np.ndarray]
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    count: int = 0

    def add(
        self, indices: np.ndarray, values: np.ndarray, lower: np.ndarray, upper: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Rows of ``lengths`` consecutive entries each."""
        self.indices.append(indices)
        self.values.append(values)
        self.lower.append(lower)
        self.upper.append(upper)
        self.starts.append(lengths)
        self.count += len(lengths)


def _fixed_loads(
    workload: Workload, topology: Topology, fixed: list[int], step_s: float, slot_s: float, slots: int
) -> np.ndarray:
    """A (slots, nodes, 4) array: the highest load of the unsteerable sessions within each slot."""
    per_slot = np.zeros((slots, topology.size, 4))
    if not fixed:
        return per_slot
    n = len(workload.sessions)
    steps = math.ceil(slots * slot_s / step_s)
    draws = np.zeros((steps, n))
    for i in fixed:
        first, profile = standalone_draws(workload, workload.sessions[i], step_s)
        end = min(first + profile.size, steps)
        draws[first:end, i] = profile[: end - first]
    phase = np.array([[1.0 if p in workload.grid_phases(s) else 0.0 for p in (1, 2, 3)] for s in workload.sessions])
    watts = np.array([VOLTAGE_V * s.car_phases for s in workload.sessions])
    steps_per_slot = slot_s / step_s
    for k in np.flatnonzero(draws.any(axis=1)):
        slot = min(int(k // steps_per_slot), slots - 1)
        np.maximum(per_slot[slot], topology.loads(draws[k], phase.reshape(n, 3), watts), out=per_slot[slot])
    return per_slot


@dataclass(frozen=True, slots=True)
class _DayLp:
    lp: highspy.HighsLp  # without costs: each solve sets its own
    currents: int  # m: columns 0..m-1 are currents r, m..2m-1 the energy so far c
    owner: np.ndarray  # per current column: its session
    last: np.ndarray  # per current column: the last slot of its session's stay
    fixed_energy: np.ndarray  # per session: what an unsteerable one delivers on its own (0 for the others)


def solve_offline(
    workload: Workload,
    kind: LimitKind,
    limit: float,
    *,
    slot_s: float = 300.0,
    step_s: float = 10.0,
    taper: bool = True,
) -> OfflineResult:
    started = time.perf_counter()
    day = _day_lp(workload, kind, limit, slot_s, step_s, taper)
    n, m = len(workload.sessions), day.currents
    fleet = np.array([s.priority > 0 for s in workload.sessions], dtype=bool)

    def solve(weights: np.ndarray) -> tuple[str, np.ndarray]:
        highs = _highs(day, weights)
        highs.run()
        return highs.modelStatusToString(highs.getModelStatus()), _delivered(day, highs, n)

    status, delivered = solve(np.ones(n))
    _, fleet_delivered = solve(fleet.astype(float))
    _, priority_first = solve(1.0 + PRIORITY_WEIGHT * fleet)
    delivered += day.fixed_energy
    return OfflineResult(
        energy_wh=float(delivered.sum()),
        fleet_energy_wh=float((fleet_delivered + day.fixed_energy)[fleet].sum()),
        priority_first_energy_wh=float((priority_first + day.fixed_energy).sum()),
        delivered_wh=delivered,
        status=status,
        solve_s=time.perf_counter() - started,
        columns=2 * m,
        rows=day.lp.num_row_,
    )


@dataclass(frozen=True, slots=True)
class MinimumCheck:
    """The day's optimum when every current must be 0 or at least a minimum (a MILP), against the LP's."""

    lp_wh: float
    incumbent_wh: float  # the best schedule found that obeys the minimum: a lower bound on that optimum
    bound_wh: float  # the solver's dual bound: no schedule obeying the minimum delivers more
    status: str
    solve_s: float


def solve_offline_with_minimum(
    workload: Workload,
    kind: LimitKind,
    limit: float,
    *,
    minimum_a: float = 6.0,
    time_limit_s: float = 120.0,
    slot_s: float = 300.0,
    step_s: float = 10.0,
) -> MinimumCheck:
    """How much the LP's relaxation of the pilot's minimum is worth: the same day (without taper, which makes the
    bounds depend on the energy so far) with each current 0 or in [minimum, max] for a whole slot, solved by HiGHS's
    MILP within ``time_limit_s``. Fixed sessions' energy is counted in all three figures, as in ``solve_offline``."""
    started = time.perf_counter()
    day = _day_lp(workload, kind, limit, slot_s, step_s, taper=False)
    n, m = len(workload.sessions), day.currents
    highs = _highs(day, np.ones(n))
    highs.run()
    lp_wh = float(_delivered(day, highs, n).sum())
    upper = np.asarray(day.lp.col_upper_)[:m]
    can = np.flatnonzero(upper >= minimum_a).astype(np.int32)
    cannot = np.flatnonzero(upper < minimum_a).astype(np.int32)
    highs.changeColsBounds(can.size, can, np.full(can.size, minimum_a), upper[can])
    highs.changeColsIntegrality(can.size, can, np.full(can.size, highspy.HighsVarType.kSemiContinuous))
    if cannot.size:
        highs.changeColsBounds(cannot.size, cannot, np.zeros(cannot.size), np.zeros(cannot.size))
    highs.setOptionValue("time_limit", time_limit_s)
    highs.setOptionValue("mip_rel_gap", 1e-3)
    highs.run()
    info = highs.getInfo()
    fixed = float(day.fixed_energy.sum())
    return MinimumCheck(
        lp_wh=lp_wh + fixed,
        incumbent_wh=float(_delivered(day, highs, n).sum()) + fixed,
        bound_wh=float(info.mip_dual_bound) + fixed,
        status=highs.modelStatusToString(highs.getModelStatus()),
        solve_s=time.perf_counter() - started,
    )


def _highs(day: _DayLp, weights: np.ndarray) -> highspy.Highs:
    """A solver holding the day's LP with the objective: the energy each session ends with, times its weight."""
    day.lp.col_cost_ = np.concatenate([np.zeros(day.currents), np.where(day.last, weights[day.owner], 0.0)])
    highs = highspy.Highs()  # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    if day.currents > 200_000:  # interior point scales better on the 10k-session days (research §3)
        highs.setOptionValue("solver", "ipm")
    highs.passModel(day.lp)
    return highs


def _delivered(day: _DayLp, highs: highspy.Highs, n: int) -> np.ndarray:
    """Per session, the energy the solver's solution delivers."""
    delivered = np.zeros(n)
    if day.currents:
        values = np.asarray(highs.getSolution().col_value)
        np.add.at(delivered, day.owner[day.last], values[day.currents + np.flatnonzero(day.last)])
    return delivered


def _day_lp(workload: Workload, kind: LimitKind, limit: float, slot_s: float, step_s: float, taper: bool) -> _DayLp:
    sessions = workload.sessions
    n = len(sessions)
    nodes = with_site_limit(workload.site, kind, limit)
    topology = Topology(workload, nodes)
    slots = max(1, math.ceil(workload.end_s / slot_s))
    steerable = [i for i, s in enumerate(sessions) if workload.station_of(s).behaviour is Behaviour.OBEYS]
    fixed = [i for i in range(n) if i not in set(steerable)]
    fixed_load = _fixed_loads(workload, topology, fixed, step_s, slot_s, slots)
    fixed_energy = np.zeros(n)
    for i in fixed:
        _, profile = standalone_draws(workload, sessions[i], step_s)
        fixed_energy[i] = profile.sum() * VOLTAGE_V * sessions[i].car_phases * step_s / 3600.0

    # Columns: r (current) for every (session, slot of its stay), then c (energy so far) for the same pairs.
    owner, slot_of, hours = [], [], []
    for i in steerable:
        s = sessions[i]
        # The simulator plugs a car in at the first step at or after its arrival, and out likewise.
        a = math.ceil(s.arrival_s / step_s - 1e-9) * step_s
        d = math.ceil(s.departure_s / step_s - 1e-9) * step_s
        for t in range(int(a // slot_s), min(math.ceil(d / slot_s), slots)):
            overlap = min(d, (t + 1) * slot_s) - max(a, t * slot_s)
            if overlap > 1e-9:
                owner.append(i)
                slot_of.append(t)
                hours.append(overlap / 3600.0)
    owner_a = np.array(owner, dtype=np.intp)
    slot_a = np.array(slot_of, dtype=np.intp)
    hours_a = np.array(hours)
    m = owner_a.size
    max_a = np.array([min(workload.max_current_a(s), s.car_max_a) for s in sessions])
    watts = np.array([VOLTAGE_V * s.car_phases for s in sessions])
    requested = np.array([s.requested_wh for s in sessions])
    r_col = np.arange(m)
    c_col = m + np.arange(m)
    first = np.ones(m, dtype=bool)
    first[1:] = owner_a[1:] != owner_a[:-1]
    last = np.ones(m, dtype=bool)
    last[:-1] = owner_a[1:] != owner_a[:-1]

    rows = _Rows([], [], [], [], [])
    # Energy bookkeeping: c_j - c_{j-1} - watts x hours x r_j = 0.
    for has_previous in (False, True):
        sel = np.flatnonzero(~first if has_previous else first)
        coefficient = -watts[owner_a[sel]] * hours_a[sel]
        if has_previous:
            idx = np.stack([c_col[sel], c_col[sel - 1], r_col[sel]], axis=1).ravel()
            val = np.stack([np.ones(sel.size), -np.ones(sel.size), coefficient], axis=1).ravel()
            rows.add(idx, val, np.zeros(sel.size), np.zeros(sel.size), np.full(sel.size, 3))
        else:
            idx = np.stack([c_col[sel], r_col[sel]], axis=1).ravel()
            val = np.stack([np.ones(sel.size), coefficient], axis=1).ravel()
            rows.add(idx, val, np.zeros(sel.size), np.zeros(sel.size), np.full(sel.size, 2))
    upper_r = max_a[owner_a].copy()
    if taper:
        soc0 = np.array([s.initial_soc for s in sessions])
        capacity = np.array([s.capacity_wh for s in sessions])
        car_max = np.array([s.car_max_a for s in sessions])
        slope = car_max / (1.0 - TAPER_SOC)  # amps per unit of state of charge above the knee
        reaches = soc0 + requested / capacity > TAPER_SOC
        # The first slot's taper bound is a plain bound; later ones depend on the energy so far.
        np.minimum(upper_r, np.where(first, slope[owner_a] * (1.0 - soc0[owner_a]), np.inf), out=upper_r)
        sel = np.flatnonzero(~first & reaches[owner_a])
        o = owner_a[sel]
        idx = np.stack([r_col[sel], c_col[sel - 1]], axis=1).ravel()
        val = np.stack([np.ones(sel.size), slope[o] / capacity[o]], axis=1).ravel()
        rows.add(idx, val, np.full(sel.size, -np.inf), slope[o] * (1.0 - soc0[o]), np.full(sel.size, 2))
    # Node limits per slot, minus the unsteerable load.
    for level in topology.levels:
        node = level.index[owner_a] + level.rows.start
        for p in range(4):
            if p < 3:
                member = np.array([p + 1 in workload.grid_phases(sessions[i]) for i in owner_a], dtype=bool)
                coefficient = np.ones(m)
            else:
                member = np.ones(m, dtype=bool)
                coefficient = watts[owner_a]
            limit_p = topology.limits[node, p]
            member &= np.isfinite(limit_p)
            sel = np.flatnonzero(member)
            if sel.size == 0:
                continue
            key = node[sel] * slots + slot_a[sel]  # rows of the whole tree: node ids are global
            order = np.argsort(key, kind="stable")
            sel, key = sel[order], key[order]
            unique, start, lengths = np.unique(key, return_index=True, return_counts=True)
            row_node, row_slot = unique // slots, unique % slots
            room = np.maximum(topology.limits[row_node, p] - fixed_load[row_slot, row_node, p], 0.0)
            most = np.add.reduceat(coefficient[sel] * upper_r[sel], start)
            binding = most > room + 1e-9  # a row no combination of maxima can break is left out
            keep = np.repeat(binding, lengths)
            rows.add(
                r_col[sel[keep]],
                coefficient[sel[keep]],
                np.full(int(binding.sum()), -np.inf),
                room[binding],
                lengths[binding],
            )

    lp = highspy.HighsLp()
    lp.num_col_ = 2 * m
    lp.num_row_ = rows.count
    lp.col_lower_ = np.zeros(2 * m)
    lp.col_upper_ = np.concatenate([upper_r, requested[owner_a]])
    lp.row_lower_ = np.concatenate(rows.lower) if rows.lower else np.zeros(0)
    lp.row_upper_ = np.concatenate(rows.upper) if rows.upper else np.zeros(0)
    lengths_all = np.concatenate(rows.starts) if rows.starts else np.zeros(0, dtype=np.intp)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(lengths_all)]).astype(np.int32)
    lp.a_matrix_.index_ = np.concatenate(rows.indices).astype(np.int32) if rows.indices else np.zeros(0, np.int32)
    lp.a_matrix_.value_ = np.concatenate(rows.values) if rows.values else np.zeros(0)
    lp.sense_ = highspy.ObjSense.kMaximize
    return _DayLp(lp, m, owner_a, last, fixed_energy)
