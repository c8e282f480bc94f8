"""Storage for availability and analytics: the status-history write, and the reads analytics aggregate.

The energy a site drew per time bucket is computed in SQL (a window over each transaction's register readings,
summed per bucket), so an analytics request moves one row per bucket, not one per meter value. Timestamp arithmetic
goes through :mod:`csms.storage.portable` (SQLite keeps timestamps as text, PostgreSQL as ``timestamptz``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from csms.domain.analytics import BookingTally, EnergyBucket, SessionRecord, StatusTime, StatusTransition
from csms.domain.bookings import BookingStatus
from csms.domain.metering import ENERGY_REGISTER
from csms.domain.stations import ConnectorState, ConnectorStatus, StationId
from csms.errors import StorageError
from csms.storage.portable import epoch_seconds, greatest, julian_day, least
from csms.storage.tables import UtcDateTime, connectors, id_tokens, meter_values, transactions
from csms.storage.tables_availability import connector_status_history
from csms.storage.tables_bookings import bookings
from csms.storage.tables_tariffs import tariff_sessions
from csms.storage.writer import Write

__all__ = ["AnalyticsReader", "record_status"]

_INSERT_STATUS = insert(connector_status_history)
# A booking that came due was kept (the driver arrived) or expired (a no-show); cancelled and failed ones neither.
_ACTIVE, _EXPIRED = BookingStatus.ACTIVE.value, BookingStatus.EXPIRED.value
_DUE = (BookingStatus.ACTIVE.value, BookingStatus.COMPLETED.value, BookingStatus.EXPIRED.value)


def record_status(state: ConnectorState, received_at: datetime) -> Write:
    """One row of status history; goes in the same write set as the connector's current status."""
    return Write(
        _INSERT_STATUS,
        {
            "station_id": state.station_id,
            "evse_id": state.evse_id,
            "connector_id": state.connector_id,
            "status": state.status.value,
            "error_code": state.error_code,
            "at": state.timestamp,
            "received_at": received_at,
        },
    )


