"""Real-time availability per site, station and connector, and a site's live figures.

Everything here is read at request time from what is already in memory (sessions in progress, connected
stations, the grid setup, smart charging's sessions, measured loads and connector specs) plus a read of the
connectors' current status and of the owners and bookings of the sessions shown; only "energy today" aggregates
meter values in SQL.

Expected free time of an occupied connector: the departure the driver or car gave smart charging for the session
(``basis: "departure"``), else the end of the booking the session runs under (``"booking"``), else when the
site's maximum charging time ends (``"time_limit"``, session rules); None otherwise.
Connector type, maximum power and bookability come from the connector specs (:class:`ConnectorSpecService`: what
an operator set, else the station's wiring: hardware maximum per phase x phases x voltage).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from csms.domain.analytics import UsageClass, status_class
from csms.domain.connectors import ConnectorType
from csms.domain.stations import ConnectorState, ConnectorStatus
from csms.domain.transactions import Transaction
from csms.errors import NotFound
from csms.service.charger import ChargerService
from csms.service.connectors import ConnectorSpecService
from csms.service.grid import GridService
from csms.service.smart_charging import SmartChargingService
from csms.storage.availability import AnalyticsReader

__all__ = [
    "AvailabilityService",
    "ConnectorAvailability",
    "ConnectorInfo",
    "NodeLoad",
    "Occupant",
    "SiteLive",
    "StationAvailability",
    "day_start",
]


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """What a connector is: its plug type (None: unknown) and maximum power, and where the power came from."""

    connector_type: str | None
    max_power_w: float | None
    source: str | None  # "spec" (an operator set it), "wiring" (derived), None (nothing known)
    bookable: bool = True


@dataclass(frozen=True, slots=True)
class Occupant:
    transaction_id: int
    id_token: str | None
    account_id: str | None
    started_at: datetime


@dataclass(frozen=True, slots=True)
class ConnectorAvailability:
    station_id: str
    evse_id: int
    connector_id: int
    status: str
    error_code: str | None
    status_at: datetime | None
    usage: UsageClass
    info: ConnectorInfo
    occupant: Occupant | None
    expected_free_at: datetime | None
    expected_free_basis: str | None

    @property
    def available(self) -> bool:
        return self.usage is UsageClass.IDLE and self.occupant is None


@dataclass(frozen=True, slots=True)
class StationAvailability:
    station_id: str
    site_id: str | None
    online: bool
    status: str | None  # the station's own status (1.6 connector 0), when reported
    connectors: tuple[ConnectorAvailability, ...]


@dataclass(frozen=True, slots=True)
class NodeLoad:
    node_id: str
    parent_id: str | None
    measured_a: tuple[float, float, float]
    limit_a: float | None
    limit_w: float | None
    measured_w: float
    over_limit: bool


@dataclass(frozen=True, slots=True)
class SiteLive:
    site_id: str
    at: datetime
    day_start: datetime
    energy_today_wh: float
    nodes: tuple[NodeLoad, ...]
    sessions: tuple[dict[str, object], ...]
    offline: tuple[str, ...]
    faulted: tuple[dict[str, object], ...]
    stations: int
    connectors: dict[str, int] = field(default_factory=dict)


def day_start(now: datetime, tz: tzinfo) -> datetime:
    """Midnight of ``now``'s day in ``tz``, as UTC."""
    return now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


