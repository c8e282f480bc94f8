"""The site tree compiled into linear constraints over the controllable sessions' currents.

Every limited node gives one constraint per phase it limits (sum of the currents of the sessions under it that
draw on that phase <= limit) and one for its power limit (sum of current x voltage x phase count <= limit). What
the scheduler cannot steer is subtracted from each limit up front: unmanaged load, capacity held for bookings,
and sessions with a fixed draw. A wye-connected site with per-phase limits is exactly linear in these terms.

Limits change only at known instants (limit windows, holds), so the time axis is cut into segments at those
instants and each constraint gets one capacity per segment.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from typing import NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt

from csms.domain.grid import CapacityHold, GridError, GridNode, parents_first, validate_tree
from csms.scheduler.model import SessionDemand, Snapshot

__all__ = ["Constraint", "Network", "compile_network", "under_power_only"]

POWER = 0  # the "phase" of a node's power constraint

Terms = tuple[tuple[int, float], ...]  # a session's (constraint index, coefficient) pairs


class Incidence(NamedTuple):
    """Every constraint's (session, coefficient) terms as flat arrays, constraint by constraint and in the order it
    lists its members: a sum over the members of every constraint is one ``np.bincount``, which adds them in
    that order, as a loop over ``Constraint.members`` would (same floats, same plans)."""

    constraint: npt.NDArray[np.intp]
    session: npt.NDArray[np.intp]
    coefficient: npt.NDArray[np.float64]
    starts: npt.NDArray[np.intp]  # constraint k's terms are [starts[k], starts[k + 1])
    # The same terms session by session: session i's are by_session[session_starts[i] : session_starts[i + 1]].
    by_session: npt.NDArray[np.intp]
    session_starts: npt.NDArray[np.intp]

    def terms_of(
        self, sessions: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """The terms of ``sessions``, session after session: (constraint, coefficient, position in ``sessions``)."""
        first, lengths = self.session_starts[sessions], self.session_lengths[sessions]
        owners = np.repeat(np.arange(len(sessions), dtype=np.intp), lengths)
        offsets = np.arange(len(owners), dtype=np.intp) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        picked = self.by_session[np.repeat(first, lengths) + offsets]
        return self.constraint[picked], self.coefficient[picked], owners

    @property
    def session_lengths(self) -> npt.NDArray[np.intp]:
        return np.diff(self.session_starts)

    def sums(self, values: npt.NDArray[np.float64], constraints: int) -> list[float]:
        """Per constraint, the sum of ``values[session] * coefficient`` over its members."""
        return cast(
            list[float], np.bincount(self.constraint, values[self.session] * self.coefficient, constraints).tolist()
        )


class Constraint(NamedTuple):  # a named tuple: large sites have tens of thousands
    node_id: str
    phase: int  # 1..3, or POWER
    members: tuple[int, ...]  # indices into Network.sessions
    coefficients: tuple[float, ...]  # amps (1.0) or watts per amp, per member
    capacities: tuple[float, ...]  # per segment, after subtracting what cannot be steered; may be < 0


@dataclass(frozen=True, slots=True)
class Network:
    start: datetime
    end: datetime
    boundaries: tuple[datetime, ...]  # segment k is [boundaries[k], boundaries[k+1])
    sessions: tuple[SessionDemand, ...]  # the controllable sessions, in snapshot order
    fixed: tuple[SessionDemand, ...]  # sessions with a fixed draw
    constraints: tuple[Constraint, ...]
    session_constraints: tuple[tuple[tuple[int, float], ...], ...]  # per session: (constraint index, coefficient)
    terms: Incidence  # the constraints' members again, as flat arrays
    nodes: Mapping[str, GridNode]
    ancestors: Mapping[str, tuple[str, ...]]  # node id -> itself and every node above it

    @property
    def segment_count(self) -> int:
        return len(self.boundaries) - 1

    def segment_of(self, when: datetime) -> int:
        return min(max(bisect_right(self.boundaries, when) - 1, 0), self.segment_count - 1)

    def capacities_between(self, start: datetime, end: datetime) -> list[float]:
        """Per constraint, the lowest capacity of any segment that overlaps [start, end)."""
        first = self.segment_of(start)
        last = max(first, self.segment_of(end - (end - start) / 1_000_000) if end > start else first)
        return [min(c.capacities[first : last + 1]) for c in self.constraints]


@dataclass(frozen=True, slots=True)
class _Topology:
    """What depends on the tree alone, kept between re-plans while the operator's tree is unchanged."""

    nodes: Mapping[str, GridNode]
    ancestors: Mapping[str, tuple[str, ...]]
    keys: tuple[tuple[str, int], ...]  # (node id, phase or POWER) per constraint index
    keys_above: Mapping[str, tuple[tuple[int, int], ...]]  # node id -> (constraint index, phase) at or above it
    index_of: Mapping[tuple[str, int], int]  # constraint index per key
    limits: tuple[float, ...]  # per constraint index: the node's limit without windows (inf if none)
    scheduled: tuple[int, ...]  # constraint indices of nodes with a limit schedule
    scheduled_nodes: tuple[str, ...]  # ids of nodes with a limit schedule
    unmanaged: Mapping[tuple[str, int], float]  # see _unmanaged_loads
    # Per session shape (node, phases, voltage): its (constraint index, coefficient) terms, filled as shapes are
    # met. Sessions come and go, stations and their phases stay: most re-plans find every shape here.
    terms: dict[tuple[str, tuple[int, ...], float], tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # The same terms numbered by the constraints kept after pruning, for the last set kept (which changes only
    # when a limit, an unsteerable load or the sessions' maxima shift enough to make a constraint (non-)binding).
    _kept: list[Sequence[int]] = field(default_factory=list)
    _renumbered: dict[tuple[str, tuple[int, ...], float], tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # Equal term lists are one object (most stations' own constraints are pruned, leaving their sessions under the
    # same ones): thousands of small tuples that live on cost the garbage collector more than building them.
    _lists: dict[Terms, Terms] = field(default_factory=dict)
    # The last compiled network's constraints, and what they were compiled from (see ``compile_network``).
    _last: list[_Compiled] = field(default_factory=list)
    shapes: _ShapeTable = field(default_factory=lambda: _ShapeTable())  # ``terms`` again, as flat arrays

    def renumbered(
        self, kept: Sequence[int], shapes: Sequence[tuple[str, tuple[int, ...], float]], grouped: _Grouped
    ) -> list[Terms]:
        """Each of ``shapes``' terms numbered by position in ``kept`` (``grouped`` has them as arrays), remembered
        per shape while ``kept`` stays the same."""
        if self._kept != [kept]:
            self._kept[:] = [kept]
            self._renumbered.clear()
            self._lists.clear()
        cache, terms, lists = self._renumbered, self.terms, self._lists
        found = [cache.get(shape) for shape in shapes]
        missing = [number for number, known in enumerate(found) if known is None]
        if len(missing) >= _MANY_SHAPES:
            # Most shapes end up with the same terms as others (their station's own constraints pruned): each
            # distinct list is built once, found by sorting the shapes' renumbered terms as rows of an array.
            by_group, group_of = _renumbered_groups(kept, len(self.keys), grouped)
            built = [lists.setdefault(t, t) for t in by_group]
            for number in missing:
                found[number] = cache[shapes[number]] = built[group_of[number]]
        elif missing:
            renumber = [-1] * len(self.keys)
            for new_k, k in enumerate(kept):
                renumber[k] = new_k
            for number in missing:
                shape = shapes[number]
                fresh = tuple([(renumber[k], c) for k, c in terms[shape] if renumber[k] >= 0])
                found[number] = cache[shape] = lists.setdefault(fresh, fresh)
        return cast(list[Terms], found)


# Per session, in snapshot order, all that the constraints depend on: where it hangs, its phases, voltage, maximum
# and fixed draw. Lists of what the sessions hold already: nothing is allocated per session to compare them.
_Signature = tuple[list[str], list[tuple[int, ...]], list[float], list[float], list[float | None]]


@dataclass(slots=True)
class _ShapeTable:
    """Every shape's terms met so far (``_Topology.terms``) numbered and flattened, for array operations."""

    number: dict[tuple[str, tuple[int, ...], float], int] = field(default_factory=dict)
    constraint: list[int] = field(default_factory=list)
    coefficient: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])
    _arrays: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.intp]]] = (
        field(default_factory=list)
    )

    def add(self, shape: tuple[str, tuple[int, ...], float], terms: Terms) -> None:
        self.number[shape] = len(self.number)
        if terms:
            constraints, coefficients = zip(*terms, strict=True)
            self.constraint.extend(constraints)
            self.coefficient.extend(coefficients)
        self.starts.append(len(self.constraint))
        self._arrays.clear()

    def arrays(
        self,
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """(constraint, coefficient) of every term, and where each shape's start and how many it has."""
        if not self._arrays:
            starts = np.array(self.starts, dtype=np.intp)
            self._arrays.append(
                (
                    np.array(self.constraint, dtype=np.intp),
                    np.array(self.coefficient, dtype=np.float64),
                    starts[:-1],
                    np.diff(starts),
                )
            )
        return self._arrays[0]


class _Compiled(NamedTuple):
    """A compiled network's constraints and everything they depend on besides the tree."""

    signature: _Signature
    holds: tuple[CapacityHold, ...]  # those in the window
    times: tuple[datetime, ...] | int  # the boundaries where limits change in time, else the segment count
    pruning: tuple[bool, bool]
    constraints: tuple[Constraint, ...]
    session_constraints: tuple[Terms, ...]
    terms: Incidence
    controllable: list[int]  # positions in the snapshot's sessions
    fixed: list[int]


# The runtime hands the same tuple of nodes to every re-plan until the tree changes; compiling a
# 5,000-node tree costs as much as planning, so the last few are remembered by identity (the cache keeps the
# tuple alive, so its id cannot be reused while it is cached).
_TOPOLOGIES: dict[int, tuple[tuple[GridNode, ...], _Topology]] = {}
_TOPOLOGY_CACHE_SIZE = 4
_MANY_SHAPES = 64  # shapes to renumber from which sorting them as arrays beats one by one

# What the constraint keys and every session's terms depend on: per node in order, its id, parent, phases and
# whether it limits current and power. An edited limit, a limit window rolling over or a reported unmanaged load
# makes a new tree with the same structure: the ancestors, keys and terms of the last tree with that structure
# are reused, and only the limits and loads are read again (at 7,000 nodes 40-50 ms instead of 150-200 ms).
_Structure = tuple[tuple[str, str | None, tuple[int, ...], bool, bool], ...]
_LAYOUTS: dict[_Structure, _Topology] = {}  # the last few structures, each with the newest topology built on it
_K = TypeVar("_K")
_V = TypeVar("_V")


def _topology(nodes: tuple[GridNode, ...]) -> _Topology:
    cached = _TOPOLOGIES.get(id(nodes))
    if cached is not None and cached[0] is nodes:
        return cached[1]
    by_id = validate_tree(nodes)
    structure = tuple((n.id, n.parent_id, n.phases, _limits_current(n), _limits_power(n)) for n in nodes)
    same = _LAYOUTS.get(structure)
    if same is not None:
        topology = _Topology(
            by_id,
            same.ancestors,
            same.keys,
            same.keys_above,
            same.index_of,
            *_values(by_id, same.keys, same.ancestors),
            terms=same.terms,
            shapes=same.shapes,
        )
    else:
        ancestors, keys, keys_above, index_of = _layout(by_id)
        topology = _Topology(by_id, ancestors, keys, keys_above, index_of, *_values(by_id, keys, ancestors))
    _remember(_TOPOLOGIES, id(nodes), (nodes, topology))
    _remember(_LAYOUTS, structure, topology)
    return topology


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    """Keeps ``value`` under ``key``, dropping the oldest entry once the cache holds _TOPOLOGY_CACHE_SIZE."""
    cache.pop(key, None)
    if len(cache) >= _TOPOLOGY_CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _layout(
    by_id: Mapping[str, GridNode],
) -> tuple[
    dict[str, tuple[str, ...]],
    tuple[tuple[str, int], ...],
    dict[str, tuple[tuple[int, int], ...]],
    dict[tuple[str, int], int],
]:
    """Ancestors, constraint keys and each node's keys at or above it: what depends on the structure alone."""
    keys: list[tuple[str, int]] = []
    own: dict[str, tuple[tuple[int, int], ...]] = {}  # node id -> its own (constraint index, phase or POWER)
    for node in by_id.values():
        first = len(keys)
        if _limits_current(node):
            keys.extend((node.id, phase) for phase in node.phases)
        if _limits_power(node):
            keys.append((node.id, POWER))
        own[node.id] = tuple((k, keys[k][1]) for k in range(first, len(keys)))
    index_of = {key: k for k, key in enumerate(keys)}
    ancestors: dict[str, tuple[str, ...]] = {}
    keys_above: dict[str, tuple[tuple[int, int], ...]] = {}
    for node_id in parents_first(by_id):  # a node's chain is itself then its parent's chain
        parent = by_id[node_id].parent_id
        if parent is None:
            ancestors[node_id], keys_above[node_id] = (node_id,), own[node_id]
        else:
            ancestors[node_id] = (node_id, *ancestors[parent])
            keys_above[node_id] = own[node_id] + keys_above[parent]
    return {n: ancestors[n] for n in by_id}, tuple(keys), {n: keys_above[n] for n in by_id}, index_of


def _values(
    by_id: Mapping[str, GridNode], keys: Sequence[tuple[str, int]], ancestors: Mapping[str, tuple[str, ...]]
) -> tuple[tuple[float, ...], tuple[int, ...], tuple[str, ...], dict[tuple[str, int], float]]:
    """Limits per constraint key, the keys and nodes with a limit schedule, and the unmanaged loads."""
    limits = []
    for node_id, phase in keys:
        limit = by_id[node_id].max_power_w if phase == POWER else by_id[node_id].max_current_a
        limits.append(float("inf") if limit is None else limit)
    scheduled = tuple(k for k, (node_id, _) in enumerate(keys) if by_id[node_id].schedule)
    scheduled_nodes = tuple(node_id for node_id, node in by_id.items() if node.schedule)
    return tuple(limits), scheduled, scheduled_nodes, _unmanaged_loads(by_id, ancestors)


def compile_network(
    snapshot: Snapshot, start: datetime, end: datetime, *, prune: bool = True, prune_at_maxima: bool = False
) -> Network:
    """Constraints for planning [start, end).

    With ``prune``, constraints that cannot bind (all sessions under them at their maximum still fit) are left
    out; checks that want every node's constraint (tests, benchmarks) pass ``prune=False``. With
    ``prune_at_maxima`` as well, so are those that all sessions under them at their maximum fill exactly: they
    bind only where every session under them is at its maximum, which each session's own maximum already stops.
    A planner that never offers more than a session's maximum gets the same currents without them, and on a busy
    site they are most constraints (a 32 A station with two 32 A single-phase cars on different phases: one per
    phase, each filled exactly by its one car). The LP planner keeps them (it could pick another of several
    optima).

    Raises:
        GridError: the tree is invalid, or a session hangs from an unknown node or draws on a phase its node
            does not carry.
    """
    if not start < end:
        raise GridError(f"the planning window must end after it starts ({start} .. {end})")
    topology = _topology(snapshot.nodes)
    nodes, ancestors = topology.nodes, topology.ancestors
    for hold in snapshot.holds:
        if hold.node_id not in nodes:
            raise GridError(f"capacity hold {hold.id!r} is on unknown node {hold.node_id!r}")
    boundaries = _boundaries(snapshot, topology, start, end)
    holds = tuple(hold for hold in snapshot.holds if hold.start < end and hold.end > start)
    # Between re-plans, mostly only what sessions want changes (energy, departure), not which sessions hang where
    # or their maxima: then the constraints are those of the last compile and only the sessions are new.
    signature = _signature(snapshot.sessions)
    times = boundaries if holds or topology.scheduled_nodes else len(boundaries)  # capacities may change in time
    pruning = (prune, prune_at_maxima)
    last = topology._last[0] if topology._last else None
    if (
        last is not None
        and last.times == times
        and last.pruning == pruning
        and last.holds == holds
        and last.signature == signature
    ):
        sessions = snapshot.sessions
        if not all([session.min_current_a >= 0 for session in sessions]):
            bad = next(session for session in sessions if not session.min_current_a >= 0)
            raise GridError(f"session {bad.id!r}: currents must be >= 0")  # the rest was checked when last compiled
        controllable = tuple(map(sessions.__getitem__, last.controllable))
        fixed = tuple(map(sessions.__getitem__, last.fixed))
        return Network(
            start,
            end,
            boundaries,
            controllable,
            fixed,
            last.constraints,
            last.session_constraints,
            last.terms,
            nodes,
            ancestors,
        )
    sessions = snapshot.sessions
    node_ids, phase_sets, voltages, maxima_all, fixed_draws = signature
    # Every session is checked (a known shape hangs from a known node on phases it carries, currents >= 0) and the
    # shapes of the controllable ones are numbered in the order they first appear (sessions on one station with the
    # same phases and voltage are under the same constraints; every constraint lists its members shape by shape in
    # that order). The usual case, every shape known and every current >= 0, is checked for all sessions at once;
    # otherwise one by one, in order, so the first bad session is the one named.
    controllable_mask = [fixed_a is None for fixed_a in fixed_draws]
    shapes: dict[tuple[str, tuple[int, ...], float], int] = {}
    shape_of = [
        shapes.setdefault(shape, len(shapes))
        for shape in compress(zip(node_ids, phase_sets, voltages, strict=True), controllable_mask)
    ]
    known = topology.terms
    fixed_at = [position for position, controllable in enumerate(controllable_mask) if not controllable]
    if not (
        all([shape in known for shape in shapes])
        and all([(node_ids[i], phase_sets[i], voltages[i]) in known for i in fixed_at])
        and bool(np.all(np.array(maxima_all, dtype=np.float64) >= 0))
        and bool(np.all(np.array([s.min_current_a for s in sessions], dtype=np.float64) >= 0))
    ):
        _check_sessions(topology, sessions, signature)
    controllable_list = list(compress(sessions, controllable_mask))
    fixed_list = [sessions[i] for i in fixed_at]
    maxima = list(compress(maxima_all, controllable_mask))
    steady = _steady_loads(topology, fixed_list)
    lowest, by_segment = _capacities(topology, holds, steady, boundaries[:-1])
    grouped = _Grouped(topology, list(shapes), np.array(shape_of, dtype=np.intp), np.array(maxima, dtype=np.float64))
    if prune:
        kept: Sequence[int] = _binding(grouped, lowest, prune_at_maxima)
    else:
        kept = range(len(topology.keys))
    shape_terms = topology.renumbered(kept, list(shapes), grouped)
    session_constraints = tuple([shape_terms[number] for number in shape_of])
    incidence = grouped.incidence(kept)
    bounds = incidence.starts.tolist()
    member_lists: list[int] = incidence.session.tolist()
    coefficient_lists: list[float] = incidence.coefficient.tolist()
    keys = topology.keys
    segments = len(boundaries) - 1
    constraints = tuple(
        Constraint(
            *keys[k],
            tuple(member_lists[bounds[new_k] : bounds[new_k + 1]]),
            tuple(coefficient_lists[bounds[new_k] : bounds[new_k + 1]]),
            by_segment.get(k) or (lowest[k],) * segments,
        )
        for new_k, k in enumerate(kept)
    )
    fixed_at = [position for position, fixed_a in enumerate(signature[4]) if fixed_a is not None]
    controllable_at = [position for position, fixed_a in enumerate(signature[4]) if fixed_a is None]
    topology._last[:] = [
        _Compiled(
            signature, holds, times, pruning, constraints, session_constraints, incidence, controllable_at, fixed_at
        )
    ]
    return Network(
        start,
        end,
        boundaries,
        tuple(controllable_list),
        tuple(fixed_list),
        constraints,
        session_constraints,
        incidence,
        nodes,
        ancestors,
    )


def under_power_only(network: Network) -> list[bool]:
    """Per session: whether every constraint it is under is a power limit (and there is one)."""
    power = [constraint.phase == POWER for constraint in network.constraints]
    # Sessions under the same constraints share one terms tuple (network.py): each is looked at once.
    known: dict[int, bool] = {}
    flags = []
    for terms in network.session_constraints:
        flag = known.get(id(terms))
        if flag is None:
            flag = known[id(terms)] = bool(terms) and all(power[k] for k, _ in terms)
        flags.append(flag)
    return flags


def _check_sessions(topology: _Topology, sessions: Sequence[SessionDemand], signature: _Signature) -> None:
    """Checks each session in turn (computing the terms of shapes not met before).

    Raises:
        GridError: naming the first session that hangs from an unknown node, draws on a phase its node does not
            carry, or has a current < 0.
    """
    for session, node_id, phases, voltage_v, maximum in zip(sessions, *signature[:4], strict=True):
        shape = (node_id, phases, voltage_v)
        if shape not in topology.terms:
            _check_session(session, topology.nodes)
            _terms(topology, shape)
        if not maximum >= 0 or not session.min_current_a >= 0:
            raise GridError(f"session {session.id!r}: currents must be >= 0")


def _signature(sessions: Sequence[SessionDemand]) -> _Signature:
    return (
        [s.node_id for s in sessions],
        [s.phases for s in sessions],
        [s.voltage_v for s in sessions],
        [s.max_current_a for s in sessions],
        [s.fixed_a for s in sessions],
    )


def _capacities(
    topology: _Topology,
    holds: Sequence[CapacityHold],
    steady: Mapping[tuple[str, int], float],
    segment_starts: Sequence[datetime],
) -> tuple[list[float], dict[int, tuple[float, ...]]]:
    """Per constraint index, its lowest capacity over the segments (the limit in force minus what cannot be
    steered), and the capacity per segment of those whose limit changes in time (a window or a hold)."""
    nodes, ancestors, index_of = topology.nodes, topology.ancestors, topology.index_of
    lowest = list(topology.limits)
    for key, used in steady.items():
        k = index_of.get(key)
        if k is not None:
            lowest[k] -= used  # as ``_capacity`` computes it: the limit minus what is used
    changing = set(topology.scheduled)
    for node_id in {above for hold in holds for above in ancestors[hold.node_id]}:
        changing.update(k for key in _keys(node_id) if (k := index_of.get(key)) is not None)
    by_segment: dict[int, tuple[float, ...]] = {}
    keys = topology.keys
    for k in sorted(changing):
        node_id, phase = keys[k]
        by_segment[k] = capacities = tuple(
            _capacity(nodes[node_id], phase, holds, steady, ancestors, when) for when in segment_starts
        )
        lowest[k] = min(capacities)
    return lowest, by_segment


class _Grouped:
    """The controllable sessions grouped by shape, with the shapes' terms (in the tree's numbering) as arrays."""

    def __init__(
        self,
        topology: _Topology,
        shapes: list[tuple[str, tuple[int, ...], float]],
        shape_of: npt.NDArray[np.intp],
        maxima: npt.NDArray[np.float64],
    ) -> None:
        self.shape_of, self.maxima, self.keys = shape_of, maxima, len(topology.keys)
        self.shape_count = len(shapes)
        table = topology.shapes
        numbers = np.array([table.number[shape] for shape in shapes], dtype=np.intp)
        every_constraint, every_coefficient, every_start, every_length = table.arrays()
        self.lengths = every_length[numbers]
        offsets = np.arange(int(self.lengths.sum()), dtype=np.intp) - np.repeat(
            np.cumsum(self.lengths) - self.lengths, self.lengths
        )
        picked = np.repeat(every_start[numbers], self.lengths) + offsets
        self.constraint, self.coefficient = every_constraint[picked], every_coefficient[picked]
        self.owner = np.repeat(np.arange(len(shapes), dtype=np.intp), self.lengths)  # shape of each term

    def worst(self) -> npt.NDArray[np.float64]:
        """Per constraint (tree numbering), its load with every session under it at its maximum: summed shape by
        shape (each shape's maxima in session order), as a loop would."""
        most = np.bincount(self.shape_of, self.maxima, self.shape_count)
        return cast(
            npt.NDArray[np.float64], np.bincount(self.constraint, most[self.owner] * self.coefficient, self.keys)
        )

    def incidence(self, kept: Sequence[int]) -> Incidence:
        """The terms of the constraints in ``kept`` (numbered by position there), each listing its members shape
        by shape in order of first appearance, and within a shape by session index."""
        renumber = np.full(self.keys, -1, dtype=np.intp)
        renumber[np.asarray(kept, dtype=np.intp)] = np.arange(len(kept), dtype=np.intp)
        new_k = renumber[self.constraint]
        used = new_k >= 0
        pair_k, pair_c, pair_shape = new_k[used], self.coefficient[used], self.owner[used]
        by_shape = np.argsort(self.shape_of, kind="stable").astype(np.intp)  # each shape's sessions, ascending
        shape_counts = np.bincount(self.shape_of, minlength=self.shape_count)
        shape_starts = np.cumsum(shape_counts) - shape_counts
        counts = shape_counts[pair_shape]
        offsets = np.arange(int(counts.sum()), dtype=np.intp) - np.repeat(np.cumsum(counts) - counts, counts)
        sessions = by_shape[np.repeat(shape_starts[pair_shape], counts) + offsets]
        constraint = np.repeat(pair_k, counts)
        order = np.argsort(constraint, kind="stable")  # constraint by constraint, shapes keeping their order
        constraint, sessions = constraint[order], sessions[order].astype(np.intp)
        coefficient = np.repeat(pair_c, counts)[order]
        lengths = np.bincount(constraint, minlength=len(kept))
        return Incidence(
            constraint.astype(np.intp),
            sessions,
            coefficient,
            np.concatenate(([0], np.cumsum(lengths))).astype(np.intp),
            np.argsort(sessions, kind="stable").astype(np.intp),
            np.concatenate(([0], np.cumsum(np.bincount(sessions, minlength=len(self.shape_of))))).astype(np.intp),
        )


def _renumbered_groups(kept: Sequence[int], keys: int, grouped: _Grouped) -> tuple[list[Terms], list[int]]:
    """The distinct renumbered term lists of ``grouped``'s shapes, and which one each shape has."""
    renumber = np.full(keys, -1, dtype=np.intp)
    renumber[np.asarray(kept, dtype=np.intp)] = np.arange(len(kept), dtype=np.intp)
    new_k = renumber[grouped.constraint]
    used = new_k >= 0
    owner, new_k, coefficient = grouped.owner[used], new_k[used], grouped.coefficient[used]
    count = grouped.shape_count
    lengths = np.bincount(owner, minlength=count)
    starts = np.cumsum(lengths) - lengths
    place = np.arange(len(owner), dtype=np.intp) - starts[owner]
    width = int(lengths.max()) if count else 0
    rows = np.full((count, 1 + 2 * width), -1.0)  # length, then (constraint, coefficient) pairs; -1 pads
    rows[:, 0] = lengths
    rows[owner, 1 + 2 * place] = new_k
    rows[owner, 2 + 2 * place] = coefficient
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    first = np.ones(count, dtype=bool)
    first[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    group_of = np.empty(count, dtype=np.intp)
    group_of[order] = np.cumsum(first) - 1
    ks: list[int] = new_k.tolist()
    cs: list[float] = coefficient.tolist()
    begin: list[int] = starts.tolist()
    size: list[int] = lengths.tolist()
    by_group = [
        tuple(zip(ks[begin[r] : begin[r] + size[r]], cs[begin[r] : begin[r] + size[r]], strict=True))
        for r in order[first].tolist()
    ]
    return by_group, group_of.tolist()


def _binding(grouped: _Grouped, lowest: Sequence[float], at_maxima: bool) -> list[int]:
    """Constraints that could bind: those that every session at its maximum would still not fill are dropped
    (and, ``at_maxima``, those it would fill exactly; a constraint already overloaded is always kept).

    A station's own limit is usually at or above what its EVSEs can draw; on a large site those are most of the
    constraints, and dropping them makes every later step proportionally cheaper without changing any plan.
    """
    worst, capacity = grouped.worst(), np.array(lowest, dtype=np.float64)
    binds = worst > capacity if at_maxima else worst > capacity - 1e-9
    return cast(list[int], np.flatnonzero(binds).tolist())


def _terms(topology: _Topology, shape: tuple[str, tuple[int, ...], float]) -> tuple[tuple[int, float], ...]:
    terms = topology.terms.get(shape)
    if terms is None:
        node_id, phases, voltage_v = shape
        watts_per_amp = voltage_v * len(phases)
        terms = tuple(
            (k, watts_per_amp if phase == POWER else 1.0)
            for k, phase in topology.keys_above[node_id]
            if phase == POWER or phase in phases
        )
        topology.terms[shape] = terms
        topology.shapes.add(shape, terms)
    return terms


def _check_session(session: SessionDemand, nodes: Mapping[str, GridNode]) -> None:
    node = nodes.get(session.node_id)
    if node is None:
        raise GridError(f"session {session.id!r} hangs from unknown node {session.node_id!r}")
    if not session.phases or not set(session.phases) <= set(node.phases):
        raise GridError(f"session {session.id!r} draws on phases {session.phases} that node {node.id!r} lacks")


def _keys(node_id: str) -> tuple[tuple[str, int], ...]:
    return ((node_id, 1), (node_id, 2), (node_id, 3), (node_id, POWER))


def _limits_current(node: GridNode) -> bool:
    # `bool(schedule) and` spares building a generator for the many nodes without a schedule.
    schedule = node.schedule
    return node.max_current_a is not None or (bool(schedule) and any(w.max_current_a is not None for w in schedule))


def _limits_power(node: GridNode) -> bool:
    schedule = node.schedule
    return node.max_power_w is not None or (bool(schedule) and any(w.max_power_w is not None for w in schedule))


def _boundaries(snapshot: Snapshot, topology: _Topology, start: datetime, end: datetime) -> tuple[datetime, ...]:
    points = {start, end}
    for node_id in topology.scheduled_nodes:
        points |= topology.nodes[node_id].change_points(start, end)
    points |= {t for hold in snapshot.holds for t in (hold.start, hold.end) if start < t < end}
    return tuple(sorted(points))


def _steady_loads(topology: _Topology, fixed: Sequence[SessionDemand]) -> dict[tuple[str, int], float]:
    """Per (node, phase or POWER): unmanaged load anywhere under the node plus the fixed sessions under it."""
    used = dict(topology.unmanaged)
    for session in fixed:
        _add_load(used, topology.ancestors, session.node_id, session.phases, session.fixed_a or 0.0, session.voltage_v)
    return used


def _unmanaged_loads(
    nodes: Mapping[str, GridNode], ancestors: Mapping[str, tuple[str, ...]]
) -> dict[tuple[str, int], float]:
    """Per (node, phase or POWER): unmanaged load anywhere under the node (it changes with the tree only)."""
    used: dict[tuple[str, int], float] = {}
    for node in nodes.values():
        for phase, current in zip((1, 2, 3), node.unmanaged_a, strict=True):
            if current and phase in node.phases:
                _add_load(used, ancestors, node.id, (phase,), current, node.voltage_v)
    return used


def _add_load(
    used: dict[tuple[str, int], float],
    ancestors: Mapping[str, tuple[str, ...]],
    node_id: str,
    phases: tuple[int, ...],
    current: float,
    voltage: float,
) -> None:
    for above in ancestors[node_id]:
        for phase in phases:
            used[(above, phase)] = used.get((above, phase), 0.0) + current
        used[(above, POWER)] = used.get((above, POWER), 0.0) + current * voltage * len(phases)


def _capacity(
    node: GridNode,
    phase: int,
    holds: Sequence[CapacityHold],
    steady: Mapping[tuple[str, int], float],
    ancestors: Mapping[str, tuple[str, ...]],
    when: datetime,
) -> float:
    """The node's limit at ``when`` minus what we cannot steer under it."""
    limit = node.power_limit_at(when) if phase == POWER else node.current_limit_at(when)
    if limit is None:
        return float("inf")
    used = steady.get((node.id, phase), 0.0)
    for hold in holds:
        if hold.start <= when < hold.end and node.id in ancestors[hold.node_id]:
            if phase == POWER:
                used += hold.current_a * node.voltage_v * len(hold.phases)
            elif phase in hold.phases:
                used += hold.current_a
    return limit - used
