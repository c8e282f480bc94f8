"""Live events for apps: what chargers report, published on the :class:`EventBus` for the SSE stream.

:class:`ChargerEvents` observes the charger service (as smart charging does) and the session registry, and
publishes ``connector.status``, ``station.connected`` / ``station.disconnected`` and ``session.started`` /
``session.stopped``. Each event names its site (for operators) and, for sessions, the account owning the id token
(for drivers). Finding the owner and the stopped session's figures takes a database read, so observations are
queued and published, in the order they were observed, by one task. :class:`EventLog` keeps the last events so a
client can resume from its ``Last-Event-ID``; :func:`visible_to` is the role filter of every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from csms.domain.accounts import Principal, Role
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.metering import MeterSample
from csms.domain.stations import ConnectorState
from csms.domain.transactions import Transaction
from csms.errors import StorageError
from csms.service.events import Event, EventBus
from csms.service.grid import GridService
from csms.storage.availability import AnalyticsReader
from csms.storage.sql import SqlStorage

__all__ = ["ChargerEvents", "EventLog", "visible_to"]

log = structlog.get_logger(__name__)


def visible_to(principal: Principal) -> Callable[[Event], bool]:
    """Admin: every event; operator: events of its sites; driver: events of its own account only."""
    if principal.role is Role.ADMIN:
        return lambda event: True
    if principal.role is Role.OPERATOR:
        sites = principal.site_ids
        return lambda event: not sites.isdisjoint(event.site_ids)
    account = principal.account_id
    return lambda event: event.account_id is not None and event.account_id == account


class EventLog:
    """The last ``capacity`` events published on a bus, for resuming a stream after a reconnect.

    It taps the bus with a filter that records and accepts nothing, so it sees each event synchronously as it is
    published (no queue, no task: a stream that subscribes and then reads the log misses nothing in between).
    """

    def __init__(self, bus: EventBus, capacity: int) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._last_id = 0
        bus.subscribe(self._record)

    def _record(self, event: Event) -> bool:
        self._events.append(event)
        self._last_id = event.id
        return False

    @property
    def last_id(self) -> int:
        return self._last_id

    def since(self, last_id: int) -> list[Event] | None:
        """Events after ``last_id``; None when some of them are no longer kept (the client must reload state)."""
        if last_id >= self._last_id:
            return []
        oldest = self._events[0].id if self._events else self._last_id + 1
        if last_id + 1 < oldest:
            return None
        return [event for event in self._events if event.id > last_id]


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: str
    at: datetime
    station_id: str
    data: dict[str, Any]
    id_token: str | None = None
    transaction_id: int | None = None  # a stopped session: its final figures are read before publishing


class ChargerEvents:
    """A ``ChargingObserver`` and registry listener that publishes what chargers report."""

    def __init__(self, bus: EventBus, grid: GridService, storage: SqlStorage, reader: AnalyticsReader) -> None:
        self._bus = bus
        self._grid = grid
        self._storage = storage
        self._reader = reader
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def settled(self) -> None:
        """Return once every observation made so far is published (tests and shutdown)."""
        await self._queue.join()

    # -- observations (called after the change is committed; cheap, never raise) ------------------------------

    def station_connection(self, station_id: str, connected: bool, now: datetime) -> None:
        kind = "station.connected" if connected else "station.disconnected"
        self._queue.put_nowait(_Pending(kind, now, station_id, {"station_id": station_id}))

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        data = {
            "station_id": state.station_id,
            "evse_id": state.evse_id,
            "connector_id": state.connector_id,
            "status": state.status.value,
            "error_code": state.error_code,
            "status_at": state.timestamp,
        }
        self._queue.put_nowait(_Pending("connector.status", now, state.station_id, data))

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        data = _session_data(transaction)
        self._queue.put_nowait(
            _Pending("session.started", now, transaction.station_id, data, transaction.id_token, None)
        )

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        data = _session_data(transaction)
        self._queue.put_nowait(
            _Pending("session.stopped", now, transaction.station_id, data, transaction.id_token, transaction.id)
        )

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        pass  # meter values are not pushed: too many for apps; the site's live data has the totals

    def station_booted(self, station_id: str, now: datetime) -> None:
        pass

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        return False  # only smart charging sends schedules

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        pass  # the connector's status says the same to apps

    # -- publishing ------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self._publish(pending)
            except StorageError as exc:
                # The event is still published, only without what the database would have added.
                log.warning("live event published without its account", kind=pending.kind, error=str(exc))
                self._bus.publish(pending.kind, pending.at, pending.data, site_ids=self._sites(pending.station_id))
            finally:
                self._queue.task_done()

    async def _publish(self, pending: _Pending) -> None:
        data = dict(pending.data)
        account_id = None
        if pending.id_token is not None:
            account_id = (await self._reader.token_owners([pending.id_token])).get(pending.id_token)
            data["account_id"] = account_id
        if pending.transaction_id is not None:
            final = await self._storage.get_transaction(pending.transaction_id)
            if final is not None:
                data["stopped_at"] = final.stopped_at
                data["stop_reason"] = final.stop_reason
                data["energy_wh"] = _energy(final)
                data["seq_no_gaps"] = final.seq_no_gaps  # 2.0.1: events of the session that never arrived
        self._bus.publish(
            pending.kind, pending.at, data, site_ids=self._sites(pending.station_id), account_id=account_id
        )

    def _sites(self, station_id: str) -> frozenset[str]:
        site = self._grid.site_of_station(station_id)
        return frozenset({site}) if site is not None else frozenset()


def _session_data(transaction: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": transaction.id,
        "station_id": transaction.station_id,
        "evse_id": transaction.evse_id,
        "connector_id": transaction.connector_id,
        "id_token": transaction.id_token,
        "started_at": transaction.started_at,
    }


def _energy(transaction: Transaction) -> float | None:
    if transaction.meter_stop_wh is None or transaction.meter_start_wh is None:
        return None
    return transaction.meter_stop_wh - transaction.meter_start_wh