class AvailabilityService:
    def __init__(
        self,
        reader: AnalyticsReader,
        chargers: ChargerService,
        grid: GridService,
        online: Callable[[str], bool],
        smart: SmartChargingService | None = None,
        specs: ConnectorSpecService | None = None,
    ) -> None:
        self._reader = reader
        self._chargers = chargers
        self._grid = grid
        self._online = online  # whether a station is connected now
        self._smart = smart
        self._specs = specs

    def site_exists(self, site_id: str) -> bool:
        node = self._grid.setup.nodes.get(site_id)
        return node is not None and node.parent_id is None

    def require_site(self, site_id: str) -> list[str]:
        """The stations of the site; NotFound when there is no such site."""
        if not self.site_exists(site_id):
            raise NotFound("site", site_id)
        return self._grid.stations_of_site(site_id)

    async def stations(self, station_ids: Collection[str]) -> list[StationAvailability]:
        """Availability of the stations (those with no known connector still listed, with none)."""
        wanted = set(station_ids)
        states = await self._reader.connectors(wanted)
        active = {(t.station_id, t.evse_id): t for t in self._chargers.active() if t.station_id in wanted}
        owners = await self._reader.token_owners({t.id_token for t in active.values() if t.id_token})
        booked_until = await self._reader.booking_ends([t.id for t in active.values()])
        limits = await self._reader.time_limits([t.id for t in active.values()])
        by_station: dict[str, list[ConnectorState]] = {station_id: [] for station_id in wanted}
        for state in states:
            by_station.setdefault(state.station_id, []).append(state)
        result = []
        for station_id in sorted(by_station):
            own = [s for s in by_station[station_id] if s.evse_id == 0 or s.connector_id == 0]
            result.append(
                StationAvailability(
                    station_id=station_id,
                    site_id=self._grid.site_of_station(station_id),
                    online=self._online(station_id),
                    status=own[0].status.value if own else None,
                    connectors=tuple(
                        self._connector(s, active.get((s.station_id, s.evse_id)), owners, booked_until, limits)
                        for s in by_station[station_id]
                        if s.evse_id > 0 and s.connector_id > 0
                    ),
                )
            )
        return result

    async def station(self, station_id: str) -> StationAvailability:
        """One station; NotFound when it never booted and is not wired either."""
        if self._chargers.registration(station_id) is None and station_id not in self._grid.setup.wirings:
            raise NotFound("station", station_id)
        [station] = await self.stations([station_id])
        return station

    def _connector(
        self,
        state: ConnectorState,
        transaction: Transaction | None,
        owners: dict[str, str],
        booked_until: dict[int, datetime],
        limits: dict[int, datetime],
    ) -> ConnectorAvailability:
        occupant = None
        free_at: datetime | None = None
        basis: str | None = None
        if transaction is not None:
            token = transaction.id_token
            occupant = Occupant(transaction.id, token, owners.get(token) if token else None, transaction.started_at)
            free_at, basis = self._expected_free(state, transaction, booked_until, limits)
        usage = status_class(state.status.value)
        if transaction is not None and usage is UsageClass.IDLE:
            usage = UsageClass.OCCUPIED  # a session in progress whose Available status is stale or out of order
        return ConnectorAvailability(
            station_id=state.station_id,
            evse_id=state.evse_id,
            connector_id=state.connector_id,
            status=state.status.value,
            error_code=state.error_code,
            status_at=state.timestamp,
            usage=usage,
            info=self.connector_info(state.station_id, state.evse_id, state.connector_id),
            occupant=occupant,
            expected_free_at=free_at,
            expected_free_basis=basis,
        )

    def _expected_free(
        self,
        state: ConnectorState,
        transaction: Transaction,
        booked_until: dict[int, datetime],
        limits: dict[int, datetime],
    ) -> tuple[datetime | None, str | None]:
        """The departure the driver or car gave, else the end of the booking the session runs under, else when the
        site's maximum charging time ends."""
        session = self._smart.session(state.station_id, state.evse_id) if self._smart else None
        if session is not None and session.needs.departure is not None:
            return session.needs.departure, "departure"
        if transaction.id in booked_until:
            return booked_until[transaction.id], "booking"
        if transaction.id in limits:
            return limits[transaction.id], "time_limit"
        return None, None

    def connector_info(self, station_id: str, evse_id: int, connector_id: int) -> ConnectorInfo:
        if self._specs is not None:
            spec = self._specs.spec(station_id, evse_id, connector_id)
            stored = self._specs.stored(station_id, evse_id, connector_id)
            if stored is not None and stored.max_power_w is not None:
                source: str | None = "spec"
            else:
                source = "wiring" if spec.max_power_w is not None else None
            kind = None if spec.connector_type is ConnectorType.UNKNOWN else spec.connector_type.value
            return ConnectorInfo(kind, spec.max_power_w, source, spec.bookable)
        wiring = self._grid.setup.wirings.get(station_id)
        if wiring is None:
            return ConnectorInfo(None, None, None)
        node = self._grid.setup.nodes.get(wiring.node_id)
        voltage = node.voltage_v if node is not None else 230.0
        return ConnectorInfo(None, wiring.max_current_a * wiring.phases * voltage, "wiring")

    async def site_live(self, site_id: str, now: datetime, tz: tzinfo) -> SiteLive:
        """Load vs limit per node, energy today (midnight in ``tz``), sessions, offline and faulted stations."""
        station_ids = self.require_site(site_id)
        since = day_start(now, tz)
        energy = await self._reader.energy_wh(station_ids, since, now) if station_ids else 0.0
        stations = await self.stations(station_ids)
        counts = {usage.value: 0 for usage in UsageClass}
        faulted: list[dict[str, object]] = []
        sessions: list[dict[str, object]] = []
        for station in stations:
            if station.status == ConnectorStatus.FAULTED.value:
                faulted.append({"station_id": station.station_id, "evse_id": 0, "connector_id": 0})
            for connector in station.connectors:
                counts[connector.usage.value] += 1
                if connector.status == ConnectorStatus.FAULTED.value:
                    faulted.append(
                        {
                            "station_id": connector.station_id,
                            "evse_id": connector.evse_id,
                            "connector_id": connector.connector_id,
                            "error_code": connector.error_code,
                        }
                    )
        for transaction in sorted(self._chargers.active(), key=lambda t: t.id):
            if transaction.station_id in station_ids:
                sessions.append(self._session(transaction))
        return SiteLive(
            site_id=site_id,
            at=now,
            day_start=since,
            energy_today_wh=energy,
            nodes=tuple(self._loads(site_id, now)),
            sessions=tuple(sessions),
            offline=tuple(s.station_id for s in stations if not s.online),
            faulted=tuple(faulted),
            stations=len(stations),
            connectors=counts,
        )

    def _session(self, transaction: Transaction) -> dict[str, object]:
        session = self._smart.session(transaction.station_id, transaction.evse_id) if self._smart else None
        return {
            "transaction_id": transaction.id,
            "station_id": transaction.station_id,
            "evse_id": transaction.evse_id,
            "connector_id": transaction.connector_id,
            "id_token": transaction.id_token,
            "started_at": transaction.started_at,
            "delivered_wh": round(session.delivered_wh, 1) if session else None,
            "departure": session.needs.departure if session else None,
        }

    def _loads(self, site_id: str, now: datetime) -> list[NodeLoad]:
        """Smart charging's measured load per node under the site against each node's limit in force now."""
        config = self._grid.config(now)
        setup = self._grid.setup
        measured = self._smart.measured_loads(now) if self._smart else {}
        loads = []
        for node in config.nodes:
            if setup.site_of_node(node.id) != site_id:
                continue
            amps = measured.get(node.id, (0.0, 0.0, 0.0))
            limit_a = node.current_limit_at(now)
            limit_w = node.power_limit_at(now)
            watts = sum(amps) * node.voltage_v
            over = (limit_a is not None and max(amps) > limit_a) or (limit_w is not None and watts > limit_w)
            loads.append(NodeLoad(node.id, node.parent_id, amps, limit_a, limit_w, watts, over))
        return loads