class AnalyticsReader:
    """Read-only queries over connectors, sessions, status history and meter values.

    ``station_ids`` None means every station; an empty collection means none (and returns nothing).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, query: Select[Any]) -> list[Any]:
        try:
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        except SQLAlchemyError as exc:
            raise StorageError(f"read failed: {exc}") from exc

    async def connectors(self, station_ids: Collection[str] | None) -> list[ConnectorState]:
        """The current status of every connector of the stations (connector 0 included)."""
        query = select(connectors).order_by(connectors.c.station_id, connectors.c.evse_id, connectors.c.connector_id)
        if station_ids is not None:
            query = query.where(connectors.c.station_id.in_(list(station_ids)))
        return [
            ConnectorState(
                station_id=StationId(row.station_id),
                evse_id=row.evse_id,
                connector_id=row.connector_id,
                status=ConnectorStatus(row.status),
                error_code=row.error_code,
                timestamp=row.status_at,
                info=row.info,
                vendor_error_code=row.vendor_error_code,
            )
            for row in await self._rows(query)
        ]

    async def token_owners(self, tokens: Collection[str]) -> dict[str, str]:
        """The owning account of each of the tokens that has one."""
        if not tokens:
            return {}
        query = select(id_tokens.c.token, id_tokens.c.owner).where(
            id_tokens.c.token.in_(list(tokens)), id_tokens.c.owner.is_not(None)
        )
        return {row.token: row.owner for row in await self._rows(query)}

    async def sessions(
        self,
        station_ids: Collection[str] | None,
        start: datetime,
        end: datetime,
        evse_id: int | None = None,
        account_id: str | None = None,
    ) -> list[SessionRecord]:
        """Sessions that started in ``[start, end)``, with their token's owner."""
        energy = case(
            (
                and_(transactions.c.meter_stop_wh.is_not(None), transactions.c.meter_start_wh.is_not(None)),
                transactions.c.meter_stop_wh - transactions.c.meter_start_wh,
            ),
            else_=None,
        )
        query = (
            select(
                transactions.c.id,
                transactions.c.station_id,
                transactions.c.evse_id,
                transactions.c.connector_id,
                _raw(transactions.c.started_at),
                _raw(transactions.c.stopped_at),
                energy.label("energy_wh"),
                transactions.c.id_token,
                id_tokens.c.owner,
            )
            .select_from(transactions.outerjoin(id_tokens, id_tokens.c.token == transactions.c.id_token))
            .where(transactions.c.started_at >= start, transactions.c.started_at < end)
            .order_by(transactions.c.started_at, transactions.c.id)
        )
        if station_ids is not None:
            query = query.where(transactions.c.station_id.in_(list(station_ids)))
        if evse_id is not None:
            query = query.where(transactions.c.evse_id == evse_id)
        if account_id is not None:
            query = query.where(id_tokens.c.owner == account_id)
        return [
            SessionRecord(
                transaction_id=row.id,
                station_id=row.station_id,
                evse_id=row.evse_id,
                connector_id=row.connector_id,
                started_at=_utc(row.started_at),
                stopped_at=_utc(row.stopped_at) if row.stopped_at is not None else None,
                energy_wh=row.energy_wh,
                id_token=row.id_token,
                account_id=row.owner,
            )
            for row in await self._rows(query)
        ]

    async def booking_tallies(
        self, station_ids: Collection[str] | None, start: datetime, end: datetime, account_id: str | None = None
    ) -> list[BookingTally]:
        """Per account, the bookings due in ``[start, end)`` that were kept or not: arrived (active, completed) or
        expired (a no-show). Cancelled and failed bookings count neither way."""
        no_show = func.sum(case((bookings.c.status == _EXPIRED, 1), else_=0))
        query = (
            select(bookings.c.account_id, func.count().label("due"), no_show.label("no_shows"))
            .where(bookings.c.starts_at >= start, bookings.c.starts_at < end, bookings.c.status.in_(_DUE))
            .group_by(bookings.c.account_id)
        )
        if station_ids is not None:
            query = query.where(bookings.c.station_id.in_(list(station_ids)))
        if account_id is not None:
            query = query.where(bookings.c.account_id == account_id)
        return [BookingTally(row.account_id, row.due, int(row.no_shows)) for row in await self._rows(query)]

    async def booking_ends(self, transaction_ids: Collection[int]) -> dict[int, datetime]:
        """The end of the booking each of these sessions runs under, when it runs under one."""
        if not transaction_ids:
            return {}
        query = select(bookings.c.transaction_id, _raw(bookings.c.ends_at)).where(
            bookings.c.transaction_id.in_(list(transaction_ids)), bookings.c.status == _ACTIVE
        )
        return {row.transaction_id: _utc(row.ends_at) for row in await self._rows(query)}

    async def time_limits(self, transaction_ids: Collection[int]) -> dict[int, datetime]:
        """When each of these sessions reaches its site's maximum charging time (session rules), if it has one."""
        if not transaction_ids:
            return {}
        ts = tariff_sessions
        query = select(ts.c.transaction_id, _raw(ts.c.limit_at)).where(
            ts.c.transaction_id.in_(list(transaction_ids)), ts.c.limit_at.is_not(None)
        )
        return {row.transaction_id: _utc(row.limit_at) for row in await self._rows(query)}

    async def overstays(
        self,
        station_ids: Collection[str] | None,
        start: datetime,
        end: datetime,
        evse_id: int | None = None,
        account_id: str | None = None,
    ) -> dict[int, bool]:
        """Whether each finished session that started in ``[start, end)`` overstayed (overstay billing began).

        Sessions the tariff service did not follow (no row) are left out: unknown, not "no".
        """
        ts, tx = tariff_sessions, transactions
        query = (
            select(ts.c.transaction_id, ts.c.overstay_started_at.is_not(None).label("overstayed"))
            .select_from(ts.join(tx, tx.c.id == ts.c.transaction_id))
            .where(tx.c.started_at >= start, tx.c.started_at < end, ts.c.ended_at.is_not(None))
        )
        if station_ids is not None:
            query = query.where(tx.c.station_id.in_(list(station_ids)))
        if evse_id is not None:
            query = query.where(tx.c.evse_id == evse_id)
        if account_id is not None:
            query = query.where(ts.c.account_id == account_id)
        return {row.transaction_id: bool(row.overstayed) for row in await self._rows(query)}

    async def status_history(
        self, station_ids: Collection[str] | None, start: datetime, end: datetime, evse_id: int | None = None
    ) -> list[StatusTransition]:
        """Transitions in ``[start, end)`` plus, per connector, the last one before ``start`` (the status then)."""
        history = _history(station_ids, start, end, evse_id)
        rows = await self._rows(history.order_by("at", "id"))
        return [StatusTransition(r.station_id, r.evse_id, r.connector_id, r.status, _utc(r.at)) for r in rows]

    async def status_time(
        self, station_ids: Collection[str] | None, start: datetime, end: datetime, evse_id: int | None = None
    ) -> list[StatusTime]:
        """Seconds of ``[start, end)`` each connector spent in each status, summed in SQL.

        The same transitions as :meth:`status_history`; each lasts until the connector's next one (``LEAD``), clipped
        to the range. One row per connector and status reaches Python, however long the history.
        """
        t = _history(station_ids, start, end, evse_id).subquery()
        first_day, last_day = julian_day(literal(start, UtcDateTime())), julian_day(literal(end, UtcDateTime()))
        connector = (t.c.station_id, t.c.evse_id, t.c.connector_id)
        following = func.lead(t.c.at).over(partition_by=connector, order_by=(t.c.at, t.c.id))
        spans = select(
            *connector,
            t.c.status,
            greatest(julian_day(t.c.at), first_day).label("since"),
            least(func.coalesce(julian_day(following), last_day), last_day).label("until"),
        ).subquery()
        query = select(
            spans.c.station_id,
            spans.c.evse_id,
            spans.c.connector_id,
            spans.c.status,
            # Each span in whole milliseconds before summing, so float error does not add up over long histories.
            func.sum(func.round((spans.c.until - spans.c.since) * 86_400_000)).label("ms"),
            func.min(spans.c.since).label("first"),
        ).group_by(spans.c.station_id, spans.c.evse_id, spans.c.connector_id, spans.c.status)
        return [
            StatusTime(r.station_id, r.evse_id, r.connector_id, r.status, r.ms / 1000, _from_julian(r.first))
            for r in await self._rows(query)
        ]

    async def energy_buckets(
        self, station_ids: Collection[str] | None, start: datetime, end: datetime, bucket: timedelta
    ) -> list[EnergyBucket]:
        """Energy delivered by the stations per ``bucket`` from ``start``, from the energy register readings.

        Each reading contributes its increase over the transaction's previous reading (or over the meter start for
        the first one), counted in the bucket in which that interval ends; decreases (a meter reset) count nothing.
        """
        bucket_s = max(1, int(bucket.total_seconds()))
        delta = _register_increases(station_ids, start, end)
        start_epoch = int(start.timestamp())
        # A reading closes the interval since the one before: one exactly on a boundary belongs to the bucket
        # that ends there (hence the second subtracted).
        index = (epoch_seconds(delta.c.timestamp) - start_epoch - 1) // bucket_s
        query = (
            select(index.label("bucket"), func.sum(delta.c.wh).label("wh"))
            .where(delta.c.timestamp >= start, delta.c.wh > 0)
            .group_by("bucket")
            .order_by("bucket")
        )
        return [
            EnergyBucket(start + timedelta(seconds=int(row.bucket) * bucket_s), float(row.wh))
            for row in await self._rows(query)
        ]

    async def energy_wh(self, station_ids: Collection[str] | None, start: datetime, end: datetime) -> float:
        """Energy delivered by the stations during ``[start, end)`` (e.g. today), from register readings."""
        delta = _register_increases(station_ids, start, end)
        query = select(func.coalesce(func.sum(delta.c.wh), 0.0)).where(delta.c.timestamp >= start, delta.c.wh > 0)
        rows = await self._rows(query)
        return float(rows[0][0])


