"""What an operator configured for the grid, as stored, and the rules every change to it must pass.

``GridSetup`` is the editable form of :class:`~csms.domain.grid.GridConfig`: node definitions, limit windows with
ids (once, or recurring daily in a time zone), station wiring and the latest unmanaged load reported per node.
Each ``with_*`` / ``without_*`` method returns a new, checked setup or raises:

- :class:`GridConflict` when the change contradicts the rest of the tree (a cycle, phases a parent lacks, deleting
  a node that still has children or wired stations);
- :class:`~csms.domain.grid.GridError` when a value or a reference in the change itself is wrong (unknown parent,
  negative limit, a window that ends before it starts).

:meth:`GridSetup.config` turns it into the scheduler's ``GridConfig``, expanding recurring windows into concrete
``LimitWindow`` occurrences. Pure: no I/O except the time zone database lookup of ``zoneinfo``; ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from csms.domain.grid import (
    ALL_PHASES,
    GridConfig,
    GridError,
    GridNode,
    LimitWindow,
    Phases,
    StationWiring,
    grid_phases,
    validate_tree,
)

__all__ = [
    "ALL_WEEKDAYS",
    "DailyTimes",
    "EXPANSION_HORIZON",
    "GridConflict",
    "GridSetup",
    "UnmanagedLoad",
    "WindowSpec",
    "time_zone",
]

ALL_WEEKDAYS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)  # ISO weekdays, Monday = 1
# How far ahead recurring windows are expanded into concrete ones (the scheduler's horizon is shorter).
EXPANSION_HORIZON = timedelta(hours=48)
_NO_LOAD = (0.0, 0.0, 0.0)


class GridConflict(GridError):
    """A change that contradicts the stored tree (cycle, phases, a node that still has dependants)."""


def time_zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA, e.g. ``Europe/Berlin``); ``UTC`` needs no time zone database.

    Raises:
        GridError: unknown name.
    """
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GridError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True, slots=True)
class DailyTimes:
    """A window recurring each day from ``start`` to ``end`` local time; ``end <= start`` crosses midnight."""

    start: time
    end: time
    weekdays: tuple[int, ...] = ALL_WEEKDAYS  # the ISO weekdays on which a window starts
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A limit window as configured on a node: once (``start``/``end``) or recurring (``daily``)."""

    id: int
    node_id: str
    max_current_a: float | None = None  # per phase
    max_power_w: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    daily: DailyTimes | None = None

    @property
    def kind(self) -> str:
        return "daily" if self.daily is not None else "once"

    def occurrences(self, start: datetime, end: datetime) -> list[LimitWindow]:
        """The concrete windows of this spec that overlap [start, end), in UTC."""
        if self.daily is None:
            assert self.start is not None and self.end is not None
            if self.end <= start or self.start >= end:
                return []
            return [LimitWindow(self.start, self.end, self.max_current_a, self.max_power_w)]
        zone = time_zone(self.daily.timezone)
        found = []
        for day in _days(start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()):
            if day.isoweekday() not in self.daily.weekdays:
                continue
            end_day = day if self.daily.end > self.daily.start else day + timedelta(days=1)
            begins = datetime.combine(day, self.daily.start, zone).astimezone(UTC)
            ends = datetime.combine(end_day, self.daily.end, zone).astimezone(UTC)
            if begins < ends and ends > start and begins < end:  # a window inside a DST gap can vanish
                found.append(LimitWindow(begins, ends, self.max_current_a, self.max_power_w))
        return found

    def check(self) -> None:
        """Raises GridError naming the node and the rule this window breaks."""
        where = f"node {self.node_id!r}: limit window {self.id}"
        if self.max_current_a is None and self.max_power_w is None:
            raise GridError(f"{where} sets neither max_current_a nor max_power_w")
        if any(v is not None and not (v >= 0 and math.isfinite(v)) for v in (self.max_current_a, self.max_power_w)):
            raise GridError(f"{where}: limits must be >= 0")
        if self.daily is None:
            if self.start is None or self.end is None:
                raise GridError(f"{where} needs a start and an end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise GridError(f"{where}: start and end need a time zone offset")
            if not self.start < self.end:
                raise GridError(f"{where} must end after it starts")
            return
        if self.start is not None or self.end is not None:
            raise GridError(f"{where} is either once (start, end) or daily, not both")
        if self.daily.start == self.daily.end:
            raise GridError(f"{where}: a daily window must not start and end at the same time")
        if not self.daily.weekdays or any(d not in ALL_WEEKDAYS for d in self.daily.weekdays):
            raise GridError(f"{where}: weekdays must be ISO weekdays 1 (Monday) to 7 (Sunday)")
        time_zone(self.daily.timezone)


@dataclass(frozen=True, slots=True)
class UnmanagedLoad:
    """Load on a node that we do not control (building consumption), per phase L1..L3, as last reported."""

    amps: tuple[float, float, float]
    at: datetime


@dataclass(frozen=True, slots=True)
class GridSetup:
    """Everything configured for the grid. Treat the mappings as read-only: changes return a new setup."""

    nodes: Mapping[str, GridNode] = field(default_factory=dict)  # definitions: no schedule, no unmanaged load
    windows: Mapping[int, WindowSpec] = field(default_factory=dict)
    wirings: Mapping[str, StationWiring] = field(default_factory=dict)
    unmanaged: Mapping[str, UnmanagedLoad] = field(default_factory=dict)

    # -- views -------------------------------------------------------------------------------------------

    def site_of_node(self, node_id: str) -> str | None:
        """The root of the tree ``node_id`` is in (a site is a node without a parent); None for an unknown node."""
        seen: set[str] = set()
        node = self.nodes.get(node_id)
        while node is not None and node.parent_id is not None and node.id not in seen:
            seen.add(node.id)
            node = self.nodes.get(node.parent_id)
        return node.id if node is not None else None

    def site_of_station(self, station_id: str) -> str | None:
        """The site a station is wired under, or None when it has no wiring."""
        wiring = self.wirings.get(station_id)
        return self.site_of_node(wiring.node_id) if wiring is not None else None

    def stations_of_site(self, site_id: str) -> list[str]:
        """The stations wired anywhere under ``site_id``, sorted."""
        return sorted(w.station_id for w in self.wirings.values() if self.site_of_node(w.node_id) == site_id)

    def config(self, now: datetime, horizon: timedelta = EXPANSION_HORIZON) -> GridConfig:
        """The scheduler's model: windows that end after ``now`` and start before ``now + horizon``."""
        schedules: dict[str, list[LimitWindow]] = {}
        for window in self.windows.values():
            schedules.setdefault(window.node_id, []).extend(window.occurrences(now, now + horizon))
        nodes = tuple(
            replace(
                node,
                unmanaged_a=self._load_on(node),
                schedule=tuple(sorted(schedules.get(node.id, ()), key=lambda w: (w.start, w.end))),
            )
            for node in sorted(self.nodes.values(), key=lambda n: n.id)
        )
        wirings = tuple(sorted(self.wirings.values(), key=lambda w: w.station_id))
        return GridConfig(nodes, wirings)

    def _load_on(self, node: GridNode) -> tuple[float, float, float]:
        """The last reported load, on the phases the node carries (a report may predate a change of phases)."""
        load = self.unmanaged.get(node.id)
        if load is None:
            return _NO_LOAD
        l1, l2, l3 = (amps if phase in node.phases else 0.0 for phase, amps in zip(ALL_PHASES, load.amps, strict=True))
        return (l1, l2, l3)

    def children(self, node_id: str) -> list[str]:
        return sorted(n.id for n in self.nodes.values() if n.parent_id == node_id)

    def stations_on(self, node_id: str) -> list[str]:
        return sorted(w.station_id for w in self.wirings.values() if w.node_id == node_id)

    def windows_of(self, node_id: str) -> list[WindowSpec]:
        return sorted((w for w in self.windows.values() if w.node_id == node_id), key=lambda w: w.id)

    # -- changes -----------------------------------------------------------------------------------------

    def with_node(self, node: GridNode) -> GridSetup:
        """Add ``node`` or replace the definition of the node with its id (its windows and load stay)."""
        node = replace(node, phases=tuple(sorted(node.phases)), unmanaged_a=_NO_LOAD, schedule=())
        validate_tree([replace(node, parent_id=None)])  # its own values first: phases, limits, voltage
        nodes = {**self.nodes, node.id: node}
        _check_parent(node, nodes)
        for child_id in self.children(node.id):
            if not set(nodes[child_id].phases) <= set(node.phases):
                raise GridConflict(
                    f"node {child_id!r} carries phases {_names(nodes[child_id].phases)} that its parent "
                    f"{node.id!r} would not carry"
                )
        for station_id in self.stations_on(node.id):
            _check_wiring_phases(self.wirings[station_id], node)
        validate_tree(nodes.values())
        return replace(self, nodes=nodes)

    def without_node(self, node_id: str) -> GridSetup:
        """Remove a node with its limit windows and load; it must have no children and no wired stations."""
        if children := self.children(node_id):
            raise GridConflict(f"node {node_id!r} still has child nodes {_quoted(children)}: delete or move them first")
        if stations := self.stations_on(node_id):
            raise GridConflict(
                f"node {node_id!r} still has wired stations {_quoted(stations)}: remove their wiring first"
            )
        return replace(
            self,
            nodes={k: v for k, v in self.nodes.items() if k != node_id},
            windows={k: v for k, v in self.windows.items() if v.node_id != node_id},
            unmanaged={k: v for k, v in self.unmanaged.items() if k != node_id},
        )

    def with_window(self, window: WindowSpec) -> GridSetup:
        if window.node_id not in self.nodes:
            raise GridError(f"limit window {window.id} is on unknown node {window.node_id!r}")
        window.check()
        return replace(self, windows={**self.windows, window.id: window})

    def without_window(self, window_id: int) -> GridSetup:
        return replace(self, windows={k: v for k, v in self.windows.items() if k != window_id})

    def with_wiring(self, wiring: StationWiring) -> GridSetup:
        node = self.nodes.get(wiring.node_id)
        if node is None:
            raise GridError(f"station {wiring.station_id!r} is wired to unknown node {wiring.node_id!r}")
        if not (wiring.max_current_a > 0 and math.isfinite(wiring.max_current_a)):
            raise GridError(f"station {wiring.station_id!r}: max_current_a must be > 0")
        _check_wiring_phases(wiring, node)
        return replace(self, wirings={**self.wirings, wiring.station_id: wiring})

    def without_wiring(self, station_id: str) -> GridSetup:
        return replace(self, wirings={k: v for k, v in self.wirings.items() if k != station_id})

    def with_unmanaged(self, node_id: str, load: UnmanagedLoad) -> GridSetup:
        """Record the live unmanaged load of a node. Cheap: only that node's values are checked."""
        node = self.nodes.get(node_id)
        if node is None:
            raise GridError(f"unmanaged load reported for unknown node {node_id!r}")
        if len(load.amps) != 3 or any(not (a >= 0 and math.isfinite(a)) for a in load.amps):
            raise GridError(f"node {node_id!r}: unmanaged load must be three values >= 0 (L1, L2, L3)")
        for phase, amps in zip(ALL_PHASES, load.amps, strict=True):
            if amps and phase not in node.phases:
                raise GridError(
                    f"node {node_id!r} does not carry L{phase}: its unmanaged load there must be 0, not {amps:g} A"
                )
        return replace(self, unmanaged={**self.unmanaged, node_id: load})


