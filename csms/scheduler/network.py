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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from csms.domain.grid import CapacityHold, GridError, GridNode, validate_tree
from csms.scheduler.model import SessionDemand, Snapshot

__all__ = ["Constraint", "Network", "compile_network"]

POWER = 0  # the "phase" of a node's power constraint

Terms = tuple[tuple[int, float], ...]  # a session's (constraint index, coefficient) pairs


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
    # Per session shape (node, phases, voltage): its (constraint index, coefficient) terms, filled as shapes are
    # met. Sessions come and go, stations and their phases stay: most re-plans find every shape here.
    terms: dict[tuple[str, tuple[int, ...], float], tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # The same terms numbered by the constraints kept after pruning, for the last set kept (which changes only
    # when a limit, an unsteerable load or the sessions' maxima shift enough to make a constraint (non-)binding).
    _kept: list[Sequence[int]] = field(default_factory=list)
    _renumbered: dict[tuple[str, tuple[int, ...], float], tuple[tuple[int, float], ...]] = field(default_factory=dict)

    def renumbered(self, kept: Sequence[int]) -> Callable[[tuple[str, tuple[int, ...], float]], Terms]:
        """A function from a session shape to its terms numbered by position in ``kept``."""
        if self._kept != [kept]:
            self._kept[:] = [kept]
            self._renumbered.clear()
        cache, terms = self._renumbered, self.terms
        renumber = {k: new_k for new_k, k in enumerate(kept)}

        def of(shape: tuple[str, tuple[int, ...], float]) -> Terms:
            found = cache.get(shape)
            if found is None:
                found = cache[shape] = tuple((renumber[k], c) for k, c in terms[shape] if k in renumber)
            return found

        return of


# The runtime hands the same tuple of nodes to every re-plan until the tree changes; compiling a
# 5,000-node tree costs as much as planning, so the last few are remembered by identity (the cache keeps the
# tuple alive, so its id cannot be reused while it is cached).
_TOPOLOGIES: dict[int, tuple[tuple[GridNode, ...], _Topology]] = {}
_TOPOLOGY_CACHE_SIZE = 4


def _topology(nodes: tuple[GridNode, ...]) -> _Topology:
    cached = _TOPOLOGIES.get(id(nodes))
    if cached is not None and cached[0] is nodes:
        return cached[1]
    by_id = validate_tree(nodes)
    ancestors = {node_id: _ancestors(node_id, by_id) for node_id in by_id}
    keys: list[tuple[str, int]] = []
    for node in by_id.values():
        if _limits_current(node):
            keys.extend((node.id, phase) for phase in node.phases)
        if _limits_power(node):
            keys.append((node.id, POWER))
    index_of = {key: k for k, key in enumerate(keys)}
    keys_above = {
        node_id: tuple((index_of[key], key[1]) for above in chain for key in _keys(above) if key in index_of)
        for node_id, chain in ancestors.items()
    }
    topology = _Topology(by_id, ancestors, tuple(keys), keys_above)
    if len(_TOPOLOGIES) >= _TOPOLOGY_CACHE_SIZE:
        _TOPOLOGIES.pop(next(iter(_TOPOLOGIES)))
    _TOPOLOGIES[id(nodes)] = (nodes, topology)
    return topology


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
    nodes, ancestors, known = topology.nodes, topology.ancestors, topology.terms
    # One pass: check each session, split controllable from fixed, and group the controllable ones by shape
    # (sessions on one station with the same phases and voltage are under the same constraints).
    controllable: list[SessionDemand] = []
    fixed: list[SessionDemand] = []
    shapes: dict[tuple[str, tuple[int, ...], float], list[int]] = {}
    for session in snapshot.sessions:
        shape = (session.node_id, session.phases, session.voltage_v)
        if shape not in known:
            _check_session(session, nodes)  # a known shape hangs from a known node on phases it carries
            _terms(topology, shape)
        if not session.max_current_a >= 0 or not session.min_current_a >= 0:
            raise GridError(f"session {session.id!r}: currents must be >= 0")
        if session.fixed_a is None:
            indices = shapes.get(shape)
            if indices is None:
                shapes[shape] = [len(controllable)]
            else:
                indices.append(len(controllable))
            controllable.append(session)
        else:
            fixed.append(session)
    for hold in snapshot.holds:
        if hold.node_id not in nodes:
            raise GridError(f"capacity hold {hold.id!r} is on unknown node {hold.node_id!r}")
    boundaries = _boundaries(snapshot, nodes, start, end)
    holds = [hold for hold in snapshot.holds if hold.start < end and hold.end > start]
    steady = _steady_loads(nodes, fixed, ancestors)
    capacities = _capacities(topology, holds, steady, boundaries[:-1])
    kept = _binding(topology, controllable, shapes, capacities, prune_at_maxima) if prune else range(len(topology.keys))
    terms_of = topology.renumbered(kept)
    members: list[list[int]] = [[] for _ in kept]
    coefficients: list[list[float]] = [[] for _ in kept]
    per_session: list[tuple[tuple[int, float], ...]] = [()] * len(controllable)
    for shape, indices in shapes.items():
        terms = terms_of(shape)
        for k, coefficient in terms:
            members[k] += indices
            coefficients[k] += [coefficient] * len(indices)
        for index in indices:
            per_session[index] = terms
    keys = topology.keys
    constraints = tuple(
        Constraint(*keys[k], tuple(members[new_k]), tuple(coefficients[new_k]), capacities[k])
        for new_k, k in enumerate(kept)
    )
    return Network(
        start, end, boundaries, tuple(controllable), tuple(fixed), constraints, tuple(per_session), nodes, ancestors
    )


def _capacities(
    topology: _Topology,
    holds: Sequence[CapacityHold],
    steady: Mapping[tuple[str, int], float],
    segment_starts: Sequence[datetime],
) -> list[tuple[float, ...]]:
    """Per constraint key, its capacity in each segment: the limit in force minus what cannot be steered."""
    nodes, ancestors = topology.nodes, topology.ancestors
    held = {above for hold in holds for above in ancestors[hold.node_id]}
    count = len(segment_starts)
    capacities: list[tuple[float, ...]] = []
    for key in topology.keys:
        node_id, phase = key
        node = nodes[node_id]
        if node.schedule or node_id in held:
            capacities.append(tuple(_capacity(node, phase, holds, steady, ancestors, when) for when in segment_starts))
            continue
        limit = node.max_power_w if phase == POWER else node.max_current_a  # no window, no hold: one value
        capacity = float("inf") if limit is None else limit - steady.get(key, 0.0)
        capacities.append((capacity,) * count)
    return capacities


def _binding(
    topology: _Topology,
    sessions: Sequence[SessionDemand],
    shapes: Mapping[tuple[str, tuple[int, ...], float], list[int]],
    capacities: Sequence[tuple[float, ...]],
    at_maxima: bool,
) -> list[int]:
    """Constraints that could bind: those that every session at its maximum would still not fill are dropped
    (and, ``at_maxima``, those it would fill exactly; a constraint already overloaded is always kept).

    A station's own limit is usually at or above what its EVSEs can draw; on a large site those are most of the
    constraints, and dropping them makes every later step proportionally cheaper without changing any plan.
    """
    worst = [0.0] * len(topology.keys)
    terms_of = topology.terms
    for shape, indices in shapes.items():
        most = sum(sessions[i].max_current_a for i in indices)
        for k, coefficient in terms_of[shape]:
            worst[k] += most * coefficient
    if at_maxima:
        return [k for k, capacity in enumerate(capacities) if worst[k] > min(capacity)]
    return [k for k, capacity in enumerate(capacities) if worst[k] > min(capacity) - 1e-9]


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
    return terms


def _ancestors(node_id: str, nodes: Mapping[str, GridNode]) -> tuple[str, ...]:
    chain = [node_id]
    parent = nodes[node_id].parent_id
    while parent is not None:
        chain.append(parent)
        parent = nodes[parent].parent_id
    return tuple(chain)


def _check_session(session: SessionDemand, nodes: Mapping[str, GridNode]) -> None:
    node = nodes.get(session.node_id)
    if node is None:
        raise GridError(f"session {session.id!r} hangs from unknown node {session.node_id!r}")
    if not session.phases or not set(session.phases) <= set(node.phases):
        raise GridError(f"session {session.id!r} draws on phases {session.phases} that node {node.id!r} lacks")


def _keys(node_id: str) -> tuple[tuple[str, int], ...]:
    return ((node_id, 1), (node_id, 2), (node_id, 3), (node_id, POWER))


def _limits_current(node: GridNode) -> bool:
    return node.max_current_a is not None or any(w.max_current_a is not None for w in node.schedule)


def _limits_power(node: GridNode) -> bool:
    return node.max_power_w is not None or any(w.max_power_w is not None for w in node.schedule)


def _boundaries(
    snapshot: Snapshot, nodes: Mapping[str, GridNode], start: datetime, end: datetime
) -> tuple[datetime, ...]:
    points = {start, end}
    for node in nodes.values():
        points |= node.change_points(start, end)
    points |= {t for hold in snapshot.holds for t in (hold.start, hold.end) if start < t < end}
    return tuple(sorted(points))


def _steady_loads(
    nodes: Mapping[str, GridNode], fixed: Sequence[SessionDemand], ancestors: Mapping[str, tuple[str, ...]]
) -> dict[tuple[str, int], float]:
    """Per (node, phase or POWER): unmanaged load anywhere under the node plus the fixed sessions under it."""
    used: dict[tuple[str, int], float] = {}

    def add(node_id: str, phases: tuple[int, ...], current: float, voltage: float) -> None:
        for above in ancestors[node_id]:
            for phase in phases:
                used[(above, phase)] = used.get((above, phase), 0.0) + current
            used[(above, POWER)] = used.get((above, POWER), 0.0) + current * voltage * len(phases)

    for node in nodes.values():
        for phase, current in zip((1, 2, 3), node.unmanaged_a, strict=True):
            if current and phase in node.phases:
                add(node.id, (phase,), current, node.voltage_v)
    for session in fixed:
        add(session.node_id, session.phases, session.fixed_a or 0.0, session.voltage_v)
    return used


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