def _raw(column: Column[datetime]) -> Any:
    """A timestamp column read as the stored text: parsed by :func:`_utc`, ten times cheaper than the generic
    result processing when a report reads tens of thousands of rows."""
    return type_coerce(column, String).label(column.name)


def _utc(stored: str | datetime) -> datetime:
    # SQLite hands back the stored text; PostgreSQL's driver a datetime already.
    value = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _history(station_ids: Collection[str] | None, start: datetime, end: datetime, evse_id: int | None) -> Any:
    """Status transitions in ``[start, end)`` and, per connector, the last one before ``start``; ``at`` as text."""
    h = connector_status_history
    scope: list[ColumnElement[bool]] = []
    if station_ids is not None:
        scope.append(h.c.station_id.in_(list(station_ids)))
    if evse_id is not None:
        scope.append(h.c.evse_id == evse_id)
    before = (
        select(h.c.station_id, h.c.evse_id, h.c.connector_id, func.max(h.c.at).label("at"))
        .where(h.c.at < start, *scope)
        .group_by(h.c.station_id, h.c.evse_id, h.c.connector_id)
        .subquery()
    )
    columns = (h.c.station_id, h.c.evse_id, h.c.connector_id, h.c.status, _raw(h.c.at), h.c.id)
    opening = select(*columns).join(
        before,
        and_(
            h.c.station_id == before.c.station_id,
            h.c.evse_id == before.c.evse_id,
            h.c.connector_id == before.c.connector_id,
            h.c.at == before.c.at,
        ),
    )
    return opening.union_all(select(*columns).where(h.c.at >= start, h.c.at < end, *scope))


