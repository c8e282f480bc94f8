"""Connector specs: what operators set per connector (plug, power, bookable), with defaults from the wiring.

The stored specs are kept in memory (booking placement and availability read them on every request); a spec an
operator never set is derived on each read from the station's wiring, so a wiring change shows at once.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from csms.domain.connectors import ConnectorKey, ConnectorSpec, resolve_spec, wired_power_w
from csms.service.grid import GridService
from csms.storage import bookings as stored
from csms.storage.sql import SqlStorage

__all__ = ["ConnectorSpecService"]

log = structlog.get_logger(__name__)


class ConnectorSpecService:
    def __init__(self, storage: SqlStorage, grid: GridService) -> None:
        self._storage = storage
        self._grid = grid
        self._stored: dict[ConnectorKey, ConnectorSpec] = {}

    async def load(self) -> None:
        """Read the stored specs into memory; call once before serving."""
        self._stored = {spec.key: spec for spec in await self._storage.read(stored.read_connector_specs)}

    def wired_power_w(self, station_id: str) -> float | None:
        """What one EVSE of the station can deliver by its wiring; None when it is not wired."""
        wiring = self._grid.setup.wirings.get(station_id)
        if wiring is None:
            return None
        node = self._grid.setup.nodes.get(wiring.node_id)
        voltage = node.voltage_v if node is not None else 230.0
        return wired_power_w(wiring.max_current_a, wiring.phases, voltage)

    def spec(self, station_id: str, evse_id: int, connector_id: int) -> ConnectorSpec:
        """The spec in force for a connector: stored values, a power left unset from the wiring, else defaults."""
        key = (station_id, evse_id, connector_id)
        return resolve_spec(self._stored.get(key), key, self.wired_power_w(station_id))

    def stored(self, station_id: str, evse_id: int, connector_id: int) -> ConnectorSpec | None:
        return self._stored.get((station_id, evse_id, connector_id))

    async def specs(self, station_ids: set[str] | None = None) -> list[ConnectorSpec]:
        """The spec in force of every known connector (reported by a charger or configured), sorted.

        ``station_ids`` limits the answer to those stations.
        """
        keys = set(self._stored) | set(await self._storage.read(stored.read_connector_keys))
        if station_ids is not None:
            keys = {k for k in keys if k[0] in station_ids}
        return [self.spec(*key) for key in sorted(keys)]

    async def station_specs(self, station_id: str) -> list[ConnectorSpec]:
        return await self.specs({station_id})

    async def put(self, spec: ConnectorSpec, now: datetime) -> ConnectorSpec:
        """Store an operator's spec for a connector (``max_power_w`` None: from the wiring) and return it in force."""
        spec = ConnectorSpec(*spec.key, spec.connector_type, spec.max_power_w, spec.bookable, configured=True)
        await self._storage.write(stored.put_connector_spec(spec, now))
        self._stored[spec.key] = spec
        log.info("connector spec set", station_id=spec.station_id, evse_id=spec.evse_id, type=spec.connector_type)
        return self.spec(*spec.key)

    async def reset(self, station_id: str, evse_id: int, connector_id: int) -> ConnectorSpec:
        """Forget the operator's spec: the connector is back to its defaults."""
        key = (station_id, evse_id, connector_id)
        await self._storage.write([stored.delete_connector_spec(key)])
        self._stored.pop(key, None)
        return self.spec(*key)
