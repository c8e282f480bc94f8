"""Ground-truth metering of a simulated site: what the stations really draw, per grid node and grid phase.

Smart-charging tests need to know the load a site's grid connection and feeders actually carry, not what the
CSMS believes. `SiteMeter` listens to every change of every attached station's draw (exact, in simulated time)
and adds it up the tree a test describes: which node each station hangs from, and which grid phases its L1, L2,
L3 are wired to (the phase rotation). It keeps each node's load as a step function of simulated time, so limits
can be checked over every instant rather than at sampling points.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from simulator.station import SimStation

__all__ = ["LoadStep", "SiteMeter", "StationWiring"]

Amps3 = tuple[float, float, float]


@dataclass(frozen=True)
class StationWiring:
    """Where a station hangs: its node, and the grid phases (1..3) its own L1, L2, L3 are wired to."""

    node_id: str
    rotation: tuple[int, int, int] = (1, 2, 3)

    def __post_init__(self) -> None:
        if sorted(self.rotation) != [1, 2, 3]:
            raise ValueError(f"rotation must be a permutation of 1, 2, 3, not {self.rotation}")


@dataclass(frozen=True)
class LoadStep:
    """A node's load per grid phase L1..L3 from `start` until `end` (None: still in force)."""

    start: datetime
    end: datetime | None
    load_a: Amps3


class SiteMeter:
    """Exact load per node and grid phase of a tree of simulated stations, as step functions of simulated time.

    `parents` maps every node to its parent (None for a site); a station's draw counts at its node and at every
    node above it.
    """

    def __init__(self, parents: Mapping[str, str | None], wirings: Mapping[str, StationWiring]) -> None:
        for node, parent in parents.items():
            if parent is not None and parent not in parents:
                raise ValueError(f"node {node!r} has unknown parent {parent!r}")
        self._parents = dict(parents)
        self._wirings = dict(wirings)
        self._chains = {node: self._chain(node) for node in parents}
        for station_id, wiring in self._wirings.items():
            if wiring.node_id not in self._parents:
                raise ValueError(f"station {station_id!r} is wired to unknown node {wiring.node_id!r}")
        self._loads: dict[str, list[float]] = {node: [0.0, 0.0, 0.0] for node in parents}
        self._drawn: dict[str, Amps3] = {}
        self._history: dict[str, list[tuple[datetime, Amps3]]] = {node: [] for node in parents}
        self._station_history: dict[str, list[tuple[datetime, Amps3]]] = {}

    def attach(self, station: SimStation) -> None:
        """Follow a station's draw from now on (it must be wired)."""
        station_id = station.identity
        if station_id not in self._wirings:
            raise ValueError(f"station {station_id!r} is not wired")
        self._drawn.setdefault(station_id, (0.0, 0.0, 0.0))
        self._station_history.setdefault(station_id, [])

        def changed(when: datetime, drawn: Amps3) -> None:
            self.record(station_id, when, drawn)

        station.core.draw_listeners.append(changed)

    def record(self, station_id: str, when: datetime, drawn: Amps3) -> None:
        """A station now draws `drawn` on its own L1..L3 (called by attached stations; public for tests)."""
        wiring = self._wirings[station_id]
        before = self._drawn.get(station_id, (0.0, 0.0, 0.0))
        self._drawn[station_id] = drawn
        self._station_history.setdefault(station_id, []).append((when, drawn))
        delta = [0.0, 0.0, 0.0]
        for station_phase in range(3):
            delta[wiring.rotation[station_phase] - 1] += drawn[station_phase] - before[station_phase]
        for node in self._chains[wiring.node_id]:
            load = self._loads[node]
            for phase in range(3):
                load[phase] += delta[phase]
            self._history[node].append((when, (load[0], load[1], load[2])))

    def load(self, node_id: str) -> Amps3:
        """A node's load per grid phase right now."""
        load = self._loads[node_id]
        return (load[0], load[1], load[2])

    def station_draw(self, station_id: str) -> Amps3:
        """What a station draws right now on its own L1..L3."""
        return self._drawn.get(station_id, (0.0, 0.0, 0.0))

    def steps(self, node_id: str, start: datetime | None = None, end: datetime | None = None) -> Iterator[LoadStep]:
        """A node's load as steps, clipped to [start, end); steps of zero length are skipped."""
        yield from _steps(self._history[node_id], start, end)

    def station_steps(
        self, station_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[LoadStep]:
        """One station's own draw (its L1..L3) as steps, clipped to [start, end)."""
        yield from _steps(self._station_history.get(station_id, []), start, end)

    def _chain(self, node: str) -> tuple[str, ...]:
        chain: list[str] = []
        current: str | None = node
        while current is not None:
            if current in chain:
                raise ValueError(f"node {node!r} is its own ancestor")
            chain.append(current)
            current = self._parents[current]
        return tuple(chain)


def _steps(history: list[tuple[datetime, Amps3]], start: datetime | None, end: datetime | None) -> Iterator[LoadStep]:
    level: Amps3 = (0.0, 0.0, 0.0)
    since = start
    for when, load in history:
        if start is not None and when <= start:
            level = load
            continue
        if end is not None and when >= end:
            break
        if since is not None and when > since:
            yield LoadStep(since, when, level)
        level, since = load, when
    if since is not None and (end is None or since < end):
        yield LoadStep(since, end, level)
