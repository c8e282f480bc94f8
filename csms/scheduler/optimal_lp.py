"""The charging LP behind ``optimal.py``: sparse matrices built with numpy, solved in stages with HiGHS.

Columns are r[i,t], session i's current (A per phase) in slot t, only for the slots that overlap its window; then
one aggregate column per hub and slot (see ``_Topology``). Rows are the network's limits per slot (capacities
already clamped at 0 by the caller), each session's energy, and each hub's defining equation. Nothing here knows
about datetimes beyond the slot edges, or about plans.

Rows that cannot bind are never built: a limit with one active column in a slot becomes that column's bound, and
a limit whose columns together cannot exceed it is dropped (one station limit per EVSE, feeders with headroom...).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import highspy
import numpy as np
import numpy.typing as npt

from csms.scheduler.model import SchedulerSettings, SessionDemand
from csms.scheduler.network import POWER, Network

__all__ = ["ChargingLp", "build_lp", "first_slot_cap", "session_windows", "solve_lp", "wanted_energy_wh"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Power rows are divided by this voltage so that, like current rows, they count amps and the matrix stays scaled.
V_REF = 230.0
# A (node, phase) with at least this many sessions under it and a limit above it gets an aggregate column.
HUB_MIN_SESSIONS = 32
# Relative and absolute (kWh) slack on the rows that hold a stage's optimum, so that solver tolerances cannot
# make the next stage infeasible.
HOLD_RELATIVE = 1e-7
HOLD_ABSOLUTE = 1e-6


def session_windows(
    sessions: Sequence[SessionDemand], origin: datetime, settings: SchedulerSettings
) -> tuple[Floats, Floats]:
    """Per session, when it may draw current in seconds from ``origin``: [max(origin, arrival), departure)."""
    zero = origin.timestamp()
    arrived = np.array([s.arrived_at.timestamp() for s in sessions], dtype=np.float64) - zero
    stay = settings.default_stay.total_seconds()
    leaves = [s.departure.timestamp() - zero if s.departure is not None else np.nan for s in sessions]
    end = np.array(leaves, dtype=np.float64)
    end = np.where(np.isnan(end), arrived + stay, end)
    begin = np.maximum(arrived, 0.0)
    # Still plugged in after its expected departure: plan it as leaving one slot from now.
    return begin, np.where(end <= begin, begin + settings.slot.total_seconds(), end)


def wanted_energy_wh(session: SessionDemand, settings: SchedulerSettings) -> float:
    return settings.default_energy_wh if session.energy_wh is None else max(session.energy_wh, 0.0)


@dataclass(frozen=True, slots=True)
class ChargingLp:
    """The LP in HiGHS's column-wise form: session columns (session-major), then the hubs' aggregate columns."""

    var_session: Ints  # per session column: its session index
    var_slot: Ints  # per session column: its slot
    wh_per_a: Floats  # per session column: Wh one amp per phase delivers in the column's share of the slot
    upper: Floats  # per column: max current (or aggregate), lowered by single-member limits
    lower: Floats  # per column: 0, or a probing session's first-slot floor (``build_lp``'s ``first_slot_floor``)
    cost: Floats  # per column: objective coefficient (maximised); 0 for aggregates
    attainable_wh: Floats  # per session: min(energy wanted, what its own bounds allow)
    priority: Ints  # per session
    start: Ints  # CSC column starts
    index: Ints  # CSC row indices
    value: Floats  # CSC values
    row_lower: Floats
    row_upper: Floats

    def restricted_to(self, sessions: Bools) -> ChargingLp:
        """The same rows with only the columns of the sessions marked in ``sessions`` (and every aggregate)."""
        kept = np.ones(self.cost.size, dtype=np.bool_)
        kept[: self.var_session.size] = sessions[self.var_session]
        counts = np.diff(self.start)
        entries = np.repeat(kept, counts)
        session_kept = kept[: self.var_session.size]
        return replace(
            self,
            var_session=self.var_session[session_kept],
            var_slot=self.var_slot[session_kept],
            wh_per_a=self.wh_per_a[session_kept],
            upper=self.upper[kept],
            lower=self.lower[kept],
            cost=self.cost[kept],
            start=_starts(counts[kept]),
            index=self.index[entries],
            value=self.value[entries],
        )


def build_lp(
    network: Network,
    boundaries: Sequence[datetime],
    capacities: Floats,
    settings: SchedulerSettings,
    early_weight: float,
    first_slot_floor: Floats | None = None,
) -> ChargingLp:
    """The LP for ``network.sessions`` over the slots between ``boundaries``.

    ``capacities`` has one row per network constraint and one column per slot, already >= 0. The objective is
    energy in kWh, each column's weighted by 1 + early_weight x (T - t_mid) / T to prefer charging early.
    ``first_slot_floor`` (per session) is the least current it gets in the first slot; the caller checks that the
    floors fit the first slot's capacities together, and they are lowered here to what a session can take (its
    bound, its remaining energy).
    """
    edges = np.array([(b - boundaries[0]).total_seconds() for b in boundaries])
    columns = _SessionColumns.of(network.sessions, boundaries[0], edges, settings)
    topology = _Topology.of(network)
    slots = edges.size - 1
    capacities = capacities * topology.scale[:, None]
    hub_column = np.arange(topology.hub_limit.size * slots)
    hub_of, hub_slot = hub_column // slots, hub_column % slots
    hub_limit = topology.hub_limit[hub_of]
    hub_upper = np.where(hub_limit >= 0, capacities[np.maximum(hub_limit, 0), hub_slot], np.inf)
    upper = np.concatenate((columns.max_a, hub_upper))

    # Entries keyed by family x slots + slot: sessions' (in column order), hubs' own rows, hubs' rows above.
    n_vars = columns.session.size
    which, position = _expand(topology.session_start, columns.session)
    own = hub_column + n_vars
    above_which, above_position = _expand(topology.hub_start, hub_of)
    column = np.concatenate((which, own, own[above_which]))
    family = np.concatenate(
        (topology.session_family[position], topology.limits + hub_of, topology.hub_family[above_position])
    )
    slot = np.concatenate((columns.slot[which], hub_slot, hub_slot[above_which]))
    coefficient = np.concatenate(
        (topology.session_coefficient[position], np.full(own.size, -1.0), np.ones(above_which.size))
    )
    order = np.argsort(column, kind="stable")  # the hubs' two groups interleave; the sessions' are in order
    column, family, slot, coefficient = column[order], family[order], slot[order], coefficient[order]
    key = family * slots + slot
    capacity_of_key = np.concatenate((capacities.ravel(), np.zeros(hub_column.size)))
    # An unlimited constraint during a slot has no row there.
    finite = np.isfinite(capacity_of_key[key])
    column, key, coefficient = column[finite], key[finite], coefficient[finite]
    is_row = _prune(column, key, coefficient, upper, capacity_of_key, topology.limits * slots)
    kept = is_row[key]
    column, row, coefficient = column[kept], (np.cumsum(is_row) - 1)[key[kept]], coefficient[kept]
    limit_rows = int(is_row.sum())
    is_hub_row = np.arange(is_row.size)[is_row] >= topology.limits * slots

    # Energy rows in amp-hours per phase, only where the session's bounds could exceed its demand.
    can_take = np.bincount(columns.session, weights=columns.hours * upper[:n_vars], minlength=columns.wanted_ah.size)
    has_energy_row = columns.wanted_ah < can_take * (1 - 1e-9)
    energy_row = np.where(has_energy_row, limit_rows + np.cumsum(has_energy_row) - 1, -1)
    start, index, value = _assemble(column, row, coefficient, upper.size, energy_row[columns.session], columns.hours)

    horizon_s = max(float(edges[-1]), 1.0)
    earliness = 1.0 + early_weight * (horizon_s - columns.middle) / horizon_s
    cost = np.concatenate((columns.wh_per_a / 1000.0 * columns.staying * earliness, np.zeros(hub_column.size)))
    attainable = np.bincount(columns.session, weights=columns.wh_per_a * upper[:n_vars], minlength=can_take.size)
    lower = np.zeros(upper.size)
    if first_slot_floor is not None:
        first = columns.slot == 0
        with np.errstate(divide="ignore"):  # a column without hours takes no floor
            energy_cap = np.where(columns.hours > 0, columns.wanted_ah[columns.session] / columns.hours, 0.0)
        floor = np.minimum(np.minimum(first_slot_floor[columns.session], upper[:n_vars]), energy_cap)
        lower[:n_vars] = np.where(first, np.maximum(floor, 0.0), 0.0)
    return ChargingLp(
        var_session=columns.session,
        var_slot=columns.slot,
        wh_per_a=columns.wh_per_a,
        upper=upper,
        lower=lower,
        cost=cost,
        attainable_wh=np.minimum(columns.wanted_ah * columns.volt_phases, attainable),
        priority=np.array([int(s.priority) for s in network.sessions], dtype=np.int64),
        start=start,
        index=index,
        value=value,
        row_lower=np.concatenate((np.where(is_hub_row, 0.0, -np.inf), np.full(int(has_energy_row.sum()), -np.inf))),
        row_upper=np.concatenate((capacity_of_key[is_row], columns.wanted_ah[has_energy_row])),
    )


def solve_lp(lp: ChargingLp, *, method: str = "simplex", fairness: bool = False) -> tuple[Floats, str]:
    """Optimal session columns and "optimal", or zeros and HiGHS's model status when a stage fails.

    Priority classes are lexicographic. For each class but the lowest, from the top: maximise that class's energy
    alone, in an LP without the lower classes' columns (they cannot help it, and leaving them out keeps it small),
    with the classes above held at their optimum. Then solve the full objective with every class above the lowest
    held. Weights cannot do this in one solve: a session leaving a minute into a three-hour slot blocks a whole
    slot's capacity for a minute's energy, so the exchange rate between classes has no useful bound (we measured 185
    kWh of lower-class energy per kWh of higher). ``fairness`` adds a last stage (``_Stage.fairest``).

    A class's own stage counts its energy as planned, not weighted by the chance that its cars are still there
    (``ChargingLp.cost`` is): weighted, it kept less for the class and cost 1-3 points of the optimum's energy at
    20-30% limits (benchmarks/, 10 days). Floors (``ChargingLp.lower``) never cost a class above: a stage in which a
    class's floors do not fit beside the optimum held for the classes above is solved again without them.
    """
    holds: list[tuple[int, float]] = []
    classes = sorted(set(lp.priority[lp.var_session].tolist()), reverse=True)
    for priority in classes[:-1]:
        own = np.where(lp.priority[lp.var_session] == priority, lp.wh_per_a / 1000.0, 0.0)
        stage, x, lp = _run_stage(lp, holds, priority, method, cost=own)
        if x is None:
            return np.zeros(lp.var_session.size), stage.status
        holds.append((priority, stage.class_kwh(x, priority)))
    stage, x, lp = _run_stage(lp, holds, classes[-1] if classes else 0, method)
    if x is None:
        return np.zeros(lp.var_session.size), stage.status
    if fairness:
        x = stage.fairest(x, classes)
    return x[: lp.var_session.size], stage.status


def _run_stage(
    lp: ChargingLp, holds: Sequence[tuple[int, float]], priority: int, method: str, cost: Floats | None = None
) -> tuple[_Stage, Floats | None, ChargingLp]:
    """The stage for the classes from ``priority`` up (with ``cost`` on the session columns instead of the LP's),
    run with ``holds``; if it fails while ``priority``'s sessions have floors, again without them. Returns the
    stage, what its run returned and ``lp``, without those floors if they were dropped."""
    while True:
        kept = lp.priority >= priority
        sub = lp if kept.all() else lp.restricted_to(kept)  # the last stage keeps every session: no copy
        if cost is not None:
            kept_cost = cost[kept[lp.var_session]]
            sub = replace(sub, cost=np.concatenate((kept_cost, np.zeros(sub.cost.size - kept_cost.size))))
        stage = _Stage(sub, method)
        for hold in holds:
            stage.hold(*hold)
        x = stage.run()
        floored = (lp.priority[lp.var_session] == priority) & (lp.lower[: lp.var_session.size] > 0)
        if x is not None or not floored.any():
            return stage, x, lp
        lower = lp.lower.copy()
        lower[: floored.size][floored] = 0.0
        lp = replace(lp, lower=lower)


# --- building --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SessionColumns:
    session: Ints  # per column
    slot: Ints
    hours: Floats  # of the slot inside the session's window
    middle: Floats  # seconds from the first edge to the middle of that part
    wh_per_a: Floats
    max_a: Floats
    wanted_ah: Floats  # per session: energy wanted in amp-hours per phase (0 if it cannot charge)
    volt_phases: Floats  # per session
    staying: Floats  # per column: the chance that the car is still plugged in at its middle (``_still_plugged_in``)

    @staticmethod
    def of(
        sessions: Sequence[SessionDemand], origin: datetime, edges: Floats, settings: SchedulerSettings
    ) -> _SessionColumns:
        """One column per slot that overlaps a session's window, session-major."""
        begin, estimate = session_windows(sessions, origin, settings)
        spread = settings.departure_spread.total_seconds()
        end = estimate + spread  # it may stay longer than it said: planned up to one spread past its estimate
        max_a = np.array([s.max_current_a for s in sessions], dtype=np.float64)
        max_now_a = np.array([first_slot_cap(s) for s in sessions], dtype=np.float64)
        volt_phases = np.array([s.voltage_v * len(s.phases) for s in sessions], dtype=np.float64)
        wanted_wh = np.array([wanted_energy_wh(s, settings) for s in sessions], dtype=np.float64)
        can_charge = (max_a > 0) & (wanted_wh > 0) & (volt_phases > 0)
        slots = edges.size - 1
        first = np.maximum(np.searchsorted(edges, begin, side="right") - 1, 0)
        stop = np.minimum(np.searchsorted(edges, end, side="left"), slots)
        length = np.where(can_charge, np.maximum(stop - first, 0), 0)
        session = np.repeat(np.arange(len(sessions)), length)
        slot = np.arange(session.size) - _starts(length)[session] + first[session]
        low = np.maximum(edges[slot], begin[session])
        high = np.minimum(edges[slot + 1], end[session])
        hours = (high - low) / 3600.0
        middle = (low + high) / 2
        return _SessionColumns(
            session=session,
            slot=slot,
            hours=hours,
            middle=middle,
            wh_per_a=hours * volt_phases[session],
            # SessionDemand.max_now_a caps the first slot only (below the minimum: paused, as in the real-time path).
            max_a=np.where(slot == 0, np.minimum(max_a, max_now_a)[session], max_a[session]),
            wanted_ah=np.where(can_charge, wanted_wh / np.where(can_charge, volt_phases, 1.0), 0.0),
            volt_phases=volt_phases,
            staying=_still_plugged_in(middle - estimate[session], spread),
        )


@dataclass(frozen=True, slots=True)
class _Topology:
    """The row families every session and every hub loads.

    Families 0..K-1 are ``network.constraints``; K + j is hub j's defining row "aggregate = sum of what is under
    it". A hub is a (node, phase or POWER) with many sessions under it and a limit above it (a feeder under a
    site). Its aggregate stands in for all its sessions in every row above it, so the site's rows have one entry
    per feeder instead of one per session: those dense rows made each simplex iteration 2.6x slower at 10,000
    sessions. A hub's own limit, if it has one, is its aggregate's upper bound.
    """

    limits: int  # K
    session_start: Ints  # CSR over sessions into session_family / session_coefficient
    session_family: Ints
    session_coefficient: Floats
    hub_limit: Ints  # per hub: the constraint whose capacity bounds its aggregate, -1 if its node has none
    hub_start: Ints  # CSR over hubs into hub_family: the families above it that its aggregate loads
    hub_family: Ints
    scale: Floats  # per constraint: 1, or 1 / V_REF for power rows

    @staticmethod
    def of(network: Network) -> _Topology:
        constraints = network.constraints
        limit = {(c.node_id, c.phase): k for k, c in enumerate(constraints)}
        under: Counter[tuple[str, int]] = Counter()
        for (node_id, phases), count in Counter((s.node_id, s.phases) for s in network.sessions).items():
            for above in network.ancestors[node_id]:
                for phase in (*phases, POWER):
                    under[(above, phase)] += count
        hub: dict[tuple[str, int], int] = {}
        for (node_id, phase), count in under.items():
            if count >= HUB_MIN_SESSIONS and any((a, phase) in limit for a in network.ancestors[node_id][1:]):
                hub[(node_id, phase)] = len(constraints) + len(hub)

        def walk(chain: Sequence[str], phase: int) -> list[int]:
            """The families a load on ``phase`` at the bottom of ``chain`` counts in, up to the first hub."""
            families: list[int] = []
            for node_id in chain:
                if (family := hub.get((node_id, phase))) is not None:
                    families.append(family)
                    break
                if (family := limit.get((node_id, phase))) is not None:
                    families.append(family)
            return families

        walks: dict[tuple[str, tuple[int, ...]], tuple[list[int], list[int]]] = {}
        degree: list[int] = []
        session_family: list[int] = []
        session_coefficient: list[float] = []
        for session in network.sessions:
            if (cached := walks.get((session.node_id, session.phases))) is None:
                chain = network.ancestors[session.node_id]
                phase_families = [f for phase in session.phases for f in walk(chain, phase)]
                cached = walks[(session.node_id, session.phases)] = (phase_families, walk(chain, POWER))
            phase_families, power_families = cached
            degree.append(len(phase_families) + len(power_families))
            session_family += phase_families + power_families
            session_coefficient += [1.0] * len(phase_families)
            session_coefficient += [session.voltage_v * len(session.phases) / V_REF] * len(power_families)
        hub_walks = [walk(network.ancestors[node_id][1:], phase) for node_id, phase in hub]
        return _Topology(
            limits=len(constraints),
            session_start=_starts(degree),
            session_family=np.asarray(session_family, dtype=np.int64),
            session_coefficient=np.asarray(session_coefficient, dtype=np.float64),
            hub_limit=np.asarray([limit.get(key, -1) for key in hub], dtype=np.int64),
            hub_start=_starts([len(w) for w in hub_walks]),
            hub_family=np.asarray([f for w in hub_walks for f in w], dtype=np.int64),
            scale=np.asarray([1 / V_REF if c.phase == POWER else 1.0 for c in constraints]),
        )


def _prune(
    column: Ints, key: Ints, coefficient: Floats, upper: Floats, capacity_of_key: Floats, limit_keys: int
) -> Bools:
    """Which keys become rows. Lowers ``upper`` in place where a limit has a single column in a slot."""
    is_limit = key < limit_keys
    single = is_limit & (np.bincount(key, minlength=capacity_of_key.size)[key] == 1)
    np.minimum.at(upper, column[single], capacity_of_key[key[single]] / coefficient[single])
    is_row = np.zeros(capacity_of_key.size, dtype=np.bool_)
    is_row[key[~is_limit]] = True  # a hub's defining row always stays
    reach = np.bincount(
        key[~single], weights=coefficient[~single] * upper[column[~single]], minlength=capacity_of_key.size
    )
    binding = reach > capacity_of_key * (1 + 1e-9) + 1e-9
    multi = key[is_limit & ~single]
    is_row[multi] = binding[multi]
    return is_row


def _assemble(
    column: Ints, row: Ints, coefficient: Floats, n_columns: int, energy_row: Ints, hours: Floats
) -> tuple[Ints, Ints, Floats]:
    """CSC arrays: per column its energy entry (if any) first, then its other entries (already in column order)."""
    has_energy = np.zeros(n_columns, dtype=np.int64)
    has_energy[: energy_row.size] = energy_row >= 0
    other_count = np.bincount(column, minlength=n_columns)
    start = _starts(has_energy + other_count)
    index = np.empty(start[-1], dtype=np.int64)
    value = np.empty(start[-1], dtype=np.float64)
    with_energy = np.flatnonzero(has_energy)
    index[start[with_energy]] = energy_row[with_energy]
    value[start[with_energy]] = hours[with_energy]
    position = start[column] + has_energy[column] + np.arange(column.size) - _starts(other_count)[column]
    index[position] = row
    value[position] = coefficient
    return start, index, value


def _starts(counts: Sequence[int] | Ints) -> Ints:
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))