def _check_parent(node: GridNode, nodes: Mapping[str, GridNode]) -> None:
    if node.parent_id is None:
        return
    parent = nodes.get(node.parent_id)
    if parent is None:
        raise GridError(f"node {node.id!r} has unknown parent {node.parent_id!r}")
    ancestor: str | None = node.parent_id
    seen: set[str] = set()
    while ancestor is not None and ancestor not in seen:
        seen.add(ancestor)
        if ancestor == node.id:
            raise GridConflict(
                f"node {node.id!r} cannot hang under {node.parent_id!r}: that would make it its own ancestor"
            )
        ancestor = nodes[ancestor].parent_id if ancestor in nodes else None
    if not set(node.phases) <= set(parent.phases):
        raise GridConflict(
            f"node {node.id!r} carries phases {_names(node.phases)} but its parent {parent.id!r} "
            f"carries only {_names(parent.phases)}"
        )


def _check_wiring_phases(wiring: StationWiring, node: GridNode) -> None:
    drawn = grid_phases(wiring.phases, wiring.rotation)  # raises GridError for a bad phase count or rotation
    if not set(drawn) <= set(node.phases):
        raise GridConflict(
            f"station {wiring.station_id!r} draws on {_names(drawn)} but node {node.id!r} carries only "
            f"{_names(node.phases)}"
        )


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _names(phases: Phases) -> str:
    return "/".join(f"L{p}" for p in sorted(phases))


def _quoted(ids: Iterable[str]) -> str:
    return ", ".join(repr(i) for i in ids)