_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _from_julian(day: float) -> datetime:
    """A Julian day number (SQLite ``julianday``) as an aware UTC datetime, to the millisecond."""
    return datetime.fromtimestamp(round((day - _UNIX_EPOCH_JULIAN_DAY) * 86400, 3), UTC)


def _register_increases(station_ids: Collection[str] | None, start: datetime, end: datetime) -> Any:
    """A subquery of (timestamp, wh): each energy register reading's increase over the one before it.

    Only transactions that overlap the range are read, through the meter values' transaction index; readings
    before ``start`` are included so the first increase inside the range has its predecessor.
    """
    mv, tx = meter_values, transactions
    scale = case((mv.c.unit == "kWh", literal(1000.0)), else_=literal(1.0))
    wh = cast(mv.c.value, Float) * scale
    previous = func.lag(wh).over(partition_by=mv.c.transaction_id, order_by=(mv.c.timestamp, mv.c.id))
    overlapping = and_(tx.c.started_at < end, or_(tx.c.stopped_at.is_(None), tx.c.stopped_at >= start))
    query = (
        select(mv.c.timestamp, (wh - func.coalesce(previous, tx.c.meter_start_wh)).label("wh"))
        .select_from(mv.join(tx, tx.c.id == mv.c.transaction_id))
        .where(
            overlapping,
            mv.c.timestamp < end,
            mv.c.measurand == ENERGY_REGISTER,
            mv.c.phase.is_(None),
            mv.c.value.is_not(None),
            or_(mv.c.unit.is_(None), mv.c.unit.in_(["Wh", "kWh"])),
            or_(mv.c.location.is_(None), mv.c.location == "Outlet"),
        )
    )
    if station_ids is not None:
        query = query.where(tx.c.station_id.in_(list(station_ids)))
    return query.subquery()