def _expand(starts: Ints, owners: Ints) -> tuple[Ints, Ints]:
    """For a CSR's ``starts`` and some of its rows (``owners``): per entry, (index into owners, CSR position)."""
    counts = starts[owners + 1] - starts[owners]
    which = np.repeat(np.arange(owners.size), counts)
    return which, starts[owners][which] + np.arange(which.size) - _starts(counts)[which]


# --- solving ---------------------------------------------------------------------------------------------------


class _Stage:
    """One HiGHS model; rows and cost changes after the first run warm-start from the last basis."""

    def __init__(self, lp: ChargingLp, method: str) -> None:
        self.lp = lp
        self.status = "optimal"
        self.session_columns = np.arange(lp.var_session.size, dtype=np.int32)
        self.highs = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy's wrapper class is unannotated
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("solver", method)
        # build_lp already folds single-member rows into bounds and drops rows that cannot bind; HiGHS's own
        # presolve found little more and cost a third of the solve at 10,000 sessions.
        self.highs.setOptionValue("presolve", "off")
        model = highspy.HighsLp()
        model.num_col_ = lp.cost.size
        model.num_row_ = lp.row_upper.size
        model.sense_ = highspy.ObjSense.kMaximize
        model.col_cost_ = lp.cost
        model.col_lower_ = lp.lower
        model.col_upper_ = lp.upper
        model.row_lower_ = lp.row_lower
        model.row_upper_ = lp.row_upper
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = lp.start
        model.a_matrix_.index_ = lp.index
        model.a_matrix_.value_ = lp.value
        self.highs.passModel(model)

    def run(self) -> Floats | None:
        """Every column's value, or None (and ``status`` says why) if HiGHS did not reach the optimum."""
        self.highs.run()
        model_status = self.highs.getModelStatus()
        if model_status != highspy.HighsModelStatus.kOptimal:
            self.status = self.highs.modelStatusToString(model_status)
            return None
        self.highs.setOptionValue("solver", "simplex")  # what follows changes little: warm-start from the basis
        return np.asarray(self.highs.getSolution().col_value, dtype=np.float64)

    def class_kwh(self, x: Floats, priority: int) -> float:
        mask = self.lp.priority[self.lp.var_session] == priority
        return float(self.lp.wh_per_a[mask] @ x[: mask.size][mask]) / 1000.0

    def hold(self, priority: int, kwh: float) -> None:
        """Add the row "this class gets at least ``kwh``" (less a tolerance)."""
        mask = self.lp.priority[self.lp.var_session] == priority
        floor = kwh * (1 - HOLD_RELATIVE) - HOLD_ABSOLUTE
        columns = self.session_columns[mask]
        self.highs.addRow(floor, np.inf, columns.size, columns, self.lp.wh_per_a[mask] / 1000.0)

    def set_cost(self, session_cost: Floats, *added: float) -> None:
        """Costs for the session columns, 0 for the aggregates, ``added`` for columns added after them."""
        cost = np.zeros(self.highs.getNumCol())
        cost[: session_cost.size] = session_cost
        cost[cost.size - len(added) :] = added
        self.highs.changeColsCost(cost.size, np.arange(cost.size, dtype=np.int32), cost)

    def fairest(self, x: Floats, classes: Sequence[int]) -> Floats:
        """With every class's energy held, maximise z = the lowest delivered / attainable ratio of any session,
        then the original objective with z held. Returns ``x`` unchanged if a stage fails."""
        lp = self.lp
        for priority in classes:
            self.hold(priority, self.class_kwh(x, priority))
        z = self.highs.getNumCol()
        self.highs.addCol(0.0, 0.0, 1.0, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
        # One row per session that can get anything: sum_t w[i,t] r[i,t] / attainable_i - z >= 0.
        counted = np.flatnonzero(lp.attainable_wh > 1e-6)
        session_start = _starts(np.bincount(lp.var_session, minlength=lp.attainable_wh.size))
        which, position = _expand(session_start, counted)
        per_row = np.diff(session_start)[counted]
        starts = _starts(per_row + 1)
        index = np.full(starts[-1], z, dtype=np.int32)
        value = np.full(starts[-1], -1.0)
        in_row = starts[which] + np.arange(which.size) - _starts(per_row)[which]
        index[in_row] = position
        value[in_row] = lp.wh_per_a[position] / lp.attainable_wh[counted[which]]
        rows = counted.size
        self.highs.addRows(rows, np.zeros(rows), np.full(rows, np.inf), index.size, starts[:-1], index, value)
        self.set_cost(np.zeros(lp.var_session.size), 1.0)
        if (fair := self.run()) is None:
            return x
        floor = max(float(fair[z]) * (1 - HOLD_RELATIVE) - HOLD_ABSOLUTE, 0.0)
        self.highs.changeColsBounds(1, np.array([z], dtype=np.int32), np.array([floor]), np.array([1.0]))
        self.set_cost(lp.cost[: lp.var_session.size], 0.0)
        final = self.run()
        return fair if final is None else final


def _still_plugged_in(after_estimate_s: Floats, spread_s: float) -> Floats:
    """P(departure > estimate + t) for departures normal around the estimate with standard deviation ``spread_s``
    (1 everywhere when it is 0: departures are exact)."""
    if spread_s <= 0:
        return np.ones_like(after_estimate_s)
    z = np.abs(after_estimate_s) / (spread_s * math.sqrt(2.0))
    # erf(z) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): numpy has none, and math.erf one value
    # a call cost 20-25 ms at 10,000 sessions.
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return np.where(after_estimate_s < 0, 0.5 * (1.0 + erf), 0.5 * (1.0 - erf))


def first_slot_cap(session: SessionDemand) -> float:
    """SessionDemand.max_now_a as a bound: none, the cap, or 0 when it is below the minimum (paused)."""
    if session.max_now_a is None:
        return math.inf
    return session.max_now_a if session.max_now_a >= session.min_current_a else 0.0
