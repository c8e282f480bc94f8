"""The grid setup operators configure: site trees with limits, limit windows, station wiring, unmanaged load.

The service keeps a hot copy of the whole setup in memory (:meth:`GridService.config` answers the scheduler without
a database read). Every change is checked against the whole tree first, committed, and only then applied to the hot
copy, after which ``on_change`` is called (the runtime re-plans). Structural changes are serialised by a lock so
two of them can never both pass their checks against the same old tree; unmanaged-load reports, which are frequent,
take no lock and touch one row.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from csms.domain.grid import GridConfig, GridError, GridNode, StationWiring
from csms.domain.grid_setup import GridConflict, GridSetup, UnmanagedLoad, WindowSpec
from csms.errors import Conflict, InvalidRequest, NotFound
from csms.storage import grid as stored
from csms.storage.sql import SqlStorage

__all__ = ["GridService"]

log = structlog.get_logger(__name__)


class GridService:
    """Reads and changes of the grid setup.

    Args:
        storage: where the setup is kept.
        on_change: called (synchronously, must not raise or block) after every committed change, including
            unmanaged-load reports that changed a value.
    """

    def __init__(self, storage: SqlStorage, on_change: Callable[[], None] = lambda: None) -> None:
        self._storage = storage
        self._on_change = on_change
        self._setup = GridSetup()
        self._lock = asyncio.Lock()
        self._window_ids = itertools.count(1)
        self._generation = 0
        self._config: tuple[int, datetime, GridConfig] | None = None

    async def load(self) -> None:
        """Read the stored setup into memory; call once before serving."""
        self._setup = await self._storage.grid_setup()
        self._window_ids = itertools.count(max(self._setup.windows, default=0) + 1)
        self._changed(notify=False)

    # -- reads (from memory) -----------------------------------------------------------------------------

    @property
    def setup(self) -> GridSetup:
        """Everything configured, with window ids, recurring windows and when each load was reported."""
        return self._setup

    @property
    def generation(self) -> int:
        """A number that grows with every change: compare it to tell whether anything changed."""
        return self._generation

    def config(self, now: datetime) -> GridConfig:
        """The scheduler's model: every node with its unmanaged load and the limit windows of the next 48 h.

        Recurring windows are expanded from the start of ``now``'s hour, so the result is the same object for a
        whole hour unless something changes.
        """
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        cached = self._config
        if cached is None or cached[0] != self._generation or cached[1] != hour:
            cached = (self._generation, hour, self._setup.config(hour, timedelta(hours=49)))
            self._config = cached
        return cached[2]

    def node(self, node_id: str) -> GridNode:
        """A node's definition (without its windows or load).

        Raises:
            NotFound: no such node.
        """
        node = self._setup.nodes.get(node_id)
        if node is None:
            raise NotFound("grid node", node_id)
        return node

    def site_of_station(self, station_id: str) -> str | None:
        """The site (root node) the station is wired under; None when it has no wiring."""
        return self._setup.site_of_station(station_id)

    def stations_of_site(self, site_id: str) -> list[str]:
        """The stations wired under the site, sorted."""
        return self._setup.stations_of_site(site_id)

    def wiring(self, station_id: str) -> StationWiring:
        """Raises NotFound when the station has no wiring."""
        wiring = self._setup.wirings.get(station_id)
        if wiring is None:
            raise NotFound("wiring of station", station_id)
        return wiring

    def window(self, node_id: str, window_id: int) -> WindowSpec:
        """Raises NotFound when the node has no window with that id."""
        window = self._setup.windows.get(window_id)
        if window is None or window.node_id != node_id:
            raise NotFound(f"limit window of node {node_id}", window_id)
        return window

    # -- changes -----------------------------------------------------------------------------------------

    async def create_node(self, node: GridNode, now: datetime) -> GridNode:
        """Add a node (a site when it has no parent).

        Raises:
            Conflict: the id is taken, or the node does not fit its parent (phases).
            InvalidRequest: unknown parent or a bad value.
        """
        async with self._lock:
            if node.id in self._setup.nodes:
                raise Conflict(f"grid node {node.id!r} already exists")
            setup = _checked(lambda s: s.with_node(node), self._setup)
            await self._storage.write([stored.insert_node(setup.nodes[node.id], now)])
            self._install(setup)
        log.info("grid node created", node_id=node.id, parent_id=node.parent_id)
        return setup.nodes[node.id]

    async def update_node(self, node: GridNode, now: datetime) -> GridNode:
        """Replace a node's definition (parent, limits, phases, voltage); its windows and load stay.

        Raises:
            NotFound: no such node. Conflict: a cycle, or phases its parent, children or stations contradict.
            InvalidRequest: unknown parent or a bad value.
        """
        async with self._lock:
            self.node(node.id)
            setup = _checked(lambda s: s.with_node(node), self._setup)
            await self._storage.write([stored.update_node(setup.nodes[node.id], now)])
            self._install(setup)
        log.info("grid node changed", node_id=node.id)
        return setup.nodes[node.id]

    async def delete_node(self, node_id: str) -> None:
        """Delete a node and its limit windows.

        Raises:
            NotFound: no such node. Conflict: it still has child nodes or wired stations.
        """
        async with self._lock:
            self.node(node_id)
            setup = _checked(lambda s: s.without_node(node_id), self._setup)
            await self._storage.write(stored.delete_node(node_id))
            self._install(setup)
        log.info("grid node deleted", node_id=node_id)

    async def add_window(self, window: WindowSpec, now: datetime) -> WindowSpec:
        """Add a limit window to ``window.node_id``; ``window.id`` is ignored and a new one returned.

        Raises:
            NotFound: no such node. InvalidRequest: no limit, a negative limit, end not after start, or a
                window that ended before ``now``.
        """
        if window.end is not None and window.end <= now:
            raise InvalidRequest(f"node {window.node_id!r}: a limit window must end in the future, not at {window.end}")
        async with self._lock:
            self.node(window.node_id)
            window = replace(window, id=next(self._window_ids))
            setup = _checked(lambda s: s.with_window(window), self._setup)
            await self._storage.write([stored.insert_window(window, now)])
            self._install(setup)
        log.info("limit window added", node_id=window.node_id, window_id=window.id)
        return window

    async def remove_window(self, node_id: str, window_id: int) -> None:
        """Raises NotFound when the node has no window with that id."""
        async with self._lock:
            self.window(node_id, window_id)
            setup = self._setup.without_window(window_id)
            await self._storage.write([stored.delete_window(window_id)])
            self._install(setup)
        log.info("limit window removed", node_id=node_id, window_id=window_id)

    async def set_wiring(self, wiring: StationWiring, now: datetime) -> StationWiring:
        """Wire a station under a node, replacing its previous wiring. The station need not have connected yet.

        Raises:
            InvalidRequest: unknown node, bad rotation or phase count.
            Conflict: the station would draw on phases its node does not carry.
        """
        async with self._lock:
            setup = _checked(lambda s: s.with_wiring(wiring), self._setup)
            await self._storage.write(stored.put_wiring(wiring, now))
            self._install(setup)
        log.info("station wired", station_id=wiring.station_id, node_id=wiring.node_id)
        return wiring

    async def delete_wiring(self, station_id: str) -> None:
        """Raises NotFound when the station has no wiring."""
        async with self._lock:
            self.wiring(station_id)
            setup = self._setup.without_wiring(station_id)
            await self._storage.write([stored.delete_wiring(station_id)])
            self._install(setup)
        log.info("station wiring removed", station_id=station_id)

    async def set_unmanaged_load(self, node_id: str, amps: tuple[float, float, float], now: datetime) -> UnmanagedLoad:
        """Record the live load we do not control on a node (per phase L1..L3); it is kept across restarts.

        Cheap enough for frequent reports: no lock, one row updated, only this node's values checked.
        ``on_change`` is called only when the amps differ from the previous report.

        Raises:
            NotFound: no such node. InvalidRequest: a negative value, or load on a phase the node lacks.
        """
        self.node(node_id)
        load = UnmanagedLoad(amps, now)
        _checked(lambda s: s.with_unmanaged(node_id, load), self._setup)
        await self._storage.write([stored.set_unmanaged_load(node_id, load)])
        if node_id in self._setup.nodes:  # not deleted while the write was committed
            previous = self._setup.unmanaged.get(node_id)
            self._setup = replace(self._setup, unmanaged={**self._setup.unmanaged, node_id: load})
            if previous is None or previous.amps != load.amps:
                self._changed()
        return load

    # -- helpers -----------------------------------------------------------------------------------------

    def _install(self, setup: GridSetup) -> None:
        """Make a committed setup the hot copy, keeping loads reported while it was being committed."""
        unmanaged = {k: v for k, v in self._setup.unmanaged.items() if k in setup.nodes}
        self._setup = replace(setup, unmanaged=unmanaged)
        self._changed()

    def _changed(self, notify: bool = True) -> None:
        self._generation += 1
        if notify:
            self._on_change()


def _checked(change: Callable[[GridSetup], GridSetup], setup: GridSetup) -> GridSetup:
    try:
        return change(setup)
    except GridConflict as exc:
        raise Conflict(str(exc)) from None
    except GridError as exc:
        raise InvalidRequest(str(exc)) from None
